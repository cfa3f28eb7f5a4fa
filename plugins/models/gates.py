"""Quality gates: `auc >= 0.80`, `auc >= production.auc - 0.005`, `slices.auc >= 0.7`.

Grammar (whitespace free)::

    gate   := [slices.]METRIC OP rhs
    OP     := >= | > | <= | <
    rhs    := NUMBER | production.METRIC [(+|-) NUMBER]

Gates are checked on the held-out split. `slices.METRIC` checks every segment of every declared slice
column that holds at least `min_rows` rows and where the metric is defined; smaller segments are
reported as not checked.

A `production.` comparison when the model has no production version yet (its first version, or after
a destroy) is **skipped and reported as such** — it neither passes nor fails the version; the other
gates decide. The same holds when the production version did not record that metric.

Parsing is pure Python (no numpy), so it runs at plan time, before anything is trained.
"""

from __future__ import annotations

import operator
import re
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping


from .metrics import GateError, check_metric

__all__ = ["Gate", "GateResult", "GateError", "parse_gate", "parse_gates", "evaluate_gates", "PASSED",
           "FAILED", "SKIPPED", "INCONCLUSIVE", "BLOCKING"]

PASSED, FAILED, SKIPPED, INCONCLUSIVE = "passed", "failed", "skipped", "inconclusive"  # inconclusive blocks
BLOCKING = (FAILED, INCONCLUSIVE)  # a version with a gate in either state is rejected
_OPS = {">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt}
_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_GATE = re.compile(
    rf"^\s*(?P<slices>slices\.)?(?P<metric>[A-Za-z_][A-Za-z0-9_]*)\s*(?P<op>>=|<=|>|<)\s*"
    rf"(?:(?P<number>{_NUMBER})|production\.(?P<pmetric>[A-Za-z_][A-Za-z0-9_]*)"
    rf"(?:\s*(?P<sign>[-+])\s*(?P<margin>{_NUMBER}))?)\s*$")


@dataclass(frozen=True)
class Gate:
    text: str
    metric: str
    op: str
    threshold: float | None = None  # absolute threshold
    production_metric: str | None = None  # compare with the production version's value of this metric
    margin: float = 0.0  # added to the production value
    per_slice: bool = False


@dataclass(frozen=True)
class GateResult:
    gate: str
    status: str  # passed | failed | skipped
    value: float | None = None
    threshold: float | None = None
    detail: str = ""
    failing_slices: list[dict[str, Any]] = field(default_factory=list)
    interval: list[float] | None = None  # a group gate's 95 % bootstrap interval (group_gates.py)

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v not in (None, "", [])}


def parse_gate(text: str, task: str, known_metrics=None, *, slices=None):
    """A Gate, or a GroupGate for slice(...), worst(...), gap(...) and fairness measures (group_gates.py);
    ``slices``: the Model's slice columns, when known, which a group gate must name."""
    from .group_gates import looks_like_group_gate, parse_group_gate
    from .robustness import looks_like_robust_gate, parse_robust_gate

    if looks_like_group_gate(text):
        return parse_group_gate(text, task, slices=slices)
    if looks_like_robust_gate(text):
        return parse_robust_gate(text, task)
    match = _GATE.match(text or "")
    if not match:
        raise GateError(f"gate {text!r} is not understood",
                        hint="write e.g. 'auc >= 0.80', 'auc >= production.auc - 0.005' or 'slices.auc >= 0.7'")
    for name in filter(None, (match["metric"], match["pmetric"])):
        problem = check_metric(name, task)
        if problem:
            raise GateError(f"gate {text!r}: {problem}")
    margin = float(match["margin"] or 0.0) * (-1 if match["sign"] == "-" else 1)
    return Gate(text=text.strip(), metric=match["metric"], op=match["op"],
                threshold=float(match["number"]) if match["number"] is not None else None,
                production_metric=match["pmetric"], margin=margin, per_slice=bool(match["slices"]))


def parse_gates(texts, task: str, *, slices=None) -> list:
    return [parse_gate(t, task, slices=slices) for t in texts]


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def evaluate_gates(gates, metrics: Mapping[str, float | None], *, slices: Mapping[str, Any] | None = None,
                   production: Mapping[str, Any] | None = None, production_label: str | None = None,
                   min_slice_rows: int = 30, rows: tuple | None = None, seed: int = 7) -> list[GateResult]:
    """`slices`: {column: {segment: {"rows": n, "metrics": {...}}}}. `production`: its metrics or None.
    `rows`: (task, held-out labels, predictions, held-out rows with the slice columns[, robustness]) for group
    and robustness gates; robustness: (predict on raw rows, features, categorical)."""
    from .group_gates import GroupGate, evaluate_group_gate
    from .robustness import RobustGate, evaluate_robust_gate

    results = []
    for gate in gates:
        if isinstance(gate, RobustGate):
            if rows is None or len(rows) < 5:
                results.append(GateResult(gate.text, FAILED, None, gate.threshold,
                                          "no held-out rows to perturb were given"))
                continue
            task, y_valid, _, valid_rows, (predict_raw, features, categorical) = rows
            found = evaluate_robust_gate(gate, task, y_valid, dict(metrics), predict_raw, valid_rows, features,
                                         categorical, seed=seed)
            results.append(GateResult(gate.text, found["status"], found["value"], found["threshold"], found["detail"]))
            continue
        if isinstance(gate, GroupGate):
            if rows is None or gate.column not in getattr(rows[3], "columns", ()):
                results.append(GateResult(gate.text, FAILED, None, gate.threshold,
                                          f"the held-out rows have no column {gate.column!r} to group by"))
                continue
            task, y_valid, predictions, valid_rows = rows[:4]
            found = evaluate_group_gate(gate, task, y_valid, predictions, valid_rows[gate.column].to_numpy(),
                                        min_rows=min_slice_rows, seed=seed)
            results.append(GateResult(gate.text, found["status"], found["value"], found["threshold"],
                                      found["detail"], interval=found.get("interval")))
            continue
        threshold = gate.threshold
        if gate.production_metric is not None:
            if production is None:
                results.append(GateResult(gate.text, SKIPPED, metrics.get(gate.metric), None,
                                          "no production version yet: comparison skipped"))
                continue
            base = production.get(gate.production_metric)
            if base is None:
                results.append(GateResult(gate.text, SKIPPED, metrics.get(gate.metric), None,
                                          f"production {production_label or ''} has no {gate.production_metric}: "
                                          "comparison skipped".replace("  ", " ")))
                continue
            threshold = round(base + gate.margin, 6)
        if gate.per_slice:
            results.append(_slice_gate(gate, threshold, slices or {}, min_slice_rows))
            continue
        value = metrics.get(gate.metric)
        if value is None:
            results.append(GateResult(gate.text, FAILED, None, threshold,
                                      f"{gate.metric} is undefined on the held-out split"))
            continue
        ok = _OPS[gate.op](value, threshold)
        where = f" (production {production_label}: {_fmt(threshold - gate.margin)})" if gate.production_metric else ""
        results.append(GateResult(gate.text, PASSED if ok else FAILED, value, threshold,
                                  f"{gate.metric} = {_fmt(value)}, needs {gate.op} {_fmt(threshold)}{where}"))
    return results


def _slice_gate(gate: Gate, threshold: float, slices: Mapping[str, Any], min_rows: int) -> GateResult:
    if not slices:
        return GateResult(gate.text, SKIPPED, None, threshold, "the model declares no slices: not checked")
    failing, checked, unchecked, worst = [], 0, 0, None
    for column, segments in slices.items():
        for segment, info in segments.items():
            value = (info.get("metrics") or {}).get(gate.metric)
            if info.get("rows", 0) < min_rows or value is None:
                unchecked += 1
                continue
            checked += 1
            if worst is None or (value < worst if gate.op in (">=", ">") else value > worst):
                worst = value
            if not _OPS[gate.op](value, threshold):
                failing.append({"slice": column, "segment": segment, "value": value, "rows": info.get("rows")})
    note = f"{checked} segments checked" + (f", {unchecked} too small or undefined" if unchecked else "")
    if not checked:
        return GateResult(gate.text, SKIPPED, None, threshold, f"no segment large enough to check ({note})")
    if failing:
        names = ", ".join(f"{f['slice']}={f['segment']}: {_fmt(f['value'])}" for f in failing[:5])
        return GateResult(gate.text, FAILED, worst, threshold,
                          f"{len(failing)} of {checked} segments fail {gate.op} {_fmt(threshold)}: {names}"
                          + (f" ({unchecked} too small or undefined, not checked)" if unchecked else ""),
                          failing_slices=failing)
    return GateResult(gate.text, PASSED, worst, threshold, f"worst segment {_fmt(worst)}; {note}")
