"""The Model kind (schema only: pydantic). Trainer backends (lightgbm, torch) validate its ``trainer`` block."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from ml_framework.spec.kinds import BackendBlock, SpecBase, StrictModel

from ..features.kinds import feature_ref_targets


__all__ = ["LabelSpec", "SplitSpec", "Model"]


class LabelSpec(StrictModel):
    source: str
    column: str
    timestamp_field: str | None = None


class SplitSpec(StrictModel):
    by: Literal["time", "random"] = "time"
    valid: float = Field(default=0.2, gt=0, lt=1)
    seed: int = 0


class ModelCardText(StrictModel):
    """What only people can say about a model, for its card (``ml models card``): recorded with each
    version at registration; editing it never retrains (the next version's card carries the new text)."""

    intended_use: str | None = None
    out_of_scope: list[str] = Field(default_factory=list)
    limitations: list[str] = Field(default_factory=list)
    ethical_considerations: list[str] = Field(default_factory=list)
    owners: list[str] = Field(default_factory=list)


class Model(SpecBase):
    kind: Literal["Model"]
    task: Literal["binary", "multiclass", "regression"]
    label: LabelSpec
    features: list[str] = Field(min_length=1)
    split: SplitSpec = Field(default_factory=SplitSpec)
    trainer: BackendBlock
    metrics: list[str] = Field(default_factory=list)
    gates: list[str] = Field(default_factory=list)
    slices: list[str] = Field(default_factory=list)
    card: ModelCardText | None = None  # text for the model card; not behaviour (no retrain)
    backend_field: ClassVar[str] = "trainer"
    non_behavioural: ClassVar[frozenset[str]] = frozenset({"card"})

    def references(self) -> list[tuple[str, str]]:
        return [("label.source", f"source.{self.label.source}")] + feature_ref_targets("features", self.features)
