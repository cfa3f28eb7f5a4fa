"""The lightgbm backend end to end, in-process: plan/apply through the Harness (real SQLite state), the
BentoML model store in a temporary BENTOML_HOME, the registry, gates, incremental plans, bad input,
the `ml models` commands and the provider contract suite."""

from __future__ import annotations

import json
import re
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ml_framework.plugins.models.registry import ACCEPTED, REJECTED, ModelRegistry
from ml_framework.testing import run_cli
from ml_framework.testing.contract import ProviderContract
from ml_framework.testing.harness import Harness
from ml_framework.plugins.lightgbm import LightGBMProvider
from ml_framework.plugins.models.artifacts import model_exists
from ml_framework.plugins.models.testing import feature_providers, write_data, write_project

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("clean_ml_env", "bentoml_home")]


def providers():
    return {**feature_providers(), "lightgbm": LightGBMProvider()}


@pytest.fixture
def project(tmp_path):
    return write_project(tmp_path / "proj", rows=2000)


@pytest.fixture
def harness(project):
    h = Harness(project, providers())
    yield h
    h.close()


def registry_of(root: Path) -> ModelRegistry:
    return ModelRegistry.for_project(root)


def outcome(report, address="model.fraud"):
    return next(o for o in report.outcomes if o.address == address)


def test_apply_trains_saves_and_records_lineage_then_nothing_to_do(harness, project, bentoml_home):
    report = harness.apply()
    assert report.ok, report.outcomes
    outputs = harness.store.get("model.fraud").outputs
    assert outputs["version"] == "v1" and outputs["gate_status"] == "passed" and outputs["promoted"]
    assert outputs["metrics"]["auc"] > 0.75 and set(outputs["metrics"]) == {"auc", "logloss", "accuracy"}
    assert outputs["gates"] == {"auc >= 0.70": "passed", "auc >= production.auc - 0.02": "skipped"}
    assert model_exists(outputs["bentoml_tag"])
    assert "secret" not in json.dumps(outputs).lower()

    version = registry_of(project).resolve("fraud")
    assert version.status == ACCEPTED and version.aliases == ("candidate", "production")
    lineage = version.lineage
    assert lineage["feature_refs"] == ["customer_stats:amount_mean_7d", "customer_stats:segment",
                                       "customer_stats:txn_count_7d"]  # 'view:*' expands sorted
    assert set(lineage["data"]["files"]) == {"data/labels.parquet", "data/customer_daily.parquet"}
    assert lineage["params"]["num_leaves"] == 15 and lineage["params"]["num_iterations"] == 60
    assert lineage["libraries"]["lightgbm"] and lineage["git"] is None  # tmp dir: not a git repository
    assert lineage["model_size_bytes"] > 0 and lineage["training_seconds"] > 0
    assert set(lineage["upstream"]) == {"source.labels", "featureview.customer_stats"}
    assert set(lineage["slices"]["channel"]) == {"online", "pos"}
    assert "no production version yet" in version.gates[1]["detail"]

    plan = harness.plan()
    assert not plan.has_changes and not plan.errors
    again = harness.apply()
    assert again.ok and again.outcomes == []

    # `bentoml models list` (its own CLI, reading BENTOML_HOME) shows the model
    done = subprocess.run([str(Path(sys.executable).parent / "bentoml"), "models", "list", "-o", "json"],
                          capture_output=True, text=True, env=dict(os.environ), timeout=120)
    assert outputs["bentoml_tag"] in done.stdout, done.stderr


def test_a_param_change_is_planned_with_reasons_and_an_estimate_then_becomes_production(harness, project):
    assert harness.apply().ok
    previous = harness.store.get("model.fraud").outputs
    override = ["models.fraud.trainer.params.num_leaves=7"]
    plan = harness.plan(overrides=override)
    (change,) = plan.pending()
    assert change.address == "model.fraud" and change.action == "update"
    assert "retrain: params changed (num_leaves 15 → 7)" in change.reasons
    assert change.estimate_seconds == pytest.approx(previous["apply_seconds"])
    report = harness.apply(overrides=override)
    assert report.ok
    reg = registry_of(project)
    assert reg.aliases("fraud") == {"candidate": 2, "production": 2, "previous": 1}
    assert reg.get("fraud", 2).lineage["baseline"] == "v1"
    cost = reg.get("fraud", 2).lineage["cost"]  # what training it cost
    assert cost["cpu_seconds"] > 0 and cost["peak_rss_mb"] > 50 and cost["price"] > 0 and cost["currency"] == "USD"
    # global importance, on the held-out rows, with each version; the retrain says what moved most
    first, second = reg.get("fraud", 1).lineage["importance"], reg.get("fraud", 2).lineage["importance"]
    features = reg.get("fraud", 2).lineage["feature_refs"]
    assert len(second["mean_abs_contribution"]) == len(features) and second["rows"] > 100
    assert all(v >= 0 for v in second["mean_abs_contribution"].values()) and sum(second["gain"].values()) > 0
    assert first["mean_abs_contribution"] != second["mean_abs_contribution"]
    assert "importance moved most vs v1: " in report.messages["model.fraud"]
    retrain = harness.plan(overrides=["models.fraud.trainer.params.num_leaves=5"]).pending()[0]
    assert any(r.startswith("importance now (v2): ") and "moved most in v3" in r for r in retrain.reasons), retrain.reasons
    shown = run_cli(["models", "compare", "fraud:v1", "v2", "--json"], providers=providers(), cwd=project)
    moved = json.loads(shown.stdout)["importance"]
    assert moved and abs(moved[0]["delta"]) >= abs(moved[-1]["delta"]) and moved[0]["feature"] in first["mean_abs_contribution"]
    assert "Global importance" in run_cli(["models", "show", "fraud:v2"], providers=providers(), cwd=project).output
    # a model card per version, written at registration, with the promotion that followed
    assert (project / ".ml" / "cards" / "fraud-v1.md").is_file() and (project / ".ml" / "cards" / "fraud-v2.html").is_file()
    card = run_cli(["models", "card", "fraud:v2"], providers=providers(), cwd=project)
    assert card.exit_code == 0, card.output
    text = card.stdout
    interval = reg.get("fraud", 2).lineage["metric_intervals"]["auc"]
    assert interval[0] <= reg.get("fraud", 2).metrics["auc"] <= interval[1]
    assert f"| auc (primary) | {reg.get('fraud', 2).metrics['auc']:.4f} | [{interval[0]:.4f}, {interval[1]:.4f}] |" in text
    assert "## Model details" in text and "## Considerations" in text and "### Global importance" in text
    assert "production →" in text and "Compared at registration with production v1" in text
    page = (project / ".ml" / "cards" / "fraud-v2.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and page.count("<svg") >= 2 and "<script" not in page
    as_json = json.loads(run_cli(["models", "card", "fraud:v2", "-f", "json"], providers=providers(), cwd=project).stdout)
    assert as_json["data"]["rows"]["valid"] > 0 and as_json["data"]["time_range"][0]


def test_changed_data_or_features_are_named_in_the_plan(tmp_path):
    project = write_project(tmp_path / "proj", rows=2000, gates=("auc >= 0.6",))
    harness = Harness(project, providers())
    assert harness.apply().ok
    write_data(project, rows=2100)  # new label rows: the data changed
    (change,) = harness.plan().pending()
    assert "training data changed" in change.reasons
    assert harness.apply().ok
    assert not harness.plan().has_changes, "after retraining on the new data the plan is empty again"
    plan = harness.plan(overrides=['models.fraud.features=["customer_stats:amount_mean_7d"]'])
    (change,) = plan.pending()
    assert any(r.startswith("retrain: features changed (+ customer_stats:amount_mean_7d, - customer_stats:*)")
               for r in change.reasons), change.reasons


def test_a_failing_gate_records_a_rejected_version_and_changes_nothing_else(harness, project, bentoml_home):
    assert harness.apply().ok
    before = harness.store.get("model.fraud")
    report = harness.apply(overrides=["models.fraud.gates=[\"auc >= 0.99\"]"])
    failed = outcome(report)
    assert failed.outcome == "failed"
    assert "model.fraud: v2 rejected: gate 'auc >= 0.99' failed (auc = 0." in failed.error
    assert "production stays at v1" in failed.error
    reg = registry_of(project)
    rejected = reg.get("fraud", 2)
    assert rejected.status == REJECTED and rejected.bentoml_tag is None
    assert [g["status"] for g in rejected.gates] == ["failed"]
    assert reg.aliases("fraud") == {"candidate": 1, "production": 1}
    assert harness.store.get("model.fraud").outputs == before.outputs
    name = before.outputs["bentoml_tag"].split(":")[0]  # namespaced by the project in a shared store
    assert name.endswith(".fraud") and name != "fraud"
    assert len(list((bentoml_home / "models" / name).iterdir())) == 2  # v1 + "latest" link only

    # The same inputs against the same production would be rejected again: held, not retrained.
    gates = ["models.fraud.gates=[\"auc >= 0.99\"]"]
    plan = harness.plan(overrides=gates)
    assert not plan.has_changes
    (held,) = plan.held()
    assert held.address == "model.fraud" and "v2 was trained on these same inputs and rejected by 'auc >= 0.99'" in held.held
    from ml_framework.plan.render_text import render_text

    text = render_text(plan, color=False)
    assert "model.fraud" in text and "held" in text and "--retry model.fraud" in text
    retry = harness.plan(overrides=gates, retry=["model.fraud"])  # on purpose: trained again
    assert [c.address for c in retry.pending()] == ["model.fraud"] and retry.retry == ("model.fraud",)
    assert outcome(harness.apply(overrides=gates, retry=["model.fraud"])).outcome == "failed"
    assert registry_of(project).get("fraud", 3).status == REJECTED
    assert harness.plan(overrides=["models.fraud.gates=[\"auc >= 0.5\"]"]).has_changes  # other inputs: planned


def test_production_comparison_gates_against_the_current_production(harness, project):
    assert harness.apply().ok
    # a much weaker model: one feature, few rounds -> worse than production by more than the margin
    weak = ['models.fraud.features=["customer_stats:txn_count_7d"]', "models.fraud.trainer.params.num_boost_round=2"]
    report = harness.apply(overrides=weak)
    error = outcome(report).error
    assert "gate 'auc >= production.auc - 0.02' failed" in error and "(production v1:" in error


@pytest.mark.parametrize("override, message", [
    ("+models.fraud.trainer.params.objective=nonsense", "training failed inside LightGBM: LightGBMError"),
])
def test_bad_input_fails_the_model_with_its_address_and_keeps_the_previous_version(harness, project, override,
                                                                                  message):
    assert harness.apply().ok
    report = harness.apply(overrides=[override])
    error = outcome(report).error
    assert error.startswith("model.fraud: ") and message in error, error
    reg = registry_of(project)
    assert [v.label for v in reg.versions("fraud")] == ["v1"] and reg.resolve("fraud").version == 1


@pytest.mark.parametrize("override, message", [
    ("models.fraud.label.column=fraud_flag", "label column 'fraud_flag' is not in source.labels"),
    ("models.fraud.label.column=is_frau", "did you mean 'is_fraud'"),
    ("models.fraud.slices=[region]", "slice column 'region' is neither a feature"),
])
def test_label_and_slice_columns_the_data_lacks_fail_the_plan_before_anything_trains(harness, project, override,
                                                                                     message):
    assert harness.apply().ok
    plan = harness.plan(overrides=[override])
    (issue,) = [i for i in plan.errors if i.address == "model.fraud"]
    assert message in issue.message, issue.message
    assert [v.label for v in registry_of(project).versions("fraud")] == ["v1"]


def test_a_gate_naming_an_unknown_metric_fails_at_validation(harness):
    from ml_framework.errors import SpecErrors

    with pytest.raises(SpecErrors) as info:  # caught from the specs alone: nothing is read or trained
        harness.plan(overrides=['models.fraud.gates=["acu >= 0.8"]'])
    (error,) = info.value.errors
    assert error.field == "gates.0" and "unknown metric 'acu'" in str(error) and "did you mean 'auc'" in str(error)
    assert error.location is not None and error.location.file.endswith(".yaml")


def test_nan_labels_and_too_few_rows_are_reported(tmp_path):
    import numpy as np
    import pandas as pd

    root = write_project(tmp_path / "p", rows=30)
    h = Harness(root, providers())
    try:
        error = outcome(h.apply()).error
        assert "too few rows for the split: 30 labelled rows give 22 to train and 8 to validate" in error
        write_data(root, rows=2000)
        labels = pd.read_parquet(root / "data" / "labels.parquet")
        labels["is_fraud"] = labels["is_fraud"].astype("float64")
        labels.loc[labels.index[:5], "is_fraud"] = np.nan
        labels.to_parquet(root / "data" / "labels.parquet")
        error = outcome(h.apply()).error
        assert "5 of 2000 labels in column 'is_fraud' are missing (NaN)" in error
        assert ModelRegistry.for_project(root).models() == []  # nothing was recorded
    finally:
        h.close()


def test_destroy_removes_every_version_from_the_store_and_the_registry(harness, project, bentoml_home):
    assert harness.apply().ok
    tag = harness.store.get("model.fraud").outputs["bentoml_tag"]
    assert harness.destroy().ok
    assert not model_exists(tag)
    reg = registry_of(project)
    assert reg.get("fraud", 1).status == "deleted" and reg.aliases("fraud") == {}
    assert harness.apply().ok and reg.resolve("fraud").version == 2  # numbers are never reused


def test_a_model_deleted_from_the_bentoml_store_is_planned_again(harness, bentoml_home):
    import shutil

    assert harness.apply().ok
    tag = harness.store.get("model.fraud").outputs["bentoml_tag"]
    shutil.rmtree(bentoml_home / "models" / tag.split(":")[0] / tag.split(":")[1])
    plan = harness.plan()
    assert [(d.address, d.exists) for d in plan.drift] == [("model.fraud", False)]
    assert [c.action for c in plan.pending()] == ["create"]


# -- the CLI -------------------------------------------------------------------------------------------
def test_cli_apply_fails_on_gates_and_models_commands_show_the_registry(project):
    result = run_cli(["apply", "--auto-approve"], providers=providers(), cwd=project)
    assert result.exit_code == 0, result.output
    result = run_cli(["apply", "--auto-approve", 'models.fraud.gates=["auc >= 0.99"]'], providers=providers(),
                     cwd=project)
    assert result.exit_code == 1
    assert "v2 rejected: gate 'auc >= 0.99' failed" in result.output
    assert run_cli(["apply", "--auto-approve", "models.fraud.trainer.params.num_leaves=7"], providers=providers(),
                   cwd=project).exit_code == 0

    listed = run_cli(["models", "list"], cwd=project)
    assert listed.exit_code == 0, listed.output
    for text in ("v1", "v2", "v3", "rejected", "accepted", "production", "auc 0."):
        assert text in listed.output
    shown = run_cli(["models", "show", "fraud:v2"], cwd=project)
    assert shown.exit_code == 0 and "auc >= 0.99" in shown.output and "not saved: rejected" in shown.output
    shown = run_cli(["models", "show", "fraud"], cwd=project)
    assert "fraud v3" in shown.output and "Alias history" in shown.output and "Slice: channel" in shown.output
    assert re.search(r"monitor reference\s+[\d,]+ training rows with predictions \([\d.]+ KB\)", shown.output)
    compared = run_cli(["models", "compare", "fraud:v1", "v3"], cwd=project)
    assert compared.exit_code == 0 and "params.num_leaves" in compared.output and "delta" in compared.output
    as_json = json.loads(run_cli(["models", "compare", "fraud:v1", "fraud:v3", "--json"], cwd=project).output)
    assert as_json["params"]["num_leaves"] == {"a": 15, "b": 7}

    refused = run_cli(["models", "promote", "fraud", "v2"], cwd=project)
    assert refused.exit_code == 1 and "rejected and cannot be promoted" in refused.output
    back = run_cli(["models", "rollback", "fraud"], cwd=project)
    assert back.exit_code == 0 and "fraud@production: v3 → v1" in back.output
    forward = run_cli(["models", "promote", "fraud", "v3"], cwd=project)
    assert forward.exit_code == 0 and "v1 → v3" in forward.output
    missing = run_cli(["models", "show", "frad"], cwd=project)
    assert missing.exit_code == 1 and "did you mean 'fraud'" in missing.output


# -- the contract suite ---------------------------------------------------------------------------------
class TestLightGBMContract(ProviderContract):
    @pytest.fixture
    def contract_project(self, tmp_path):
        return write_project(tmp_path / "contract", rows=1500)

    @pytest.fixture
    def contract_providers(self):
        return providers()


# -- sweeps (Hydra multirun syntax) ------------------------------------------------------------------
def test_a_sweep_records_every_candidate_and_points_candidate_at_the_best(project):
    assert run_cli(["apply", "--auto-approve"], providers=providers(), cwd=project).exit_code == 0
    result = run_cli(["models", "sweep", "models.fraud.trainer.params.num_leaves=3,15",
                      "models.fraud.trainer.params.learning_rate=0.05,0.2"], providers=providers(), cwd=project)
    assert result.exit_code == 0, result.output
    assert "candidate 4/4" in result.output and "fraud@candidate →" in result.output
    reg = registry_of(project)
    swept = [v for v in reg.versions("fraud") if v.lineage.get("sweep")]
    assert [v.version for v in swept] == [2, 3, 4, 5]
    assert {tuple(v.lineage["sweep"]["overrides"]) for v in swept} == {
        ("models.fraud.trainer.params.num_leaves=3", "models.fraud.trainer.params.learning_rate=0.05"),
        ("models.fraud.trainer.params.num_leaves=3", "models.fraud.trainer.params.learning_rate=0.2"),
        ("models.fraud.trainer.params.num_leaves=15", "models.fraud.trainer.params.learning_rate=0.05"),
        ("models.fraud.trainer.params.num_leaves=15", "models.fraud.trainer.params.learning_rate=0.2")}
    best = max(swept, key=lambda v: v.metrics["auc"])
    assert reg.aliases("fraud") == {"candidate": best.version, "production": 1}  # production untouched
    assert swept[0].lineage["params"]["num_leaves"] == 3
    from ml_framework.project import Project

    store = Project.load(project).open_state()
    try:  # state is untouched: the specs did not change, so `ml plan` stays empty
        assert store.get("model.fraud").outputs["version"] == "v1"
    finally:
        store.close()


def test_sweep_input_errors(project):
    no_sweep = run_cli(["models", "sweep", "models.fraud.trainer.params.num_leaves=3"], providers=providers(),
                       cwd=project)
    assert no_sweep.exit_code == 1 and "no sweep override given" in no_sweep.output
    too_big = run_cli(["models", "sweep", "models.fraud.trainer.params.num_leaves=range(2,40)"],
                      providers=providers(), cwd=project)
    assert too_big.exit_code == 1 and "38 candidates" in too_big.output
    unapplied = run_cli(["models", "sweep", "models.fraud.trainer.params.num_leaves=3,7"], providers=providers(),
                        cwd=project)
    assert unapplied.exit_code == 1 and "needs" in unapplied.output and "applied first" in unapplied.output


def test_the_plan_says_which_version_a_retrain_produces_and_what_serves_meanwhile(harness):
    assert harness.apply().ok
    plan = harness.plan(overrides=["models.fraud.trainer.params.num_leaves=7"])
    (change,) = plan.pending()
    assert "trains v2; production is v1 until v2 passes its gates" in change.reasons, change.reasons
    (gates,) = [r for r in change.reasons if r.startswith("decided by its gates: ")]
    assert gates.startswith("decided by its gates: auc >= 0.70; auc >= production.auc - 0.02 (production v1: auc 0.")


def test_a_renamed_model_keeps_its_versions_and_is_not_retrained(project, harness):
    """`kind: Moved`: the registry's versions, aliases and history move to the new name; nothing trains."""
    assert harness.apply().ok
    specs = project / "specs" / "models.yaml"
    specs.write_text(re.sub(r"(?m)^name: fraud$", "name: fraud_lgbm", specs.read_text()))
    (project / "specs" / "moved.yaml").write_text("kind: Moved\nfrom: model.fraud\nto: model.fraud_lgbm\n")
    plan = harness.plan()
    (change,) = plan.pending()
    assert change.address == "model.fraud_lgbm" and change.moved_from == "model.fraud" and change.action == "no-op"
    report = harness.apply(plan)
    assert report.ok and outcome(report, "model.fraud_lgbm").action == "move"
    registry = registry_of(project)
    assert registry.versions("fraud") == [] and [v.label for v in registry.versions("fraud_lgbm")] == ["v1"]
    assert registry.alias("fraud_lgbm", "production").label == "v1"
    assert [e.alias for e in registry.events("fraud_lgbm")][0] == "name"  # the rename is in the history
    assert registry.versions("fraud_lgbm")[0].address == "model.fraud_lgbm"
    recorded = harness.store.get("model.fraud_lgbm")
    assert model_exists(recorded.outputs["bentoml_tag"], project)  # the artifact did not move or change
    assert not harness.plan().has_changes
    retrain = harness.plan(overrides=["models.fraud_lgbm.trainer.params.num_leaves=7"])
    assert any("trains v2; production is v1" in r for r in retrain.pending()[0].reasons)  # numbering goes on


def test_a_model_in_the_store_is_adopted_into_state_without_training(project, harness):
    """`kind: Import`: after state lost the model (here `state rm`), the store's model is taken back as it
    is: the plan previews it, the apply trains nothing and records the registry's version."""
    assert harness.apply().ok
    tag = harness.store.get("model.fraud").outputs["bentoml_tag"]
    lock = harness.store.acquire_lock("test")
    harness.store.remove("model.fraud", lock_id=lock.id)
    harness.store.release_lock(lock.id)
    imports = project / "specs" / "imports.yaml"
    imports.write_text(f"kind: Import\nto: model.fraud\nid: {tag}\n")
    plan = harness.plan()
    (change,) = plan.pending()
    assert change.action == "create" and change.imported == tag
    assert f"adopts {tag} from the BentoML store (lightgbm, binary" in change.reasons[0] and "registry v1" in change.reasons[0]
    report = harness.apply(plan)
    assert report.ok and outcome(report).action == "import"
    recorded = harness.store.get("model.fraud")
    assert recorded.outputs["version"] == "v1" and recorded.outputs["bentoml_tag"] == tag
    assert [v.label for v in registry_of(project).versions("fraud")] == ["v1"]  # no new version, nothing trained
    assert not harness.plan().has_changes

    imports.write_text("kind: Import\nto: model.fraud\nid: fraud:doesnotexist\n")
    lock = harness.store.acquire_lock("test")
    harness.store.remove("model.fraud", lock_id=lock.id)
    harness.store.release_lock(lock.id)
    missing = harness.plan()
    assert [e.address for e in missing.errors] == ["model.fraud"]
    assert "no model fraud:doesnotexist in the project's BentoML store" in missing.errors[0].message


def test_group_gates_block_a_version_and_land_in_its_card(project, harness):
    """A gap gate the held-out rows cannot meet rejects the version with the interval in the reason; a
    fairness measure that passes is recorded for the card; a gate naming a column the model does not slice
    by fails `ml validate` with its field."""
    gates = ('["auc >= 0.5", "gap(channel).auc <= 0.0001", "demographic_parity_difference(channel) <= 0.9", '
             '"robust(noise=0.01).auc >= auc - 0.05", "robust(missing=0.6).auc >= auc - 0.0001"]')
    report = harness.apply(overrides=[f"models.fraud.gates={gates}"])
    assert not report.ok
    error = outcome(report).error
    assert "gate 'gap(channel).auc <= 0.0001'" in error and "95 % interval" in error
    rejected = registry_of(project).versions("fraud")[-1]
    assert rejected.status == "rejected"
    fairness = {g["gate"]: g for g in rejected.lineage["fairness"]}
    assert fairness["demographic_parity_difference(channel) <= 0.9"]["status"] == "passed"
    assert len(fairness["demographic_parity_difference(channel) <= 0.9"]["interval"]) == 2
    robust = {g["gate"]: g for g in rejected.lineage["robustness"]}
    assert robust["robust(noise=0.01).auc >= auc - 0.05"]["status"] == "passed"
    collapsed = robust["robust(missing=0.6).auc >= auc - 0.0001"]
    assert collapsed["status"] == "failed" and collapsed["value"] < rejected.metrics["auc"]
    assert "gate 'robust(missing=0.6).auc >= auc - 0.0001' failed" in error
    card = run_cli(["models", "card", f"fraud:{rejected.label}"], providers=providers(), cwd=project).stdout
    assert "demographic_parity_difference(channel) <= 0.9: passed" in card
    assert "robust(noise=0.01).auc >= auc - 0.05: passed" in card
    bad = run_cli(["validate", 'models.fraud.gates=["gap(region).auc <= 0.1"]'], providers=providers(), cwd=project)
    assert bad.exit_code == 1 and "gates.0" in bad.output and "'region' is not among the model's slices (channel)" in bad.output
