"""Drift checks of the alibi-detect backend on synthetic data, through the code path `ml monitor run` uses
(bundle built and saved with save_detector, loaded with load_detector, windows from LogColumns).

Covers: injected drift named; no drift over many windows keeps false alarms near p_val (Bonferroni and
FDR); too-small and empty windows are inconclusive; NaNs and rows without a feature are tested exactly on
the rows that have one; features never logged; unseen categories; method ks and mmd; a sampled reference.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from ml_framework.plugins.alibi_detect.config import AlibiDetectSettings
from ml_framework.plugins.alibi_detect.detectors import Bundle, build_bundle, open_bundle
from ml_framework.plugins.monitoring.logcache import LogColumns
from ml_framework.plugins.monitoring.reference import Reference
from ml_framework.plugins.monitoring.results import DRIFT, INCONCLUSIVE, OK
from ml_framework.plugins.monitoring.schema import PREDICTION

from drift_data import FEATURES, population, score, window  # noqa: E402 - shared with test_scipy_drift.py


def bundle_for(tmp_path, *, method="tabular", correction="bonferroni", rows=4000, predictions=True, name="b",
               reference=None, **settings) -> Bundle:
    frame = reference if reference is not None else population(rows, seed=0)
    ref = Reference(frame=frame[FEATURES], features=FEATURES, task="binary",
                    predictions=score(frame) if predictions else None, rows=len(frame), total=len(frame))
    config = AlibiDetectSettings(method=method, correction=correction, **settings)
    build_bundle(tmp_path / name, ref, config, model="m", version="v1", predictions=predictions)
    return open_bundle(tmp_path / name)


@pytest.fixture(scope="module")
def tabular(tmp_path_factory):
    return bundle_for(tmp_path_factory.mktemp("tabular"))


def by_name(result):
    return {f.name: f for f in result.features}


def test_bundle_is_saved_with_alibi_and_described(tabular):
    folder = tabular.folder
    assert (folder / "detector" / "config.toml").is_file() and (folder / "meta.json").is_file()
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["columns"] == FEATURES + [PREDICTION]
    assert meta["reference"]["rows"] == 4000 and not meta["reference"]["sampled"]
    kinds = {f["name"]: f["kind"] for f in meta["schema"]["features"]}
    assert kinds == {"a": "numeric", "b": "numeric", "c": "numeric", "d": "numeric", "seg": "categorical"}
    assert type(tabular.detector).__name__ == "TabularDrift"  # loaded back with load_detector


def test_injected_drift_in_one_feature_is_detected_and_named(tabular):
    result = tabular.check(window(population(1000, seed=5, shift={"b": 1.0})), min_samples=100)
    assert result.status == DRIFT
    assert result.drifted() == ["b"]  # b does not feed the score, so predictions do not move
    features = by_name(result)
    assert features["b"].p_val < result.threshold and features["b"].distance > 0.1
    assert result.threshold == pytest.approx(0.05 / 6)
    assert all(not features[n].drift for n in ("a", "c", "d", "seg", PREDICTION))


def test_categorical_drift_is_a_chi_squared_test(tabular):
    result = tabular.check(window(population(1000, seed=6, seg_p=(0.2, 0.3, 0.5))), min_samples=100)
    assert result.drifted() == ["seg"]
    assert by_name(result)["seg"].test == "chi2"


def test_prediction_drift_is_part_of_the_same_family(tabular):
    frame = population(1000, seed=7)
    result = tabular.check(window(frame, predictions=np.clip(score(frame) + 0.2, 0, 1)), min_samples=100)
    assert result.drifted() == [PREDICTION]


@pytest.mark.parametrize("correction", ["bonferroni", "fdr"])
def test_false_alarms_stay_near_the_configured_rate(tmp_path, correction):
    bundle = bundle_for(tmp_path, correction=correction, rows=5000)
    alarms = [bundle.check(window(population(500, seed=100 + i)), min_samples=100).status == DRIFT
              for i in range(300)]
    rate = float(np.mean(alarms))
    assert 0.005 <= rate <= 0.09, rate  # p_val 0.05 over 6 tests (3 sigma of 300 windows: ±0.04)


def test_too_small_and_empty_windows_are_inconclusive_not_drift(tabular):
    small = tabular.check(window(population(50, seed=8, shift={"a": 5.0})), min_samples=100)
    assert small.status == INCONCLUSIVE and small.is_drift is None
    assert "fewer than min_samples (100)" in small.notes[-1]
    assert all(f.p_val is None for f in small.features)
    empty = tabular.check(LogColumns(), min_samples=100)
    assert empty.status == INCONCLUSIVE and "no traffic" in empty.notes[-1]


def test_nans_are_tested_on_the_rows_that_have_a_value(tabular):
    frame = population(1000, seed=9)
    frame.loc[frame.index[:300], "a"] = np.nan
    result = tabular.check(window(frame), min_samples=100)
    a = by_name(result)["a"]
    assert a.missing == 300 and a.n == 700
    from scipy.stats import ks_2samp

    expected = ks_2samp(tabular.detector.x_ref[:, 0], frame["a"].dropna().to_numpy(), mode="asymp")
    assert a.p_val == pytest.approx(expected.pvalue, rel=1e-4)
    assert result.status == OK  # the missing rows are not mistaken for drift
    shifted = population(1000, seed=10, shift={"a": 1.0})
    shifted.loc[shifted.index[:500], "a"] = np.nan
    assert "a" in tabular.check(window(shifted), min_samples=100).drifted()  # (predictions follow a)


def test_a_feature_no_row_carries_is_reported_not_tested(tabular):
    frame = population(1000, seed=11)
    result = tabular.check(window(frame.drop(columns=["c"]), predictions=score(frame)), min_samples=100)
    c = by_name(result)["c"]
    assert c.p_val is None and c.drift is None and c.missing == 1000 and c.note == "not in any logged row"
    assert any("not logged at all" in n for n in result.notes)
    assert result.status == OK and result.threshold == pytest.approx(0.05 / 6)  # still counted: conservative


def test_unseen_categories_are_named_and_counted(tabular):
    frame = population(1000, seed=12)
    frame.loc[frame.index[:40], "seg"] = "brand-new"
    result = tabular.check(window(frame), min_samples=100)
    seg = by_name(result)["seg"]
    assert seg.unseen == {"brand-new": 40}
    frame.loc[frame.index[:400], "seg"] = "brand-new"
    assert tabular.check(window(frame), min_samples=100).drifted() == ["seg"]


def test_histograms_are_aggregates_in_the_reference_bins(tabular):
    result = tabular.check(window(population(1000, seed=13)), min_samples=100)
    schema = {f.name: f for f in tabular.schema.features}
    assert len(result.histograms["a"]) == len(schema["a"].edges) - 1 == 20
    assert sum(result.histograms["a"]) == 1000
    assert len(result.histograms["seg"]) == len(schema["seg"].categories) + 2  # + missing, unseen
    assert sum(result.histograms[PREDICTION]) == 1000


def test_histograms_of_a_matrix_count_as_one_column_at_a_time_with_infinities_in_the_end_bins():
    from ml_framework.plugins.monitoring.schema import FeatureSchema, histogram, histograms

    rng = np.random.default_rng(3)
    features = [FeatureSchema(name=f"x{j}", kind="numeric", edges=list(np.linspace(-2, 2, 21))) for j in range(3)]
    features += [FeatureSchema(name="seg", kind="categorical", categories=["a", "b"]),
                 FeatureSchema(name="never", kind="numeric")]  # no edges: no bins
    X = rng.normal(0, 2, (3000, 5))
    X[::7, 1] = np.nan
    X[:, 3] = rng.integers(0, 4, 3000)
    X[:3, 0] = [np.inf, -np.inf, 1e300]
    together = histograms(features, X)
    assert together == {f.name: histogram(f, X[:, j]) for j, f in enumerate(features)}
    assert sum(together["x1"]) == 3000 - len(range(0, 3000, 7))  # missing values are not counted
    assert together["never"] == []
    low = histogram(features[0], np.array([-np.inf, -5.0]))
    high = histogram(features[0], np.array([np.inf, 1e300]))
    assert low[0] == 2 and high[-1] == 2


def test_method_ks_tests_numeric_features_only(tmp_path):
    bundle = bundle_for(tmp_path, method="ks")
    assert type(bundle.detector).__name__ == "KSDrift"
    result = bundle.check(window(population(1000, seed=14, seg_p=(0.1, 0.1, 0.8))), min_samples=100)
    assert by_name(result)["seg"].test == "none" and by_name(result)["seg"].drift is None
    assert result.status == OK
    assert any("method ks tests numeric features only" in n for n in result.notes)


def test_method_mmd_detects_a_joint_shift(tmp_path):
    bundle = bundle_for(tmp_path, method="mmd", mmd={"n_permutations": 50, "max_rows": 400})
    assert type(bundle.detector).__name__ == "MMDDrift"
    assert (bundle.folder / "prediction").is_dir()
    calm = bundle.check(window(population(400, seed=15)), min_samples=100)
    assert calm.status == OK and calm.p_val is not None
    moved = bundle.check(window(population(400, seed=16, shift={"a": 0.6, "c": 1.2})), min_samples=100)
    assert moved.status == DRIFT and moved.p_val < 0.025


def test_fdr_names_the_drifted_features(tmp_path):
    bundle = bundle_for(tmp_path, correction="fdr")
    result = bundle.check(window(population(1000, seed=17, shift={"b": 1.0, "d": 1.0})), min_samples=100)
    assert set(result.drifted()) == {"b", "d"} and result.threshold is not None


def test_reference_with_missing_values_builds(tmp_path):
    frame = population(3000, seed=18)
    frame.loc[frame.index[::10], "a"] = np.nan
    bundle = bundle_for(tmp_path, reference=frame)
    schema = {f.name: f for f in bundle.schema.features}
    assert schema["a"].ref_missing == pytest.approx(0.1)
    assert not np.isnan(bundle.detector.x_ref).any()
    assert bundle.check(window(population(1000, seed=19)), min_samples=100).status == OK


def test_multiclass_predictions_are_a_categorical_test(tmp_path):
    rng = np.random.default_rng(20)
    frame = population(4000, seed=0)
    classes = rng.choice(3, 4000, p=[0.6, 0.3, 0.1])
    ref = Reference(frame=frame[FEATURES], features=FEATURES, task="multiclass", predictions=classes,
                    prediction_kind="categorical", rows=4000, total=4000)
    build_bundle(tmp_path / "mc", ref, AlibiDetectSettings(), model="m", version="v1", predictions=True)
    bundle = open_bundle(tmp_path / "mc")
    assert bundle.schema.prediction.kind == "categorical" and bundle.columns[-1] == PREDICTION

    def logged(p, seed):
        live = window(population(1000, seed=seed))
        live.columns["prediction_class"] = np.random.default_rng(seed).choice(3, 1000, p=p)
        return live

    assert bundle.check(logged([0.6, 0.3, 0.1], 21), min_samples=100).status == OK
    moved = bundle.check(logged([0.3, 0.3, 0.4], 22), min_samples=100)
    assert moved.drifted() == [PREDICTION] and by_name(moved)[PREDICTION].test == "chi2"
