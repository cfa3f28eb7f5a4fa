"""Evaluation metrics, computed with numpy on the held-out split (and per slice).

The table `METRICS` is plain data (no numpy at import): the gate parser and `ml validate`-time checks
read it without importing anything heavy. Probabilities for binary tasks are P(label == 1); for
multiclass an (n, k) matrix; for regression the predicted value.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from ml_framework.errors import MLError

__all__ = ["Metric", "METRICS", "DEFAULT_METRICS", "metric_names", "check_metric", "compute_metrics",
           "better"]


@dataclass(frozen=True)
class Metric:
    name: str
    tasks: tuple[str, ...]
    higher_is_better: bool
    description: str


METRICS: dict[str, Metric] = {m.name: m for m in (
    Metric("auc", ("binary",), True, "area under the ROC curve"),
    Metric("logloss", ("binary", "multiclass"), False, "log loss (cross-entropy)"),
    Metric("accuracy", ("binary", "multiclass"), True, "share of correct predictions (threshold 0.5)"),
    Metric("precision", ("binary",), True, "precision of the positive class (threshold 0.5)"),
    Metric("recall", ("binary",), True, "recall of the positive class (threshold 0.5)"),
    Metric("f1", ("binary",), True, "F1 of the positive class (threshold 0.5)"),
    Metric("macro_f1", ("multiclass",), True, "unweighted mean of the per-class F1"),
    Metric("rmse", ("regression",), False, "root mean squared error"),
    Metric("mae", ("regression",), False, "mean absolute error"),
    Metric("r2", ("regression",), True, "coefficient of determination"),
)}

# Computed when a spec lists no metrics; the first is the primary metric (sweeps, early stopping).
DEFAULT_METRICS: dict[str, tuple[str, ...]] = {
    "binary": ("auc", "logloss", "accuracy"),
    "multiclass": ("logloss", "accuracy"),
    "regression": ("rmse", "mae"),
}



class GateError(MLError):
    """A gate that cannot be understood (bad syntax, unknown metric, a group it cannot name)."""


def metric_names(task: str) -> list[str]:
    return [m.name for m in METRICS.values() if task in m.tasks]


def check_metric(name: str, task: str) -> str | None:
    """None if `name` is a metric of `task`, else a message saying why not (with a hint)."""
    from ml_framework.errors import did_you_mean

    metric = METRICS.get(name)
    if metric is None:
        hint = did_you_mean(name, metric_names(task))
        return f"unknown metric {name!r}" + (f" ({hint})" if hint else f"; known for {task}: {', '.join(metric_names(task))}")
    if task not in metric.tasks:
        return f"metric {name!r} is not defined for a {task} model; use one of: {', '.join(metric_names(task))}"
    return None


def better(name: str, a: float, b: float) -> bool:
    """Whether value `a` of metric `name` is strictly better than `b`."""
    return a > b if METRICS[name].higher_is_better else a < b


def compute_metrics(task: str, names, y_true, y_pred) -> dict[str, float | None]:
    """Each metric by name; None where it is undefined (e.g. AUC of a slice holding one class)."""
    import numpy as np

    y = np.asarray(y_true)
    p = np.asarray(y_pred, dtype=np.float64)
    out: dict[str, float | None] = {}
    for name in names:
        value = _FUNCS[name](y, p) if len(y) else None
        out[name] = None if value is None or not np.isfinite(value) else round(float(value), 6)
    return out


# -- implementations ----------------------------------------------------------------------------------
def _auc(y, p):
    import numpy as np

    y = y.astype(np.int64)
    pos = int(y.sum())
    neg = len(y) - pos
    if pos == 0 or neg == 0:
        return None
    # Mann-Whitney U with average ranks for ties.
    order = np.argsort(p, kind="mergesort")
    ranks = np.empty(len(p), dtype=np.float64)
    sorted_p = p[order]
    _, first, counts = np.unique(sorted_p, return_index=True, return_counts=True)
    avg = first + (counts + 1) / 2.0
    ranks[order] = np.repeat(avg, counts)
    return (ranks[y == 1].sum() - pos * (pos + 1) / 2.0) / (pos * neg)


def _logloss(y, p):
    import numpy as np

    eps = 1e-15
    if p.ndim == 2:
        q = np.clip(p[np.arange(len(y)), y.astype(np.int64)], eps, 1.0)
        return float(-np.mean(np.log(q)))
    q = np.clip(p, eps, 1 - eps)
    return float(-np.mean(y * np.log(q) + (1 - y) * np.log(1 - q)))


def _labels(p):
    import numpy as np

    return p.argmax(axis=1) if p.ndim == 2 else (p >= 0.5).astype(np.int64)


def _accuracy(y, p):
    return float((_labels(p) == y.astype(int)).mean())


def _confusion(y, p):
    pred = _labels(p)
    y = y.astype(int)
    tp = int(((pred == 1) & (y == 1)).sum())
    fp = int(((pred == 1) & (y == 0)).sum())
    fn = int(((pred == 0) & (y == 1)).sum())
    return tp, fp, fn


def _precision(y, p):
    tp, fp, _ = _confusion(y, p)
    return tp / (tp + fp) if tp + fp else None


def _recall(y, p):
    tp, _, fn = _confusion(y, p)
    return tp / (tp + fn) if tp + fn else None


def _f1(y, p):
    tp, fp, fn = _confusion(y, p)
    return 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else None


def _macro_f1(y, p):
    import numpy as np

    pred = _labels(p)
    y = y.astype(int)
    scores = []
    for cls in np.unique(np.concatenate([y, pred])):
        tp = int(((pred == cls) & (y == cls)).sum())
        fp = int(((pred == cls) & (y != cls)).sum())
        fn = int(((pred != cls) & (y == cls)).sum())
        scores.append(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0)
    return float(np.mean(scores)) if scores else None


def _rmse(y, p):
    import numpy as np

    return float(np.sqrt(np.mean((y.astype(np.float64) - p) ** 2)))


def _mae(y, p):
    import numpy as np

    return float(np.mean(np.abs(y.astype(np.float64) - p)))


def _r2(y, p):
    import numpy as np

    y = y.astype(np.float64)
    total = float(((y - y.mean()) ** 2).sum())
    return None if total == 0 else 1.0 - float(((y - p) ** 2).sum()) / total


_FUNCS: Mapping[str, Any] = {
    "auc": _auc, "logloss": _logloss, "accuracy": _accuracy, "precision": _precision, "recall": _recall,
    "f1": _f1, "macro_f1": _macro_f1, "rmse": _rmse, "mae": _mae, "r2": _r2,
}


def metric_intervals(task: str, names, y_true, y_pred, *, resamples: int = 100, level: float = 0.95,
                     seed: int = 7, max_rows: int = 20_000) -> dict[str, list[float] | None]:
    """Percentile bootstrap confidence intervals of each metric on the held-out rows: ``resamples`` draws
    with replacement (seeded; a seeded sample of ``max_rows`` first on larger sets). None where a metric
    is undefined on too many draws (a slice with one class)."""
    import numpy as np

    y = np.asarray(y_true)
    p = np.asarray(y_pred, dtype=np.float64)
    rng = np.random.default_rng(seed)
    if len(y) > max_rows:
        keep = rng.choice(len(y), max_rows, replace=False)
        y, p = y[keep], p[keep]
    if len(y) < 2:
        return {name: None for name in names}
    draws: dict[str, list[float]] = {name: [] for name in names}
    for _ in range(resamples):
        pick = rng.integers(0, len(y), len(y))
        for name, value in compute_metrics(task, names, y[pick], p[pick]).items():
            if value is not None:
                draws[name].append(value)
    low, high = (1 - level) / 2 * 100, (1 + level) / 2 * 100
    return {name: ([round(float(np.percentile(v, low)), 6), round(float(np.percentile(v, high)), 6)]
                   if len(v) >= resamples * 0.9 else None) for name, v in draws.items()}
