"""Model cards: one per model version, with the sections of Google's Model Card Toolkit — model details,
parameters, quantitative analysis (held-out metrics with 95 % bootstrap intervals, per slice, gates,
fairness and robustness results, global importance), considerations (intended use, limitations, ethical
considerations, the monitor watching it) and the training data's lineage.

Everything comes from the registry entry (what was recorded at registration: metrics, gates, lineage,
the card text of the spec) and its alias history (who approved and promoted it, when and why). Written
at registration under ``.ml/cards/`` and again by ``ml models card`` (the history may have grown):
Markdown, and a self-contained HTML page with inline SVG plots (no script, nothing loaded from outside).
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any, Iterable, Mapping

__all__ = ["card_data", "render_markdown", "render_html", "write_card", "card_paths", "fmt"]

_SMALL_SLICE = 200  # segments with fewer held-out rows: their figures are noisy (said in the limitations)


def card_paths(project_dir: Path, model: str, version: int) -> tuple[Path, Path]:
    folder = Path(project_dir) / ".ml" / "cards"
    return folder / f"{model}-v{version}.md", folder / f"{model}-v{version}.html"


def card_data(version, events: Iterable = (), *, monitors: Iterable[str] = (),
              serving_cost: Iterable[Mapping[str, Any]] = ()) -> dict[str, Any]:
    """The card of ``version`` (a registry ModelVersion) as plain data; ``events``: its model's alias
    history; ``monitors``: the monitors watching deployments that serve it; ``serving_cost``: what those
    deployments cost now per 1,000 predictions (``ml status``'s figures, with ``deployment``)."""
    lineage = dict(version.lineage or {})
    use = dict(lineage.get("intended_use") or {})
    data = dict(lineage.get("data") or {})
    intervals = dict(lineage.get("metric_intervals") or {})
    primary = version.primary_metric
    metrics = [{"metric": name, "value": value, "interval": intervals.get(name), "primary": name == primary}
               for name, value in (version.metrics or {}).items()]
    slices = {column: [{"segment": segment, "rows": info.get("rows"), "metrics": dict(info.get("metrics") or {})}
                       for segment, info in segments.items()]
              for column, segments in (lineage.get("slices") or {}).items()}
    approvals = [{"at": e.at, "alias": e.alias, "who": e.who, "reason": e.reason,
                  "change": "to" if e.to_version == version.version else "from"}
                 for e in events if version.version in (e.to_version, e.from_version)]
    return {
        "model_details": {
            "name": version.model, "version": version.label, "status": version.status,
            "aliases": list(version.aliases), "created": version.created, "task": (lineage.get("trainer") or {}).get(
                "task") or _task(version), "backend": version.backend, "artifact": version.bentoml_tag,
            "overview": use.get("description"), "labels": dict(use.get("labels") or {}),
            "owners": list(use.get("owners") or []), "git": lineage.get("git"),
            "compared_with": lineage.get("baseline"), "libraries": lineage.get("libraries") or {},
            "approvals": approvals, "training_cost": lineage.get("cost"), "serving_cost": list(serving_cost),
        },
        "model_parameters": {
            "params": lineage.get("params") or {}, "features": list(lineage.get("feature_refs") or []),
            "label": data.get("label"), "split": lineage.get("split"),
        },
        "quantitative_analysis": {
            "primary_metric": primary, "metrics": metrics, "slices": slices,
            "gates": [dict(g) for g in version.gates or []],
            "fairness": lineage.get("fairness"), "robustness": lineage.get("robustness"),
            "importance": lineage.get("importance"),
        },
        "considerations": {
            "intended_use": use.get("intended_use") or use.get("description"),
            "out_of_scope": list(use.get("out_of_scope") or []),
            "limitations": list(use.get("limitations") or []) + _found_limitations(version, lineage, slices),
            "ethical_considerations": list(use.get("ethical_considerations") or []),
            "monitors": list(monitors),
            "monitor_reference": lineage.get("reference"),
        },
        "data": {
            "route": data.get("route"), "files": dict(data.get("files") or {}), "digest": data.get("digest"),
            "rows": lineage.get("rows") or {}, "time_range": data.get("time_range"),
            "upstream": dict(lineage.get("upstream") or {}),
        },
    }


def _task(version) -> str | None:
    goals = (version.lineage or {}).get("metric_goals") or {}
    return "regression" if any(n in goals for n in ("rmse", "mae", "r2")) else None


def _found_limitations(version, lineage: Mapping[str, Any], slices: Mapping[str, list]) -> list[str]:
    """What the recorded figures themselves say a reader should know."""
    out = []
    primary = version.primary_metric
    overall = (version.metrics or {}).get(primary) if primary else None
    interval = (lineage.get("metric_intervals") or {}).get(primary) if primary else None
    goal = ((lineage.get("metric_goals") or {}).get(primary) or "higher") if primary else "higher"
    width = (interval[1] - interval[0]) if interval else 0.0
    for column, segments in slices.items():
        small = [s["segment"] for s in segments if (s.get("rows") or 0) < _SMALL_SLICE]
        if small:
            out.append(f"{column}: {len(small)} segment(s) with fewer than {_SMALL_SLICE} held-out rows "
                       f"({', '.join(map(str, small[:5]))}{'…' if len(small) > 5 else ''}): their figures are noisy")
        if overall is None:
            continue
        for s in segments:
            value = s["metrics"].get(primary)
            if value is None or (s.get("rows") or 0) < _SMALL_SLICE:
                continue
            worse = overall - value if goal == "higher" else value - overall
            if worse > max(width, 0.02):
                out.append(f"{primary} on {column}={s['segment']} is {value:.4f} ({s['rows']} held-out rows), "
                           f"{'below' if goal == 'higher' else 'above'} the overall {overall:.4f}")
    span = (lineage.get("data") or {}).get("time_range") or [None, None]
    if span and span[1]:
        out.append(f"trained on labels from {span[0]} to {span[1]}: later data may differ (watch it with a monitor)")
    skipped = [g.get("gate") for g in version.gates or [] if g.get("status") == "skipped"]
    if skipped:
        out.append("gates skipped at registration: " + "; ".join(map(str, skipped)))
    return out


# -- Markdown ----------------------------------------------------------------------------------------------


def fmt(value: Any, digits: int = 4) -> str:
    """A figure for people: 4 decimals, "–" for none."""
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


_fmt = fmt


def _interval(value) -> str:
    return f"[{value[0]:.4f}, {value[1]:.4f}]" if value else "–"


def render_markdown(card: Mapping[str, Any]) -> str:
    d, p, q, c, data = (card["model_details"], card["model_parameters"], card["quantitative_analysis"],
                        card["considerations"], card["data"])
    lines = [f"# Model card: {d['name']} {d['version']}", ""]
    if d.get("overview"):
        lines += [d["overview"], ""]
    lines += ["## Model details", "",
              f"- Status: {d['status']}" + (f" ({', '.join(d['aliases'])})" if d["aliases"] else ""),
              f"- Created: {d['created']}", f"- Backend: {d['backend']}" + (f", artifact `{d['artifact']}`" if d["artifact"] else "")]
    if d.get("task"):
        lines.append(f"- Task: {d['task']}")
    if d["owners"]:
        lines.append(f"- Owners: {', '.join(d['owners'])}")
    if d["labels"]:
        lines.append("- Labels: " + ", ".join(f"{k}={v}" for k, v in d["labels"].items()))
    git = d.get("git") or {}
    if git.get("commit"):
        lines.append(f"- Specs: git {git['commit'][:12]}" + (" (uncommitted changes)" if git.get("dirty") else ""))
    if d.get("compared_with"):
        lines.append(f"- Compared at registration with production {d['compared_with']}")
    from ml_framework.cost import money

    cost = d.get("training_cost") or {}
    if cost:
        lines.append(f"- Training cost: {cost.get('cpu_seconds')} CPU-s, peak {cost.get('peak_rss_mb')} MB, "
                     f"{cost.get('wall_seconds')} s: {money(float(cost.get('price') or 0), cost.get('currency') or 'USD', small=True)}"
                     f" ({cost.get('priced_by')})")
    for serving in d.get("serving_cost") or []:
        if serving.get("per_1000") is not None:
            lines.append(f"- Serving cost ({serving['deployment']}, now): "
                         f"{money(serving['per_1000'], serving['currency'], small=True)} per 1,000 predictions "
                         f"({serving['cpu_seconds_per_1000']:.3g} CPU-s per 1,000 over {serving['answered']:,} answered)")
    if d["approvals"]:
        lines += ["", "### Approvals and promotions", "", "| when | alias | who | why |", "| --- | --- | --- | --- |"]
        lines += [f"| {a['at']} | {a['alias']} {'→' if a['change'] == 'to' else 'left'} | {a['who']} | {a['reason']} |"
                  for a in d["approvals"]]
    lines += ["", "## Model parameters", "", f"- Label: {_label(p.get('label'))}",
              f"- Split: {p.get('split')}", f"- Features ({len(p['features'])}): " + ", ".join(f"`{f}`" for f in p["features"]),
              "- Params: " + ", ".join(f"{k}={v}" for k, v in sorted((p.get("params") or {}).items()))]
    lines += ["", "## Quantitative analysis", "", "Held-out rows; intervals: 95 % bootstrap.", "",
              "| metric | value | 95 % interval |", "| --- | --- | --- |"]
    lines += [f"| {m['metric']}{' (primary)' if m['primary'] else ''} | {_fmt(m['value'])} | {_interval(m['interval'])} |"
              for m in q["metrics"]]
    if q["gates"]:
        lines += ["", "### Gates", "", "| gate | verdict | value | threshold |", "| --- | --- | --- | --- |"]
        lines += [f"| `{g.get('gate')}` | {g.get('status')} | {_fmt(g.get('value'))} | {_fmt(g.get('threshold'))} |"
                  for g in q["gates"]]
    for column, segments in q["slices"].items():
        names = list(dict.fromkeys(n for s in segments for n in s["metrics"]))
        lines += ["", f"### By {column}", "", "| segment | rows | " + " | ".join(names) + " |",
                  "| --- | --- | " + " | ".join("---" for _ in names) + " |"]
        lines += [f"| {s['segment']} | {s['rows']} | " + " | ".join(_fmt(s["metrics"].get(n)) for n in names) + " |"
                  for s in segments]
    for title, key in (("Fairness", "fairness"), ("Robustness", "robustness")):
        found = q.get(key)
        lines += ["", f"### {title}", ""]
        if found:
            lines += [f"- {r.get('gate') or r.get('name')}: {r.get('status', '')} {_fmt(r.get('value'))}"
                      + (f" {_interval(r.get('interval'))}" if r.get("interval") else "") for r in found]
        else:
            lines.append(f"No {key} gate was declared for this version.")
    importance = (q.get("importance") or {}).get("mean_abs_contribution") or {}
    if importance:
        lines += ["", "### Global importance", "", f"Mean |contribution| on {q['importance'].get('rows')} held-out rows.",
                  "", "| feature | mean abs contribution |", "| --- | --- |"]
        lines += [f"| {n} | {v:.4f} |" for n, v in sorted(importance.items(), key=lambda kv: -kv[1])[:15]]
    lines += ["", "## Considerations", "", f"- Intended use: {c.get('intended_use') or 'not stated (add card.intended_use to the spec)'}"]
    lines += [f"- Out of scope: {x}" for x in c["out_of_scope"]]
    lines += ["", "### Limitations", ""] + ([f"- {x}" for x in c["limitations"]] or ["- none recorded"])
    lines += ["", "### Ethical considerations", ""] + ([f"- {x}" for x in c["ethical_considerations"]]
                                                      or ["- not stated (add card.ethical_considerations to the spec)"])
    reference = c.get("monitor_reference") or {}
    lines += ["", "### Monitoring", "",
              f"- Watched by: {', '.join(c['monitors'])}" if c["monitors"] else "- Watched by: no monitor yet",
              f"- Monitor reference: {reference.get('rows', '–')} training rows with predictions"]
    span = data.get("time_range") or [None, None]
    rows = data.get("rows") or {}
    lines += ["", "## Data", "", f"- Route: {data.get('route')}, digest {data.get('digest')}",
              f"- Rows: total {rows.get('total', '–')}, train {rows.get('train', '–')}, held out {rows.get('valid', '–')}",
              f"- Time range: {span[0] or '–'} to {span[1] or '–'}", "", "| file | content key |", "| --- | --- |"]
    lines += [f"| {path} | {key} |" for path, key in data["files"].items()]
    if data["upstream"]:
        lines += ["", "| upstream resource | fingerprint |", "| --- | --- |"]
        lines += [f"| {a} | {f[:16]} |" for a, f in data["upstream"].items()]
    return "\n".join(lines) + "\n"


def _label(label) -> str:
    if not label:
        return "–"
    return f"{label.get('source')}.{label.get('column')} (at {label.get('timestamp')})"


# -- HTML --------------------------------------------------------------------------------------------------


def _bars(rows: list[tuple[str, float]], *, width: int = 560, unit: str = "", reference: float | None = None) -> str:
    """A horizontal bar chart as inline SVG (``reference``: a vertical line, e.g. the overall value)."""
    if not rows:
        return ""
    e = html.escape
    top = max([abs(v) for _, v in rows] + ([abs(reference)] if reference is not None else [])) or 1.0
    label_w, bar_w, row_h = 200, width - 280, 22
    height = row_h * len(rows) + 10
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img">']
    for i, (name, value) in enumerate(rows):
        y = 5 + i * row_h
        w = max(1.0, abs(value) / top * bar_w)
        parts.append(f'<text x="{label_w - 6}" y="{y + 15}" text-anchor="end" font-size="12">{e(str(name)[:32])}</text>'
                     f'<rect x="{label_w}" y="{y + 3}" width="{w:.1f}" height="{row_h - 8}" fill="#4c78a8"/>'
                     f'<text x="{label_w + w + 4:.1f}" y="{y + 15}" font-size="11">{value:.4f}{e(unit)}</text>')
    if reference is not None:
        x = label_w + abs(reference) / top * bar_w
        parts.append(f'<line x1="{x:.1f}" y1="0" x2="{x:.1f}" y2="{height}" stroke="#e45756" stroke-dasharray="4 3"/>')
    parts.append("</svg>")
    return "".join(parts)


def _intervals(metrics: list[dict], width: int = 560) -> str:
    """Each metric's value with its 95 % interval, on its own 0..1 (or value-scaled) axis."""
    shown = [m for m in metrics if m["value"] is not None and m["interval"]]
    if not shown:
        return ""
    e = html.escape
    label_w, axis_w, row_h = 200, width - 280, 24
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{row_h * len(shown) + 10}" role="img">']
    for i, m in enumerate(shown):
        lo, hi = m["interval"]
        span_lo, span_hi = min(lo, m["value"]), max(hi, m["value"])
        scale_lo, scale_hi = (0.0, 1.0) if 0 <= span_lo and span_hi <= 1 else (span_lo - abs(span_lo) * 0.1, span_hi * 1.1 or 1.0)

        def x(v, _lo=scale_lo, _hi=scale_hi):
            return label_w + (v - _lo) / ((_hi - _lo) or 1.0) * axis_w

        y = 5 + i * row_h + 12
        parts.append(f'<text x="{label_w - 6}" y="{y + 4}" text-anchor="end" font-size="12">{e(m["metric"])}</text>'
                     f'<line x1="{label_w}" y1="{y}" x2="{label_w + axis_w}" y2="{y}" stroke="#ddd"/>'
                     f'<line x1="{x(lo):.1f}" y1="{y}" x2="{x(hi):.1f}" y2="{y}" stroke="#4c78a8" stroke-width="3"/>'
                     f'<circle cx="{x(m["value"]):.1f}" cy="{y}" r="4" fill="#e45756"/>'
                     f'<text x="{label_w + axis_w + 6}" y="{y + 4}" font-size="11">{m["value"]:.4f} '
                     f'[{lo:.4f}, {hi:.4f}]</text>')
    parts.append("</svg>")
    return "".join(parts)


def render_html(card: Mapping[str, Any]) -> str:
    """A self-contained page: the Markdown's content as HTML, with plots of the metrics' intervals, the
    primary metric per slice segment and the global importance."""
    e = html.escape
    d, q = card["model_details"], card["quantitative_analysis"]
    plots = []
    intervals = _intervals(q["metrics"])
    if intervals:
        plots.append(f"<h3>Held-out metrics with 95 % intervals</h3>{intervals}")
    primary = q.get("primary_metric")
    overall = next((m["value"] for m in q["metrics"] if m["metric"] == primary), None)
    for column, segments in q["slices"].items():
        rows = [(f"{s['segment']} ({s['rows']})", s["metrics"].get(primary)) for s in segments
                if s["metrics"].get(primary) is not None]
        if rows:
            plots.append(f"<h3>{e(str(primary))} by {e(column)} (dashed: overall)</h3>{_bars(rows, reference=overall)}")
    importance = (q.get("importance") or {}).get("mean_abs_contribution") or {}
    if importance:
        top = sorted(importance.items(), key=lambda kv: -kv[1])[:15]
        plots.append(f"<h3>Global importance (mean |contribution|)</h3>{_bars(top)}")
    body = _markdown_to_html(render_markdown(card))
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<title>Model card: {e(d['name'])} {e(d['version'])}</title>
<style>body{{font:15px/1.5 system-ui,sans-serif;max-width:62rem;margin:2rem auto;padding:0 1rem;color:#222}}
table{{border-collapse:collapse;margin:.5rem 0}}td,th{{border-bottom:1px solid #ddd;padding:.25rem .6rem;text-align:left}}
code{{background:#f4f4f4;padding:.05rem .3rem}}section.plots svg{{display:block;margin:.3rem 0 1rem}}</style></head>
<body>{body}
<section class="plots"><h2>Plots</h2>{''.join(plots) or '<p>No figures to plot.</p>'}</section>
</body></html>
"""


def _markdown_to_html(text: str) -> str:
    """The small Markdown subset render_markdown writes: headings, bullets, pipe tables, `code`."""
    import re

    e = html.escape

    def inline(s: str) -> str:
        return re.sub(r"`([^`]+)`", lambda m: f"<code>{m.group(1)}</code>", e(s))

    out, table, items = [], [], []

    def flush():
        if items:
            out.append("<ul>" + "".join(f"<li>{inline(i)}</li>" for i in items) + "</ul>")
            items.clear()
        if table:
            rows = [r for r in table if not re.fullmatch(r"\|(\s*-+\s*\|)+", r.replace(" ", "") or "x")]
            cells = [[c.strip() for c in r.strip().strip("|").split("|")] for r in rows]
            head, rest = cells[0], cells[1:]
            out.append("<table><tr>" + "".join(f"<th>{inline(c)}</th>" for c in head) + "</tr>"
                       + "".join("<tr>" + "".join(f"<td>{inline(c)}</td>" for c in r) + "</tr>" for r in rest)
                       + "</table>")
            table.clear()

    for line in text.splitlines():
        if line.startswith("|"):
            if items:
                flush()
            table.append(line)
            continue
        if table:
            flush()
        if line.startswith("- "):
            items.append(line[2:])
            continue
        flush()
        heading = re.match(r"(#{1,4}) (.*)", line)
        if heading:
            level = len(heading.group(1))
            out.append(f"<h{level}>{inline(heading.group(2))}</h{level}>")
        elif line.strip():
            out.append(f"<p>{inline(line)}</p>")
    flush()
    return "\n".join(out)


def write_card(project_dir: Path, card: Mapping[str, Any]) -> tuple[Path, Path]:
    """Write the card's Markdown and HTML under ``.ml/cards/`` (atomically); returns their paths."""
    import os

    d = card["model_details"]
    md_path, html_path = card_paths(project_dir, d["name"], int(str(d["version"]).lstrip("v")))
    md_path.parent.mkdir(parents=True, exist_ok=True)
    for path, text in ((md_path, render_markdown(card)), (html_path, render_html(card))):
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    return md_path, html_path
