"""Robustness gates: the perturbations, the grammar, the verdict."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ml_framework.plugins.models.gates import GateError, evaluate_gates, parse_gate
from ml_framework.plugins.models.robustness import UNSEEN, perturb


def _frame(n=2000, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"amount": rng.normal(100, 20, n), "count": rng.integers(0, 10, n).astype("float64"),
                         "channel": rng.choice(["web", "pos"], n)})


def test_each_perturbation_does_what_it_says_and_is_seeded():
    frame = _frame()
    cats = {"channel": ["pos", "web"]}
    noisy = perturb(frame, list(frame.columns), cats, [("noise", 0.1)])
    shift = (noisy["amount"] - frame["amount"]).std()
    assert 1.5 < shift < 2.5 and (noisy["channel"] == frame["channel"]).all()  # 0.1 x std 20
    holes = perturb(frame, list(frame.columns), cats, [("missing", 0.2)])
    assert 0.15 < holes["amount"].isna().mean() < 0.25 and 0.15 < holes["channel"].isna().mean() < 0.25
    unseen = perturb(frame, list(frame.columns), cats, [("unseen", 0.3)])
    assert 0.25 < (unseen["channel"] == UNSEEN).mean() < 0.35 and (unseen["amount"] == frame["amount"]).all()
    assert perturb(frame, list(frame.columns), cats, [("noise", 0.1)]).equals(noisy)  # the same draw again


def test_a_model_that_leans_on_one_feature_fails_when_it_goes_missing():
    frame = _frame()
    y = (frame["amount"] > 100).astype(int).to_numpy()

    def predict(rows):  # a "model": the amount alone, a missing value scored as the lowest
        return ((rows["amount"].astype("float64").fillna(0) - 100) / 40 + 0.5).clip(0, 1).to_numpy()

    metrics = {"auc": 1.0}
    rows = ("binary", y, predict(frame), frame, (predict, list(frame.columns), {"channel": ["pos", "web"]}))
    gates = [parse_gate("robust(noise=0.05).auc >= auc - 0.05", "binary"),
             parse_gate("robust(missing=0.4).auc >= 0.9", "binary")]
    noise, missing = evaluate_gates(gates, metrics, rows=rows)
    assert noise.status == "passed" and noise.threshold == pytest.approx(0.95)
    assert missing.status == "failed" and missing.value < 0.9 and "under missing=0.4" in missing.detail


@pytest.mark.parametrize("text, message", [
    ("robust(nosie=0.1).auc >= 0.8", "unknown perturbation 'nosie'"),
    ("robust(noise=2).auc >= 0.8", "fraction in (0, 1]"),
    ("robust().auc >= 0.8", "at least one perturbation"),
    ("robust(noise=0.1).rmse <= 3", "rmse"),
    ("robust(noise=0.1).auc >= logloss - 0.1", "compare auc with its clean value"),
])
def test_robustness_gates_are_checked_precisely(text, message):
    with pytest.raises(GateError) as caught:
        parse_gate(text, "binary")
    assert message in str(caught.value)
