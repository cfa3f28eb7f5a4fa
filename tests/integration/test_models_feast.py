"""Training from real Feast feature views: the example project's feature specs and generated data, applied
with the feast backend, then a Model trained through Feast's point-in-time retrieval. The direct parquet
join must give exactly the frame Feast gives."""

from __future__ import annotations


import pytest

pytestmark = pytest.mark.integration

pytest.importorskip("ml_framework.plugins.feast.training")

from ml_framework.plugins.models.registry import ModelRegistry  # noqa: E402
from ml_framework.testing.harness import Harness  # noqa: E402
from ml_framework.plugins.lightgbm import LightGBMProvider  # noqa: E402
from ml_framework.plugins.compat.feast import ASOF_STORE  # noqa: E402
from feast_example import fraud_model, write_example  # noqa: E402




@pytest.fixture(params=[ASOF_STORE, "duckdb", "file"], ids=["asof", "duckdb", "file"])
def example(request, tmp_path, monkeypatch, bentoml_home):
    """The example's feature repository with its offline store (DuckDB with ASOF joins), Feast's own DuckDB
    store and Feast's file store: each gives exactly the parquet join's frame."""
    monkeypatch.delenv("ML_STATE_URL", raising=False)
    return write_example(tmp_path / "example", offline_store=request.param, specs={
        "models.yaml": fraud_model(gates=["auc >= 0.5"], slices=["home_country"])})


def test_a_model_trains_from_feast_and_the_parquet_join_matches_feast(example):
    from ml_framework.plugins.feast import FeastProvider

    harness = Harness(example, {"feast": FeastProvider(), "lightgbm": LightGBMProvider()})
    try:
        report = harness.apply()
        assert report.ok, "\n".join(f"{o.address}: {o.outcome}: {o.error}" for o in report.outcomes if o.outcome != "succeeded")
        outputs = harness.store.get("model.fraud").outputs
        assert outputs["data"]["route"] == "feast" and outputs["version"] == "v1"
        lineage = ModelRegistry.for_project(example).resolve("fraud").lineage
        assert "customer_txn_stats:amount_mean_7d" in lineage["feature_refs"]
        assert set(lineage["data"]["files"]) >= {"data/fraud_labels.parquet", "data/customer_txn_stats.parquet"}
        assert not harness.plan().has_changes

        from ml_framework.plugins.models.data import load_frame, resolve_inputs

        def lookup(address):
            record = harness.store.get(address)
            return (dict(record.spec), record.backend) if record else None

        data = resolve_inputs(harness.store.get("model.fraud").spec, lookup)
        access = harness.registry.services(state=harness.store).get("feature_access")  # the seam trainers use
        via_feast = load_frame(data, example, route="feast", features=access).df
        via_parquet = load_frame(data, example, route="parquet").df
        assert len(via_feast) == len(via_parquet) > 1000
        for column in data.feature_columns + ["is_fraud"]:
            a, b = via_parquet[column], via_feast[column]
            same = (a == b) | (a.isna() & b.isna())
            assert same.all(), f"{column}: {int((~same).sum())} rows differ between the parquet join and Feast"
    finally:
        harness.close()


ODFV = """\
kind: OnDemandFeatureView
name: spend_ratios
request: {label_ts: timestamp, event_ts: timestamp}
views: [transaction_features, customer_txn_stats]
features:
  amount_vs_mean_7d: {dtype: float64, expr: "transaction_features.amount / customer_txn_stats.amount_mean_7d"}
  label_delay_h: {dtype: float64, expr: "seconds_between(label_ts, label_ts) + 1"}
  hour: {dtype: int64, expr: "hour(event_ts)"}   # the label's own time is a request field too
"""


def test_a_model_trains_on_derived_features_computed_the_same_through_feast_and_the_parquet_join(tmp_path, monkeypatch,
                                                                                                   bentoml_home):
    """Features of an on-demand view: the inputs are joined (point in time), the derived values computed by
    the one function every path uses; request fields come from the label rows; inputs only used by the
    derived features are not trained on."""
    from ml_framework.plugins.feast import FeastProvider
    from ml_framework.plugins.models.data import load_frame, resolve_inputs

    monkeypatch.delenv("ML_STATE_URL", raising=False)
    model = fraud_model().replace('features: [fraud_detection, "customer_profile:home_country"]',
                                  'features: ["customer_profile:home_country", "spend_ratios:*"]')
    root = write_example(tmp_path / "example", specs={"models.yaml": model, "ondemand.yaml": ODFV})
    harness = Harness(root, {"feast": FeastProvider(), "lightgbm": LightGBMProvider()})
    try:
        report = harness.apply()
        assert report.ok, "\n".join(f"{o.address}: {o.outcome}: {o.error}" for o in report.outcomes if o.outcome != "succeeded")
        lineage = ModelRegistry.for_project(root).resolve("fraud").lineage
        assert lineage["feature_refs"] == ["customer_profile:home_country", "spend_ratios:amount_vs_mean_7d",
                                           "spend_ratios:hour", "spend_ratios:label_delay_h"]

        def lookup(address):
            record = harness.store.get(address)
            return (dict(record.spec), record.backend) if record else None

        data = resolve_inputs(harness.store.get("model.fraud").spec, lookup)
        assert data.feature_columns == ["home_country", "amount_vs_mean_7d", "hour", "label_delay_h"]
        access = harness.registry.services(state=harness.store).get("feature_access")
        via_feast = load_frame(data, root, route="feast", features=access).df
        via_parquet = load_frame(data, root, route="parquet").df
        assert "amount" not in via_feast.columns and "amount_mean_7d" not in via_parquet.columns  # inputs only
        ratio = via_parquet["amount_vs_mean_7d"]
        assert ratio.notna().sum() > 100 and (via_parquet["label_delay_h"] == 1.0).all()
        assert (via_feast["hour"] == via_feast["event_ts"].dt.hour).all()
        assert (via_parquet["hour"] == via_parquet["event_ts"].dt.hour).all()
        same = (ratio == via_feast["amount_vs_mean_7d"]) | (ratio.isna() & via_feast["amount_vs_mean_7d"].isna())
        assert same.all()
        assert not harness.plan().has_changes

        # The skew check: no skew as applied; a planted one (an online value that is not the offline one) fails.
        from ml_framework.plugins.feast.online import feature_store
        from ml_framework.plugins.models.skew import check_skew
        from ml_framework.testing import run_cli

        results = check_skew(harness.project, harness.registry, harness.store, "fraud", rows=300)
        assert {r.kind for r in results} == {"transformation", "online"} and all(r.ok for r in results), results
        derived = next(r for r in results if r.feature == "spend_ratios:amount_vs_mean_7d")
        assert derived.checked == 300
        online = next(r for r in results if r.feature == "customer_txn_stats:amount_mean_7d")
        assert online.checked > 10
        assert run_cli(["models", "skew", "fraud", "--rows", "300"], cwd=root).exit_code == 0

        import pandas as pd

        stats = pd.read_parquet(root / "data" / "customer_txn_stats.parquet")
        latest = stats.sort_values("event_ts").groupby("customer_id").tail(1)
        latest = latest.assign(amount_mean_7d=latest["amount_mean_7d"] * 2 + 1)  # every customer: served wrong
        feature_store(root / "feature_repo").write_to_online_store("customer_txn_stats", latest)
        planted = run_cli(["models", "skew", "fraud", "--rows", "300", "--json"], cwd=root)
        assert planted.exit_code == 3, planted.output
        found = {r["feature"]: r for r in __import__("json").loads(planted.output)}
        assert found["customer_txn_stats:amount_mean_7d"]["mismatches"] > 0
        assert found["spend_ratios:amount_vs_mean_7d"]["mismatches"] == 0  # the transformation itself agrees
    finally:
        harness.close()


def test_a_model_trains_on_windowed_aggregations_the_same_through_feast_and_the_parquet_join(tmp_path, monkeypatch,
                                                                                             bentoml_home):
    from ml_framework.plugins.feast import FeastProvider
    from ml_framework.plugins.models.data import load_frame, resolve_inputs

    monkeypatch.delenv("ML_STATE_URL", raising=False)
    model = fraud_model().replace('features: [fraud_detection, "customer_profile:home_country"]',
                                  'features: ["customer_profile:home_country", "customer_spend:*"]')
    root = write_example(tmp_path / "example", specs={"models.yaml": model})  # the example's customer_spend
    harness = Harness(root, {"feast": FeastProvider(), "lightgbm": LightGBMProvider()})
    try:
        report = harness.apply()
        assert report.ok, "\n".join(f"{o.address}: {o.outcome}: {o.error}" for o in report.outcomes if o.outcome != "succeeded")

        def lookup(address):
            record = harness.store.get(address)
            return (dict(record.spec), record.backend) if record else None

        data = resolve_inputs(harness.store.get("model.fraud").spec, lookup)
        access = harness.registry.services(state=harness.store).get("feature_access")
        via_feast = load_frame(data, root, route="feast", features=access).df
        via_parquet = load_frame(data, root, route="parquet").df
        for column in ("amount_mean_90d", "txn_count_1h"):
            a, b = via_parquet[column], via_feast[column]
            assert a.notna().sum() > 100
            assert ((a == b) | (a.isna() & b.isna())).all(), column
        # Read strictly before each label: a label at its own transaction's time counts only earlier events
        # (what the online store holds when that transaction is scored).
        import pandas as pd

        events = pd.read_parquet(root / "data" / "transactions.parquet")
        labels = via_parquet.reset_index(drop=True)
        for i in labels.sample(40, random_state=2).index:
            row = labels.loc[i]
            mine = events[events["customer_id"] == row["customer_id"]]
            before = mine[(mine["event_ts"] < row["event_ts"]) & (mine["event_ts"] >= row["event_ts"] - pd.Timedelta("90D"))]
            if before.empty:
                assert pd.isna(row["amount_mean_90d"])  # a first transaction: nothing before it
                continue
            newest = before["event_ts"].max()  # the row served: the newest earlier event's window
            hour = mine[(mine["event_ts"] > newest - pd.Timedelta("1h")) & (mine["event_ts"] <= newest)]
            assert row["txn_count_1h"] == len(hour), (row.to_dict(), len(hour))
            window = mine[(mine["event_ts"] > newest - pd.Timedelta("90D")) & (mine["event_ts"] <= newest)]
            assert row["amount_mean_90d"] == pytest.approx(window["amount"].mean(), rel=1e-9)
        assert not harness.plan().has_changes
    finally:
        harness.close()


def test_a_derived_feature_may_be_a_python_function_of_the_project_and_editing_it_retrains(tmp_path, monkeypatch,
                                                                                          bentoml_home):
    """`function: transforms.py:name`: called with the inputs as arrays, the same way for training and for
    one request; its source is part of the view's fingerprint, so editing it retrains what reads it; a
    missing function is a plan error naming it."""
    from ml_framework.plugins.feast import FeastProvider
    from ml_framework.plugins.features.derived import compute_row

    monkeypatch.delenv("ML_STATE_URL", raising=False)
    odfv = ("kind: OnDemandFeatureView\nname: spend_ratios\nviews: [transaction_features, customer_txn_stats]\n"
            "features:\n  log_ratio: {dtype: float64, function: \"transforms.py:log_ratio\"}\n")
    model = fraud_model().replace('features: [fraud_detection, "customer_profile:home_country"]',
                                  'features: ["customer_profile:home_country", "spend_ratios:*"]')
    root = write_example(tmp_path / "example", specs={"models.yaml": model, "ondemand.yaml": odfv})
    (root / "transforms.py").write_text(
        "import numpy as np\n\n\ndef log_ratio(inputs):\n"
        "    amount = inputs['transaction_features.amount'].astype('float64')\n"
        "    mean = inputs['customer_txn_stats.amount_mean_7d'].astype('float64')\n"
        "    with np.errstate(all='ignore'):\n        return np.log(amount / mean)\n")
    harness = Harness(root, {"feast": FeastProvider(), "lightgbm": LightGBMProvider()})
    try:
        report = harness.apply()
        assert report.ok, "\n".join(f"{o.address}: {o.outcome}: {o.error}" for o in report.outcomes if o.outcome != "succeeded")
        assert ModelRegistry.for_project(root).resolve("fraud").lineage["feature_refs"] == [
            "customer_profile:home_country", "spend_ratios:log_ratio"]
        assert not harness.plan().has_changes

        import json as _json

        manifest = _json.loads((root / "feature_repo" / "ml_generated.json").read_text())
        view = manifest["on_demand_feature_views"]["spend_ratios"]["computation"]
        one = compute_row({"amount": 100.0, "amount_mean_7d": 50.0}, view)
        assert abs(one["log_ratio"] - __import__("math").log(2.0)) < 1e-12

        (root / "transforms.py").write_text((root / "transforms.py").read_text().replace("np.log(", "np.log1p("))
        plan = harness.plan()
        pending = {c.address for c in plan.pending()}
        assert {"ondemandfeatureview.spend_ratios", "model.fraud"} <= pending  # the edit retrains the model

        (root / "transforms.py").write_text("def other(inputs):\n    return 0\n")
        broken = harness.plan()
        errors = {e.address: e.message for e in broken.errors}
        assert "transforms.py defines no function 'log_ratio'" in errors["ondemandfeatureview.spend_ratios"]
        assert "cannot be planned" in errors["model.fraud"]  # what reads it waits for it
    finally:
        harness.close()
