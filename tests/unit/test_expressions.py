"""The expression language of derived features: checked before anything runs, the same values for a
training frame and a one-row request, declared behaviour for nulls and division by zero, and nothing
outside the language ever evaluated."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from ml_framework.plugins.features.expressions import ExpressionError, compile_expression

INPUTS = {"amount": "number", "stats.amount_mean_7d": "number", "event_ts": "timestamp",
          "merchant_category": "string", "txn_count_7d": "number"}
COLUMNS = {
    "amount": pd.Series([10.0, 5.0, None, 3.0]),
    "stats.amount_mean_7d": pd.Series([5.0, 0.0, 2.0, None]),
    "event_ts": pd.Series(pd.to_datetime(["2026-01-01T03:00Z", "2026-01-02T23:30Z", None, "2026-01-04T00:00Z"])),
    "merchant_category": pd.Series(["jewelry", "grocery", None, "electronics"]),
    "txn_count_7d": pd.Series([12, None, 3, 10]),
}


def values(text):
    return compile_expression(text, INPUTS).evaluate(COLUMNS).tolist()


def same(a, b):
    return all((isinstance(x, float) and math.isnan(x) and isinstance(y, float) and math.isnan(y)) or x == y
               for x, y in zip(a, b, strict=True))


@pytest.mark.parametrize("text, expected", [
    ("amount / stats.amount_mean_7d", [2.0, float("nan"), float("nan"), float("nan")]),  # /0 and nulls: null
    ("log1p(clip(amount, 0, None))", [math.log1p(10), math.log1p(5), float("nan"), math.log1p(3)]),
    ("hour(event_ts)", [3.0, 23.0, float("nan"), 0.0]),
    ("dayofweek(event_ts)", [3.0, 4.0, float("nan"), 6.0]),
    ("1 if merchant_category in ['jewelry', 'electronics'] else 0", [1.0, 0.0, 0.0, 1.0]),
    ("coalesce(txn_count_7d, 0) >= 10", [True, False, False, True]),
    ("isnull(amount)", [False, False, True, False]),
    ("bucket(amount, [0, 5, 10])", [3.0, 2.0, float("nan"), 1.0]),
    ("amount > 4 and merchant_category == 'jewelry'", [True, False, False, False]),  # null compares false
    ("log(amount - 5)", [math.log(5), float("nan"), float("nan"), float("nan")]),
    ("seconds_between(event_ts, event_ts)", [0.0, 0.0, float("nan"), 0.0]),
    ("3", [3.0, 3.0, 3.0, 3.0]),
])
def test_values_on_a_frame(text, expected):
    assert same(values(text), expected)


@pytest.mark.parametrize("text", ["amount / stats.amount_mean_7d", "hour(event_ts)", "coalesce(txn_count_7d, 0) >= 10",
                                  "1 if merchant_category in ['jewelry'] else 0", "round(amount * 1.5, 1)"])
def test_one_row_gives_what_the_frame_gives_for_that_row(text):
    """What a request computes (a column of one) is what training computed for the same inputs."""
    expression = compile_expression(text, INPUTS)
    whole = expression.evaluate(COLUMNS).tolist()
    for row in range(4):
        one = expression.evaluate({k: [v.iloc[row]] for k, v in COLUMNS.items()}).tolist()
        assert same(one, [whole[row]]), (row, one, whole[row])


@pytest.mark.parametrize("text, message", [
    ("amonut + 1", "unknown name 'amonut' (at character 1"),
    ("amount + merchant_category", "arithmetic needs numbers, got a string (at character 10"),
    ("__import__('os').system('x')", "call functions by name"),
    ("open('/etc/passwd')", "unknown function 'open'"),
    ("amount.__class__", "unknown name 'amount.__class__'"),
    ("(lambda: 1)()", "call functions by name"),
    ("[x for x in amount]", "listcomp is not part of the expression language"),
    ("amount[0]", "subscript is not part of the expression language"),
    ("clip(amount, 'a')", "argument 2 of clip() must be a number, got a string"),
    ("hour(amount)", "argument 1 of hour() must be a timestamp, got a number"),
    ("amount if txn_count_7d else merchant_category", "both branches must have one type"),
    ("merchant_category in 'jewelry'", "`in` needs a list of literals"),
    ("amount > 'x'", "cannot compare a number with a string"),
    ("x = 1", "not a valid expression"),
    ("[1, 2]", "gives no value per row"),
    ("", "non-empty"),
])
def test_mistakes_are_named_before_anything_runs(text, message):
    with pytest.raises(ExpressionError) as caught:
        compile_expression(text, INPUTS)
    assert message in str(caught.value)


def test_unknown_names_suggest_the_closest_input():
    with pytest.raises(ExpressionError) as caught:
        compile_expression("stats.amount_mean_7 * 2", INPUTS)
    assert "did you mean 'stats.amount_mean_7d'" in str(caught.value)


def test_the_inputs_an_expression_reads_are_known_in_order():
    expression = compile_expression("amount / coalesce(stats.amount_mean_7d, amount)", INPUTS)
    assert expression.inputs == ("amount", "stats.amount_mean_7d") and expression.type == "number"


def test_numpy_arrays_and_lists_are_read_like_series():
    expression = compile_expression("amount * 2", INPUTS)
    assert expression.evaluate({"amount": np.array([1.0, 2.0])}).tolist() == [2.0, 4.0]
    assert expression.evaluate({"amount": [1, None]}).tolist()[0] == 2.0
