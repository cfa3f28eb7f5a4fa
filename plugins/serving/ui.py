"""The deployments page of `ml ui` (``ui.page.deployments``): what serves each deployment now — process
health, versions, traffic of a rollout in progress — and its revisions, asked of its backend live."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

from ml_framework.web import Markup, badge, definition_list, esc, link, section, table

__all__ = ["DeploymentsPage", "deployments_page"]


class DeploymentsPage:
    title = "Deployments"

    def __init__(self, services):
        self.services = services

    def render(self, path: str, query: Mapping[str, str]) -> str:
        if path.strip("/"):
            raise LookupError(path)
        records = sorted((r for r in self.services.state.list_resources() if r.kind == "Deployment"),
                         key=lambda r: r.address)
        parts = []
        for record in records:
            info = self._status(record)
            if info.get("ready"):
                health = badge("healthy", "good")
            elif info.get("running"):
                health = badge("running, not ready", "warn")
            else:
                health = badge("not running", "bad")
            traffic = "–"
            if info.get("candidate"):
                share = ("mirrored traffic" if info.get("mode") == "mirror"
                         else f"{float(info.get('weight') or 0):g}% of traffic")
                traffic = f"{info['candidate']} on {share} ({info.get('step') or info.get('mode')})"
            spec = dict(record.spec or {})
            facts = definition_list([
                ("health", health), ("url", info.get("url") or "–"), ("pid", info.get("pid") or "–"),
                ("serving", f"{info.get('stable') or '–'} (revision {info.get('revision') or '–'})"),
                ("rollout", traffic), ("model", spec.get("model")),
                ("strategy", (spec.get("rollout") or {}).get("strategy") or "recreate"),
                ("auth", "API keys" if spec.get("auth") else "none"),
                ("rate limit", f"{(spec.get('rate_limit') or {}).get('requests_per_second')} req/s"
                 if spec.get("rate_limit") else "none"),
                ("error", info.get("error") or "–")])
            revisions = (record.outputs or {}).get("revisions") or []
            rows = [(r.get("revision"), r.get("version"), (r.get("at") or "")[:19].replace("T", " "), r.get("strategy") or "–",
                     r.get("outcome") or "–", r.get("detail") or "–") for r in reversed(revisions[-20:])]
            parts.append(str(section(record.address, facts,
                                     Markup("<h3>Revisions</h3>" + str(table(
                                         ["revision", "version", "at (UTC)", "strategy", "outcome", "detail"], rows))),
                                     Markup(f"<p>{link('/resource/' + record.address, 'recorded state')}</p>"),
                                     anchor=record.address)))
        return "".join(parts) or str(section("No deployments yet", esc("Apply a Deployment spec with `ml apply`.")))

    def _status(self, record) -> dict:
        registry = self.services.registry
        try:
            if registry.capable(record.backend, "status"):
                return dict(registry.get(record.backend).status(record, Path(self.services.project_dir)))
            return {"running": None, "ready": None, "url": (record.outputs or {}).get("url")}
        except Exception as exc:  # noqa: BLE001 - one broken backend does not hide the others
            return {"running": False, "ready": False, "error": f"{type(exc).__name__}: {exc}"}


def deployments_page(services) -> DeploymentsPage:
    return DeploymentsPage(services)
