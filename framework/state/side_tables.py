"""Tables a component keeps in the state database beside the state store's own (the model registry,
monitor results): one engine per URL, tables created on first use, one transaction per call.

Subclasses define ``_define_tables(schema) -> MetaData`` (setting their table attributes), an
``error`` class and a ``what`` naming the tables in messages. ``?schema=NAME`` in a PostgreSQL URL
places the tables in that schema, as for the state store.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Any, Callable, ClassVar, Iterator

from ..errors import MLError, StateError

__all__ = ["SideTables"]

_INSTANCES: dict[tuple[type, str], "SideTables"] = {}
_INSTANCES_GUARD = threading.Lock()


class SideTables:
    error: ClassVar[type[MLError]] = StateError
    what: ClassVar[str] = "the tables"
    # Extra SQLite "connect" listeners (e.g. relaxed fsync for an append-only time series).
    sqlite_connect_listeners: ClassVar[tuple[Callable, ...]] = ()

    def __init__(self, url: str):
        import sqlalchemy as sa
        from sqlalchemy.engine import make_url

        parsed = make_url(url)
        self.url = url
        self._sqlite = parsed.get_backend_name() == "sqlite"
        self._schema = None if self._sqlite else parsed.query.get("schema")
        self._md = self._define_tables(self._schema)
        self._lock = threading.RLock()
        self._ready = False
        parsed = parsed.difference_update_query(["schema"])
        if self._sqlite:
            from sqlalchemy import event

            from .sql import _sqlite_on_begin, _sqlite_on_connect

            self._engine = sa.create_engine(parsed, connect_args={"check_same_thread": False})
            for listener in (_sqlite_on_connect, *self.sqlite_connect_listeners):
                event.listen(self._engine, "connect", listener)
            event.listen(self._engine, "begin", _sqlite_on_begin)
        else:
            self._engine = sa.create_engine(parsed, pool_pre_ping=True, connect_args={"connect_timeout": 10})

    def _define_tables(self, schema: str | None):  # pragma: no cover - abstract
        raise NotImplementedError

    # -- opening and closing -------------------------------------------------------------------------
    @classmethod
    def for_store(cls, store):
        """The instance next to an open state store (same database), shared per URL."""
        return cls._cached(store.url)

    @classmethod
    def _cached(cls, url: str):
        with _INSTANCES_GUARD:
            found = _INSTANCES.get((cls, url))
            if found is None:
                found = _INSTANCES[(cls, url)] = cls(url)
            return found

    def close(self) -> None:
        with _INSTANCES_GUARD:
            if _INSTANCES.get((type(self), self.url)) is self:
                del _INSTANCES[(type(self), self.url)]
        self._engine.dispose()

    # -- transactions --------------------------------------------------------------------------------
    def _ensure(self) -> None:
        if self._ready:
            return
        import sqlalchemy as sa
        from sqlalchemy import exc as sa_exc

        try:
            with self._lock, self._engine.connect() as conn:
                conn.execution_options(ml_write=True)
                with conn.begin():
                    if self._schema:
                        conn.execute(sa.schema.CreateSchema(self._schema, if_not_exists=True))
                    self._md.create_all(conn, checkfirst=True)
        except sa_exc.SQLAlchemyError as exc:
            raise self.error(f"cannot create {self.what}: {getattr(exc, 'orig', exc)}") from exc
        self._ready = True

    @contextmanager
    def _tx(self, write: bool = False) -> Iterator[Any]:
        from sqlalchemy import exc as sa_exc

        self._ensure()
        try:
            with self._lock, self._engine.connect() as conn:
                conn.execution_options(ml_write=write)
                with conn.begin():
                    yield conn
        except sa_exc.SQLAlchemyError as exc:
            raise self.error(f"cannot use {self.what}: {str(getattr(exc, 'orig', exc)).strip()}") from exc
