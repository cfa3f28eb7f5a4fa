"""What a running deployment costs: the CPU time and memory of its whole process tree (the server and its
workers) since it started, over the requests it answered since then (its decision log), per 1,000
predictions — priced with ml.yaml's ``pricing`` (``framework.cost.DEFAULT_PRICING`` without one). Idle
time counts: a service that serves little costs more per prediction, which is what a reviewer wants to see.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

__all__ = ["service_cost"]


def service_cost(project_dir: Path, deployment: str, folder: Path, pid: int | None, pricing=None) -> dict[str, Any] | None:
    """{"answered", "cpu_seconds", "memory_mb", "uptime_s", "cpu_seconds_per_1000", "per_1000", "currency",
    "priced_by"}, or None when the service is not running."""
    import psutil

    from ml_framework.cost import running_cost

    from .process import orphan_workers

    if not pid:
        return None
    try:
        server = psutil.Process(int(pid))
        started = server.create_time()
        processes = {server.pid: server}
        for child in server.children(recursive=True):
            processes[child.pid] = child
        for worker in orphan_workers(folder, pid):
            processes.setdefault(worker, psutil.Process(worker))
        cpu = rss = 0.0
        for process in processes.values():
            try:
                times = process.cpu_times()
                cpu += times.user + times.system
                rss += process.memory_info().rss
            except psutil.Error:
                continue
    except psutil.Error:
        return None
    uptime = max(time.time() - started, 1e-3)
    since = datetime.fromtimestamp(started, tz=timezone.utc).isoformat(timespec="microseconds")
    answered = _answered_since(project_dir, deployment, since)
    memory_gb = rss / 1024 ** 3
    total = running_cost(cpu, memory_gb * uptime / 3600.0, pricing)
    from ml_framework.cost import DEFAULT_PRICING

    used = pricing or DEFAULT_PRICING
    return {"answered": answered, "cpu_seconds": round(cpu, 3), "memory_mb": round(rss / 1024 ** 2, 1),
            "uptime_s": round(uptime, 1),
            "cpu_seconds_per_1000": round(cpu / answered * 1000, 4) if answered else None,
            "per_1000": round(total / answered * 1000, 8) if answered else None, "currency": used.currency,
            "priced_by": "ml.yaml pricing" if pricing else "default prices (set pricing in ml.yaml)"}


def _answered_since(project_dir: Path, deployment: str, since: str) -> int:
    """Requests answered (2xx) since ``since``: the decision log, newest first, until older records."""
    from ml_framework.plugins.serving.prediction_log import iter_predictions

    count = older = 0
    for record in iter_predictions(project_dir, deployment):
        ts = str(record.get("ts") or "")
        if ts < since:
            older += 1
            if older > 1000:  # segments interleave across workers: stop once well past the start
                break
            continue
        if 200 <= int(record.get("status") or 0) < 300 and record.get("variant") != "shadow":
            count += 1
    return count
