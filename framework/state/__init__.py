"""State: what `ml` remembers between runs, and where.

``open_state(url)`` opens the store named by the project's ``state`` URL:

* ``sqlite:///relative/path.db`` (resolved against the project directory; parent folders such as
  ``.ml/`` are created) or ``sqlite:////absolute/path.db``;
* ``postgresql://user@host/db`` (``postgres://`` and ``postgresql+<driver>://`` are accepted too and
  always use the psycopg 3 driver). ``?schema=NAME`` keeps the tables in that PostgreSQL schema.

Importing this package does not import SQLAlchemy: the driver is loaded only by :func:`open_state`.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..errors import StateError
from .base import (
    STATE_FORMAT_VERSION,
    LockInfo,
    ResourceOutcome,
    RunRecord,
    StateMeta,
    StateStore,
)

__all__ = [
    "STATE_FORMAT_VERSION",
    "StateMeta",
    "LockInfo",
    "RunRecord",
    "ResourceOutcome",
    "StateStore",
    "open_state",
    "mask_url",
]

_POSTGRES_SCHEMES = ("postgresql", "postgres")


def mask_url(url: str) -> str:
    """The URL with any password replaced by ``***`` (safe to print)."""
    return re.sub(r"^([\w+.-]+://[^/@:]*):[^/@]*@", r"\1:***@", url)


def open_state(url: str, *, project_dir: Path | None = None) -> StateStore:
    """Open the state store at ``url``. Raises StateError for an unsupported or malformed URL."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise StateError(f"state URL {mask_url(url)!r} has no scheme",
                         hint="use sqlite:///.ml/state.db or postgresql://user@host/db")
    base = scheme.split("+", 1)[0].lower()
    if base == "sqlite":
        normalised = _sqlite_url(scheme, rest, project_dir)
    elif base in _POSTGRES_SCHEMES:
        normalised = f"postgresql+psycopg://{rest}"
    else:
        raise StateError(f"unsupported state URL scheme {scheme!r} in {mask_url(url)!r}",
                         hint="use sqlite:///path/to/state.db or postgresql://user@host/db")
    from .sql import SqlStateStore  # lazy: SQLAlchemy is only needed once a store is opened

    return SqlStateStore(normalised)


def _sqlite_url(scheme: str, rest: str, project_dir: Path | None) -> str:
    if scheme.lower() != "sqlite":
        raise StateError(f"unsupported SQLite driver {scheme!r}; use sqlite:///path/to/state.db")
    if not rest.startswith("/") or rest == "/":
        raise StateError(f"SQLite state URL 'sqlite://{rest}' needs a path: sqlite:///path/to/state.db")
    raw, _, query = rest[1:].partition("?")
    if query:
        raise StateError(f"SQLite state URL 'sqlite://{rest}' takes no query parameters")
    if raw == ":memory:":
        return "sqlite:///:memory:"
    path = Path(raw).expanduser()
    if not path.is_absolute():
        path = (project_dir or Path.cwd()) / path
    path = path.resolve()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StateError(f"cannot create the folder for the state database {path}: {exc}") from exc
    return f"sqlite:///{path}"
