"""Training data: resolving a Model's inputs, the point-in-time join on parquet files, label checks, splits."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ml_framework.plugins.models.data import ModelDataError, load_frame, resolve_inputs
from ml_framework.plugins.models.prepare import MIN_SPLIT_ROWS, prepare

T0 = pd.Timestamp("2024-01-01", tz="UTC")

RECORDED = {
    "source.labels": {"path": "labels.parquet", "timestamp_field": "event_ts"},
    "source.daily": {"path": "daily.parquet", "timestamp_field": "event_ts"},
    "entity.customer": {"join_keys": ["customer_id"]},
    "featureview.stats": {"entities": ["customer"], "source": "daily", "ttl": "2d",
                          "features": {"spend": {"dtype": "float64"}, "tier": {"dtype": "string"}}},
    "featureview.other": {"entities": ["customer"], "source": {"path": "other.parquet", "timestamp_field": "ts"},
                          "features": {"spend": {"dtype": "float64"}}},
    "featureservice.svc": {"features": ["stats:*"]},
}


def lookup(address):
    return (RECORDED[address], "files") if address in RECORDED else None


def model(features=("stats:*",), column="y", **extra):
    return {"name": "m", "label": {"source": "labels", "column": column}, "features": list(features), **extra}


def test_refs_services_and_name_collisions_resolve_to_columns():
    data = resolve_inputs(model(["svc", "other:spend"]), lookup)
    assert data.feature_refs == ["stats:spend", "stats:tier", "other:spend"]  # '*' expands in sorted order
    assert data.feature_columns == ["stats__spend", "tier", "other__spend"]  # 'spend' exists twice
    assert data.join_keys == ["customer_id"] and data.views[0].ttl_seconds == 2 * 86400
    assert set(data.files()) == {"labels.parquet", "daily.parquet", "other.parquet"}


def test_unknown_feature_and_unrecorded_upstream_are_explained():
    with pytest.raises(ModelDataError, match="has no feature 'spnd'") as err:
        resolve_inputs(model(["stats:spnd"]), lookup)
    assert "did you mean 'spend'" in str(err.value)
    with pytest.raises(ModelDataError, match="featureview.nope .* is not recorded in state"):
        resolve_inputs(model(["nope:x"]), lookup)


@pytest.fixture
def files(tmp_path):
    daily = pd.DataFrame({
        "customer_id": [1, 1, 1, 2],
        "event_ts": [T0, T0 + pd.Timedelta(days=1), T0 + pd.Timedelta(days=5), T0],
        "spend": [10.0, 11.0, 99.0, 20.0],
        "tier": ["a", "b", "c", "a"],
    })
    labels = pd.DataFrame({
        "customer_id": [1, 1, 1, 2, 3],
        "event_ts": [T0 + pd.Timedelta(hours=12), T0 + pd.Timedelta(days=1), T0 + pd.Timedelta(days=4),
                     T0 + pd.Timedelta(days=1), T0],
        "channel": ["web", "pos", "web", "pos", "web"],
        "y": [0, 1, 0, 1, 0],
    })
    daily.to_parquet(tmp_path / "daily.parquet")
    labels.to_parquet(tmp_path / "labels.parquet")
    return tmp_path


def test_point_in_time_join_takes_the_newest_row_not_after_the_label_and_within_ttl(files):
    frame = load_frame(resolve_inputs(model(), lookup), files, slices=["channel"])
    df = frame.df
    assert list(df["y"]) == [0, 1, 0, 1, 0]  # the label source's row order
    # 12h after the first row -> 10; exactly at day 1 -> the day-1 row (<=); day 4 -> day-1 row is
    # 3 days old, beyond the 2d ttl -> missing (never the day-5 row from the future).
    assert df["spend"].tolist()[:2] == [10.0, 11.0] and np.isnan(df["spend"][2])
    assert df["tier"].tolist()[:2] == ["a", "b"]
    assert df["spend"][3] == 20.0 and np.isnan(df["spend"][4])  # customer 3 has no features at all
    assert "channel" in df.columns and frame.slices == ["channel"]


def test_missing_columns_are_reported_with_what_exists(files):
    with pytest.raises(ModelDataError, match="label column 'label' is not in source.labels") as err:
        load_frame(resolve_inputs(model(column="label"), lookup), files)
    assert "its columns:" in str(err.value)
    with pytest.raises(ModelDataError, match="slice column 'region'"):
        load_frame(resolve_inputs(model(), lookup), files, slices=["region"])
    (files / "daily.parquet").unlink()
    with pytest.raises(ModelDataError, match="data file daily.parquet does not exist"):
        load_frame(resolve_inputs(model(), lookup), files)


# -- labels and splits ----------------------------------------------------------------------------------
class _Frame:
    def __init__(self, df, label="y"):
        self.df, self.label, self.timestamp, self.features, self.slices = df, label, "ts", ["x", "c"], []


def frame(n=100, y=None, seed=0):
    rng = np.random.default_rng(seed)
    return _Frame(pd.DataFrame({
        "ts": T0 + pd.to_timedelta(rng.permutation(n), unit="h"),
        "x": rng.normal(size=n),
        "c": rng.choice(["u", "v"], n),
        "y": rng.integers(0, 2, n) if y is None else y,
    }))


def test_time_split_holds_out_the_newest_rows_and_random_split_is_seeded():
    f = frame()
    p = prepare(f, "binary", by="time", valid=0.2, seed=1)
    assert p.rows == {"total": 100, "train": 80, "valid": 20}
    newest = f.df.sort_values("ts")["x"].to_numpy()[-20:]
    assert sorted(p.X_valid["x"]) == sorted(newest)
    a = prepare(f, "binary", by="random", valid=0.2, seed=3)
    b = prepare(f, "binary", by="random", valid=0.2, seed=3)
    c = prepare(f, "binary", by="random", valid=0.2, seed=4)
    assert a.X_valid["x"].tolist() == b.X_valid["x"].tolist() != c.X_valid["x"].tolist()
    assert p.categorical == {"c": ["u", "v"]} and str(p.X_train["c"].dtype) == "category"


@pytest.mark.parametrize("labels, message", [
    ([np.nan] * 3 + [0, 1] * 48 + [1], "3 of 100 labels in column 'y' are missing"),
    (["yes", "no"] * 50, "non-numeric values (e.g. 'yes', 'no')"),
    ([0, 1, 2, 3] * 25, "must be 0 or 1; found 0, 1, 2, 3"),
])
def test_bad_labels(labels, message):
    with pytest.raises(ModelDataError) as err:
        prepare(frame(y=labels), "binary", by="time", valid=0.2, seed=0)
    assert message in str(err.value)


def test_a_single_class_in_the_training_split_is_refused():
    f = frame()
    f.df["y"] = (f.df["ts"] >= f.df["ts"].sort_values().iloc[80]).astype(int)  # positives only in the newest rows
    with pytest.raises(ModelDataError, match="the training split holds a single class") as err:
        prepare(f, "binary", by="time", valid=0.2, seed=0)
    assert "split.by: random" in str(err.value)


def test_too_few_rows_for_the_split():
    with pytest.raises(ModelDataError, match="too few rows for the split: 30 labelled rows give 24 to train and 6"):
        prepare(frame(n=30), "binary", by="random", valid=0.2, seed=0)
    assert MIN_SPLIT_ROWS == 10


def test_multiclass_labels_map_to_class_ids_and_regression_rejects_text():
    f = frame(y=[3, 5, 9, 5] * 25)
    p = prepare(f, "multiclass", by="random", valid=0.2, seed=0)
    assert p.classes == [3, 5, 9] and set(p.y_train) == {0, 1, 2}
    with pytest.raises(ModelDataError, match="a regression model needs numbers"):
        prepare(frame(y=["a"] * 100), "regression", by="time", valid=0.2, seed=0)


def test_multiclass_labels_may_be_class_names():
    f = frame(y=["low", "high", "medium", "high"] * 25)
    p = prepare(f, "multiclass", by="random", valid=0.2, seed=0)
    assert p.classes == ["high", "low", "medium"] and set(p.y_train) | set(p.y_valid) == {0, 1, 2}
    ids = list(p.y_train) + list(p.y_valid)
    assert (ids.count(0), ids.count(1), ids.count(2)) == (50, 25, 25)  # high x50, low x25, medium x25
    with pytest.raises(ModelDataError, match="binary model needs 0/1"):
        prepare(frame(y=["yes", "no"] * 50), "binary", by="random", valid=0.2, seed=0)
