"""The steps of a run, composed: load specs -> graph -> plan -> apply. The CLI and tests call these."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from .contract import Resource
from .errors import GraphError, PlanError, SpecError, SpecErrors, did_you_mean
from .graph import ResourceGraph, build_graph
from .plan.model import DELETE, Plan
from .plan.planner import build_plan, to_resource
from .policy import check_overrides, evaluate
from .spec.compose import ComposedSpecs, compose
from .spec.validate import validate_specs

__all__ = ["Loaded", "load_specs", "make_plan", "with_policy_checks", "check_specs_against_policies",
           "check_saved_plan", "resources_for"]


@dataclass
class Loaded:
    composed: ComposedSpecs
    graph: ResourceGraph
    policies: tuple = ()  # the project's policy rules (framework.policy.Rule)
    moves: tuple = ()  # `kind: Moved` documents (framework.spec.compose.Move), checked against the graph
    imports: tuple = ()  # `kind: Import` documents (framework.spec.compose.Import), checked against the graph


def load_specs(project, registry=None, *, env: str | None = None, overrides: Iterable[str] = (),
               spec_dir: Path | None = None) -> Loaded:
    """Compose, validate (both phases when a registry is given) and build the graph."""
    kinds = (registry if registry is not None else project.registry()).kinds
    composed = compose(spec_dir or project.spec_dir, env=env, overrides=list(overrides), kinds=kinds)
    valid = validate_specs(composed, registry)
    graph = build_graph(valid, composed.locations)
    from .policy import load_rules

    moves = check_moves(composed.moves, graph)
    imports = check_imports(composed.imports, graph)
    return Loaded(composed=composed, graph=graph, policies=load_rules(project.policies, project.root, kinds.names()),
                  moves=moves, imports=imports)


def _check_documents(items, graph: ResourceGraph, *, once: str, what: str, gone: bool = False) -> tuple:
    """Moved / Import documents against the graph: ``to`` is a resource of the specs; the ``once`` field
    (``from`` or ``to``) names an address at most once; with ``gone``, ``from`` is no longer in the specs."""
    errors = []
    seen: dict[str, object] = {}
    for item in items:
        if item.target not in graph.nodes:
            errors.append(SpecError(f"{item.target} is not in the specs", location=item.location, field="to",
                                    hint=did_you_mean(item.target, graph.nodes)))
        if gone and item.source in graph.nodes:
            errors.append(SpecError(f"{item.source} is still in the specs (a moved resource is renamed, so "
                                    "its old name is gone)", location=item.location, field="from"))
        key = item.source if once == "from" else item.target
        if key in seen:
            errors.append(SpecError(f"{key} is {what} twice (first at {seen[key]})", location=item.location,
                                    field=once))
        seen.setdefault(key, item.location)
    if errors:
        raise SpecErrors(errors)
    return tuple(items)


def check_moves(moves, graph: ResourceGraph) -> tuple:
    """A move names a resource the specs have (``to``) and one they no longer have (``from``); each old
    address moves once. Several old addresses may lead to one new one (renamed twice over time)."""
    return _check_documents(moves, graph, once="from", what="moved", gone=True)


def check_imports(imports, graph: ResourceGraph) -> tuple:
    """An import names a resource of the specs, once."""
    return _check_documents(imports, graph, once="to", what="imported")


def _check_targets(targets: Iterable[str], graph: ResourceGraph, recorded: set[str]) -> None:
    known = set(graph.nodes) | recorded
    for target in targets:
        if target not in known:
            raise GraphError(f"--target {target}: no such resource", hint=did_you_mean(target, known))


def make_plan(project, registry, store, loaded: Loaded, *, targets: Iterable[str] = (), refresh: bool = True,
              destroy: bool = False, retry: Iterable[str] = (), policy_overrides: Iterable[str] = ()) -> Plan:
    """The plan, with the project's policies evaluated over it (``policy_overrides``: soft-mandatory rules
    the caller overrides, recorded with who did)."""
    meta = store.meta()
    recorded = store.list_resources()
    targets = tuple(targets)
    _check_targets(targets, loaded.graph, {r.address for r in recorded})
    _check_targets(retry, loaded.graph, set())
    policy_overrides = tuple(policy_overrides)
    check_overrides(loaded.policies, policy_overrides)
    plan = build_plan(
        loaded.graph, recorded, registry, lineage=meta.lineage, serial=meta.serial, project_dir=project.root,
        refresh=refresh, targets=targets, destroy=destroy, env=loaded.composed.env,
        overrides=loaded.composed.overrides, spec_dir=_relative(project.spec_dir, project.root),
        services=_services(registry, store), retry=tuple(retry), moves=loaded.moves, imports=loaded.imports,
    )
    plan = with_costs_of(plan, loaded, registry, project)
    return with_policy_checks(plan, loaded.policies, project, policy_overrides)


def with_costs_of(plan: Plan, loaded: Loaded, registry, project) -> Plan:
    """Each change priced with ml.yaml's ``pricing`` and what its backend says the resource uses
    (``resource_use`` capability; otherwise one core while applying, nothing while running)."""
    pricing = getattr(project, "pricing", None)
    if pricing is None:
        return plan
    from .contract import ResourceUse
    from .cost import with_costs

    uses = {}
    for change in plan.changes:
        node = loaded.graph.nodes.get(change.address)
        if change.action == DELETE or node is None:
            continue
        try:
            capable = getattr(registry, "capable", None)
            if capable is not None and capable(node.backend, "resource_use"):
                uses[change.address] = registry.get(node.backend).resource_use(to_resource(loaded.graph, change.address))
            else:
                uses[change.address] = ResourceUse()
        except Exception:  # noqa: BLE001 - a cost estimate never breaks a plan: that resource's cost stays unknown
            continue
    return with_costs(plan, uses, pricing)


def with_policy_checks(plan: Plan, rules, project, overrides: Iterable[str] = ()) -> Plan:
    """The plan with ``rules`` evaluated over its changes. A saved plan is checked again at apply with the
    rules in force then; the overrides it records still count, with who made them."""
    if not rules:
        return dataclasses.replace(plan, policy_checks=())
    from .actor import current_actor

    overrides = tuple(overrides)
    made = {c.name: c.overridden_by for c in plan.policy_checks if c.overridden_by}
    actor = current_actor(project.root) if overrides else None
    checks = evaluate(rules, plan.changes, env=plan.env, overrides=overrides, actor=actor, made=made)
    return dataclasses.replace(plan, policy_checks=checks)


def check_specs_against_policies(loaded: Loaded, project, overrides: Iterable[str] = ()):
    """At ``ml validate``: the rules over the desired specs alone (each resource as a create)."""
    from .plan.model import CREATE, Change

    changes = [Change(address=a, kind=n.kind, backend=n.backend, action=CREATE, after=dict(n.spec))
               for a, n in loaded.graph.nodes.items()]
    check_overrides(loaded.policies, overrides)
    actor = None
    if overrides:
        from .actor import current_actor

        actor = current_actor(project.root)
    return evaluate(loaded.policies, changes, env=loaded.composed.env, overrides=overrides, actor=actor)


def _services(registry, store):
    make = getattr(registry, "services", None)
    return make(state=store) if callable(make) else None


def _relative(path: Path, root: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(root))
    except ValueError:
        return str(path)


def check_saved_plan(saved: Plan, store, fresh: Plan) -> None:
    """Refuse a saved plan whose state moved on, that belongs to another state, or whose inputs changed."""
    meta = store.meta()
    if saved.lineage != meta.lineage:
        raise PlanError(f"the saved plan belongs to another state (lineage {saved.lineage}; "
                        f"this state is {meta.lineage})", hint="make the plan against this state with `ml plan -out`")
    if saved.serial != meta.serial:
        raise PlanError(f"the saved plan is stale: state serial was {saved.serial} when it was made and is "
                        f"{meta.serial} now", hint="run `ml plan -out FILE` again and review the new plan")
    current = {c.address: c for c in fresh.changes}
    moved = []
    for change in saved.pending():
        now = current.get(change.address)
        if change.action == DELETE:
            if saved.operation != "destroy" and change.address in {c.address for c in fresh.changes if c.action != DELETE}:
                moved.append(change.address)
        elif now is None or now.fingerprint != change.fingerprint:
            moved.append(change.address)
    if moved:
        raise PlanError("the specs or data changed since the plan was saved: " + ", ".join(moved),
                        hint="run `ml plan -out FILE` again and review the new plan")


def resources_for(plan: Plan, loaded: Loaded) -> dict[str, Resource]:
    return {c.address: to_resource(loaded.graph, c.address) for c in plan.pending()
            if c.action != DELETE and c.address in loaded.graph.nodes}
