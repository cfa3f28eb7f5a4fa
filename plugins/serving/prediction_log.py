"""The prediction log (the decision log): what a deployment answered, for audits, monitors, analysis and
ground-truth joins — every answered request retrievable by the request id the caller got back.

One JSON object per line, in size-capped segment files under ``<project>/.ml/predictions/<deployment>/``
(one writer per worker process, so lines never interleave). Each record is appended with a single
``write(2)`` before the answer leaves the service: a ``kill -9`` of the service loses no answered
request (the kernel keeps what was written) and cannot tear a line; a torn last line (a machine crash)
is skipped by readers. Segments older than the retention, and the oldest beyond a total size, are
dropped, so the log never grows without bound.

Record fields (all JSON): ``request_id``, ``ts`` (ISO 8601 UTC), ``deployment``, ``model``,
``model_version``, ``variant`` (stable | candidate | shadow), ``caller`` (``key:`` + the API key's
SHA-256 prefix, never the key; absent without API keys), ``entity_keys`` (object), ``features``
(object: name -> value actually used, after the online lookup), ``prediction`` (number or list),
``explanation`` (when one was computed), ``latency_ms``, ``status`` (HTTP status). Writers may add
fields; readers ignore what they do not know.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any, Iterator, Mapping

__all__ = ["PredictionLogWriter", "log_dir", "read_predictions", "iter_predictions", "SEGMENT_BYTES",
           "TOTAL_BYTES"]

SEGMENT_BYTES = 16 * 1024 * 1024
TOTAL_BYTES = 512 * 1024 * 1024


def _encode(record: Mapping[str, Any]) -> bytes:
    """One record as a JSON line: orjson (~5x the standard library, on every answered request), which writes a
    non-finite number as null; the standard library where orjson cannot (an integer beyond 64 bits...)."""
    try:
        import orjson

        return orjson.dumps(record, default=str, option=orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY
                            | orjson.OPT_APPEND_NEWLINE)
    except (ImportError, TypeError):
        return (json.dumps(record, separators=(",", ":"), default=str) + "\n").encode("utf-8")


def log_dir(project_dir: Path, deployment: str) -> Path:
    return Path(project_dir) / ".ml" / "predictions" / deployment


class PredictionLogWriter:
    """Append records from request handlers: one ``write(2)`` each (~10 µs), in the caller's thread."""

    def __init__(self, directory: Path, *, segment_bytes: int = SEGMENT_BYTES, total_bytes: int = TOTAL_BYTES,
                 retention_s: float | None = None, queue_size: int | None = None):
        del queue_size  # records are no longer queued (kept for callers of the earlier signature)
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.segment_bytes = segment_bytes
        self.total_bytes = total_bytes
        self.retention_s = retention_s
        self.dropped = 0  # records that could not be written (disk full...): counted, never raised
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._written = 0
        self._enforce_cap()

    def write(self, record: Mapping[str, Any]) -> None:
        line = _encode(record)
        with self._lock:
            try:
                if self._fd is None or self._written >= self.segment_bytes:
                    self._open_segment()
                view = memoryview(line)
                while view:  # a regular file takes the whole line in one call; loop for the rare short write
                    view = view[os.write(self._fd, view):]
                self._written += len(line)
            except OSError:
                self.dropped += 1

    def flush(self, timeout: float = 5.0) -> None:
        """Nothing is buffered here (kept for callers that wait for records to be on disk)."""

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    def _open_segment(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
        name = f"{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}-{os.getpid()}-{time.monotonic_ns() % 10**9}.jsonl"
        self._fd = os.open(self.directory / name, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._written = 0
        self._enforce_cap()

    def _enforce_cap(self) -> None:
        """Drop segments past the retention (by their last write) and the oldest beyond the total size."""
        segments = []
        for path in self.directory.glob("*.jsonl"):
            try:
                stat = path.stat()
            except OSError:
                continue
            segments.append((stat.st_mtime, path, stat.st_size))
        segments.sort()
        total = sum(size for _, _, size in segments)
        cutoff = time.time() - self.retention_s if self.retention_s else None
        for mtime, path, size in segments[:-1]:  # never the newest: it may be another worker's open segment
            if total <= self.total_bytes and (cutoff is None or mtime >= cutoff):
                break
            total -= size
            path.unlink(missing_ok=True)


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


def iter_predictions(project_dir: Path, deployment: str) -> Iterator[dict]:
    """Every record, newest first (segments by their last write; lines from the end of each)."""
    directory = log_dir(project_dir, deployment)
    if directory.is_dir():
        yield from _lines_newest_first(directory)


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
