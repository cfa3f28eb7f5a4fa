"""A real `bentoml serve` process per deployment, applied through the engine (Harness, real SQLite state,
a temporary BentoML model store): health, metrics, OpenAPI, the prediction log, every bad-input case
answered without stopping the server, API keys and the rate limit, and `ml status|history`.

One module-scoped project serves two deployments: ``open-api`` (no auth) and ``guarded-api`` (API keys
from an environment variable, a tight rate limit, a small payload limit)."""

from __future__ import annotations

import json
import time
import urllib.request

import pytest

from ml_framework.plugins.serving.prediction_log import read_predictions
from ml_framework.testing import run_cli
from ml_framework.testing.harness import Harness
from ml_framework.plugins.bentoml import BentoMLProvider
from ml_framework.plugins.bentoml.process import is_running
from ml_framework.plugins.bentoml.testing import deployment_spec, free_port, post, raw_payloads, stop_all_servers
from ml_framework.plugins.lightgbm import LightGBMProvider
from ml_framework.plugins.models.testing import feature_providers, write_project

pytestmark = pytest.mark.integration
KEY = "k-test-123"
GOOD = raw_payloads(1)[0]


def providers():
    return {**feature_providers(), "lightgbm": LightGBMProvider(), "bentoml": BentoMLProvider()}


@pytest.fixture(scope="module")
def served(tmp_path_factory, module_bentoml_home):
    with pytest.MonkeyPatch.context() as mp:
        tmp = tmp_path_factory.mktemp("serving")
        for name in ("ML_STATE_URL", "ML_DEBUG"):
            mp.delenv(name, raising=False)
        mp.setenv("NO_COLOR", "1")
        mp.setenv("TEST_ML_API_KEYS", f"{KEY},other-key")
        root = write_project(tmp / "proj", rows=1500, gates=())
        (root / "specs" / "deploy.yaml").write_text(
            deployment_spec("open-api", port=free_port()) + "---\n"
            + deployment_spec("guarded-api", port=free_port(), serving="max_request_bytes: 300",
                              extra="auth: {api_keys_env: TEST_ML_API_KEYS}\n"
                                    "rate_limit: {requests_per_second: 2, burst: 4, per: api_key}\n"))
        harness = Harness(root, providers())
        try:
            report = harness.apply()
            assert report.ok, report.outcomes
            yield harness
        finally:
            harness.destroy()
            harness.close()
            stop_all_servers([root])


def outputs(harness, name="open-api"):
    return harness.store.get(f"deployment.{name}").outputs


def get(url):
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.status, response.read().decode()


def test_apply_starts_a_ready_service_and_records_it(served):
    out = outputs(served)
    assert out["url"] == f"http://127.0.0.1:{out['port']}" and is_running(out["pid"])
    assert out["model_version"] == out["stable_version"] == "v1" and out["versions"] == ["v1"]
    assert out["revision"] == 1 and out["revisions"][0]["outcome"] == "deployed"
    assert get(out["url"] + "/readyz")[0] == 200 and get(out["url"] + "/livez")[0] == 200
    assert not served.plan().has_changes  # apply then plan is empty
    status, body, _ = post(out["url"] + "/predict", GOOD)
    assert status == 200 and body["model_version"] == "v1" and body["model"] == "fraud"
    assert 0 <= body["prediction"] <= 1 and body["variant"] == "stable" and body["request_id"]


def test_metrics_with_a_version_label_openapi_and_status(served):
    url = outputs(served)["url"]
    post(url + "/predict", GOOD)
    _, metrics = get(url + "/metrics")
    assert 'ml_predictions_total{deployment="open-api",model_version="v1",status="200",variant="stable"}' in metrics
    assert "ml_prediction_latency_seconds_bucket" in metrics and "bentoml_" in metrics
    _, docs = get(url + "/docs.json")
    spec = json.loads(docs)
    body = spec["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    request = spec["components"]["schemas"][body["$ref"].rsplit("/", 1)[1]]
    assert {"features", "request_id"} <= set(request["properties"])  # raw features: every one required
    assert set(request["properties"]["features"]["required"]) == set(request["properties"]["features"]["properties"])
    status, text = get(url + "/ml/status")
    assert status == 200 and json.loads(text)["stable"]["version"] == "v1"


def test_metrics_carry_the_gauges_of_the_monitors_watching_the_deployment(served):
    from ml_framework.plugins.monitoring.results import DRIFT, DriftResult, FeatureResult, RunResult, VersionResult
    from ml_framework.plugins.monitoring.store import MonitorStore

    url = outputs(served)["url"]
    post(url + "/predict", GOOD)
    drift = DriftResult(status=DRIFT, method="tabular", n=500, min_samples=100, threshold=0.01, features=[
        FeatureResult(name="amount_mean_7d", kind="numeric", test="ks", p_val=1e-9, drift=True, n=500)])
    mstore = MonitorStore.for_store(served.store)
    for monitor, deployment in (("open-drift", "open-api"), ("other-drift", "guarded-api")):
        mstore.record(RunResult(monitor=monitor, deployment=deployment, at="2026-03-01T00:00:00+00:00",
                                window={"last": 1000}, versions=[VersionResult("fraud", "v1", drift)]))
    deadline = time.monotonic() + 15  # the service keeps the gauges a few seconds between reads
    while True:
        status, metrics = get(url + "/metrics")
        if "ml_monitor_status" in metrics or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert status == 200
    assert 'ml_monitor_status{monitor="open-drift",deployment="open-api"} 1' in metrics
    assert 'ml_monitor_feature_p_value{monitor="open-drift",model_version="v1",feature="amount_mean_7d"} 1e-09' in metrics
    assert 'ml_monitor_window_rows{monitor="open-drift",model_version="v1"} 500' in metrics
    assert "other-drift" not in metrics  # only the monitors of this deployment
    assert "bentoml_" in metrics and "ml_predictions_total" in metrics  # BentoML's part is still there
    assert metrics.count("# TYPE ml_monitor_status gauge") == 1


def test_every_request_is_logged(served):
    url = outputs(served)["url"]
    status, body, _ = post(url + "/predict", dict(GOOD, request_id="log-check-1"))
    assert status == 200
    post(url + "/predict", {"features": {"amount_mean_7d": "x"}, "request_id": "log-check-2"})
    deadline = time.monotonic() + 5
    records = []
    while time.monotonic() < deadline:
        records = {r["request_id"]: r for r in read_predictions(served.project.root, "open-api", last=500)}
        if "log-check-1" in records and "log-check-2" in records:
            break
        time.sleep(0.1)
    ok, bad = records["log-check-1"], records["log-check-2"]
    assert ok["prediction"] == body["prediction"] and ok["model_version"] == "v1" and ok["variant"] == "stable"
    assert ok["features"] == GOOD["features"] and ok["status"] == 200 and ok["latency_ms"] > 0
    assert ok["deployment"] == "open-api" and ok["ts"] and "generation" in ok
    assert bad["status"] == 422 and bad["error"] == "invalid request"


@pytest.mark.parametrize("raw, status, where", [
    (b'{"features": {"amount_mean_7d": 1', 400, "malformed JSON"),
    (b"not json at all", 400, "malformed JSON"),
    (json.dumps({"features": {"amount_mean_7d": "high", "txn_count_7d": 3, "segment": "retail"}}).encode(), 422,
     ["features", "amount_mean_7d"]),
    (json.dumps({"features": {"amount_mean_7d": 10.0, "segment": "retail"}}).encode(), 422,
     ["features", "txn_count_7d"]),
    (json.dumps({"features": {"amount_mean_7d": 10.0, "txn_count_7d": 3, "segment": 5}}).encode(), 422,
     ["features", "segment"]),
    (json.dumps({"feature": {}}).encode(), 422, ["feature"]),
    (json.dumps([1, 2, 3]).encode(), 422, []),
    (json.dumps({"entity_keys": {"customer_id": 1}}).encode(), 422, ["entity_keys"]),
])
def test_bad_input_is_answered_and_the_server_keeps_serving(served, raw, status, where):
    url = outputs(served)["url"]
    got, body, _ = post(url + "/predict", None, raw=raw)
    assert got == status, body
    if isinstance(where, str):
        assert body["error"] == where
    else:
        assert any(d["loc"] == where for d in body["detail"]), body
    assert post(url + "/predict", GOOD)[0] == 200


def test_payload_over_the_size_limit_is_413_with_or_without_content_length(served):
    url = outputs(served, "guarded-api")["url"]
    big = {"features": dict(GOOD["features"]), "request_id": "x" * 500}
    status, body, _ = post(url + "/predict", big, headers={"x-api-key": KEY})
    assert status == 413 and "over the limit of 300 bytes" in body["error"]
    # chunked upload: no Content-Length, the body is counted as it arrives
    import http.client

    host, port = url.rpartition(":")[0].partition("//")[2], int(url.rpartition(":")[2])
    conn = http.client.HTTPConnection(host, port, timeout=5)
    payload = json.dumps(big).encode()
    conn.request("POST", "/predict", body=iter([payload[:200], payload[200:]]),
                 headers={"x-api-key": "other-key", "content-type": "application/json"}, encode_chunked=True)
    response = conn.getresponse()
    assert response.status == 413 and b"over the limit" in response.read()
    conn.close()


def test_missing_or_wrong_api_key_is_401(served):
    url = outputs(served, "guarded-api")["url"]
    status, body, headers = post(url + "/predict", GOOD)
    assert status == 401 and body["error"] == "missing API key" and headers["www-authenticate"] == "ApiKey"
    status, body, _ = post(url + "/predict", GOOD, headers={"x-api-key": "wrong"})
    assert status == 401 and body["error"] == "invalid API key"
    assert KEY not in json.dumps(served.store.get("deployment.guarded-api").outputs)  # never in state
    assert KEY not in (served.project.root / ".ml/serving/guarded-api/config.json").read_text()
    assert post(url + "/predict", GOOD, headers={"authorization": f"Bearer {KEY}"})[0] in (200, 429)


def test_over_the_rate_limit_is_429_per_key(served):
    url = outputs(served, "guarded-api")["url"]
    statuses = [post(url + "/predict", GOOD, headers={"x-api-key": KEY})[0] for _ in range(8)]
    assert statuses.count(429) >= 3 and 200 in statuses or statuses.count(429) == 8, statuses
    status, body, headers = post(url + "/predict", GOOD, headers={"x-api-key": KEY})
    assert status == 429 and body["error"] == "rate limit exceeded" and int(headers["retry-after"]) >= 1
    assert post(url + "/predict", GOOD, headers={"x-api-key": "other-key"})[0] == 200  # its own bucket


def test_cli_status_and_history(served, monkeypatch):
    monkeypatch.chdir(served.project.root)
    result = run_cli(["status"], providers=providers(), cwd=served.project.root)
    assert result.exit_code == 0, result.output
    assert "deployment.open-api" in result.output and "healthy" in result.output
    result = run_cli(["status", "deployment/open-api", "--json"], providers=providers(), cwd=served.project.root)
    info = json.loads(result.output)["deployment.open-api"]
    assert info["ready"] and info["stable"] == "v1" and info["workers"] == 1 and info["state"] == "applied"
    # what it costs: the process tree's CPU and memory since it started, over what it answered since
    cost = info["cost"]
    assert cost["answered"] > 0 and cost["cpu_seconds"] > 0 and cost["memory_mb"] > 10
    assert cost["per_1000"] > 0 and cost["priced_by"].startswith("default prices")
    assert cost["cpu_seconds_per_1000"] == pytest.approx(cost["cpu_seconds"] / cost["answered"] * 1000, rel=0.05)
    (served.project.root / "ml.yaml").write_text("pricing: {cpu_hour: 4.8, memory_gb_hour: 0, currency: EUR}\n")
    try:
        priced = json.loads(run_cli(["status", "deployment/open-api", "--json"], providers=providers(),
                                    cwd=served.project.root).output)["deployment.open-api"]["cost"]
        assert priced["currency"] == "EUR" and priced["priced_by"] == "ml.yaml pricing"
        expected = priced["cpu_seconds"] / 3600 * 4.8 / priced["answered"] * 1000
        assert priced["per_1000"] == pytest.approx(expected, rel=1e-3)
    finally:
        (served.project.root / "ml.yaml").unlink()
    logged = read_predictions(served.project.root, "open-api", last=5)
    assert all(r["cpu_ms"] > 0 for r in logged if r["status"] == 200)  # each prediction's CPU, for rollouts
    result = run_cli(["history", "deployment/open-api"], providers=providers(), cwd=served.project.root)
    assert result.exit_code == 0 and "revisions" in result.output and "deployed" in result.output
    result = run_cli(["status", "deployment/nope"], providers=providers(), cwd=served.project.root)
    assert result.exit_code == 1 and "not in state" in result.output


def test_the_decision_log_names_the_caller_and_answers_by_request_id_and_range(served):
    """Each answered request is retrievable by its id (`ml decisions show`) and by range and caller
    (`ml decisions list`); the caller is the API key's digest, never the key; bad queries are clear errors."""
    import hashlib

    root = served.project.root
    url = outputs(served, "guarded-api")["url"]
    status, body, _ = post(url + "/predict", dict(GOOD, request_id="audit-1"), headers={"x-api-key": "other-key"})
    assert status == 200
    caller = "key:" + hashlib.sha256(b"other-key").hexdigest()[:12]
    shown = run_cli(["decisions", "show", "audit-1", "--json"], providers=providers(), cwd=root)
    assert shown.exit_code == 0, shown.output
    record = json.loads(shown.stdout)
    assert record["caller"] == caller and record["deployment"] == "guarded-api" and record["model_version"] == "v1"
    assert record["prediction"] == body["prediction"] and record["features"] == GOOD["features"]
    assert "other-key" not in json.dumps(record)
    listed = run_cli(["decisions", "list", "--since", "10m", "--caller", caller, "--json"], providers=providers(), cwd=root)
    assert listed.exit_code == 0 and "audit-1" in [json.loads(line)["request_id"] for line in listed.stdout.splitlines()]
    none = run_cli(["decisions", "list", "--until", "1d", "--deployment", "guarded-api"], providers=providers(), cwd=root)
    assert none.exit_code == 0 and "0 decision(s)" in none.output
    for args, message in ((["show", "never-sent"], "no decision with request id 'never-sent'"),
                          (["list", "--since", "yesterday"], "--since 'yesterday': expected an ISO 8601 time"),
                          (["list", "--since", "1h", "--until", "2h"], "is after --until"),
                          (["list", "--deployment", "gaurded-api"], "did you mean 'guarded-api'"),
                          (["list", "--version", "3"], "expected a version such as v3")):
        result = run_cli(["decisions", *args], providers=providers(), cwd=root)
        assert result.exit_code == 1 and message in result.output, (args, result.output)


def test_the_decision_log_keeps_every_answered_request_through_a_kill_9_under_load(served):
    """kill -9 of the whole service while four clients send requests: every request answered 200 is in
    the log, no line is torn, and after `ml apply` restores the service the log is still whole."""
    import os
    import signal
    import threading

    from ml_framework.plugins.bentoml.process import orphan_workers

    root = served.project.root
    before = outputs(served)
    url = before["url"]
    answered: list[str] = []
    stop = threading.Event()

    def client(n: int) -> None:
        i = 0
        while not stop.is_set():
            rid = f"load-{n}-{i}"
            i += 1
            try:
                status, _, _ = post(url + "/predict", dict(GOOD, request_id=rid))
            except Exception:  # noqa: BLE001 - the server is gone
                return
            if status == 200:
                answered.append(rid)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 30
    while len(answered) < 300 and time.monotonic() < deadline:
        time.sleep(0.02)
    workers = orphan_workers(root / ".ml" / "serving" / "open-api", before["pid"]) | {before["pid"]}
    os.killpg(before["pid"], signal.SIGKILL)
    for worker in workers:
        try:
            os.kill(worker, signal.SIGKILL)
        except ProcessLookupError:
            pass
    stop.set()
    for thread in threads:
        thread.join(timeout=30)
    assert len(answered) >= 300
    for path in (root / ".ml" / "predictions" / "open-api").glob("*.jsonl"):
        for line in path.read_text().splitlines():
            json.loads(line)  # not torn
    logged = {r["request_id"] for r in read_predictions(root, "open-api") if r.get("status") == 200}
    assert set(answered) <= logged, f"{len(set(answered) - logged)} answered requests are not in the log"
    assert served.apply().ok  # restores the service
    after = outputs(served)
    assert after["pid"] != before["pid"] and post(after["url"] + "/predict", GOOD)[0] == 200
    assert set(answered) <= {r["request_id"] for r in read_predictions(root, "open-api")}
    shown = run_cli(["decisions", "show", answered[-1], "--deployment", "open-api"], providers=providers(), cwd=root)
    assert shown.exit_code == 0 and answered[-1] in shown.output


def test_destroy_stops_the_service_and_keeps_the_prediction_log(tmp_path, bentoml_home):
    root = write_project(tmp_path / "proj", rows=800, gates=())
    port = free_port()
    (root / "specs" / "deploy.yaml").write_text(deployment_spec(port=port))
    harness = Harness(root, providers())
    try:
        assert harness.apply().ok
        out = outputs(harness, "fraud-api")
        assert post(out["url"] + "/predict", GOOD)[0] == 200
        assert harness.destroy().ok
        assert not is_running(out["pid"])
        from ml_framework.plugins.bentoml.process import port_free

        assert port_free("127.0.0.1", port) and not (root / ".ml/serving/fraud-api").exists()
        assert (root / ".ml/predictions/fraud-api").is_dir()
    finally:
        harness.close()
        stop_all_servers([root])


def test_a_renamed_deployment_keeps_serving_on_its_socket_without_a_rollout(tmp_path, bentoml_home):
    """`kind: Moved` on a running deployment: the service restarts under its new name on the old process's
    listening socket while requests keep coming (none fails), serving the same version; its revisions and
    prediction log move with it; nothing is rolled out and the next plan is empty."""
    from ml_framework.plugins.bentoml.testing import LoadGenerator

    root = write_project(tmp_path / "proj", rows=800, gates=())
    port = free_port()
    deploy = root / "specs" / "deploy.yaml"
    deploy.write_text(deployment_spec("fraud-api", port=port))
    harness = Harness(root, providers())
    try:
        assert harness.apply().ok
        before = outputs(harness, "fraud-api")
        for payload in raw_payloads(5):
            assert post(before["url"] + "/predict", payload)[0] == 200
        deploy.write_text(deployment_spec("fraud-svc", port=port))
        (root / "specs" / "moved.yaml").write_text("kind: Moved\nfrom: deployment.fraud-api\nto: deployment.fraud-svc\n")
        plan = harness.plan()
        (change,) = plan.pending()
        assert change.address == "deployment.fraud-svc" and change.moved_from == "deployment.fraud-api"
        with LoadGenerator(before["url"], raw_payloads(50), threads=2) as load:
            report = harness.apply(plan)
        assert report.ok, report.outcomes
        assert set(load.statuses) == {200} and load.statuses[200] > 10, load.statuses  # nothing refused or failed
        after = outputs(harness, "fraud-svc")
        assert harness.store.get("deployment.fraud-api") is None
        assert after["port"] == port and after["pid"] != before["pid"] and not is_running(before["pid"])
        assert after["stable"] == before["stable"] and after["revisions"] == before["revisions"]  # no rollout
        assert not (root / ".ml/serving/fraud-api").exists() and (root / ".ml/serving/fraud-svc").is_dir()
        logged = read_predictions(root, "fraud-svc")
        assert len(logged) >= 5 and not (root / ".ml/predictions/fraud-api").exists()
        assert not harness.plan().has_changes
    finally:
        harness.destroy()
        harness.close()
        stop_all_servers([root])
