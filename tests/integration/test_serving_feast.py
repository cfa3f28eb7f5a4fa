"""Serving with online features from Feast: the example project's feature specs and generated data applied
with the feast backend, a model trained from them, and a deployment whose requests carry entity keys.

Predictions equal the model on the features Feast returns; an unknown entity is a clear 404 (or, with
``on_unknown_entity: missing``, a prediction with those features missing); keys the model's features
need but the spec does not declare fail the apply; an a/b split is sticky per entity key."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

import pytest

pytest.importorskip("ml_framework.plugins.feast.online")

from ml_framework.testing.harness import Harness  # noqa: E402
from ml_framework.plugins.bentoml import BentoMLProvider  # noqa: E402
from ml_framework.plugins.bentoml.testing import deployment_spec, free_port, post, stop_all_servers  # noqa: E402
from ml_framework.plugins.lightgbm import LightGBMProvider  # noqa: E402
from feast_example import fraud_model, write_example  # noqa: E402

pytestmark = pytest.mark.integration

AB = ("{strategy: ab, split: 50, interval: 1s, max_wait: 20s, "
      "analysis: {min_requests: 30, max_prediction_shift: 0.5}}")


@pytest.fixture(scope="module")
def example(tmp_path_factory, module_bentoml_home):
    with pytest.MonkeyPatch.context() as mp:
        tmp = tmp_path_factory.mktemp("feast-serving")
        mp.delenv("ML_STATE_URL", raising=False)
        root = write_example(tmp / "example", specs={
            "models.yaml": fraud_model(rounds=40),
            "deploy.yaml": deployment_spec(port=free_port(), rollout=AB,
                                           extra="input: {entity_keys: [customer_id, merchant_id], raw_features: true}\n")})
        from ml_framework.plugins.feast import FeastProvider

        harness = Harness(root, {"feast": FeastProvider(), "lightgbm": LightGBMProvider(), "bentoml": BentoMLProvider()})
        try:
            report = harness.apply()
            assert report.ok, [o for o in report.outcomes if o.outcome != "succeeded"]
            yield harness, root
        finally:
            harness.destroy()
            harness.close()
            stop_all_servers([root])


def known_keys(root, count=40):
    import pandas as pd

    customers = pd.read_parquet(root / "data" / "customer_profile.parquet")["customer_id"].unique()[:count]
    merchants = pd.read_parquet(root / "data" / "merchant_stats.parquet")["merchant_id"].unique()
    return [{"customer_id": int(c), "merchant_id": int(merchants[i % len(merchants)])} for i, c in enumerate(customers)]


def transaction(root, i=0):
    """Facts of a transaction being scored: its view is keyed by transaction_id, so they come raw."""
    import math

    import pandas as pd

    row = pd.read_parquet(root / "data" / "transaction_features.parquet").iloc[i]
    out = {}
    for name in ("amount", "hour_of_day", "merchant_category", "foreign_merchant", "amount_vs_customer_mean"):
        value = row[name]
        value = value.item() if hasattr(value, "item") else value
        out[name] = None if isinstance(value, float) and math.isnan(value) else value
    return out


def request(root, key, i=0):
    return {"entity_keys": key, "features": transaction(root, i)}


def url_of(harness):
    return harness.store.get("deployment.fraud-api").outputs["url"]


def test_entity_keys_fetch_online_features_and_predict_like_the_model(example):
    harness, root = example
    from ml_framework.plugins.feast.online import fetch_online_features
    from ml_framework.plugins.models.artifacts import artifact_dir
    from ml_framework.plugins.models.predictor import load_predictor

    keys = known_keys(root, 5)
    tag = harness.store.get("deployment.fraud-api").outputs["stable"]["tag"]
    predictor = load_predictor(artifact_dir(tag))
    import json

    refs = json.loads((artifact_dir(tag) / "ml_model.json").read_text())["feature_refs"]
    online = [r for r in refs if not r.startswith("transaction_features:")]
    import pandas as pd

    for i, key in enumerate(keys):
        status, body, _ = post(url_of(harness) + "/predict", request(root, key, i))
        assert status == 200, body
        features = {**fetch_online_features(root / "feature_repo", online, [key]).rows()[0], **transaction(root, i)}
        frame = pd.DataFrame([features])
        for column in frame.columns:  # None in a numeric column means missing, as the service treats it
            if column not in predictor.schema.get("categorical", {}):
                frame[column] = pd.to_numeric(frame[column], errors="coerce").astype(float)
        assert body["prediction"] == pytest.approx(float(predictor.predict(frame)[0]), abs=1e-9)
    # raw values override fetched ones
    status, body, _ = post(url_of(harness) + "/predict", {"entity_keys": keys[0],
                                                          "features": {**transaction(root), "age": 99}})
    assert status == 200
    # ... but never against the contract the training data was checked against (age: between 18 and 120)
    status, body, _ = post(url_of(harness) + "/predict", {"entity_keys": keys[0],
                                                          "features": {**transaction(root), "age": 7}})
    assert status == 422 and body["detail"] == [
        {"loc": ["features", "age"], "msg": "must be between 18 and 120 (the feature's contract: checks.between)"}]
    # a feature whose view is keyed by something the request cannot name must be sent: 422 naming it
    status, body, _ = post(url_of(harness) + "/predict", {"entity_keys": keys[0]})
    assert status == 422 and {"loc": ["features", "amount"], "msg": body["detail"][0]["msg"]} in body["detail"]
    assert "not keyed by the entity keys" in body["detail"][0]["msg"]
    config = json.loads((root / ".ml/serving/fraud-api/config.json").read_text())
    assert config["feature_lookup"] == "inline"  # auto: the SQLite online store is read on the event loop
    assert config["input"]["entity_keys"] == {"customer_id": "int64", "merchant_id": "int64"}


def test_unknown_entity_is_a_clear_404_never_a_500(example):
    harness, _ = example
    status, body, _ = post(url_of(harness) + "/predict", {"entity_keys": {"customer_id": 987654321,
                                                                          "merchant_id": 987654321},
                                                          "features": transaction(example[1])})
    assert status == 404 and body["error"] == "unknown entity"
    assert body["detail"]["entity_keys"] == {"customer_id": 987654321, "merchant_id": 987654321}
    status, body, _ = post(url_of(harness) + "/predict", {"entity_keys": {"customer_id": 1}})
    assert status == 422 and body["detail"][0]["loc"] == ["entity_keys", "merchant_id"]


def test_undeclared_join_keys_fail_the_apply(example, tmp_path):
    harness, root = example
    spec = (root / "specs" / "deploy.yaml").read_text()
    try:
        (root / "specs" / "deploy.yaml").write_text(spec.replace(
            "input: {entity_keys: [customer_id, merchant_id], raw_features: true}", "input: {entity_keys: [customer_id], raw_features: false}"))
        report = harness.apply()
        failed = next(o for o in report.outcomes if o.address == "deployment.fraud-api")
        assert failed.outcome == "failed" and "keyed by customer_id, merchant_id" in failed.error
        assert "hint: add merchant_id, transaction_id to input.entity_keys" in failed.error
        assert post(url_of(harness) + "/predict", request(root, known_keys(root, 1)[0]))[0] == 200  # still serving
    finally:
        (root / "specs" / "deploy.yaml").write_text(spec)
        assert harness.apply().ok


def test_ab_split_is_sticky_per_entity_key(example):
    harness, root = example
    url = url_of(harness)
    (root / "specs" / "models.yaml").write_text(fraud_model(rounds=25))
    assert harness.apply(targets=["model.fraud"]).ok
    keys = known_keys(root, 40)
    facts = transaction(root)
    seen: dict[int, list[str]] = {}
    failures = []
    stop = threading.Event()

    def client(offset):  # each thread owns its keys: one key's requests are never in flight together
        mine = keys[offset::3]
        i = 0
        while not stop.is_set():
            key = mine[i % len(mine)]
            i += 1
            status, body, _ = post(url + "/predict", {"entity_keys": key, "features": facts})
            if status != 200:
                failures.append((status, body))
                continue
            seen.setdefault(key["customer_id"], []).append(body["model_version"])

    threads = [threading.Thread(target=client, args=(n,)) for n in range(3)]
    for thread in threads:
        thread.start()
    try:
        report = harness.apply()
    finally:
        time.sleep(0.2)
        stop.set()
        for thread in threads:
            thread.join()
    assert report.ok, [o.error for o in report.outcomes if o.outcome != "succeeded"]
    assert not failures, failures[:3]
    # before the split every key got v1, after promotion v2; in between a key never flips back
    flips = {k: v for k, v in seen.items() if any(a == "v2" and b == "v1" for a, b in zip(v, v[1:]))}
    assert not flips, flips
    during = [k for k, v in seen.items() if "v2" in v and "v1" in v]
    assert during  # some keys moved to v2 during the split, some only at promotion
    outputs = harness.store.get("deployment.fraud-api").outputs
    assert outputs["model_version"] == "v2" and outputs["last_rollout"]["steps"][0]["step"] == "a/b 50%"


def test_feasts_own_sdk_answers_the_feature_service_with_an_offline_view_inside(example):
    """People query the applied repository from notebooks with Feast's SDK: a feature service holding an
    offline-only view (the transaction's facts) answers, those features missing, the rest from the store."""
    _, root = example
    code = f"""
import json
from feast import FeatureStore
store = FeatureStore(repo_path={str(root / 'feature_repo')!r})
service = store.get_feature_service("fraud_detection")
rows = [{{**{known_keys(root, 1)[0]!r}, "transaction_id": 1}}]
print(json.dumps(store.get_online_features(features=service, entity_rows=rows).to_dict(), default=str))
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                            cwd=root / "feature_repo")
    assert result.returncode == 0, result.stderr[-2000:]
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    assert answer["age"][0] is not None and answer["credit_limit"][0] is not None  # from the online store
    assert answer["amount"] == [None]  # offline-only: it comes with a serving request


def test_direct_sqlite_reads_answer_exactly_as_feasts_get_online_features(example):
    """Online lookups read Feast's SQLite tables directly (several times faster): for every online view of
    the example (ints, floats, text), known and unknown entities, one row or many, the answer is
    `get_online_features(...).to_dict()`'s."""
    from ml_framework.plugins.feast.online import _plan, feature_store, fetch_online_features
    from ml_framework.plugins.feast.repo import new_feature_store

    _, root = example
    repo = root / "feature_repo"
    feast_store = new_feature_store(repo)
    refs = []
    for view in ("customer_txn_stats", "merchant_stats", "customer_profile"):
        fv = feast_store.get_feature_view(view)
        refs += [f"{view}:{f.name}" for f in fv.features]
    keys = known_keys(root, 30)
    rows_sets = [keys[:1], keys, keys[:5] + [{"customer_id": 987654321, "merchant_id": 123456789}]]
    for rows in rows_sets:
        ours = fetch_online_features(repo, refs, rows)
        theirs = feast_store.get_online_features(features=refs, entity_rows=rows).to_dict()
        assert set(ours.features) == set(theirs)
        for name, column in theirs.items():
            assert ours.features[name] == column, name
    assert _plan(feature_store(repo), refs, keys)[2] is not None  # the direct reader answered
    unknown = fetch_online_features(repo, refs, rows_sets[2])
    assert unknown.missing == [{"customer_id": 987654321, "merchant_id": 123456789}]


ODFV = """\
kind: OnDemandFeatureView
name: spend_ratios
request: {channel_risk: float64}
views: [transaction_features, customer_txn_stats]
features:
  amount_vs_mean_7d: {dtype: float64, expr: "transaction_features.amount / customer_txn_stats.amount_mean_7d"}
  risky: {dtype: int64, expr: "1 if channel_risk > 0.5 else 0", fill: 0}
"""


def test_the_service_computes_derived_features_as_training_did(tmp_path, bentoml_home, monkeypatch):
    """A model on an on-demand view's features: the caller sends raw facts (the amount, a request field);
    the service fetches the other inputs online and computes the derived features with the training
    frame's function — logged with the prediction; a derived feature sent by the caller is refused."""
    import pandas as pd

    from ml_framework.plugins.feast import FeastProvider
    from ml_framework.plugins.features.derived import compute
    from ml_framework.plugins.serving.prediction_log import read_predictions

    monkeypatch.delenv("ML_STATE_URL", raising=False)
    model = fraud_model(rounds=20).replace('features: [fraud_detection, "customer_profile:home_country"]',
                                           'features: ["customer_profile:home_country", "spend_ratios:*"]')
    today = time.strftime("%Y-%m-%d", time.gmtime())  # recent data: at request time, training sees it too
    root = write_example(tmp_path / "example", end=today, specs={
        "models.yaml": model, "ondemand.yaml": ODFV,
        "deploy.yaml": deployment_spec(port=free_port(), extra="input: {entity_keys: [customer_id], raw_features: true}\n")})
    labels = pd.read_parquet(root / "data" / "fraud_labels.parquet")
    labels["channel_risk"] = (labels["transaction_id"] % 10) / 10.0  # a request field, known at labelling too
    labels.to_parquet(root / "data" / "fraud_labels.parquet", index=False)
    harness = Harness(root, {"feast": FeastProvider(), "lightgbm": LightGBMProvider(), "bentoml": BentoMLProvider()})
    try:
        report = harness.apply()
        assert report.ok, [o for o in report.outcomes if o.outcome != "succeeded"]
        url = harness.store.get("deployment.fraud-api").outputs["url"]
        customer = int(pd.read_parquet(root / "data" / "customer_txn_stats.parquet")["customer_id"].iloc[0])
        code, body, _ = post(url + "/predict", {"entity_keys": {"customer_id": customer},
                                                "features": {"amount": 120.0, "channel_risk": 0.9},
                                                "request_id": "derived-1"})
        assert code == 200, body
        deadline = time.monotonic() + 10
        logged = {}
        while "derived-1" not in logged and time.monotonic() < deadline:  # the log is written off the request path
            logged = {r["request_id"]: r for r in read_predictions(root, "fraud-api")}
            time.sleep(0.1)
        features = logged["derived-1"]["features"]
        store = __import__("ml_framework.plugins.feast.online", fromlist=["feature_store"]).feature_store(
            root / "feature_repo")
        mean = store.get_online_features(features=["customer_txn_stats:amount_mean_7d"],
                                         entity_rows=[{"customer_id": customer}]).to_dict()["amount_mean_7d"][0]
        assert features["amount_vs_mean_7d"] == pytest.approx(120.0 / mean) and features["risky"] == 1
        assert compute({"transaction_features.amount": [120.0], "customer_txn_stats.amount_mean_7d": [mean],
                        "channel_risk": [0.9]}, _computation(root))["amount_vs_mean_7d"].iloc[0] == \
            pytest.approx(features["amount_vs_mean_7d"])

        # Live skew: what was served vs what training would have used at the request's time.
        from ml_framework.testing import run_cli

        live = run_cli(["models", "skew", "fraud", "--live", "fraud-api", "--json"], cwd=root)
        found = {r["feature"]: r for r in json.loads(live.output)}
        assert live.exit_code == 0, live.output
        assert found["spend_ratios:amount_vs_mean_7d"]["checked"] >= 1
        assert found["customer_txn_stats:amount_mean_7d"]["kind"] == "online (live)"
        stats = pd.read_parquet(root / "data" / "customer_txn_stats.parquet")
        newest = stats.sort_values("event_ts").groupby("customer_id").tail(1)
        store.write_to_online_store("customer_txn_stats", newest.assign(amount_mean_7d=newest["amount_mean_7d"] + 50))
        assert post(url + "/predict", {"entity_keys": {"customer_id": customer},
                                       "features": {"amount": 120.0, "channel_risk": 0.9}, "request_id": "skewed"})[0] == 200
        deadline = time.monotonic() + 10
        while "skewed" not in {r["request_id"] for r in read_predictions(root, "fraud-api")} and time.monotonic() < deadline:
            time.sleep(0.1)
        skewed = run_cli(["models", "skew", "fraud", "--live", "fraud-api", "--json"], cwd=root)
        assert skewed.exit_code == 3, skewed.output
        found = {r["feature"]: r for r in json.loads(skewed.output)}
        assert found["customer_txn_stats:amount_mean_7d"]["mismatches"] >= 1  # served a value training never saw

        code, body, _ = post(url + "/predict", {"entity_keys": {"customer_id": customer},
                                                "features": {"amount": 1.0, "channel_risk": 0.1, "risky": 1}})
        assert code == 422 and body["detail"][0]["loc"] == ["features", "risky"], body
        assert "computed by the service" in body["detail"][0]["msg"]
        code, body, _ = post(url + "/predict", {"entity_keys": {"customer_id": customer}, "features": {"amount": 1.0}})
        assert code == 422 and ["features", "channel_risk"] in [e["loc"] for e in body["detail"]], body
    finally:
        harness.destroy()
        harness.close()
        stop_all_servers([root])


def _computation(root):
    import json as _json

    manifest = _json.loads((root / "feature_repo" / "ml_generated.json").read_text())
    return manifest["on_demand_feature_views"]["spend_ratios"]["computation"]
