"""Settings shared by every trainer backend: the `trainer` block of a Model, minus `backend`.

Only pydantic is imported here: the engine asks for these models at `ml validate`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["TrainerSettings"]


class TrainerSettings(BaseModel):
    """Keys every trainer accepts next to its `params`.

    * ``promote``: ``auto`` (default) — a version that passes its gates becomes ``production`` (the
      gates are the approval, as TFX's blessing); ``manual`` — it becomes ``candidate`` only and
      `ml models promote` moves ``production``.
    * ``data``: where the training frame comes from. ``feast``: Feast's point-in-time
      ``get_historical_features`` over the feature repository; ``parquet``: the same point-in-time join
      done directly on the source files with pandas; ``auto`` (default): ``feast`` when the feature
      views are managed by the feast backend, else ``parquet``.
    * ``categorical``: extra columns to treat as categorical (string columns always are).
    * ``slice_min_rows``: segments of a slice smaller than this are reported but not gated.
    """

    model_config = ConfigDict(extra="forbid")

    promote: Literal["auto", "manual"] = "auto"
    data: Literal["auto", "feast", "parquet"] = "auto"
    categorical: list[str] = Field(default_factory=list)
    slice_min_rows: int = Field(default=30, ge=1)
