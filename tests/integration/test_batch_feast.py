"""Batch scoring through Feast: the example project's feature specs with the feast backend, a model trained
through Feast's point-in-time retrieval, and the example BatchPrediction spec (specs/batch/) scoring every
transaction — its features looked up through Feast, as the version was trained. The scores must equal
those of the same rows joined directly from the parquet files (the training code's other route)."""

from __future__ import annotations


import pytest

pytest.importorskip("ml_framework.plugins.feast.training")

from ml_framework.plugins.models.registry import ModelRegistry  # noqa: E402
from ml_framework.testing.harness import Harness  # noqa: E402
from ml_framework.plugins.batch import BatchProvider  # noqa: E402
from ml_framework.plugins.lightgbm import LightGBMProvider  # noqa: E402
from feast_example import fraud_model, write_example  # noqa: E402

pytestmark = pytest.mark.integration

ADDRESS = "batchprediction.fraud-scores"



@pytest.fixture
def example(tmp_path, monkeypatch, bentoml_home):
    monkeypatch.delenv("ML_STATE_URL", raising=False)
    return write_example(tmp_path / "example", also=["batch"],
                         specs={"models.yaml": fraud_model(gates=["auc >= 0.5"])})


def test_the_example_batch_spec_scores_through_feast_like_the_parquet_join(example):
    import numpy as np
    import pandas as pd

    from ml_framework.plugins.feast import FeastProvider
    from ml_framework.plugins.models.data import load_frame, resolve_inputs
    from ml_framework.plugins.models.predictor import load_predictor

    harness = Harness(example, {"feast": FeastProvider(), "lightgbm": LightGBMProvider(), "batch": BatchProvider()})
    try:
        report = harness.apply()
        assert report.ok, [o for o in report.outcomes if o.outcome != "succeeded"]
        outputs = harness.store.get(ADDRESS).outputs
        assert outputs["mode"] == "lookup" and outputs["route"] == "feast" and outputs["model_ref"] == "fraud:v1"
        transactions = pd.read_parquet(example / "data" / "transactions.parquet")
        scored = pd.read_parquet(example / outputs["output_path"])
        assert outputs["rows"] == len(scored) == len(transactions)
        assert (scored["transaction_id"].to_numpy() == transactions["transaction_id"].to_numpy()).all()
        assert not harness.plan().has_changes

        # The same rows joined with the parquet route of the training code: identical scores.
        def lookup(address):
            record = harness.store.get(address)
            return (dict(record.spec), record.backend) if record else None

        model_spec = dict(harness.store.get("model.fraud").spec)
        data = resolve_inputs(model_spec, lookup)
        as_labels = transactions[["transaction_id", "customer_id", "merchant_id", "event_ts"]].assign(is_fraud=0)
        as_labels.to_parquet(example / "data" / "as_labels.parquet", index=False)
        from dataclasses import replace

        data = replace(data, label=replace(data.label, path="data/as_labels.parquet"), label_column="is_fraud")
        frame = load_frame(data, example, route="parquet").df
        version = ModelRegistry.for_project(example).resolve("fraud")
        expected = load_predictor(version.bentoml_tag).predict(frame)
        assert np.allclose(scored["prediction"].to_numpy(), np.asarray(expected), rtol=0, atol=1e-12)

        # options.route: parquet picks the direct join for the lookup: the same scores, faster.
        override = ["+batch_predictions.fraud-scores.options.route=parquet"]
        (change,) = harness.plan(overrides=override).pending()
        assert change.address == ADDRESS and "spec changed: options.route" in change.reasons
        assert harness.apply(overrides=override).ok
        assert harness.store.get(ADDRESS).outputs["route"] == "parquet"
        again = pd.read_parquet(example / outputs["output_path"])
        assert np.array_equal(again["prediction"].to_numpy(), scored["prediction"].to_numpy())
    finally:
        harness.close()


def test_batch_scoring_computes_on_demand_features_like_training(tmp_path, monkeypatch, bentoml_home):
    """A model on an on-demand view's features: batch scoring looks the inputs up and computes the derived
    features with the training frame's function (the scores equal the model on the training route's frame)."""
    import numpy as np
    import pandas as pd

    from ml_framework.plugins.feast import FeastProvider
    from ml_framework.plugins.models.data import load_frame, resolve_inputs
    from ml_framework.plugins.models.predictor import load_predictor

    monkeypatch.delenv("ML_STATE_URL", raising=False)
    odfv = ("kind: OnDemandFeatureView\nname: spend_ratios\nviews: [transaction_features, customer_txn_stats]\n"
            "features:\n  amount_vs_mean_7d: {dtype: float64, expr: "
            "\"transaction_features.amount / customer_txn_stats.amount_mean_7d\"}\n")
    model = fraud_model(gates=["auc >= 0.5"]).replace(
        'features: [fraud_detection, "customer_profile:home_country"]',
        'features: ["customer_profile:home_country", "spend_ratios:*"]')
    example = write_example(tmp_path / "example", also=["batch"], specs={"models.yaml": model, "ondemand.yaml": odfv})
    harness = Harness(example, {"feast": FeastProvider(), "lightgbm": LightGBMProvider(), "batch": BatchProvider()})
    try:
        report = harness.apply()
        assert report.ok, "\n".join(f"{o.address}: {o.outcome}: {o.error}" for o in report.outcomes
                                     if o.outcome != "succeeded")  # whole messages: a rare failure says why
        outputs = harness.store.get(ADDRESS).outputs
        scored = pd.read_parquet(example / outputs["output_path"])
        transactions = pd.read_parquet(example / "data" / "transactions.parquet")
        assert len(scored) == len(transactions)

        def lookup(address):
            record = harness.store.get(address)
            return (dict(record.spec), record.backend) if record else None

        data = resolve_inputs(dict(harness.store.get("model.fraud").spec), lookup)
        as_labels = transactions[["transaction_id", "customer_id", "merchant_id", "event_ts"]].assign(is_fraud=0)
        as_labels.to_parquet(example / "data" / "fraud_labels.parquet", index=False)
        frame = load_frame(data, example, route="parquet").df
        assert frame["amount_vs_mean_7d"].notna().sum() > 100
        version = ModelRegistry.for_project(example).resolve("fraud")
        from ml_framework.plugins.models.artifacts import artifact_dir

        predictor = load_predictor(artifact_dir(version.bentoml_tag, example))
        expected = np.asarray(predictor.predict(frame[data.feature_columns]), dtype=float)
        assert np.allclose(scored["prediction"].to_numpy(dtype=float), expected)
    finally:
        harness.close()
