"""A multiclass model with named classes ("low", "medium", "high"), trained, saved and served for real:
the answer names the most likely class and gives each named class's probability."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ml_framework.plugins.bentoml import BentoMLProvider
from ml_framework.plugins.bentoml.testing import deployment_spec, free_port, post, raw_payloads, stop_all_servers
from ml_framework.plugins.lightgbm import LightGBMProvider
from ml_framework.plugins.models.testing import feature_providers, write_project
from ml_framework.testing.harness import Harness

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("clean_ml_env", "bentoml_home")]


def test_named_classes_are_learned_saved_and_answered_by_name(tmp_path):
    root = write_project(tmp_path / "proj", rows=1500, gates=(), task="multiclass", label="risk_band",
                         slices=())
    labels = pd.read_parquet(root / "data" / "labels.parquet")
    rng = np.random.default_rng(3)
    score = labels["is_fraud"].to_numpy() * 2 + rng.integers(0, 2, len(labels))
    labels["risk_band"] = np.array(["low", "medium", "high", "high"])[score]
    labels.to_parquet(root / "data" / "labels.parquet", index=False)
    (root / "specs" / "deploy.yaml").write_text(deployment_spec(port=free_port()))
    harness = Harness(root, {**feature_providers(), "lightgbm": LightGBMProvider(), "bentoml": BentoMLProvider()})
    try:
        report = harness.apply()
        assert report.ok, [o for o in report.outcomes if o.outcome != "succeeded"]
        url = harness.store.get("deployment.fraud-api").outputs["url"]
        status, body, _ = post(url + "/predict", raw_payloads(1)[0])
        assert status == 200, body
        assert set(body["probabilities"]) == {"high", "low", "medium"}
        assert body["class"] == max(body["probabilities"], key=body["probabilities"].get)
        assert sum(body["probabilities"].values()) == pytest.approx(1.0, abs=1e-6)
        assert body["prediction"] == [body["probabilities"][c] for c in ("high", "low", "medium")]
    finally:
        try:
            harness.destroy()
        finally:
            harness.close()
            stop_all_servers([root])
