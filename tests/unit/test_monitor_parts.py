"""Ground-truth joins and performance, the results store and gauges, the HTML report, the webhook alert,
spec validation and import hygiene of the monitoring code."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ml_framework.plugins.models.registry import ModelVersion
from ml_framework.plugins.monitoring.kinds import GroundTruth, Monitor
from ml_framework.plugins.monitoring.ground_truth import evaluate
from ml_framework.plugins.monitoring.logcache import Categories, LogColumns
from ml_framework.plugins.monitoring.results import (ActionOutcome, DriftResult, FeatureResult, MetricResult, PerformanceResult,
                                        RunResult, VersionResult)

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 3, 1, tzinfo=timezone.utc)


def version(**metrics):
    return ModelVersion(model="fraud", version=3, status="accepted", created="", backend="lightgbm",
                        address="model.fraud", primary_metric="auc", metrics=metrics or {"auc": 0.85, "accuracy": 0.8},
                        lineage={"slices": {"channel": {"online": {"rows": 10, "metrics": {"auc": 0.9}}}}})


def logged(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    p = rng.random(n)
    customers = rng.integers(0, 50, n)
    ts = np.array([int((T0 + timedelta(minutes=i)).timestamp() * 1e6) for i in range(n)])
    channel = rng.choice(["online", "pos"], n)
    vocab, codes = np.unique(channel, return_inverse=True)
    cols = {"request_id": np.array([f"r{i}" for i in range(n)]), "ts": ts, "prediction": p,
            "prediction_class": np.full(n, -1), "model_version": np.full(n, "v3"),
            "e:customer_id": customers.astype(str), "f:channel": Categories(codes.astype(np.int32), vocab)}
    return LogColumns(cols, n), p, customers, channel


def gt(**kwargs) -> GroundTruth:
    return GroundTruth(path="labels.parquet", label="label", **{"min_samples": 100, **kwargs})


def test_labels_by_request_id_give_performance_and_unknown_ids_are_counted():
    log, p, _, _ = logged(2000)
    rng = np.random.default_rng(1)
    labels = pd.DataFrame({"request_id": [f"r{i}" for i in range(0, 2000, 2)] + ["ghost-1", "ghost-2"],
                           "label": list((rng.random(1000) < p[::2]).astype(int)) + [1, 0]})
    result = evaluate(log, labels, gt(), task="binary", version=version())
    assert result.matched_labels == 1000 and result.unmatched_labels == 2
    assert any("2 labels match no logged prediction" in n for n in result.notes)
    auc = next(m for m in result.metrics if m.metric == "auc" and not m.slice)
    assert result.n == 1000 and 0.65 < auc.value < 0.85 and auc.baseline == 0.85
    assert result.status == "ok"  # within the default 0.05 of the primary metric? (checked below)
    assert not auc.decayed


def test_concept_drift_in_labels_is_decay():
    log, p, _, _ = logged(2000)
    rng = np.random.default_rng(2)
    flipped = (rng.random(2000) < 1 - p).astype(int)  # the relation reversed
    labels = pd.DataFrame({"request_id": [f"r{i}" for i in range(2000)], "label": flipped})
    result = evaluate(log, labels, gt(max_decay={"auc": 0.1}), task="binary", version=version())
    auc = next(m for m in result.metrics if m.metric == "auc" and not m.slice)
    assert result.status == "decay" and auc.decayed and auc.value < 0.4
    assert [m.metric for m in result.decayed()] == ["auc"]


def test_slices_per_segment_with_recorded_baselines():
    log, p, _, channel = logged(2000)
    labels = pd.DataFrame({"request_id": [f"r{i}" for i in range(2000)], "label": (p > 0.5).astype(int)})
    result = evaluate(log, labels, gt(slices=["channel"], metrics=["auc"], last=5000), task="binary", version=version())
    segments = {m.segment: m for m in result.metrics if m.slice == "channel"}
    assert set(segments) == {"online", "pos"}
    assert segments["online"].baseline == 0.9 and segments["pos"].baseline is None
    assert segments["online"].n == int((channel == "online").sum())


def test_labels_by_entity_and_time_take_the_prediction_served_before_them_within_tolerance():
    log, p, customers, _ = logged(500)
    rows = [{"customer_id": int(customers[i]), "event_ts": T0 + timedelta(minutes=i, seconds=20),
             "label": int(p[i] > 0.5)} for i in range(500)]
    rows.append({"customer_id": 999, "event_ts": T0, "label": 1})  # an entity never scored
    rows.append({"customer_id": int(customers[0]), "event_ts": T0 - timedelta(days=2), "label": 1})  # too early
    spec = gt(join="entity", entity_keys=["customer_id"], timestamp_field="event_ts", tolerance="1m", metrics=["accuracy"])
    result = evaluate(log, pd.DataFrame(rows), spec, task="binary", version=version())
    assert result.matched_labels == 500 and result.unmatched_labels == 2
    accuracy = next(m for m in result.metrics if m.metric == "accuracy")
    assert accuracy.value > 0.97  # labels were the thresholded predictions of the matched rows


def test_no_labels_or_too_few_is_inconclusive():
    log, _, _, _ = logged(300)
    assert evaluate(log, pd.DataFrame(), gt(), task="binary", version=version()).status == "inconclusive"
    few = pd.DataFrame({"request_id": ["r1", "r2"], "label": [1, 0]})
    result = evaluate(log, few, gt(), task="binary", version=version())
    assert result.status == "inconclusive" and "fewer than min_samples" in result.notes[-1]
    assert evaluate(LogColumns(), few, gt(), task="binary", version=version()).status == "inconclusive"


def test_bad_ground_truth_metric_is_an_error():
    from ml_framework.plugins.monitoring.ground_truth import GroundTruthError

    log, p, _, _ = logged(300)
    labels = pd.DataFrame({"request_id": [f"r{i}" for i in range(300)], "label": (p > 0.5).astype(int)})
    with pytest.raises(GroundTruthError, match="unknown metric 'acc'"):
        evaluate(log, labels, gt(metrics=["acc"]), task="binary", version=version())


# -- store, gauges, report ---------------------------------------------------------------------------------------

def a_run(at: datetime, p_b: float, drift: bool, auc: float | None = None) -> RunResult:
    drift_result = DriftResult(status="drift" if drift else "ok", method="tabular", n=1000, min_samples=100,
                               threshold=0.01, features=[
                                   FeatureResult("a", "numeric", "ks", 0.5, 0.02, False, 1000),
                                   FeatureResult("b", "numeric", "ks", p_b, 0.3, drift, 990, missing=10),
                                   FeatureResult("seg", "categorical", "chi2", 0.7, 1.0, False, 1000,
                                                 unseen={"new": 3})],
                               histograms={"a": [1, 2, 3], "b": [3, 2, 1], "seg": [5, 4, 0, 3]}, histogram_rows=1000)
    perf = None
    if auc is not None:
        perf = PerformanceResult(status="ok", n=500, matched_labels=500, unmatched_labels=0,
                                 metrics=[MetricResult("auc", auc, 0.85, 500)])
    return RunResult(monitor="m1", deployment="api", at=at.isoformat(timespec="seconds"), window={"last": 1000, "rows": 1000},
                     versions=[VersionResult("fraud", "v3", drift_result, perf, {"rows": 2000, "total": 9000, "sampled": True})],
                     actions=[ActionOutcome("alert", "succeeded", "logged")] if drift else [])


@pytest.fixture
def mstore(tmp_path):
    from ml_framework.plugins.monitoring.store import MonitorStore

    store = MonitorStore(f"sqlite:///{tmp_path / 'state.db'}")
    yield store
    store.close()


def test_results_are_a_time_series(mstore):
    for i in range(5):
        mstore.record(a_run(T0 + timedelta(hours=i), p_b=10.0 ** -i, drift=i >= 3, auc=0.85 - 0.02 * i))
    runs = mstore.runs("m1")
    assert [r["status"] for r in runs] == ["drift", "drift", "ok", "ok", "ok"]  # newest first
    assert runs[0]["checks"][0]["reference"]["sampled"] is True
    series = [r for r in mstore.series("features", "m1") if r["feature"] == "b"]
    assert [r["p_val"] for r in series] == pytest.approx([1, 0.1, 0.01, 0.001, 0.0001])
    assert [r["drift"] for r in series] == [0, 0, 0, 1, 1] and series[0]["missing"] == 10
    assert [r["value"] for r in mstore.series("metrics", "m1")] == pytest.approx([0.85, 0.83, 0.81, 0.79, 0.77])
    assert mstore.drifted([runs[0]["run_id"]]) == {runs[0]["run_id"]: ["b"]}
    mstore.record_action(runs[0]["run_id"], "m1", "retrain", "failed", "gate failed")
    assert mstore.last_action("m1", "retrain", outcomes=("succeeded", "failed")) is not None
    assert mstore.last_action("m1", "rollback") is None


def test_gauges_in_prometheus_text(mstore):
    from ml_framework.plugins.monitoring.gauges import render_gauges

    assert render_gauges(mstore) == ""
    mstore.record(a_run(T0, p_b=1e-6, drift=True, auc=0.8))
    text = render_gauges(mstore)
    assert '# TYPE ml_monitor_drift gauge' in text
    assert 'ml_monitor_drift{monitor="m1",deployment="api",model_version="v3"} 1' in text
    assert 'ml_monitor_status{monitor="m1",deployment="api"} 1' in text
    assert 'ml_monitor_feature_p_value{monitor="m1",model_version="v3",feature="b"} 1e-06' in text
    assert 'ml_monitor_performance{monitor="m1",model_version="v3",metric="auc"} 0.8' in text
    assert 'ml_monitor_performance_baseline{monitor="m1",model_version="v3",metric="auc"} 0.85' in text
    assert render_gauges(mstore, deployment="other") == ""


def test_metrics_endpoint_serves_the_gauges(mstore):
    import urllib.request

    from ml_framework.plugins.monitoring.gauges import serve_metrics

    mstore.record(a_run(T0, p_b=1e-6, drift=True))
    started = threading.Event()
    holder = {}

    def ready(server):
        holder["server"] = server
        started.set()

    thread = threading.Thread(target=serve_metrics, args=(mstore, "127.0.0.1", 0), kwargs={"ready": ready}, daemon=True)
    thread.start()
    assert started.wait(5)
    port = holder["server"].server_address[1]
    try:
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        assert "ml_monitor_drift" in body
    finally:
        holder["server"].shutdown()


def test_report_is_self_contained_and_aggregated(mstore, tmp_path):
    from ml_framework.plugins.monitoring.report import build_report

    for i in range(30):
        mstore.record(a_run(T0 + timedelta(hours=i), p_b=max(1e-9, 0.5 / (i + 1) ** 3), drift=i > 20, auc=0.85 - 0.003 * i))
    html = build_report(mstore, tmp_path, "m1", None)
    assert html.startswith("<!doctype html>") and "<svg" in html and "<polyline" in html
    assert "<script" not in html and "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "https://" not in html
    assert "no longer applied" in html and "Recent runs" in html and "auc" in html
    assert len(html) < 200_000


# -- alert webhook ------------------------------------------------------------------------------------------------

class _Hook(BaseHTTPRequestHandler):
    received: list = []
    status = 200

    def do_POST(self):  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append((self.path, self.headers["Content-Type"], json.loads(body)))
        self.send_response(type(self).status)
        self.end_headers()

    def log_message(self, *args):
        return


@pytest.fixture
def hook_server():
    _Hook.received = []
    _Hook.status = 200
    server = HTTPServer(("127.0.0.1", 0), _Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()


def monitor(**extra) -> Monitor:
    return Monitor.model_validate({"kind": "Monitor", "name": "m1", "deployment": "api",
                                   "detector": {"backend": "alibi-detect"}, **extra})


def test_alert_logs_a_line_and_posts_the_webhook(hook_server):
    from ml_framework.plugins.monitoring.actions import alert

    lines = []
    outcome = alert(a_run(T0, p_b=1e-6, drift=True), monitor(alert={"webhook": hook_server}), lines.append)
    assert outcome.outcome == "succeeded" and "answered 200" in outcome.detail
    assert lines[0].startswith("ALERT monitor=m1 deployment=api status=drift") and "features=b(p=1.00e-06)" in lines[0]
    path, ctype, payload = _Hook.received[0]
    assert path == "/hook" and ctype == "application/json"
    assert payload["status"] == "drift" and payload["versions"][0]["drifted_features"] == ["b"]


def test_webhook_failures_are_reported_not_raised(hook_server, monkeypatch):
    from ml_framework.plugins.monitoring.actions import alert

    _Hook.status = 500
    outcome = alert(a_run(T0, p_b=1e-6, drift=True), monitor(alert={"webhook": hook_server}), lambda _: None)
    assert outcome.outcome == "failed" and "answered 500" in outcome.detail
    closed = alert(a_run(T0, p_b=1e-6, drift=True), monitor(alert={"webhook": "http://127.0.0.1:9/x", "timeout_s": 1}),
                   lambda _: None)
    assert closed.outcome == "failed" and "failed" in closed.detail
    monkeypatch.delenv("HOOK_URL", raising=False)
    unset = alert(a_run(T0, p_b=1e-6, drift=True), monitor(alert={"webhook_env": "HOOK_URL"}), lambda _: None)
    assert unset.outcome == "failed" and "$HOOK_URL is not set" in unset.detail
    monkeypatch.setenv("HOOK_URL", hook_server)
    _Hook.status = 204
    from_env = alert(a_run(T0, p_b=1e-6, drift=True), monitor(alert={"webhook_env": "HOOK_URL"}), lambda _: None)
    assert from_env.outcome == "succeeded" and "$HOOK_URL" in from_env.detail and "127.0.0.1" not in from_env.detail


# -- spec -----------------------------------------------------------------------------------------------------------

def test_monitor_spec_defaults_and_rules():
    m = monitor()
    assert m.window.last == 1000 and m.window.min_samples == 100 and m.predictions and m.cooldown == "6h"
    assert monitor(window={"duration": "1h"}).window.last is None
    from pydantic import ValidationError

    for bad, message in (({"on_drift": ["retrain", "rollback"]}, "contradict"),
                         ({"on_drift": ["alert", "alert"]}, "once"),
                         ({"window": {"last": 0}}, "greater than 0"),
                         ({"schedule": "5 minutes"}, "pattern"),
                         ({"ground_truth": {"path": "l.csv", "label": "y", "join": "entity"}}, "entity_keys"),
                         ({"alert": {"webhook": "ftp://x"}}, "pattern")):
        with pytest.raises(ValidationError, match=message):
            monitor(**bad)


def test_detector_settings_are_checked_by_the_backend():
    from pydantic import ValidationError

    from ml_framework.plugins.alibi_detect import AlibiDetectProvider

    model = AlibiDetectProvider().config_model("Monitor")
    assert model.model_validate({}).method == "tabular"
    with pytest.raises(ValidationError):
        model.model_validate({"method": "wasserstein"})
    with pytest.raises(ValidationError):
        model.model_validate({"p_val": 0.7})
    with pytest.raises(ValidationError):
        model.model_validate({"mmd": {"backend": "tensorflow"}})


# -- import hygiene ------------------------------------------------------------------------------------------------

def test_monitoring_entry_points_import_no_heavy_library(tmp_path):
    code = ("import json, sys; import ml_framework.plugins.alibi_detect, ml_framework.plugins.monitoring.cli, ml_framework.plugins.monitoring, "
            "ml_framework.plugins.alibi_detect.config; p = ml_framework.plugins.alibi_detect.AlibiDetectProvider(); p.config_model('Monitor'); "
            "print(json.dumps(sorted(sys.modules)))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    heavy = ("alibi_detect", "torch", "pandas", "numpy", "sklearn", "tensorflow", "scipy", "sqlalchemy")
    loaded = sorted(m for m in json.loads(proc.stdout) if m.split(".")[0] in heavy)
    assert loaded == []


def test_metrics_text_for_the_serving_backend(tmp_path, monkeypatch):
    from ml_framework.plugins.monitoring.gauges import metrics_text
    from ml_framework.plugins.monitoring.store import MonitorStore

    monkeypatch.delenv("ML_STATE_URL", raising=False)
    assert metrics_text(tmp_path) == ""  # nothing ran yet: an empty addition, never an error
    (tmp_path / ".ml").mkdir(exist_ok=True)
    store = MonitorStore(f"sqlite:///{(tmp_path / '.ml' / 'state.db').resolve()}")
    store.record(a_run(T0, p_b=1e-6, drift=True))
    store.close()
    text = metrics_text(tmp_path, deployment="api")
    assert 'ml_monitor_drift{monitor="m1",deployment="api",model_version="v3"} 1' in text
    assert metrics_text(tmp_path, deployment="other-api") == ""


def test_the_alert_line_compares_a_decayed_metric_in_its_own_direction():
    from ml_framework.plugins.monitoring.actions import alert_line
    from ml_framework.plugins.monitoring.results import (DriftResult, MetricResult, PerformanceResult, RunResult,
                                                         VersionResult)

    def run(metric, value, baseline):
        perf = PerformanceResult(status="decay", n=500, matched_labels=500, unmatched_labels=0,
                                 metrics=[MetricResult(metric, value, baseline, 500, decayed=True)])
        version = VersionResult("m", "v1", DriftResult(status="ok", method="tabular", n=500, min_samples=100),
                                performance=perf)
        return alert_line(RunResult(monitor="mon", deployment="api", at="2026-12-07T00:00:00+00:00",
                                    window={"last": 1000}, versions=[version]))

    assert "decay=auc=0.7000<0.9000" in run("auc", 0.7, 0.9)  # higher is better: fell below
    assert "decay=rmse=3.5000>2.0000" in run("rmse", 3.5, 2.0)  # lower is better: rose above



def test_an_entity_label_is_credited_to_the_prediction_served_before_it_not_a_later_nearer_one():
    """v1 answered at 10:00, v2 (after a rollout) at 10:01 for the same customer; the label for the
    decision made at 10:00 arrives stamped 10:00:45 — nearer to v2's answer, but v1's decision."""
    from ml_framework.plugins.monitoring.ground_truth import _join

    t = pd.Timestamp("2026-12-07T10:00:00Z")
    log_frame = pd.DataFrame({"__e:customer_id": ["7", "7"], "__ts": [int(t.value // 1000), int((t + pd.Timedelta("1min")).value // 1000)],
                              "model_version": ["v1", "v2"], "__rid": ["a", "b"]})
    labels = pd.DataFrame({"customer_id": [7], "event_ts": [t + pd.Timedelta("45s")], "label": [1]})
    spec = gt(join="entity", entity_keys=["customer_id"], timestamp_field="event_ts", tolerance="5m")
    joined, matched, unmatched = _join(log_frame, labels, spec)
    assert (matched, unmatched) == (1, 0) and list(joined["model_version"]) == ["v1"]


def test_multiclass_ground_truth_reads_class_values_as_the_logged_class_indexes():
    """Labels hold class values (names, or numbers such as 3/5/9), the log the index of the predicted class:
    they are matched through the version's classes, so accuracy is the real one."""
    n = 300
    rng = np.random.default_rng(4)
    predicted = rng.integers(0, 3, n)
    cols = {"request_id": np.array([f"r{i}" for i in range(n)]),
            "ts": np.array([int((T0 + timedelta(minutes=i)).timestamp() * 1e6) for i in range(n)]),
            "prediction": np.full(n, np.nan), "prediction_class": predicted, "model_version": np.full(n, "v3")}
    log = LogColumns(cols, n)
    truth = predicted.copy()
    truth[:60] = (truth[:60] + 1) % 3  # 60 of 300 wrong: accuracy 0.8
    for classes in (["high", "low", "medium"], [3, 5, 9]):
        labels = pd.DataFrame({"request_id": [f"r{i}" for i in range(n)], "label": [classes[t] for t in truth]})
        labels.loc[0, "label"] = "unheard-of" if isinstance(classes[0], str) else 7
        result = evaluate(log, labels, gt(metrics=["accuracy"]), task="multiclass", version=version(accuracy=0.8),
                          classes=classes)
        accuracy = next(m for m in result.metrics if m.metric == "accuracy")
        assert accuracy.n == n - 1 and accuracy.value == pytest.approx(240 / 299)  # row 0 (wrong) dropped: 59 wrong
        assert any("1 labels name a class v3 was not trained on" in note for note in result.notes)


def test_the_ground_truth_file_is_checked_at_plan_from_its_schema(tmp_path):
    import pandas as pd

    from ml_framework.plugins.monitoring.ground_truth import GroundTruthError, check_label_file
    from ml_framework.plugins.monitoring.kinds import GroundTruth

    gt = GroundTruth(path="labels.parquet", label="is_fraud", join="entity", entity_keys=["customer_id"],
                     timestamp_field="event_ts")
    check_label_file(tmp_path, gt, ["customer_id"])  # labels arrive later: no file yet is fine
    pd.DataFrame({"customer_id": [1], "event_ts": [pd.Timestamp("2024-01-01")], "is_fraud": [0]}).to_parquet(
        tmp_path / "labels.parquet")
    check_label_file(tmp_path, gt, ["customer_id", "merchant_id"])
    with pytest.raises(GroundTruthError, match="has no column 'is_frad'.*") as info:
        check_label_file(tmp_path, gt.model_copy(update={"label": "is_frad"}), ["customer_id"])
    assert "did you mean 'is_fraud'" in str(info.value)
    with pytest.raises(GroundTruthError, match="'customer' is not an entity key of the deployment"):
        check_label_file(tmp_path, gt.model_copy(update={"entity_keys": ["customer"]}), ["customer_id"])
    (tmp_path / "labels.csv").write_text("rid,label\n1,0\n")
    with pytest.raises(GroundTruthError, match="no column 'request_id'"):
        check_label_file(tmp_path, GroundTruth(path="labels.csv", label="label"), None)
