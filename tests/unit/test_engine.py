"""The engine end to end in-process: specs -> graph -> plan -> apply, with the in-memory provider."""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path

import pytest

from ml_framework.errors import GraphError, PlanError, SpecError, SpecErrors
from ml_framework.operations import check_saved_plan
from ml_framework.plan.model import CREATE, DELETE, NOOP, REPLACE, UPDATE
from ml_framework.testing import InMemoryProvider
from ml_framework.testing.harness import Harness

SPECS = """\
kind: Entity
name: customer
description: a card holder
backend: memory
---
kind: Source
name: txns
path: data/t.parquet
timestamp_field: event_ts
backend: memory
---
kind: FeatureView
name: txn_stats
entities: [customer]
source: txns
backend: memory
features:
  amount_mean_7d: {dtype: float32}
---
kind: Model
name: fraud
task: binary
label: {source: txns, column: is_fraud}
features: ["txn_stats:*"]
trainer: {backend: memory, params: {num_leaves: 31}, api_key: hunter2}
"""


def write_project(root: Path, text: str = SPECS, overlays: dict[str, str] | None = None) -> Path:
    (root / "specs").mkdir(parents=True, exist_ok=True)
    (root / "specs" / "all.yaml").write_text(text)
    for name, body in (overlays or {}).items():
        (root / "specs" / "env").mkdir(exist_ok=True)
        (root / "specs" / "env" / f"{name}.yaml").write_text(body)
    return root


@pytest.fixture
def provider():
    return InMemoryProvider(replace_on={"Model": ("task",)})


@pytest.fixture
def harness(tmp_path, provider):
    h = Harness(write_project(tmp_path), {"memory": provider})
    yield h
    h.close()


def actions(plan):
    return {c.address: c.action for c in plan.changes}


def test_first_plan_creates_everything_in_dependency_order(harness):
    plan = harness.plan()
    assert set(actions(plan).values()) == {CREATE}
    order = [c.address for c in plan.changes]
    assert order.index("entity.customer") < order.index("featureview.txn_stats") < order.index("model.fraud")
    assert plan.summary()["create"] == 4


def test_apply_then_plan_is_empty_and_second_apply_calls_no_provider(harness, provider):
    assert harness.apply().ok
    assert provider.count("apply") == 4
    assert not harness.plan().has_changes
    report = harness.apply()
    assert report.ok and report.outcomes == []
    assert provider.count("apply") == 4


def test_upstream_outputs_are_visible_to_dependents(harness, provider):
    harness.apply()
    assert provider.world["featureview.txn_stats"]["upstream"] == ["entity.customer", "source.txns"]


def test_override_changes_one_field_with_before_and_after(harness):
    harness.apply()
    plan = harness.plan(overrides=["models.fraud.trainer.params.num_leaves=63"])
    assert actions(plan)["model.fraud"] == UPDATE
    change = next(c for c in plan.changes if c.address == "model.fraud")
    assert [(f.path, f.before, f.after) for f in change.fields] == [("trainer.params.num_leaves", 31, 63)]
    assert all(a == NOOP for addr, a in actions(plan).items() if addr != "model.fraud")


def test_field_that_forces_replacement_plans_a_replace(harness):
    harness.apply()
    plan = harness.plan(overrides=["models.fraud.task=regression"])
    change = next(c for c in plan.changes if c.address == "model.fraud")
    assert change.action == REPLACE and change.actions == [DELETE, CREATE]
    assert change.fields[0].forces_replacement
    assert any("forces replacement" in r for r in change.reasons)


def test_description_and_labels_never_trigger_a_change(harness):
    harness.apply()
    plan = harness.plan(overrides=["entities.customer.description=renamed", "+entities.customer.labels.team=risk"])
    assert not plan.has_changes


def test_a_data_check_threshold_re_checks_the_data_and_retrains_nothing(harness, provider):
    harness.apply()
    plan = harness.plan(overrides=["+feature_views.txn_stats.checks.min_rows=10", "+sources.txns.checks.min_rows=5"])
    assert actions(plan) == {"entity.customer": NOOP, "source.txns": UPDATE, "featureview.txn_stats": UPDATE,
                             "model.fraud": NOOP}
    assert harness.apply(plan).ok
    assert not harness.plan(overrides=["+feature_views.txn_stats.checks.min_rows=10",
                                       "+sources.txns.checks.min_rows=5"]).has_changes
    # the data itself changing still reaches the model
    provider.extra_inputs["source.txns"] = {"source_data": "new-hash"}
    plan = harness.plan(overrides=["+feature_views.txn_stats.checks.min_rows=10", "+sources.txns.checks.min_rows=5"])
    assert actions(plan)["model.fraud"] == UPDATE


def test_dependents_recorded_before_local_fields_existed_are_not_retrained(harness):
    """State written by an older ml recorded the upstream's whole fingerprint: it is accepted while the
    part dependents see is unchanged (upgrading retrains nothing), and a threshold change after that too."""
    from dataclasses import replace

    harness.apply()
    store = harness.store
    view, model = store.get("featureview.txn_stats"), store.get("model.fraud")
    legacy_inputs = {**model.inputs, "upstream:featureview.txn_stats": view.fingerprint}
    from ml_framework.graph import canonical_json, digest
    from ml_framework.operations import load_specs

    spec_hash = load_specs(harness.project, harness.registry).graph.nodes["model.fraud"].spec_hash
    from ml_framework.locking import held_lock

    with held_lock(store, "test") as lock:
        store.put(replace(model, inputs=legacy_inputs, fingerprint=digest(spec_hash, canonical_json(legacy_inputs))),
                  lock_id=lock.id)
    assert not harness.plan().has_changes
    plan = harness.plan(overrides=["+feature_views.txn_stats.checks.min_rows=10"])
    assert actions(plan)["featureview.txn_stats"] == UPDATE and actions(plan)["model.fraud"] == NOOP


def test_provider_input_change_propagates_with_its_cause(harness, provider):
    harness.apply()
    provider.extra_inputs["source.txns"] = {"source_data": "new-hash"}
    plan = harness.plan()
    by_address = {c.address: c for c in plan.changes}
    assert by_address["source.txns"].reasons == ("source data changed",)
    assert "upstream source.txns changed (source data changed)" in by_address["featureview.txn_stats"].reasons
    assert by_address["entity.customer"].action == NOOP


def test_removed_spec_is_deleted_dependents_first(tmp_path, provider):
    h = Harness(write_project(tmp_path), {"memory": provider})
    assert h.apply().ok
    write_project(tmp_path, SPECS.split("---\nkind: FeatureView")[0])
    plan = h.plan()
    deletes = [c.address for c in plan.changes if c.action == DELETE]
    assert deletes == ["model.fraud", "featureview.txn_stats"]
    assert all("no longer in the specs" in c.reasons for c in plan.changes if c.action == DELETE)
    assert h.apply().ok
    assert set(provider.world) == {"entity.customer", "source.txns"}
    assert [c for c in provider.calls if c[0] == "delete"] == [("delete", "model.fraud"), ("delete", "featureview.txn_stats")]
    h.close()


def test_refresh_reports_drift_and_restores_deleted_resources(harness, provider):
    harness.apply()
    del provider.world["model.fraud"]
    provider.world["entity.customer"] = dict(provider.world["entity.customer"], spec_hash="edited")
    plan = harness.plan()
    drift = {d.address: d for d in plan.drift}
    assert not drift["model.fraud"].exists
    assert drift["entity.customer"].fields[0][0] == "spec_hash"
    assert actions(plan)["model.fraud"] == CREATE
    assert actions(plan)["entity.customer"] == UPDATE
    assert not harness.plan(refresh=False).has_changes  # without refresh, state is trusted


def test_target_plans_only_the_target_and_its_dependencies(harness):
    plan = harness.plan(targets=["featureview.txn_stats"])
    assert set(actions(plan)) == {"featureview.txn_stats", "entity.customer", "source.txns"}


def test_failure_skips_dependents_and_stops_the_rest(harness, provider):
    provider.fail_on = {"source.txns"}
    report = harness.apply(parallelism=1)
    outcomes = {o.address: o.outcome for o in report.outcomes}
    assert outcomes["source.txns"] == "failed"
    assert outcomes["featureview.txn_stats"] == "skipped" and outcomes["model.fraud"] == "skipped"
    assert "source.txns: RuntimeError: simulated failure" in next(o.error for o in report.outcomes if o.outcome == "failed")
    recorded = {r.address for r in harness.store.list_resources()}
    assert "source.txns" not in recorded
    provider.fail_on = set()
    plan = harness.plan()
    assert {c.address for c in plan.pending()} == {"source.txns", "featureview.txn_stats", "model.fraud"} - recorded | (
        {"entity.customer"} - recorded)


def test_keep_going_continues_with_independent_resources(tmp_path, provider):
    text = SPECS + "---\nkind: Entity\nname: merchant\nbackend: memory\n"
    h = Harness(write_project(tmp_path, text), {"memory": provider})
    provider.fail_on = {"entity.customer"}
    report = h.apply(keep_going=True, parallelism=1)
    outcomes = {o.address: o.outcome for o in report.outcomes}
    assert outcomes["entity.merchant"] == "succeeded" and outcomes["source.txns"] == "succeeded"
    assert outcomes["featureview.txn_stats"] == "skipped"
    h.close()


def test_independent_resources_run_in_parallel(tmp_path, provider):
    text = "\n---\n".join(f"kind: Entity\nname: e{i}\nbackend: memory" for i in range(4))
    h = Harness(write_project(tmp_path, text), {"memory": provider})
    running, peak = [0], [0]
    guard = threading.Lock()

    def slow(request, ctx):
        with guard:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.2)
        with guard:
            running[0] -= 1

    provider.on_apply = slow
    assert h.apply(parallelism=4).ok
    assert peak[0] >= 2
    h.close()


def test_each_result_is_recorded_when_it_lands(harness, provider):
    seen = []

    def check_state(request, ctx):
        seen.append({r.address for r in harness.store.list_resources()})

    provider.on_apply = check_state
    harness.apply(parallelism=1)
    assert seen[-1] >= {"entity.customer", "source.txns", "featureview.txn_stats"}
    assert seen[0] == set()


def test_destroy_removes_in_reverse_order(harness, provider):
    harness.apply()
    assert harness.destroy().ok
    deletes = [a for h, a in provider.calls if h == "delete"]
    assert deletes.index("model.fraud") < deletes.index("featureview.txn_stats") < deletes.index("entity.customer")
    assert harness.store.list_resources() == [] and provider.world == {}


def test_secrets_are_masked_in_plan_and_state_but_still_detected(harness, monkeypatch):
    plan = harness.plan()
    model = next(c for c in plan.changes if c.address == "model.fraud")
    assert model.after["trainer"]["api_key"] == "(sensitive value)"
    harness.apply()
    assert "hunter2" not in str(harness.store.get("model.fraud"))
    with pytest.raises(SpecError, match="secret values cannot be passed as overrides"):
        harness.plan(overrides=["models.fraud.trainer.api_key=other"])
    monkeypatch.setenv("FRAUD_KEY", "s3cr3t-value")
    changed = harness.plan(overrides=["models.fraud.trainer.api_key=${oc.env:FRAUD_KEY}"])
    assert actions(changed)["model.fraud"] == UPDATE
    assert "hunter2" not in str(changed.to_dict()) and "s3cr3t-value" not in str(changed.to_dict())


def test_saved_plan_is_refused_when_state_moved_or_specs_changed(harness):
    saved = harness.plan()
    harness.apply()
    fresh = harness.plan(refresh=False)
    with pytest.raises(PlanError, match="stale"):
        check_saved_plan(saved, harness.store, fresh)
    saved2 = harness.plan(overrides=["models.fraud.trainer.params.num_leaves=7"])
    fresh2 = harness.plan(refresh=False)  # specs on disk still say 31
    with pytest.raises(PlanError, match="changed since the plan was saved: model.fraud"):
        check_saved_plan(saved2, harness.store, fresh2)


def test_saved_plan_from_another_state_is_refused(tmp_path, provider, harness):
    other = Harness(write_project(tmp_path / "other"), {"memory": provider})
    foreign = other.plan()
    with pytest.raises(PlanError, match="another state"):
        check_saved_plan(foreign, harness.store, harness.plan())
    other.close()


def test_environment_overlay_and_interpolation(tmp_path, provider):
    text = SPECS.replace("num_leaves: 31", "num_leaves: '${vars.leaves}'")
    overlay = "vars: {leaves: 63}\nmodels:\n  fraud:\n    split: {seed: 11}\n"
    h = Harness(write_project(tmp_path, text, {"prod": overlay, "dev": "vars: {leaves: 15}\n"}), {"memory": provider})
    plan = h.plan(env="prod")
    model = next(c for c in plan.changes if c.address == "model.fraud")
    assert model.after["trainer"]["params"]["num_leaves"] == 63 and model.after["split"]["seed"] == 11
    dev = next(c for c in h.plan(env="dev").changes if c.address == "model.fraud")
    assert dev.after["trainer"]["params"]["num_leaves"] == 15
    h.close()


def test_cycle_is_reported_with_its_members(tmp_path, provider):
    text = """\
kind: FeatureService
name: a
features: [b]
backend: memory
---
kind: FeatureService
name: b
features: [a]
backend: memory
"""
    h = Harness(write_project(tmp_path, text), {"memory": provider})
    with pytest.raises(GraphError, match=r"dependency cycle: featureservice\.(a|b) → featureservice\.(a|b) → "):
        h.plan()
    h.close()


def test_missing_reference_names_file_line_and_suggestion(tmp_path, provider):
    h = Harness(write_project(tmp_path, SPECS.replace("source: txns\nbackend", "source: txn\nbackend")), {"memory": provider})
    with pytest.raises(SpecErrors) as info:
        h.plan()
    message = str(info.value)
    assert "specs/all.yaml:15: source: refers to source.txn, which no spec defines" in message
    assert "did you mean 'txns'" in message
    h.close()


def test_validation_errors_never_echo_sensitive_values(tmp_path, provider):
    text = SPECS.replace("api_key: hunter2", "api_key: [hunter2]")
    h = Harness(write_project(tmp_path, text), {"memory": provider})
    from pydantic import BaseModel, ConfigDict

    class Settings(BaseModel):
        model_config = ConfigDict(extra="allow")
        api_key: str | None = None

    h.registry.register("memory", InMemoryProvider(config_model=Settings))
    with pytest.raises(SpecErrors) as info:
        h.plan()
    assert "trainer.api_key" in str(info.value) and "hunter2" not in str(info.value)
    h.close()


def test_a_change_rejected_with_the_prior_kept_does_not_hold_back_its_dependents(harness, provider):
    """A retrain rejected by its gates leaves production as it was: the deployment that died meanwhile is
    restored in the same apply instead of being skipped; the run still fails."""
    from ml_framework.errors import MLError

    class Rejected(MLError):
        prior_kept = True

    assert harness.apply().ok
    del provider.world["model.fraud"]  # a dependent that must be restored (as a dead service would)
    # ... and the upstream feature view's change is rejected, leaving it as recorded
    def reject(request, ctx):
        if request.resource.address == "featureview.txn_stats":
            raise Rejected("featureview.txn_stats: v2 rejected by a gate; v1 stays")

    provider.on_apply = reject
    report = harness.apply(parallelism=1, overrides=["feature_views.txn_stats.features.amount_mean_7d.dtype=float64"])
    outcomes = {o.address: o.outcome for o in report.outcomes}
    assert outcomes["featureview.txn_stats"] == "failed" and not report.ok
    assert outcomes["model.fraud"] == "succeeded" and "model.fraud" in provider.world  # restored meanwhile

    class Broken(MLError):
        pass  # prior_kept False: the resource may be half-changed, its dependents wait

    del provider.world["model.fraud"]
    provider.on_apply = lambda request, ctx: (_ for _ in ()).throw(Broken("broken")) if (
        request.resource.address == "featureview.txn_stats") else None
    report = harness.apply(parallelism=1, overrides=["feature_views.txn_stats.features.amount_mean_7d.dtype=float64"])
    assert {o.address: o.outcome for o in report.outcomes}["model.fraud"] == "skipped"


def test_a_failed_preflight_refuses_the_whole_apply_before_anything_starts(tmp_path):
    """Checks that need the apply's environment (a missing secret) stop it before the first change: the
    models upstream are not trained for a deployment that could not start."""
    from ml_framework.errors import ApplyRefused, MLError

    class Checked(InMemoryProvider):
        capabilities = ("preflight",)

        def preflight(self, request, project_dir):
            if request.resource.address == "model.fraud":
                raise MLError("trainer: the credentials are not set", hint="export THEM")

    provider = Checked()
    h = Harness(write_project(tmp_path), {"memory": provider})
    try:
        with pytest.raises(ApplyRefused, match="nothing was applied: model.fraud: trainer: the credentials are not set"):
            h.apply()
        assert provider.count("apply") == 0 and h.store.list_resources() == []
        assert h.store.current_lock() is None
    finally:
        h.close()


def test_plan_refresh_only_shows_drift_and_nothing_to_do(tmp_path, provider):
    """`ml plan -refresh-only`: what changed outside of ml, no planned actions; --detailed-exitcode says
    whether there is drift (2) or not (0). It cannot be saved or combined with --destroy."""
    from ml_framework.testing import run_cli

    root = write_project(tmp_path)
    assert run_cli(["apply", "--auto-approve"], providers={"memory": provider}, cwd=root).exit_code == 0
    clean = run_cli(["plan", "-refresh-only", "--detailed-exitcode"], providers={"memory": provider}, cwd=root)
    assert clean.exit_code == 0, clean.output
    assert "No changes. No objects have changed outside of ml." in clean.output
    del provider.world["model.fraud"]
    provider.world["entity.customer"] = dict(provider.world["entity.customer"], spec_hash="edited")
    drift = run_cli(["plan", "-refresh-only", "--detailed-exitcode"], providers={"memory": provider}, cwd=root)
    assert drift.exit_code == 2, drift.output
    assert "model.fraud" in drift.output and "has been deleted" in drift.output
    assert "entity.customer" in drift.output and "has changed" in drift.output
    assert "will perform the following actions" not in drift.output
    assert "Drift: 2 objects changed outside of ml." in drift.output
    md = run_cli(["plan", "-refresh-only", "--format", "markdown"], providers={"memory": provider}, cwd=root)
    assert md.output.startswith("### ⚠️ Drift: 2 objects changed outside of ml.")
    full = run_cli(["plan", "--detailed-exitcode"], providers={"memory": provider}, cwd=root)
    assert full.exit_code == 2 and "will perform the following actions" in full.output  # the plan proper still plans
    refused = run_cli(["plan", "-refresh-only", "--out", str(tmp_path / "p.json")], providers={"memory": provider},
                      cwd=root)
    assert refused.exit_code == 1 and "--refresh-only" in refused.output and not (tmp_path / "p.json").exists()


def test_apply_says_what_each_backend_did_and_writes_a_json_report(tmp_path):
    """Each completed resource's line carries its backend's own words (a model's metrics and gate verdicts
    in real backends); `--report FILE` has the outcomes, those words and the recorded outputs for bots,
    written also when something failed."""
    import json

    from ml_framework.contract import ApplyResult
    from ml_framework.testing import run_cli

    class Talking(InMemoryProvider):
        def apply(self, request, ctx):
            result = super().apply(request, ctx)
            return ApplyResult(outputs=result.outputs, message=f"did {request.resource.address}")

    provider = Talking()
    root = write_project(tmp_path)
    report = tmp_path / "out" / "report.json"
    result = run_cli(["apply", "--auto-approve", "--report", str(report)], providers={"memory": provider}, cwd=root)
    assert result.exit_code == 0, result.output
    assert re.search(r"^model\.fraud: Creation complete after [\d.]+s — did model\.fraud$", result.output, re.M)
    data = json.loads(report.read_text())
    assert data["ok"] is True and data["operation"] == "apply" and data["summary"]["added"] == len(data["resources"])
    fraud = next(r for r in data["resources"] if r["address"] == "model.fraud")
    assert fraud["outcome"] == "succeeded" and fraud["message"] == "did model.fraud"
    assert fraud["outputs"]["id"] == "model.fraud" and fraud["duration_s"] >= 0

    again = run_cli(["apply", "--auto-approve", "--report", str(report)], providers={"memory": provider}, cwd=root)
    data = json.loads(report.read_text())
    assert again.exit_code == 0 and data["ok"] is True and data["resources"] == []  # nothing to do, said so

    provider.fail_on = {"model.fraud"}
    failed = run_cli(["apply", "--auto-approve", "--report", str(report), "models.fraud.task=regression"],
                     providers={"memory": provider}, cwd=root)
    data = json.loads(report.read_text())
    assert failed.exit_code == 1 and data["ok"] is False and data["summary"]["failed"] == 1
    fraud = next(r for r in data["resources"] if r["address"] == "model.fraud")
    assert fraud["outcome"] == "failed" and "simulated failure" in fraud["error"] and fraud["outputs"] is None


def test_an_unwritable_report_path_is_refused_before_anything_is_applied(tmp_path, provider):
    from ml_framework.testing import run_cli

    root = write_project(tmp_path)
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    for bad in (str(blocker / "report.json"), str(tmp_path)):
        result = run_cli(["apply", "--auto-approve", "--report", bad], providers={"memory": provider}, cwd=root)
        assert result.exit_code == 1 and "--report: cannot write" in result.output
    assert not [c for c in provider.calls if c[0] == "apply"]  # nothing was applied
