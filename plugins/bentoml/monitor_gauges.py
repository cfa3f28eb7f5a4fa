"""The monitors' drift and performance gauges on the service's own ``/metrics``.

A scrape of ``GET /metrics`` gets BentoML's exposition (request counts, latencies, ours) followed by the
gauges of the monitors that watch this deployment (the ``monitor_gauges`` service of the monitoring plugin), so
one Prometheus target shows a deployment's traffic and its drift side by side. The gauges come from the
state database, read off the event loop and kept for ``ttl_s`` (scrapes every few seconds cost one read
per ``ttl_s``). Monitoring not set up, or its tables unreadable: BentoML's part alone, never an error.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Mapping

__all__ = ["MonitorGauges", "append_gauges"]

logger = logging.getLogger("ml.serving")
_EOF = b"# EOF\n"  # OpenMetrics ends its exposition here: our lines go before it


class MonitorGauges:
    def __init__(self, config: Mapping[str, Any], *, ttl_s: float = 5.0):
        self.project_dir = config.get("project_dir")
        self.deployment = config.get("deployment")
        self.ttl_s = ttl_s
        self._text = b""
        self._at = float("-inf")
        self._lock = asyncio.Lock()

    def _read(self) -> bytes:
        try:
            from .runtime import project_services

            services = project_services({"project_dir": self.project_dir})
            if "monitor_gauges" not in services.names():  # no monitoring plugin: BentoML's metrics alone
                return b""
            return services.get("monitor_gauges").metrics_text(deployment=self.deployment).encode()
        except Exception:  # a scrape never fails because monitoring does
            logger.exception("ml: monitor gauges unavailable")
            return b""

    async def text(self) -> bytes:
        if not self.project_dir:
            return b""
        async with self._lock:
            if time.monotonic() - self._at >= self.ttl_s:
                self._text = await asyncio.to_thread(self._read)
                self._at = time.monotonic()
            return self._text


def append_gauges(body: bytes, gauges: bytes) -> bytes:
    if not gauges:
        return body
    if body.endswith(_EOF):
        return body[: -len(_EOF)] + gauges + _EOF
    return body + (b"" if not body or body.endswith(b"\n") else b"\n") + gauges
