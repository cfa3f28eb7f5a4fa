"""Group gates: one slice, the worst slice, the gap between slices and Fairlearn's fairness measures, judged
with bootstrap intervals (a small group neither passes nor fails by noise)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ml_framework.plugins.models.gates import GateError, evaluate_gates, parse_gate
from ml_framework.plugins.models.group_gates import GroupGate


def _rows(n_a: int, n_b: int, *, b_quality: float, seed: int = 0):
    """Binary labels and scores for two groups: group a well separated, group b `b_quality` (0.5: noise)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n_a + n_b)
    scores = np.where(y == 1, rng.normal(0.7, 0.1, len(y)), rng.normal(0.3, 0.1, len(y)))
    noise = rng.random(n_b)
    scores[n_a:] = np.where(noise < b_quality, scores[n_a:], rng.random(n_b))
    groups = pd.DataFrame({"country": ["A"] * n_a + ["B"] * n_b})
    return y, np.clip(scores, 0, 1), groups


def _judge(text, y, p, rows, min_rows=30):
    gate = parse_gate(text, "binary", slices=["country"])
    (result,) = evaluate_gates([gate], {}, rows=("binary", y, p, rows), min_slice_rows=min_rows)
    return result


def test_a_large_gap_fails_and_a_small_one_passes_with_their_intervals():
    y, p, rows = _rows(2000, 2000, b_quality=0.2)
    failed = _judge("gap(country).auc <= 0.05", y, p, rows)
    assert failed.status == "failed" and failed.value > 0.2 and failed.interval[0] > 0.05
    y, p, rows = _rows(2000, 2000, b_quality=1.0)
    passed = _judge("gap(country).auc <= 0.05", y, p, rows)
    assert passed.status == "passed" and passed.interval[1] <= 0.05
    worst = _judge("worst(country).auc >= 0.9", y, p, rows)
    one = _judge("slice(country=B).auc >= 0.9", y, p, rows)
    assert worst.status == one.status == "passed" and worst.value <= one.value + 1e-9


def test_a_small_group_is_inconclusive_rather_than_passing_or_failing_by_noise():
    y, p, rows = _rows(3000, 40, b_quality=0.6)
    result = _judge("gap(country).auc <= 0.15", y, p, rows)
    assert result.status == "inconclusive", result
    assert result.interval[0] <= 0.15 <= result.interval[1] and "straddles" in result.detail


def test_fairness_measures_come_from_fairlearn():
    from fairlearn.metrics import demographic_parity_difference

    y, p, rows = _rows(2000, 2000, b_quality=1.0)
    p[2000:] = np.clip(p[2000:] + 0.3, 0, 1)  # group B is flagged far more often
    result = _judge("demographic_parity_difference(country) <= 0.05", y, p, rows)
    expected = demographic_parity_difference(y, (p >= 0.5).astype(int), sensitive_features=rows["country"])
    assert result.value == pytest.approx(expected, abs=1e-6) and result.status == "failed"


@pytest.mark.parametrize("text, task, message", [
    ("gap(region).auc <= 0.1", "binary", "'region' is not among the model's slices (country)"),
    ("gap(country).rmse <= 0.1", "binary", "rmse"),
    ("demographic_parity_difference(country) <= 0.1", "regression", "fits binary models"),
    ("demographic_parity_difference(country).auc <= 0.1", "binary", "takes no .auc"),
    ("slice(country).auc >= 0.8", "binary", "names one segment"),
    ("worst(country=US).auc >= 0.8", "binary", "takes a column, not a segment"),
    ("gap(country) <= 0.1", "binary", "needs a metric"),
])
def test_group_gates_are_checked_precisely(text, task, message):
    with pytest.raises(GateError, match=None) as caught:
        parse_gate(text, task, slices=["country"])
    assert message in str(caught.value), str(caught.value)


def test_a_parsed_group_gate_names_its_parts():
    gate = parse_gate("slice(country=US).auc >= 0.85", "binary", slices=["country"])
    assert isinstance(gate, GroupGate) and (gate.func, gate.column, gate.segment, gate.metric) == (
        "slice", "country", "US", "auc")


@pytest.mark.parametrize("text", ["gap(country).auc <= 1", "worst(country).logloss <= 9", "gap(country).accuracy <= 1",
                                  "demographic_parity_difference(country) <= 1", "demographic_parity_ratio(country) >= 0",
                                  "equalized_odds_difference(country) <= 1", "equalized_odds_ratio(country) >= 0"])
def test_the_bootstraps_fast_statistic_is_fairlearns_value(text):
    """The interval is drawn with a numpy statistic (hundreds of draws); it must be the very number
    Fairlearn's MetricFrame or fairness measure gives."""
    from ml_framework.plugins.models.group_gates import _fairlearn_value, _statistic
    from ml_framework.plugins.models.metrics import METRICS

    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 3000)
    p = np.clip(y * 0.3 + rng.random(3000) * 0.7, 0, 1)
    groups = rng.choice(np.array(["A", "B", "C", "D"], dtype=object), 3000, p=[0.5, 0.3, 0.15, 0.05])
    gate = parse_gate(text, "binary", slices=["country"])
    higher = METRICS[gate.metric].higher_is_better if gate.metric else True
    ours = _statistic(gate, "binary", 30, higher)(y, p, groups)
    assert ours == pytest.approx(_fairlearn_value(gate, "binary", y, p, groups, 30, higher), abs=1e-9)
