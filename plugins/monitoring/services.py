"""What the monitoring plugin offers other plugins (seams), by service name:

* ``monitor_gauges``: ``metrics_text(deployment=...)``, the Prometheus lines of the monitors watching a
  deployment — what a serving backend appends to its own ``/metrics``.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["MonitorGaugesService", "monitor_gauges"]


class MonitorGaugesService:
    def __init__(self, project_dir: Path):
        self.project_dir = Path(project_dir)

    def metrics_text(self, *, deployment: str | None = None) -> str:
        """Empty when nothing ran yet or the store is unreadable: a scrape never fails because of monitoring."""
        from .gauges import metrics_text

        return metrics_text(self.project_dir, deployment=deployment)


def monitor_gauges(services) -> MonitorGaugesService:
    return MonitorGaugesService(Path(services.project_dir))
