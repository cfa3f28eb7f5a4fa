"""Spec checks of the serving plugin, run by `ml validate`: a deployment's entity keys must be join keys
of the entities behind its model's features (one wrong character used to deploy a service that answered
every request with 422)."""

from __future__ import annotations

from typing import Iterable, Mapping

from ml_framework.contract import SpecIssue
from ml_framework.errors import did_you_mean

__all__ = ["check_deployments"]


def _join_keys_of_model(model, specs: Mapping[str, object]) -> set[str] | None:
    """The join keys of the entities of the feature views the model reads; None when the specs do not
    say (a view or service defined elsewhere, or a kind this check does not know)."""
    views: list[str] = []
    for ref in model.features:
        view, sep, _ = ref.partition(":")
        if sep:
            views.append(view)
            continue
        service = specs.get(f"featureservice.{ref}")
        if service is None:
            return None
        views.extend(r.partition(":")[0] for r in getattr(service, "features", []) if ":" in r)
    keys: set[str] = set()
    for view in views:
        spec = specs.get(f"featureview.{view}")
        if spec is None:
            return None
        for entity in getattr(spec, "entities", []):
            found = specs.get(f"entity.{entity}")
            if found is None:
                return None
            keys.add(getattr(found, "join_key", entity))
    return keys


def check_deployments(specs: Mapping[str, object]) -> Iterable[SpecIssue]:
    for address, spec in specs.items():
        if getattr(spec, "kind", None) != "Deployment" or not spec.input.entity_keys:
            continue
        model = specs.get("model." + spec.model_name)
        if model is None:
            continue
        keys = _join_keys_of_model(model, specs)
        if keys is None:
            continue
        for i, key in enumerate(spec.input.entity_keys):
            if key not in keys:
                yield SpecIssue(address, f"input.entity_keys.{i}",
                                f"{key!r} is not a join key of the entities behind model {model.name}'s features",
                                did_you_mean(key, sorted(keys)) or f"join keys: {', '.join(sorted(keys)) or 'none'}")
