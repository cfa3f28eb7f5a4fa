"""JSON Schema of spec documents, for editor completion (yaml-language-server, VS Code)."""

from __future__ import annotations

from typing import Annotated, Any, Union

from pydantic import Field, TypeAdapter

from .kinds import KINDS

__all__ = ["spec_json_schema"]


def spec_json_schema() -> dict[str, Any]:
    """One schema accepting any spec document, discriminated by `kind`."""
    union = Annotated[Union[tuple(KINDS.values())], Field(discriminator="kind")]
    schema = TypeAdapter(union).json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "ml spec document"
    schema["description"] = ("A document of an ml spec file. Backend blocks (trainer, serving, detector, options) "
                             "are validated further by the owning plugin.")
    return schema
