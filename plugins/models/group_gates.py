"""Gates on groups of the held-out rows — one slice, the worst slice, the gap between slices, and group
fairness — judged with bootstrap confidence intervals, so a small group neither passes nor fails by noise.

    slice(home_country=US).auc >= 0.85         the metric on one segment of a slice column
    worst(home_country).auc >= 0.70            the lowest segment (the highest, for a lower-is-better metric)
    gap(home_country).auc <= 0.10              the largest difference between two segments
    demographic_parity_difference(home_country) <= 0.05     Fairlearn's group-fairness measures (binary:
    equalized_odds_difference(home_country) <= 0.10          predictions thresholded at 0.5); also *_ratio

The column must be one of the Model's ``slices`` (checked at ``ml validate``). Only segments with at least
``min_rows`` held-out rows count (``trainer.slice_min_rows``). Each gate's value comes with a 95 %
percentile-bootstrap interval over the held-out rows (seeded, 200 draws): the gate **passes** when the
whole interval meets the threshold, **fails** when the whole interval misses it, and is **inconclusive**
otherwise — which blocks promotion like a failure, and says that more held-out rows (or a looser
threshold) are needed. Per-group metrics come from Fairlearn's ``MetricFrame``.
"""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass
from typing import Any, Callable, Sequence

__all__ = ["GroupGate", "parse_group_gate", "evaluate_group_gate", "MEASURES", "INCONCLUSIVE", "RESAMPLES"]

INCONCLUSIVE = "inconclusive"
RESAMPLES = 200
MEASURES = ("demographic_parity_difference", "demographic_parity_ratio", "equalized_odds_difference",
            "equalized_odds_ratio")
_OPS = {">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt}
_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_FORM = re.compile(
    rf"^\s*(?P<func>slice|worst|gap|{'|'.join(MEASURES)})\(\s*(?P<column>{_NAME})\s*(?:=\s*(?P<segment>[^)]*?)\s*)?\)"
    rf"(?:\.(?P<metric>{_NAME}))?\s*(?P<op>>=|<=|>|<)\s*(?P<number>{_NUMBER})\s*$")


@dataclass(frozen=True)
class GroupGate:
    text: str
    func: str  # slice | worst | gap | a fairness measure
    column: str
    op: str
    threshold: float
    metric: str | None = None
    segment: str | None = None


def looks_like_group_gate(text: str) -> bool:
    return bool(re.match(rf"^\s*(?:slice|worst|gap|{'|'.join(MEASURES)})\(", text or ""))


def parse_group_gate(text: str, task: str, *, slices: Sequence[str] | None = None) -> GroupGate:
    """Parse and check against the task (and the Model's slice columns, when given): GateError naming
    what is wrong."""
    from .metrics import GateError, check_metric

    found = _FORM.match(text or "")
    if not found:
        raise GateError(f"gate {text!r} is not understood",
                        hint="write e.g. 'gap(home_country).auc <= 0.1', 'worst(home_country).auc >= 0.7', "
                             "'slice(home_country=US).auc >= 0.85' or 'demographic_parity_difference(home_country) <= 0.05'")
    func, column, metric, segment = found["func"], found["column"], found["metric"], found["segment"]
    if func in MEASURES:
        if metric:
            raise GateError(f"gate {text!r}: {func} is a measure of its own; it takes no .{metric}",
                            hint=f"write '{func}({column}) {found['op']} {found['number']}'")
        if task != "binary":
            raise GateError(f"gate {text!r}: {func} fits binary models (it compares predicted-positive rates); "
                            f"this model's task is {task}",
                            hint="for other tasks gate on a metric per group: gap(COLUMN).METRIC or worst(COLUMN).METRIC")
    else:
        if not metric:
            raise GateError(f"gate {text!r}: {func}(...) needs a metric, e.g. {func}({column}"
                            f"{'=' + segment if segment else ''}).auc")
        problem = check_metric(metric, task)
        if problem:
            raise GateError(f"gate {text!r}: {problem}")
        if func == "slice" and not segment:
            raise GateError(f"gate {text!r}: slice(...) names one segment: slice({column}=VALUE).{metric}")
        if func != "slice" and segment:
            raise GateError(f"gate {text!r}: {func}(...) takes a column, not a segment: {func}({column}).{metric}")
    if slices is not None and column not in slices:
        from ml_framework.errors import did_you_mean

        raise GateError(f"gate {text!r}: {column!r} is not among the model's slices ({', '.join(slices) or 'none'})",
                        hint=did_you_mean(column, list(slices)) or f"add {column} to the Model's slices:")
    return GroupGate(text=text.strip(), func=func, column=column, op=found["op"], threshold=float(found["number"]),
                     metric=metric, segment=segment.strip().strip("'\"") if segment else None)


def _segments(groups, min_rows: int):
    """(segment, row mask) of each segment with at least ``min_rows`` rows."""
    import numpy as np

    values, inverse, counts = np.unique(groups, return_inverse=True, return_counts=True)
    for index, (value, count) in enumerate(zip(values, counts)):
        if count >= min_rows:
            yield str(value), inverse == index


def _per_group(metric_fn, y, p, groups, min_rows: int) -> dict[str, float]:
    """The metric on each segment with at least ``min_rows`` rows where it is defined."""
    out = {}
    for value, mask in _segments(groups, min_rows):
        found = metric_fn(y[mask], p[mask])
        if found is not None:
            out[value] = float(found)
    return out


def _rates(y, labels, groups, min_rows: int) -> dict[str, tuple[float, float | None, float | None]]:
    """Per large segment: (selection rate, true-positive rate, false-positive rate)."""
    out = {}
    for value, mask in _segments(groups, min_rows):
        yy, ll = y[mask], labels[mask]
        positives, negatives = yy == 1, yy == 0
        out[value] = (float(ll.mean()), float(ll[positives].mean()) if positives.any() else None,
                           float(ll[negatives].mean()) if negatives.any() else None)
    return out


def _spread(values, ratio: bool) -> float | None:
    values = [v for v in values if v is not None]
    if len(values) < 2:
        return None
    if ratio:
        return min(values) / max(values) if max(values) > 0 else None
    return max(values) - min(values)


def _statistic(gate: GroupGate, task: str, min_rows: int, higher_is_better: bool) -> Callable:
    """values(y, p, groups) -> the gate's value (None when undefined on those rows); numpy, as the
    bootstrap calls it hundreds of times (the point value is Fairlearn's: :func:`_fairlearn_value`)."""
    from .metrics import compute_metrics

    if gate.func in MEASURES:
        ratio = gate.func.endswith("_ratio")

        def fairness(y, p, groups):
            rates = _rates(y, (p >= 0.5).astype("int64"), groups, min_rows)
            if len(rates) < 2:
                return None
            if gate.func.startswith("demographic_parity"):
                return _spread([r[0] for r in rates.values()], ratio)
            tpr, fpr = _spread([r[1] for r in rates.values()], ratio), _spread([r[2] for r in rates.values()], ratio)
            if tpr is None or fpr is None:
                return None
            return min(tpr, fpr) if ratio else max(tpr, fpr)

        return fairness

    def metric_fn(y_true, y_pred):
        return compute_metrics(task, [gate.metric], y_true, y_pred)[gate.metric]

    if gate.func == "slice":
        def one(y, p, groups):
            mask = groups == gate.segment
            return metric_fn(y[mask], p[mask]) if int(mask.sum()) >= min_rows else None
        return one

    def worst(y, p, groups):
        values = _per_group(metric_fn, y, p, groups, min_rows)
        if not values:
            return None
        return min(values.values()) if higher_is_better else max(values.values())

    def gap(y, p, groups):
        values = _per_group(metric_fn, y, p, groups, min_rows)
        return max(values.values()) - min(values.values()) if len(values) >= 2 else None

    return worst if gate.func == "worst" else gap


def _fairlearn_value(gate: GroupGate, task: str, y, p, groups, min_rows: int, higher_is_better: bool):
    """The point value through Fairlearn (MetricFrame per group, or its fairness measure), on the segments
    with at least ``min_rows`` rows."""
    import numpy as np

    from .metrics import compute_metrics

    values, counts = np.unique(groups, return_counts=True)
    keep = np.isin(groups, values[counts >= min_rows])
    if gate.func == "slice" or not keep.any():
        return None
    y, p, groups = y[keep], p[keep], groups[keep]
    if gate.func in MEASURES:
        import fairlearn.metrics as fm

        try:
            found = float(getattr(fm, gate.func)(y.astype("int64"), (p >= 0.5).astype("int64"),
                                                  sensitive_features=groups))
        except (ValueError, ZeroDivisionError):
            return None
        return found if np.isfinite(found) else None
    from fairlearn.metrics import MetricFrame

    def metric(a, b):
        found = compute_metrics(task, [gate.metric], a, b)[gate.metric]
        return np.nan if found is None else found

    by_group = MetricFrame(metrics=metric, y_true=y, y_pred=p, sensitive_features=groups).by_group.dropna()
    if gate.func == "worst":
        return float(by_group.min() if higher_is_better else by_group.max()) if len(by_group) else None
    return float(by_group.max() - by_group.min()) if len(by_group) >= 2 else None


def evaluate_group_gate(gate: GroupGate, task: str, y_valid, predictions, groups, *, min_rows: int = 30,
                        seed: int = 7, resamples: int = RESAMPLES) -> dict[str, Any]:
    """The gate's result as a dict for GateResult: status, value, threshold, interval, detail."""
    import numpy as np

    from .metrics import METRICS

    higher = METRICS[gate.metric].higher_is_better if gate.metric else True
    statistic = _statistic(gate, task, min_rows, higher)
    y = np.asarray(y_valid)
    p = np.asarray(predictions, dtype=np.float64)
    g = np.asarray(["<missing>" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v) for v in groups],
                   dtype=object)
    segment = None if gate.segment is None else str(gate.segment)
    if segment is not None and segment not in set(g):
        return {"status": "failed", "value": None, "threshold": gate.threshold,
                "detail": f"no held-out row has {gate.column}={segment} (segments: "
                          f"{', '.join(sorted(set(g))[:10])})"}
    value = statistic(y, p, g)
    if value is not None and gate.func != "slice":
        official = _fairlearn_value(gate, task, y, p, g, min_rows, higher)
        value = official if official is not None else value
    if value is None:
        return {"status": "skipped", "value": None, "threshold": gate.threshold,
                "detail": f"not defined on the held-out rows: too few rows (< {min_rows}) or one class in "
                          f"the segments of {gate.column}"}
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(resamples):
        pick = rng.integers(0, len(y), len(y))
        found = statistic(y[pick], p[pick], g[pick])
        if found is not None:
            draws.append(found)
    if len(draws) < resamples * 0.8:
        low, high = None, None
    else:
        low, high = float(np.percentile(draws, 2.5)), float(np.percentile(draws, 97.5))
    ok = _OPS[gate.op]
    meets = ok(value, gate.threshold)
    if low is None:
        status, why = "inconclusive", "too few bootstrap draws where it is defined"
    elif ok(low, gate.threshold) and ok(high, gate.threshold):
        status, why = "passed", "the whole 95 % interval meets it"
    elif not ok(low, gate.threshold) and not ok(high, gate.threshold):
        status, why = "failed", "the whole 95 % interval misses it"
    else:
        status, why = INCONCLUSIVE, ("the 95 % interval straddles the threshold: more held-out rows in "
                                     f"{gate.column}'s segments, or a looser threshold, would decide")
    interval = [round(low, 6), round(high, 6)] if low is not None else None
    shown = f"[{low:.4f}, {high:.4f}]" if low is not None else "n/a"
    return {"status": status, "value": round(float(value), 6), "threshold": gate.threshold, "interval": interval,
            "detail": f"{_name(gate)} = {value:.4f} (95 % interval {shown}), needs {gate.op} {gate.threshold:g}: "
                      f"{why}" + ("" if meets == (status != "failed") or status == INCONCLUSIVE else
                                  " (the point value alone says otherwise)")}


def _name(gate: GroupGate) -> str:
    if gate.func in MEASURES:
        return f"{gate.func}({gate.column})"
    inner = f"{gate.column}={gate.segment}" if gate.segment is not None else gate.column
    return f"{gate.func}({inner}).{gate.metric}"
