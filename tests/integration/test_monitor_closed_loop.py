"""The whole loop on real parts: a real `bentoml serve` process answers drifted traffic, the monitor reads
what it logged, finds the drift, and its `retrain` action trains a new version through plan/apply (gates
included) that reaches users through the deployment's canary, under continuous load, with no failed
request. Then the monitor watches the new version."""

from __future__ import annotations

import re

import pytest

from ml_framework.plugins.models.registry import ModelRegistry
from ml_framework.testing import run_cli
from ml_framework.testing.harness import Harness
from ml_framework.plugins.alibi_detect import AlibiDetectProvider
from ml_framework.plugins.bentoml import BentoMLProvider
from ml_framework.plugins.bentoml.testing import LoadGenerator, deployment_spec, free_port, post, stop_all_servers
from ml_framework.plugins.lightgbm import LightGBMProvider
from ml_framework.plugins.models.testing import feature_providers, write_data, write_project

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("clean_ml_env")]

# The canary checks errors, p99 and the prediction shift; the shift is reported, not enforced, when the
# monitor's retrain started the rollout (rollout.analysis.retrain_dry_run): a model retrained after drift
# answers the drifted inputs differently by design (measured here: KS ~0.65 against the stale model).
CANARY = ("{strategy: canary, steps: [50, 100], interval: 1s, max_wait: 20s, "
          "analysis: {min_requests: 30, max_error_rate: 0.01, max_p99_ms: 1000, max_prediction_shift: 0.1}}")
MONITOR = """\
kind: Monitor
name: fraud-drift
deployment: fraud-api
detector: {backend: alibi-detect, method: tabular, p_val: 0.05}
predictions: false
window: {last: 400, min_samples: 200}
on_drift: [alert, retrain]
"""


def drifted(count: int) -> list[dict]:
    """Requests whose amounts run twice as high as in training (the other features as usual)."""
    import random

    rng = random.Random(5)
    return [{"features": {"amount_mean_7d": round(2 * rng.lognormvariate(3, 0.6), 2), "txn_count_7d": rng.randint(3, 12),
                          "segment": rng.choice(["retail", "business", "premium"])}} for _ in range(count)]


@pytest.fixture
def loop(tmp_path, bentoml_home):
    root = write_project(tmp_path / "proj", rows=1500, gates=("auc >= 0.6", "auc >= production.auc - 0.15"))
    (root / "specs" / "deploy.yaml").write_text(deployment_spec(port=free_port(), rollout=CANARY))
    (root / "specs" / "monitor.yaml").write_text(MONITOR)
    providers = {**feature_providers(), "lightgbm": LightGBMProvider(), "bentoml": BentoMLProvider(),
                 "alibi-detect": AlibiDetectProvider()}
    harness = Harness(root, providers)
    report = harness.apply()
    assert report.ok, [(o.address, o.error) for o in report.outcomes if o.error]
    yield harness, root, providers
    try:
        harness.destroy()
    finally:
        harness.close()
        stop_all_servers([root])


def test_drift_seen_by_the_service_retrains_through_gates_and_a_canary(loop):
    harness, root, providers = loop
    url = harness.store.get("deployment.fraud-api").outputs["url"]
    payloads = drifted(300)
    for payload in payloads:  # what users send now, logged by the service itself
        status, body, _ = post(url + "/predict", payload)
        assert status == 200 and body["model_version"] == "v1"

    write_data(root, rows=1800, seed=11)  # fresh labelled data has arrived
    with LoadGenerator(url, payloads, threads=2, pause=0.005) as load:  # users keep coming during the rollout
        result = run_cli(["monitor", "run"], providers=providers, cwd=root)
    assert result.exit_code == 3, result.output  # drift was found (and acted on)
    assert re.search(r"ALERT monitor=fraud-drift .*features=amount_mean_7d\(p=", result.output), result.output
    assert re.search(r"action retrain: succeeded trained fraud:v2 \(accepted, aliases: [a-z, ]*production",
                     result.output), result.output
    assert load.failed == 0, load.errors
    assert "started by monitor.fraud-drift's retrain: prediction_shift reported, not enforced" in result.output
    # measured, shown, never the reason to stop (a shift this large fails a person's `ml apply`)
    assert re.search(r"prediction_shift KS [\d.]+ \(max 0\.1[^)]*\) \[(ok|fail \(dry run\))\]", result.output), \
        result.output

    v2 = ModelRegistry.for_project(root).get("fraud", "v2")
    assert {g["gate"]: g["status"] for g in v2.gates} == {"auc >= 0.6": "passed",
                                                          "auc >= production.auc - 0.15": "passed"}
    deployment = harness.store.get("deployment.fraud-api").outputs
    assert deployment["model_version"] == "v2"
    last = deployment["revisions"][-1]
    assert (last["version"], last["outcome"]) == ("v2", "promoted"), deployment["revisions"]
    assert load.versions["v1"] > 0 and load.versions["v2"] > 0  # the canary served some users v2 first
    assert post(url + "/predict", payloads[0])[1]["model_version"] == "v2"

    monitor = harness.store.get("monitor.fraud-drift").outputs
    assert monitor["versions"] == ["v2"] and "v2" in monitor["detectors"]
    assert not harness.plan().has_changes  # the loop left nothing half-applied
