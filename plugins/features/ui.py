"""The features page of `ml ui` (``ui.page.features``): every feature view with its entities, source,
ttl and features (their dtypes and data contracts), aggregations with their windows, and on-demand
views with their expressions — from recorded state, what serves now."""

from __future__ import annotations

from typing import Mapping

from ml_framework.web import Markup, badge, esc, link, section, table

__all__ = ["FeaturesPage", "features_page"]


def _checks(spec: Mapping) -> str:
    checks = spec.get("checks") or {}
    return ", ".join(f"{k} {v}" for k, v in checks.items() if v not in (None, False)) or "–"


class FeaturesPage:
    title = "Features"

    def __init__(self, services):
        self.services = services

    def render(self, path: str, query: Mapping[str, str]) -> str:
        if path.strip("/"):
            raise LookupError(path)
        records = sorted(self.services.state.list_resources(), key=lambda r: r.address)
        parts = []
        for record in records:
            spec = dict(record.spec or {})
            if record.kind == "FeatureView":
                parts.append(str(self._view(record, spec)))
            elif record.kind == "OnDemandFeatureView":
                parts.append(str(self._on_demand(record, spec)))
        return "".join(parts) or str(section("No features yet", esc("Apply feature specs with `ml apply`.")))

    @staticmethod
    def _view(record, spec) -> Markup:
        outputs = dict(record.outputs or {})
        source = spec.get("source")
        facts = (f"<p>entities {esc(', '.join(spec.get('entities') or []))} · source "
                 f"{esc(source if isinstance(source, str) else (source or {}).get('path'))} · ttl {esc(spec.get('ttl'))}"
                 f" · {esc(outputs.get('rows', '–'))} rows · online {'yes' if spec.get('online', True) else 'no'}"
                 f" · {link('/resource/' + record.address, 'recorded state')}</p>")
        aggregations = spec.get("aggregations") or {}
        if aggregations:
            rows = [(name, badge(a.get("function"), "info"), a.get("column") or "(events)", a.get("window"),
                     (spec.get("features") or {}).get(name, {}).get("dtype"), _checks(a))
                    for name, a in aggregations.items()]
            body = table(["feature", "aggregation", "of", "window", "dtype", "contract"], rows)
            note = (f"<p class='muted'>{esc(outputs.get('aggregated_rows', '–'))} aggregated rows from "
                    f"{esc(outputs.get('aggregated_from', '–'))}, up to {esc(outputs.get('aggregated_until', '–'))}; "
                    f"{esc(outputs.get('aggregated_recomputed', '–'))} computed by the last apply</p>")
            return section(f"{record.address} (windowed aggregations)", Markup(facts), body, Markup(note))
        rows = [(name, f.get("dtype"), f.get("description") or "–", _checks(f))
                for name, f in (spec.get("features") or {}).items()]
        return section(record.address, Markup(facts), table(["feature", "dtype", "description", "contract"], rows))

    @staticmethod
    def _on_demand(record, spec) -> Markup:
        request = ", ".join(f"{n} ({t})" for n, t in (spec.get("request") or {}).items()) or "–"
        facts = (f"<p>reads {esc(', '.join(spec.get('views') or []) or '–')} · request fields {esc(request)} · "
                 f"{link('/resource/' + record.address, 'recorded state')}</p>")
        rows = [(name, Markup(f"<code>{esc(f.get('expr'))}</code>"), f.get("dtype"),
                 "null" if f.get("fill") is None else f.get("fill"))
                for name, f in (spec.get("features") or {}).items()]
        return section(f"{record.address} (computed per request)", Markup(facts),
                       table(["feature", "expression", "dtype", "a null result becomes"], rows))


def features_page(services) -> FeaturesPage:
    return FeaturesPage(services)
