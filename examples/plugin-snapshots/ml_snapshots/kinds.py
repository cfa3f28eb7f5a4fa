"""The DataSnapshot spec (pydantic, on the envelope the ml core provides)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from ml_framework.spec.kinds import NAME_PATTERN, SpecBase

__all__ = ["DataSnapshot"]


class DataSnapshot(SpecBase):
    """A versioned copy of one data file: ``path`` (relative to the project) or ``source`` (a Source spec's
    name, whose file is copied). ``keep``: how many versions stay on disk."""

    kind: Literal["DataSnapshot"]
    path: str | None = None
    source: str | None = Field(default=None, pattern=NAME_PATTERN)
    keep: int = Field(default=3, ge=1, le=100)
    backend: str = "files"
    options: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_input(self):
        if bool(self.path) == bool(self.source):
            raise ValueError("name exactly one of path (a file) or source (a Source spec)")
        return self
