"""Hold the state lock for the length of a run, renewing the lease, releasing it on any exit."""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Callable, Iterator

from .state.base import LockInfo

__all__ = ["held_lock", "LEASE_SECONDS"]

LEASE_SECONDS = 120.0  # an abandoned lease (killed process) expires after this and can be taken over


@contextmanager
def held_lock(store, operation: str, *, ttl_seconds: float = LEASE_SECONDS,
              notice: Callable[[str], None] | None = None) -> Iterator[LockInfo]:
    """``notice(message)`` is told when the lock was taken over from a run that is gone (killed) or whose
    lease expired."""
    store.taken_over = None
    lock = store.acquire_lock(operation, ttl_seconds=ttl_seconds)
    previous = getattr(store, "taken_over", None)
    if previous is not None and notice is not None:
        holder, why = previous
        notice(f"took over the state lock of {holder.who} ({holder.operation!r} since {holder.created}): {why}; "
               "what it recorded is kept and this run goes on from there")
    stop = threading.Event()

    def renew() -> None:
        while not stop.wait(ttl_seconds / 3):
            try:
                store.renew_lock(lock.id, ttl_seconds=ttl_seconds)
            except Exception:  # a failed renewal surfaces at the next write, which checks the lock
                return

    thread = threading.Thread(target=renew, name="ml-lock-renewal", daemon=True)
    thread.start()
    try:
        yield lock
    finally:
        stop.set()
        store.release_lock(lock.id)
