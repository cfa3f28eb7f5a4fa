"""The closed loop of test_monitor_loop.py on the scipy-drift backend: the same LightGBM project, the same
helpers (monitor_loop_helpers.py), the same specs with ``detector.backend: scipy-drift`` and nothing else
changed. The deployment is the in-memory serving stand-in.

Covers: detectors per version recorded in state and reused (no alibi-detect in them); no drift on
reference-like traffic, drift found and named on shifted traffic (exit codes 0/3/1, history, gauges); the same
decisions and p-values as alibi-detect on the same window; bad rows; a monitor moved from alibi-detect by
its backend alone; method psi; delayed labels revealing decay; alert, retrain through plan/apply, rollback;
the report; the provider contract.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from ml_framework.plugins.models.predictor import load_predictor
from ml_framework.plugins.models.testing import write_data, write_project
from ml_framework.plugins.monitoring.testing import monitor_specs, traffic_frame, write_labels, write_traffic
from ml_framework.testing.contract import ProviderContract

from monitor_loop_helpers import (
    DRIFT_BACKENDS,
    FEATURES,
    Loop,
    detector,
    make_loop,
    on_backend,
    providers,
    run_json,
)

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("clean_ml_env", "bentoml_home")]

BACKEND = "scipy-drift"


def scipy_specs(**kwargs) -> str:
    """monitor_specs(...) as test_monitor_loop.py writes them, on scipy-drift."""
    return on_backend(monitor_specs(**kwargs), BACKEND)


@pytest.fixture
def loop(tmp_path):
    made = make_loop(tmp_path, backend=BACKEND)
    yield made
    made.close()


# -- apply ---------------------------------------------------------------------------------------------------------

def test_apply_builds_one_detector_per_served_version_and_then_nothing_to_do(loop):
    outputs = loop.harness.store.get("monitor.fraud-drift").outputs
    assert outputs["versions"] == ["v1"] and outputs["deployment"] == "fraud-api"
    built = outputs["detectors"]["v1"]
    assert built["method"] == "auto" and built["reference_rows"] == 2000 and not built["sampled"]  # `tabular` is auto
    assert built["prediction_drift"] is True and built["columns"] == 4
    folder = loop.root / built["path"]
    assert sorted(p.name for p in folder.iterdir()) == ["detector.json", "meta.json", "reference.npy"]
    assert not loop.harness.plan().has_changes
    stamp = (folder / "meta.json").stat().st_mtime_ns
    plan = loop.harness.plan(overrides=["monitors.fraud-drift.on_drift=[alert,retrain]"])
    assert [c.address for c in plan.pending()] == ["monitor.fraud-drift"]
    assert loop.harness.apply(plan=plan).ok
    assert (folder / "meta.json").stat().st_mtime_ns == stamp  # actions changed, detectors reused


def test_read_reports_a_deleted_folder_and_destroy_removes_it(loop):
    import shutil

    folder = loop.root / loop.harness.store.get("monitor.fraud-drift").outputs["detectors"]["v1"]["path"]
    shutil.rmtree(folder)
    plan = loop.harness.plan()
    assert [c.address for c in plan.pending()] == ["monitor.fraud-drift"]
    loop.apply()
    assert (folder / "meta.json").is_file()
    assert loop.harness.destroy().ok
    assert not (loop.root / ".ml" / "monitors" / "fraud-drift").exists()


# -- run: exit codes, drift named, inconclusive ------------------------------------------------------------------------

def test_run_exit_codes_no_traffic_no_drift_drift_and_error(loop):
    empty = loop.ml("monitor", "run")
    assert empty.exit_code == 0, empty.output
    assert "inconclusive" in empty.output and "no traffic" in empty.output

    loop.traffic(1000, seed=1)
    calm, data = run_json(loop)
    assert calm.exit_code == 0, calm.output
    assert data[0]["status"] == "ok" and data[0]["versions"][0]["drift"]["drifted"] == []
    assert data[0]["versions"][0]["drift"]["method"] == "auto"

    loop.traffic(1000, seed=2, shift={"txn_count_7d": 0.8})
    drift = loop.ml("monitor", "run", "fraud-drift")
    assert drift.exit_code == 3, drift.output
    assert re.search(r"txn_count_7d\s+ks\s+p=\S+\s+d=\S+\s+drift", drift.output)
    assert "ALERT monitor=fraud-drift" in drift.output and "txn_count_7d(p=" in drift.output

    unknown = loop.ml("monitor", "run", "fraud-drfit")
    assert unknown.exit_code == 1 and "did you mean 'fraud-drift'" in unknown.output

    runs = json.loads(loop.ml("monitor", "history", "fraud-drift", "--json").stdout)
    assert [r["status"] for r in runs] == ["drift", "ok", "inconclusive"]
    assert "txn_count_7d" in runs[0]["drifted"]
    gauges = loop.ml("monitor", "metrics")
    assert 'ml_monitor_drift{monitor="fraud-drift",deployment="fraud-api",model_version="v1"} 1' in gauges.stdout


def test_small_windows_are_inconclusive(loop):
    loop.traffic(60, seed=3, shift={"amount_mean_7d": 3.0})
    result, data = run_json(loop)
    assert result.exit_code == 0 and data[0]["status"] == "inconclusive"
    assert "fewer than min_samples (100)" in " ".join(data[0]["versions"][0]["drift"]["notes"])


def test_rows_missing_features_nans_and_unseen_categories(loop):
    loop.traffic(1000, seed=4, drop={"amount_mean_7d": 0.3})
    frame, _ = loop.reference()
    odd = traffic_frame(frame, 200, seed=5, replace={"segment": "crypto"})
    odd.loc[odd.index[:50], "txn_count_7d"] = np.nan
    write_traffic(loop.root, "fraud-api", odd, version="v1", features=FEATURES, seed=5)
    result, data = run_json(loop, "--no-actions")
    features = {f["name"]: f for f in data[0]["versions"][0]["drift"]["features"]}
    assert 190 <= features["amount_mean_7d"]["missing"] <= 300
    assert features["txn_count_7d"]["missing"] == 50
    assert features["segment"]["unseen"] == {"crypto": 200} and features["segment"]["test"] == "chi2"
    assert features["amount_mean_7d"]["p_val"] is not None  # tested on the rows that have it
    assert "segment" in data[0]["versions"][0]["drift"]["drifted"]  # a fifth of the traffic in a new segment


# -- the same answers as alibi-detect --------------------------------------------------------------------------------

def both_backends_specs() -> str:
    """One deployment watched by two monitors that differ only in ``detector.backend``."""
    specs = monitor_specs(monitor="on-alibi")
    second = specs.split("---\n", 1)[1].replace("on-alibi", "on-scipy")
    return specs + "---\n" + on_backend(second, BACKEND)


def test_the_same_window_gets_the_same_answer_from_both_backends(tmp_path):
    root = write_project(tmp_path / "proj", rows=2000)
    (root / "specs" / "monitor.yaml").write_text(both_backends_specs())
    made = Loop(root, {**providers(), BACKEND: DRIFT_BACKENDS[BACKEND]()})
    made.apply()
    try:
        for seed, shift in ((40, None), (41, {"txn_count_7d": 0.8}), (42, {"amount_mean_7d": 0.5})):
            made.traffic(1000, seed=seed, **({"shift": shift} if shift else {}))
            alibi = run_json(made, "on-alibi", "--no-actions")[1][0]["versions"][0]["drift"]
            ours = run_json(made, "on-scipy", "--no-actions")[1][0]["versions"][0]["drift"]
            assert (ours["status"], ours["drifted"]) == (alibi["status"], alibi["drifted"]), (seed, ours, alibi)
            assert ours["threshold"] == pytest.approx(alibi["threshold"])
            for mine, theirs in zip(ours["features"], alibi["features"]):
                assert (mine["name"], mine["test"], mine["n"]) == (theirs["name"], theirs["test"], theirs["n"])
                assert mine["p_val"] == pytest.approx(theirs["p_val"], rel=1e-5, abs=1e-12)
            if shift:
                assert list(shift)[0] in ours["drifted"]
            else:
                assert ours["status"] == "ok"
    finally:
        made.close()


def test_a_monitor_moves_from_alibi_detect_by_its_backend_alone(tmp_path):
    made = make_loop(tmp_path)  # on alibi-detect
    try:
        made.harness.close()
        made.providers[BACKEND] = DRIFT_BACKENDS[BACKEND]()  # installed beside alibi-detect
        spec_file = made.root / "specs" / "monitor.yaml"
        spec_file.write_text(on_backend(spec_file.read_text(), BACKEND))
        made = Loop(made.root, made.providers)
        plan = made.harness.plan()
        assert [c.address for c in plan.pending()] == ["monitor.fraud-drift"]
        made.apply()
        record = made.harness.store.get("monitor.fraud-drift")
        assert record.backend == BACKEND and record.outputs["detectors"]["v1"]["method"] == "auto"
        assert not made.harness.plan().has_changes
        made.traffic(1000, seed=43, shift={"txn_count_7d": 0.8})
        result, data = run_json(made, "--no-actions")
        assert result.exit_code == 3 and "txn_count_7d" in data[0]["versions"][0]["drift"]["drifted"]
    finally:
        made.close()


def test_method_psi_in_the_loop(tmp_path):
    made = make_loop(tmp_path, specs=monitor_specs(detector=detector(BACKEND, method="psi")), backend=BACKEND)
    try:
        made.traffic(1000, seed=44)
        calm, data = run_json(made)
        assert calm.exit_code == 0, calm.output
        features = data[0]["versions"][0]["drift"]["features"]
        assert all(f["test"] == "psi" and f["p_val"] is None and f["distance"] < 0.2 for f in features)
        made.traffic(1000, seed=45, shift={"amount_mean_7d": 1.5})
        moved = made.ml("monitor", "run")
        assert moved.exit_code == 3, moved.output
        assert re.search(r"amount_mean_7d\s+psi\s+p=\S+\s+d=\S+\s+drift", moved.output), moved.output
    finally:
        made.close()


# -- ground truth ------------------------------------------------------------------------------------------------------

GT_SPECS = scipy_specs(on_drift="[alert]", extra="""\
    ground_truth: {path: data/feedback.parquet, label: label, min_samples: 200, last: 1000, max_decay: {auc: 0.1}}
    on_decay: [alert]
    """)


def test_delayed_labels_reveal_concept_drift(tmp_path):
    from ml_framework.plugins.monitoring.reference import _training_frame  # with the labels, as test_monitor_loop

    made = make_loop(tmp_path, specs=GT_SPECS, backend=BACKEND)
    try:
        version = made.registry.get("fraud", "v1")
        frame = _training_frame(made.root, version, made.harness.store, 10_000, 0)[0]
        predict = load_predictor(version.bentoml_tag).predict
        rows = traffic_frame(frame, 1000, seed=7)
        ids = write_traffic(made.root, "fraud-api", rows, version="v1", predict=predict, features=FEATURES, seed=7)
        result = made.ml("monitor", "run")
        assert result.exit_code == 0 and "no labels yet" in result.output

        labels = list(rows["is_fraud"])
        write_labels(made.root / "data" / "feedback.parquet", ids + ["never-logged"], labels + [1])
        calm, data = run_json(made)
        perf = data[0]["versions"][0]["performance"]
        assert calm.exit_code == 0, calm.output
        assert perf["status"] == "ok" and perf["n"] == 1000 and perf["unmatched_labels"] == 1

        rows2 = traffic_frame(frame, 1000, seed=8)
        ids2 = write_traffic(made.root, "fraud-api", rows2, version="v1", predict=predict, features=FEATURES, seed=8)
        write_labels(made.root / "data" / "feedback.parquet", ids + ids2, labels + list(1 - rows2["is_fraud"]))
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


# -- actions -----------------------------------------------------------------------------------------------------------

def test_retrain_goes_through_plan_apply_and_gates(tmp_path):
    made = make_loop(tmp_path, specs=scipy_specs(on_drift="[alert, retrain]"), backend=BACKEND,
                     gates=("auc >= 0.70", "auc >= production.auc - 0.1"))
    try:
        made.traffic(1000, seed=9, shift={"amount_mean_7d": 1.0})
        unchanged = made.ml("monitor", "run")
        assert unchanged.exit_code == 3
        assert "ALERT monitor=fraud-drift" in unchanged.output
        assert "action retrain: skipped the training data is unchanged since v1" in unchanged.output

        write_data(made.root, rows=2400, seed=11)
        retrained = made.ml("monitor", "run")
        assert retrained.exit_code == 3, retrained.output
        assert re.search(r"action retrain: succeeded trained fraud:v2 \(accepted, aliases: candidate, production\)",
                         retrained.output), retrained.output
        outputs = made.harness.store.get("monitor.fraud-drift").outputs
        assert outputs["versions"] == ["v2"] and "v2" in outputs["detectors"]
        assert outputs["detectors"]["v2"]["method"] == "auto"
        assert not made.harness.plan().has_changes

        write_data(made.root, rows=2600, seed=12)
        assert "action retrain: skipped cooldown" in made.ml("monitor", "run").output
    finally:
        made.close()


def test_rollback_moves_production_back(tmp_path):
    made = make_loop(tmp_path, specs=scipy_specs(on_drift="[rollback]"), backend=BACKEND)
    try:
        write_data(made.root, rows=2400, seed=16)
        made.apply()
        assert made.registry.resolve("fraud").label == "v2"
        made.traffic(1000, label="v2", seed=17, shift={"amount_mean_7d": 1.0})
        result = made.ml("monitor", "run")
        assert result.exit_code == 3, result.output
        assert "action rollback: succeeded production fraud v2 → v1" in result.output
        assert made.registry.resolve("fraud").label == "v1"
        assert made.harness.plan().drift
    finally:
        made.close()


# -- watch and report --------------------------------------------------------------------------------------------------

def test_report_has_distributions_p_values_predictions_and_runs(loop):
    for seed in range(3):
        loop.traffic(400, seed=20 + seed, shift={"amount_mean_7d": 0.4 * seed})
        loop.ml("monitor", "run")
    result = loop.ml("monitor", "report", "fraud-drift", "--log", "all")
    assert result.exit_code == 0, result.output
    html = (loop.root / ".ml" / "reports" / "fraud-drift.html").read_text()
    for part in ("Prediction distribution", "amount_mean_7d", "segment", "txn_count_7d", "Recent runs",
                 "every logged row of the whole log (1,200 rows)", "method auto"):
        assert part in html, part
    assert "<script" not in html and html.count("<svg") >= 8
    watched = loop.ml("monitor", "watch", "--iterations", "2", "--interval", "1s")
    assert watched.exit_code == 0, watched.output
    assert watched.output.count("monitor.fraud-drift → deployment fraud-api") == 2


# -- the contract every provider passes ----------------------------------------------------------------------------------

class TestScipyDriftContract(ProviderContract):
    @pytest.fixture
    def contract_project(self, tmp_path):
        root = write_project(tmp_path / "contract", rows=1500)
        (root / "specs" / "monitor.yaml").write_text(scipy_specs())
        return root

    @pytest.fixture
    def contract_providers(self):
        return providers(backend=BACKEND)
