"""Models, the pure parts: metrics, gates, trainer settings (did-you-mean at `ml validate`), the registry,
and that importing the trainer plugins stays light."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from ml_framework.errors import SpecErrors
from ml_framework.plugins.models.registry import ACCEPTED, DELETED, REJECTED, ModelRegistry, RegistryError
from ml_framework.plugins.models.gates import FAILED, PASSED, SKIPPED, GateError, evaluate_gates, parse_gate, parse_gates
from ml_framework.plugins.models.metrics import compute_metrics


# -- metrics ------------------------------------------------------------------------------------------
def _auc_brute(y, p):
    pos, neg = p[y == 1], p[y == 0]
    wins = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return wins / (len(pos) * len(neg))


def test_auc_matches_pairwise_definition_with_ties():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400)
    p = np.round(rng.random(400), 1)  # many ties
    got = compute_metrics("binary", ["auc"], y, p)["auc"]
    assert got == pytest.approx(_auc_brute(y, p), abs=1e-6)


def test_metrics_undefined_are_none_not_crashes():
    out = compute_metrics("binary", ["auc", "precision", "logloss"], np.array([1, 1]), np.array([0.2, 0.4]))
    assert out["auc"] is None and out["precision"] is None and out["logloss"] > 0
    reg = compute_metrics("regression", ["rmse", "mae", "r2"], np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 4.0]))
    assert reg["rmse"] == pytest.approx(np.sqrt(1 / 3), abs=1e-6) and reg["mae"] == pytest.approx(1 / 3, abs=1e-6)


# -- gates --------------------------------------------------------------------------------------------
def test_gate_grammar():
    gate = parse_gate("auc >= production.auc - 0.005", "binary")
    assert (gate.metric, gate.op, gate.production_metric, gate.margin) == ("auc", ">=", "auc", -0.005)
    assert parse_gate("rmse<2.5", "regression").threshold == 2.5
    assert parse_gate("slices.auc >= 0.7", "binary").per_slice


@pytest.mark.parametrize("text, message", [
    ("acu >= 0.8", "did you mean 'auc'"),
    ("auc >= production.aucc", "did you mean 'auc'"),
    ("rmse <= 3", "not defined for a binary model"),
    ("auc is good", "not understood"),
])
def test_bad_gates_are_reported(text, message):
    with pytest.raises(GateError) as err:
        parse_gate(text, "binary")
    assert message in str(err.value)


def test_production_comparison_without_production_is_skipped_not_failed():
    gates = parse_gates(["auc >= 0.8", "auc >= production.auc - 0.005"], "binary")
    results = evaluate_gates(gates, {"auc": 0.85}, production=None)
    assert [r.status for r in results] == [PASSED, SKIPPED]
    assert "no production version yet" in results[1].detail
    results = evaluate_gates(gates, {"auc": 0.85}, production={"auc": 0.9}, production_label="v1")
    assert [r.status for r in results] == [PASSED, FAILED]
    assert results[1].threshold == pytest.approx(0.895)
    assert "production v1" in results[1].detail


def test_slice_gates_check_every_large_enough_segment():
    gates = parse_gates(["slices.auc >= 0.7"], "binary")
    slices = {"channel": {"online": {"rows": 100, "metrics": {"auc": 0.9}},
                          "pos": {"rows": 80, "metrics": {"auc": 0.6}},
                          "tiny": {"rows": 3, "metrics": {"auc": 0.1}}}}
    (result,) = evaluate_gates(gates, {"auc": 0.8}, slices=slices, min_slice_rows=30)
    assert result.status == FAILED and result.value == 0.6
    assert [f["segment"] for f in result.failing_slices] == ["pos"]
    assert "1 too small" in result.detail


# -- trainer settings through the engine's two-phase validation ---------------------------------------
SPECS = """\
kind: Source
name: labels
path: data/labels.parquet
timestamp_field: event_ts
backend: files
---
kind: Model
name: fraud
task: binary
label: {source: labels, column: is_fraud}
features: ["txn:amount"]
trainer:
  backend: lightgbm
  params:
    learning_rate: 0.05
    num_leavs: 31
---
kind: Model
name: mlp
task: binary
label: {source: labels, column: is_fraud}
features: ["txn:amount"]
trainer:
  backend: torch
  params: {layers: [8], dropuot: 0.1}
---
kind: FeatureView
name: txn
entities: [customer]
source: labels
backend: files
features:
  amount: {dtype: float64}
---
kind: Entity
name: customer
backend: files
"""


def _validate(tmp_path, text):
    from ml_framework.operations import load_specs
    from ml_framework.project import Project
    from ml_framework.testing import InMemoryProvider, registry_with
    from ml_framework.plugins.lightgbm import LightGBMProvider
    from ml_framework.plugins.torch import TorchProvider

    (tmp_path / "specs").mkdir(exist_ok=True)
    (tmp_path / "specs" / "all.yaml").write_text(text)
    project = Project.load(tmp_path)
    registry = registry_with({"files": InMemoryProvider("files"), "lightgbm": LightGBMProvider(),
                              "torch": TorchProvider()}, project_dir=tmp_path)
    return load_specs(project, registry)


def test_unknown_trainer_params_point_at_the_yaml_line_with_did_you_mean(tmp_path):
    with pytest.raises(SpecErrors) as err:
        _validate(tmp_path, SPECS)
    text = str(err.value)
    assert "specs/all.yaml:16: trainer.params.num_leavs: unknown field" in text
    assert "did you mean 'num_leaves'?" in text
    assert "trainer.params.dropuot: unknown field" in text and "did you mean 'dropout'?" in text


def test_lightgbm_aliases_are_accepted_and_duplicates_refused(tmp_path):
    fixed = SPECS.replace("num_leavs: 31", "num_leaf: 31\n    num_boost_round: 50\n    reg_lambda: 1").replace(
        "dropuot", "dropout")
    loaded = _validate(tmp_path, fixed)
    config = loaded.graph.nodes["model.fraud"].config
    assert config.lightgbm_params() == {"learning_rate": 0.05, "num_leaves": 31, "num_iterations": 50,
                                        "lambda_l2": 1}
    with pytest.raises(SpecErrors) as err:
        _validate(tmp_path, fixed.replace("num_leaf: 31", "num_leaf: 31\n    num_leaves: 15"))
    assert "'num_leaf' and 'num_leaves' are the same LightGBM parameter" in str(err.value) or \
        "'num_leaves' and 'num_leaf' are the same LightGBM parameter" in str(err.value)
    with pytest.raises(SpecErrors) as err:
        _validate(tmp_path, fixed.replace("num_leaf: 31", "num_leaf: 1"))
    assert "greater than or equal to 2" in str(err.value)
    with pytest.raises(SpecErrors) as err:
        _validate(tmp_path, fixed.replace("num_leaf: 31", "categorical_feature: [a]"))
    assert "set by ml" in str(err.value)


def test_parameter_table_matches_the_installed_lightgbm():
    import lightgbm
    import lightgbm.basic

    from ml_framework.plugins.lightgbm.params import ALIASES, LIGHTGBM_VERSION

    installed = lightgbm.basic._ConfigAliases._get_all_param_aliases()
    assert LIGHTGBM_VERSION == lightgbm.__version__
    assert {k: set(v) - {k} for k, v in installed.items()} == {k: set(v) for k, v in ALIASES.items()}


# -- registry -----------------------------------------------------------------------------------------
@pytest.fixture
def registry(tmp_path):
    reg = ModelRegistry(f"sqlite:///{tmp_path / 'state.db'}")
    yield reg
    reg.close()


def _record(reg, status=ACCEPTED, promote=True, auc=0.9):
    return reg.record_version(model="fraud", backend="lightgbm", address="model.fraud", status=status,
                              metrics={"auc": auc}, gates=[], lineage={"params": {}}, bentoml_tag="fraud:x",
                              primary_metric="auc", promote=promote)


def test_aliases_promote_and_rollback(registry):
    v1, v2 = _record(registry), _record(registry, auc=0.91)
    assert (v1.version, v2.version) == (1, 2)
    assert registry.aliases("fraud") == {"candidate": 2, "production": 2, "previous": 1}
    old, now = registry.rollback("fraud")
    assert (old, now.version) == (2, 1)
    assert registry.aliases("fraud") == {"candidate": 2, "production": 1, "previous": 2}
    registry.promote("fraud", "v2")
    assert registry.resolve("fraud").version == 2 and registry.resolve("fraud@previous").version == 1
    assert registry.resolve("fraud:v1").version == 1
    moves = [(e.alias, e.from_version, e.to_version) for e in registry.events("fraud")]
    assert moves[0] == ("production", 1, 2)


def test_manual_promotion_only_moves_candidate_and_rejected_versions_never_move_aliases(registry):
    _record(registry)
    _record(registry, promote=False)
    assert registry.aliases("fraud") == {"candidate": 2, "production": 1}
    rejected = _record(registry, status=REJECTED)
    assert registry.aliases("fraud") == {"candidate": 2, "production": 1}
    with pytest.raises(RegistryError, match="rejected and cannot be promoted"):
        registry.promote("fraud", rejected.version)


def test_a_followed_model_moves_production_only_when_a_follower_has_rolled_the_version_out(registry):
    _record(registry)  # v1: nothing serves it yet, so it is production at once
    registry.follow("deployment.api", "fraud")
    v2 = _record(registry, auc=0.91)
    assert registry.aliases("fraud") == {"candidate": 2, "production": 1, "release": 2}
    assert "release" in v2.aliases and registry.followers("fraud") == ["deployment.api"]
    assert registry.resolve("fraud").version == 1  # batch scoring and monitors: what was promoted
    assert registry.release_target("fraud").version == 2  # followers: what to roll out
    assert registry.release_target("fraud@candidate").version == 2 and registry.release_target("fraud:v1").version == 1
    registry.release_failed("fraud", "v2", "deployment.api", "canary 5% failed analysis")
    assert registry.aliases("fraud") == {"candidate": 2, "production": 1}
    assert registry.release_target("fraud").version == 1
    assert "canary 5% failed analysis" in registry.events("fraud")[0].reason
    assert registry.release("fraud", 2, "retried") == ["deployment.api"]  # a retry on purpose
    assert registry.released("fraud", "v2", "deployment.api", "canary passed") is True
    assert registry.aliases("fraud") == {"candidate": 2, "production": 2, "previous": 1}
    assert registry.released("fraud", "v2", "deployment.api", "again") is False
    # a person's promotion is released through the followers too, unless --now
    registry.promote("fraud", "v1")
    assert registry.aliases("fraud")["production"] == 2 and registry.aliases("fraud")["release"] == 1
    registry.promote("fraud", "v1", now=True)
    assert registry.aliases("fraud") == {"candidate": 2, "production": 1, "previous": 2}
    # no followers left: production moves at training time again
    registry.follow("deployment.api", None)
    _record(registry, auc=0.92)
    assert registry.aliases("fraud")["production"] == 3 and "release" not in registry.aliases("fraud")


def test_production_can_be_pointed_back_at_what_serves(registry):
    _record(registry)
    _record(registry)
    assert registry.restore_production("fraud", "v1", "deployment.api", "v2 was rolled back there") == 2
    assert registry.resolve("fraud").version == 1
    assert "deployment.api serves" in registry.events("fraud")[0].reason


def test_lookups_explain_what_is_missing(registry):
    with pytest.raises(RegistryError, match="no model named 'fraud'"):
        registry.resolve("fraud")
    _record(registry, promote=False)
    with pytest.raises(RegistryError, match="did you mean 'fraud'"):
        registry.resolve("frau:v1")
    with pytest.raises(RegistryError, match="has no version v7"):
        registry.resolve("fraud:v7")
    with pytest.raises(RegistryError, match="no previous version"):
        registry.rollback("fraud")
    with pytest.raises(RegistryError, match="did you mean 'production'"):
        registry.resolve("fraud@prodution")


def test_delete_marks_versions_deleted_and_keeps_numbering(registry):
    _record(registry)
    live = registry.delete_model("fraud")
    assert [v.version for v in live] == [1]
    assert registry.get("fraud", 1).status == DELETED and registry.aliases("fraud") == {}
    assert _record(registry).version == 2


# -- import lightness ---------------------------------------------------------------------------------
def test_importing_the_plugins_and_the_registry_leaves_heavy_libraries_out():
    code = textwrap.dedent("""
        import json, sys
        import ml_framework.plugins.lightgbm, ml_framework.plugins.torch, ml_framework.plugins.models, ml_framework.plugins.models.registry, ml_framework.plugins.models.cli
        from ml_framework.plugins.lightgbm import LightGBMProvider
        LightGBMProvider().config_model("Model")
        heavy = ["lightgbm", "torch", "pandas", "bentoml", "pyarrow", "numpy", "sklearn"]
        print(json.dumps([m for m in heavy if m in sys.modules]))
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(done.stdout) == []


def test_comparing_versions_of_two_models_names_each_by_model_and_says_so():
    from ml_framework.plugins.models.cli import _compare
    from ml_framework.plugins.models.registry import ModelVersion

    def made(model, auc):
        return ModelVersion(model=model, version=1, status="accepted", created="", backend="lightgbm",
                            address=f"model.{model}", primary_metric="auc", metrics={"auc": auc}, lineage={})

    diff = _compare(made("fraud", 0.90), made("fraud_mlp", 0.85))
    assert diff["same_model"] is False and "two models: fraud and fraud_mlp" in diff["note"]
    assert diff["metrics"]["auc"]["better"] == "fraud:v1"  # not "v1", which both are
    same = _compare(made("fraud", 0.80), ModelVersion(model="fraud", version=2, status="accepted", created="",
                                                       backend="lightgbm", address="model.fraud", primary_metric="auc",
                                                       metrics={"auc": 0.85}, lineage={}))
    assert same["same_model"] and same["note"] is None and same["metrics"]["auc"]["better"] == "v2"


def test_the_monitors_reference_samples_both_splits_without_copying_the_frame():
    """A seeded sample of the training rows (train first, then validation, each in order), `valid_from`
    where the validation rows start, and the model's predictions on exactly those rows."""
    import types

    import numpy as np
    import pandas as pd

    from ml_framework.plugins.models.training_reference import PREDICTION_COLUMN, build_reference

    X_train = pd.DataFrame({"a": np.arange(0, 700, dtype=float), "c": pd.Categorical(["x", "y"] * 350)})
    X_valid = pd.DataFrame({"a": np.arange(700, 1000, dtype=float), "c": pd.Categorical(["y"] * 300)})
    prepared = types.SimpleNamespace(X_train=X_train, X_valid=X_valid, categorical=["c"])
    frame, info = build_reference(prepared, lambda X: X["a"].to_numpy() * 2, seed=3, max_rows=100)
    whole = pd.concat([X_train, X_valid], ignore_index=True)
    rows = np.sort(np.random.default_rng(3).choice(1000, size=100, replace=False))
    assert list(frame["a"]) == list(whole["a"].iloc[rows])  # the same rows as sampling the whole frame
    assert info == {"rows": 100, "total": 1000, "sampled": True, "seed": 3, "valid_from": int((rows < 700).sum()),
                    "prediction_kind": "numeric"}
    assert (frame["a"].iloc[info["valid_from"]:] >= 700).all() and (frame["a"].iloc[:info["valid_from"]] < 700).all()
    assert list(frame[PREDICTION_COLUMN]) == [a * 2 for a in frame["a"]]
    assert frame["c"].dtype == object  # the values themselves, not the model's codes
    small, small_info = build_reference(prepared, lambda X: X["a"].to_numpy(), seed=3, max_rows=5000)
    assert len(small) == 1000 and small_info["sampled"] is False and small_info["valid_from"] == 700


def test_tables_keep_long_names_whole_when_the_output_is_a_pipe(tmp_path, monkeypatch):
    """`ml models list | grep ...` and CI logs: rich assumed 80 columns off a terminal and cut the name to
    "custom…" and dropped the tag column; names and tags now come out whole (COLUMNS still wins)."""
    from ml_framework.testing import run_cli

    monkeypatch.delenv("COLUMNS", raising=False)
    (tmp_path / "specs").mkdir()
    name = "customer_lifetime_value_regression_model_for_the_emea_region"
    reg = ModelRegistry.for_project(tmp_path)
    try:
        reg.record_version(model=name, backend="lightgbm", address=f"model.{name}", status=ACCEPTED,
                           metrics={"rmse": 1.5}, gates=[], lineage={"params": {}}, bentoml_tag=f"{name}:abcdefghijklmnop",
                           primary_metric="rmse", promote=True)
    finally:
        reg.close()
    result = run_cli(["models", "list"], cwd=tmp_path)
    assert result.exit_code == 0, result.output
    row = next(line for line in result.output.splitlines() if "v1" in line)
    assert name in row and f"{name}:abcdefghijklmnop" in row and "candidate, production" in row
    monkeypatch.setenv("COLUMNS", "80")
    narrow = run_cli(["models", "list"], cwd=tmp_path)
    assert f"{name}:abcdefghijklmnop" not in narrow.output  # an explicit width is honoured
