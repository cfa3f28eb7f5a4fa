"""The monitors page of `ml ui` (``ui.page.monitors``): each monitor's latest verdict, and under
``/monitors/NAME`` its full report (the same page as `ml monitor report`: drift and performance plots)."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

from ml_framework.web import badge, esc, link, section, table

__all__ = ["MonitorsPage", "monitors_page"]

_TONES = {"ok": "good", "drift": "bad", "decay": "bad", "error": "bad", "inconclusive": "warn"}


class MonitorsPage:
    title = "Monitors"

    def __init__(self, services):
        self.services = services

    def _store(self):
        from .store import MonitorStore

        return MonitorStore.for_store(self.services.state)

    def render(self, path: str, query: Mapping[str, str]) -> str:
        from .runner import recorded_monitors

        recorded = recorded_monitors(self.services.state)
        mstore = self._store()
        name = path.strip("/")
        if name:
            if name not in recorded and name not in mstore.monitors():
                raise LookupError(name)
            from .report import build_report

            return build_report(mstore, Path(self.services.project_dir), name, recorded.get(name))
        rows = []
        for monitor in sorted(set(recorded) | set(mstore.monitors())):
            runs = mstore.runs(monitor, limit=1)
            last = runs[0] if runs else {}
            status = last.get("status")
            record = recorded.get(monitor)
            window = last.get("window") or {}
            drifted = [c.get("feature") or c.get("name") for c in last.get("checks") or [] if c.get("drift")]
            summary = last.get("error") or (f"drift in {', '.join(map(str, drifted[:6]))}" if drifted else
                                            f"{window.get('rows', 0)} rows in the window" if last else "–")
            rows.append((link(f"/monitors/{monitor}", monitor), (record.spec or {}).get("deployment") if record else "–",
                         badge(status or "not run yet", _TONES.get(str(status), "dim")),
                         str(last.get("at") or "")[:19].replace("T", " ") or "–", summary))
        body = table(["monitor", "deployment", "last verdict", "at (UTC)", "summary"], rows,
                     empty="No monitors yet: apply a Monitor spec, then `ml monitor run`.")
        return str(section("Monitors", body, esc("Open a monitor for its drift and performance plots.")))


def monitors_page(services) -> MonitorsPage:
    return MonitorsPage(services)
