"""Load one feature view into the online store through Feast's own materialization engine.

The same calls `FeatureStore.materialize` makes (provider.materialize_single_feature_view, then
registry.apply_materialization), minus its printing to stdout: progress goes to a callback instead.
Feast's private internals are reached through ml_framework.plugins.compat.feast only.

`OFFLINE_READS` serializes the local offline store's dask work within a process (materializations here,
training retrievals in training.py): dask-expr's cached properties share one lock per property on
Python < 3.12, and two dask graphs optimized in two threads at once can deadlock on them.
"""

from __future__ import annotations

import threading
from datetime import datetime
from typing import Callable

__all__ = ["materialize_view", "online_store_identity", "OFFLINE_READS"]

OFFLINE_READS = threading.Lock()


class _Progress:
    """The tqdm-like object Feast's local engine expects from `tqdm_builder`."""

    def __init__(self, total: int, report: Callable[[int, int], None] | None):
        self.total = total
        self.done = 0
        self._report = report
        self._last = -1.0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def update(self, n: int) -> None:
        self.done += n
        if self._report and self.total:
            fraction = self.done / self.total
            step = 0.25 if self.total >= 5000 else 1.0  # a few lines at most, even on a plain terminal
            if fraction - self._last >= step or self.done >= self.total:
                self._last = fraction
                self._report(self.done, self.total)


def materialize_view(store, view_name: str, start: datetime, end: datetime,
                     on_progress: Callable[[int, int], None] | None = None) -> int:
    """Materialize [start, end) of one view; returns the number of entity rows written online."""
    from feast import utils

    from ml_framework.plugins.compat.feast import fresh_duckdb_connection, materialize_single_view

    view = store.registry.get_feature_view(view_name, store.project, allow_cache=True)  # caller refreshed
    bars: list[_Progress] = []

    def builder(total: int) -> _Progress:
        bars.append(_Progress(total, on_progress))
        return bars[-1]

    start, end = utils.make_tzaware(start), utils.make_tzaware(end)
    with OFFLINE_READS, fresh_duckdb_connection(store):
        materialize_single_view(store, view, start, end, tqdm_builder=builder)
    store.registry.apply_materialization(view, store.project, start, end)
    return sum(bar.total for bar in bars)


def online_store_identity(config: dict) -> str:
    """Where online rows live, without secrets: 'sqlite:data/online_store.db', 'redis:127.0.0.1:6379/0'."""
    kind = str(config.get("type", "sqlite"))
    if kind.endswith("SqliteOnlineStore") or kind == "sqlite":
        return f"sqlite:{config.get('path', 'data/online.db')}"
    if kind.endswith("RedisOnlineStore") or kind == "redis":
        parts = str(config.get("connection_string", "localhost:6379")).split(",")
        host = parts[0].strip()
        db = next((p.split("=", 1)[1].strip() for p in parts[1:] if p.strip().startswith("db=")), "0")
        return f"redis:{host}/{db}"
    return kind


def purge_redis_view(store, view) -> int:
    """Remove a deleted view's rows from a Redis online store; returns the keys touched.

    Feast 0.49's RedisOnlineStore.delete_table scans for keys by a prefix in the version-2 entity key
    layout, which never matches keys written with entity_key_serialization_version 3: the rows stay.
    This finds them by the view's own `_ts:<view>` hash field instead.
    """
    from ml_framework.plugins.compat.feast import mmh3_hash, redis_client

    client = redis_client(store)
    ts_field = f"_ts:{view.name}".encode()
    fields = [mmh3_hash(f"{view.name}:{f.name}") for f in view.features] + [ts_field]
    touched = 0
    with client.pipeline(transaction=False) as pipe:
        for key in client.scan_iter(match=b"*" + store.project.encode(), count=1000):
            names = client.hkeys(key)
            if ts_field not in names:
                continue
            tables = {n for n in names if n.startswith(b"_ts:")}
            if tables == {ts_field}:
                pipe.delete(key)
            else:
                pipe.hdel(key, *fields)
            touched += 1
        pipe.execute()
    return touched
