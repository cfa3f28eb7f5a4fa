"""Diff the desired graph against recorded state (refreshed through the providers) into a Plan.

Pure with respect to the world: reads state and asks providers to read; prints, writes and changes
nothing. Linear in the number of resources: one pass in topological order, dict lookups only.
"""

from __future__ import annotations

import dataclasses
import functools
import uuid
from collections import abc
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Mapping

from .. import __version__
from ..contract import (
    AdoptRequest,
    FieldChange,
    FingerprintRequest,
    PlanRequest,
    ReadRequest,
    ReadResult,
    RecordedResource,
    Resource,
)
from ..errors import MLError, ProviderError
from ..graph import ResourceGraph, canonical_json, digest, export_hash
from .model import CREATE, DELETE, NOOP, REPLACE, UPDATE, Change, Drift, FieldDiff, Plan, PlanIssue

__all__ = ["build_plan", "to_resource", "diff_fields", "UPSTREAM_PREFIX"]

UPSTREAM_PREFIX = "upstream:"


def to_resource(graph: ResourceGraph, address: str) -> Resource:
    node = graph.nodes[address]
    return Resource(address=address, kind=node.kind, name=node.name, backend=node.backend, spec=node.spec,
                    config=node.config, depends_on=node.depends_on,
                    source_file=node.location.file if node.location else None)


def diff_fields(before: Mapping[str, Any], after: Mapping[str, Any], prefix: str = "") -> list[FieldChange]:
    """Leaf-level differences; lists and scalars compare whole."""
    changes = []
    for key in sorted(set(before) | set(after), key=str):
        path = f"{prefix}{key}"
        old, new = before.get(key), after.get(key)
        if old == new:
            continue
        if isinstance(old, dict) and isinstance(new, dict):
            changes.extend(diff_fields(old, new, path + "."))
        else:
            changes.append(FieldChange(path=path, before=old, after=new))
    return changes


def _wrap(address: str, exc: Exception) -> MLError:
    if isinstance(exc, ProviderError):
        return exc
    if isinstance(exc, MLError):
        return ProviderError(address, exc.message, hint=exc.hint)
    return ProviderError(address, f"{type(exc).__name__}: {exc}")


class _UpstreamSpecs(abc.Mapping):
    """The desired specs of everything a node depends on, transitively, by address: worked out on first
    use (most providers never ask, and planning 10,000 resources should not pay for it)."""

    def __init__(self, graph, depends_on):
        self._graph, self._depends_on, self._specs = graph, depends_on, None

    def _all(self) -> dict:
        if self._specs is None:
            self._specs = {a: self._graph.nodes[a].spec for a in self._graph.upstream_closure(self._depends_on)}
        return self._specs

    def __getitem__(self, address):
        return self._all()[address]

    def __iter__(self):
        return iter(self._all())

    def __len__(self):
        return len(self._all())


class _Planner:
    def __init__(self, graph, recorded, registry, project_dir, refresh, services=None, retry=()):
        self.graph = graph
        self.services = services
        self.retry = set(retry)
        self.recorded: dict[str, RecordedResource] = recorded
        self.registry = registry
        self.project_dir = project_dir
        self.refresh = refresh
        self.fingerprints: dict[str, str] = {}
        # What dependents see of each planned resource: its fingerprint without its kind's local fields
        # (a data check's threshold changes the resource, not what is trained or served from it).
        self.exports: dict[str, str] = {}
        self.inputs: dict[str, dict[str, str]] = {}
        self.issues: list[PlanIssue] = []
        self.blocked: set[str] = set()
        self.causes: dict[str, str] = {}  # address -> root cause of its change, for dependents' reasons
        # `kind: Moved`: new address -> old address of records renamed for this plan; names renamed (a
        # dependent's reference `model: fraud` -> `model: fraud_v2` is no change); and what a dependent
        # recorded of a moved resource that counts as unchanged (upstream key -> (old values, new value)).
        self.moved: dict[str, str] = {}
        self.renamed_names: dict[str, str] = {}
        self.move_notes: dict[str, str] = {}
        self.equivalent: dict[str, tuple[set, str]] = {}
        self.originals: dict[str, RecordedResource] = {}  # new address -> the record as it is (old address)
        self.imports: dict[str, str] = {}  # `kind: Import`: address -> the backend's id of the object to adopt

    def _prior_export(self, address: str) -> str | None:
        """The export fingerprint the recorded resource had (from its recorded spec and inputs)."""
        node, record = self.graph.nodes.get(address), self.originals.get(address) or self.recorded.get(address)
        if node is None or record is None or not node.local_fields:
            return None
        behaviour = {k: v for k, v in record.spec.items() if k not in node.ignored}
        return digest(export_hash(behaviour, node.local_fields), canonical_json(dict(record.inputs)))

    def _upstream_input(self, upstream: str, prior) -> str:
        """The value a dependent records for ``upstream``: its export fingerprint. A dependent recorded
        with the upstream's whole fingerprint (before local fields existed) keeps that value while the
        exported part is unchanged, so upgrading retrains nothing."""
        value = self.exports[upstream]
        if prior is None:
            return value
        recorded = prior.inputs.get(f"{UPSTREAM_PREFIX}{upstream}")
        upstream_prior = self.recorded.get(upstream)
        if (recorded is not None and recorded != value and upstream_prior is not None
                and recorded == upstream_prior.fingerprint and self._prior_export(upstream) == value):
            return recorded
        return value

    def provider(self, backend: str):
        return self.registry.get(backend)

    def read_all(self, addresses: list[str]) -> dict[str, ReadResult]:
        """Refresh recorded resources, several at once (reads are I/O: health checks, registries)."""
        if not self.refresh or not addresses:
            return {}

        def read(address: str):
            record = self.originals.get(address) or self.recorded[address]  # a moved one still has its old name
            try:
                return address, self.provider(record.backend).read(ReadRequest(record, self.project_dir, self.services))
            except Exception as exc:  # reported per resource, the rest still plans
                return address, _wrap(address, exc)

        if len(addresses) == 1:
            results = [read(addresses[0])]
        else:
            with ThreadPoolExecutor(max_workers=8) as pool:
                results = list(pool.map(read, addresses))
        out = {}
        for address, result in results:
            if isinstance(result, Exception):
                self.issues.append(PlanIssue(address, f"refresh failed: {result}"))
                self.blocked.add(address)
            else:
                out[address] = result
        return out

    def plan_node(self, address: str, observed: ReadResult | None) -> Change | None:
        node = self.graph.nodes[address]
        blocked_by = [d for d in node.depends_on if d in self.blocked]
        if node.plugin_error is not None or blocked_by:
            message = str(node.plugin_error) if node.plugin_error else f"skipped: {blocked_by[0]} cannot be planned"
            self.issues.append(PlanIssue(address, message))
            self.blocked.add(address)
            return None
        resource = to_resource(self.graph, address)
        prior = self.recorded.get(address)
        try:
            provider = self.provider(node.backend)
            extra = dict(provider.fingerprint(FingerprintRequest(resource, self.project_dir, prior, self.services,
                                                                 upstream=_UpstreamSpecs(self.graph, node.depends_on)))
                         or {})
        except Exception as exc:
            self.issues.append(PlanIssue(address, str(_wrap(address, exc))))
            self.blocked.add(address)
            return None
        inputs = {f"{UPSTREAM_PREFIX}{d}": self._upstream_input(d, prior) for d in node.depends_on}
        inputs.update({k: str(v) for k, v in extra.items()})
        fingerprint = digest(node.spec_hash, canonical_json(inputs))
        self.fingerprints[address] = fingerprint
        self.exports[address] = (digest(node.export_hash, canonical_json(inputs)) if node.local_fields
                                 else fingerprint)
        self.inputs[address] = inputs
        common = dict(address=address, kind=node.kind, backend=node.backend, after=node.spec,
                      fingerprint=fingerprint, depends_on=node.depends_on, inputs=inputs)
        if prior is None:
            if address in self.imports:
                return self._adopt(address, resource, common)
            note = self.move_notes.get(address)
            return Change(action=CREATE, reasons=(note,) if note else ("new resource",), **common)
        if observed is not None and not observed.exists:
            return Change(action=CREATE, before=dict(prior.spec),
                          reasons=("it no longer exists (removed outside ml): will be restored",), **common)
        drift_reasons = tuple(f"restore {k} changed outside ml" for k in (observed.drift if observed else {}))
        if address in self.retry:
            drift_reasons += ("applied again on request (--retry)",)
        if prior.fingerprint == fingerprint and prior.status == "applied" and not drift_reasons:
            return Change(action=NOOP, before=dict(prior.spec), **common)
        return self._changed(node, resource, prior, inputs, drift_reasons, provider, common)

    def _adopt(self, address: str, resource: Resource, common: dict) -> Change | None:
        """A create that takes the existing object ``kind: Import`` names instead of building it."""
        ident = self.imports[address]
        backend = common["backend"]
        try:
            adopter = self.registry.capable(backend, "adopt")
            if adopter is None:
                raise MLError(f"the {backend} backend cannot adopt existing objects (kind: Import {ident!r}); "
                              "remove the Import document to build it instead")
            what = adopter.adoptable(AdoptRequest(resource, ident, self.project_dir, self.services))
        except Exception as exc:
            self.issues.append(PlanIssue(address, str(_wrap(address, exc))))
            self.blocked.add(address)
            return None
        return Change(action=CREATE, reasons=(f"adopts {what}: nothing is built",), imported=ident, **common)

    def _renamed(self, before: Any, after: Any) -> bool:
        """A reference that only follows a moved resource's new name: the name itself, a feature reference
        (``view:feature``) or an expression's input (``view.feature``)."""
        if isinstance(before, str):
            if self.renamed_names.get(before) == after:
                return True
            if not isinstance(after, str) or before == after:
                return False
            pattern = _renaming_pattern(tuple(self.renamed_names))
            return pattern.sub(lambda m: self.renamed_names[m.group(0)], before) == after
        if isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
            return all(b == a or self._renamed(b, a) for b, a in zip(before, after))
        return False

    def _changed(self, node, resource, prior, inputs, drift_reasons, provider, common) -> Change | None:
        before = {k: v for k, v in prior.spec.items() if k not in node.ignored}
        changes = diff_fields(before, node.behaviour)
        followed = [c for c in changes if self.renamed_names and self._renamed(c.before, c.after)]
        changes = [c for c in changes if c not in followed]
        reasons = list(drift_reasons)
        if changes:
            reasons.append("spec changed: " + ", ".join(c.path for c in changes[:5])
                           + (f" and {len(changes) - 5} more" if len(changes) > 5 else ""))
        for key, value in inputs.items():
            if prior.inputs.get(key) == value:
                continue
            same = self.equivalent.get(key)
            if same is not None and prior.inputs.get(key) in same[0] and value == same[1]:
                followed.append(key)
                continue
            if key.startswith(UPSTREAM_PREFIX):
                upstream = key[len(UPSTREAM_PREFIX):]
                cause = self.causes.get(upstream)
                reasons.append(f"upstream {upstream} changed" + (f" ({cause})" if cause else ""))
            else:
                reasons.append(f"{key.replace('_', ' ')} changed")
        removed_deps = [k[len(UPSTREAM_PREFIX):] for k in prior.inputs if k.startswith(UPSTREAM_PREFIX) and k not in inputs]
        reasons.extend(f"no longer depends on {d}" for d in removed_deps)
        if prior.status != "applied":
            reasons.append("a previous apply did not finish (interrupted or failed): resuming")
        source = self.moved.get(node.address)
        if not reasons and prior.kind == node.kind and prior.backend == node.backend:
            if source is not None:  # renamed and nothing else: dependents see it unchanged
                self.equivalent[f"{UPSTREAM_PREFIX}{node.address}"] = (
                    {prior.fingerprint, self._prior_export(node.address) or prior.fingerprint},
                    self.exports[node.address])
                return Change(action=NOOP, reasons=(f"moved from {source}: renamed in place, nothing is rebuilt",),
                              before=dict(prior.spec), moved_from=source, **common)
            if followed:  # what it exports changed only by the rename: its dependents follow it too
                self.equivalent[f"{UPSTREAM_PREFIX}{node.address}"] = (
                    {prior.fingerprint, self._prior_export(node.address) or prior.fingerprint},
                    self.exports[node.address])
                moved = [f"{self.moved[d]} → {d}" for d in node.depends_on if d in self.moved] or [
                    f"{self.moved[a]} → {a}" for a in sorted(self.moved)]
                return Change(action=NOOP, before=dict(prior.spec), restate=(
                    f"follows {', '.join(moved)}: its record is rewritten, nothing is rebuilt"), **common)
        if source is not None:
            reasons.insert(0, f"moved from {source} (renamed in place first)")
        if not reasons:
            reasons.append("a sensitive value changed" if prior.spec == node.spec else "recorded state differs")
        if prior.kind != node.kind or prior.backend != node.backend:
            replace_paths = ("backend",)
            reasons.append(f"backend {prior.backend} → {node.backend} forces replacement")
        else:
            try:
                result = provider.plan(PlanRequest(resource, prior, tuple(changes), self.services,
                                                   fingerprint=common["fingerprint"], retry=node.address in self.retry))
            except Exception as exc:
                self.issues.append(PlanIssue(node.address, str(_wrap(node.address, exc))))
                self.blocked.add(node.address)
                return None
            if result.hold and node.address not in self.retry:
                # Nothing would come of applying it: dependents see it unchanged, the plan says why.
                self.fingerprints[node.address] = prior.fingerprint
                self.exports[node.address] = self._prior_export(node.address) or prior.fingerprint
                common.update(fingerprint=prior.fingerprint, inputs=dict(prior.inputs))
                return Change(action=NOOP, reasons=tuple(reasons), before=dict(prior.spec), held=result.hold, **common)
            replace_paths = tuple(result.replace_paths)
            reasons.extend(result.reasons)
            common["estimate_seconds"] = result.estimate_seconds
        self.causes[node.address] = next((r.split(" (", 1)[1][:-1] if r.startswith("upstream ") and " (" in r else r
                                          for r in reasons), None)
        forced = set(replace_paths)
        fields = tuple(FieldDiff(c.path, c.before, c.after, c.path in forced) for c in changes)
        if forced:
            reasons.append("forces replacement: " + ", ".join(sorted(forced)))
        action = REPLACE if forced else UPDATE
        if action == REPLACE and source is not None:  # replaced anyway: the old object goes, nothing to rename
            return Change(action=action, reasons=tuple(reasons), fields=fields, before=dict(prior.spec), **common)
        return Change(action=action, reasons=tuple(reasons), fields=fields, before=dict(prior.spec),
                      moved_from=source, **common)


def build_plan(
    graph: ResourceGraph,
    recorded: Iterable[RecordedResource],
    registry,
    *,
    lineage: str,
    serial: int,
    project_dir: Path,
    refresh: bool = True,
    targets: Iterable[str] = (),
    destroy: bool = False,
    env: str | None = None,
    overrides: Iterable[str] = (),
    spec_dir: str | None = None,
    services=None,
    retry: Iterable[str] = (),
    moves: Iterable[Any] = (),
    imports: Iterable[Any] = (),
) -> Plan:
    """``services``: the seams providers may use while planning (``registry.services(state=store)``);
    ``moves``: ``kind: Moved`` renames (``source``/``target`` addresses), checked against the graph."""
    recorded_map = {r.address: r for r in recorded}
    targets = tuple(targets)
    planner = _Planner(graph, recorded_map, registry, project_dir, refresh, services, retry)
    changes: list[Change] = []
    drift: list[Drift] = []
    if not destroy:
        changes.extend(_prepare_moves(planner, graph, recorded_map, moves))
        planner.imports = {i.target: i.id for i in imports}
    if destroy:
        wanted = _destroy_scope(graph, recorded_map, targets)
        changes = [_delete(recorded_map[a], "destroy requested") for a in _reverse_order(recorded_map, wanted)]
    else:
        in_scope = graph.upstream_closure(targets) if targets else set(graph.nodes)
        observed = planner.read_all([a for a in graph.order if a in in_scope and a in recorded_map])
        for address, result in observed.items():
            if not result.exists or result.drift:
                fields = tuple((k, v[0], v[1]) for k, v in result.drift.items())
                drift.append(Drift(address, recorded_map[address].kind, result.exists, fields))
        for address in graph.order:
            if address in in_scope:
                change = planner.plan_node(address, observed.get(address))
                if change is not None:
                    changes.append(change)
        orphans = [a for a in recorded_map if a not in graph.nodes and (not targets or a in targets)]
        changes.extend(_delete(recorded_map[a], "no longer in the specs") for a in _reverse_order(recorded_map, orphans))
    return Plan(
        plan_id=str(uuid.uuid4()),
        created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        ml_version=__version__,
        lineage=lineage,
        serial=serial,
        changes=tuple(changes),
        drift=tuple(drift),
        errors=tuple(planner.issues),
        env=env,
        overrides=tuple(overrides),
        targets=targets,
        retry=tuple(sorted(planner.retry)),
        operation="destroy" if destroy else "apply",
        spec_dir=spec_dir,
    )


def _prepare_moves(planner: _Planner, graph, recorded: dict[str, RecordedResource], moves) -> list[Change]:
    """Rename the records of moved resources for this plan, when their backend can rename in place.
    Returns the changes that only forget an old record (a rename recorded but not finished)."""
    forget: list[Change] = []
    done: dict[str, str] = {}
    for move in moves:
        old, new = recorded.get(move.source), recorded.get(move.target)
        if old is None:
            continue  # nothing recorded under the old address (moved long ago, or never applied)
        if new is not None:  # both recorded: an apply stopped between writing the new record and removing the old
            del recorded[move.source]
            forget.append(Change(address=move.source, kind=old.kind, backend=old.backend, action=NOOP,
                                 before=dict(old.spec), restate=f"already moved to {move.target}: the old record is "
                                 "forgotten (nothing is deleted)"))
            continue
        node = graph.nodes[move.target]
        if old.kind != node.kind or old.backend != node.backend:
            planner.move_notes[move.target] = (f"moved from {move.source}, but its backend changed ({old.backend} → "
                                               f"{node.backend}): {move.source} is destroyed and {move.target} created")
            continue
        try:
            capable = planner.registry.capable(node.backend, "move")
        except Exception:  # noqa: BLE001 - an unknown backend is reported by its own node
            capable = None
        kinds = getattr(capable, "movable_kinds", None) if capable else None
        if not capable or (kinds is not None and node.kind not in kinds):
            what = f"a {node.kind}" if capable else "in place"
            planner.move_notes[move.target] = (f"moved from {move.source}, but the {node.backend} backend cannot "
                                               f"rename {what}: {move.source} is destroyed and {move.target} created")
            continue
        del recorded[move.source]
        recorded[move.target] = dataclasses.replace(old, address=move.target, spec={**old.spec, "name": node.name})
        planner.moved[move.target] = move.source
        planner.originals[move.target] = old
        planner.renamed_names[move.source.split(".", 1)[1]] = node.name
        done[move.source] = move.target
    if done:  # what others recorded of a moved resource is found under its new address
        for address, record in list(recorded.items()):
            inputs = {(f"{UPSTREAM_PREFIX}{done[k[len(UPSTREAM_PREFIX):]]}" if k.startswith(UPSTREAM_PREFIX)
                       and k[len(UPSTREAM_PREFIX):] in done else k): v for k, v in record.inputs.items()}
            depends = tuple(done.get(d, d) for d in record.depends_on)
            if inputs != dict(record.inputs) or depends != tuple(record.depends_on):
                planner.originals.setdefault(address, record)  # what it exported, as recorded
                recorded[address] = dataclasses.replace(record, inputs=inputs, depends_on=depends)
    return forget


def _delete(record: RecordedResource, reason: str) -> Change:
    return Change(address=record.address, kind=record.kind, backend=record.backend, action=DELETE,
                  reasons=(reason,), before=dict(record.spec), depends_on=tuple(record.depends_on))


def _destroy_scope(graph, recorded, targets) -> list[str]:
    """Destroying a target also destroys what depends on it (recorded dependencies)."""
    if not targets:
        return list(recorded)
    dependents: dict[str, list[str]] = {}
    for address, record in recorded.items():
        for dep in record.depends_on:
            dependents.setdefault(dep, []).append(address)
    seen: set[str] = set()
    stack = [t for t in targets if t in recorded]
    while stack:
        address = stack.pop()
        if address not in seen:
            seen.add(address)
            stack.extend(dependents.get(address, ()))
    return list(seen)


def _reverse_order(recorded: Mapping[str, RecordedResource], addresses: Iterable[str]) -> list[str]:
    """Dependents before their dependencies, by recorded edges (stable for the same input)."""
    from graphlib import TopologicalSorter

    wanted = set(addresses)
    sorter = TopologicalSorter({a: [d for d in recorded[a].depends_on if d in wanted] for a in sorted(wanted)})
    return list(reversed(list(sorter.static_order())))


@functools.lru_cache(maxsize=64)
def _renaming_pattern(names: tuple[str, ...]):
    """Old names where a reference may use them: a whole word followed by ``:`` or ``.``."""
    import re

    alternatives = "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True))
    return re.compile(rf"(?<![\w.])(?:{alternatives})(?=[:.])")
