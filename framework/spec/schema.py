"""JSON Schema of spec documents, for editor completion (yaml-language-server, VS Code)."""

from __future__ import annotations

from typing import Annotated, Any, Union

from pydantic import Field, TypeAdapter


__all__ = ["spec_json_schema"]


def spec_json_schema(kinds=None) -> dict[str, Any]:
    """One schema accepting any spec document of a known kind (``kinds``: a KindCatalog; default: the
    installed plugins' kinds), discriminated by `kind`."""
    if kinds is None:
        from ..plugin_registry import PluginRegistry

        kinds = PluginRegistry().kinds
    schemas = tuple(kinds.schemas().values())
    union = Annotated[Union[schemas], Field(discriminator="kind")] if len(schemas) > 1 else schemas[0]
    schema = TypeAdapter(union).json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "ml spec document"
    schema["description"] = ("A document of an ml spec file. Backend blocks (trainer, serving, detector, options) "
                             "are validated further by the owning plugin.")
    return schema
