"""Request guards of a deployment's service, checked on headers before a body is read: API keys (401)
and the rate limit (429). The payload size limit (413) is the gateway's (plugins/bentoml/gateway.py)."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from pathlib import Path
from typing import Any, Mapping

__all__ = ["ApiKeys", "RateLimiter"]


class ApiKeys:
    """SHA-256 digests of the accepted keys, from an environment variable and/or a file (re-read when it
    changes, so keys rotate without a restart)."""

    def __init__(self, spec: Mapping[str, Any]):
        self.env = spec.get("env")
        self.file = Path(spec["file"]) if spec.get("file") else None
        self.header = str(spec.get("header") or "x-api-key").lower().encode()
        self._file_mtime: int | None = None
        self._file_keys: set[bytes] = set()
        self._env_keys = self._digests((os.environ.get(self.env) or "").split(",")) if self.env else set()
        self.reload_file()

    @staticmethod
    def _digests(keys) -> set[bytes]:
        return {hashlib.sha256(k.strip().encode()).digest() for k in keys if k.strip()}

    def reload_file(self) -> None:
        if self.file is None:
            return
        try:
            mtime = self.file.stat().st_mtime_ns
        except OSError:
            self._file_keys, self._file_mtime = set(), None
            return
        if mtime != self._file_mtime:
            lines = self.file.read_text(encoding="utf-8").splitlines()
            self._file_keys = self._digests(line for line in lines if not line.lstrip().startswith("#"))
            self._file_mtime = mtime

    @property
    def count(self) -> int:
        return len(self._env_keys | self._file_keys)

    def check(self, headers: Mapping[bytes, bytes]) -> bytes | None:
        """The digest of the presented key if it is valid (it also keys per-key rate limits), else None."""
        value = headers.get(self.header)
        if value is None:
            auth = headers.get(b"authorization", b"")
            if auth[:7].lower() == b"bearer ":
                value = auth[7:]
        if not value:
            return None
        digest = hashlib.sha256(value.strip()).digest()
        return digest if digest in self._env_keys or digest in self._file_keys else None


class RateLimiter:
    """Token buckets: ``rate`` tokens per second up to ``burst``, per key. Per worker: the spec's rate is
    divided between the workers (each holds its own buckets)."""

    def __init__(self, spec: Mapping[str, Any], workers: int):
        workers = max(1, int(workers))
        self.rate = float(spec["requests_per_second"]) / workers
        burst = spec.get("burst") or max(1.0, float(spec["requests_per_second"]))
        self.burst = max(1.0, float(burst) / workers)
        self.per = spec.get("per") or "global"
        self._buckets: dict[Any, list[float]] = {}
        self._lock = threading.Lock()

    def allow(self, key: Any) -> float:
        """0 if allowed (a token is taken), else the seconds until the next token."""
        now = time.monotonic()
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                if len(self._buckets) > 100_000:  # bounded: forget idle clients
                    self._buckets.clear()
                bucket = self._buckets[key] = [self.burst, now]
            tokens = min(self.burst, bucket[0] + (now - bucket[1]) * self.rate)
            bucket[1] = now
            if tokens >= 1.0:
                bucket[0] = tokens - 1.0
                return 0.0
            bucket[0] = tokens
            return (1.0 - tokens) / self.rate
