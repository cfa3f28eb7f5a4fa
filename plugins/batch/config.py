"""Settings of the batch backend: the ``options`` block of a BatchPrediction. Only pydantic is imported."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["BatchSettings", "DEFAULT_CHUNK_ROWS"]

DEFAULT_CHUNK_ROWS = 100_000


class BatchSettings(BaseModel):
    """``chunk_rows``: rows read, scored and written at a time (memory stays bounded by it, plus the
    feature tables a lookup joins against). ``compression``: the parquet codec. ``route``: how a lookup
    joins the features — ``training`` (default): the route the model version was trained through (Feast's
    ``get_historical_features`` or the direct parquet join); ``parquet`` / ``feast``: that route regardless.
    Both routes give the same values (checked by the tests); the parquet join is much faster on large
    inputs than Feast's local retrieval."""

    model_config = ConfigDict(extra="forbid")

    chunk_rows: int = Field(default=DEFAULT_CHUNK_ROWS, ge=1, le=10_000_000)
    compression: Literal["snappy", "zstd", "gzip", "none"] = "snappy"
    route: Literal["training", "parquet", "feast"] = "training"
