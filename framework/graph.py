"""The resource graph: references between specs become edges, in a checked topological order."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from graphlib import CycleError, TopologicalSorter
from typing import TYPE_CHECKING, Any, Iterable, Mapping

from .errors import GraphError, Location, SpecError, SpecErrors, did_you_mean
from .spec.kinds import NON_BEHAVIOURAL
from .spec.loader import LocationMap
from .secrets import MASK, SENSITIVE_KEY, mask_secrets  # noqa: F401 - re-exported

if TYPE_CHECKING:
    from .spec.validate import ValidSpec

__all__ = ["Node", "ResourceGraph", "build_graph", "canonical_json", "digest", "mask_secrets", "SENSITIVE_KEY"]

def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def digest(*parts: str) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()


def export_hash(behaviour: Mapping[str, Any], local_fields: Iterable[str]) -> str:
    """The hash of what dependents see of a spec: its behavioural fields minus ``local_fields``."""
    local = set(local_fields)
    return digest(canonical_json({k: v for k, v in behaviour.items() if k not in local}))


@dataclass
class Node:
    address: str
    kind: str
    name: str
    backend: str
    spec: dict[str, Any]  # full canonical spec, secrets masked (what state and plans show)
    behaviour: dict[str, Any]  # spec minus non-behavioural fields, secrets masked (what diffs compare)
    spec_hash: str  # hash of the unmasked behavioural spec
    config: Any = None
    depends_on: tuple[str, ...] = ()
    location: Location | None = None
    plugin_error: Exception | None = None
    # What dependents see of this spec: the behavioural spec minus the kind's ``local_fields``.
    local_fields: frozenset[str] = frozenset()
    export_hash: str = ""
    # fields that are not behaviour: description, labels, and those the kind adds (``non_behavioural``)
    ignored: frozenset[str] = NON_BEHAVIOURAL


@dataclass
class ResourceGraph:
    nodes: dict[str, Node]
    order: list[str]  # dependencies first
    dependents: dict[str, list[str]] = field(default_factory=dict)

    def upstream_closure(self, addresses: Iterable[str]) -> set[str]:
        """The addresses plus everything they depend on, transitively."""
        seen: set[str] = set()
        stack = list(addresses)
        while stack:
            address = stack.pop()
            if address in seen or address not in self.nodes:
                continue
            seen.add(address)
            stack.extend(self.nodes[address].depends_on)
        return seen


def build_graph(valid: list[ValidSpec], locations: LocationMap) -> ResourceGraph:
    nodes: dict[str, Node] = {}
    for item in valid:
        spec = item.spec
        full = spec.model_dump(mode="json")
        ignored = NON_BEHAVIOURAL | frozenset(getattr(type(spec), "non_behavioural", frozenset()))
        behaviour = {k: v for k, v in full.items() if k not in ignored}
        masked = mask_secrets(full)  # masks key by key, so the behavioural subset is masked already
        local = frozenset(getattr(type(spec), "local_fields", frozenset()))
        spec_hash = digest(canonical_json(behaviour))
        nodes[spec.address] = Node(
            address=spec.address, kind=spec.kind, name=spec.name, backend=spec.backend_name(),
            spec=masked, behaviour={k: v for k, v in masked.items() if k not in ignored},
            spec_hash=spec_hash, config=item.config, location=item.location, plugin_error=item.plugin_error,
            local_fields=local, export_hash=export_hash(behaviour, local) if local else spec_hash, ignored=ignored,
        )
    errors: list[SpecError] = []
    by_kind: dict[str, list[str]] = {}
    for address in nodes:
        prefix, _, name = address.partition(".")
        by_kind.setdefault(prefix, []).append(name)
    for item in valid:
        spec = item.spec
        deps = []
        for field_path, target in item.references:
            # A reference may name alternatives, "featureview.x|ondemandfeatureview.x": the first that exists.
            options = target.split("|")
            found = next((t for t in options if t in nodes), None)
            if found is not None:
                if found not in deps:
                    deps.append(found)
                continue
            target_kind, _, target_name = options[0].partition(".")
            names = [n for option in options for n in by_kind.get(option.partition(".")[0], ())]
            path = (item.plural, spec.name) + tuple(field_path.split("."))
            shown = options[0] + (f" (or {', '.join(options[1:])})" if len(options) > 1 else "")
            errors.append(SpecError(f"refers to {shown}, which no spec defines", location=locations.find(path),
                                    field=field_path, hint=did_you_mean(target_name, names)))
        nodes[spec.address].depends_on = tuple(deps)
    if errors:
        raise SpecErrors(errors)
    return ResourceGraph(nodes=nodes, order=_topological_order(nodes), dependents=_dependents(nodes))


def _topological_order(nodes: Mapping[str, Node]) -> list[str]:
    sorter = TopologicalSorter({a: n.depends_on for a, n in nodes.items()})
    try:
        return list(sorter.static_order())
    except CycleError as exc:
        cycle = exc.args[1]
        where = "; ".join(f"{a} at {nodes[a].location}" for a in dict.fromkeys(cycle) if nodes[a].location)
        raise GraphError(f"dependency cycle: {' → '.join(reversed(cycle))}", hint=where or None) from None


def _dependents(nodes: Mapping[str, Node]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {a: [] for a in nodes}
    for address, node in nodes.items():
        for dep in node.depends_on:
            out[dep].append(address)
    return out
