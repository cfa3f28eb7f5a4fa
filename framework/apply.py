"""Execute exactly a Plan: a bounded parallel walk of its changes in dependency order.

Each resource's result is written to state the moment it finishes (one transaction), so an interrupt
or a crash loses nothing done and the next plan shows only what is left. A failed resource skips its
dependents; the rest stop (default) or continue (`keep_going`).
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime, timezone
from graphlib import TopologicalSorter
from pathlib import Path
from typing import Any, Callable, Mapping

from .contract import AdoptRequest, ApplyContext, ApplyRequest, DeleteRequest, MoveRequest, RecordedResource, Resource
from .errors import MLError, ProviderError
from .secrets import mask_secrets
from .plan.model import CREATE, DELETE, NOOP, REPLACE, Change, Plan
from .state.base import ResourceOutcome

__all__ = ["ApplyReport", "Event", "apply_plan", "default_parallelism"]


def default_parallelism() -> int:
    """Providers mostly wait on I/O or run native code that releases the GIL: 2 per core, at least 2."""
    return max(2, 2 * (os.cpu_count() or 1))


@dataclass(frozen=True)
class Event:
    kind: str  # start | progress | succeeded | failed | skipped
    address: str
    action: str
    message: str = ""
    duration_s: float | None = None


@dataclass
class ApplyReport:
    outcomes: list[ResourceOutcome] = field(default_factory=list)
    interrupted: bool = False
    messages: dict[str, str] = field(default_factory=dict)  # address -> what its provider said it did

    def count(self, outcome: str) -> int:
        return sum(1 for o in self.outcomes if o.outcome == outcome)

    @property
    def ok(self) -> bool:
        return not self.interrupted and all(o.outcome == "succeeded" for o in self.outcomes)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _edges(changes: Mapping[str, Change], recorded: Mapping[str, RecordedResource]) -> dict[str, set[str]]:
    """Creates/updates wait for their dependencies; deletes wait for the deletes of their dependents."""
    edges: dict[str, set[str]] = {a: set() for a in changes}
    for address, change in changes.items():
        if change.action == DELETE:
            continue
        edges[address].update(d for d in change.depends_on if d in changes and changes[d].action != DELETE)
    for address, change in changes.items():
        if change.action in (DELETE, REPLACE) and address in recorded:
            for dep in recorded[address].depends_on:
                if dep in changes and changes[dep].action == DELETE:
                    edges[dep].add(address)  # a dependency is deleted only after what used it
    return edges


class _Walk:
    def __init__(self, plan, resources, store, registry, *, lock_id, run_id, project_dir, parallelism,
                 keep_going, on_event, trigger=None):
        self.trigger = trigger
        self.changes = {c.address: c for c in plan.pending()}
        self.retry = set(getattr(plan, "retry", ()) or ())
        self.resources = resources
        self.store = store
        self.registry = registry
        self.lock_id = lock_id
        self.run_id = run_id
        self.project_dir = project_dir
        self.parallelism = max(1, parallelism)
        self.keep_going = keep_going
        self.on_event = on_event or (lambda event: None)
        self.recorded = {r.address: r for r in store.list_resources()}
        make_services = getattr(registry, "services", None)
        self.services = make_services(state=store) if callable(make_services) else None
        self._project = None
        self.report = ApplyReport()
        self.failed: set[str] = set()
        self.skipped: set[str] = set()
        self.stop = False
        self._state_lock = threading.Lock()

    # -- one resource --------------------------------------------------------------------------------
    def _context(self, change: Change) -> ApplyContext:
        upstream = {d: self.recorded[d] for d in change.depends_on if d in self.recorded}
        if self._project is None:
            from .project import Project

            try:
                self._project = Project.load(Path(self.project_dir))
            except Exception:  # ml.yaml was readable when the plan was made; a provider that needs it will say
                self._project = None
        return ApplyContext(
            address=change.address, project_dir=self.project_dir, upstream=upstream,
            on_progress=lambda address, message, fraction: self.on_event(Event("progress", address, "", message)),
            on_checkpoint=self._checkpoint, trigger=self.trigger, services=self.services, state=self.store,
            project=self._project,
        )

    def _checkpoint(self, address: str, outputs: Mapping) -> None:
        change = self.changes[address]
        resource: Resource = self.resources[address]
        record = RecordedResource(address=address, kind=change.kind, backend=change.backend, spec=resource.spec,
                                  fingerprint="", inputs=change.inputs, outputs=mask_secrets(dict(outputs)), status="in_progress",
                                  depends_on=change.depends_on, updated_at=_now())
        self._write(record)

    def _write(self, record: RecordedResource | None, remove: str | None = None) -> None:
        with self._state_lock:
            if record is not None:
                self.store.put(record, lock_id=self.lock_id)
                self.recorded[record.address] = record
            else:
                self.store.remove(remove, lock_id=self.lock_id)
                self.recorded.pop(remove, None)

    def _restate(self, change: Change) -> None:
        """Rewrite a record without calling its backend (it follows a moved resource), or forget the old
        record of a rename that was recorded but not finished."""
        if change.address not in self.resources:
            if change.address in self.recorded:
                self._write(None, remove=change.address)
            return
        prior = self.recorded[change.address]
        self._write(dataclasses.replace(prior, spec=self.resources[change.address].spec,
                                        fingerprint=change.fingerprint or "", inputs=dict(change.inputs),
                                        depends_on=change.depends_on, updated_at=_now()))
        self.report.messages[change.address] = "record rewritten (follows a moved resource); nothing rebuilt"

    def _move(self, change: Change, ctx: ApplyContext) -> RecordedResource | None:
        """Rename in place (``kind: Moved``): the backend first (idempotent), then the new record, then the
        old one goes — an apply stopped in between is finished by the next plan."""
        old = self.recorded.get(change.moved_from)
        if old is None:  # renamed by an earlier, interrupted apply
            return self.recorded.get(change.address)
        resource = self.resources[change.address]
        mover = self.registry.capable(change.backend, "move")
        if mover is None:
            raise MLError(f"the {change.backend} backend can no longer rename in place (plan again)")
        outputs = mover.move(MoveRequest(recorded=old, resource=resource), ctx)
        done = change.action == NOOP
        renamed = RecordedResource(
            address=change.address, kind=change.kind, backend=change.backend,
            spec=resource.spec if done else {**old.spec, "name": resource.spec.get("name", resource.name)},
            fingerprint=(change.fingerprint or "") if done else old.fingerprint,
            inputs=dict(change.inputs) if done else dict(old.inputs), outputs=mask_secrets(dict(outputs or {})),
            status="applied" if done else old.status, depends_on=change.depends_on, updated_at=_now())
        self._write(renamed)
        self._write(None, remove=change.moved_from)
        self.report.messages[change.address] = f"renamed from {change.moved_from}; nothing rebuilt"
        return renamed

    def run_one(self, address: str) -> None:
        change = self.changes[address]
        if change.restate:
            self._restate(change)
            return
        provider = self.registry.get(change.backend if change.action != DELETE else self.recorded[address].backend)
        ctx = self._context(change)
        prior = self.recorded.get(address)
        if change.moved_from:
            prior = self._move(change, ctx)
            if change.action == NOOP:
                return
        if change.action in (DELETE, REPLACE) and prior is not None:
            provider.delete(DeleteRequest(prior), ctx)
            self._write(None, remove=address)
            if change.action == DELETE:
                return
            prior = None
        resource = self.resources[address]
        if change.imported and change.action == CREATE and prior is None:
            adopter = self.registry.capable(change.backend, "adopt")
            if adopter is None:
                raise MLError(f"the {change.backend} backend can no longer adopt existing objects (plan again)")
            outputs = adopter.adopt(AdoptRequest(resource, change.imported, Path(self.project_dir), self.services), ctx)
            self.report.messages[address] = f"adopted {change.imported}; nothing built"
            self._write(RecordedResource(
                address=address, kind=change.kind, backend=change.backend, spec=resource.spec,
                fingerprint=change.fingerprint or "", inputs=dict(change.inputs), outputs=mask_secrets(dict(outputs or {})),
                status="applied", depends_on=change.depends_on, updated_at=_now()))
            return
        action = CREATE if change.action == REPLACE else change.action
        result = provider.apply(ApplyRequest(action=action, resource=resource, prior=prior,
                                             fingerprint=change.fingerprint, retry=address in self.retry), ctx)
        if result.message:
            self.report.messages[address] = result.message
        self._write(RecordedResource(
            address=address, kind=change.kind, backend=change.backend, spec=resource.spec,
            fingerprint=change.fingerprint or "", inputs=dict(change.inputs), outputs=mask_secrets(dict(result.outputs or {})),
            status="applied", depends_on=change.depends_on, updated_at=_now()))

    def _timed(self, address: str) -> tuple[str, float, BaseException | None]:
        start = time.perf_counter()
        try:
            self.run_one(address)
            return address, time.perf_counter() - start, None
        except BaseException as exc:  # reported as this resource's failure, never lost
            return address, time.perf_counter() - start, exc

    # -- the walk ------------------------------------------------------------------------------------------
    def _skip_dependents(self, address: str, edges_rev: Mapping[str, list[str]]) -> None:
        stack = list(edges_rev.get(address, ()))
        while stack:
            dependent = stack.pop()
            if dependent not in self.skipped:
                self.skipped.add(dependent)
                stack.extend(edges_rev.get(dependent, ()))

    def _finish(self, address: str, duration: float, exc: BaseException | None) -> None:
        action = _verb(self.changes[address])
        if exc is None:
            outcome = ResourceOutcome(address, action, "succeeded", None, round(duration, 3))
            self.on_event(Event("succeeded", address, action, self.report.messages.get(address, ""), duration))
        else:
            error = _wrap(address, exc)
            outcome = ResourceOutcome(address, action, "failed", str(error), round(duration, 3))
            self.failed.add(address)
            self.on_event(Event("failed", address, action, str(error), duration))
        self.report.outcomes.append(outcome)
        self.store.record_outcome(self.run_id, outcome)

    def _mark_skipped(self, address: str, why: str) -> None:
        action = _verb(self.changes[address])
        outcome = ResourceOutcome(address, action, "skipped", why)
        self.report.outcomes.append(outcome)
        self.store.record_outcome(self.run_id, outcome)
        self.on_event(Event("skipped", address, action, why))

    def walk(self) -> ApplyReport:
        edges = _edges(self.changes, self.recorded)
        edges_rev: dict[str, list[str]] = {}
        for address, deps in edges.items():
            for dep in deps:
                edges_rev.setdefault(dep, []).append(address)
        sorter = TopologicalSorter(edges)
        sorter.prepare()
        running: dict[Future, str] = {}
        ready: list[str] = []  # submitted only while a worker is free, so a stop or Ctrl-C starts nothing queued
        pool = ThreadPoolExecutor(max_workers=self.parallelism, thread_name_prefix="ml-apply")
        try:
            while sorter.is_active():
                ready.extend(sorter.get_ready())
                while ready and len(running) < self.parallelism:
                    address = ready.pop(0)
                    if address in self.skipped or self.stop:
                        reason = ("upstream failed" if address in self.skipped else "not started: apply stopped")
                        self._mark_skipped(address, reason)
                        sorter.done(address)
                        continue
                    self.on_event(Event("start", address, _verb(self.changes[address])))
                    running[pool.submit(self._timed, address)] = address
                if not running:
                    continue
                done, _ = wait(list(running), return_when=FIRST_COMPLETED)
                for future in done:
                    address, duration, exc = future.result()
                    del running[future]
                    self._finish(address, duration, exc)
                    if exc is not None and not (getattr(exc, "prior_kept", False) and address in self.recorded):
                        self._skip_dependents(address, edges_rev)
                        if isinstance(exc, KeyboardInterrupt) or not self.keep_going:
                            self.stop = True
                    sorter.done(address)
        except KeyboardInterrupt:
            # Finish what is in flight (its results are written as they land), start nothing new.
            self.report.interrupted = True
            self.stop = True
            for future in list(running):
                address, duration, exc = future.result()
                self._finish(address, duration, exc)
        finally:
            pool.shutdown(wait=True)
        return self.report


def _verb(change: Change) -> str:
    """What the history and the report call the work on a change: its action, or move / restate."""
    if change.action == NOOP and change.moved_from:
        return "move"
    if change.action == NOOP and change.restate:
        return "restate"
    if change.imported and change.action == CREATE:
        return "import"
    return change.action


def _preflight(plan: Plan, resources: Mapping[str, Resource], registry, project_dir: Path) -> None:
    from .errors import ApplyRefused

    problems = []
    for change in plan.pending():
        resource = resources.get(change.address)
        if change.action in (DELETE, NOOP) or resource is None:
            continue
        capable = getattr(registry, "capable", None)
        try:
            provider = capable(change.backend, "preflight") if callable(capable) else None
            if provider is not None:
                provider.preflight(ApplyRequest(change.action, resource, None), project_dir)
        except MLError as exc:
            problems.append(f"{change.address}: {exc}")
    if problems:
        raise ApplyRefused("nothing was applied: " + "; ".join(problems) if len(problems) == 1 else
                           "nothing was applied:\n  " + "\n  ".join(problems))


def _wrap(address: str, exc: BaseException) -> MLError:
    if isinstance(exc, ProviderError):
        return exc
    if isinstance(exc, MLError):
        return ProviderError(address, exc.message, hint=exc.hint)
    if isinstance(exc, KeyboardInterrupt):
        return ProviderError(address, "interrupted")
    return ProviderError(address, f"{type(exc).__name__}: {exc}")


def apply_plan(
    plan: Plan,
    resources: Mapping[str, Resource],
    store,
    registry,
    *,
    lock_id: str,
    project_dir: Path,
    parallelism: int | None = None,
    keep_going: bool = False,
    on_event: Callable[[Event], None] | None = None,
    trigger: Mapping[str, Any] | None = None,
    actor: str | None = None,
) -> ApplyReport:
    """Apply the plan's pending changes. The caller holds the lock and has checked serial/lineage.
    ``trigger``: what started the apply when not a person (handed to providers as ``ctx.trigger``);
    ``actor``: who ran it (recorded in the history with any policy overrides the plan carries).
    Providers offering ``preflight`` check every pending change first; any refusal stops the apply before
    anything starts."""
    _preflight(plan, resources, registry, project_dir)
    details = {"env": plan.env, "overrides": list(plan.overrides), "targets": list(plan.targets)}
    if actor:  # who ran it, and from which commit of the specs
        details["actor"] = actor
        from .actor import specs_commit

        commit = specs_commit(Path(project_dir))
        if commit:
            details["git"] = commit
    overridden = [{"policy": c.name, "by": c.overridden_by, "failures": [a for a, _ in c.failures]}
                  for c in plan.policy_checks if c.overridden_by]
    if overridden:
        details["policy_overrides"] = overridden
    run_id = store.begin_run(plan.operation, plan_id=plan.plan_id, lock_id=lock_id, details=details)
    walk = _Walk(plan, resources, store, registry, lock_id=lock_id, run_id=run_id, project_dir=project_dir,
                 parallelism=parallelism or default_parallelism(), keep_going=keep_going, on_event=on_event,
                 trigger=trigger)
    status = "failed"
    try:
        report = walk.walk()
        status = "interrupted" if report.interrupted else ("succeeded" if report.ok else "failed")
        return report
    finally:
        store.finish_run(run_id, status)
