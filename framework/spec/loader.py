"""Read YAML spec files into plain data, remembering the file and line of every value."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import yaml

from ..errors import Location, SpecError

__all__ = ["Document", "LocationMap", "load_yaml_documents", "spec_files", "OVERLAY_DIR"]

OVERLAY_DIR = "env"  # specs/env/<name>.yaml are environment overlays, not spec documents
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

Path_ = tuple[str, ...]


@dataclass
class LocationMap:
    """Tree path (e.g. ('models', 'fraud', 'trainer', 'params')) -> where its value was written."""

    entries: dict[Path_, Location] = field(default_factory=dict)

    def set(self, path: Path_, location: Location) -> None:
        self.entries[path] = location

    def find(self, path: Path_) -> Location | None:
        """The location of `path`, or of its nearest recorded parent (a missing field's document)."""
        for end in range(len(path), 0, -1):
            found = self.entries.get(path[:end])
            if found is not None:
                return found
        return None


@dataclass
class Document:
    data: dict[str, Any]
    file: str
    line: int
    locations: dict[Path_, int]  # relative to the document: field path -> line


def spec_files(root: Path) -> list[Path]:
    """Every *.yaml / *.yml under `root`, sorted, except environment overlays and hidden folders."""
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise SpecError(f"spec directory {root} does not exist", hint="run `ml init` to scaffold a project")
    files = []
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).parts
        if path.suffix not in (".yaml", ".yml") or not path.is_file():
            continue
        if rel[0] == OVERLAY_DIR or any(part.startswith((".", "_")) for part in rel):
            continue
        files.append(path)
    return files


def _node_locations(node: yaml.Node, file: str, prefix: Path_, out: dict[Path_, int]) -> None:
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value)
            line = key_node.start_mark.line + 1
            if key in seen:
                raise SpecError(
                    f"duplicate key {key!r} (first written on line {seen[key]})",
                    location=Location(file, line),
                    field=".".join(prefix + (key,)),
                )
            seen[key] = line
            out[prefix + (key,)] = line
            _node_locations(value_node, file, prefix + (key,), out)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            out[prefix + (str(i),)] = item.start_mark.line + 1
            _node_locations(item, file, prefix + (str(i),), out)


def load_yaml_documents(path: Path, display: str | None = None) -> list[Document]:
    """Every non-empty YAML document of one file, with per-field lines. Raises SpecError on bad YAML."""
    file = display or str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"cannot read spec file: {exc}", location=Location(file)) from exc
    documents = []
    constructor = yaml.constructor.SafeConstructor()
    try:
        for node in yaml.compose_all(text, Loader=_Loader):
            if node is None:
                continue
            data = constructor.construct_document(node)
            if data is None:
                continue
            line = node.start_mark.line + 1
            if not isinstance(data, dict):
                raise SpecError(
                    f"a spec document must be a mapping with 'kind' and 'name', got {type(data).__name__}",
                    location=Location(file, line),
                )
            locations: dict[Path_, int] = {}
            _node_locations(node, file, (), locations)
            documents.append(Document(data=data, file=file, line=line, locations=locations))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        problem = exc.problem or exc.context or "invalid YAML"
        raise SpecError(f"YAML syntax error: {problem}", location=Location(file, line)) from exc
    except yaml.YAMLError as exc:
        raise SpecError(f"YAML error: {exc}", location=Location(file)) from exc
    return documents


def iter_documents(files: Iterable[Path], base: Path) -> Iterable[Document]:
    for path in files:
        display = os.path.relpath(path, base)
        yield from load_yaml_documents(path, display)
