"""The closed loop on a real model: LightGBM trained on the synthetic project, detectors built by the
alibi-detect provider at apply, synthetic traffic written straight into the prediction log, and
`ml monitor run|watch|report|history|metrics` in-process. The deployment is the in-memory serving stand-in.

Covers: detectors per version recorded in state and reused; exit codes 0/3/1; drift named; no traffic and
too-small windows inconclusive; bad rows (missing features, NaNs, unseen categories); a sampled reference;
delayed labels revealing concept drift; retrain through plan/apply and gates; rollback; watch; the report.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from ml_framework.testing.contract import ProviderContract
from ml_framework.plugins.monitoring.reference import load_reference
from ml_framework.plugins.monitoring.testing import monitor_specs, serving_provider, traffic_frame, write_labels, write_traffic
from ml_framework.plugins.models.predictor import load_predictor
from ml_framework.plugins.models.testing import write_data, write_project

# The loop's helpers are shared with the other drift backends' loop tests (test_monitor_scipy.py).
from monitor_loop_helpers import FEATURES, make_loop, providers, run_json

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("clean_ml_env", "bentoml_home")]


@pytest.fixture
def loop(tmp_path):
    made = make_loop(tmp_path)
    yield made
    made.close()


# -- apply ---------------------------------------------------------------------------------------------------------

def test_apply_builds_one_detector_per_served_version_and_then_nothing_to_do(loop):
    outputs = loop.harness.store.get("monitor.fraud-drift").outputs
    assert outputs["versions"] == ["v1"] and outputs["deployment"] == "fraud-api"
    detector = outputs["detectors"]["v1"]
    assert detector["method"] == "tabular" and detector["reference_rows"] == 2000 and not detector["sampled"]
    assert detector["prediction_drift"] is True and detector["columns"] == 4
    folder = loop.root / detector["path"]
    assert (folder / "detector" / "config.toml").is_file() and (folder / "detector" / "x_ref.npy").is_file()
    assert not loop.harness.plan().has_changes
    stamp = (folder / "meta.json").stat().st_mtime_ns
    plan = loop.harness.plan(overrides=["monitors.fraud-drift.on_drift=[alert,retrain]"])
    assert [c.address for c in plan.pending()] == ["monitor.fraud-drift"]
    assert loop.harness.apply(plan=plan).ok
    assert (folder / "meta.json").stat().st_mtime_ns == stamp  # actions changed, detectors reused


# -- run: exit codes, drift named, inconclusive ------------------------------------------------------------------------

def test_run_exit_codes_no_traffic_no_drift_drift_and_error(loop):
    empty = loop.ml("monitor", "run")
    assert empty.exit_code == 0, empty.output
    assert "inconclusive" in empty.output and "no traffic" in empty.output

    loop.traffic(1000, seed=1)
    calm, data = run_json(loop)
    assert calm.exit_code == 0, calm.output
    assert data[0]["status"] == "ok" and data[0]["versions"][0]["drift"]["drifted"] == []

    loop.traffic(1000, seed=2, shift={"txn_count_7d": 0.8})
    drift = loop.ml("monitor", "run", "fraud-drift")
    assert drift.exit_code == 3, drift.output
    assert re.search(r"txn_count_7d\s+ks\s+p=\S+\s+d=\S+\s+drift", drift.output)
    assert "ALERT monitor=fraud-drift" in drift.output and "txn_count_7d(p=" in drift.output

    unknown = loop.ml("monitor", "run", "fraud-drfit")
    assert unknown.exit_code == 1 and "did you mean 'fraud-drift'" in unknown.output

    history = loop.ml("monitor", "history", "fraud-drift", "--json")
    assert history.exit_code == 0
    runs = json.loads(history.stdout)
    assert [r["status"] for r in runs] == ["drift", "ok", "inconclusive"]
    assert "txn_count_7d" in runs[0]["drifted"]
    assert "drift" in loop.ml("monitor", "history").output
    gauges = loop.ml("monitor", "metrics")
    assert 'ml_monitor_drift{monitor="fraud-drift",deployment="fraud-api",model_version="v1"} 1' in gauges.stdout


def test_small_windows_are_inconclusive(loop):
    loop.traffic(60, seed=3, shift={"amount_mean_7d": 3.0})
    result, data = run_json(loop)
    assert result.exit_code == 0
    assert data[0]["status"] == "inconclusive"
    assert "fewer than min_samples (100)" in " ".join(data[0]["versions"][0]["drift"]["notes"])


def test_rows_of_unknown_or_no_version_are_skipped_and_said(loop):
    loop.traffic(300, seed=30)
    frame, _ = loop.reference()
    write_traffic(loop.root, "fraud-api", traffic_frame(frame, 40, seed=31), version="v9", features=FEATURES)
    write_traffic(loop.root, "fraud-api", traffic_frame(frame, 20, seed=32), version=None, features=FEATURES)
    result, data = run_json(loop)
    assert result.exit_code == 0, result.output
    assert [v["model_version"] for v in data[0]["versions"]] == ["v1"]
    assert data[0]["versions"][0]["drift"]["n"] == 300
    assert "40 logged rows come from v9, which the registry does not know: skipped" in data[0]["notes"]
    assert "20 logged rows name no model version: skipped" in data[0]["notes"]


def test_rows_missing_features_nans_and_unseen_categories(loop):
    ids, _ = loop.traffic(1000, seed=4, drop={"amount_mean_7d": 0.3})
    frame, _ = loop.reference()
    odd = traffic_frame(frame, 200, seed=5, replace={"segment": "crypto"})
    odd.loc[odd.index[:50], "txn_count_7d"] = np.nan
    write_traffic(loop.root, "fraud-api", odd, version="v1", features=FEATURES, seed=5)
    result, data = run_json(loop, "--no-actions")
    features = {f["name"]: f for f in data[0]["versions"][0]["drift"]["features"]}
    assert 190 <= features["amount_mean_7d"]["missing"] <= 300  # 30% of the 800 rows of the first batch in the window
    assert features["txn_count_7d"]["missing"] == 50
    assert features["segment"]["unseen"] == {"crypto": 200}
    assert features["amount_mean_7d"]["p_val"] is not None  # tested on the rows that have it
    text = loop.ml("monitor", "run", "--no-actions")
    assert "unseen: crypto ×200" in text.output and "50 missing" in text.output


def test_a_reference_too_large_is_sampled_and_reported(tmp_path):
    specs = monitor_specs(detector="{backend: alibi-detect, reference: {max_rows: 500, seed: 3}}")
    made = make_loop(tmp_path, specs=specs)
    try:
        detector = made.harness.store.get("monitor.fraud-drift").outputs["detectors"]["v1"]
        assert detector["sampled"] and detector["reference_rows"] == 500 and detector["reference_total"] == 2000
        made.traffic(500, seed=6)
        result = made.ml("monitor", "run")
        assert "vs 500 reference rows (sampled from 2,000)" in result.output
        report = made.ml("monitor", "report", "-o", str(tmp_path / "r.html"))
        assert report.exit_code == 0, report.output
        html = (tmp_path / "r.html").read_text()
        assert "a seeded sample of 2,000" in html
    finally:
        made.close()


def test_the_reference_is_saved_at_training_and_outlives_changed_data(loop):
    import pandas as pd

    from ml_framework.plugins.models.artifacts import artifact_dir
    from ml_framework.plugins.models.training_reference import REFERENCE_FILE

    version = loop.registry.get("fraud", "v1")
    assert (artifact_dir(version.bentoml_tag) / REFERENCE_FILE).is_file()
    assert version.lineage["reference"]["rows"] == version.lineage["rows"]["total"] == 2000
    saved = load_reference(loop.root, version, loop.harness.store)
    assert saved.source == "training frame of fraud:v1 (saved at training)" and not saved.notes
    scores = load_predictor(version.bentoml_tag).predict(saved.frame[FEATURES])
    assert np.allclose(saved.predictions, scores)  # the model's own predictions on those rows

    write_data(loop.root, rows=2400, seed=11)  # the sources are rewritten after training
    again = load_reference(loop.root, version, loop.harness.store)
    pd.testing.assert_frame_equal(again.frame, saved.frame)
    assert again.total == 2000 and not again.notes

    wider = load_reference(loop.root, version, loop.harness.store, features=FEATURES + ["customer_id"], predictions=False)
    assert "customer_id" in wider.frame.columns  # a watched column the model does not use: the frame is rebuilt
    assert any("the reference saved with fraud:v1 has no column 'customer_id'" in n for n in wider.notes), wider.notes

    (artifact_dir(version.bentoml_tag) / REFERENCE_FILE).unlink()  # a version from before references were saved
    rebuilt = load_reference(loop.root, version, loop.harness.store)
    assert rebuilt.total == 2400 and rebuilt.source == "training frame of fraud:v1"
    assert any("the training data changed since v1" in n for n in rebuilt.notes)
    assert any("trained before references were saved" in n for n in rebuilt.notes)


# -- ground truth ------------------------------------------------------------------------------------------------------

GT_SPECS = monitor_specs(on_drift="[alert]", extra="""\
    ground_truth: {path: data/feedback.parquet, label: label, min_samples: 200, last: 1000, max_decay: {auc: 0.1}}
    on_decay: [alert]
    """)


def test_delayed_labels_reveal_concept_drift(tmp_path):
    from ml_framework.plugins.monitoring.reference import _training_frame

    made = make_loop(tmp_path, specs=GT_SPECS)
    try:
        version = made.registry.get("fraud", "v1")
        frame = _training_frame(made.root, version, made.harness.store, 10_000, 0)[0]
        predict = load_predictor(version.bentoml_tag).predict
        rows = traffic_frame(frame, 1000, seed=7)
        ids = write_traffic(made.root, "fraud-api", rows, version="v1", predict=predict, features=FEATURES, seed=7)
        result = made.ml("monitor", "run")
        assert result.exit_code == 0 and "no labels yet" in result.output

        labels = list(rows["is_fraud"])  # the outcomes arrive: the world behaves as the model learned
        write_labels(made.root / "data" / "feedback.parquet", ids + ["never-logged"], labels + [1])
        calm, data = run_json(made)
        perf = data[0]["versions"][0]["performance"]
        assert calm.exit_code == 0, calm.output
        assert perf["status"] == "ok" and perf["n"] == 1000 and perf["unmatched_labels"] == 1

        rows2 = traffic_frame(frame, 1000, seed=8)  # the same kind of inputs...
        ids2 = write_traffic(made.root, "fraud-api", rows2, version="v1", predict=predict, features=FEATURES, seed=8)
        flipped = list(1 - rows2["is_fraud"])  # ...but the outcome now runs the other way
        write_labels(made.root / "data" / "feedback.parquet", ids + ids2, labels + flipped)
        decay = made.ml("monitor", "run")
        assert decay.exit_code == 3, decay.output
        assert "performance on 1000 labelled rows: decay" in decay.output
        assert "ALERT monitor=fraud-drift" in decay.output and "decay=auc=" in decay.output
        _, again = run_json(made, "--no-actions")
        assert again[0]["versions"][0]["drift"]["drifted"] == []  # the inputs did not move: only the labels tell
        gauges = made.ml("monitor", "metrics").stdout
        assert 'ml_monitor_status{monitor="fraud-drift",deployment="fraud-api"} 2' in gauges
    finally:
        made.close()


SLICE_SPECS = monitor_specs(on_drift="[alert]", extra="""\
    ground_truth: {path: data/feedback.parquet, label: label, min_samples: 100, last: 2000, slices: [channel],
                   max_decay: {auc: 0.3}}
    on_decay: [alert]
    """)


@pytest.mark.parametrize("mode", ["act", "report"])
def test_a_decayed_slice_segment_acts_unless_reported(tmp_path, mode):
    specs = SLICE_SPECS if mode == "act" else SLICE_SPECS.replace("max_decay: {auc: 0.3}}",
                                                                   "max_decay: {auc: 0.3}, slice_decay: report}")
    made = make_loop(tmp_path, specs=specs)
    try:
        version = made.registry.get("fraud", "v1")
        assert set(version.lineage["slices"]["channel"]) == {"online", "pos"}  # validation values per segment
        frame = load_reference(made.root, version, made.harness.store, predictions=False).frame
        predict = load_predictor(version.bentoml_tag).predict
        rows = traffic_frame(frame, 1200, seed=21)
        ids = write_traffic(made.root, "fraud-api", rows, version="v1", predict=predict, features=FEATURES, seed=21)
        scores = np.asarray(predict(rows[FEATURES]))  # outcomes drawn as the model expects them...
        true = (np.random.default_rng(21).random(len(rows)) < scores).astype(int)
        channel = np.where(np.arange(len(rows)) % 4 == 0, "pos", "online")  # a quarter of the traffic
        labels = np.where(channel == "pos", 1 - true, true)  # in that segment the outcome now runs the other way
        write_labels(made.root / "data" / "feedback.parquet", ids, labels.tolist(), channel=channel.tolist())
        result, data = run_json(made, "--no-actions")
        perf = data[0]["versions"][0]["performance"]
        overall = [m for m in perf["metrics"] if not m["slice"]]
        pos = [m for m in perf["metrics"] if (m["slice"], m["segment"], m["metric"]) == ("channel", "pos", "auc")]
        assert overall and not any(m["decayed"] for m in overall), overall  # the whole still looks fine...
        assert pos and pos[0]["decayed"] and pos[0]["n"] == 300, pos  # ...one segment does not
        text = made.ml("monitor", "run")
        if mode == "act":
            assert result.exit_code == 3 and perf["status"] == "decay"
            assert "slice channel=pos: auc" in text.output and "decay" in text.output
            assert re.search(r"ALERT monitor=fraud-drift .*decay=auc\[channel=pos\]=0\.\d+<0\.\d+", text.output), text.output
        else:
            assert result.exit_code == 0 and perf["status"] == "ok", perf
            assert "reported, not acted on" in text.output and "ALERT" not in text.output
        gauges = made.ml("monitor", "metrics").stdout
        assert re.search(r'ml_monitor_slice_decay\{monitor="fraud-drift",model_version="v1",metric="auc",'
                         r'slice="channel",segment="pos"\} 1', gauges), gauges
    finally:
        made.close()


# -- actions -----------------------------------------------------------------------------------------------------------

RETRAIN_SPECS = monitor_specs(on_drift="[alert, retrain]")


def test_retrain_goes_through_plan_apply_and_gates(tmp_path):
    made = make_loop(tmp_path, specs=RETRAIN_SPECS, gates=("auc >= 0.70", "auc >= production.auc - 0.1"))
    try:
        made.traffic(1000, seed=9, shift={"amount_mean_7d": 1.0})
        unchanged = made.ml("monitor", "run")
        assert unchanged.exit_code == 3
        assert "action retrain: skipped the training data is unchanged since v1" in unchanged.output
        assert [v.label for v in made.registry.versions("fraud")] == ["v1"]

        write_data(made.root, rows=2400, seed=11)  # fresh labelled data arrived
        retrained = made.ml("monitor", "run")
        assert retrained.exit_code == 3, retrained.output
        assert "retrain: model.fraud training data changed" in retrained.output
        assert re.search(r"action retrain: succeeded trained fraud:v2 \(accepted, aliases: candidate, production\)",
                         retrained.output), retrained.output
        assert "deployment.fraud-api" in retrained.output and "monitor.fraud-drift" in retrained.output
        v2 = made.registry.get("fraud", "v2")
        assert v2.status == "accepted" and {g["gate"]: g["status"] for g in v2.gates} == {
            "auc >= 0.70": "passed", "auc >= production.auc - 0.1": "passed"}
        outputs = made.harness.store.get("monitor.fraud-drift").outputs
        assert outputs["versions"] == ["v2"] and "v2" in outputs["detectors"]
        assert not made.harness.plan().has_changes  # the loop left nothing half-applied

        write_data(made.root, rows=2600, seed=12)
        cooled = made.ml("monitor", "run")
        assert "action retrain: skipped cooldown" in cooled.output
    finally:
        made.close()


def test_a_retrain_that_fails_its_gates_changes_nothing(tmp_path):
    made = make_loop(tmp_path, specs=RETRAIN_SPECS, gates=("auc >= 0.70", "auc >= production.auc + 0.2"))
    try:
        made.traffic(1000, seed=13, shift={"amount_mean_7d": 1.0})
        write_data(made.root, rows=2400, seed=14)
        result = made.ml("monitor", "run")
        assert result.exit_code == 3
        assert "action retrain: failed model.fraud: v2 rejected" in result.output
        assert made.registry.resolve("fraud").label == "v1"
        assert made.registry.get("fraud", "v2").status == "rejected"
    finally:
        made.close()


def test_retrain_refuses_to_apply_unreviewed_spec_edits(tmp_path):
    made = make_loop(tmp_path, specs=RETRAIN_SPECS)
    try:
        made.traffic(1000, seed=15, shift={"amount_mean_7d": 1.0})
        models = made.root / "specs" / "models.yaml"
        models.write_text(models.read_text().replace("num_leaves: 15", "num_leaves: 31"))
        result = made.ml("monitor", "run")
        assert "action retrain: failed refused: the plan would also apply changes nobody reviewed" in result.output
        assert [v.label for v in made.registry.versions("fraud")] == ["v1"]
    finally:
        made.close()


def test_rollback_moves_production_back(tmp_path):
    made = make_loop(tmp_path, specs=monitor_specs(on_drift="[rollback]"))
    try:
        write_data(made.root, rows=2400, seed=16)
        made.apply()  # v2 trained and promoted; the monitor follows it
        assert made.registry.resolve("fraud").label == "v2"
        made.traffic(1000, label="v2", seed=17, shift={"amount_mean_7d": 1.0})
        result = made.ml("monitor", "run")
        assert result.exit_code == 3, result.output
        assert "action rollback: succeeded production fraud v2 → v1" in result.output
        assert made.registry.resolve("fraud").label == "v1"
        assert made.harness.plan().drift  # the monitor now serves v1: the next plan updates it
    finally:
        made.close()


class RollbackServing:
    """A serving stand-in with a rollback of its own (what the BentoML plugin provides)."""

    capabilities = ("rollback",)

    def __init__(self):
        self.inner = serving_provider()
        self.calls = []

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def rollback(self, record, project_dir, *, to=None, progress=None, reason="ml rollback"):
        self.calls.append((record.address, reason))
        progress("traffic back on the previous revision")
        return {**dict(record.outputs or {}), "model_version": "v1", "revision": 2}


def test_rollback_uses_the_serving_backend_when_it_has_one(tmp_path):
    serving = RollbackServing()
    made = make_loop(tmp_path, specs=monitor_specs(on_drift="[rollback]"), serving=serving)
    try:
        made.traffic(1000, seed=18, shift={"amount_mean_7d": 1.0})
        result = made.ml("monitor", "run")
        assert "deployment.fraud-api: traffic back on the previous revision" in result.output
        assert "action rollback: succeeded deployment.fraud-api rolled back by its backend: now serving v1" in result.output
        assert made.harness.store.get("deployment.fraud-api").outputs["revision"] == 2  # recorded in state
        assert serving.calls == [("deployment.fraud-api", "monitor.fraud-drift: drift in v1")]
        again = made.ml("monitor", "run")
        assert "action rollback: skipped cooldown" in again.output and len(serving.calls) == 1
    finally:
        made.close()


# -- watch and report --------------------------------------------------------------------------------------------------

def test_watch_loops_on_the_schedule(loop):
    loop.traffic(300, seed=19)
    result = loop.ml("monitor", "watch", "--iterations", "2", "--interval", "1s")
    assert result.exit_code == 0, result.output
    assert result.output.count("monitor.fraud-drift → deployment fraud-api") == 2
    assert len(json.loads(loop.ml("monitor", "history", "--json").stdout)) == 2


def test_report_has_distributions_p_values_predictions_and_runs(loop, tmp_path):
    for seed in range(3):
        loop.traffic(400, seed=20 + seed, shift={"amount_mean_7d": 0.4 * seed})
        loop.ml("monitor", "run")
    result = loop.ml("monitor", "report", "fraud-drift", "--log", "all")
    assert result.exit_code == 0, result.output
    html = (loop.root / ".ml" / "reports" / "fraud-drift.html").read_text()
    for part in ("Prediction distribution", "amount_mean_7d", "segment", "txn_count_7d", "Recent runs",
                 "every logged row of the whole log (1,200 rows)"):
        assert part in html, part
    assert "<script" not in html and html.count("<svg") >= 8
    assert len(html) < 150_000


# -- the contract every provider passes ----------------------------------------------------------------------------------

class TestAlibiDetectContract(ProviderContract):
    @pytest.fixture
    def contract_project(self, tmp_path):
        root = write_project(tmp_path / "contract", rows=1500)
        (root / "specs" / "monitor.yaml").write_text(monitor_specs())
        return root

    @pytest.fixture
    def contract_providers(self):
        return providers()
