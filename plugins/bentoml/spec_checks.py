"""Spec checks of the bentoml backend, run by `ml validate`: two deployments cannot listen on one port of
one host (the second apply would fail after the first one's rollout)."""

from __future__ import annotations

from typing import Iterable, Mapping

from pydantic import ValidationError

from ml_framework.contract import SpecIssue

from .config import BentoMLSettings

__all__ = ["check_ports"]


def check_ports(specs: Mapping[str, object]) -> Iterable[SpecIssue]:
    taken: dict[tuple[str, int], str] = {}
    for address, spec in sorted(specs.items()):
        if getattr(spec, "kind", None) != "Deployment" or spec.backend_name() != "bentoml":
            continue
        try:
            settings = BentoMLSettings.model_validate(spec.backend_settings())
        except ValidationError:
            continue  # the backend's settings model reports it, with its line
        host, port = settings.host, settings.port
        first = taken.setdefault((host, port), address)
        if first != address:
            yield SpecIssue(address, "serving.port", f"port {port} on {host} is already taken by {first}",
                            hint="give each deployment its own serving.port")
