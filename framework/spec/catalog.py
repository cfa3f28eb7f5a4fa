"""The spec kinds known to this run: contributed by plugins, collected in one catalog.

The engine composes, validates, graphs and plans any kind in the catalog the same way; it knows a kind
only through its :class:`ml_framework.contract.Kind` declaration and its schema (a
:class:`ml_framework.spec.kinds.SpecBase` subclass), imported when specs of that kind are validated.
"""

from __future__ import annotations

import typing
from typing import Any, Iterable

from ..contract import Kind, resolve
from ..errors import PluginError
from .kinds import SpecBase

__all__ = ["KindCatalog"]


class KindCatalog:
    def __init__(self, kinds: Iterable[tuple[Kind, str]] = (), *, failed: Iterable[tuple[str, str]] = ()):
        self._kinds: dict[str, Kind] = {}
        self._owners: dict[str, str] = {}
        self._by_plural: dict[str, str] = {}
        self._schemas: dict[str, type[SpecBase]] = {}
        self.failed: list[tuple[str, str]] = list(failed)  # (plugin, error) of plugins that did not load
        for kind, plugin in kinds:
            self.add(kind, plugin)

    def add(self, kind: Kind, plugin: str) -> None:
        if not isinstance(kind, Kind):
            raise PluginError(f"plugin {plugin!r}: kinds must be ml_framework.contract.Kind objects, got {kind!r}")
        if not kind.name.isidentifier() or not kind.name[0].isupper():
            raise PluginError(f"plugin {plugin!r}: kind name {kind.name!r} must be a CamelCase identifier")
        if not kind.plural.isidentifier() or kind.plural in ("vars",):
            raise PluginError(f"plugin {plugin!r}: plural {kind.plural!r} of kind {kind.name} must be an identifier "
                              "(and not 'vars')")
        for taken, what in ((self._owners.get(kind.name), f"kind {kind.name!r}"),
                            (self._owners.get(self._by_plural.get(kind.plural, "")), f"plural {kind.plural!r}")):
            if taken is not None:
                raise PluginError(f"plugins {taken!r} and {plugin!r} both contribute {what}",
                                  hint="disable one of them in ml.yaml (plugins.disabled)")
        if kind.name.lower() in {k.lower() for k in self._kinds}:
            raise PluginError(f"plugin {plugin!r}: kind {kind.name!r} differs only in case from a known kind "
                              "(addresses are lowercase)")
        self._kinds[kind.name] = kind
        self._owners[kind.name] = plugin
        self._by_plural[kind.plural] = kind.name

    # -- lookups ------------------------------------------------------------------------------------------------
    def names(self) -> list[str]:
        return list(self._kinds)

    def __contains__(self, name: object) -> bool:
        return name in self._kinds

    def __len__(self) -> int:
        return len(self._kinds)

    def get(self, name: str) -> Kind:
        return self._kinds[name]

    def owner(self, name: str) -> str:
        return self._owners[name]

    def plural(self, name: str) -> str:
        return self._kinds[name].plural

    def plurals(self) -> list[str]:
        return list(self._by_plural)

    def kind_of_plural(self, plural: str) -> str | None:
        return self._by_plural.get(plural)

    def kind_of_address(self, address: str) -> str | None:
        prefix = address.partition(".")[0]
        return next((name for name in self._kinds if name.lower() == prefix), None)

    # -- schemas ------------------------------------------------------------------------------------------------
    def schema(self, name: str) -> type[SpecBase]:
        """The kind's schema class, imported and checked on first use."""
        schema = self._schemas.get(name)
        if schema is None:
            kind, plugin = self._kinds[name], self._owners[name]
            try:
                schema = resolve(kind.schema)
            except Exception as exc:
                raise PluginError(f"plugin {plugin!r}: cannot import the schema of kind {name} ({kind.schema}): "
                                  f"{type(exc).__name__}: {exc}") from exc
            _check_schema(schema, kind, plugin)
            self._schemas[name] = schema
        return schema

    def schemas(self) -> dict[str, type[SpecBase]]:
        return {name: self.schema(name) for name in self._kinds}

    def references(self, spec: SpecBase) -> list[tuple[str, str]]:
        """(field path, target address) for every resource ``spec`` refers to: the fields its Kind declares,
        then what its schema computes."""
        refs: list[tuple[str, str]] = []
        for path, target in self._kinds[spec.kind].references.items():
            value = _value_at(spec, path)
            prefix = target.lower()
            if isinstance(value, str):
                refs.append((path, f"{prefix}.{value}"))
            elif isinstance(value, (list, tuple)):
                refs.extend((f"{path}.{i}", f"{prefix}.{item}") for i, item in enumerate(value) if isinstance(item, str))
        refs.extend(spec.references())
        return list(dict.fromkeys(refs))


def _value_at(obj: Any, path: str) -> Any:
    for part in path.split("."):
        if obj is None:
            return None
        obj = obj.get(part) if isinstance(obj, dict) else getattr(obj, part, None)
    return obj


def _check_schema(schema: Any, kind: Kind, plugin: str) -> None:
    where = f"plugin {plugin!r}, kind {kind.name}"
    if not (isinstance(schema, type) and issubclass(schema, SpecBase)):
        raise PluginError(f"{where}: the schema must subclass ml_framework.spec.kinds.SpecBase, got {schema!r}")
    annotation = schema.model_fields["kind"].annotation
    if typing.get_origin(annotation) is not typing.Literal or typing.get_args(annotation) != (kind.name,):
        raise PluginError(f"{where}: the schema's kind field must be Literal[{kind.name!r}]",
                          hint=f"declare `kind: Literal[{kind.name!r}]` in {schema.__name__}")
    block = kind.backend_block or "backend"
    if schema.backend_field != block:
        raise PluginError(f"{where}: the Kind names backend block {block!r} but {schema.__name__}.backend_field is "
                          f"{schema.backend_field!r}")
    if block not in schema.model_fields:
        raise PluginError(f"{where}: the schema has no field {block!r} naming the backend")
    for path in kind.references:
        if path.split(".")[0] not in schema.model_fields:
            raise PluginError(f"{where}: reference field {path!r} is not a field of {schema.__name__}")
