"""The prediction log: what a deployment answered, for monitors, analysis and ground-truth joins.

One JSON object per line, in size-capped segment files under
``<project>/.ml/predictions/<deployment>/``; the oldest segments are dropped beyond a total cap, so
the log never grows without bound. Writing never blocks a response: records go through a bounded
in-memory queue to a background thread, and are counted as dropped when the queue is full.

Record fields (all JSON): ``request_id``, ``ts`` (ISO 8601 UTC), ``deployment``, ``model``,
``model_version``, ``variant`` (stable | candidate | shadow), ``entity_keys`` (object),
``features`` (object: name -> value actually used), ``prediction`` (number or list), ``latency_ms``,
``status`` (HTTP status). Writers may add fields; readers ignore what they do not know.
"""

from __future__ import annotations

import json
import os
import queue
import threading
import time
from pathlib import Path
from typing import Any, Iterator, Mapping

__all__ = ["PredictionLogWriter", "log_dir", "read_predictions", "SEGMENT_BYTES", "TOTAL_BYTES"]

SEGMENT_BYTES = 16 * 1024 * 1024
TOTAL_BYTES = 512 * 1024 * 1024


def log_dir(project_dir: Path, deployment: str) -> Path:
    return Path(project_dir) / ".ml" / "predictions" / deployment


class PredictionLogWriter:
    """Append records from request handlers without blocking them."""

    def __init__(self, directory: Path, *, segment_bytes: int = SEGMENT_BYTES, total_bytes: int = TOTAL_BYTES,
                 queue_size: int = 10_000):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.segment_bytes = segment_bytes
        self.total_bytes = total_bytes
        self.dropped = 0
        self._queue: queue.Queue = queue.Queue(maxsize=queue_size)
        self._file = None
        self._written = 0
        self._thread = threading.Thread(target=self._run, name="ml-prediction-log", daemon=True)
        self._thread.start()

    def write(self, record: Mapping[str, Any]) -> None:
        try:
            self._queue.put_nowait(dict(record))
        except queue.Full:
            self.dropped += 1

    def flush(self, timeout: float = 5.0) -> None:
        """Wait until queued records are on disk (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        while not self._queue.empty() and time.monotonic() < deadline:
            time.sleep(0.01)
        self._queue.put(_FLUSH)
        self._queue.join()

    def close(self) -> None:
        self.flush()
        self._queue.put(_STOP)
        self._thread.join(timeout=5)

    def _open_segment(self) -> None:
        if self._file is not None:
            self._file.close()
        name = f"{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}-{os.getpid()}-{time.monotonic_ns() % 10**9}.jsonl"
        self._file = open(self.directory / name, "a", encoding="utf-8")
        self._written = 0
        self._enforce_cap()

    def _enforce_cap(self) -> None:
        segments = sorted(self.directory.glob("*.jsonl"), key=lambda p: p.stat().st_mtime)
        total = sum(p.stat().st_size for p in segments)
        for path in segments[:-1]:
            if total <= self.total_bytes:
                break
            total -= path.stat().st_size
            path.unlink(missing_ok=True)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is _STOP:
                    if self._file:
                        self._file.close()
                    return
                if item is _FLUSH:
                    if self._file:
                        self._file.flush()
                    continue
                if self._file is None or self._written >= self.segment_bytes:
                    self._open_segment()
                line = json.dumps(item, separators=(",", ":"), default=str) + "\n"
                self._file.write(line)
                self._written += len(line)
                if self._queue.empty():
                    self._file.flush()
            finally:
                self._queue.task_done()


_FLUSH, _STOP = object(), object()


def _lines_newest_first(directory: Path) -> Iterator[dict]:
    for path in sorted(directory.glob("*.jsonl"), key=lambda p: (p.stat().st_mtime, p.name), reverse=True):
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except OSError:
            continue
        for line in reversed(lines):
            try:
                yield json.loads(line)
            except json.JSONDecodeError:  # a torn last line from a crash: skip it
                continue


def read_predictions(project_dir: Path, deployment: str, *, last: int | None = None,
                     since: str | None = None) -> list[dict]:
    """Records oldest first: the newest `last` ones, and/or those with ts >= `since` (ISO 8601)."""
    directory = log_dir(project_dir, deployment)
    if not directory.is_dir():
        return []
    out = []
    for record in _lines_newest_first(directory):
        if since is not None and str(record.get("ts", "")) < since:
            continue  # several workers write segments side by side: times interleave across files
        out.append(record)
        if last is not None and len(out) >= last:
            break
    out.reverse()
    return out
