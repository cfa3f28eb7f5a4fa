"""Settings every drift backend's ``detector`` block shares (pydantic only, nothing heavy).

A backend's own settings model (``AlibiDetectSettings``, ``ScipyDriftSettings``) uses these under the same
field names, so a Monitor moves to another backend by changing ``detector.backend`` alone.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["ReferenceSettings"]


class ReferenceSettings(BaseModel):
    """The data traffic is compared with. Default: the training frame of the deployed model version."""

    model_config = ConfigDict(extra="forbid")

    path: str | None = None  # a parquet/csv/jsonl file (relative to the project) instead of the training frame
    max_rows: int = Field(default=50_000, ge=100)  # larger references are sampled (seeded); the report says so
    seed: int = 0
