"""Process management of deployments, for real: a port already in use, a service that died and is restored
by the next plan/apply, a settings change that restarts it (a new port before the old one stops), and a
model version that fails to load (the rollout stops, stable keeps serving, no request fails)."""

from __future__ import annotations

import os
import signal
import socket
import time

import pytest

from ml_framework.testing.harness import Harness
from ml_framework.plugins.bentoml import BentoMLProvider
from ml_framework.plugins.bentoml.process import is_running, port_free
from ml_framework.plugins.bentoml.testing import LoadGenerator, deployment_spec, free_port, post, raw_payloads, stop_all_servers
from ml_framework.plugins.lightgbm import LightGBMProvider
from ml_framework.plugins.models.testing import feature_providers, model_spec, write_project

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("clean_ml_env")]
GOOD = raw_payloads(1)[0]


def providers():
    return {**feature_providers(), "lightgbm": LightGBMProvider(), "bentoml": BentoMLProvider()}


@pytest.fixture
def project(tmp_path, bentoml_home):
    root = write_project(tmp_path / "proj", rows=800, gates=())
    yield root
    stop_all_servers([root])


@pytest.fixture
def harness(project):
    h = Harness(project, providers())
    yield h
    try:
        h.destroy()
    finally:
        h.close()


def deployment(harness):
    return harness.store.get("deployment.fraud-api")


def test_port_in_use_is_a_clear_error_and_nothing_is_half_started(project, harness):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        (project / "specs" / "deploy.yaml").write_text(deployment_spec(port=port))
        report = harness.apply()
        failed = next(o for o in report.outcomes if o.address == "deployment.fraud-api")
        assert failed.outcome == "failed" and f"port {port} on 127.0.0.1 is already in use" in failed.error
        assert "by pid" in failed.error  # who holds it, when /proc tells
        assert deployment(harness) is None  # nothing recorded
        assert not (project / ".ml/serving/fraud-api/server.pid").exists()
        assert stop_all_servers([project]) == []  # no server process was left behind
    assert harness.apply().ok  # the port is free now: the same specs apply


def test_a_dead_service_is_noticed_by_refresh_and_restored(project, harness):
    (project / "specs" / "deploy.yaml").write_text(deployment_spec(port=free_port()))
    assert harness.apply().ok
    before = deployment(harness).outputs
    from ml_framework.plugins.bentoml.process import orphan_workers

    folder = project / ".ml" / "serving" / "fraud-api"
    workers = orphan_workers(folder, before["pid"]) | {before["pid"]}
    os.killpg(before["pid"], signal.SIGKILL)
    for worker in workers:  # the whole service dies: BentoML's workers live in sessions of their own
        try:
            os.kill(worker, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 10
    while (is_running(before["pid"]) or any(_alive(w) for w in workers)) and time.monotonic() < deadline:
        time.sleep(0.05)
    plan = harness.plan()
    change = next(c for c in plan.pending() if c.address == "deployment.fraud-api")
    assert change.action == "create" and "no longer exists" in change.reasons[0]
    assert [d.address for d in plan.drift] == ["deployment.fraud-api"]
    assert harness.apply().ok
    after = deployment(harness).outputs
    assert after["pid"] != before["pid"] and is_running(after["pid"]) and after["model_version"] == "v1"
    assert after["revisions"][-1]["outcome"] == "restored"
    assert post(after["url"] + "/predict", GOOD)[0] == 200
    assert not harness.plan().has_changes


def test_a_new_port_starts_before_the_old_one_stops(project, harness):
    old_port, new_port = free_port(), free_port()
    (project / "specs" / "deploy.yaml").write_text(deployment_spec(port=old_port))
    assert harness.apply().ok
    old = deployment(harness).outputs
    (project / "specs" / "deploy.yaml").write_text(deployment_spec(port=new_port))
    change = next(c for c in harness.plan().pending() if c.address == "deployment.fraud-api")
    assert change.action == "update" and any("restarts the service (serving.port)" in r for r in change.reasons)
    with LoadGenerator(old["url"], raw_payloads(50), threads=2) as load:
        time.sleep(0.3)
        assert harness.apply().ok
    new = deployment(harness).outputs
    assert new["port"] == new_port and post(new["url"] + "/predict", GOOD)[0] == 200
    assert not is_running(old["pid"]) and port_free("127.0.0.1", old_port)
    assert load.ok > 0  # the old port served until the new one was ready


def test_a_version_that_fails_to_load_stops_the_rollout_and_stable_keeps_serving(project, harness):
    (project / "specs" / "deploy.yaml").write_text(deployment_spec(
        port=free_port(), rollout="{strategy: canary, steps: [50, 100], interval: 1s, analysis: {min_requests: 5}}"))
    assert harness.apply().ok
    url = deployment(harness).outputs["url"]
    (project / "specs" / "models.yaml").write_text(model_spec(gates=(), params={"num_leaves": 7, "num_boost_round": 20}))
    assert harness.apply(targets=["model.fraud"]).ok
    from ml_framework.plugins.models.registry import ModelRegistry
    from ml_framework.plugins.models.artifacts import artifact_dir

    registry = ModelRegistry.for_project(project)
    v2 = registry.release_target("fraud")  # released to the deployment; production stays v1 until it serves
    assert v2.label == "v2" and registry.resolve("fraud").label == "v1"
    (artifact_dir(v2.bentoml_tag) / "saved_model.ubj").write_text("not a model")  # corrupt it in the store
    with LoadGenerator(url, raw_payloads(50), threads=2) as load:
        report = harness.apply()
    outcome = next(o for o in report.outcomes if o.address == "deployment.fraud-api")
    assert outcome.outcome == "failed" and "rolled back" in outcome.error and "could not load" in outcome.error
    assert load.failed == 0 and load.ok > 0 and set(load.versions) == {"v1"}, load.errors
    record = deployment(harness)
    assert record.outputs["model_version"] == "v1" and record.outputs["revisions"][-1]["outcome"] == "rolled_back"
    assert post(url + "/predict", GOOD)[1]["model_version"] == "v1"
    assert registry.aliases("fraud") == {"candidate": 2, "production": 1}  # the release ended; v1 is production
    # the next apply does not retry the broken version: it keeps v1 and says so
    report = harness.apply()
    assert report.ok and deployment(harness).status == "applied"
    assert not harness.plan().has_changes


def test_build_records_a_bento_of_what_serves(project, harness):
    (project / "specs" / "deploy.yaml").write_text(deployment_spec(port=free_port(), serving="build: true"))
    assert harness.apply().ok
    outputs = deployment(harness).outputs
    name, _, version = outputs["bento_tag"].partition(":")
    assert name == "fraud_api" and (project.parent / "bentoml" / "bentos" / name / version / "bento.yaml").is_file()
    assert not harness.plan().has_changes


def test_a_killed_server_whose_workers_still_answer_is_reported_and_replaced(project, harness):
    from ml_framework.plugins.bentoml.process import orphan_workers

    (project / "specs" / "deploy.yaml").write_text(deployment_spec(port=free_port()))
    assert harness.apply().ok
    before = deployment(harness).outputs
    folder = project / ".ml" / "serving" / "fraud-api"
    os.kill(before["pid"], signal.SIGKILL)  # the supervisor only: its worker keeps the port
    deadline = time.monotonic() + 10
    while is_running(before["pid"]) and time.monotonic() < deadline:
        time.sleep(0.05)
    orphans = orphan_workers(folder, before["pid"])
    assert orphans, "the worker should outlive its killed server"
    assert post(before["url"] + "/predict", GOOD)[0] == 200  # what is actually listening
    plan = harness.plan()
    [drift] = plan.drift
    assert drift.address == "deployment.fraud-api" and drift.exists  # not "deleted": something answers
    assert "still answer without a supervisor" in str(drift.fields)
    assert any(c.address == "deployment.fraud-api" for c in plan.pending())
    assert harness.apply().ok
    after = deployment(harness).outputs
    assert after["pid"] != before["pid"] and is_running(after["pid"])
    assert not any(_alive(w) for w in orphans)  # the orphans were stopped, not left beside the new server
    assert post(after["url"] + "/predict", GOOD)[0] == 200
    assert not harness.plan().has_changes


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_a_new_rate_limit_or_api_keys_reach_the_running_service_without_a_restart(project, harness, monkeypatch):
    from ml_framework.plugins.bentoml.testing import LoadGenerator

    port = free_port()
    (project / "specs" / "deploy.yaml").write_text(deployment_spec(
        port=port, extra="rate_limit: {requests_per_second: 5000, burst: 5000}\n"))
    assert harness.apply().ok
    before = deployment(harness).outputs
    tight = "deployments.fraud-api.rate_limit.requests_per_second=1", "deployments.fraud-api.rate_limit.burst=1"
    plan = harness.plan(overrides=tight)
    (change,) = plan.pending()
    assert any("rate_limit applied to the running service without a restart" in r for r in change.reasons)
    assert not any("restarts the service" in r for r in change.reasons)
    with LoadGenerator(before["url"], raw_payloads(20), threads=2) as load:
        assert harness.apply(overrides=tight).ok
    assert load.statuses[200] > 0 and set(load.statuses) <= {200, 429}, load.statuses  # no request failed
    after = deployment(harness).outputs
    assert after["pid"] == before["pid"]  # the same process: nothing restarted
    statuses = [post(after["url"] + "/predict", GOOD)[0] for _ in range(3)]
    assert 429 in statuses  # the new limit is in force
    monkeypatch.setenv("ML_TEST_KEYS", "k1")
    keyed = harness.apply(overrides=tight + ("+deployments.fraud-api.auth.api_keys_env=ML_TEST_KEYS",))
    assert keyed.ok and deployment(harness).outputs["pid"] == before["pid"]
    assert post(after["url"] + "/predict", GOOD)[0] == 401  # keys now required, still no restart


def test_a_serving_setting_that_needs_a_restart_starts_the_new_process_beside_the_old_one(project, harness):
    port = free_port()
    (project / "specs" / "deploy.yaml").write_text(deployment_spec(port=port))
    assert harness.apply().ok
    before = deployment(harness).outputs
    change_ = ("+deployments.fraud-api.serving.timeout_s=20", "+deployments.fraud-api.serving.max_request_bytes=32768")
    (change,) = harness.plan(overrides=change_).pending()
    assert any("takes over the listening socket" in r for r in change.reasons), change.reasons
    with LoadGenerator(before["url"], raw_payloads(50), threads=4) as load:
        time.sleep(0.3)
        assert harness.apply(overrides=change_).ok
        time.sleep(0.3)
    after = deployment(harness).outputs
    assert after["pid"] != before["pid"] and after["port"] == port and not is_running(before["pid"])
    assert load.failed == 0 and load.ok > 0, load.errors  # not one refused or failed request
    status, body, _ = post(after["url"] + "/predict", None, raw=b'{"features": {"x": "' + b"a" * 40_000 + b'"}}')
    assert status == 413  # the new limit is in force
