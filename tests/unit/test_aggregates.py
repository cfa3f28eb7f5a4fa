"""Windowed aggregations: each value over the window ending at its event (brute force agrees), events of
one time seen together, nulls skipped, incremental refresh equal to a full computation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ml_framework.plugins.features.aggregates import aggregate, events_digest, refresh
from ml_framework.plugins.features.kinds import FeatureView

AGGS = {"s7": {"column": "amount", "function": "sum", "window": "7d"},
        "m7": {"column": "amount", "function": "mean", "window": "7d"},
        "c1": {"function": "count", "window": "1d"},
        "x3": {"column": "amount", "function": "max", "window": "3d"},
        "n3": {"column": "amount", "function": "min", "window": "3d"},
        "last": {"column": "channel", "function": "last", "window": "2d"}}


def events(n=400, seed=1):
    rng = np.random.default_rng(seed)
    amount = rng.lognormal(3, 1, n)
    amount[rng.random(n) < 0.1] = np.nan
    return pd.DataFrame({"customer_id": rng.integers(0, 12, n),
                         "event_ts": pd.Timestamp("2026-01-01", tz="UTC") + pd.to_timedelta(rng.integers(0, 30 * 24, n), unit="h"),
                         "amount": amount, "channel": rng.choice(["web", "pos", None], n)})


def brute(frame, row, window, column, function):
    mine = frame[(frame["customer_id"] == row["customer_id"]) & (frame["event_ts"] <= row["event_ts"])
                 & (frame["event_ts"] > row["event_ts"] - pd.Timedelta(window))]
    values = mine[column] if column else pd.Series(1.0, index=mine.index)
    if function == "count":
        return float(values.notna().sum())
    if function == "last":
        found = mine.sort_values("event_ts", kind="mergesort")[column].dropna()
        return found.iloc[-1] if len(found) else None
    return getattr(values.dropna(), function)() if values.notna().any() else float("nan")


def test_every_value_is_the_aggregate_of_its_window():
    frame = events()
    rows = aggregate(frame, ["customer_id"], "event_ts", AGGS)
    assert len(rows) == len(frame.drop_duplicates(["customer_id", "event_ts"]))
    for _, row in rows.iterrows():
        for name, spec in AGGS.items():
            expected = brute(frame, row, pd.Timedelta(spec["window"].replace("d", "D")), spec.get("column"), spec["function"])
            got = row[name]
            if isinstance(expected, float) and np.isnan(expected):
                assert pd.isna(got), (name, row.to_dict())
            elif spec["function"] == "last":
                if expected is None:
                    assert pd.isna(got)
            else:
                assert got == pytest.approx(expected), (name, row.to_dict(), expected)


def test_new_events_extend_the_rows_exactly_as_a_full_computation():
    frame = events(600, seed=4).sort_values("event_ts", kind="mergesort").reset_index(drop=True)
    early, late = frame.iloc[:500], frame.iloc[500:]
    late = late[late["event_ts"] > early["event_ts"].max()]
    previous = aggregate(early, ["customer_id"], "event_ts", AGGS)
    both = pd.concat([early, late], ignore_index=True)
    extended, recomputed = refresh(both, previous, ["customer_id"], "event_ts", AGGS)
    full = aggregate(both, ["customer_id"], "event_ts", AGGS)
    assert recomputed == len(late.drop_duplicates(["customer_id", "event_ts"])) > 0
    key = ["customer_id", "event_ts"]
    pd.testing.assert_frame_equal(extended.sort_values(key).reset_index(drop=True),
                                  full.sort_values(key).reset_index(drop=True), check_exact=False, rtol=1e-9,
                                  check_dtype=False)  # running sums from another start: last-digit rounding
    until = early["event_ts"].max()
    assert events_digest(early, "event_ts", until) == events_digest(both, "event_ts", until)
    changed = both.copy()
    changed.loc[0, "amount"] = 1e6
    assert events_digest(changed, "event_ts", until) != events_digest(both, "event_ts", until)


def test_a_view_of_aggregations_declares_its_features_from_them():
    view = FeatureView.model_validate({"kind": "FeatureView", "name": "v", "entities": ["c"], "source": "tx",
                                       "aggregations": {"n": {"function": "count", "window": "1h"},
                                                        "m": {"function": "mean", "column": "amount", "window": "7d"}}})
    assert {n: f.dtype for n, f in view.features.items()} == {"n": "int64", "m": "float64"}
    with pytest.raises(ValueError, match="mean needs a column"):
        FeatureView.model_validate({"kind": "FeatureView", "name": "v", "entities": ["c"], "source": "tx",
                                    "aggregations": {"m": {"function": "mean", "window": "7d"}}})
    with pytest.raises(ValueError, match="its features are its aggregations"):
        FeatureView.model_validate({"kind": "FeatureView", "name": "v", "entities": ["c"], "source": "tx",
                                    "features": {"x": {"dtype": "float64"}},
                                    "aggregations": {"n": {"function": "count", "window": "1h"}}})
