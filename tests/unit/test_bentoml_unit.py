"""The bentoml backend's parts without a server: import hygiene, settings and spec validation, the
generated service, control.json and worker acknowledgements, the runtime's request handling (validation,
API keys, rate limit, routing, candidate fallback, shadow logging), the fast LightGBM predictor against
the training pipeline's pandas path, the analysis log cursor, plan reasons and rollback targets."""

from __future__ import annotations

import ast
import asyncio
import json
import os
import socket
import subprocess
import sys
import textwrap
import time

import pytest
from pydantic import ValidationError

from ml_framework.plugins.serving.prediction_log import PredictionLogWriter, log_dir
from ml_framework.plugins.serving.kinds import Deployment
from ml_framework.plugins.bentoml.codegen import bento_service_name, class_name, render_service, write_service_files
from ml_framework.plugins.bentoml.config import BentoMLSettings
from ml_framework.plugins.bentoml.control import LoadError, read_control, traffic, wait_for_generation, write_control
from ml_framework.plugins.bentoml.predictor import CATEGORY, NUMBER, FeatureKind

HEAVY = ("bentoml", "pandas", "lightgbm", "feast", "torch", "numpy")


def test_the_plugin_and_the_rollout_engine_import_nothing_heavy(tmp_path):
    code = textwrap.dedent("""\
        import json, sys
        import ml_framework.plugins.bentoml, ml_framework.plugins.bentoml.provider, ml_framework.plugins.bentoml.config, ml_framework.plugins.bentoml.codegen
        import ml_framework.plugins.bentoml.control, ml_framework.plugins.bentoml.process, ml_framework.plugins.bentoml.analysis, ml_framework.plugins.bentoml.deploy
        import ml_framework.plugins.bentoml.revisions, ml_framework.plugins.bentoml.guards, ml_framework.plugins.bentoml.testing
        import ml_framework.plugins.serving.rollout, ml_framework.plugins.serving.cli
        print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in %r)))
    """) % (HEAVY,)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == []


def test_the_provider_is_registered_as_an_entry_point():
    from ml_framework.plugin_registry import PluginRegistry

    registry = PluginRegistry()
    provider = registry.get("bentoml")
    assert provider.kinds == ("Deployment",) and provider.config_model("Deployment") is BentoMLSettings


# --- spec and settings ---------------------------------------------------------------------------------------


def deployment(**extra):
    return Deployment.model_validate({"kind": "Deployment", "name": "fraud-api", "model": "fraud",
                                      "serving": {"backend": "bentoml"}, **extra})


def test_deployment_spec_defaults_and_refinements():
    spec = deployment()
    assert spec.rollout.strategy == "recreate" and spec.input.raw_features is True and spec.model_name == "fraud"
    spec = deployment(input={"entity_keys": ["customer_id"]})
    assert spec.input.raw_features is False
    assert deployment(model="fraud@candidate").references() == [("model", "model.fraud")]
    assert deployment(model="fraud:v3").model_name == "fraud"


@pytest.mark.parametrize("extra, message", [
    ({"auth": {"api_key": "s3cr3t"}}, "do not write API keys into specs"),
    ({"auth": {"keys": ["a"]}}, "do not write API keys into specs"),
    ({"auth": {}}, "api_keys_env"),
    ({"auth": {"api_keys_env": "not a name"}}, "pattern"),
    ({"input": {"entity_keys": [], "raw_features": False}}, "a way in"),
    ({"input": {"entity_keys": ["a", "a"]}}, "twice"),
    ({"rate_limit": {"requests_per_second": 0}}, "greater than 0"),
    ({"rollout": {"strategy": "canary", "steps": [50, 10]}}, "must increase"),
    ({"model": "fraud@@x"}, "model name"),
])
def test_deployment_spec_rejects(extra, message):
    with pytest.raises(ValidationError, match=message):
        deployment(**extra)


def test_serving_settings():
    settings = BentoMLSettings.model_validate({"port": 3100, "batching": {"max_batch_size": 32}})
    assert settings.host == "127.0.0.1" and settings.batching.enabled and settings.batching.max_latency_ms == 5.0
    for bad, message in (({"host": "0.0.0.0"}, "not a loopback"), ({"port": 70000}, "less than or equal"),
                         ({"host": "example.com"}, "not an IP address"), ({"workers": 0}, "greater than"),
                         ({"prot": 3000}, "Extra inputs")):
        with pytest.raises(ValidationError, match=message):
            BentoMLSettings.model_validate(bad)
    assert BentoMLSettings.model_validate({"host": "0.0.0.0", "allow_external": True}).host == "0.0.0.0"


# --- generated files ----------------------------------------------------------------------------------------------


def test_generated_service_is_valid_python_with_the_bentoml_declarations(tmp_path):
    text = render_service("fraud-api", {"workers": 2, "timeout_s": 7.5}, "fraud:abc123")
    tree = ast.parse(text)
    assert class_name("fraud-api") == "FraudApi" and bento_service_name("fraud-api") == "fraud_api"
    assert "@bentoml.service(" in text and "workers=2" in text and '"timeout": 7.5' in text
    assert "BentoModel('fraud:abc123')" in text and "@bentoml.api(route='/predict')" in text
    assert "add_asgi_middleware(_gateway.Gateway" in text and "def __is_ready__" in text
    assert any(isinstance(n, ast.ClassDef) and n.name == "FraudApi" for n in tree.body)
    assert class_name("2fast") == "D2fast"
    write_service_files(tmp_path, deployment="fraud-api", settings={}, config={"route": "/predict"},
                        stable_tag="fraud:abc123")
    assert {p.name for p in tmp_path.iterdir()} == {"service.py", "config.json", "bentofile.yaml"}
    assert 'service: "service:FraudApi"' in (tmp_path / "bentofile.yaml").read_text()


def test_the_prediction_route_is_left_out_of_tracing_unless_asked():
    """BentoML's OpenTelemetry middleware skips the prediction route (URLs as it builds them), and only it;
    `trace_predictions: true` traces it again."""
    from opentelemetry.util.http import ExcludeList

    from ml_framework.plugins.bentoml.codegen import untraced_urls

    def excluded(text: str) -> list[str]:
        call = next(n for n in ast.walk(ast.parse(text)) if isinstance(n, ast.Call)
                    and any(k.arg == "tracing" for k in n.keywords))
        return ast.literal_eval(next(k.value for k in call.keywords if k.arg == "tracing"))["excluded_urls"]

    urls = excluded(render_service("fraud-api", {}, "fraud:abc123", route="/v1/score"))
    assert urls == untraced_urls("/v1/score", False)
    skip = ExcludeList(urls)
    assert skip.url_disabled("http://127.0.0.1:3000/v1/score")
    assert skip.url_disabled("https://api.example.com/v1/score")
    for other in ("http://127.0.0.1:3000/v1/score2", "http://127.0.0.1:3000/v1/scores/x",
                  "http://127.0.0.1:3000/readyz", "http://127.0.0.1:3000/ml/replay", "http://h/x/v1/score"):
        assert not skip.url_disabled(other), other
    assert excluded(render_service("fraud-api", {"trace_predictions": True}, "fraud:abc123")) == []


def test_control_generations_and_acknowledgements(tmp_path):
    stable, candidate = {"tag": "fraud:a", "version": "v1"}, {"tag": "fraud:b", "version": "v2"}
    assert read_control(tmp_path) is None
    assert write_control(tmp_path, traffic(stable)) == 1
    doc = traffic(stable, candidate, mode="weight", weight=5, rollout="r1", step="canary 5%")
    assert write_control(tmp_path, doc) == 2
    control = read_control(tmp_path)
    assert control["generation"] == 2 and control["candidate"]["version"] == "v2" and control["weight"] == 5.0
    assert traffic(stable, None, mode="weight", weight=5)["mode"] == "single"

    status = tmp_path / "status"
    status.mkdir()
    me, parent = os.getpid(), os.getppid()

    def ack(generation, errors=None, pid=me, ppid=parent):
        (status / f"{ppid}-{pid}.json").write_text(json.dumps(
            {"pid": pid, "ppid": ppid, "generation": generation, "errors": errors or {}}))

    with pytest.raises(Exception, match="0 of 1 workers"):
        wait_for_generation(tmp_path, 2, 1, timeout=0.2)
    ack(2)
    assert len(wait_for_generation(tmp_path, 2, 1, timeout=1, server_pid=parent)) == 1
    with pytest.raises(Exception, match="0 of 1"):  # another server's workers do not count
        wait_for_generation(tmp_path, 2, 1, timeout=0.2, server_pid=parent + 1)
    ack(3, {"fraud:b": "ValueError: bad file"})
    with pytest.raises(LoadError, match="could not load fraud:b: ValueError: bad file"):
        wait_for_generation(tmp_path, 3, 1, timeout=1)
    ack(3, pid=2 ** 22 + 11)  # a dead worker's file is ignored and removed
    worker_files = list(status.iterdir())
    from ml_framework.plugins.bentoml.control import worker_statuses

    assert [s["pid"] for s in worker_statuses(tmp_path)] == [me]
    assert len(list(status.iterdir())) == len(worker_files) - 1


# --- the runtime, without a server ---------------------------------------------------------------------------------


class FakeModel:
    def __init__(self, version, value, *, fail=False, features=("amount", "segment")):
        self.tag, self.model, self.version = f"fraud:{version}", "fraud", version
        self.features = list(features)
        self.kinds = {"amount": FeatureKind("amount", NUMBER),
                      "segment": FeatureKind("segment", CATEGORY, ("retail", "business"))}
        self.feature_refs = [f"stats:{f}" for f in features]
        self.value, self.fail, self.calls = value, fail, 0

    def encode(self, values):
        return dict(values)

    def predict_batch(self, items):
        self.calls += len(items)
        if self.fail:
            raise RuntimeError("model exploded")
        return [self.value for _ in items]

    def predict(self, values):
        return self.predict_batch([values])[0]


def make_runtime(tmp_path, **config):
    from ml_framework.plugins.bentoml.runtime import Route, Runtime

    base = {"deployment": "fraud-api", "service_dir": str(tmp_path / "svc"), "input": {"raw_features": True},
            "max_request_bytes": 1000}
    runtime = Runtime({**base, **config})
    runtime.route = Route(1, None, None, "single", 0.0, FakeModel("v1", 0.25), None)
    return runtime


def errors_of(runtime, payload):
    from ml_framework.plugins.bentoml.runtime import RequestError

    with pytest.raises(RequestError) as info:
        asyncio.run(runtime.handle(payload))
    return info.value.status, info.value.body


GOOD = {"features": {"amount": 12.5, "segment": "retail"}}


def test_runtime_answers_with_the_model_version(tmp_path):
    runtime = make_runtime(tmp_path)
    answer = asyncio.run(runtime.handle(dict(GOOD, request_id="r-1")))
    assert answer == {"prediction": 0.25, "model": "fraud", "model_version": "v1", "variant": "stable",
                      "request_id": "r-1"}
    assert asyncio.run(runtime.handle({"features": {"amount": None, "segment": None}}))["prediction"] == 0.25


@pytest.mark.parametrize("payload, loc, msg", [
    ({"features": {"amount": "12", "segment": "retail"}}, ["features", "amount"], "expected a number, got text"),
    ({"features": {"amount": True, "segment": "retail"}}, ["features", "amount"], "expected a number, got a boolean"),
    ({"features": {"amount": 1.0, "segment": 7}}, ["features", "segment"], "expected a category"),
    ({"features": {"amount": 1.0}}, ["features", "segment"], "field required"),
    ({"features": {"amount": 1.0, "segment": "retail", "colour": "red"}}, ["features", "colour"], "unknown feature"),
    ({"features": [1, 2]}, ["features"], "expected an object"),
    ({}, ["features"], "field required"),
    ({"features": {"amount": 1.0, "segment": "retail"}, "extra": 1}, ["extra"], "unknown field"),
    ({"features": {"amount": 1.0, "segment": "retail"}, "entity_keys": {"id": 1}}, ["entity_keys"], "no entity keys"),
    ({"features": {"amount": 1.0, "segment": "retail"}, "request_id": {"a": 1}}, ["request_id"], "expected text"),
])
def test_invalid_requests_get_422_naming_the_field(tmp_path, payload, loc, msg):
    status, body = errors_of(make_runtime(tmp_path), payload)
    assert status == 422 and body["error"] == "invalid request"
    assert any(d["loc"] == loc and msg in d["msg"] for d in body["detail"]), body


def test_entity_key_validation(tmp_path):
    runtime = make_runtime(tmp_path, input={"entity_keys": {"customer_id": "int64", "merchant": "string"},
                                            "raw_features": False})
    status, body = errors_of(runtime, {"entity_keys": {"customer_id": "7", "merchant": 3, "x": 1}})
    locs = {tuple(d["loc"]): d["msg"] for d in body["detail"]}
    assert status == 422 and locs[("entity_keys", "customer_id")] == "expected an integer"
    assert locs[("entity_keys", "merchant")] == "expected text" and "unknown entity key" in locs[("entity_keys", "x")]
    status, body = errors_of(runtime, {"entity_keys": {"customer_id": 7}})
    assert body["detail"] == [{"loc": ["entity_keys", "merchant"], "msg": "field required"}]
    status, body = errors_of(runtime, GOOD)
    assert any("does not accept feature values" in d["msg"] for d in body["detail"])
    # no feature store configured: a clear 503, never a 500
    status, body = errors_of(runtime, {"entity_keys": {"customer_id": 7, "merchant": "m"}})
    assert status == 503 and "no feature store" in body["error"]


def test_malformed_json_and_non_objects(tmp_path):
    from ml_framework.plugins.bentoml.runtime import RequestError

    runtime = make_runtime(tmp_path)
    with pytest.raises(RequestError) as info:
        runtime.parse(b'{"features": ')
    assert info.value.status == 400 and info.value.body["error"] == "malformed JSON"
    with pytest.raises(RequestError) as info:
        runtime.parse(b"\xff\xfe")
    assert info.value.status == 400
    with pytest.raises(RequestError) as info:
        runtime.parse(b"[1]")
    assert info.value.status == 422


def test_guard_api_keys_from_env_and_file_with_rotation(tmp_path, monkeypatch):
    from ml_framework.plugins.bentoml.runtime import RequestError

    monkeypatch.setenv("TEST_ML_KEYS", "k-env-1, k-env-2")
    keys_file = tmp_path / "keys.txt"
    keys_file.write_text("# ops keys\nk-file-1\n")
    runtime = make_runtime(tmp_path, auth={"env": "TEST_ML_KEYS", "file": str(keys_file), "header": "x-api-key"})
    for headers in ({b"x-api-key": b"k-env-2"}, {b"x-api-key": b"k-file-1"}, {b"authorization": b"Bearer k-env-1"}):
        runtime.guard(headers, None)
    for headers, message in (({}, "missing API key"), ({b"x-api-key": b"nope"}, "invalid API key"),
                             ({b"authorization": b"Basic k-env-1"}, "invalid API key")):
        with pytest.raises(RequestError) as info:
            runtime.guard(headers, None)
        assert info.value.status == 401 and info.value.body["error"] == message
        assert (b"www-authenticate", b"ApiKey") in info.value.headers
    time.sleep(0.01)
    keys_file.write_text("k-file-2\n")
    os.utime(keys_file, ns=(time.time_ns(), time.time_ns() + 10**9))
    runtime.keys.reload_file()
    runtime.guard({b"x-api-key": b"k-file-2"}, None)
    with pytest.raises(RequestError):
        runtime.guard({b"x-api-key": b"k-file-1"}, None)


def test_guard_rate_limit_and_payload_size(tmp_path):
    from ml_framework.plugins.bentoml.runtime import RequestError

    runtime = make_runtime(tmp_path, rate_limit={"requests_per_second": 2, "burst": 3, "per": "client"})
    for _ in range(3):
        runtime.guard({}, ("10.0.0.1", 5000))
    with pytest.raises(RequestError) as info:
        runtime.guard({}, ("10.0.0.1", 5000))
    assert info.value.status == 429 and (b"retry-after", b"1") in info.value.headers
    runtime.guard({}, ("10.0.0.2", 5000))  # per client: another address has its own bucket
    time.sleep(0.55)
    runtime.guard({}, ("10.0.0.1", 5000))  # tokens come back at the rate
    with pytest.raises(RequestError) as info:
        runtime.guard({b"content-length": b"1001"}, None)
    assert info.value.status == 413 and "1001 bytes" in info.value.body["error"]
    with pytest.raises(RequestError) as info:
        runtime.guard({b"content-length": b"abc"}, None)
    assert info.value.status == 400


def test_rate_is_shared_between_workers():
    from ml_framework.plugins.bentoml.guards import RateLimiter

    limiter = RateLimiter({"requests_per_second": 100, "burst": 40}, workers=4)
    assert limiter.rate == 25 and limiter.burst == 10


def test_routing_weights_sticky_split_and_mirror():
    from ml_framework.plugins.bentoml.runtime import Route

    stable, candidate = FakeModel("v1", 0.1), FakeModel("v2", 0.9)
    route = Route(2, "r", "canary 25%", "weight", 25.0, stable, candidate)
    picks = [route.pick(None, str(i))[1] for i in range(4000)]
    assert 0.21 < picks.count("candidate") / 4000 < 0.29
    split = Route(2, "r", "a/b", "split", 50.0, stable, candidate)
    for customer in range(50):
        keys = {"customer_id": customer}
        assert len({split.pick(keys, str(i))[1] for i in range(10)}) == 1  # sticky per entity key
    share = sum(split.pick({"customer_id": c}, "x")[1] == "candidate" for c in range(2000)) / 2000
    assert 0.45 < share < 0.55
    mirror = Route(2, "r", "shadow", "mirror", 0.0, stable, candidate)
    assert mirror.pick(None, "x") == (stable, "stable", candidate)
    assert Route(2, None, None, "weight", 100.0, stable, None).pick(None, "x")[1] == "stable"


def test_a_failing_candidate_is_answered_by_stable_and_logged_as_an_error(tmp_path):
    from ml_framework.plugins.bentoml.runtime import Route

    runtime = make_runtime(tmp_path, log_dir=str(tmp_path / "log"))
    runtime._writer = PredictionLogWriter(tmp_path / "log")
    broken = FakeModel("v2", 0.9, fail=True)
    runtime.route = Route(3, "r1", "canary 100%", "weight", 100.0, FakeModel("v1", 0.25), broken)
    answer = asyncio.run(runtime.handle(GOOD))
    assert answer["variant"] == "stable" and answer["model_version"] == "v1" and broken.calls == 1
    runtime._writer.flush()
    records = [json.loads(line) for p in (tmp_path / "log").glob("*.jsonl") for line in p.read_text().splitlines()]
    assert [(r["variant"], r["status"], r["model_version"]) for r in records] == [("candidate", 500, "v2"),
                                                                                  ("stable", 200, "v1")]
    assert records[0]["error"] == "RuntimeError: model exploded" and records[0]["rollout"] == "r1"


def test_a_failing_stable_model_is_a_500_not_a_crash(tmp_path):
    from ml_framework.plugins.bentoml.runtime import Route

    runtime = make_runtime(tmp_path)
    runtime.route = Route(1, None, None, "single", 0.0, FakeModel("v1", 0.2, fail=True), None)
    status, body = errors_of(runtime, GOOD)
    assert status == 500 and body["error"] == "prediction failed" and body["detail"]["request_id"]


def test_shadow_answers_with_stable_and_logs_the_candidate_pair(tmp_path):
    from ml_framework.plugins.bentoml.runtime import Route

    runtime = make_runtime(tmp_path)
    runtime._writer = PredictionLogWriter(tmp_path / "log")
    shadow = FakeModel("v2", 0.75)
    runtime.route = Route(4, "r2", "shadow", "mirror", 0.0, FakeModel("v1", 0.25), shadow)

    async def go():
        answer = await runtime.handle(GOOD)
        await asyncio.sleep(0)  # the mirrored prediction runs after the answer
        return answer

    answer = asyncio.run(go())
    assert answer["variant"] == "stable" and answer["prediction"] == 0.25 and shadow.calls == 1
    runtime._writer.flush()
    records = [json.loads(line) for p in (tmp_path / "log").glob("*.jsonl") for line in p.read_text().splitlines()]
    shadow_record = next(r for r in records if r["variant"] == "shadow")
    assert shadow_record["prediction"] == 0.75 and shadow_record["stable_prediction"] == 0.25


def test_worker_applies_control_and_reports_load_errors(tmp_path, monkeypatch):
    from ml_framework.plugins.bentoml import runtime as rt

    models = {"fraud:a": FakeModel("v1", 0.1), "fraud:b": FakeModel("v2", 0.2)}

    def fake_load(self, ref):
        if ref["tag"] not in models:
            raise FileNotFoundError(f"no model {ref['tag']}")
        return models[ref["tag"]]

    monkeypatch.setattr(rt.Runtime, "_load", fake_load)
    runtime = make_runtime(tmp_path)
    runtime.route = None
    folder = tmp_path / "svc"
    (folder / "status").mkdir(parents=True)
    stable, candidate = {"tag": "fraud:a", "version": "v1"}, {"tag": "fraud:b", "version": "v2"}
    write_control(folder, traffic(stable))
    runtime._apply_control(runtime._read_control(), initial=True)
    assert runtime.route.generation == 1 and runtime.route.candidate is None
    write_control(folder, traffic(stable, candidate, mode="weight", weight=5, warmup=3))
    runtime._apply_control(runtime._read_control())
    assert runtime.route.candidate is models["fraud:b"] and models["fraud:b"].calls == 3  # warmed up
    assert wait_for_generation(folder, 2, 1, timeout=1)
    write_control(folder, traffic(stable, {"tag": "fraud:zzz", "version": "v3"}, mode="weight", weight=5))
    runtime._apply_control(runtime._read_control())
    assert runtime.route.candidate is None and runtime.route.stable is models["fraud:a"]
    with pytest.raises(LoadError, match="no model fraud:zzz"):
        wait_for_generation(folder, 3, 1, timeout=1)
    models["fraud:b"].value = float("nan")  # a warm-up answer that is not a number keeps it out
    write_control(folder, traffic(stable, candidate, mode="weight", weight=5, warmup=1))
    runtime._apply_control(runtime._read_control())
    assert runtime.route.candidate is None
    with pytest.raises(LoadError, match="not a finite number"):
        wait_for_generation(folder, 4, 1, timeout=1)


# --- the fast predictor ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def saved_lightgbm(tmp_path_factory):
    """A tiny LightGBM version in the layout the trainer writes (booster + ml_model.json)."""
    import lightgbm as lgb
    import numpy as np
    import pandas as pd

    from ml_framework.plugins.models.prepare import encode_features

    rng = np.random.default_rng(0)
    n = 600
    frame = pd.DataFrame({"amount": rng.gamma(2, 20, n), "count": rng.integers(0, 20, n).astype("int64"),
                          "segment": rng.choice(["retail", "business", "premium"], n)})
    y = ((frame["amount"] > 40) ^ (frame["segment"] == "business")).astype(int).to_numpy()
    categorical = {"segment": ["business", "premium", "retail"]}
    X = encode_features(frame, ["amount", "count", "segment"], categorical)
    booster = lgb.train({"objective": "binary", "verbosity": -1, "num_leaves": 7, "min_data_in_leaf": 5},
                        lgb.Dataset(X, label=y), num_boost_round=15)
    folder = tmp_path_factory.mktemp("model") / "fraud" / "abc"
    folder.mkdir(parents=True)
    booster.save_model(str(folder / "saved_model.ubj"))
    (folder / "ml_model.json").write_text(json.dumps({
        "flavor": "lightgbm", "task": "binary", "features": ["amount", "count", "segment"],
        "categorical": categorical, "ml_version": "v7", "address": "model.fraud",
        "feature_refs": ["stats:amount", "stats:count", "stats:segment"]}))
    return folder


def test_fast_lightgbm_predictions_equal_the_pandas_path(saved_lightgbm):
    import random

    from ml_framework.plugins.bentoml.predictor import load_serving_model
    from ml_framework.plugins.models.predictor import load_predictor

    fast, reference = load_serving_model(saved_lightgbm), load_predictor(saved_lightgbm)
    assert (fast.version, fast.model, fast.tag) == ("v7", "fraud", "fraud:abc")
    assert fast.kinds["segment"].kind == CATEGORY and fast.kinds["count"].kind == NUMBER
    rng = random.Random(1)
    rows = [{"amount": rng.choice([None, rng.uniform(0, 200)]), "count": rng.randint(0, 25),
             "segment": rng.choice(["retail", "business", "premium", "unseen", None])} for _ in range(300)]
    ours = fast.predict_batch([fast.encode(r) for r in rows])
    theirs = reference.predict(rows)
    assert max(abs(a - b) for a, b in zip(ours, theirs)) < 1e-12
    assert isinstance(fast.predict(rows[0]), float)


def test_feature_kinds_accept_and_refuse():
    number, category = FeatureKind("a", NUMBER), FeatureKind("s", CATEGORY, ("x", "y"))
    assert number.accepts(1) is None and number.accepts(1.5) is None and number.accepts(None) is None
    assert "finite" in number.accepts(float("inf")) and "text" in number.accepts("1")
    assert category.accepts("unseen") is None and "category" in category.accepts(3)
    assert FeatureKind("c", CATEGORY, (1, 2)).accepts(3) is None  # integer categories take numbers


# --- analysis log -----------------------------------------------------------------------------------------------------


def test_log_cursor_collects_by_generation_incrementally(tmp_path):
    from datetime import datetime, timezone

    from ml_framework.plugins.bentoml.analysis import LogCursor

    writer = PredictionLogWriter(log_dir(tmp_path, "api"))
    now = time.time()

    def record(generation, variant, status=200, prediction=0.5, at=None, **extra):
        ts = datetime.fromtimestamp(at or now, timezone.utc).isoformat()
        writer.write({"ts": ts, "generation": generation, "variant": variant, "status": status,
                      "latency_ms": 1.5, "prediction": prediction, **extra})

    for _ in range(5):
        record(1, "stable")
    record(2, "stable")
    record(2, "candidate", prediction=0.9)
    record(2, "candidate", status=500, prediction=None)
    record(2, None, status=422)
    record(2, "stable", at=now - 100)  # before the window
    writer.flush()
    cursor = LogCursor(tmp_path, "api")
    stable, candidate, pairs = cursor.collect(2, now - 1, mirrored=False)
    assert (stable.requests, candidate.requests, candidate.errors, pairs) == (1, 2, 1, None)
    assert candidate.predictions == [0.9]
    record(2, "candidate", prediction=0.8)
    record(3, "shadow", prediction=0.7, stable_prediction=0.6)
    writer.flush()
    assert cursor.collect(2, now - 1, mirrored=False)[1].requests == 3  # only the new line was read
    stable, candidate, pairs = cursor.collect(3, now - 1, mirrored=True)
    assert candidate.requests == 1 and pairs == [(0.6, 0.7)]
    path = next(log_dir(tmp_path, "api").glob("*.jsonl"))
    with open(path, "a") as fh:
        fh.write('{"generation": 3, "variant": "shad')  # a record being written: not read yet
    assert cursor.collect(3, now - 1, mirrored=True)[1].requests == 1
    writer.close()


# --- provider pieces --------------------------------------------------------------------------------------------------


def test_rollback_target_selection():
    from ml_framework.errors import MLError
    from ml_framework.plugins.bentoml.revisions import rollback_target as _rollback_target

    revisions = [{"revision": 1, "version": "v1", "tag": "f:1", "outcome": "deployed"},
                 {"revision": 2, "version": "v2", "tag": "f:2", "outcome": "promoted"},
                 {"revision": 3, "version": "v3", "tag": "f:3", "outcome": "rolled_back"}]
    assert _rollback_target(revisions, {"tag": "f:2"}, None)["revision"] == 1
    assert _rollback_target(revisions, {"tag": "f:1"}, 3)["version"] == "v3"
    with pytest.raises(MLError, match="no revision 9"):
        _rollback_target(revisions, {"tag": "f:2"}, 9)
    with pytest.raises(MLError, match="no earlier revision"):
        _rollback_target(revisions[:1], {"tag": "f:1"}, None)


def test_plan_explains_restarts_and_rollouts():
    from ml_framework.contract import FieldChange, PlanRequest, RecordedResource, Resource
    from ml_framework.plugins.bentoml import BentoMLProvider

    spec = deployment(rollout={"strategy": "canary", "steps": [5, 25, 100]}).model_dump(mode="json")
    resource = Resource("deployment.fraud-api", "Deployment", "fraud-api", "bentoml", spec)
    prior = RecordedResource("deployment.fraud-api", "Deployment", "bentoml", spec, "x", status="in_progress",
                             outputs={"stable": {"version": "v1"}, "last_rollout": {
                                 "version": "v2", "outcome": "rolled_back", "reason": "shift too large"}})
    result = BentoMLProvider().plan(PlanRequest(resource, prior, (FieldChange("serving.port", 3000, 3001),)))
    text = " | ".join(result.reasons)
    assert result.replace_paths == () and "restarts the service (serving.port)" in text
    assert "new port starts before the old one stops" in text and "was rolled back: shift too large" in text
    assert "canary" not in text  # a restart only: no model moves
    result = BentoMLProvider().plan(PlanRequest(resource, prior, (FieldChange("model", "fraud:v1", "fraud"),)))
    assert any("canary 5% → 25% → 100%" in r for r in result.reasons)
    assert not any("restarts" in r for r in result.reasons)
    result = BentoMLProvider().plan(PlanRequest(resource, prior, (FieldChange("serving.build", False, True),)))
    assert not any("restarts" in r for r in result.reasons)


def test_port_in_use_is_refused_before_anything_starts(tmp_path):
    from ml_framework.plugins.bentoml.process import PortInUse, port_free, start_server

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        assert not port_free("127.0.0.1", port)
        with pytest.raises(PortInUse, match=f"port {port} on 127.0.0.1 is already in use"):
            start_server(tmp_path, "Svc", host="127.0.0.1", port=port, workers=1, generation=1, timeout=5)
    assert not (tmp_path / "server.pid").exists() and not (tmp_path / "server.log").exists()
    assert port_free("127.0.0.1", port)


class FakeFeatureAccess:
    """The feature-access seam (ml_framework.plugins.features.access) as a serving runtime sees it."""

    def __init__(self, found):
        self.found = found

    def online_features(self, refs, rows):
        if isinstance(self.found["value"], Exception):
            raise self.found["value"]
        assert refs == ["stats:amount", "stats:segment"] and rows == [{"customer_id": 7}]
        return self.found["value"]


def test_unknown_entity_is_404_or_predicted_with_missing_features(tmp_path):
    from ml_framework.plugins.features.access import OnlineFeatures

    found = {"value": OnlineFeatures(features={"customer_id": [7], "amount": [None], "segment": [None]},
                                     missing=[{"customer_id": 7}], not_found={"amount": [0], "segment": [0]})}
    config = dict(input={"entity_keys": {"customer_id": "int64"}, "raw_features": False}, feature_access=True)
    runtime = make_runtime(tmp_path, **config)
    runtime.features = FakeFeatureAccess(found)
    runtime.feature_views = {"stats": ["customer_id"]}
    status, body = errors_of(runtime, {"entity_keys": {"customer_id": 7}})
    assert status == 404 and body["error"] == "unknown entity" and body["detail"]["entity_keys"] == {"customer_id": 7}
    lenient = make_runtime(tmp_path, input=dict(config["input"], on_unknown_entity="missing"), feature_access=True)
    lenient.features = FakeFeatureAccess(found)
    lenient.feature_views = {"stats": ["customer_id"]}
    answer = asyncio.run(lenient.handle({"entity_keys": {"customer_id": 7}}))
    assert answer["prediction"] == 0.25  # predicted with the features missing, as documented
    found["value"] = ConnectionError("redis is down")
    status, body = errors_of(runtime, {"entity_keys": {"customer_id": 7}})
    assert status == 503 and body["error"] == "feature store unavailable" and "redis is down" in body["detail"]


def test_a_deployment_whose_api_keys_are_not_set_is_refused_before_the_apply_starts(tmp_path, monkeypatch):
    from ml_framework.contract import ApplyRequest, Resource
    from ml_framework.errors import MLError
    from ml_framework.plugins.bentoml import BentoMLProvider

    spec = {"kind": "Deployment", "name": "api", "model": "m", "serving": {"backend": "bentoml"},
            "auth": {"api_keys_env": "ML_TEST_UNSET_KEYS", "header": "x-api-key"}}
    request = ApplyRequest("create", Resource("deployment.api", "Deployment", "api", "bentoml", spec))
    monkeypatch.delenv("ML_TEST_UNSET_KEYS", raising=False)
    with pytest.raises(MLError, match=r"auth: no API key in \$ML_TEST_UNSET_KEYS") as info:
        BentoMLProvider().preflight(request, tmp_path)
    assert "export ML_TEST_UNSET_KEYS=" in info.value.hint
    monkeypatch.setenv("ML_TEST_UNSET_KEYS", "k1,k2")
    BentoMLProvider().preflight(request, tmp_path)  # keys present: nothing to say


def test_request_features_are_held_to_the_contract_the_training_data_was_checked_against(tmp_path):
    rules = {"amount": {"ge": 0, "lt": 10000}, "segment": {"isin": ["retail", "business"]}}
    runtime = make_runtime(tmp_path, feature_rules=rules)
    status, body = errors_of(runtime, {"features": {"amount": -5.0, "segment": "retail"}})
    assert status == 422 and body["detail"] == [
        {"loc": ["features", "amount"], "msg": "must be >= 0 (the feature's contract: checks.ge)"}]
    status, body = errors_of(runtime, {"features": {"amount": 12.5, "segment": "wholesale"}})
    assert body["detail"][0]["loc"] == ["features", "segment"] and "checks.isin" in body["detail"][0]["msg"]
    assert asyncio.run(runtime.handle({"features": {"amount": 12.5, "segment": "retail"}}))["prediction"] == 0.25
    assert asyncio.run(runtime.handle({"features": {"amount": None, "segment": None}}))["prediction"] == 0.25


def test_value_rules_follow_the_declared_checks():
    from ml_framework.plugins.features.rules import value_rules, violation

    assert value_rules({"ge": 0, "nullable": True, "unique": True, "le": None}) == {"ge": 0}
    assert violation({"between": [1, 5]}, 6) == "must be between 1 and 5 (the feature's contract: checks.between)"
    assert violation({"between": [1, 5]}, 5) is None and violation({"gt": 0}, float("nan")) is None
    assert "checks.regex" in violation({"regex": r"[A-Z]{2}"}, "gb") and violation({"regex": r"[A-Z]{2}"}, "GB") is None
    assert violation({"isin": [1, 2]}, 3).startswith("must be one of 1, 2")


# -- the service's description (OpenAPI document and root page) -------------------------------------------
def _contract(**kw):
    from ml_framework.plugins.bentoml.openapi import ServiceContract

    base = dict(deployment="clinic-api", model="progression", versions=["v3"], task="regression",
                features={"bmi": {"kind": "number"}, "sex": {"kind": "category", "categories": ["f", "m"]}},
                rules={"bmi": {"between": [10, 60]}, "sex": {"isin": ["f", "m"]}})
    base.update(kw)
    return ServiceContract(**base)


def test_the_openapi_request_schema_carries_types_rules_and_what_is_required():
    from ml_framework.plugins.bentoml.openapi import openapi_document

    doc = openapi_document(_contract())
    request = doc["components"]["schemas"]["Request"]
    features = request["properties"]["features"]
    assert request["required"] == ["features"] and features["required"] == ["bmi", "sex"]
    assert features["properties"]["bmi"] == {"type": ["number", "null"], "minimum": 10, "maximum": 60}
    assert features["properties"]["sex"]["enum"] == ["f", "m", None]
    assert features["additionalProperties"] is False and request["additionalProperties"] is False
    assert set(doc["paths"]["/predict"]["post"]["responses"]) == {"200", "400", "413", "422", "500", "503"}
    assert "security" not in doc and doc["info"]["version"] == "v3"
    answer = doc["components"]["schemas"]["Answer"]
    assert answer["properties"]["prediction"]["type"] == "number" and "class" not in answer["properties"]


def test_entity_keys_guards_and_classes_show_in_the_document():
    from ml_framework.plugins.bentoml.openapi import INT64_MAX, openapi_document

    doc = openapi_document(_contract(entity_keys={"patient_id": "int64"}, raw_only=["bmi"], auth_header="x-api-key",
                                     rate_limited=True, task="multiclass", classes=["low", "mid", "high"]))
    with_keys, raw = doc["components"]["schemas"]["Request"]["anyOf"]
    assert with_keys["required"] == ["entity_keys", "features"] and with_keys["properties"]["features"]["required"] == ["bmi"]
    assert with_keys["properties"]["entity_keys"]["properties"]["patient_id"]["maximum"] == INT64_MAX
    assert raw["properties"]["features"]["required"] == ["bmi", "sex"]
    assert {"401", "404", "429"} <= set(doc["paths"]["/predict"]["post"]["responses"])
    assert doc["components"]["securitySchemes"]["apiKey"] == {"type": "apiKey", "in": "header", "name": "x-api-key"}
    answer = doc["components"]["schemas"]["Answer"]["properties"]
    assert answer["class"]["enum"] == ["low", "mid", "high"] and set(answer["probabilities"]["properties"]) == {"low", "mid", "high"}


def test_the_root_page_escapes_what_the_specs_say_and_names_no_outside_resource():
    from ml_framework.plugins.bentoml.openapi import index_page

    page = index_page(_contract(description="<script>alert(1)</script> progression in a year"))
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "serving <b>v3</b>" in page and "features.sex" in page and "one of f, m" in page
    assert "src=" not in page and "https://" not in page


# -- ml package ---------------------------------------------------------------------------------------------


def _deployment_record(**spec):
    from ml_framework.contract import RecordedResource

    base = {"name": "fraud-api", "model": "fraud", "serving": {"backend": "bentoml", "workers": 2}}
    return RecordedResource(address="deployment.fraud-api", kind="Deployment", backend="bentoml",
                            spec={**base, **spec}, fingerprint="f", outputs={"stable": {"tag": "fraud:abc", "version": "v3"}})


def test_manifests_reference_secrets_and_pass_kubernetes_schemas(tmp_path):
    from ml_framework.plugins.bentoml.package import manifests, validate_manifests, write_manifests

    record = _deployment_record(auth={"api_keys_env": "FRAUD_API_KEYS"})
    documents = manifests(record, "fraud_api:xyz", namespace="ml", replicas=2, max_replicas=1)
    deployment, service, autoscaler = documents
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "fraud_api:xyz" and container["resources"]["requests"]["cpu"] == "2"
    assert {"name": "FRAUD_API_KEYS", "valueFrom": {"secretKeyRef": {"name": "fraud-api-api-keys",
                                                                        "key": "FRAUD_API_KEYS"}}} in container["env"]
    assert autoscaler["spec"]["maxReplicas"] == 2  # never below the minimum
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    path = write_manifests(documents, tmp_path, "fraud-api", ["a note"])
    assert validate_manifests(path) is None
    broken = manifests(record, "fraud_api:xyz")
    broken[0]["spec"]["replicas"] = "two"
    bad = write_manifests(broken, tmp_path / "bad", "fraud-api", [])
    assert "Deployment/fraud-api" in validate_manifests(bad)


def test_a_packaged_config_has_paths_relative_to_the_bento_and_the_runtime_resolves_them(tmp_path):
    import json

    from ml_framework.plugins.bentoml.package import _portable_config, _portable_control
    from ml_framework.plugins.bentoml.runtime import load_config

    config = {"deployment": "fraud-api", "project_dir": "/home/me/proj", "service_dir": "/home/me/proj/.ml/serving/x",
              "log_dir": "/home/me/proj/.ml/predictions/x", "feature_access": True}
    portable = _portable_config(config, uses_features=True)
    (tmp_path / "config.json").write_text(json.dumps(portable))
    loaded = load_config(tmp_path / "service.py")
    assert loaded["project_dir"] == str(tmp_path / "project") and loaded["service_dir"] == str(tmp_path)
    assert loaded["log_dir"] == str(tmp_path / "predictions" / "fraud-api")
    control = _portable_control({"guards": {"auth": {"file": "/home/me/proj/keys", "env": None}}, "written_at": 1})
    assert control["guards"]["auth"]["file"] == "/etc/ml/api-keys/keys" and "written_at" not in control
