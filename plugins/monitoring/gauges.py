"""Drift and performance gauges in the Prometheus text format, from the latest stored run of each monitor.

For the serving backend's ``/metrics`` (call :func:`metrics_text` and append its result to the service's
own exposition) or for `ml monitor metrics --serve PORT`, a small endpoint of its own. Gauges:

* ``ml_monitor_status{monitor,deployment}`` — 0 ok, 1 drift, 2 decay, -1 inconclusive, -2 error
* ``ml_monitor_drift{monitor,deployment,model_version}`` — 1 drift, 0 none, -1 inconclusive
* ``ml_monitor_window_rows{monitor,model_version}``
* ``ml_monitor_feature_p_value{monitor,model_version,feature}`` and ``ml_monitor_feature_drift{...}``
* ``ml_monitor_performance{monitor,model_version,metric}`` and ``ml_monitor_performance_baseline{...}``
* ``ml_monitor_slice_performance{monitor,model_version,metric,slice,segment}`` and ``ml_monitor_slice_decay{...}``
* ``ml_monitor_last_run_timestamp_seconds{monitor}``

Reads the state database only (no detector, no log): cheap enough for every scrape.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Iterable

__all__ = ["render_gauges", "metrics_text", "serve_metrics"]

_STATUS = {"ok": 0, "drift": 1, "decay": 2, "skew": 3, "inconclusive": -1, "error": -2}
_HELP = {
    "ml_monitor_status": "Latest monitor status: 0 ok, 1 drift, 2 decay, 3 skew, -1 inconclusive, -2 error.",
    "ml_monitor_drift": "Drift found in the latest window: 1 yes, 0 no, -1 inconclusive.",
    "ml_monitor_window_rows": "Rows of the latest window checked, per model version.",
    "ml_monitor_feature_p_value": "p-value of the latest drift test per feature.",
    "ml_monitor_feature_drift": "Whether the feature drifted in the latest window (1/0).",
    "ml_monitor_feature_skew": "Live requests of the latest run whose feature value differs from training's.",
    "ml_monitor_performance": "Latest performance on delayed labels.",
    "ml_monitor_performance_baseline": "The model version's validation value of the metric.",
    "ml_monitor_slice_performance": "Latest performance on delayed labels per slice segment.",
    "ml_monitor_slice_decay": "Whether the slice segment's metric decayed in the latest run (1/0).",
    "ml_monitor_last_run_timestamp_seconds": "When the monitor last ran (Unix time).",
}


def _label(value) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _line(name: str, labels: dict, value: float) -> str:
    inner = ",".join(f'{k}="{_label(v)}"' for k, v in labels.items())
    return f"{name}{{{inner}}} {value:.10g}"


def render_gauges(mstore, monitors: Iterable[str] | None = None, *, deployment: str | None = None) -> str:
    """The exposition text for these monitors (default: every monitor with a stored run)."""
    samples: dict[str, list[str]] = {name: [] for name in _HELP}
    for monitor in (monitors if monitors is not None else mstore.monitors()):
        run = mstore.latest(monitor)
        if run is None or (deployment is not None and run["deployment"] != deployment):
            continue
        base = {"monitor": monitor, "deployment": run["deployment"]}
        samples["ml_monitor_status"].append(_line("ml_monitor_status", base, _STATUS.get(run["status"], -2)))
        samples["ml_monitor_last_run_timestamp_seconds"].append(
            _line("ml_monitor_last_run_timestamp_seconds", {"monitor": monitor}, datetime.fromisoformat(run["at"]).timestamp()))
        for check in run["checks"]:
            drift = {"drift": 1, "ok": 0}.get(check["drift_status"], -1)
            labels = {**base, "model_version": check["model_version"]}
            samples["ml_monitor_drift"].append(_line("ml_monitor_drift", labels, drift))
            samples["ml_monitor_window_rows"].append(
                _line("ml_monitor_window_rows", {"monitor": monitor, "model_version": check["model_version"]}, check["rows"]))
        for feature in run["features"]:
            labels = {"monitor": monitor, "model_version": feature["model_version"], "feature": feature["feature"]}
            if feature["test"] == "skew":  # the live skew check: requests whose value differs from training's
                samples["ml_monitor_feature_skew"].append(_line("ml_monitor_feature_skew", labels, feature["missing"]))
                continue
            if feature["p_val"] is not None:
                samples["ml_monitor_feature_p_value"].append(_line("ml_monitor_feature_p_value", labels, feature["p_val"]))
            if feature["drift"] is not None:
                samples["ml_monitor_feature_drift"].append(_line("ml_monitor_feature_drift", labels, feature["drift"]))
        for metric in run["metrics"]:
            if metric["slice"]:
                if metric["value"] is not None:
                    labels = {"monitor": monitor, "model_version": metric["model_version"], "metric": metric["metric"],
                              "slice": metric["slice"], "segment": metric["segment"]}
                    samples["ml_monitor_slice_performance"].append(
                        _line("ml_monitor_slice_performance", labels, metric["value"]))
                    samples["ml_monitor_slice_decay"].append(_line("ml_monitor_slice_decay", labels, metric["decayed"]))
                continue
            labels = {"monitor": monitor, "model_version": metric["model_version"], "metric": metric["metric"]}
            if metric["value"] is not None:
                samples["ml_monitor_performance"].append(_line("ml_monitor_performance", labels, metric["value"]))
            if metric["baseline"] is not None:
                samples["ml_monitor_performance_baseline"].append(
                    _line("ml_monitor_performance_baseline", labels, metric["baseline"]))
    out = []
    for name, lines in samples.items():
        if lines:
            out += [f"# HELP {name} {_HELP[name]}", f"# TYPE {name} gauge", *lines]
    return "\n".join(out) + ("\n" if out else "")


def metrics_text(project_dir: Path, *, deployment: str | None = None) -> str:
    """What a serving backend appends to its ``/metrics``: the gauges of the monitors of ``deployment``
    (all monitors when None) of the project at ``project_dir``. Empty when nothing ran yet; never raises
    for a missing or unreadable store (a scrape must not fail because monitoring is not set up)."""
    from ml_framework.errors import MLError
    from ml_framework.project import Project

    from .store import MonitorStore

    try:
        store = Project.load(Path(project_dir)).open_state()
    except MLError:
        return ""
    try:
        return render_gauges(MonitorStore.for_store(store), deployment=deployment)
    except MLError:
        return ""
    finally:
        store.close()


def serve_metrics(mstore, host: str, port: int, *, ready=None) -> None:
    """Serve ``GET /metrics`` until interrupted (``ready(server)`` is called once listening)."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's naming
            if self.path.split("?", 1)[0] not in ("/metrics", "/"):
                self.send_error(404)
                return
            body = render_gauges(mstore).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):  # quiet: scrapes every few seconds
            return

    server = ThreadingHTTPServer((host, port), Handler)
    if ready is not None:
        ready(server)
    try:
        server.serve_forever()
    finally:
        server.server_close()
