"""One request's derived features (what the service computes) equal the training frame's row for row,
for every dtype, fill and null case."""

from __future__ import annotations

import math

import pandas as pd

from ml_framework.plugins.features.derived import DerivedFeatureError, compute, compute_row

VIEW = {
    "name": "v",
    "inputs": {"tx.amount": "number", "stats.mean": "number", "channel": "string", "ts": "timestamp", "risk": "number"},
    "features": {
        "ratio": {"expr": "tx.amount / stats.mean", "dtype": "float64", "fill": None},
        "ratio32": {"expr": "tx.amount / stats.mean", "dtype": "float32", "fill": -1.0},
        "hour": {"expr": "hour(ts)", "dtype": "int64", "fill": 0},
        "big": {"expr": "tx.amount > 100", "dtype": "bool", "fill": None},
        "label": {"expr": "'high' if risk > 0.5 else channel", "dtype": "string", "fill": "none"},
        "count": {"expr": "round(tx.amount)", "dtype": "int32", "fill": None},
    },
}
FRAME = {
    "tx.amount": [120.0, 5.0, None, 7.5, 0.0],
    "stats.mean": [60.0, 0.0, 3.0, None, 2.0],
    "channel": ["web", "pos", None, "web", "pos"],
    "ts": pd.to_datetime(["2026-01-01T03:10Z", "2026-01-01T23:00Z", None, "2026-01-02T00:00Z", "2026-01-02T12:00Z"]),
    "risk": [0.9, 0.1, None, 0.6, 0.2],
}


def as_plain(value):
    if value is None or (isinstance(value, float) and math.isnan(value)) or str(value) in ("<NA>", "NaT"):
        return None
    return value.item() if hasattr(value, "item") else value


def test_each_row_computed_alone_equals_the_frame():
    whole = compute({k: pd.Series(v) for k, v in FRAME.items()}, VIEW)
    for row in range(5):
        one = compute_row({"amount": FRAME["tx.amount"][row], "mean": FRAME["stats.mean"][row],
                           "channel": FRAME["channel"][row], "ts": FRAME["ts"][row], "risk": FRAME["risk"][row]}, VIEW)
        for feature, series in whole.items():
            expected = as_plain(series.iloc[row])
            got = one[feature]
            if isinstance(expected, float) and got is not None:
                assert math.isclose(got, expected, rel_tol=1e-6), (row, feature, got, expected)
            else:
                assert got == expected, (row, feature, got, expected)


def test_fill_and_dtype_are_applied():
    whole = compute({k: pd.Series(v) for k, v in FRAME.items()}, VIEW)
    assert whole["ratio"].iloc[0] == 2.0 and math.isnan(whole["ratio"].iloc[1])  # division by zero: null
    assert whole["ratio32"].iloc[1] == -1.0 and str(whole["ratio32"].dtype) == "float32"  # /0 -> null -> fill
    assert str(whole["hour"].dtype) == "Int64" and whole["hour"].tolist() == [3, 23, 0, 0, 12]
    assert whole["label"].tolist() == ["high", "pos", "none", "high", "pos"]


def test_a_missing_input_names_the_feature():
    try:
        compute_row({"amount": 1.0}, VIEW)
    except DerivedFeatureError as exc:
        assert exc.feature == "ratio" and "needs stats.mean" in str(exc)
    else:  # pragma: no cover
        raise AssertionError("no error")


def test_a_project_function_computes_rows_like_the_frame_and_names_itself_when_it_fails(tmp_path):
    from ml_framework.plugins.features.derived import definition
    from ml_framework.plugins.features.kinds import FeatureView, OnDemandFeatureView

    (tmp_path / "transforms.py").write_text("def double(inputs):\n    return inputs['tx.amount'] * 2\n\n"
                                            "def broken(inputs):\n    return inputs['nope']\n")
    view = OnDemandFeatureView.model_validate({"kind": "OnDemandFeatureView", "name": "v", "views": ["tx"], "features": {
        "doubled": {"dtype": "float64", "function": "transforms.py:double"},
        "bad": {"dtype": "float64", "function": "transforms.py:broken"}}})
    tx = FeatureView.model_validate({"kind": "FeatureView", "name": "tx", "entities": ["c"], "source": "s",
                                     "features": {"amount": {"dtype": "float64"}}})
    computation = definition(view, {"featureview.tx": tx}, tmp_path)
    assert computation["features"]["doubled"]["function"]["digest"]
    only_good = {**computation, "features": {"doubled": computation["features"]["doubled"]}}
    whole = compute({"tx.amount": pd.Series([1.0, 2.5, None])}, only_good)["doubled"]
    assert whole.iloc[0] == 2.0 and whole.iloc[1] == 5.0 and pd.isna(whole.iloc[2])
    assert compute_row({"amount": 2.5}, only_good) == {"doubled": 5.0}
    try:
        compute_row({"amount": 2.5}, computation)
    except DerivedFeatureError as exc:
        assert exc.feature == "bad" and "transforms.py:broken raised KeyError" in str(exc)
    else:  # pragma: no cover
        raise AssertionError("no error")
    import pytest

    with pytest.raises(ValueError, match="exactly one of expr"):
        OnDemandFeatureView.model_validate({"kind": "OnDemandFeatureView", "name": "v", "features": {
            "x": {"dtype": "float64", "expr": "1", "function": "t.py:f"}}})
