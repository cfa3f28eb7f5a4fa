"""The BatchPrediction kind (schema only: pydantic)."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from ml_framework.spec.kinds import NAME_PATTERN, SpecBase, StrictModel


__all__ = ["BatchInput", "BatchPostgres", "BatchOutput", "BatchPrediction"]


# --- batch scoring ------------------------------------------------------------------------------------------

_BATCH_ALIASES = ("candidate", "production", "previous")
_ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"
_SQL_NAME = r"^[A-Za-z_][A-Za-z0-9_]{0,62}(\.[A-Za-z_][A-Za-z0-9_]{0,62})?$"


class BatchInput(StrictModel):
    """The rows to score: a Source (by name) or a parquet/CSV file. ``features``: ``lookup`` joins the
    model version's features point-in-time (as of ``timestamp_field``, by the entity keys) through the
    same path its training used; ``raw``: the feature columns are in the file; ``auto``: raw when every
    feature column is present, else lookup."""

    source: str | None = Field(default=None, pattern=NAME_PATTERN)
    path: str | None = None  # relative to the project directory
    format: Literal["parquet", "csv"] | None = None  # inferred from the file suffix
    timestamp_field: str | None = None  # default: the source's timestamp_field
    features: Literal["auto", "lookup", "raw"] = "auto"

    @model_validator(mode="after")
    def _one_input(self):
        if bool(self.source) == bool(self.path):
            raise ValueError("name exactly one of source (a Source spec) or path (a parquet or CSV file)")
        return self


class BatchPostgres(StrictModel):
    """A PostgreSQL table replaced by every run (in one transaction). The server's URL is read from the
    environment variable ``url_env`` at apply time — never written into specs or state."""

    url_env: str = Field(pattern=_ENV_NAME)
    table: str = Field(pattern=_SQL_NAME)  # "scores" or "schema.scores"

    @model_validator(mode="before")
    @classmethod
    def _no_literal_url(cls, data: Any) -> Any:
        if isinstance(data, dict):
            literal = [name for name in data if str(name).lower() in ("url", "dsn", "password", "connection_string", "uri")]
            if literal:
                for name in literal:  # the error echoes its input: never the secret itself
                    data[name] = "(redacted)"
                raise ValueError(f"do not write database URLs or passwords into specs ({literal[0]!r}): name the "
                                 "environment variable that holds the URL in url_env")
        return data


class BatchOutput(StrictModel):
    """Where predictions go: a parquet file (written to a temporary file, then renamed) and optionally a
    PostgreSQL table. ``columns``: input columns copied next to the predictions (default: every input
    column that is not a model feature)."""

    path: str  # relative to the project directory
    columns: list[str] | None = None
    prediction_column: str = Field(default="prediction", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    postgres: BatchPostgres | None = None


class BatchPrediction(SpecBase):
    kind: Literal["BatchPrediction"]
    model: str  # "fraud" (its production version), "fraud@candidate" or "fraud:v3"
    input: BatchInput
    output: BatchOutput
    backend: str = "batch"
    options: dict[str, Any] = Field(default_factory=dict)

    @field_validator("model")
    @classmethod
    def _model_ref(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_\-]*([@:][A-Za-z0-9_.\-]+)?", value):
            raise ValueError("expected a model name, optionally with @alias or :version")
        if "@" in value and value.split("@", 1)[1] not in _BATCH_ALIASES:
            raise ValueError(f"unknown alias {value.split('@', 1)[1]!r} (aliases: {', '.join(_BATCH_ALIASES)})")
        if ":" in value and not re.fullmatch(r"[vV]?[1-9][0-9]*", value.split(":", 1)[1]):
            raise ValueError("a pinned version looks like fraud:v3")
        return value

    @property
    def model_name(self) -> str:
        return re.split(r"[@:]", self.model)[0]

    def references(self) -> list[tuple[str, str]]:
        refs = [("model", "model." + self.model_name)]
        if self.input.source:
            refs.append(("input.source", f"source.{self.input.source}"))
        return refs
