"""The core's views in `ml ui`: overview (graph and resources), plan, history and one resource. Each
returns (title, HTML fragment) and reads only."""

from __future__ import annotations

from typing import Any, Mapping

from ml_framework.web import Markup, badge, code_block, definition_list, esc, link, section, table

__all__ = ["overview", "plan", "history", "resource"]

_STATUS_TONES = {"applied": "good", "in_progress": "warn", "succeeded": "good", "failed": "bad", "running": "info",
                 "interrupted": "warn"}
_ACTION_TONES = {"create": "good", "update": "warn", "replace": "bad", "delete": "bad", "no-op": "dim"}


def _load(app):
    from ml_framework.operations import load_specs

    return load_specs(app.project, app.registry, env=app.env)


def _styles(app) -> dict[str, str | None]:
    kinds = app.registry.kinds
    styles = {}
    for name in kinds.names():
        kind = kinds.get(name)
        styles[name] = kind.style
        styles[name.lower()] = kind.style
    return styles


def _headline(record) -> str:
    """The one output that says most about a resource: a model's version, a service's URL, ..."""
    outputs = dict(record.outputs or {})
    parts = []
    if outputs.get("version"):
        parts.append(str(outputs["version"]))
    stable = outputs.get("stable") or {}
    if stable.get("version"):
        parts.append(f"serving {stable['version']}")
    if outputs.get("url"):
        parts.append(str(outputs["url"]))
    if outputs.get("rows") and isinstance(outputs["rows"], (int, float)):
        parts.append(f"{outputs['rows']} rows")
    return " · ".join(parts)


def overview(app, store, query: Mapping[str, str]):
    records = {r.address: r for r in store.list_resources()}
    meta = store.meta()
    parts: list[Any] = []
    try:
        loaded = _load(app)
        nodes = [(a, n.kind, n.depends_on) for a, n in loaded.graph.nodes.items()]
        missing_specs = sorted(set(records) - set(loaded.graph.nodes))
        nodes += [(a, r.kind, r.depends_on) for a, r in records.items() if a in missing_specs]
    except Exception as exc:  # noqa: BLE001 - the specs may be broken: show what state knows, and why
        parts.append(Markup(f'<section class="error"><h2>The specs do not load</h2><pre>{esc(str(exc))}</pre>'
                            "<p>The graph below is what state recorded.</p></section>"))
        nodes = [(a, r.kind, r.depends_on) for a, r in records.items()]
    from ml_framework.graph_export import to_svg

    status = {a: r.status for a, r in records.items()}
    svg = to_svg(nodes, styles=_styles(app), status=status, link="/resource/{address}")
    legend = Markup('<p class="muted">Solid green outline: applied · dashed amber: the last apply did not finish · '
                    "dashed grey: in the specs, not applied yet. Arrows go from a dependency to what uses it.</p>")
    parts.append(section(f"Resource graph ({len(nodes)} resources)", Markup(svg), legend, anchor="graph"))
    rows = [(link(f"/resource/{r.address}", r.address), r.kind, r.backend,
             badge(r.status, _STATUS_TONES.get(r.status, "dim")), _headline(r), (r.updated_at or "")[:19].replace("T", " "))
            for r in sorted(records.values(), key=lambda r: r.address)]
    parts.append(section("Resources in state", table(["address", "kind", "backend", "status", "now", "updated (UTC)"],
                                                     rows, empty="Nothing applied yet: run `ml apply`."),
                         Markup(f'<p class="muted">state serial {meta.serial} · lineage {esc(meta.lineage)}</p>')))
    return "Overview", Markup("".join(parts))


def plan(app, store, query: Mapping[str, str]):
    from ml_framework.operations import make_plan
    from ml_framework.plan.render_text import format_duration, format_value, render_summary

    refresh = query.get("refresh") == "1"
    the_plan = make_plan(app.project, app.registry, store, _load(app), refresh=refresh)
    parts: list[Any] = []
    how = ("asked the backends what exists now" if refresh else
           Markup('from recorded state, without asking the backends — ' + str(link("/plan?refresh=1", "refresh"))))
    parts.append(Markup(f"<p><b>{esc(render_summary(the_plan))}</b></p><p class='muted'>"
                        f"{esc(how)} · plan {esc(the_plan.plan_id)} · state serial {the_plan.serial}"
                        f"{' · env ' + str(esc(the_plan.env)) if the_plan.env else ''}</p>"))
    if the_plan.errors:
        parts.append(section("Errors", table(["address", "message"], [(e.address, e.message) for e in the_plan.errors])))
    if the_plan.policy_checks:
        rows = []
        for check in the_plan.policy_checks:
            tone = "good" if check.outcome == "passed" else ("bad" if check.blocking else "warn")
            failures = "; ".join(f"{a}: {m}" for a, m in check.failures)
            rows.append((check.name, check.level, badge(check.outcome, tone), check.checked, failures or "–"))
        parts.append(section("Policy checks", table(["policy", "level", "outcome", "checked", "failures"], rows)))
    if the_plan.drift:
        rows = [(d.address, "deleted" if not d.exists else "; ".join(
            f"{p}: {format_value(r)} → {format_value(a)}" for p, r, a in d.fields)) for d in the_plan.drift]
        parts.append(section("Changed outside of ml", table(["address", "what"], rows)))
    rows = []
    for change in the_plan.changes:
        if change.action == "no-op" and not change.held:
            continue
        why = "; ".join(((change.held,) if change.held else ()) + tuple(change.reasons))
        fields = "; ".join(f"{f.path}: {format_value(f.before)} → {format_value(f.after)}" for f in change.fields[:8])
        rows.append((link(f"/resource/{change.address}", change.address),
                     badge("held" if change.held else change.action, _ACTION_TONES.get(change.action, "dim")),
                     why or "–", fields or "–", format_duration(change.estimate_seconds) or "–"))
    parts.append(section("Changes", table(["resource", "action", "why", "fields", "estimate"], rows,
                                          empty="No changes: the world matches the specs.")))
    return "Plan", Markup("".join(parts))


def _outcomes(run, address: str | None = None) -> str:
    outcomes = [o for o in run.outcomes if address is None or o.address == address]
    if address is not None:
        return "; ".join(f"{o.action} {o.outcome}" + (f": {o.error}" if o.error else "") for o in outcomes) or "–"
    counts: dict[str, int] = {}
    for o in outcomes:
        counts[o.outcome] = counts.get(o.outcome, 0) + 1
    return ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "–"


def _run_rows(runs, address: str | None = None):
    rows = []
    for run in runs:
        details = run.details or {}
        overrides = ", ".join(f"{o.get('policy')} by {o.get('by')}" for o in details.get("policy_overrides") or [])
        rows.append((run.started[:19].replace("T", " "), run.operation, badge(run.status, _STATUS_TONES.get(run.status, "dim")),
                     _outcomes(run, address), details.get("actor") or run.who, (run.plan_id or "")[:8],
                     overrides or "–"))
    return rows


def history(app, store, query: Mapping[str, str]):
    runs = store.history(limit=int(query.get("limit", 50)))
    body = table(["started (UTC)", "operation", "status", "resources", "who", "plan", "policy overrides"],
                 _run_rows(runs), empty="No runs recorded yet.")
    return "History", section(f"The last {len(runs)} runs", body)


def resource(app, store, address: str):
    record = store.get(address)
    if record is None:
        raise LookupError(address)
    facts = definition_list([("kind", record.kind), ("backend", record.backend),
                             ("status", badge(record.status, _STATUS_TONES.get(record.status, "dim"))),
                             ("updated", record.updated_at), ("depends on", ", ".join(record.depends_on) or "–"),
                             ("fingerprint", record.fingerprint)])
    runs = store.history(limit=20, address=address)
    parts = [section("Recorded", facts), section("Spec", code_block(dict(record.spec))),
             section("Outputs", code_block(dict(record.outputs or {}))),
             section("Runs that touched it", table(["started (UTC)", "operation", "status", "outcome", "who", "plan",
                                                    "policy overrides"], _run_rows(runs, address)))]
    return address, Markup("".join(parts))
