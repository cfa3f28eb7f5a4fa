"""What a monitor does when it finds drift or decay: ``alert``, ``retrain``, ``rollback``.

* ``alert``: one log line on stderr (``ALERT monitor=... status=drift features=...``), the non-zero exit
  code of `ml monitor run`, and, when the spec names one (``alert.webhook`` or the environment variable
  ``alert.webhook_env``), a JSON POST to that URL. A webhook that fails is reported; the run still
  says drift.
* ``retrain``: a plan of the model (and the deployment and the monitor that follow it) through the normal
  engine — :func:`ml_framework.operations.make_plan` and :func:`ml_framework.apply.apply_plan` under the state
  lock, exactly as `ml apply --target` — so the new version has to pass its gates, and the deployment then
  rolls it out with its own strategy. Retraining on the data the deployed version already learned from
  would learn the same thing, so the action is skipped (and says so) unless the training data changed.
  Fresh data may also update what the model reads (a feature view re-materialized): updates without
  spec edits are applied with it. It refuses, and says why, when the plan would also apply a spec edit,
  or create, replace or delete anything: those are for a person to review with `ml apply`.
* ``rollback``: the serving backend's own rollback when its provider has one, through
  :func:`ml_framework.plugins.serving.cli.rollback_deployment` (as `ml rollback deployment/NAME`: under the lock,
  recorded in state and history: back to the revision that served before); otherwise the model registry's
  ``production`` alias moves back to ``previous`` (as `ml models rollback`) and the deployment is planned
  and applied so its backend serves it.

``retrain`` and ``rollback`` run at most once per ``cooldown`` per monitor (failed attempts count too):
a monitor that keeps seeing drift does not retrain in a loop.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from datetime import datetime
from typing import Any, Callable

from ml_framework.errors import MLError

from .results import ActionOutcome, RunResult
from .schema import PREDICTION

__all__ = ["alert", "retrain", "rollback", "in_cooldown", "alert_line", "webhook_payload"]

SUCCEEDED, FAILED, SKIPPED = "succeeded", "failed", "skipped"


def _fmt_p(value: float | None) -> str:
    return "-" if value is None else (f"{value:.2e}" if value < 0.001 else f"{value:.3f}")


def _shown(name: str) -> str:
    return "prediction" if name == PREDICTION else name


def alert_line(result: RunResult) -> str:
    parts = [f"ALERT monitor={result.monitor}", f"deployment={result.deployment}", f"status={result.status}"]
    for version in result.versions:
        if version.status not in ("drift", "decay"):
            continue
        drifted = [f for f in version.drift.features if f.drift]
        detail = ",".join(f"{_shown(f.name)}(p={_fmt_p(f.p_val)})" for f in drifted)
        if version.drift.method == "mmd" and version.drift.status == "drift":
            detail = detail or f"multivariate(p={_fmt_p(version.drift.p_val)})"
        perf = version.performance
        metrics = (perf.decayed() + perf.decayed_slices()) if perf else []
        decayed = ",".join(f"{_metric_name(m)}={m.value:.4f}{_worse_than(m.metric)}{m.baseline:.4f}" for m in metrics
                           if m.value is not None and m.baseline is not None)
        parts.append(f"version={version.model_version}")
        parts.append(f"rows={version.drift.n}")
        if detail:
            parts.append(f"features={detail}")
        if decayed:
            parts.append(f"decay={decayed}")
    skewed = [f for f in result.skew or () if f.mismatches]
    if skewed:
        parts.append("skew=" + ",".join(f"{_shown(f.feature)}({f.mismatches}/{f.checked})" for f in skewed))
    return " ".join(parts)


def _worse_than(metric: str) -> str:
    """How a decayed value compares with its baseline: below for auc-like metrics, above for rmse-like ones."""
    from ml_framework.plugins.models.metrics import METRICS

    found = METRICS.get(metric)
    return "<" if found is None or found.higher_is_better else ">"


def _metric_name(metric) -> str:
    """``auc``, or for a slice segment ``auc[channel=pos]``."""
    return f"{metric.metric}[{metric.slice}={metric.segment}]" if metric.slice else metric.metric


def webhook_payload(result: RunResult) -> dict[str, Any]:
    return {
        "monitor": result.monitor, "deployment": result.deployment, "status": result.status, "at": result.at,
        "run_id": result.run_id,
        "versions": [{
            "model": v.model, "version": v.model_version, "status": v.status, "rows": v.drift.n,
            "drifted_features": v.drift.drifted(),
            "p_values": {f.name: f.p_val for f in v.drift.features if f.p_val is not None},
            "decayed_metrics": {m.metric: {"value": m.value, "baseline": m.baseline}
                                for m in (v.performance.decayed() if v.performance else [])},
            "decayed_slices": [{"slice": m.slice, "segment": m.segment, "metric": m.metric, "value": m.value,
                                "baseline": m.baseline, "rows": m.n}
                               for m in (v.performance.decayed_slices() if v.performance else [])],
        } for v in result.versions],
    }


def alert(result: RunResult, spec, echo: Callable[[str], None]) -> ActionOutcome:
    echo(alert_line(result))
    url = None
    if spec.alert is not None:
        url = spec.alert.webhook or (os.environ.get(spec.alert.webhook_env) if spec.alert.webhook_env else None)
        if spec.alert.webhook_env and not url:
            return ActionOutcome("alert", FAILED, f"logged; webhook skipped: ${spec.alert.webhook_env} is not set")
    if not url:
        return ActionOutcome("alert", SUCCEEDED, "logged")
    body = json.dumps(webhook_payload(result), default=str).encode()
    request = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Content-Type": "application/json", "User-Agent": "ml-monitor"})
    shown = url.split("?", 1)[0] if not spec.alert.webhook_env else f"${spec.alert.webhook_env}"
    try:
        with urllib.request.urlopen(request, timeout=spec.alert.timeout_s) as response:
            return ActionOutcome("alert", SUCCEEDED, f"logged; webhook {shown} answered {response.status}")
    except urllib.error.HTTPError as exc:
        return ActionOutcome("alert", FAILED, f"logged; webhook {shown} answered {exc.code}")
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return ActionOutcome("alert", FAILED, f"logged; webhook {shown} failed: {reason}")


def in_cooldown(mstore, monitor: str, action: str, cooldown_s: int, now: datetime) -> str | None:
    """A reason to skip ``action`` now, or None."""
    last = mstore.last_action(monitor, action, outcomes=(SUCCEEDED, FAILED))
    if last is None:
        return None
    elapsed = (now - datetime.fromisoformat(last)).total_seconds()
    if elapsed < cooldown_s:
        return f"cooldown: the last {action} was at {last} (cooldown {cooldown_s // 60} min)"
    return None


def _error(outcome) -> str:
    """A failed resource's error, named once (the engine already prefixes the address)."""
    error = str(outcome.error or "").split("\n  hint:", 1)[0]
    return error if error.startswith(outcome.address + ":") else f"{outcome.address}: {error}"


def _event_printer(echo):
    def on_event(event) -> None:
        if event.kind in ("start", "succeeded", "failed", "skipped"):
            extra = f": {event.message}" if event.message else ""
            echo(f"  {event.address}: {event.kind} {event.action}{extra}")
        elif event.kind == "progress":
            echo(f"  {event.address}: {event.message}")

    return on_event


def _unreviewed(change) -> str | None:
    """Why applying ``change`` would go beyond a retrain, or None: anything but an update without spec
    edits (fresh data, an upstream change, a runtime bump) is for a person to review with `ml apply`."""
    from ml_framework.plan.model import UPDATE

    if change.action != UPDATE:
        return f"{change.action} not applied yet"
    if change.fields:
        more = f" and {len(change.fields) - 3} more" if len(change.fields) > 3 else ""
        return "spec changed: " + ", ".join(f.path for f in change.fields[:3]) + more
    return None


def _plan_and_apply(project, plugins, targets, lock_operation: str, *, check, env, overrides, echo, trigger=None):
    """Plan ``targets`` under the lock, let ``check(plan)`` veto (returns a skip/refusal outcome), apply."""
    from ml_framework.apply import apply_plan
    from ml_framework.locking import held_lock
    from ml_framework.operations import load_specs, make_plan, resources_for

    loaded = load_specs(project, plugins, env=env, overrides=overrides)
    store = project.open_state()
    try:
        with held_lock(store, lock_operation) as lock:
            plan = make_plan(project, plugins, store, loaded, targets=targets)
            veto = check(plan)
            if veto is not None:
                return veto, None
            report = apply_plan(plan, resources_for(plan, loaded), store, plugins, lock_id=lock.id,
                                project_dir=project.root, on_event=_event_printer(echo), trigger=trigger)
            return None, report
    finally:
        store.close()


def retrain(project, plugins, spec, version, *, env=None, overrides=(), echo=print) -> ActionOutcome:
    """Retrain ``version``'s model with the data as it is now, through plan + apply (see the module doc)."""
    from ml_framework.plan.model import NOOP
    from ml_framework.plugins.models.registry import ModelRegistry

    model_address = version.address
    targets = [model_address, f"deployment.{spec.deployment}", f"monitor.{spec.name}"]

    def check(plan):
        changes = {c.address: c for c in plan.changes}
        model = changes.get(model_address)
        if model is None:
            return ActionOutcome("retrain", FAILED, f"{model_address} is not in the specs")
        if model.action == NOOP:
            return ActionOutcome("retrain", SKIPPED, f"the training data is unchanged since {version.label} was "
                                 "trained: retraining would learn the same model (add fresh labelled data)")
        unreviewed = {c.address: _unreviewed(c) for c in plan.pending() if _unreviewed(c)}
        if unreviewed:
            what = "; ".join(f"{a}: {r}" for a, r in unreviewed.items())
            return ActionOutcome("retrain", FAILED, f"refused: the plan would also apply changes nobody reviewed "
                                 f"({what}); apply them with `ml apply` first")
        if plan.errors:
            return ActionOutcome("retrain", FAILED, "refused: " + "; ".join(f"{e.address}: {e.message}" for e in plan.errors))
        echo(f"retrain: {model_address} " + "; ".join(model.reasons))
        return None

    try:
        veto, report = _plan_and_apply(project, plugins, targets, "monitor retrain", check=check, env=env,
                                       overrides=overrides, echo=echo,
                                       trigger={"by": "monitor", "monitor": spec.name, "action": "retrain"})
    except MLError as exc:
        return ActionOutcome("retrain", FAILED, str(exc).splitlines()[0])
    if veto is not None:
        return veto
    failed = [o for o in report.outcomes if o.outcome == "failed"]
    registry = ModelRegistry.for_project(project.root)
    newest = registry.versions(version.model)[-1] if registry.versions(version.model) else None
    if failed:
        return ActionOutcome("retrain", FAILED, "; ".join(_error(o) for o in failed))
    rolled = [o.address for o in report.outcomes if o.outcome == "succeeded" and o.address != model_address]
    label = f"{newest.ref} ({newest.status}, aliases: {', '.join(newest.aliases) or 'none'})" if newest else "?"
    return ActionOutcome("retrain", SUCCEEDED, f"trained {label}" + (f"; applied {', '.join(rolled)}" if rolled else ""))


def rollback(project, plugins, spec, deployment_record, version, *, reason: str, env=None, overrides=(),
             echo=print) -> ActionOutcome:
    """Move the deployment back (see the module doc)."""
    from ml_framework.locking import held_lock
    from ml_framework.plugins.models.registry import ModelRegistry, RegistryError

    if plugins.capable(deployment_record.backend, "rollback") is not None:
        from ml_framework.plugins.serving.cli import rollback_deployment

        try:
            outputs = rollback_deployment(project, plugins, deployment_record.address, reason=reason,
                                          progress=lambda message: echo(f"  {deployment_record.address}: {message}"))
        except MLError as exc:
            return ActionOutcome("rollback", FAILED, str(exc).splitlines()[0])
        serving = outputs.get("model_version") or outputs.get("stable_version")
        return ActionOutcome("rollback", SUCCEEDED, f"{deployment_record.address} rolled back by its backend"
                             + (f": now serving {serving}" if serving else ""))
    ref = str(deployment_record.spec.get("model", ""))
    if "@" in ref or ":" in ref:
        return ActionOutcome("rollback", SKIPPED, f"{deployment_record.address} is pinned to {ref}: change the spec "
                             "to move it (its backend has no rollback of its own)")
    registry = ModelRegistry.for_project(project.root)
    store = project.open_state()
    try:
        with held_lock(store, "monitor rollback"):
            try:
                old, now = registry.rollback(version.model, reason=reason)
            except RegistryError as exc:
                return ActionOutcome("rollback", FAILED, exc.message)
    finally:
        store.close()
    echo(f"rollback: {version.model} production v{old} → {now.label}")
    try:
        _, report = _plan_and_apply(project, plugins, [deployment_record.address], "monitor rollback",
                                    check=lambda plan: None, env=env, overrides=overrides, echo=echo)
    except MLError as exc:
        return ActionOutcome("rollback", FAILED, f"production is {now.ref} again, but applying "
                             f"{deployment_record.address} failed: {str(exc).splitlines()[0]}")
    if report is not None and not report.ok:
        return ActionOutcome("rollback", FAILED, f"production is {now.ref} again; "
                             + "; ".join(_error(o) for o in report.outcomes if o.error))
    applied = report is not None and any(o.outcome == "succeeded" for o in report.outcomes)
    return ActionOutcome("rollback", SUCCEEDED, f"production {version.model} v{old} → {now.label}"
                         + (f"; {deployment_record.address} applied" if applied else ""))
