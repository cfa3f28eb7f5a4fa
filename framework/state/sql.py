"""The SQL state store: one SQLAlchemy Core implementation for SQLite and PostgreSQL.

URLs (normally given through :func:`ml_framework.state.open_state`):

* ``sqlite:////absolute/path/state.db`` — WAL journal, a 30 s busy timeout, and every write in a
  ``BEGIN IMMEDIATE`` transaction, so concurrent processes serialise instead of failing.
* ``postgresql+psycopg://user:password@host:5432/db`` — add ``?schema=NAME`` to keep the tables in
  that schema (created if missing); the parameter is stripped before connecting.

Tables (created on first use): ``ml_meta`` (one row: lineage, serial, format_version),
``ml_resources``, ``ml_lock`` (at most one row: its primary key ``slot`` is always 1, so only one
holder can insert it), ``ml_runs`` and ``ml_run_outcomes``. Every timestamp is ISO 8601 UTC.

Every database error is raised as :class:`ml_framework.errors.StateError` naming the store (password
masked) and chained to the original. A store object may be shared by the threads of one process.
"""

from __future__ import annotations

import getpass
import json
import os
import re
import socket
import sqlite3
import threading
import uuid
import zlib
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from typing import Any, Iterator, Mapping

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.pool import StaticPool

from ..contract import RecordedResource
from ..errors import LockedError, StateError
from . import mask_url
from .base import STATE_FORMAT_VERSION, LockInfo, ResourceOutcome, RunRecord, StateMeta

__all__ = ["SqlStateStore"]

_SLOT = 1  # the only primary-key value of ml_meta and ml_lock
_SQLITE_BUSY_TIMEOUT_MS = 30_000
_PG_CONNECT_TIMEOUT_S = 10
_SCHEMA_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="microseconds")


def _who() -> str:
    try:
        user = getpass.getuser()
    except Exception:  # no user name in this environment (e.g. containers without passwd entry)
        user = "unknown"
    namespace = _pid_namespace()
    return f"{user}@{socket.gethostname()} (pid {os.getpid()}" + (f", pidns {namespace})" if namespace else ")")


def _pid_namespace() -> str | None:
    """This process's PID namespace (containers on one host share host names and pid numbers otherwise)."""
    try:
        return str(os.stat("/proc/self/ns/pid").st_ino)
    except OSError:
        return None


_WHO = re.compile(r"^(?P<user>.*)@(?P<host>[^@]+) \(pid (?P<pid>\d+)(, pidns (?P<ns>\d+))?\)$")


def holder_is_gone(who: str) -> bool:
    """True only when the lock's holder provably no longer runs: it ran on this host, in this PID
    namespace, and no process has its pid. Anything less certain (another host, an older ml that did not
    record its namespace, a live pid) is treated as alive: its lease has to expire."""
    found = _WHO.match(who or "")
    here = _pid_namespace()
    if not found or found["host"] != socket.gethostname() or not found["ns"] or found["ns"] != here:
        return False
    try:
        os.kill(int(found["pid"]), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, OverflowError, ValueError):
        return False
    return False


def _json_default(value: Any) -> Any:
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=_json_default)


def _tables(schema: str | None) -> tuple[sa.MetaData, dict[str, sa.Table]]:
    md = sa.MetaData(schema=schema)
    text, integer = sa.Text, sa.Integer
    tables = {
        "meta": sa.Table(
            "ml_meta", md,
            sa.Column("slot", integer, primary_key=True, autoincrement=False),
            sa.Column("lineage", sa.String(36), nullable=False),
            sa.Column("serial", integer, nullable=False),
            sa.Column("format_version", integer, nullable=False),
        ),
        "resources": sa.Table(
            "ml_resources", md,
            sa.Column("address", sa.String(512), primary_key=True),
            sa.Column("kind", text, nullable=False),
            sa.Column("backend", text, nullable=False),
            sa.Column("spec", text, nullable=False),
            sa.Column("fingerprint", text, nullable=False),
            sa.Column("inputs", text, nullable=False),
            sa.Column("outputs", text, nullable=False),
            sa.Column("status", text, nullable=False),
            sa.Column("depends_on", text, nullable=False),
            sa.Column("updated_at", text, nullable=False),
        ),
        "lock": sa.Table(
            "ml_lock", md,
            sa.Column("slot", integer, primary_key=True, autoincrement=False),
            sa.Column("id", sa.String(36), nullable=False),
            sa.Column("operation", text, nullable=False),
            sa.Column("who", text, nullable=False),
            sa.Column("version", text, nullable=False),
            sa.Column("created", text, nullable=False),
            sa.Column("expires", text, nullable=False),
        ),
        "runs": sa.Table(
            "ml_runs", md,
            sa.Column("id", sa.String(36), primary_key=True),
            sa.Column("operation", text, nullable=False),
            sa.Column("who", text, nullable=False),
            sa.Column("started", sa.String(40), nullable=False, index=True),
            sa.Column("finished", text),
            sa.Column("status", text, nullable=False),
            sa.Column("plan_id", text),
            sa.Column("serial_before", integer, nullable=False),
            sa.Column("details", text, nullable=False),
        ),
        "outcomes": sa.Table(
            "ml_run_outcomes", md,
            sa.Column("seq", integer, primary_key=True, autoincrement=True),
            sa.Column("run_id", sa.String(36), nullable=False, index=True),
            sa.Column("address", sa.String(512), nullable=False, index=True),
            sa.Column("action", text, nullable=False),
            sa.Column("outcome", text, nullable=False),
            sa.Column("error", text),
            sa.Column("duration_s", sa.Float),
        ),
    }
    return md, tables


class SqlStateStore:
    """The state store for SQLite and PostgreSQL (see the module docstring for URLs)."""

    def __init__(self, url: str):
        self.url = url
        try:
            parsed = make_url(url)
        except sa_exc.ArgumentError as exc:
            raise StateError(f"malformed state URL {mask_url(url)!r}: {exc}") from exc
        self.display_url = parsed.render_as_string(hide_password=True)
        self._sqlite = parsed.get_backend_name() == "sqlite"
        self._schema = self._schema_from(parsed)
        self._path = parsed.database if self._sqlite else None
        self._metadata, self._t = _tables(self._schema)
        self._lock = threading.RLock()
        self._ready = False
        self._db_errors = self._error_types()
        self._engine = self._make_engine(parsed.difference_update_query(["schema"]))

    # -- setup ------------------------------------------------------------------------------------
    def _schema_from(self, parsed) -> str | None:
        schema = parsed.query.get("schema")
        if schema is None:
            return None
        if self._sqlite:
            raise StateError(f"state URL {self.display_url}: ?schema= is only supported for PostgreSQL")
        if isinstance(schema, tuple) or not _SCHEMA_NAME.match(schema):
            raise StateError(f"state URL {self.display_url}: invalid schema name {schema!r}",
                             hint="use letters, digits and underscores, starting with a letter")
        return schema

    def _error_types(self) -> tuple[type[BaseException], ...]:
        errors: list[type[BaseException]] = [sa_exc.SQLAlchemyError, sqlite3.Error]
        if not self._sqlite:
            try:
                import psycopg

                errors.append(psycopg.Error)
            except ImportError:  # SQLAlchemy reports the missing driver itself
                pass
        return tuple(errors)

    def _make_engine(self, parsed) -> sa.Engine:
        try:
            if self._sqlite:
                return self._sqlite_engine(parsed)
            return sa.create_engine(parsed, pool_pre_ping=True,
                                    connect_args={"connect_timeout": _PG_CONNECT_TIMEOUT_S})
        except (sa_exc.ArgumentError, ImportError, sa_exc.NoSuchModuleError) as exc:
            raise StateError(f"cannot open the state store {self.display_url}: {exc}") from exc

    def _sqlite_engine(self, parsed) -> sa.Engine:
        memory = parsed.database in (None, "", ":memory:")
        extra = {"poolclass": StaticPool} if memory else {}
        engine = sa.create_engine(parsed, connect_args={"check_same_thread": False}, **extra)
        event.listen(engine, "connect", _sqlite_on_connect)
        event.listen(engine, "begin", _sqlite_on_begin)
        return engine

    def _ensure(self) -> None:
        """Create the tables and the empty state once; refuse a store of a newer format."""
        if self._ready:
            return
        with self._tx(write=True) as conn:
            if not self._sqlite:
                self._pg_prepare(conn)
            if sa.inspect(conn).has_table("ml_meta", schema=self._schema):
                self._read_meta(conn)  # raises for a newer format before anything is created
            self._metadata.create_all(conn, checkfirst=True)
            if self._read_meta(conn) is None:
                conn.execute(sa.insert(self._t["meta"]).values(
                    slot=_SLOT, lineage=str(uuid.uuid4()), serial=0,
                    format_version=STATE_FORMAT_VERSION))
        self._ready = True

    def _pg_prepare(self, conn: Connection) -> None:
        key = zlib.crc32(f"ml-state:{self._schema or ''}".encode()) & 0x7FFFFFFF
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": key})  # one creator at a time
        if self._schema:
            conn.execute(sa.schema.CreateSchema(self._schema, if_not_exists=True))

    # -- transactions and errors ------------------------------------------------------------------
    @contextmanager
    def _tx(self, *, write: bool) -> Iterator[Connection]:
        with self._lock, self._guard(), self._engine.connect() as conn:
            conn.execution_options(ml_write=write)
            with conn.begin():
                yield conn

    @contextmanager
    def _guard(self) -> Iterator[None]:
        try:
            yield
        except self._db_errors as exc:
            raise StateError(self._describe(exc)) from exc
        except json.JSONDecodeError as exc:
            raise StateError(self._corrupt(f"unreadable record: {exc}")) from exc

    def _corrupt(self, detail: str) -> str:
        where = self._path if self._sqlite else self.display_url
        return f"{where} is not a valid ml state database: {detail}"

    def _describe(self, exc: BaseException) -> str:
        orig = getattr(exc, "orig", None) or exc
        text = str(orig).strip()
        detail = text.splitlines()[0] if text else type(orig).__name__
        if self._sqlite:
            transient = isinstance(orig, sqlite3.OperationalError) and not any(
                word in detail for word in ("no such", "malformed", "not a database"))
            if not transient:
                return self._corrupt(detail)
            return f"cannot use the ml state database {self._path}: {detail}"
        return f"cannot use the ml state database {self.display_url}: {detail}"

    # -- reading ----------------------------------------------------------------------------------
    def meta(self) -> StateMeta:
        self._ensure()
        with self._tx(write=False) as conn:
            meta = self._read_meta(conn)
        if meta is None:
            raise StateError(self._corrupt("the ml_meta row is missing"))
        return meta

    def _read_meta(self, conn: Connection) -> StateMeta | None:
        row = conn.execute(sa.select(self._t["meta"]).where(self._t["meta"].c.slot == _SLOT)).first()
        if row is None:
            return None
        if row.format_version > STATE_FORMAT_VERSION:
            from .. import __version__

            raise StateError(
                f"the state {self.display_url} was written in state format {row.format_version}, "
                f"but this ml ({__version__}) only understands format {STATE_FORMAT_VERSION} or "
                "older; upgrade ml to use it (nothing was changed)",
                hint="pip install --upgrade ml-framework")
        return StateMeta(lineage=row.lineage, serial=row.serial, format_version=row.format_version)

    def list_resources(self) -> list[RecordedResource]:
        self._ensure()
        res = self._t["resources"]
        with self._tx(write=False) as conn:
            rows = conn.execute(sa.select(res).order_by(res.c.address)).all()
            return [self._record(row) for row in rows]

    def get(self, address: str) -> RecordedResource | None:
        self._ensure()
        res = self._t["resources"]
        with self._tx(write=False) as conn:
            row = conn.execute(sa.select(res).where(res.c.address == address)).first()
            return self._record(row) if row is not None else None

    @staticmethod
    def _record(row) -> RecordedResource:
        return RecordedResource(
            address=row.address, kind=row.kind, backend=row.backend,
            spec=json.loads(row.spec), fingerprint=row.fingerprint,
            inputs=json.loads(row.inputs), outputs=json.loads(row.outputs), status=row.status,
            depends_on=tuple(json.loads(row.depends_on)), updated_at=row.updated_at)

    # -- writing ----------------------------------------------------------------------------------
    def put(self, record: RecordedResource, *, lock_id: str) -> int:
        self._ensure()
        values = self._row_values(record)
        res = self._t["resources"]
        with self._tx(write=True) as conn:
            self._check_lock(conn, lock_id)
            conn.execute(sa.delete(res).where(res.c.address == record.address))
            conn.execute(sa.insert(res).values(**values))
            return self._bump(conn)

    @staticmethod
    def _row_values(record: RecordedResource) -> dict[str, Any]:
        try:
            payload = {name: _dumps(getattr(record, name)) for name in ("spec", "inputs", "outputs")}
            payload["depends_on"] = _dumps(list(record.depends_on))
        except (TypeError, ValueError) as exc:
            raise StateError(f"{record.address}: cannot record it in state: {exc}") from exc
        return dict(payload, address=record.address, kind=record.kind, backend=record.backend,
                    fingerprint=record.fingerprint, status=record.status, updated_at=_iso(_now()))

    def remove(self, address: str, *, lock_id: str) -> int:
        self._ensure()
        res = self._t["resources"]
        with self._tx(write=True) as conn:
            self._check_lock(conn, lock_id)
            conn.execute(sa.delete(res).where(res.c.address == address))
            return self._bump(conn)

    def _bump(self, conn: Connection) -> int:
        meta = self._t["meta"]
        conn.execute(sa.update(meta).where(meta.c.slot == _SLOT).values(serial=meta.c.serial + 1))
        return conn.execute(sa.select(meta.c.serial).where(meta.c.slot == _SLOT)).scalar_one()

    def _check_lock(self, conn: Connection, lock_id: str) -> None:
        """The lock must still carry our id (an expired lease nobody took over is still ours)."""
        lock = self._t["lock"]
        held = conn.execute(sa.select(lock.c.id).where(lock.c.slot == _SLOT).with_for_update()).scalar()
        if held != lock_id:
            raise StateError(
                f"state lock {lock_id} is not held (it was released, force-unlocked or taken over "
                "after it expired); refusing to write state")

    # -- locking ----------------------------------------------------------------------------------
    def acquire_lock(self, operation: str, *, ttl_seconds: float = 120.0) -> LockInfo:
        self._ensure()
        for _ in range(3):  # a holder may vanish between our failed insert and the re-read
            try:
                return self._try_acquire(operation, ttl_seconds)
            except StateError as exc:
                if not isinstance(exc.__cause__, sa_exc.IntegrityError):
                    raise
            holder = self.current_lock()
            if holder is not None:
                raise self._locked(holder)
        raise StateError(f"could not take the state lock of {self.display_url}; try again")

    def _try_acquire(self, operation: str, ttl_seconds: float) -> LockInfo:
        from .. import __version__

        lock = self._t["lock"]
        now = _now()
        info = LockInfo(id=str(uuid.uuid4()), operation=operation, who=_who(), version=__version__,
                        created=_iso(now), expires=_iso(now + timedelta(seconds=ttl_seconds)))
        with self._tx(write=True) as conn:
            holder = self._read_lock(conn, for_update=True)
            if holder is None:
                conn.execute(sa.insert(lock).values(slot=_SLOT, **vars(info)))
                return info
            expired = datetime.fromisoformat(holder.expires) <= now
            if not expired and not holder_is_gone(holder.who):
                raise self._locked(holder)
            self.taken_over = (holder, "its lease expired" if expired else "that process is gone")
            taken = conn.execute(sa.update(lock).where(lock.c.slot == _SLOT, lock.c.id == holder.id)
                                 .values(**vars(info)))
            if taken.rowcount != 1:
                raise self._locked(self._read_lock(conn) or holder)
            return info

    def _locked(self, holder: LockInfo) -> LockedError:
        return LockedError(
            f"the state {self.display_url} is locked by {holder.who} for {holder.operation!r} "
            f"since {holder.created} (lock id {holder.id}, ml {holder.version}, "
            f"lease expires {holder.expires})",
            hint=f"run `ml force-unlock {holder.id}` if that run is gone")

    def _read_lock(self, conn: Connection, *, for_update: bool = False) -> LockInfo | None:
        lock = self._t["lock"]
        query = sa.select(lock).where(lock.c.slot == _SLOT)
        row = conn.execute(query.with_for_update() if for_update else query).first()
        if row is None:
            return None
        return LockInfo(id=row.id, operation=row.operation, who=row.who, version=row.version,
                        created=row.created, expires=row.expires)

    def renew_lock(self, lock_id: str, *, ttl_seconds: float = 120.0) -> None:
        self._ensure()
        lock = self._t["lock"]
        expires = _iso(_now() + timedelta(seconds=ttl_seconds))
        with self._tx(write=True) as conn:
            done = conn.execute(sa.update(lock).where(lock.c.slot == _SLOT, lock.c.id == lock_id)
                                .values(expires=expires))
            if done.rowcount != 1:
                raise StateError(f"cannot renew state lock {lock_id}: that lock is not held "
                                 "(released, force-unlocked or taken over after it expired)")

    def release_lock(self, lock_id: str) -> None:
        self._ensure()
        lock = self._t["lock"]
        with self._tx(write=True) as conn:
            conn.execute(sa.delete(lock).where(lock.c.slot == _SLOT, lock.c.id == lock_id))

    def current_lock(self) -> LockInfo | None:
        self._ensure()
        with self._tx(write=False) as conn:
            return self._read_lock(conn)

    def force_unlock(self, lock_id: str) -> LockInfo:
        self._ensure()
        lock = self._t["lock"]
        with self._tx(write=True) as conn:
            holder = self._read_lock(conn, for_update=True)
            if holder is None:
                raise StateError(f"cannot force-unlock {lock_id}: the state {self.display_url} "
                                 "is not locked")
            if holder.id != lock_id:
                raise StateError(
                    f"cannot force-unlock {lock_id}: the state is locked with a different id, "
                    f"{holder.id} (held by {holder.who} for {holder.operation!r} since "
                    f"{holder.created})", hint=f"to remove that lock run `ml force-unlock {holder.id}`")
            conn.execute(sa.delete(lock).where(lock.c.slot == _SLOT, lock.c.id == lock_id))
            return holder

    # -- history ----------------------------------------------------------------------------------
    def begin_run(self, operation: str, *, plan_id: str | None, lock_id: str,
                  details: Mapping[str, Any] | None = None) -> str:
        self._ensure()
        run_id = str(uuid.uuid4())
        payload = self._json_field("run details", details or {})
        with self._tx(write=True) as conn:
            self._check_lock(conn, lock_id)
            serial = self._read_meta(conn).serial
            conn.execute(sa.insert(self._t["runs"]).values(
                id=run_id, operation=operation, who=_who(), started=_iso(_now()), finished=None,
                status="running", plan_id=plan_id, serial_before=serial, details=payload))
        return run_id

    @staticmethod
    def _json_field(what: str, value: Any) -> str:
        try:
            return _dumps(value)
        except (TypeError, ValueError) as exc:
            raise StateError(f"cannot record {what} in state: {exc}") from exc

    def record_outcome(self, run_id: str, outcome: ResourceOutcome) -> None:
        self._ensure()
        with self._tx(write=True) as conn:
            conn.execute(sa.insert(self._t["outcomes"]).values(
                run_id=run_id, address=outcome.address, action=outcome.action,
                outcome=outcome.outcome, error=outcome.error, duration_s=outcome.duration_s))

    def finish_run(self, run_id: str, status: str) -> None:
        self._ensure()
        runs = self._t["runs"]
        with self._tx(write=True) as conn:
            done = conn.execute(sa.update(runs).where(runs.c.id == run_id)
                                .values(finished=_iso(_now()), status=status))
            if done.rowcount != 1:
                raise StateError(f"cannot finish run {run_id}: no such run in the state history")

    def history(self, *, limit: int = 20, address: str | None = None) -> list[RunRecord]:
        self._ensure()
        runs, outs = self._t["runs"], self._t["outcomes"]
        query = sa.select(runs).order_by(runs.c.started.desc(), runs.c.id.desc()).limit(limit)
        if address is not None:
            query = query.where(runs.c.id.in_(sa.select(outs.c.run_id).where(outs.c.address == address)))
        with self._tx(write=False) as conn:
            rows = conn.execute(query).all()
            outcomes = self._outcomes(conn, [row.id for row in rows])
            return [self._run(row, outcomes.get(row.id, ())) for row in rows]

    def _outcomes(self, conn: Connection, run_ids: list[str]) -> dict[str, tuple[ResourceOutcome, ...]]:
        if not run_ids:
            return {}
        outs = self._t["outcomes"]
        found: dict[str, list[ResourceOutcome]] = {}
        query = sa.select(outs).where(outs.c.run_id.in_(run_ids)).order_by(outs.c.seq)
        for row in conn.execute(query):
            found.setdefault(row.run_id, []).append(ResourceOutcome(
                address=row.address, action=row.action, outcome=row.outcome, error=row.error,
                duration_s=row.duration_s))
        return {run_id: tuple(items) for run_id, items in found.items()}

    @staticmethod
    def _run(row, outcomes: tuple[ResourceOutcome, ...]) -> RunRecord:
        return RunRecord(id=row.id, operation=row.operation, who=row.who, started=row.started,
                         finished=row.finished, status=row.status, plan_id=row.plan_id,
                         serial_before=row.serial_before, outcomes=outcomes,
                         details=json.loads(row.details))

    # -- lifetime ---------------------------------------------------------------------------------
    def close(self) -> None:
        self._engine.dispose()

    def __enter__(self) -> SqlStateStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SqlStateStore({self.display_url!r})"


def _sqlite_on_connect(dbapi_connection, _record) -> None:
    dbapi_connection.isolation_level = None  # SQLAlchemy emits BEGIN itself (see _sqlite_on_begin)
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {_SQLITE_BUSY_TIMEOUT_MS}")
        _enable_wal(cursor)
        cursor.execute("PRAGMA foreign_keys = ON")
    finally:
        cursor.close()


def _enable_wal(cursor) -> None:
    """``PRAGMA journal_mode = WAL``, retried while another connection holds the file: SQLite answers
    "database is locked" at once, without its busy handler, when several processes switch a new file
    to WAL together (each holds a shared lock and wants an exclusive one). Once one has, the rest see
    WAL already set."""
    import time

    deadline = time.monotonic() + _SQLITE_BUSY_TIMEOUT_MS / 1000
    delay = 0.005
    while True:
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.2)


def _sqlite_on_begin(conn: Connection) -> None:
    # Writers take the write lock up front, so two processes queue (busy timeout) instead of
    # failing on a read-to-write upgrade; readers never block in WAL mode.
    immediate = conn.get_execution_options().get("ml_write", False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")
