"""Synthetic populations and logged windows shared by the drift backends' unit tests (alibi-detect in
test_monitor_drift.py, scipy-drift in test_scipy_drift.py): the same data, so the backends are judged alike."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ml_framework.plugins.monitoring.logcache import Categories, LogColumns

__all__ = ["FEATURES", "population", "score", "window"]

FEATURES = ["a", "b", "c", "d", "seg"]


def population(n: int, seed: int, *, shift: dict | None = None, seg_p=(0.5, 0.3, 0.2)) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "a": rng.normal(0, 1, n), "b": rng.exponential(2.0, n), "c": rng.normal(5, 2, n),
        "d": rng.poisson(4, n).astype("int64"), "seg": rng.choice(["x", "y", "z"], n, p=list(seg_p)),
    })
    for column, delta in (shift or {}).items():
        frame[column] = frame[column] + delta
    return frame


def score(frame: pd.DataFrame) -> np.ndarray:
    return 1 / (1 + np.exp(-(frame["a"].to_numpy() + 0.3 * frame["c"].to_numpy() - 1.5)))


def window(frame: pd.DataFrame, predictions=None) -> LogColumns:
    cols = {}
    for name in frame.columns:
        values = frame[name].to_numpy()
        if values.dtype.kind in "OU":
            vocab, codes = np.unique(values.astype(str), return_inverse=True)
            cols["f:" + name] = Categories(codes.astype(np.int32), vocab)
        else:
            cols["f:" + name] = values.astype(np.float64)
    n = len(frame)
    cols["prediction"] = np.asarray(predictions if predictions is not None else score(frame), dtype=np.float64)
    cols["prediction_class"] = np.full(n, -1)
    return LogColumns(cols, n)
