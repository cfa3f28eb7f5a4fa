"""JSON Schema of spec documents, for editor completion (yaml-language-server, VS Code)."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

_ADDRESS = r"^[a-z][a-z0-9_]*\.[A-Za-z0-9_.-]+$"


class Moved(BaseModel):
    """Renames a resource without rebuilding it: the one recorded as ``from`` is now ``to``."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    kind: Literal["Moved"]
    from_: str = Field(alias="from", pattern=_ADDRESS, description="the old address, e.g. model.fraud")
    to: str = Field(pattern=_ADDRESS, description="the new address, e.g. model.fraud_lgbm")
    description: str | None = None


class Import(BaseModel):
    """Adopts an existing object into state instead of building it."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["Import"]
    to: str = Field(pattern=_ADDRESS, description="the resource of the specs it becomes, e.g. model.fraud")
    id: str = Field(min_length=1, description="what its backend calls it, e.g. a BentoML model tag fraud:abc123")
    description: str | None = None


__all__ = ["spec_json_schema"]


def spec_json_schema(kinds=None) -> dict[str, Any]:
    """One schema accepting any spec document of a known kind (``kinds``: a KindCatalog; default: the
    installed plugins' kinds), discriminated by `kind`."""
    if kinds is None:
        from ..plugin_registry import PluginRegistry

        kinds = PluginRegistry().kinds
    schemas = tuple(kinds.schemas().values()) + (Moved, Import)
    union = Annotated[Union[schemas], Field(discriminator="kind")] if len(schemas) > 1 else schemas[0]
    schema = TypeAdapter(union).json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "ml spec document"
    schema["description"] = ("A document of an ml spec file. Backend blocks (trainer, serving, detector, options) "
                             "are validated further by the owning plugin.")
    return schema
