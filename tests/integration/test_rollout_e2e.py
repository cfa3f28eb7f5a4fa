"""Rollouts end to end, under continuous client load against a real `bentoml serve` process:

* a canary of a deliberately worse model (trained on a noise label) fails its analysis and is rolled back
  automatically, with zero failed requests; a better model is promoted, again with zero failures;
* `ml rollback --to N` switches back instantly under load; `ml history` lists the revisions;
* shadow: users only ever see stable while the candidate's mirrored answers are logged and compared;
* blue/green: candidate warmed and checked on mirrored traffic, then switched to in one step;
* an interrupted rollout resumes at its step on the next apply; an inconclusive one pauses and
  `ml rollback` aborts it.

Small models on small data and short analysis intervals keep the module near a minute."""

from __future__ import annotations

import json
import time

import pytest

from ml_framework.plugins.serving.prediction_log import read_predictions
from ml_framework.testing import run_cli
from ml_framework.testing.harness import Harness
from ml_framework.plugins.bentoml import BentoMLProvider
from ml_framework.plugins.bentoml.control import read_control
from ml_framework.plugins.bentoml.testing import LoadGenerator, deployment_spec, free_port, post, raw_payloads, stop_all_servers
from ml_framework.plugins.lightgbm import LightGBMProvider
from ml_framework.plugins.models.registry import ModelRegistry
from ml_framework.plugins.models.testing import feature_providers, model_spec, write_project

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("clean_ml_env", "bentoml_home")]
PAYLOADS = raw_payloads(300)
FAST = "interval: 1s, max_wait: 15s, analysis: {min_requests: 40, max_error_rate: 0.01, max_prediction_shift: 0.15}"


def providers(bentoml=None):
    return {**feature_providers(), "lightgbm": LightGBMProvider(), "bentoml": bentoml or BentoMLProvider()}


def make_project(tmp_path, rollout: str):
    root = write_project(tmp_path / "proj", rows=1500, gates=())
    import numpy as np
    import pandas as pd

    labels = pd.read_parquet(root / "data" / "labels.parquet")
    labels["noise"] = (np.random.default_rng(3).random(len(labels)) < 0.5).astype("int64")  # unrelated to anything
    labels.to_parquet(root / "data" / "labels.parquet", index=False)
    (root / "specs" / "deploy.yaml").write_text(deployment_spec(port=free_port(), rollout=rollout))
    return root


def retrain(harness, root, **spec):
    (root / "specs" / "models.yaml").write_text(model_spec(gates=(), **spec))
    report = harness.apply(targets=["model.fraud"])
    assert report.ok, report.outcomes
    return harness.store.get("model.fraud").outputs["version"]


def good(harness, root):
    return retrain(harness, root, params={"num_leaves": 15, "learning_rate": 0.1, "num_boost_round": 45})


def worse(harness, root):
    return retrain(harness, root, label="noise")


def deployment(harness):
    return harness.store.get("deployment.fraud-api")


def outcome(report):
    return next(o for o in report.outcomes if o.address == "deployment.fraud-api")


@pytest.fixture
def canary(tmp_path):
    root = make_project(tmp_path, "{strategy: canary, steps: [20, 50, 100], " + FAST + "}")
    harness = Harness(root, providers())
    assert harness.apply().ok
    yield harness, root
    try:
        harness.destroy()
    finally:
        harness.close()
        stop_all_servers([root])


def test_canary_of_a_worse_model_rolls_back_and_a_better_one_is_promoted_under_load(canary):
    harness, root = canary
    url = deployment(harness).outputs["url"]
    bad = worse(harness, root)
    assert bad == "v2"
    started = time.monotonic()
    with LoadGenerator(url, PAYLOADS, threads=4) as load:
        report = harness.apply()
    failed = outcome(report)
    assert failed.outcome == "failed" and "rollout of v2 rolled back" in failed.error
    assert "canary 20% failed analysis: prediction_shift" in failed.error and "v1 keeps serving" in failed.error
    assert load.failed == 0, load.errors
    assert load.versions["v2"] > 0 and load.versions["v1"] > load.versions["v2"]  # it did get its 20%
    assert time.monotonic() - started < 30
    record = deployment(harness)
    assert record.outputs["model_version"] == "v1" and read_control(root / ".ml/serving/fraud-api")["candidate"] is None
    revisions = record.outputs["revisions"]
    assert [(r["version"], r["outcome"]) for r in revisions] == [("v1", "deployed"), ("v2", "rolled_back")]
    assert post(url + "/predict", PAYLOADS[0])[1]["model_version"] == "v1"
    # the plan says why, and applying again does not retry v2
    change = next(c for c in harness.plan().pending() if c.address == "deployment.fraud-api")
    assert any("was rolled back" in r for r in change.reasons)
    # the registry agrees with what serves: v2 never became production (batch scoring follows v1)
    registry = ModelRegistry.for_project(root)
    assert registry.aliases("fraud") == {"candidate": 2, "production": 1}
    assert harness.apply().ok and not harness.plan().has_changes
    # a retry on purpose: the plan says so, and v2 is rolled out (and rolled back) again
    plan = harness.plan(retry=["deployment.fraud-api"])
    change = next(c for c in plan.pending() if c.address == "deployment.fraud-api")
    assert any("--retry: rolls v2 out again" in r for r in change.reasons), change.reasons
    with LoadGenerator(url, PAYLOADS, threads=4) as load:
        report = harness.apply(plan)
    assert "rollout of v2 rolled back" in outcome(report).error and load.versions["v2"] > 0
    assert registry.aliases("fraud") == {"candidate": 2, "production": 1} and load.failed == 0

    better = good(harness, root)
    assert better == "v3"
    with LoadGenerator(url, PAYLOADS, threads=4) as load:
        report = harness.apply()
    assert report.ok, outcome(report).error
    assert load.failed == 0, load.errors
    assert load.versions["v3"] > 0 and load.versions["v1"] > 0
    record = deployment(harness)
    assert record.outputs["model_version"] == "v3" and record.outputs["revisions"][-1]["outcome"] == "promoted"
    steps = record.outputs["last_rollout"]["steps"]
    assert [s["step"] for s in steps] == ["canary 20%", "canary 50%", "promote"]
    assert all(s["status"] in ("passed", "promoted") for s in steps)
    assert post(url + "/predict", PAYLOADS[0])[1]["model_version"] == "v3"
    assert not harness.plan().has_changes
    assert registry.aliases("fraud")["production"] == 3 and "release" not in registry.aliases("fraud")

    # instant rollback to revision 1 under load: no failed request, the next answers come from v1
    with LoadGenerator(url, PAYLOADS, threads=4) as load:
        time.sleep(0.3)
        result = run_cli(["rollback", "deployment/fraud-api", "--to", "1"], providers=providers(), cwd=root)
        time.sleep(0.3)
    assert result.exit_code == 0, result.output
    assert "serves v1" in result.output and load.failed == 0, load.errors
    assert "fraud@production → v1" in result.output and registry.resolve("fraud").version == 1
    assert post(url + "/predict", PAYLOADS[0])[1]["model_version"] == "v1"
    history = run_cli(["history", "deployment/fraud-api"], providers=providers(), cwd=root)
    for word in ("deployed", "rolled_back", "promoted", "rollback"):
        assert word in history.output
    assert not harness.plan().has_changes  # the rollback holds: v3 is not rolled out again by itself


def test_shadow_users_see_stable_while_the_candidate_is_compared(tmp_path):
    root = make_project(tmp_path, "{strategy: shadow, " + FAST.replace("max_prediction_shift: 0.15",
                                                                                   "min_agreement: 0.5, agreement_tolerance: 0.2") + "}")
    harness = Harness(root, providers())
    try:
        assert harness.apply().ok
        url = deployment(harness).outputs["url"]
        good(harness, root)
        answers = []
        with LoadGenerator(url, PAYLOADS, threads=3) as load:
            report = harness.apply()
            answers = dict(load.variants)
        assert report.ok, outcome(report).error
        assert load.failed == 0 and set(answers) == {"stable"}  # nobody was answered by the shadow
        assert load.versions["v1"] > 0
        record = deployment(harness)
        assert record.outputs["model_version"] == "v2"
        checks = {c["name"]: c for c in record.outputs["last_rollout"]["steps"][0]["checks"]}
        assert checks["agreement"]["passed"] and checks["agreement"]["value"] >= 0.5
        shadows = [r for r in read_predictions(root, "fraud-api", last=5000) if r.get("variant") == "shadow"]
        assert shadows and all("stable_prediction" in r and r["model_version"] == "v2" for r in shadows)
    finally:
        harness.destroy()
        harness.close()
        stop_all_servers([root])


def test_blue_green_switches_in_one_step_after_checking(tmp_path):
    root = make_project(tmp_path, "{strategy: blue_green, warmup_requests: 10, "
                        + FAST.replace("max_prediction_shift: 0.15", "min_agreement: 0.5, agreement_tolerance: 0.2") + "}")
    harness = Harness(root, providers())
    try:
        assert harness.apply().ok
        url = deployment(harness).outputs["url"]
        good(harness, root)
        with LoadGenerator(url, PAYLOADS, threads=3) as load:
            report = harness.apply()
            time.sleep(0.3)
        assert report.ok, outcome(report).error
        assert load.failed == 0 and load.variants.get("candidate", 0) == 0  # never split: one switch
        control = read_control(root / ".ml/serving/fraud-api")
        assert control["stable"]["version"] == "v2" and control["candidate"] is None
        steps = deployment(harness).outputs["last_rollout"]["steps"]
        assert [s["step"] for s in steps] == ["preview (mirrored traffic)", "promote"]
    finally:
        harness.destroy()
        harness.close()
        stop_all_servers([root])


class Interrupting(BentoMLProvider):
    """Ctrl-C once, while the rollout collects at the given step."""

    def __init__(self, when: str):
        super().__init__()
        self.when = when

    def apply(self, request, ctx):
        original = ctx.progress

        def progress(message, fraction=None):
            original(message, fraction)
            if self.when and message.startswith(self.when):
                self.when = ""
                raise KeyboardInterrupt

        ctx.progress = progress
        return super().apply(request, ctx)


def test_an_interrupted_rollout_resumes_at_its_step(tmp_path):
    root = make_project(tmp_path, "{strategy: canary, steps: [20, 50, 100], " + FAST + "}")
    provider = Interrupting("canary 50%: collecting")
    harness = Harness(root, providers(provider))
    try:
        assert harness.apply().ok
        url = deployment(harness).outputs["url"]
        good(harness, root)
        with LoadGenerator(url, PAYLOADS, threads=3) as load:
            report = harness.apply()
            assert outcome(report).outcome == "failed" and "interrupted" in outcome(report).error
            record = deployment(harness)
            assert record.status == "in_progress"
            state = record.outputs["rollout"]
            assert state["phase"] == "interrupted" and state["step"] == 1
            assert read_control(root / ".ml/serving/fraud-api")["candidate"] is None  # stable took it all back
            change = next(c for c in harness.plan().pending() if c.address == "deployment.fraud-api")
            assert any("stopped at step 2 (interrupted): applying resumes it" in r for r in change.reasons)
            report = harness.apply()
        assert report.ok, outcome(report).error
        assert load.failed == 0, load.errors
        record = deployment(harness)
        assert record.status == "applied" and record.outputs["model_version"] == "v2"
        assert [s["step"] for s in record.outputs["last_rollout"]["steps"]] == ["canary 20%", "canary 50%", "promote"]
        assert [r["outcome"] for r in record.outputs["revisions"]] == ["deployed", "promoted"]  # one revision
    finally:
        harness.destroy()
        harness.close()
        stop_all_servers([root])


def test_an_inconclusive_step_pauses_and_ml_rollback_aborts_it(tmp_path):
    root = make_project(tmp_path, "{strategy: canary, steps: [30, 100], interval: 1s, max_wait: 2s, "
                                               "on_inconclusive: pause, analysis: {min_requests: 1000}}")
    harness = Harness(root, providers())
    try:
        assert harness.apply().ok
        url = deployment(harness).outputs["url"]
        good(harness, root)
        report = harness.apply()  # no traffic at all: never enough requests
        assert "paused" in outcome(report).error and "inconclusive" in outcome(report).error
        control = read_control(root / ".ml/serving/fraud-api")
        assert control["candidate"]["version"] == "v2" and control["weight"] == 30.0  # held, like Argo
        status = run_cli(["status", "--json"], providers=providers(), cwd=root)
        info = json.loads(status.output)["deployment.fraud-api"]
        assert info["candidate"] == "v2" and info["state"] == "in_progress"
        result = run_cli(["rollback", "deployment/fraud-api"], providers=providers(), cwd=root)
        assert result.exit_code == 1 and "no earlier revision" in result.output  # v1 is all there ever was
        result = run_cli(["rollback", "deployment/fraud-api", "--to", "1"], providers=providers(), cwd=root)
        assert result.exit_code == 0, result.output
        assert read_control(root / ".ml/serving/fraud-api")["candidate"] is None
        assert post(url + "/predict", PAYLOADS[0])[1]["model_version"] == "v1"
        record = deployment(harness)
        assert record.outputs["rollout"] is None and record.outputs["last_rollout"]["outcome"] == "aborted"
        assert harness.apply().ok and not harness.plan().has_changes  # v2 is not rolled out again by itself
    finally:
        harness.destroy()
        harness.close()
        stop_all_servers([root])


def test_without_live_traffic_a_declared_replay_judges_the_step_on_logged_requests_and_validation_rows(tmp_path):
    root = make_project(tmp_path, "{strategy: canary, steps: [20, 100], interval: 1s, max_wait: 2s, "
                                  "on_inconclusive: replay, replay: {requests: 120}, "
                                  "analysis: {min_requests: 100, max_prediction_shift: 0.15}}")
    harness = Harness(root, providers())
    try:
        plan = harness.plan()
        change = next(c for c in plan.pending() if c.address == "deployment.fraud-api")
        assert harness.apply(plan).ok
        url = deployment(harness).outputs["url"]
        for payload in PAYLOADS[:40]:  # a little real traffic, logged; the rest comes from validation rows
            assert post(url + "/predict", payload)[0] == 200
        # the replay route exists only for `ml apply`, which holds the token
        assert post(url + "/ml/replay", {"records": []})[0] == 404
        assert post(url + "/ml/replay", {"records": []}, headers={"x-ml-replay": "guess"})[0] == 404
        good(harness, root)
        change = next(c for c in harness.plan().pending() if c.address == "deployment.fraud-api")
        assert any("120 inputs are replayed to both versions" in r for r in change.reasons), change.reasons
        logged_before = len(read_predictions(root, "fraud-api", last=10_000))
        report = harness.apply()  # nobody sends a request
        assert report.ok, outcome(report).error
        record = deployment(harness)
        assert record.outputs["model_version"] == "v2"
        steps = record.outputs["last_rollout"]["steps"]
        assert steps[0]["status"] == "inconclusive"  # the live window, kept in the record
        step = steps[1]
        assert step["replayed"] == "40 logged requests + 80 validation rows" and step["status"] == "passed"
        assert step["candidate_requests"] == 120
        assert len(read_predictions(root, "fraud-api", last=10_000)) == logged_before  # replays are not predictions
        # a worse candidate is caught on the same replayed inputs, and rolled back
        worse(harness, root)
        report = harness.apply()
        assert "failed analysis on replayed" in outcome(report).error and "prediction_shift" in outcome(report).error
        assert deployment(harness).outputs["model_version"] == "v2"
        assert post(url + "/predict", PAYLOADS[0])[1]["model_version"] == "v2"
    finally:
        harness.destroy()
        harness.close()
        stop_all_servers([root])
