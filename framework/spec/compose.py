"""Compose spec documents into one tree: environment overlays, `${...}` interpolation, overrides.

The tree is keyed by kind then name (``models.fraud.trainer.params.num_leaves``), so overlays and
command-line overrides address any field the way Hydra users expect. OmegaConf only runs when an
overlay, an override or an interpolation is present: the common case stays a plain dict walk.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import Location, SpecError, SpecErrors, did_you_mean
from .loader import OVERLAY_DIR, Document, LocationMap, iter_documents, load_yaml_documents, spec_files

__all__ = ["ComposedSpecs", "Move", "Import", "MOVED_KIND", "IMPORT_KIND", "compose", "available_environments"]

RESERVED_ROOT_KEYS = ("vars",)  # free-form values for `${vars.x}` interpolation
MOVED_KIND = "Moved"  # `kind: Moved` documents rename a resource (from/to addresses), as Terraform's `moved`
_MOVE_FIELDS = {"kind", "from", "to", "description"}
IMPORT_KIND = "Import"  # `kind: Import` documents adopt an existing object into state (to, id), as Terraform's `import`
_IMPORT_FIELDS = {"kind", "to", "id", "description"}
_ADDRESS = re.compile(r"^[a-z][a-z0-9_]*\.[A-Za-z0-9_.-]+$")


@dataclass(frozen=True)
class Import:
    """``kind: Import``: the resource ``target`` is the existing object its backend knows as ``id``."""

    target: str
    id: str
    location: Location


@dataclass(frozen=True)
class Move:
    """``kind: Moved``: the resource recorded as ``source`` is the one the specs now call ``target``."""

    source: str
    target: str
    location: Location


@dataclass
class ComposedSpecs:
    tree: dict[str, dict[str, dict[str, Any]]]
    locations: LocationMap
    env: str | None = None
    overrides: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    kinds: Any = None  # the KindCatalog the tree was composed with
    moves: list[Move] = field(default_factory=list)  # `kind: Moved` documents
    imports: list[Import] = field(default_factory=list)  # `kind: Import` documents


def available_environments(spec_dir: Path) -> list[str]:
    folder = spec_dir / OVERLAY_DIR
    if not folder.is_dir():
        return []
    return sorted(p.stem for p in folder.iterdir() if p.suffix in (".yaml", ".yml"))


def compose(spec_dir: Path, *, env: str | None = None, overrides: list[str] | None = None,
            kinds=None) -> ComposedSpecs:
    """``kinds``: the KindCatalog (default: the kinds of every installed plugin)."""
    if kinds is None:
        from ..plugin_registry import PluginRegistry

        kinds = PluginRegistry().kinds
    spec_dir = Path(spec_dir)
    base = spec_dir if spec_dir.is_dir() else spec_dir.parent
    files = spec_files(spec_dir)
    moves: list[Move] = []
    imports: list[Import] = []
    tree, locations, interpolated = _build_tree(iter_documents(files, base.parent if base.name else base), kinds,
                                                moves, imports)
    composed = ComposedSpecs(tree=tree, locations=locations, env=env, overrides=list(overrides or []),
                             files=[str(f) for f in files], kinds=kinds, moves=moves, imports=imports)
    overlay = _load_overlay(base, env, tree, kinds) if env else None
    if overlay is None and not composed.overrides and not interpolated:
        return composed
    return _compose_with_omegaconf(composed, overlay)


def _read_move(doc: Document, errors: list[SpecError]) -> Move | None:
    before = len(errors)
    for key in sorted(set(doc.data) - _MOVE_FIELDS):
        errors.append(SpecError("unknown field of a Moved document", location=Location(doc.file, doc.locations.get((key,), doc.line)),
                                field=key, hint=did_you_mean(key, _MOVE_FIELDS) or "a Moved document has from and to"))
    for key in ("from", "to"):
        value = doc.data.get(key)
        if value is None:
            errors.append(SpecError(f"missing {key!r}: the {'old' if key == 'from' else 'new'} address", field=key,
                                    location=Location(doc.file, doc.line)))
        elif not isinstance(value, str) or not _ADDRESS.match(value):
            errors.append(SpecError(f"{key!r} must be a resource address such as model.fraud", field=key,
                                    location=Location(doc.file, doc.locations.get((key,), doc.line))))
    if len(errors) > before:
        return None
    source, target = doc.data["from"], doc.data["to"]
    if source.split(".", 1)[0] != target.split(".", 1)[0]:
        errors.append(SpecError(f"a move keeps the kind: {source} cannot become {target}", field="to",
                                location=Location(doc.file, doc.locations.get(("to",), doc.line))))
        return None
    return Move(source, target, Location(doc.file, doc.line))


def _read_import(doc: Document, errors: list[SpecError]) -> Import | None:
    before = len(errors)
    for key in sorted(set(doc.data) - _IMPORT_FIELDS):
        errors.append(SpecError("unknown field of an Import document", location=Location(doc.file, doc.locations.get((key,), doc.line)),
                                field=key, hint=did_you_mean(key, _IMPORT_FIELDS) or "an Import document has to and id"))
    target, ident = doc.data.get("to"), doc.data.get("id")
    if not isinstance(target, str) or not _ADDRESS.match(target):
        errors.append(SpecError("'to' must be a resource address such as model.fraud", field="to",
                                location=Location(doc.file, doc.locations.get(("to",), doc.line))))
    if not isinstance(ident, str) or not ident.strip():
        errors.append(SpecError("'id' must name the existing object (e.g. a BentoML model tag fraud:abc123)",
                                field="id", location=Location(doc.file, doc.locations.get(("id",), doc.line))))
    if len(errors) > before:
        return None
    return Import(target, ident.strip(), Location(doc.file, doc.line))


def _build_tree(documents, kinds, moves: list[Move] | None = None,
                imports: list[Import] | None = None) -> tuple[dict, LocationMap, bool]:
    tree: dict[str, dict[str, dict[str, Any]]] = {}
    locations = LocationMap()
    errors: list[SpecError] = []
    interpolated = False
    for doc in documents:
        loc = Location(doc.file, doc.line)
        kind, name = doc.data.get("kind"), doc.data.get("name")
        if not isinstance(kind, str) or not kind:
            errors.append(SpecError("missing 'kind'", location=loc, field="kind",
                                    hint=f"one of: {', '.join(kinds.names())}"))
            continue
        if kind == MOVED_KIND:
            move = _read_move(doc, errors)
            if move is not None and moves is not None:
                moves.append(move)
            continue
        if kind == IMPORT_KIND:
            adopted = _read_import(doc, errors)
            if adopted is not None and imports is not None:
                imports.append(adopted)
            continue
        if kind not in kinds:
            errors.append(SpecError(f"unknown kind {kind!r}", location=Location(doc.file, doc.locations.get(("kind",), doc.line)),
                                    field="kind", hint=_unknown_kind_hint(kind, kinds)))
            continue
        if not isinstance(name, str) or not name:
            errors.append(SpecError("missing 'name'", location=loc, field="name"))
            continue
        plural = kinds.plural(kind)
        bucket = tree.setdefault(plural, {})
        if name in bucket:
            first = locations.find((plural, name))
            errors.append(SpecError(f"duplicate {kind} name {name!r} (first defined at {first})",
                                    location=Location(doc.file, doc.locations.get(("name",), doc.line)), field="name"))
            continue
        bucket[name] = doc.data
        prefix = (plural, name)
        locations.set(prefix, loc)
        entries, by_line = locations.entries, {doc.line: loc}  # one Location per line, not per field
        for path, line in doc.locations.items():
            where = by_line.get(line)
            if where is None:
                where = by_line[line] = Location(doc.file, line)
            entries[prefix + path] = where
        interpolated = interpolated or _has_interpolation(doc.data)
    if errors:
        raise SpecErrors(errors)
    return tree, locations, interpolated


def _unknown_kind_hint(kind: str, kinds) -> str:
    hint = did_you_mean(kind, kinds.names()) or f"known kinds: {', '.join(kinds.names()) or 'none'}"
    if kinds.failed:  # the kind may belong to a plugin that did not load
        hint += "; plugins that failed to load: " + "; ".join(error for _, error in kinds.failed)
    return hint


def _has_interpolation(value: Any) -> bool:
    if isinstance(value, str):
        return "${" in value
    if isinstance(value, dict):
        return any(_has_interpolation(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_interpolation(v) for v in value)
    return False


def _load_overlay(base: Path, env: str, tree: dict, kinds) -> tuple[dict, LocationMap]:
    names = available_environments(base)
    path = next((base / OVERLAY_DIR / f"{env}{suffix}" for suffix in (".yaml", ".yml")
                 if (base / OVERLAY_DIR / f"{env}{suffix}").is_file()), None)
    if path is None:
        hint = did_you_mean(env, names) or (f"available: {', '.join(names)}" if names
                                            else f"create {base.name}/{OVERLAY_DIR}/{env}.yaml")
        raise SpecError(f"unknown environment {env!r}", location=Location("command line"), field="env", hint=hint)
    display = f"{base.name}/{OVERLAY_DIR}/{path.name}"
    docs = load_yaml_documents(path, display)
    if len(docs) > 1:
        raise SpecError("an environment overlay holds one YAML document", location=Location(display, docs[1].line))
    data = docs[0].data if docs else {}
    locations = LocationMap()
    errors = []
    for path_, line in (docs[0].locations.items() if docs else ()):
        locations.set(path_, Location(display, line))
    for key, value in data.items():
        where = locations.find((key,))
        if key in RESERVED_ROOT_KEYS:
            continue
        if kinds.kind_of_plural(key) is None:
            errors.append(SpecError(f"unknown section {key!r}", location=where, field=key,
                                    hint=did_you_mean(key, kinds.plurals() + list(RESERVED_ROOT_KEYS))))
            continue
        for name, body in (value or {}).items():
            if name not in tree.get(key, {}) and not (isinstance(body, dict) and "kind" in body):
                errors.append(SpecError(f"overlay refers to {key}.{name}, which no spec defines",
                                        location=locations.find((key, name)), field=f"{key}.{name}",
                                        hint=did_you_mean(name, tree.get(key, {}))))
    if errors:
        raise SpecErrors(errors)
    return data, locations


def _compose_with_omegaconf(composed: ComposedSpecs, overlay: tuple[dict, LocationMap] | None) -> ComposedSpecs:
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    cfg = OmegaConf.create(composed.tree)
    if overlay is not None:
        data, overlay_locations = overlay
        cfg = OmegaConf.merge(cfg, data)
        composed.locations.entries.update(overlay_locations.entries)
    for text in composed.overrides:
        _apply_override(cfg, text, composed.locations)
    try:
        tree = OmegaConf.to_container(cfg, resolve=True)
    except OmegaConfBaseException as exc:
        key = getattr(exc, "full_key", "") or ""
        path = tuple(key.split(".")) if key else ()
        raise SpecError(f"cannot resolve interpolation: {getattr(exc, 'msg', exc)}",
                        location=composed.locations.find(path), field=key or None) from exc
    tree.pop("vars", None)
    composed.tree = tree
    return composed


def _apply_override(cfg, text: str, locations: LocationMap) -> None:
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import OverrideType
    from hydra.errors import HydraException
    from omegaconf import OmegaConf

    where = Location(f"command line override {text!r}")
    try:
        (override,) = OverridesParser.create().parse_overrides([text])
    except HydraException as exc:
        first = str(exc).strip().splitlines()[0]
        raise SpecError(f"malformed override: {first}", location=where,
                        hint="use key.path=value, +key.path=value to add, ~key.path to delete") from exc
    key = override.key_or_group
    from ..secrets import SENSITIVE_KEY

    if SENSITIVE_KEY.search(key.rpartition(".")[2]) and "${" not in text:
        raise SpecError("secret values cannot be passed as overrides (plans and shell history would keep them)",
                        location=where, field=key, hint=f"use {key}='${{oc.env:VARIABLE}}' to read it from the environment")
    if override.is_sweep_override():
        raise SpecError("sweep overrides (a,b,c / range()) are only accepted by sweeping commands",
                        location=where, field=key)
    exists = OmegaConf.select(cfg, key, default=_MISSING) is not _MISSING
    parent_key, _, leaf = key.rpartition(".")
    if override.type == OverrideType.DEL:
        if not exists:
            raise SpecError("cannot delete a key that does not exist", location=where, field=key)
        parent = OmegaConf.select(cfg, parent_key) if parent_key else cfg
        del parent[leaf]
    else:
        if override.type == OverrideType.CHANGE and not exists:
            parent = OmegaConf.select(cfg, parent_key, default=None) if parent_key else cfg
            siblings = list(parent.keys()) if hasattr(parent, "keys") else []
            raise SpecError("no such key to override", location=where, field=key,
                            hint=did_you_mean(leaf, siblings) or f"use +{key}=... to add a new key")
        if override.type == OverrideType.ADD and exists:
            raise SpecError("key already exists; drop the '+' to change it", location=where, field=key)
        OmegaConf.update(cfg, key, override.value(), merge=True, force_add=True)
    locations.set(tuple(key.split(".")), where)


_MISSING = object()
