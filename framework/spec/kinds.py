"""The resource envelope: what the engine knows of every spec kind, whichever plugin contributed it.

A kind's schema subclasses :class:`SpecBase` (kind, name, description, labels) and names the field that
holds its backend (``backend_field``): the core validates everything else with the schema and hands that
block, minus ``backend``, to the owning provider's config model (two-phase validation). Unknown fields
are rejected by :class:`StrictModel`. The kinds themselves are contributions (``Plugin(kinds=...)``),
collected in a :class:`ml_framework.spec.catalog.KindCatalog`.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "SpecBase",
    "StrictModel",
    "BackendBlock",
    "NAME_PATTERN",
    "DURATION_PATTERN",
    "NON_BEHAVIOURAL",
    "parse_duration",
]

NAME_PATTERN = r"^[A-Za-z][A-Za-z0-9_\-]*$"
DURATION_PATTERN = r"^\d+(s|m|h|d|w)$"
# Fields that describe a resource without changing what it does: never trigger a change.
NON_BEHAVIOURAL = frozenset({"description", "labels"})

_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> int:
    """'7d' -> seconds."""
    match = re.fullmatch(r"(\d+)([smhdw])", text)
    if not match:
        raise ValueError(f"not a duration: {text!r} (use e.g. 30s, 15m, 6h, 7d, 2w)")
    return int(match.group(1)) * _DURATION_UNITS[match.group(2)]


class StrictModel(BaseModel):
    """A spec block that rejects unknown fields (so typos are errors, with a did-you-mean)."""

    model_config = ConfigDict(extra="forbid", frozen=False)


class BackendBlock(BaseModel):
    """A block that names its backend; the remaining keys belong to the backend's config model."""

    model_config = ConfigDict(extra="allow")
    backend: str


class SpecBase(StrictModel):
    kind: str
    name: str = Field(pattern=NAME_PATTERN)
    description: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)

    # The field that names the backend: a block (``trainer: {backend: lightgbm, ...}``) or a top-level
    # ``backend`` string whose settings live under ``options``.
    backend_field: ClassVar[str] = "backend"
    default_backend: ClassVar[str | None] = None
    # Top-level fields whose changes concern this resource alone (e.g. a data check's threshold): changing
    # one re-applies the resource, and what depends on it sees no change (no retrain, no new rollout).
    local_fields: ClassVar[frozenset[str]] = frozenset()

    @property
    def address(self) -> str:
        return f"{self.kind.lower()}.{self.name}"

    def backend_name(self) -> str:
        value = getattr(self, self.backend_field)
        return value.backend if isinstance(value, BackendBlock) else value

    def backend_settings(self) -> dict[str, Any]:
        """The keys the backend's config model validates (location prefix: ``settings_path()``)."""
        value = getattr(self, self.backend_field)
        if isinstance(value, BackendBlock):
            return dict(value.model_extra or {})
        return dict(getattr(self, "options", {}) or {})

    def settings_path(self) -> tuple[str, ...]:
        value = getattr(self, self.backend_field)
        return (self.backend_field,) if isinstance(value, BackendBlock) else ("options",)

    def references(self) -> list[tuple[str, str]]:
        """(field path, target address) for references the schema computes itself (beyond the fields
        its Kind declares in ``references``)."""
        return []
