"""The `trainer` block of a PyTorch Model: a tabular MLP and how to train it."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ml_framework.plugins.models.config import TrainerSettings

__all__ = ["TorchParams", "TorchSettings"]


class TorchParams(BaseModel):
    """``params`` of the torch trainer.

    * ``layers``: hidden layer widths, e.g. ``[64, 32]`` (ReLU, then dropout, after each).
    * ``dropout``, ``epochs``, ``batch_size``, ``learning_rate`` (Adam), ``weight_decay``.
    * ``patience``: stop when the validation loss has not improved for this many epochs and keep the
      best epoch's weights (``null``: run every epoch, keep the last).
    * ``seed``: seeds weights, dropout and batch order (default: ``split.seed``). With the same data
      and seed on CPU the metrics are identical run to run (deterministic algorithms are enforced
      during training).
    * ``device``: ``auto`` (CUDA when present), ``cpu`` or ``cuda``.
    * ``num_threads``: CPU threads for training (default: PyTorch's).
    """

    model_config = ConfigDict(extra="forbid")

    layers: list[int] = Field(default_factory=lambda: [64, 32])
    dropout: float = Field(default=0.1, ge=0, lt=1)
    epochs: int = Field(default=20, ge=1)
    batch_size: int = Field(default=256, ge=1)
    learning_rate: float = Field(default=1e-3, gt=0)
    weight_decay: float = Field(default=0.0, ge=0)
    patience: int | None = Field(default=5, ge=1)
    seed: int | None = None
    device: Literal["auto", "cpu", "cuda"] = "auto"
    num_threads: int | None = Field(default=None, ge=1)

    @field_validator("layers")
    @classmethod
    def _widths(cls, value: list[int]) -> list[int]:
        if any(w < 1 for w in value):
            raise ValueError("layer widths must be at least 1")
        return value


class TorchSettings(TrainerSettings):
    """``trainer: {backend: torch, params: {...}, promote, data, categorical, slice_min_rows}``."""

    params: TorchParams = Field(default_factory=TorchParams)
