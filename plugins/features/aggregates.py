"""Windowed aggregations of a feature view (``aggregations:``), computed at apply from its event source.

For each event of an entity, each aggregation over the events of that entity in the window ending at
the event's time — ``(t - window, t]`` — so a value never sees a later event (point-in-time correct by
construction). The result is a file of one row per (entity, event time) that the feature store serves
and joins like any feature view's data: the value as of a time T is the row of the newest event at or
before T. Between events a value stays as the last event left it (it does not decay as events age out
of the window); the view's ttl bounds how long it is served.

Refreshed incrementally: when the source gains events newer than those already aggregated, only the
rows from ``max(new event) - longest window`` on are recomputed and the earlier rows are kept.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

__all__ = ["AGGREGATES_DIR", "output_path", "aggregate", "refresh", "events_digest", "FUNCTIONS"]

AGGREGATES_DIR = ".ml/features/aggregates"  # project-relative: one parquet file per aggregated view
FUNCTIONS = ("sum", "mean", "count", "min", "max", "last")


def output_path(view: str) -> str:
    """Where the aggregated rows of ``view`` are written (relative to the project directory)."""
    return f"{AGGREGATES_DIR}/{view}.parquet"


def _window(text: str):
    import pandas as pd

    from ml_framework.spec.kinds import parse_duration

    return pd.Timedelta(seconds=parse_duration(text))


def aggregate(events, keys: Sequence[str], timestamp: str, aggregations: Mapping[str, Mapping[str, Any]]):
    """One row per (entity keys, event time) with each aggregation over ``(t - window, t]``. ``aggregations``:
    name -> {"column", "function", "window"}. Events sharing a time are all inside each other's window.

    sum, count and mean are differences of per-entity running sums, found by one binary search per row
    (vectorized); min and max use pandas' rolling windows per entity; last carries the newest value."""
    import numpy as np
    import pandas as pd

    keys = list(keys)
    columns = sorted({a["column"] for a in aggregations.values() if a.get("column")})
    frame = events[keys + [timestamp] + [c for c in columns if c not in keys]].copy()
    frame[timestamp] = pd.to_datetime(frame[timestamp], utc=True)
    frame = frame.dropna(subset=[timestamp]).sort_values(keys + [timestamp], kind="mergesort").reset_index(drop=True)
    out = frame[keys + [timestamp]].copy()
    if frame.empty:
        for name in aggregations:
            out[name] = pd.Series(dtype="float64")
        return out
    group = frame.groupby(keys, sort=False).ngroup().to_numpy(dtype="int64")
    times = frame[timestamp].to_numpy(dtype="datetime64[ns]").astype("int64")
    bounds = np.flatnonzero(np.diff(group)) + 1  # rows are sorted by entity, then time
    starts, ends = np.concatenate([[0], bounds]), np.concatenate([bounds, [len(group)]])

    def search(offset_ns: int) -> "np.ndarray":
        """For each row, the first row of its entity whose time is after (its time - offset)."""
        found = np.empty(len(times), dtype="int64")
        for start, end in zip(starts, ends):
            part = times[start:end]
            found[start:end] = np.searchsorted(part, part - offset_ns, side="right") + start
        return found

    last_at = search(0) - 1  # the last row of the same (entity, time): all of a time's events count
    for name, spec in aggregations.items():
        function, column, window = spec["function"], spec.get("column"), _window(spec["window"])
        if function == "last":
            out[name] = _last_within(frame, keys, timestamp, column, window)
            continue
        if function in ("min", "max"):
            values = pd.to_numeric(frame[column], errors="coerce").astype("float64")
            series = pd.Series(values.to_numpy(), index=frame[timestamp])
            parts = series.groupby(group).rolling(window, closed="right")
            result = (parts.min() if function == "min" else parts.max()).to_numpy()
            out[name] = result[last_at]
            continue
        first = search(int(window.value))  # the first row inside the window
        if column:
            raw = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype="float64")
        else:
            raw = np.ones(len(frame))
        present = ~np.isnan(raw)
        sums = np.concatenate([[0.0], np.cumsum(np.where(present, raw, 0.0))])
        counts = np.concatenate([[0.0], np.cumsum(present.astype("float64"))])
        end = last_at + 1
        total, number = sums[end] - sums[first], counts[end] - counts[first]
        if function == "sum":
            out[name] = np.where(number > 0, total, np.nan)
        elif function == "count":
            out[name] = number
        else:
            with np.errstate(invalid="ignore", divide="ignore"):
                out[name] = np.where(number > 0, total / np.where(number > 0, number, 1.0), np.nan)
    # several events at one time: one row for that time (its values already see all of them)
    return out.groupby(keys + [timestamp], sort=False, as_index=False).last()


def _last_within(frame, keys, timestamp, column, window):
    """The newest non-null value of ``column`` within the window (None when none is)."""
    import pandas as pd

    values = frame[column]
    seen = frame[timestamp].where(values.notna())
    last_value = values.groupby([frame[k] for k in keys]).ffill()
    last_time = seen.groupby([frame[k] for k in keys]).ffill()
    fresh = (frame[timestamp] - last_time) < window
    return last_value.where(fresh & last_time.notna(), other=pd.NA if values.dtype == object else None).to_numpy()


def refresh(events, previous, keys: Sequence[str], timestamp: str, aggregations: Mapping[str, Mapping[str, Any]]):
    """The aggregated rows for ``events`` reusing ``previous`` (the rows computed before) where the events
    before ``cutoff`` are unchanged: (rows, how many were recomputed). Only appended events qualify: when
    ``events`` holds anything at or before the previous newest time that ``previous`` did not see, the
    caller recomputes everything."""
    import pandas as pd

    if previous is None or previous.empty:
        rows = aggregate(events, keys, timestamp, aggregations)
        return rows, len(rows)
    times = pd.to_datetime(events[timestamp], utc=True)
    newest_before = pd.to_datetime(previous[timestamp], utc=True).max()
    longest = max(_window(a["window"]) for a in aggregations.values())
    cutoff = newest_before - longest  # events the new rows' windows may still reach
    recent = events[times > cutoff]
    fresh = aggregate(recent, keys, timestamp, aggregations)
    fresh = fresh[pd.to_datetime(fresh[timestamp], utc=True) > newest_before]
    if fresh.empty:
        return previous, 0
    rows = pd.concat([previous, fresh.astype(previous.dtypes.to_dict(), errors="ignore")], ignore_index=True)
    return rows, len(fresh)


def events_digest(events, timestamp: str, until) -> str:
    """A digest of the events at or before ``until`` (every column read): equal digests mean nothing
    before ``until`` changed, so only newer events need aggregating."""
    import hashlib

    import pandas as pd

    times = pd.to_datetime(events[timestamp], utc=True).astype("datetime64[ns, UTC]")
    part = events[times <= pd.Timestamp(until)].copy()
    part[timestamp] = times[times <= pd.Timestamp(until)]  # one resolution whatever the file stored
    part = part[sorted(part.columns)].sort_values(sorted(part.columns), kind="mergesort").reset_index(drop=True)
    hashed = pd.util.hash_pandas_object(part, index=False).to_numpy()
    return hashlib.sha256(hashed.tobytes()).hexdigest()[:32]


def read_events(path: Path, fmt: str, columns: Sequence[str]):
    import pyarrow.parquet as pq

    if fmt == "csv":
        import pandas as pd

        return pd.read_csv(path, usecols=list(columns))
    return pq.read_table(path, columns=list(columns)).to_pandas()
