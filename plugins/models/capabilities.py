"""Capabilities of trainer backends beyond the provider contract (declared by the models plugin)."""

from __future__ import annotations

from typing import Any, Mapping, Protocol

from ml_framework.contract import ApplyContext, ApplyRequest, Capability

__all__ = ["TrainsCandidates", "TRAIN_CANDIDATE"]


class TrainsCandidates(Protocol):
    """Train and record one candidate of a sweep: no alias moves, gates recorded rather than raised.
    Returns the registry's ModelVersion (`ml models sweep`)."""

    def train_candidate(self, request: ApplyRequest, ctx: ApplyContext, sweep: Mapping[str, Any]) -> Any: ...


TRAIN_CANDIDATE = Capability("train_candidate", TrainsCandidates, "trains sweep candidates (ml models sweep)")
