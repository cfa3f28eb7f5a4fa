"""`ml monitor report`: one self-contained HTML page per monitor, from aggregates only.

What it shows, per model version: the reference (rows, and whether it was sampled), per-feature reference
vs current distributions (bars over the schema's bins or categories), p-values over time against the
threshold, the prediction distribution, performance over time against the version's validation metrics,
and the recent runs with the actions they took.

"Current" is the latest run's window (its histograms are stored with the run), or, with ``log_range``
(``all`` or a duration such as ``7d``), every logged row of that range counted into the same bins. Either
way the page holds counts, never rows: its size depends on the number of features and runs shown, not on
the traffic. Plain Jinja2 and inline SVG (:mod:`.svg`): no script, no CDN, readable offline.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from .schema import PREDICTION, Schema, encode_window, histogram, histograms, prediction_values
from .svg import line_chart, paired_bars

__all__ = ["build_report", "ReportData"]

MAX_FEATURE_CHARTS = 60


@dataclass
class VersionView:
    label: str
    model: str
    meta: dict[str, Any] | None
    schema: Schema | None
    current: dict[str, list[int]] = field(default_factory=dict)
    current_rows: int = 0
    current_source: str = ""
    features: list[dict[str, Any]] = field(default_factory=list)  # rendered per-feature blocks
    prediction: dict[str, Any] | None = None
    performance: list[dict[str, Any]] = field(default_factory=list)
    latest: dict[str, Any] | None = None


@dataclass
class ReportData:
    monitor: str
    deployment: str
    generated: str
    status: str
    runs: list[dict[str, Any]]
    versions: list[VersionView]
    notes: list[str] = field(default_factory=list)
    cost: dict[str, Any] | None = None  # what the deployment costs now (its backend's status), if known


def _ts(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def _bundles(project_dir: Path, monitor: str, record) -> dict[str, tuple[str, dict]]:
    """version label -> (model, meta) of the newest detector folder of each version."""
    out: dict[str, tuple[str, dict]] = {}
    detectors = dict((record.outputs or {}).get("detectors") or {}) if record is not None else {}
    for label, info in detectors.items():
        meta_file = Path(project_dir) / info["path"] / "meta.json"
        if meta_file.is_file():
            out[label] = (info.get("model", ""), json.loads(meta_file.read_text(encoding="utf-8")))
    root = Path(project_dir) / ".ml" / "monitors" / monitor
    for meta_file in sorted(root.glob("*/*/meta.json"), key=lambda p: p.stat().st_mtime):
        label = meta_file.parent.name.split("-", 1)[0]
        if label not in detectors:
            out[label] = (meta_file.parent.parent.name, json.loads(meta_file.read_text(encoding="utf-8")))
    return out


def _shares(counts) -> list[float]:
    total = float(sum(counts)) or 1.0
    return [c / total for c in counts]


def _bin_labels(feature) -> list[str]:
    if feature.kind == "numeric":
        return [f"{feature.edges[i]:.3g}–{feature.edges[i + 1]:.3g}" for i in range(len(feature.edges) - 1)]
    return list(feature.categories) + ["(missing)", "(unseen)"]


def _trim(labels, ref, cur):
    """Categorical bars: the categories that matter (top 30 by either share), missing/unseen kept if present."""
    if len(labels) <= 32:
        keep = [i for i in range(len(labels)) if i < len(labels) - 2 or ref[i] or cur[i]]
    else:
        order = sorted(range(len(labels) - 2), key=lambda i: -max(ref[i], cur[i]))[:30]
        keep = sorted(order) + [i for i in (len(labels) - 2, len(labels) - 1) if ref[i] or cur[i]]
    return [labels[i] for i in keep], [ref[i] for i in keep], [cur[i] for i in keep]


def _current_from_log(project_dir: Path, deployment: str, log_range: str, schemas: dict[str, Schema],
                      now: datetime) -> dict[str, tuple[dict[str, list[int]], int]]:
    from ml_framework.spec.kinds import parse_duration

    from .logcache import read_log

    since = None if log_range == "all" else int((now.timestamp() - parse_duration(log_range)) * 1e6)
    log = read_log(project_dir, deployment, since_us=since,
                   columns=["model_version", "prediction", "prediction_class", "f:"])
    out = {}
    versions = log.get("model_version") if log.n else np.zeros(0, dtype=str)
    for label, schema in schemas.items():
        rows = log.select(versions == label) if log.n else log
        encoded = encode_window(rows, schema)
        counts = histograms(schema.features, encoded.X)
        if schema.prediction is not None:
            counts[PREDICTION] = histogram(schema.prediction, np.asarray(prediction_values(rows, schema.prediction)))
        out[label] = (counts, rows.n)
    return out


def _collect(mstore, project_dir: Path, monitor: str, record, *, runs: int, log_range: str | None,
             now: datetime) -> ReportData:
    recent = mstore.runs(monitor, limit=runs)
    checks = mstore.series("checks", monitor, limit=runs * 4)
    features = [f for f in mstore.series("features", monitor, limit=runs * 200) if f["test"] != "skew"]
    metrics = mstore.series("metrics", monitor, limit=runs * 50)
    spec = dict(record.spec) if record is not None else {}
    deployment = spec.get("deployment") or (recent[0]["deployment"] if recent else "?")
    bundles = _bundles(project_dir, monitor, record)
    latest_check: dict[str, dict] = {}
    for check in checks:
        latest_check[check["model_version"]] = check
    labels = list(dict.fromkeys(list(bundles) + list(latest_check)))
    labels.sort(key=lambda v: int(v.lstrip("v")) if v.lstrip("v").isdigit() else 0, reverse=True)
    schemas = {label: Schema.from_dict(bundles[label][1]["schema"]) for label in labels if label in bundles}
    from_log = _current_from_log(project_dir, deployment, log_range, schemas, now) if log_range else {}
    data = ReportData(monitor=monitor, deployment=deployment, generated=now.isoformat(timespec="seconds"),
                      status=recent[0]["status"] if recent else "no runs yet", runs=recent[:30], versions=[])
    if record is None:
        data.notes.append(f"monitor.{monitor} is no longer applied: showing its stored history")
    for label in labels:
        model, meta = bundles.get(label, ("", None))
        view = VersionView(label=label, model=model or (latest_check.get(label) or {}).get("model", ""),
                           meta=meta, schema=schemas.get(label), latest=latest_check.get(label))
        if label in from_log:
            view.current, view.current_rows = from_log[label]
            view.current_source = f"every logged row of {'the whole log' if log_range == 'all' else 'the last ' + log_range}"
        elif view.latest is not None:
            view.current = view.latest["details"].get("histograms") or {}
            view.current_rows = view.latest["rows"]
            sample = view.latest["details"].get("histogram_rows")
            view.current_source = f"the window of the latest run ({view.latest['at']})" + (
                f", counted on an even sample of {sample:,} rows" if sample and sample < view.current_rows else "")
        _feature_views(view, [f for f in features if f["model_version"] == label],
                       (view.latest or {}).get("threshold"))
        _performance_views(view, [m for m in metrics if m["model_version"] == label])
        data.versions.append(view)
    return data


def _feature_views(view: VersionView, rows: list[dict], threshold: float | None) -> None:
    by_feature: dict[str, list[dict]] = {}
    for row in rows:
        by_feature.setdefault(row["feature"], []).append(row)
    schema_features = list(view.schema.features) if view.schema else []
    if view.schema and view.schema.prediction is not None:
        schema_features.append(view.schema.prediction)
    names = [f.name for f in schema_features] or list(by_feature)
    lookup = {f.name: f for f in schema_features}
    for name in names[:MAX_FEATURE_CHARTS]:
        series = by_feature.get(name, [])
        last = series[-1] if series else None
        shown = "prediction" if name == PREDICTION else name
        block = {"name": shown, "last": last, "bars": None,
                 "pvals": line_chart([(shown, [(_ts(r["at"]), r["p_val"]) for r in series])], log=True,
                                     hline=threshold, hline_label=f"threshold {threshold}" if threshold else "",
                                     title=f"p-values of {shown}")}
        feature = lookup.get(name)
        if feature is not None and feature.ref_hist:
            cur = view.current.get(name) or [0] * len(feature.ref_hist)
            labels = _bin_labels(feature)
            ref = list(feature.ref_hist) + [0.0] * (len(labels) - len(feature.ref_hist))
            cur_shares = _shares(cur) + [0.0] * (len(labels) - len(cur))
            if feature.kind == "categorical":
                labels, ref, cur_shares = _trim(labels, ref, cur_shares)
            block["bars"] = paired_bars(labels, ref, cur_shares, title=f"{shown}: reference vs current")
            block["kind"] = feature.kind
        if name == PREDICTION:
            view.prediction = block
        else:
            view.features.append(block)


def _performance_views(view: VersionView, rows: list[dict]) -> None:
    overall = [r for r in rows if not r["slice"]]
    by_metric: dict[str, list[dict]] = {}
    for row in overall:
        by_metric.setdefault(row["metric"], []).append(row)
    for metric, series in by_metric.items():
        baseline = series[-1]["baseline"]
        view.performance.append({
            "metric": metric, "last": series[-1],
            "chart": line_chart([(metric, [(_ts(r["at"]), r["value"]) for r in series])], baselines=[baseline],
                                title=f"{metric} over time"),
            "slices": [r for r in rows if r["slice"] and r["metric"] == metric and r["run_id"] == series[-1]["run_id"]],
        })


_TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>monitor {{ d.monitor }} · ml</title>
<style>
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,sans-serif;margin:24px;color:#0f172a;max-width:1180px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #e2e8f0}
h3{font-size:15px;margin:18px 0 6px}.muted{color:#64748b}.grid{display:flex;flex-wrap:wrap;gap:14px}
.card{border:1px solid #e2e8f0;border-radius:6px;padding:8px 10px;width:340px}
.card h4{margin:0 0 4px;font-size:13px}.badge{display:inline-block;padding:1px 7px;border-radius:9px;font-size:12px}
.drift,.decay,.error{background:#fee2e2;color:#991b1b}.ok{background:#dcfce7;color:#166534}
.inconclusive,.none{background:#f1f5f9;color:#334155}table{border-collapse:collapse;font-size:13px}
td,th{padding:3px 8px;border-bottom:1px solid #f1f5f9;text-align:left;vertical-align:top}
.legend span{display:inline-block;width:10px;height:10px;margin:0 4px 0 10px}.note{color:#92400e}
</style></head><body>
<h1>monitor {{ d.monitor }}</h1>
<div class="muted">deployment {{ d.deployment }} · generated {{ d.generated }} ·
latest status <span class="badge {{ d.status }}">{{ d.status }}</span></div>
{% for n in d.notes %}<p class="note">{{ n }}</p>{% endfor %}
{% if d.cost %}<p class="cost">cost: <b>{{ d.cost.shown }}</b> per 1,000 predictions ({{ "%.3g"|format(d.cost.cpu_seconds_per_1000) }}
CPU-s per 1,000; {{ d.cost.answered }} answered; {{ d.cost.memory_mb }} MB; {{ d.cost.priced_by }})</p>{% endif %}
<p class="legend muted">bars: <span style="background:#94a3b8"></span>reference
<span style="background:#2563eb"></span>current · dashed red: p-value threshold · dotted: validation metric</p>
{% for v in d.versions %}
<h2>{{ v.model }} {{ v.label }}{% if v.latest %} <span class="badge {{ v.latest.status }}">{{ v.latest.status }}</span>{% endif %}</h2>
{% if v.meta %}{% set r = v.meta.reference %}
<p>Reference: {{ r.source }} — {{ "{:,}".format(r.rows) }} rows{% if r.sampled %}, <b>a seeded sample of {{ "{:,}".format(r.total) }}</b>{% endif %};
method {{ v.meta.method }}, p = {{ v.meta.settings.p_val }} ({{ v.meta.settings.correction }}); built {{ v.meta.built_at }}.</p>
{% for n in v.meta.notes %}<p class="note">{{ n }}</p>{% endfor %}
{% else %}<p class="muted">The detector of this version is gone: history only.</p>{% endif %}
{% if v.latest %}<p>Latest run {{ v.latest.at }}: {{ v.latest.rows }} rows (min {{ v.latest.min_samples }});
{% if v.latest.threshold %}per-test threshold {{ "%.3g"|format(v.latest.threshold) }}{% endif %}
{% for n in v.latest.details.notes %}<br><span class="note">{{ n }}</span>{% endfor %}</p>{% endif %}
<p class="muted">Current: {{ v.current_source or "no traffic checked yet" }}{% if v.current_rows %} ({{ "{:,}".format(v.current_rows) }} rows){% endif %}.</p>
{% if v.prediction %}<h3>Prediction distribution</h3><div class="grid"><div class="card">
<h4>prediction {% if v.prediction.last %}· p {{ "%.3g"|format(v.prediction.last.p_val) if v.prediction.last.p_val is not none else "–" }}{% endif %}</h4>
{{ v.prediction.bars or "" }}{{ v.prediction.pvals }}</div></div>{% endif %}
<h3>Features: reference vs current, and p-values over time</h3><div class="grid">
{% for f in v.features %}<div class="card"><h4>{{ f.name }}{% if f.last %} · {{ f.last.test }} p {{ "%.3g"|format(f.last.p_val) if f.last.p_val is not none else "–" }}
{% if f.last.drift %}<span class="badge drift">drift</span>{% endif %}{% if f.last.missing %} · {{ f.last.missing }} missing{% endif %}
{% if f.last.unseen %} · unseen: {{ f.last.unseen|join(", ") }}{% endif %}{% endif %}</h4>
{{ f.bars or "" }}{{ f.pvals }}</div>{% endfor %}</div>
{% if v.performance %}<h3>Performance on delayed labels</h3><div class="grid">
{% for p in v.performance %}<div class="card"><h4>{{ p.metric }} {{ "%.4f"|format(p.last.value) if p.last.value is not none else "–" }}
(validation {{ "%.4f"|format(p.last.baseline) if p.last.baseline is not none else "–" }}, {{ p.last.rows }} rows)
{% if p.last.decayed %}<span class="badge decay">decay</span>{% endif %}</h4>{{ p.chart }}
{% if p.slices %}<table><tr><th>slice</th><th>segment</th><th>rows</th><th>value</th><th>validation</th></tr>
{% for s in p.slices %}<tr><td>{{ s.slice }}</td><td>{{ s.segment }}</td><td>{{ s.rows }}</td>
<td>{{ "%.4f"|format(s.value) if s.value is not none else "–" }}</td>
<td>{{ "%.4f"|format(s.baseline) if s.baseline is not none else "–" }}</td></tr>{% endfor %}</table>{% endif %}
</div>{% endfor %}</div>{% endif %}
{% endfor %}
<h2>Recent runs</h2>
<table><tr><th>at (UTC)</th><th>status</th><th>versions</th><th>actions</th><th>notes</th></tr>
{% for r in d.runs %}<tr><td>{{ r.at }}</td><td><span class="badge {{ r.status }}">{{ r.status }}</span></td>
<td>{% for c in r.checks %}{{ c.model_version }}: {{ c.status }} ({{ c.rows }} rows){% if not loop.last %}, {% endif %}{% endfor %}</td>
<td>{% for a in r.actions %}{{ a.action }} {{ a.outcome }}{% if a.detail %}: {{ a.detail }}{% endif %}<br>{% endfor %}</td>
<td>{{ r.error or "" }}{% for n in r.notes %}{{ n }}<br>{% endfor %}</td></tr>{% endfor %}</table>
</body></html>
"""


def build_report(mstore, project_dir: Path, monitor: str, record, *, runs: int = 200, log_range: str | None = None,
                 now: datetime | None = None, cost: dict[str, Any] | None = None) -> str:
    """The HTML page for ``monitor`` (``record``: its state record, or None once destroyed); ``cost``: what
    its deployment costs now (``per_1000``, ``currency``, ... as ``ml status`` reports it)."""
    import jinja2

    data = _collect(mstore, Path(project_dir), monitor, record, runs=runs, log_range=log_range,
                    now=now or datetime.now(timezone.utc))
    if cost and cost.get("per_1000") is not None:
        from ml_framework.cost import money

        data.cost = dict(cost, shown=money(cost["per_1000"], cost["currency"], small=True))
    env = jinja2.Environment(autoescape=True, trim_blocks=True, lstrip_blocks=True)
    return env.from_string(_TEMPLATE).render(d=data)
