"""The scipy-drift backend on synthetic data, through the code path `ml monitor run` uses (folder built and
saved by build_bundle, opened by open_bundle, windows as LogColumns).

Covers: settings (defaults, alibi-detect's field names, `tabular` as `auto`, unknown fields and methods
rejected with a "did you mean" through `ml validate`); KS and chi-squared decisions on a known shift and on
none, equal to scipy.stats called directly (and to alibi-detect's TabularDrift where it is installed); the
Bonferroni and FDR corrections; PSI on numeric and categorical features; methods ks and chi2 testing one
kind of feature; missing values, absent features and small windows; importing the plugin loads no numpy,
scipy or pandas.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from ml_framework.plugins.monitoring.detection import decide, fdr
from ml_framework.plugins.monitoring.logcache import LogColumns
from ml_framework.plugins.monitoring.reference import Reference
from ml_framework.plugins.monitoring.results import DRIFT, INCONCLUSIVE, OK
from ml_framework.plugins.monitoring.schema import PREDICTION
from ml_framework.plugins.scipy_drift import ScipyDriftProvider
from ml_framework.plugins.scipy_drift.config import ScipyDriftSettings
from ml_framework.plugins.scipy_drift.detectors import Bundle, build_bundle, open_bundle, psi_value

ROOT = Path(__file__).resolve().parents[2]
from drift_data import FEATURES, population, score, window  # noqa: E402 - shared with test_monitor_drift.py


def bundle_for(tmp_path, *, rows=4000, predictions=True, name="b", reference=None, **settings) -> Bundle:
    frame = reference if reference is not None else population(rows, seed=0)
    ref = Reference(frame=frame[FEATURES], features=FEATURES, task="binary",
                    predictions=score(frame) if predictions else None, rows=len(frame), total=len(frame))
    build_bundle(tmp_path / name, ref, ScipyDriftSettings(**settings), model="m", version="v1",
                 predictions=predictions)
    return open_bundle(tmp_path / name)


@pytest.fixture(scope="module")
def auto(tmp_path_factory):
    return bundle_for(tmp_path_factory.mktemp("auto"))


def by_name(result):
    return {f.name: f for f in result.features}


# -- settings -----------------------------------------------------------------------------------------------------

def test_settings_defaults_and_ranges():
    settings = ScipyDriftSettings()
    assert settings.method == "auto" and settings.p_val == 0.05 and settings.correction == "bonferroni"
    assert settings.categorical == [] and settings.reference.max_rows == 50_000 and settings.reference.path is None
    assert settings.psi.threshold == 0.2 and settings.psi.bins == 10
    for bad in ({"p_val": 0.7}, {"p_val": 0}, {"correction": "holm"}, {"psi": {"threshold": 0}},
                {"psi": {"bins": 1}}, {"reference": {"max_rows": 10}}, {"unknown": 1}, {"reference": {"rows": 5}}):
        with pytest.raises(ValidationError):
            ScipyDriftSettings.model_validate(bad)


def test_a_monitor_switches_from_alibi_detect_by_its_backend_alone():
    from ml_framework.plugins.alibi_detect.config import AlibiDetectSettings

    shared = set(AlibiDetectSettings.model_fields) - {"mmd"}
    assert shared <= set(ScipyDriftSettings.model_fields)  # the same names for the same meanings
    block = {"method": "tabular", "p_val": 0.01, "correction": "fdr", "categorical": ["d"],
             "reference": {"path": "data/ref.parquet", "max_rows": 1000, "seed": 3}}
    alibi, ours = AlibiDetectSettings.model_validate(block), ScipyDriftSettings.model_validate(block)
    assert ours.method == "auto"  # alibi-detect's TabularDrift: the same tests
    assert {k: getattr(ours, k) for k in shared - {"method", "reference"}} == \
        {k: getattr(alibi, k) for k in shared - {"method", "reference"}}
    assert ours.reference.model_dump() == alibi.reference.model_dump()
    assert ScipyDriftSettings.model_validate({"method": "ks"}).method == "ks"
    with pytest.raises(ValidationError, match="alibi-detect's"):
        ScipyDriftSettings.model_validate({"method": "mmd"})


def test_provider_declares_the_monitor_kind_and_the_drift_checker():
    from ml_framework.contract import CORE_CAPABILITIES, verify_provider
    from ml_framework.plugins.monitoring.capabilities import DRIFT_CHECKER

    provider = ScipyDriftProvider()
    assert provider.name == "scipy-drift" and provider.kinds == ("Monitor",)
    assert provider.capabilities == ("configure", "drift_checker")
    assert provider.config_model("Monitor") is ScipyDriftSettings and provider.config_model("Model") is None
    capabilities = {c.name: c for c in (*CORE_CAPABILITIES, DRIFT_CHECKER)}
    verify_provider(provider, "scipy-drift", capabilities=capabilities, known_kinds=["Monitor"])
    assert provider.version.startswith("scipy ")


def test_unknown_fields_and_methods_are_rejected_with_did_you_mean(tmp_path):
    from ml_framework.plugins.monitoring.testing import monitor_specs, serving_provider
    from ml_framework.testing import run_cli

    root = tmp_path / "proj"
    (root / "specs").mkdir(parents=True)
    detector = "{backend: scipy-drift, method: kss, p_vale: 0.05, psi: {treshold: 0.3}, mmd: {max_rows: 100}}"
    (root / "specs" / "monitor.yaml").write_text(monitor_specs(detector=detector))
    result = run_cli(["validate"], providers={"serving": serving_provider(), "scipy-drift": ScipyDriftProvider()},
                     cwd=root)
    assert result.exit_code == 1, result.output
    out = result.output
    assert "specs/monitor.yaml:" in out
    assert "detector.method: Value error, unknown method 'kss'; did you mean 'ks'?" in out
    assert "detector.p_vale: unknown field" in out and "did you mean 'p_val'?" in out
    assert "detector.psi.treshold: unknown field" in out and "did you mean 'threshold'?" in out
    assert "detector.mmd: unknown field" in out  # alibi-detect's own block: not silently ignored

    (root / "specs" / "monitor.yaml").write_text(monitor_specs(detector="{backend: scipy-drift, method: tabular}"))
    ok = run_cli(["validate"], providers={"serving": serving_provider(), "scipy-drift": ScipyDriftProvider()}, cwd=root)
    assert "detector" not in ok.output and "1 error" in ok.output, ok.output  # only the model this project lacks


# -- Kolmogorov-Smirnov and chi-squared ------------------------------------------------------------------------------

def test_folder_holds_sorted_reference_test_state_and_meta(auto):
    folder = auto.folder
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["backend"] == "scipy-drift" and meta["method"] == "auto"
    assert meta["columns"] == FEATURES + [PREDICTION] and meta["reference"]["rows"] == 4000
    state = json.loads((folder / "detector.json").read_text())
    assert state["tests"] == ["ks", "ks", "ks", "ks", "chi2", "ks"]
    assert sum(state["counts"]["seg"]["counts"]) == 4000
    reference = np.load(folder / "reference.npy")
    assert reference.shape == (4000, 5) and (np.diff(reference, axis=0) >= 0).all()


def test_no_shift_is_no_drift_and_a_shift_is_drift_named(auto):
    calm = auto.check(window(population(1000, seed=5)), min_samples=100)
    assert calm.status == OK and calm.drifted() == [] and calm.method == "auto"
    moved = auto.check(window(population(1000, seed=5, shift={"b": 1.0})), min_samples=100)
    assert moved.status == DRIFT and moved.drifted() == ["b"]  # b does not feed the score
    b = by_name(moved)["b"]
    assert b.test == "ks" and b.p_val < moved.threshold and b.distance > 0.1
    assert moved.threshold == pytest.approx(0.05 / 6)


def test_categorical_drift_is_a_chi_squared_test(auto):
    result = auto.check(window(population(1000, seed=6, seg_p=(0.2, 0.3, 0.5))), min_samples=100)
    assert result.drifted() == ["seg"] and by_name(result)["seg"].test == "chi2"


def test_p_values_are_scipys_two_sample_tests(auto):
    from scipy.stats import chi2_contingency, ks_2samp

    ref, live = population(4000, seed=0), population(800, seed=7, shift={"a": 0.1})
    result = by_name(auto.check(window(live), min_samples=100))
    for name in ("a", "b", "c", "d"):
        expected = ks_2samp(ref[name].to_numpy(float), live[name].to_numpy(float), method="asymp")
        assert result[name].p_val == pytest.approx(expected.pvalue, rel=1e-9)
        assert result[name].distance == pytest.approx(expected.statistic, rel=1e-9)
    table = pd.crosstab(np.r_[np.zeros(4000), np.ones(800)], np.r_[ref["seg"], live["seg"]]).to_numpy()
    stat, p = chi2_contingency(table)[:2]
    assert result["seg"].p_val == pytest.approx(p, rel=1e-9) and result["seg"].distance == pytest.approx(stat)


def test_the_same_p_values_as_alibi_detects_tabular_drift(auto, tmp_path):
    pytest.importorskip("alibi_detect")
    from ml_framework.plugins.alibi_detect.config import AlibiDetectSettings
    from ml_framework.plugins.alibi_detect.detectors import build_bundle as build_alibi, open_bundle as open_alibi

    frame = population(4000, seed=0)
    ref = Reference(frame=frame[FEATURES], features=FEATURES, task="binary", predictions=score(frame), rows=4000,
                    total=4000)
    build_alibi(tmp_path / "alibi", ref, AlibiDetectSettings(), model="m", version="v1", predictions=True)
    alibi = open_alibi(tmp_path / "alibi")
    for live in (population(1000, seed=8), population(1000, seed=9, shift={"b": 0.3}),
                 population(1000, seed=10, seg_p=(0.4, 0.3, 0.3))):
        ours, theirs = auto.check(window(live), min_samples=100), alibi.check(window(live), min_samples=100)
        assert ours.status == theirs.status and ours.drifted() == theirs.drifted()
        assert ours.threshold == pytest.approx(theirs.threshold)
        for mine, other in zip(ours.features, theirs.features):
            assert (mine.name, mine.test) == (other.name, other.test)
            assert mine.p_val == pytest.approx(other.p_val, rel=1e-5, abs=1e-12)  # alibi-detect: float32


def test_multiclass_predictions_are_a_categorical_test(tmp_path):
    rng = np.random.default_rng(20)
    frame = population(4000, seed=0)
    ref = Reference(frame=frame[FEATURES], features=FEATURES, task="multiclass",
                    predictions=rng.choice(3, 4000, p=[0.6, 0.3, 0.1]), prediction_kind="categorical", rows=4000,
                    total=4000)
    build_bundle(tmp_path / "mc", ref, ScipyDriftSettings(), model="m", version="v1", predictions=True)
    bundle = open_bundle(tmp_path / "mc")

    def logged(p, seed):
        live = window(population(1000, seed=seed))
        live.columns["prediction_class"] = np.random.default_rng(seed).choice(3, 1000, p=p)
        return live

    assert bundle.check(logged([0.6, 0.3, 0.1], 21), min_samples=100).status == OK
    moved = bundle.check(logged([0.3, 0.3, 0.4], 22), min_samples=100)
    assert moved.drifted() == [PREDICTION] and by_name(moved)[PREDICTION].test == "chi2"


# -- the correction ---------------------------------------------------------------------------------------------------

def test_bonferroni_and_fdr_decide_over_the_family():
    p = np.array([0.012, 0.015, 0.02, 0.5, 0.6, 0.7])
    threshold, flags = decide(p, 0.05, "bonferroni", len(p))
    assert threshold == pytest.approx(0.05 / 6) and not flags.any()
    threshold, flags = decide(p, 0.05, "fdr", len(p))
    assert threshold == pytest.approx(0.025) and flags.tolist() == [True, True, True, False, False, False]
    none, flags = decide(np.array([0.2, 0.4, np.nan]), 0.05, "fdr", 3)
    assert none is None and not flags.any()
    untested, flags = decide(np.array([0.004, np.nan]), 0.05, "bonferroni", 2)
    assert untested == pytest.approx(0.025) and flags.tolist() == [True, False]  # NaN still in the family


def test_fdr_is_alibi_detects(tmp_path):
    statstest = pytest.importorskip("alibi_detect.utils.statstest")
    rng = np.random.default_rng(0)
    for _ in range(200):
        p = rng.random(int(rng.integers(1, 12))) ** 3
        ours, theirs = fdr(p, 0.05), statstest.fdr(p, q_val=0.05)
        assert ours[0] == theirs[0] and np.allclose(ours[1], theirs[1])


def test_fdr_names_the_drifted_features_bonferroni_is_stricter(tmp_path):
    bonferroni = bundle_for(tmp_path, name="bonf")
    fdr_bundle = bundle_for(tmp_path, name="fdr", correction="fdr")
    live = window(population(1000, seed=17, shift={"b": 1.0, "d": 1.0}))
    assert set(fdr_bundle.check(live, min_samples=100).drifted()) == {"b", "d"}
    assert set(bonferroni.check(live, min_samples=100).drifted()) == {"b", "d"}
    p = {f.name: f.p_val for f in bonferroni.check(live, min_samples=100).features}
    result = fdr_bundle.check(live, min_samples=100)
    assert result.threshold >= 0.05 / 6 and all((p[n] < result.threshold) == (n in {"b", "d"}) for n in p)


@pytest.mark.parametrize("correction", ["bonferroni", "fdr"])
def test_false_alarms_stay_near_the_configured_rate(tmp_path, correction):
    bundle = bundle_for(tmp_path, correction=correction, rows=5000)
    alarms = [bundle.check(window(population(500, seed=100 + i)), min_samples=100).status == DRIFT
              for i in range(200)]
    rate = float(np.mean(alarms))
    assert rate <= 0.1, rate  # p_val 0.05 over 6 tests (3 sigma of 200 windows: about ±0.05)


# -- PSI, ks, chi2 ----------------------------------------------------------------------------------------------------

def test_psi_flags_a_shift_at_its_threshold_without_p_values(tmp_path):
    bundle = bundle_for(tmp_path, method="psi")
    state = json.loads((bundle.folder / "detector.json").read_text())
    assert len(state["psi"]["a"]["edges"]) == 9 and sum(state["psi"]["a"]["shares"]) == pytest.approx(1)
    assert state["psi"]["seg"]["edges"] is None
    calm = bundle.check(window(population(2000, seed=5)), min_samples=100)
    assert calm.status == OK and calm.threshold is None
    assert all(f.test == "psi" and f.p_val is None and f.distance < 0.05 for f in calm.features)
    moved = bundle.check(window(population(2000, seed=5, shift={"b": 1.0}, seg_p=(0.2, 0.3, 0.5))), min_samples=100)
    assert moved.status == DRIFT and moved.drifted() == ["b", "seg"]
    assert by_name(moved)["b"].distance >= 0.2 and by_name(moved)["a"].distance < 0.2
    assert any("population stability index" in n for n in moved.notes)
    strict = bundle_for(tmp_path, name="strict", method="psi", psi={"threshold": 5.0})
    assert strict.check(window(population(2000, seed=5, shift={"b": 1.0})), min_samples=100).status == OK


def test_psi_value_by_hand():
    expected = np.array([0.25, 0.25, 0.5])
    assert psi_value(expected, np.array([25, 25, 50])) == pytest.approx(0.0)
    by_hand = (0.5 - 0.25) * np.log(0.5 / 0.25) + (0.25 - 0.25) * 0 + (0.25 - 0.5) * np.log(0.25 / 0.5)
    assert psi_value(expected, np.array([50, 25, 25])) == pytest.approx(by_hand)
    assert np.isfinite(psi_value(np.array([1.0, 0.0]), np.array([0, 10])))  # empty bins are floored


def test_method_ks_tests_numeric_features_only(tmp_path):
    bundle = bundle_for(tmp_path, method="ks")
    result = bundle.check(window(population(1000, seed=14, seg_p=(0.1, 0.1, 0.8))), min_samples=100)
    seg = by_name(result)["seg"]
    assert seg.test == "none" and seg.drift is None and seg.note == "categorical: not tested by method ks"
    assert result.status == OK and result.threshold == pytest.approx(0.05 / 5)
    assert any("method ks tests numeric features only" in n for n in result.notes)


def test_method_chi2_tests_categorical_features_only(tmp_path):
    bundle = bundle_for(tmp_path, method="chi2")
    assert bundle.columns == ["seg"]
    shifted = bundle.check(window(population(1000, seed=14, shift={"a": 3.0})), min_samples=100)
    assert shifted.status == OK and by_name(shifted)["a"].test == "none"
    moved = bundle.check(window(population(1000, seed=14, seg_p=(0.1, 0.1, 0.8))), min_samples=100)
    assert moved.drifted() == ["seg"] and moved.threshold == pytest.approx(0.05)
    frame = population(500, seed=1)[["a", "b", "c", "d"]]
    ref = Reference(frame=frame, features=["a", "b", "c", "d"], task="binary", rows=500, total=500)
    with pytest.raises(ValueError, match="no feature to test"):
        build_bundle(tmp_path / "none", ref, ScipyDriftSettings(method="chi2"), model="m", version="v1",
                     predictions=False)


# -- windows: missing values, absent features, too few rows --------------------------------------------------------------

def test_nans_are_tested_on_the_rows_that_have_a_value(auto):
    from scipy.stats import ks_2samp

    frame = population(1000, seed=9)
    frame.loc[frame.index[:300], "a"] = np.nan
    result = auto.check(window(frame), min_samples=100)
    a = by_name(result)["a"]
    assert a.missing == 300 and a.n == 700
    expected = ks_2samp(population(4000, seed=0)["a"].to_numpy(), frame["a"].dropna().to_numpy(), method="asymp")
    assert a.p_val == pytest.approx(expected.pvalue, rel=1e-9)
    assert result.status == OK


def test_unseen_categories_are_counted_and_tested(auto):
    frame = population(1000, seed=12)
    frame.loc[frame.index[:40], "seg"] = "brand-new"
    seg = by_name(auto.check(window(frame), min_samples=100))["seg"]
    assert seg.unseen == {"brand-new": 40}
    frame.loc[frame.index[:400], "seg"] = "brand-new"
    assert auto.check(window(frame), min_samples=100).drifted() == ["seg"]


def test_a_feature_no_row_carries_is_reported_not_tested(auto):
    frame = population(1000, seed=11)
    result = auto.check(window(frame.drop(columns=["c"]), predictions=score(frame)), min_samples=100)
    c = by_name(result)["c"]
    assert c.p_val is None and c.drift is None and c.note == "not in any logged row"
    assert result.status == OK and result.threshold == pytest.approx(0.05 / 6)  # still counted: conservative


def test_too_small_and_empty_windows_are_inconclusive_and_histograms_are_kept(auto):
    small = auto.check(window(population(50, seed=8, shift={"a": 5.0})), min_samples=100)
    assert small.status == INCONCLUSIVE and "fewer than min_samples (100)" in small.notes[-1]
    assert all(f.p_val is None for f in small.features) and sum(small.histograms["a"]) == 50
    empty = auto.check(LogColumns(), min_samples=100)
    assert empty.status == INCONCLUSIVE and "no traffic" in empty.notes[-1]


def test_reference_with_missing_values_builds(tmp_path):
    frame = population(3000, seed=18)
    frame.loc[frame.index[::10], "a"] = np.nan
    bundle = bundle_for(tmp_path, reference=frame)
    assert {f.name: f for f in bundle.schema.features}["a"].ref_missing == pytest.approx(0.1)
    assert not np.isnan(bundle.reference).any()
    assert bundle.check(window(population(1000, seed=19)), min_samples=100).status == OK


def test_folders_of_the_two_backends_never_mix():
    from ml_framework.plugins.alibi_detect.detectors import bundle_key as alibi_key
    from ml_framework.plugins.scipy_drift.detectors import bundle_key

    settings = ScipyDriftSettings().model_dump()
    assert bundle_key(settings, None, True) != alibi_key({**settings, "method": "tabular"}, None, True)
    assert bundle_key(settings, None, True) != bundle_key(settings, None, False)
    psi = ScipyDriftSettings(method="psi").model_dump()
    assert bundle_key(psi, None, True) != bundle_key({**psi, "psi": {"threshold": 0.1, "bins": 10}}, None, True)


# -- import hygiene -----------------------------------------------------------------------------------------------------

def test_importing_the_plugin_loads_no_numpy_scipy_or_pandas():
    code = textwrap.dedent("""\
        import json, sys
        import ml_framework.plugins.scipy_drift, ml_framework.plugins.scipy_drift.config
        import ml_framework.plugins.scipy_drift.provider, ml_framework.plugins.monitoring.backend
        p = ml_framework.plugins.scipy_drift.ScipyDriftProvider()
        p.config_model('Monitor').model_validate({'method': 'psi', 'psi': {'threshold': 0.1}})
        print(json.dumps(sorted(sys.modules)))
        """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    heavy = ("numpy", "scipy", "pandas", "alibi_detect", "torch", "sklearn", "sqlalchemy")
    assert sorted(m for m in json.loads(proc.stdout) if m.split(".")[0] in heavy) == []
