"""The models page of `ml ui` (``ui.page.models``): every model's versions with metrics, gates, aliases and
lineage, read from the registry."""

from __future__ import annotations

from typing import Mapping

from ml_framework.web import Markup, badge, code_block, definition_list, esc, link, section, table

__all__ = ["ModelsPage", "models_page"]

_STATUS_TONES = {"production": "good", "candidate": "info", "rejected": "bad", "deleted": "dim", "archived": "dim"}


def _gates(version) -> Markup:
    if not version.gates:
        return esc("–")
    tones = {"passed": "good", "failed": "bad", "skipped": "dim", "inconclusive": "bad"}
    return Markup("".join(str(badge(f"{g.get('gate')}: {g.get('status')}", tones.get(str(g.get("status")), "dim")))
                          for g in version.gates))


def _metrics(version) -> str:
    return ", ".join(f"{k} {v:.4g}" if isinstance(v, (int, float)) else f"{k} {v}" for k, v in (version.metrics or {}).items())


class ModelsPage:
    title = "Models"

    def __init__(self, registry, state=None):
        self.registry = registry
        self.state = state

    def render(self, path: str, query: Mapping[str, str]) -> str:
        name = path.strip("/")
        parts = name.split("/")
        if len(parts) == 3 and parts[2] == "card":  # /models/fraud/v2/card: the version's model card
            return self._card(parts[0], parts[1])
        return self._model(name) if name else self._all()

    def _card(self, model: str, label: str) -> str:
        from .card import card_data, render_html

        version = self.registry.get(model, label) if label.lstrip("v").isdigit() else None
        if version is None:
            raise LookupError(f"{model}:{label}")
        return render_html(card_data(version, self.registry.events(model, limit=200), monitors=self.monitors(model)))

    def monitors(self, model: str) -> list[str]:
        return monitors_of(self.state, model) if self.state is not None else []

    def _all(self) -> str:
        parts = []
        for model in self.registry.models():
            versions = self.registry.versions(model)
            rows = [(link(f"/models/{model}#v{v.version}", v.label), badge(v.status, _STATUS_TONES.get(v.status, "dim")),
                     ", ".join(v.aliases) or "–", _metrics(v) or "–", _gates(v), v.backend, v.created[:19].replace("T", " "))
                    for v in sorted(versions, key=lambda v: -v.version)]
            parts.append(section(f"{model}", table(["version", "status", "aliases", "metrics", "gates", "backend",
                                                    "created (UTC)"], rows), Markup(f"<p>{link(f'/models/{model}', 'lineage and history')}</p>"),
                                 anchor=model))
        return "".join(parts) or str(section("No models yet", esc("Apply a Model spec with `ml apply`.")))

    def _model(self, model: str) -> str:
        versions = self.registry.versions(model)
        if not versions:
            raise LookupError(model)
        parts = [f"<p>{link('/models', '← all models')}</p>"]
        events = self.registry.events(model, limit=50)
        parts.append(str(section("Aliases moved", table(["at (UTC)", "alias", "from", "to", "who", "why"], [
            (e.at[:19].replace("T", " "), e.alias, f"v{e.from_version}" if e.from_version else "–",
             f"v{e.to_version}" if e.to_version else "–", e.who, e.reason) for e in events]))))
        for v in sorted(versions, key=lambda v: -v.version):
            lineage = dict(v.lineage or {})
            facts = definition_list([
                ("status", badge(v.status, _STATUS_TONES.get(v.status, "dim"))), ("aliases", ", ".join(v.aliases) or "–"),
                ("metrics", _metrics(v) or "–"), ("gates", _gates(v)), ("model store tag", v.bentoml_tag),
                ("rows", ", ".join(f"{k} {n}" for k, n in (lineage.get("rows") or {}).items()) or "–"),
                ("features", ", ".join(lineage.get("feature_refs") or []) or "–"),
                ("data", ", ".join(f"{f} ({h[:8]})" for f, h in ((lineage.get("data") or {}).get("files") or {}).items()) or "–"),
                ("git", lineage.get("git") or "–"), ("trained in", f"{lineage.get('apply_seconds', '–')} s")])
            facts = Markup(str(facts) + f"<p>{link(f'/models/{model}/{v.label}/card', 'model card')}</p>")
            parts.append(str(section(f"{model} {v.label}", facts,
                                     Markup("<details><summary>Full lineage</summary>" + str(code_block(lineage)) + "</details>"),
                                     anchor=f"v{v.version}")))
        return "".join(parts)


def monitors_of(store, model: str) -> list[str]:
    """The monitors (addresses) watching deployments of ``model``, from the state ``store``."""
    import re

    records = store.list_resources()
    deployments = {r.address.split(".", 1)[1] for r in records if r.kind == "Deployment"
                   and re.split(r"[@:]", str(r.spec.get("model") or ""))[0] == model}
    return sorted(r.address for r in records if r.kind == "Monitor" and r.spec.get("deployment") in deployments)


def models_page(services) -> ModelsPage:
    return ModelsPage(services.get("model_registry"), getattr(services, "state", None))
