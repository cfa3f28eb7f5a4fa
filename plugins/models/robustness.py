"""Robustness gates: the metric on the held-out rows under declared perturbations, so a model that collapses
on messy input cannot be promoted.

    robust(noise=0.1).auc >= 0.85            Gaussian noise, 0.1 x each numeric feature's spread, on every value
    robust(missing=0.2).auc >= auc - 0.03    20 % of the values missing (numeric and categorical): relative to the
                                             clean held-out value of the same metric
    robust(unseen=0.1).auc >= 0.85           10 % of the categorical values replaced by a category never seen
    robust(noise=0.1, missing=0.1).logloss <= 0.2   perturbations combine

The perturbed rows go through the same encoding as serving (an unseen category is what a request with one
gets), predicted by the trained version before it is registered. Seeded: the same model and rows give the
same figure. Checked at ``ml validate`` (kinds, fractions in (0, 1], metric fits the task).
"""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass
from typing import Any, Callable

__all__ = ["RobustGate", "looks_like_robust_gate", "parse_robust_gate", "evaluate_robust_gate", "perturb", "KINDS"]

KINDS = ("noise", "missing", "unseen")
_OPS = {">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt}
_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_FORM = re.compile(rf"^\s*robust\((?P<args>[^)]*)\)\.(?P<metric>{_NAME})\s*(?P<op>>=|<=|>|<)\s*"
                   rf"(?:(?P<number>{_NUMBER})|(?P<clean>{_NAME})\s*(?:(?P<sign>[-+])\s*(?P<margin>{_NUMBER}))?)\s*$")
UNSEEN = "__ml_unseen__"


@dataclass(frozen=True)
class RobustGate:
    text: str
    perturbations: tuple[tuple[str, float], ...]
    metric: str
    op: str
    threshold: float | None = None  # absolute
    margin: float | None = None  # relative to the clean value of the metric: clean + margin


def looks_like_robust_gate(text: str) -> bool:
    return bool(re.match(r"^\s*robust\(", text or ""))


def parse_robust_gate(text: str, task: str) -> RobustGate:
    from .metrics import GateError, check_metric

    found = _FORM.match(text or "")
    if not found:
        raise GateError(f"gate {text!r} is not understood",
                        hint="write e.g. 'robust(noise=0.1).auc >= 0.85' or 'robust(missing=0.2).auc >= auc - 0.03'")
    perturbations = []
    for part in filter(None, (p.strip() for p in found["args"].split(","))):
        kind, sep, value = (s.strip() for s in part.partition("="))
        if kind not in KINDS:
            from ml_framework.errors import did_you_mean

            raise GateError(f"gate {text!r}: unknown perturbation {kind!r} (known: {', '.join(KINDS)})",
                            hint=did_you_mean(kind, list(KINDS)))
        try:
            fraction = float(value) if sep else float("nan")
        except ValueError:
            fraction = float("nan")
        if not 0 < fraction <= 1:
            raise GateError(f"gate {text!r}: {kind} needs a fraction in (0, 1], e.g. {kind}=0.1")
        perturbations.append((kind, fraction))
    if not perturbations:
        raise GateError(f"gate {text!r}: robust(...) names at least one perturbation, e.g. robust(noise=0.1)")
    metric = found["metric"]
    for name in filter(None, (metric, found["clean"])):
        problem = check_metric(name, task)
        if problem:
            raise GateError(f"gate {text!r}: {problem}")
    if found["clean"] and found["clean"] != metric:
        raise GateError(f"gate {text!r}: compare {metric} with its clean value: '... >= {metric} - 0.03'")
    margin = None
    if found["clean"]:
        margin = float(found["margin"] or 0.0) * (-1 if found["sign"] == "-" else 1)
    return RobustGate(text=text.strip(), perturbations=tuple(perturbations), metric=metric, op=found["op"],
                      threshold=float(found["number"]) if found["number"] is not None else None, margin=margin)


def perturb(frame, features, categorical: dict[str, list[Any]], perturbations, *, seed: int = 7):
    """A copy of ``frame`` (raw feature values, as a request carries them) with the perturbations applied."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    out = frame[list(features)].copy()
    numeric = [c for c in features if c not in categorical and pd.api.types.is_numeric_dtype(out[c])]
    for kind, fraction in perturbations:
        if kind == "noise":
            for column in numeric:
                values = out[column].astype("float64")
                spread = float(values.std(skipna=True) or 0.0)
                out[column] = values + rng.normal(0.0, fraction * spread, len(values))
        elif kind == "missing":
            for column in features:
                hit = rng.random(len(out)) < fraction
                out[column] = out[column].astype("float64" if column in numeric else "object").mask(hit)
        elif kind == "unseen":
            for column in categorical:
                hit = rng.random(len(out)) < fraction
                out[column] = out[column].astype("object").mask(hit, UNSEEN)
    return out


def evaluate_robust_gate(gate: RobustGate, task: str, y_valid, clean: dict, predict_raw: Callable, valid_rows,
                         features, categorical, *, seed: int = 7) -> dict[str, Any]:
    """The gate's result (a dict for GateResult): the metric on the perturbed rows against its threshold."""
    from .metrics import compute_metrics

    perturbed = perturb(valid_rows, features, categorical, gate.perturbations, seed=seed)
    value = compute_metrics(task, [gate.metric], y_valid, predict_raw(perturbed))[gate.metric]
    base = clean.get(gate.metric)
    threshold = gate.threshold if gate.threshold is not None else (None if base is None else round(base + gate.margin, 6))
    what = ", ".join(f"{k}={v:g}" for k, v in gate.perturbations)
    if value is None or threshold is None:
        return {"status": "failed", "value": value, "threshold": threshold,
                "detail": f"{gate.metric} under {what} is undefined on the held-out rows"}
    ok = _OPS[gate.op](value, threshold)
    return {"status": "passed" if ok else "failed", "value": round(float(value), 6), "threshold": threshold,
            "detail": f"{gate.metric} under {what} = {value:.4f} (clean {base:.4f}), needs {gate.op} {threshold:.4f}"}
