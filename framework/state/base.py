"""The state store protocol: what `ml` remembers between runs.

State holds one record per applied resource, a ``lineage`` (a UUID fixed when the state is created)
and a ``serial`` that increases with every write. Every write happens in its own transaction, under
a lease lock, so a crash loses nothing that was already recorded. Runs (apply, destroy, rollback,
state rm) are kept in a history with their per-resource outcomes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Protocol

from ..contract import RecordedResource

__all__ = [
    "STATE_FORMAT_VERSION",
    "StateMeta",
    "LockInfo",
    "RunRecord",
    "ResourceOutcome",
    "StateStore",
]

# Bump when the stored layout changes; a store written by a newer format is refused, never rewritten.
STATE_FORMAT_VERSION = 1


@dataclass(frozen=True)
class StateMeta:
    lineage: str
    serial: int
    format_version: int


@dataclass(frozen=True)
class LockInfo:
    id: str
    operation: str  # "apply", "destroy", "state rm", ...
    who: str  # user@host (pid N)
    version: str  # ml version of the holder
    created: str  # ISO 8601 UTC
    expires: str  # ISO 8601 UTC; an expired lease may be taken over


@dataclass(frozen=True)
class ResourceOutcome:
    address: str
    action: str  # create | update | replace | delete | no-op
    outcome: str  # succeeded | failed | skipped
    error: str | None = None
    duration_s: float | None = None


@dataclass(frozen=True)
class RunRecord:
    id: str
    operation: str
    who: str
    started: str
    finished: str | None
    status: str  # running | succeeded | failed | interrupted
    plan_id: str | None
    serial_before: int
    outcomes: tuple[ResourceOutcome, ...] = field(default_factory=tuple)
    details: Mapping[str, Any] = field(default_factory=dict)


class StateStore(Protocol):
    """Implemented by :class:`ml_framework.state.sql.SqlStateStore` for SQLite and PostgreSQL."""

    url: str

    # -- reading (no lock needed) -------------------------------------------------------------------
    def meta(self) -> StateMeta:
        """Lineage and serial. Creates an empty state on first use. Raises StateError if unreadable
        or written by a newer format."""

    def list_resources(self) -> list[RecordedResource]: ...

    def get(self, address: str) -> RecordedResource | None: ...

    # -- writing (caller must hold the lock; each call is one transaction that bumps the serial) -----
    def put(self, record: RecordedResource, *, lock_id: str) -> int:
        """Insert or replace one record; returns the new serial."""

    def remove(self, address: str, *, lock_id: str) -> int:
        """Delete one record (no error if absent); returns the new serial."""

    # -- locking ------------------------------------------------------------------------------------
    def acquire_lock(self, operation: str, *, ttl_seconds: float = 120.0) -> LockInfo:
        """Take the lease lock or raise LockedError naming the holder. Takes over an expired lease."""

    def renew_lock(self, lock_id: str, *, ttl_seconds: float = 120.0) -> None: ...

    def release_lock(self, lock_id: str) -> None:
        """Release our lock (no error if it is already gone)."""

    def current_lock(self) -> LockInfo | None: ...

    def force_unlock(self, lock_id: str) -> LockInfo:
        """Remove the lock with this id; StateError if no lock or another id holds it."""

    # -- history ------------------------------------------------------------------------------------
    def begin_run(self, operation: str, *, plan_id: str | None, lock_id: str,
                  details: Mapping[str, Any] | None = None) -> str: ...

    def record_outcome(self, run_id: str, outcome: ResourceOutcome) -> None: ...

    def finish_run(self, run_id: str, status: str) -> None: ...

    def history(self, *, limit: int = 20, address: str | None = None) -> list[RunRecord]: ...

    def close(self) -> None: ...
