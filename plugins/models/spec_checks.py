"""Spec checks of the models plugin, run by `ml validate` (``Plugin(checks=...)``): metric names and gates
that fit the model's task, slices listed once — with the file, line and field, before anything trains."""

from __future__ import annotations

from typing import Iterable, Mapping

from ml_framework.contract import SpecIssue
from ml_framework.errors import MLError

__all__ = ["check_models"]


def check_models(specs: Mapping[str, object]) -> Iterable[SpecIssue]:
    from .gates import parse_gate
    from .metrics import check_metric

    for address, spec in specs.items():
        if getattr(spec, "kind", None) != "Model":
            continue
        for i, name in enumerate(spec.metrics):
            problem = check_metric(name, spec.task)
            if problem:
                yield SpecIssue(address, f"metrics.{i}", problem)
        for i, text in enumerate(spec.gates):
            try:
                parse_gate(text, spec.task, slices=spec.slices)
            except MLError as exc:
                yield SpecIssue(address, f"gates.{i}", exc.message, exc.hint)
        seen: set[str] = set()
        for i, column in enumerate(spec.slices):
            if column in seen:
                yield SpecIssue(address, f"slices.{i}", f"slice column {column!r} is listed twice")
            seen.add(column)
