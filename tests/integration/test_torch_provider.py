"""The torch backend end to end: a tabular MLP trained through plan/apply, deterministic with a seed,
saved to BentoML and loadable as a predictor; the provider contract suite."""

from __future__ import annotations

import numpy as np
import pytest

from ml_framework.plugins.models.registry import ModelRegistry
from ml_framework.testing.contract import ProviderContract
from ml_framework.testing.harness import Harness
from ml_framework.plugins.torch import TorchProvider
from ml_framework.plugins.models.predictor import load_predictor
from ml_framework.plugins.models.testing import feature_providers, write_project

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("clean_ml_env", "bentoml_home")]


def providers():
    return {**feature_providers(), "torch": TorchProvider()}


def train_once(root):
    h = Harness(root, providers())
    try:
        report = h.apply()
        assert report.ok, report.outcomes
        return dict(h.store.get("model.fraud").outputs)
    finally:
        h.close()


def test_same_inputs_and_seed_give_the_same_metrics_and_another_seed_does_not(tmp_path):
    import torch

    first = train_once(write_project(tmp_path / "a", backend="torch", rows=1500, gates=()))
    state = torch.random.get_rng_state()
    second = train_once(write_project(tmp_path / "b", backend="torch", rows=1500, gates=()))
    assert first["metrics"] == second["metrics"]
    assert torch.equal(state, torch.random.get_rng_state()), "training must not disturb the global RNG"
    assert not torch.are_deterministic_algorithms_enabled(), "the global flag is restored after training"
    params = {"layers": [32, 16], "dropout": 0.1, "epochs": 8, "batch_size": 128, "learning_rate": 0.01, "seed": 99}
    other = train_once(write_project(tmp_path / "c", backend="torch", rows=1500, gates=(), params=params))
    assert other["metrics"] != first["metrics"]
    assert first["metrics"]["auc"] > 0.75


def test_saved_model_predicts_like_training_and_records_its_architecture(tmp_path):
    root = write_project(tmp_path / "p", backend="torch", rows=1500, gates=("auc >= 0.7",))
    outputs = train_once(root)
    version = ModelRegistry.for_project(root).resolve("fraud")
    assert version.lineage["params"]["layers"] == [32, 16] and version.lineage["info"]["device"] in ("cpu", "cuda")
    assert version.lineage["libraries"]["torch"]
    predictor = load_predictor(outputs["bentoml_tag"])
    import pandas as pd

    frame = pd.DataFrame({"amount_mean_7d": [10.0, 200.0, None], "txn_count_7d": [3, 12, 5],
                          "segment": ["retail", "business", "unknown-segment"]})
    scores = predictor.predict(frame)
    assert scores.shape == (3,) and np.all((scores > 0) & (scores < 1))
    assert predictor.predict(frame).tolist() == scores.tolist()

    # explanations (Captum's integrated gradients): per feature, adding up to the log-odds
    from ml_framework.plugins.bentoml.predictor import load_serving_model
    from ml_framework.plugins.models.artifacts import artifact_dir

    served = load_serving_model(artifact_dir(outputs["bentoml_tag"], root), outputs["bentoml_tag"])
    assert served.explains
    for row, p in zip(frame.to_dict("records"), scores):
        values = {k: (None if v != v else v) if isinstance(v, float) else v for k, v in row.items()}
        found = served.explain(served.encode(values), values, float(p), top_k=3)
        logit = float(np.log(p / (1 - p)))
        assert found["output"] == "log-odds" and found["raw"] == pytest.approx(logit, abs=1e-9)
        total = found["base"] + sum(c["contribution"] for c in found["top"]) + found["rest"]
        assert total + found["approximation"] == pytest.approx(found["raw"], abs=1e-9)
        assert abs(found["approximation"]) <= 0.02 * max(1.0, abs(logit))  # the integral's error, stated
    importance = version.lineage["importance"]["mean_abs_contribution"]
    assert set(importance) == {"amount_mean_7d", "txn_count_7d", "segment"} and max(importance.values()) > 0


def test_cuda_requested_without_a_device_is_explained(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    params = {"layers": [8], "epochs": 1, "device": "cuda"}
    h = Harness(write_project(tmp_path / "p", backend="torch", rows=600, params=params), providers())
    try:
        (failed,) = [o for o in h.apply().outcomes if o.address == "model.fraud"]
        assert "device is cuda, but PyTorch sees no CUDA device" in failed.error
    finally:
        h.close()


class TestTorchContract(ProviderContract):
    @pytest.fixture
    def contract_project(self, tmp_path):
        return write_project(tmp_path / "contract", backend="torch", rows=800, gates=(),
                             params={"layers": [8], "epochs": 2, "batch_size": 256})

    @pytest.fixture
    def contract_providers(self):
        return providers()
