"""Checks of a Model spec that need the trainer's knowledge (metric names, gate grammar).

They run at plan time (the provider's fingerprint hook), before anything is trained, so a gate naming
an unknown metric fails `ml plan` with the model's address instead of an hour into training.
"""

from __future__ import annotations

from ml_framework.errors import MLError

from .gates import parse_gates
from .metrics import DEFAULT_METRICS, check_metric

__all__ = ["check_model_spec", "metric_list", "primary_metric"]


def metric_list(spec) -> list[str]:
    """The metrics to compute: the spec's (or the task's defaults), plus any a gate names."""
    names = list(spec.metrics or DEFAULT_METRICS[spec.task])
    for gate in parse_gates(spec.gates, spec.task):
        for name in (getattr(gate, "metric", None), getattr(gate, "production_metric", None)):
            if name and name not in names:
                names.append(name)
    return names


def primary_metric(spec) -> str:
    return (spec.metrics or DEFAULT_METRICS[spec.task])[0]


def check_model_spec(spec) -> None:
    for name in spec.metrics:
        problem = check_metric(name, spec.task)
        if problem:
            raise MLError(f"metrics: {problem}")
    parse_gates(spec.gates, spec.task, slices=spec.slices)
    if len(set(spec.slices)) != len(spec.slices):
        raise MLError("slices: a column is listed twice")
