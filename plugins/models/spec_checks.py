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
                parse_gate(text, spec.task)
            except MLError as exc:
                yield SpecIssue(address, f"gates.{i}", exc.message, exc.hint)
        seen: set[str] = set()
        for i, column in enumerate(spec.slices):
            if column in seen:
                yield SpecIssue(address, f"slices.{i}", f"slice column {column!r} is listed twice")
            seen.add(column)
        yield from _label_and_slices(address, spec, specs)


def _declared_features(model, specs: Mapping[str, object]) -> set[str] | None:
    """The feature columns the model's references name, when the specs say (None otherwise)."""
    names: set[str] = set()
    refs = list(model.features)
    for ref in list(refs):
        if ":" not in ref:
            service = specs.get(f"featureservice.{ref}")
            if service is None:
                return None
            refs.extend(getattr(service, "features", []))
    for ref in refs:
        view, sep, feature = ref.partition(":")
        if not sep:
            continue
        found = specs.get(f"featureview.{view}")
        if found is None:
            return None
        names.update(getattr(found, "features", {}) if feature == "*" else [feature])
    return names


def _label_and_slices(address: str, model, specs: Mapping[str, object]) -> Iterable[SpecIssue]:
    """With a label Source that declares its columns: the label column must be one, and each slice must
    be a feature of the model or one of those columns."""
    from ml_framework.errors import did_you_mean

    source = specs.get(f"source.{model.label.source}")
    columns = dict(getattr(source, "columns", None) or {})
    if not columns:
        return  # undeclared columns: the data says, at plan
    known = set(columns) | {getattr(source, "timestamp_field", "")}
    if model.label.column not in known:
        yield SpecIssue(address, "label.column", f"label column {model.label.column!r} is not a column source "
                        f"{model.label.source} declares", did_you_mean(model.label.column, sorted(known))
                        or f"its columns: {', '.join(sorted(columns))}")
    features = _declared_features(model, specs)
    if features is None:
        return
    for i, column in enumerate(model.slices):
        if column not in features and column not in known:
            yield SpecIssue(address, f"slices.{i}", f"slice column {column!r} is neither a feature of the model nor a "
                            f"column of source {model.label.source}",
                            did_you_mean(column, sorted(features | known)) or None)
