"""Rollout analysis data from the prediction log: what stable and candidate answered under one control
generation, read incrementally (a cursor per segment file) so each check reads only what is new.

Every worker writes its own segment files (framework/prediction_log.py); each record names the control
``generation`` it was answered under and its ``variant`` (stable | candidate | shadow). Shadow records
carry ``stable_prediction``, the answer users got for the same request: the agreement pairs.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from ml_framework.plugins.serving.prediction_log import log_dir
from ml_framework.plugins.serving.rollout import Sample

__all__ = ["LogCursor"]


def _epoch(ts: Any) -> float:
    try:
        return datetime.fromisoformat(str(ts)).timestamp()
    except ValueError:
        return 0.0


class LogCursor:
    """Tails a deployment's prediction log, keeping the records of the generations asked for."""

    def __init__(self, project_dir: Path, deployment: str, *, started_after: float = 0.0):
        self.directory = log_dir(project_dir, deployment)
        self.offsets: dict[str, int] = {}
        self.started_after = started_after  # segments last written before this are skipped
        self.records: dict[int, list[tuple]] = {}  # generation -> (ts, variant, status, latency, prediction, stable)

    def _read_new(self) -> None:
        if not self.directory.is_dir():
            return
        for path in self.directory.glob("*.jsonl"):
            try:
                stat = path.stat()
            except OSError:
                continue
            key = path.name
            offset = self.offsets.get(key, 0)
            if stat.st_size <= offset:
                continue
            if key not in self.offsets and stat.st_mtime < self.started_after:
                self.offsets[key] = stat.st_size  # nothing of ours in it
                continue
            with open(path, "rb") as fh:
                fh.seek(offset)
                data = fh.read()
            end = data.rfind(b"\n")
            if end < 0:
                continue  # a record being written: read it next time
            self.offsets[key] = offset + end + 1
            for line in data[: end + 1].splitlines():
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                generation = record.get("generation")
                if not isinstance(generation, int):
                    continue
                self.records.setdefault(generation, []).append((
                    _epoch(record.get("ts")), record.get("variant"), int(record.get("status") or 0),
                    record.get("latency_ms"), record.get("prediction"), record.get("stable_prediction"),
                    record.get("cpu_ms")))

    def collect(self, generation: int, since: float, *, mirrored: bool) -> tuple[Sample, Sample, list | None]:
        """(stable, candidate, pairs) of requests answered under `generation` at or after `since`."""
        self._read_new()
        stable, candidate = Sample(), Sample()
        pairs: list[tuple[float, float]] | None = [] if mirrored else None
        for ts, variant, status, latency, prediction, stable_prediction, cpu in self.records.get(generation, ()):
            if ts < since or variant is None:
                continue  # rejected before routing (4xx): no variant to blame
            if variant == "stable":
                if status < 500 and status >= 400:
                    continue
                stable.add(status=status, latency_ms=latency, prediction=prediction, cpu_ms=cpu)
            elif variant == ("shadow" if mirrored else "candidate"):
                candidate.add(status=status, latency_ms=latency, prediction=prediction, cpu_ms=cpu)
                if mirrored and status < 400:
                    a, b = _pair_value(stable_prediction), _pair_value(prediction)
                    if a is not None and b is not None:
                        pairs.append((a, b))
        return stable, candidate, pairs


def _pair_value(value: Any) -> Any:
    """A prediction for an agreement pair: a number, or a probability vector kept whole (multiclass)."""
    if isinstance(value, list) and value:
        try:
            return [float(v) for v in value]
        except (TypeError, ValueError):
            return None
    return _num(value)


def _num(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, list) and value:
        try:
            values = [float(v) for v in value]
        except (TypeError, ValueError):
            return None
        return float(max(range(len(values)), key=values.__getitem__))
    return None
