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
    """Raw facts of a transaction being scored (amount and time): the service derives the rest."""
    import pandas as pd

    row = pd.read_parquet(root / "data" / "transactions.parquet").iloc[i]
    return {"amount": float(row["amount"]), "event_ts": row["event_ts"].isoformat()}


def derived_by_hand(root, key, facts, online):
    """The example's on-demand features (specs/features/views.yaml: transaction_context), computed here
    independently from the raw facts, the merchant master data and the online values."""
    import pandas as pd

    merchant = pd.read_parquet(root / "data" / "merchants.parquet").set_index("merchant_id").loc[key["merchant_id"]]
    mean = online["amount_mean_90d"]
    home = online["home_country"]
    return {"hour_of_day": pd.Timestamp(facts["event_ts"]).hour, "merchant_category": merchant["category"],
            "foreign_merchant": int(home is not None and merchant["country"] != home),
            "amount_vs_customer_mean": facts["amount"] / mean if mean else None}


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
    online = [r for r in refs if not r.startswith(("transaction_features:", "transaction_context:"))]
    online += ["customer_spend:amount_mean_90d", "customer_profile:home_country"]  # inputs of derived ones
    import pandas as pd

    for i, key in enumerate(keys):
        status, body, _ = post(url_of(harness) + "/predict", request(root, key, i))
        assert status == 200, body
        facts = transaction(root, i)
        fetched = fetch_online_features(root / "feature_repo", online, [key]).rows()[0]
        features = {**fetched, "amount": facts["amount"], **derived_by_hand(root, key, facts, fetched)}
        frame = pd.DataFrame([{name: features[name] for name in predictor.schema["features"]}])
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
    offline-only view (the transaction's facts) and an on-demand one answers, the offline features missing,
    the rest from the store, the derived ones computed by Feast running ml's transformation on the request
    field the rows carry."""
    _, root = example
    key = known_keys(root, 1)[0]
    code = f"""
import json
from feast import FeatureStore
store = FeatureStore(repo_path={str(root / 'feature_repo')!r})
service = store.get_feature_service("fraud_detection")
rows = [{{**{key!r}, "transaction_id": 1, "event_ts": "2024-06-01T03:30:00+00:00"}}]
print(json.dumps(store.get_online_features(features=service, entity_rows=rows).to_dict(), default=str))
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                            cwd=root / "feature_repo")
    assert result.returncode == 0, result.stderr[-2000:]
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    assert answer["age"][0] is not None and answer["credit_limit"][0] is not None  # from the online store
    assert answer["amount"] == [None]  # offline-only: it comes with a serving request
    import pandas as pd

    merchant = pd.read_parquet(root / "data" / "merchants.parquet").set_index("merchant_id").loc[key["merchant_id"]]
    assert answer["hour_of_day"] == [3] and answer["merchant_category"] == [merchant["category"]]
    home = pd.read_parquet(root / "data" / "customers.parquet").set_index("customer_id").loc[key["customer_id"]]
    assert answer["foreign_merchant"] == [int(merchant["country"] != home["home_country"])]
    assert answer["amount_vs_customer_mean"] == [None]  # null in, null out: the amount is not in the store


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


SKEW_MONITOR = """\
kind: Monitor
name: skew-watch
deployment: fraud-api
detector: {backend: scipy-drift}
window: {last: 500, min_samples: 400}   # a handful of requests: drift inconclusive, skew still checked
skew: {last: 50}
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
        "models.yaml": model, "ondemand.yaml": ODFV, "monitor.yaml": SKEW_MONITOR,
        "deploy.yaml": deployment_spec(port=free_port(), extra="input: {entity_keys: [customer_id], raw_features: true}\n")})
    labels = pd.read_parquet(root / "data" / "fraud_labels.parquet")
    labels["channel_risk"] = (labels["transaction_id"] % 10) / 10.0  # a request field, known at labelling too
    labels.to_parquet(root / "data" / "fraud_labels.parquet", index=False)
    from ml_framework.plugins.scipy_drift import ScipyDriftProvider

    harness = Harness(root, {"feast": FeastProvider(), "lightgbm": LightGBMProvider(), "bentoml": BentoMLProvider(),
                             "scipy-drift": ScipyDriftProvider()})
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
        watched = run_cli(["monitor", "run", "skew-watch", "--json"], cwd=root)  # the same check, by a monitor
        assert watched.exit_code == 0, watched.output
        run = json.loads(watched.stdout)[0]
        assert run["status"] == "ok" and {f["feature"] for f in run["skew"]} >= {"spend_ratios:amount_vs_mean_7d"}
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
        watched = run_cli(["monitor", "run", "skew-watch"], cwd=root)
        assert watched.exit_code == 3, watched.output  # skew: like drift, for cron and CI
        assert "skew" in watched.output and "customer_txn_stats:amount_mean_7d" in watched.output
        assert "ALERT monitor=skew-watch" in watched.output and "skew=customer_txn_stats:amount_mean_7d(" in watched.output
        gauges = run_cli(["monitor", "metrics"], cwd=root).output
        assert 'ml_monitor_status{monitor="skew-watch",deployment="fraud-api"} 3' in gauges, gauges
        assert 'ml_monitor_feature_skew{monitor="skew-watch",model_version="v1",feature="customer_txn_stats:amount_mean_7d"} 1' in gauges

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


def test_a_request_can_ask_why_and_the_contributions_add_up_to_the_output(example):
    """`"explain": true`: the answer names the largest feature contributions (LightGBM's exact tree
    contributions); base + every contribution is the model's raw output, the log-odds of the prediction;
    the explanation is logged with the prediction."""
    import math

    from ml_framework.plugins.serving.prediction_log import read_predictions

    harness, root = example
    key = known_keys(root, 1)[0]
    status, body, _ = post(url_of(harness) + "/predict", {**request(root, key), "explain": True,
                                                          "request_id": "why-1"})
    assert status == 200, body
    explanation = body["explanation"]
    assert explanation["output"] == "log-odds" and len(explanation["top"]) == 5  # top_k: 5 by default
    p = body["prediction"]
    total = explanation["base"] + sum(c["contribution"] for c in explanation["top"]) + explanation["rest"]
    assert explanation["raw"] == pytest.approx(math.log(p / (1 - p)), abs=1e-9)
    assert total == pytest.approx(explanation["raw"], abs=1e-6) and abs(explanation["approximation"]) < 1e-6  # exact
    sizes = [abs(c["contribution"]) for c in explanation["top"]]
    assert sizes == sorted(sizes, reverse=True) and explanation["top"][0]["feature"]
    assert "explanation" not in post(url_of(harness) + "/predict", request(root, key))[1]  # only when asked
    status, body, _ = post(url_of(harness) + "/predict", {**request(root, key), "explain": "yes"})
    assert status == 422 and body["detail"] == [{"loc": ["explain"], "msg": "expected true or false"}]
    deadline = time.monotonic() + 10
    logged = {}
    while "why-1" not in logged and time.monotonic() < deadline:
        logged = {r["request_id"]: r for r in read_predictions(root, "fraud-api")}
        time.sleep(0.05)
    assert logged["why-1"]["explanation"] == explanation


def test_the_example_has_no_training_serving_skew(example):
    """The example's derived features (transaction_context) and its online features: what training used
    equals what serving computes and fetches, for sampled label rows."""
    from ml_framework.testing import run_cli

    _, root = example
    checked = run_cli(["models", "skew", "fraud", "--rows", "300", "--json"], cwd=root)
    assert checked.exit_code == 0, checked.output
    found = {r["feature"]: r for r in json.loads(checked.output)}
    for feature in ("hour_of_day", "merchant_category", "foreign_merchant", "amount_vs_customer_mean"):
        result = found[f"transaction_context:{feature}"]
        assert result["kind"] == "transformation" and result["checked"] == 300 and result["mismatches"] == 0
    assert found["customer_spend:amount_mean_90d"]["checked"] > 10  # an input, fetched online


def test_a_renamed_feature_view_keeps_its_online_rows_and_nothing_retrains(example):
    """`kind: Moved` of a feature view: Feast's view takes the new name with its online rows, the feature
    service follows it, the model is not retrained, and the version serving (trained on the old name)
    keeps answering the same. Runs last in this module: it renames the shared example's view."""
    import re

    from ml_framework.plugins.feast.online import fetch_online_features

    harness, root = example
    keys = known_keys(root, 5)
    before_answers = [post(url_of(harness) + "/predict", request(root, key, i))[1]["prediction"]
                      for i, key in enumerate(keys)]
    refs = ["customer_txn_stats:amount_mean_7d", "customer_txn_stats:txn_count_7d"]
    before_online = fetch_online_features(root / "feature_repo", refs, keys).features
    version = harness.store.get("model.fraud").outputs["version"]

    views = root / "specs" / "features" / "views.yaml"
    views.write_text(re.sub(r"(?m)^name: customer_txn_stats$", "name: customer_activity", views.read_text()))
    services = root / "specs" / "features" / "services.yaml"
    services.write_text(services.read_text().replace('"customer_txn_stats:*"', '"customer_activity:*"'))
    (root / "specs" / "moved.yaml").write_text(
        "kind: Moved\nfrom: featureview.customer_txn_stats\nto: featureview.customer_activity\n")
    plan = harness.plan()
    pending = {c.address: c for c in plan.pending()}
    moved = pending["featureview.customer_activity"]
    assert moved.moved_from == "featureview.customer_txn_stats" and moved.action == "no-op", moved
    assert pending["featureservice.fraud_detection"].restate, pending  # follows the new name
    assert all(c.action == "no-op" for c in plan.pending()), [(c.address, c.action, c.reasons) for c in plan.pending()]
    assert "model.fraud" not in pending or pending["model.fraud"].restate  # nothing retrains

    report = harness.apply(plan)
    assert report.ok, [o for o in report.outcomes if o.outcome != "succeeded"]
    store = __import__("ml_framework.plugins.feast.repo", fromlist=["new_feature_store"]).new_feature_store(
        root / "feature_repo")
    names = {v.name for v in store.list_feature_views()}
    assert "customer_activity" in names and "customer_txn_stats" not in names
    service = store.get_feature_service("fraud_detection")
    assert "customer_activity" in {p.name for p in service.feature_view_projections}
    renamed_refs = [r.replace("customer_txn_stats", "customer_activity") for r in refs]
    assert fetch_online_features(root / "feature_repo", renamed_refs, keys).features == before_online  # rows kept
    assert fetch_online_features(root / "feature_repo", refs, keys).features == before_online  # old name followed
    assert harness.store.get("model.fraud").outputs["version"] == version  # not retrained
    after_answers = [post(url_of(harness) + "/predict", request(root, key, i))[1]["prediction"]
                     for i, key in enumerate(keys)]
    assert after_answers == before_answers  # the served version, trained on the old name, answers the same
    assert not harness.plan().has_changes
    result = subprocess.run([str(__import__("pathlib").Path(sys.executable).with_name("feast")), "-c",
                             str(root / "feature_repo"), "plan"], capture_output=True, text=True, timeout=120)
    assert "No changes to registry" in result.stdout and "No changes to infrastructure" in result.stdout, \
        result.stdout[-2000:] + result.stderr[-2000:]
