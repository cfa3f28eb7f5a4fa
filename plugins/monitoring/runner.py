"""One pass of a monitor: read the window, check each model version's rows, store, act.

    result = run_monitor(session, "fraud-drift")      # a RunResult; also stored in the state database

1. The monitor as applied (its record in state: the spec its detectors were built for) and the
   deployment it watches.
2. The window of the deployment's prediction log (newest ``window.last`` rows and/or the last
   ``window.duration``), answered requests only, split by the model version that answered them; every
   version the deployment serves is checked, a served version without rows is "no traffic yet".
3. Per version, the detector backend's checker (``provider.open_checker(...).check(window, min_samples)``;
   built now if the version has none yet) tests drift; with ``ground_truth``, delayed labels are joined to
   the version's logged predictions of the ``lookback`` and its performance is compared with its
   validation metrics.
4. The results are stored as a time series (:mod:`.store`); drift runs ``on_drift``, decay runs
   ``on_decay`` (default: ``on_drift``); the actions taken are stored with the run.

The detector backend is any provider of the Monitor kind with ``open_checker``: the runner knows nothing of
alibi-detect. Status: ``drift`` or ``decay`` (exit code 3 of `ml monitor run`), ``ok`` (0), ``inconclusive``
(0: too few rows, no traffic, no labels — never drift), ``error`` (1).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import numpy as np
from typing import Callable

from ml_framework.errors import MLError, did_you_mean

from .results import DECAY, DRIFT, ERROR, SKEW, ActionOutcome, RunResult, VersionResult

__all__ = ["Session", "RunnerError", "run_monitor", "recorded_monitors", "EXIT_DRIFT", "exit_code"]

EXIT_OK, EXIT_ERROR, EXIT_DRIFT = 0, 1, 3


class RunnerError(MLError):
    """A monitor cannot run (not applied, its deployment gone...)."""


def exit_code(result: RunResult) -> int:
    if result.status == ERROR:
        return EXIT_ERROR
    return EXIT_DRIFT if result.status in (DRIFT, DECAY, SKEW) else EXIT_OK


@dataclass
class Session:
    """What runs share: the project, its plugins, the open state store and the monitor tables.
    One session serves many runs (``ml monitor watch``): detectors stay loaded between them."""

    project: object  # ml_framework.project.Project
    plugins: object  # ml_framework.plugin_registry.PluginRegistry
    store: object  # the open state store
    env: str | None = None
    overrides: tuple[str, ...] = ()
    echo: Callable[[str], None] = print
    act: bool = True  # False: report what would be done, do nothing (--no-actions)
    _mstore: object = field(default=None, repr=False)

    @classmethod
    def open(cls, project, plugins, **kwargs) -> "Session":
        return cls(project=project, plugins=plugins, store=project.open_state(), **kwargs)

    @property
    def mstore(self):
        if self._mstore is None:
            from .store import MonitorStore

            self._mstore = MonitorStore.for_store(self.store)
        return self._mstore

    @property
    def registry(self):
        from ml_framework.plugins.models.registry import ModelRegistry

        return ModelRegistry.for_store(self.store)

    def close(self) -> None:
        self.store.close()


def recorded_monitors(store) -> dict[str, object]:
    """name -> recorded resource, for every applied Monitor."""
    return {r.spec.get("name") or r.address.split(".", 1)[1]: r for r in store.list_resources() if r.kind == "Monitor"}


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _since_us(now: datetime, duration: str | None) -> int | None:
    if not duration:
        return None
    from ml_framework.spec.kinds import parse_duration

    return int((now - timedelta(seconds=parse_duration(duration))).timestamp() * 1_000_000)


def _settings(provider, spec):
    model = provider.config_model("Monitor")
    block = dict(spec.detector.model_extra or {})
    return model.model_validate(block) if model is not None else block


def run_monitor(session: Session, name: str, *, now: datetime | None = None) -> RunResult:
    """Run the applied monitor ``name`` once (see the module doc). Errors are stored as an ``error`` run
    and raised."""
    record = session.store.get(f"monitor.{name}")
    if record is None or record.kind != "Monitor":
        monitors = recorded_monitors(session.store)
        hint = did_you_mean(name, list(monitors)) or ("apply it first: ml apply" if not monitors else
                                                      f"applied monitors: {', '.join(sorted(monitors))}")
        raise RunnerError(f"no applied monitor named {name!r}", hint=hint)
    now = now or _now()
    started = time.perf_counter()
    from ml_framework.plugins.monitoring.kinds import Monitor

    spec = Monitor.model_validate(dict(record.spec))
    result = RunResult(monitor=name, deployment=spec.deployment, at=now.isoformat(timespec="microseconds"),
                       window=spec.window.model_dump())
    try:
        _check(session, record, spec, result, now)
    except MLError as exc:
        result.error = str(exc).splitlines()[0]
        result.duration_s = round(time.perf_counter() - started, 4)
        session.mstore.record(result)
        raise
    result.duration_s = round(time.perf_counter() - started, 4)
    session.mstore.record(result)
    _act(session, spec, record, result, now)
    if result.actions:
        result.duration_s = round(time.perf_counter() - started, 4)
        session.mstore.finish_run(result.run_id, result)
    return result


def _check(session: Session, record, spec, result: RunResult, now: datetime) -> None:
    from .logcache import NO_TS, read_log
    from .reference import served_versions

    deployment = session.store.get(f"deployment.{spec.deployment}")
    if deployment is None:
        raise RunnerError(f"deployment.{spec.deployment} (watched by monitor.{spec.name}) is not applied",
                          hint=f"ml apply --target deployment.{spec.deployment}")
    registry = session.registry
    served = served_versions(deployment, registry)
    model = served[0].model
    provider = session.plugins.capable(record.backend, "drift_checker")
    if provider is None:
        raise RunnerError(f"backend {record.backend!r} cannot run monitors (it does not offer the drift_checker "
                          "capability)")
    settings = _settings(provider, spec)
    columns = ["model_version", "prediction", "prediction_class", "f:"]
    window = read_log(session.project.root, spec.deployment, last=spec.window.last,
                      since_us=_since_us(now, spec.window.duration), columns=columns)
    result.window.update(rows=window.n, skipped_rows=window.dropped_rows)
    if window.n:
        ts = window.get("ts")
        first, last = int(ts.min()), int(ts.max())
        if first == NO_TS and last != NO_TS:  # some rows without a time: the earliest of the others
            first = int(ts[ts != NO_TS].min())
        if last != NO_TS:
            result.window.update(start=_iso(first), end=_iso(last))
    versions = window.categories("model_version") if window.n else None
    single = versions is not None and len(versions.vocab) == 1 and int(versions.codes.min()) >= 0
    labels = _labels(versions, served, registry, model, result, single=single)
    known = {v.label: v for v in served}
    for label in labels:
        version = known.get(label) or registry.get(model, label)
        rows = window
        if single:  # every row answered by one version (the usual case): no mask to build
            rows = window if versions.vocab[0] == label else window.select(slice(0, 0))
        elif versions is not None:
            found = np.flatnonzero(versions.vocab == label)
            mask = versions.codes == (found[0] if len(found) else -2)
            rows = window if mask.all() else window.select(mask)
        checker = provider.open_checker(session.project.root, spec, settings, version, session.store,
                                        progress=lambda message: session.echo(f"  {message}"))
        if getattr(checker, "built_now", False):
            result.notes.append(f"built the detector of {version.ref} now: the next `ml apply` records it in state")
        drift = checker.check(rows, min_samples=spec.window.min_samples)
        checked = VersionResult(model=model, model_version=label, drift=drift,
                                reference=dict(checker.meta.get("reference") or {}))
        if spec.ground_truth is not None:
            checked.performance = _performance(session, spec, version, now)
        result.versions.append(checked)
    if spec.skew is not None:
        _skew(session, spec, model, result)


def _skew(session: Session, spec, model: str, result: RunResult) -> None:
    """The live training/serving skew check, through the ``live_skew`` service the models plugin offers."""
    from .results import SkewFinding

    services = session.plugins.services(state=session.store)
    if "live_skew" not in services.names():
        result.notes.append("skew: not checked (no plugin offers the live_skew service; the models plugin does)")
        return
    try:
        found = services.get("live_skew")(model, spec.deployment, last=spec.skew.last, tolerance=spec.skew.tolerance)
    except MLError as exc:  # e.g. no answered request yet: nothing to compare, never skew
        result.notes.append(f"skew: not checked ({str(exc).splitlines()[0]})")
        return
    result.skew = [SkewFinding(feature=r.feature, kind=r.kind, checked=r.checked, mismatches=r.mismatches,
                               max_difference=r.max_difference, example=dict(r.example) or None) for r in found]


def _labels(versions, served, registry, model: str, result: RunResult, *, single: bool = False) -> list[str]:
    """The versions to check: every served one, and any other the window holds that the registry knows.
    ``single``: every row of the window names the one version of ``versions.vocab``."""
    labels = [v.label for v in served]
    if versions is None:
        return labels
    if single and str(versions.vocab[0]) in labels:
        return labels
    counts = (np.array([0, len(versions.codes)]) if single else  # [no version, vocab...]
              np.bincount(versions.codes + 1, minlength=len(versions.vocab) + 1))
    for index, label in enumerate(versions.vocab.tolist()):
        if not counts[index + 1] or label in labels:
            continue
        if registry.get(model, label) is not None:
            labels.append(label)
        else:
            result.notes.append(f"{int(counts[index + 1])} logged rows come from {label}, which the registry "
                                "does not know: skipped")
    if counts[0]:
        result.notes.append(f"{int(counts[0])} logged rows name no model version: skipped")
    return labels


def _performance(session: Session, spec, version, now: datetime):
    from .ground_truth import evaluate, load_labels
    from .logcache import read_log

    gt = spec.ground_truth
    model_record = session.store.get(version.address)
    task = str((model_record.spec if model_record else {}).get("task") or "binary")
    columns = ["request_id", "model_version", "prediction", "prediction_class", "e:"] + [f"f:{s}" for s in gt.slices]
    if gt.join == "entity":
        columns += [f"f:{k}" for k in gt.entity_keys or []]
    log = read_log(session.project.root, spec.deployment, since_us=_since_us(now, gt.lookback), columns=columns)
    if log.n:
        log = log.select(log.get("model_version") == version.label)
    classes = None
    if task == "multiclass":  # labels hold class values; the log holds each prediction's class index
        from .reference import version_classes

        classes = version_classes(version, session.project.root)
    return evaluate(log, load_labels(session.project.root, gt), gt, task=task, version=version, classes=classes)


def _iso(us: int) -> str:
    try:
        return datetime.fromtimestamp(us / 1e6, tz=timezone.utc).isoformat(timespec="seconds")
    except (OverflowError, OSError, ValueError):
        return "?"


def _act(session: Session, spec, record, result: RunResult, now: datetime) -> None:
    from ml_framework.spec.kinds import parse_duration

    from . import actions

    if result.status not in (DRIFT, DECAY, SKEW):
        return
    if result.status == SKEW:
        wanted = list(spec.skew.on_skew)
    else:
        wanted = spec.on_drift if result.status == DRIFT else (spec.on_decay if spec.on_decay is not None
                                                                else spec.on_drift)
    if "alert" not in wanted:
        session.echo(actions.alert_line(result).replace("ALERT", "NOTICE", 1))
    flagged = next((v for v in result.versions if v.status in (DRIFT, DECAY)), None) or result.versions[0]
    version = session.registry.get(flagged.model, flagged.model_version)
    reason = f"monitor.{spec.name}: {result.status} in {flagged.model_version}"
    for action in wanted:
        if not session.act:
            outcome = ActionOutcome(action, "skipped", "--no-actions")
        elif action == "alert":
            outcome = actions.alert(result, spec, lambda line: session.echo(line))
        else:
            blocked = actions.in_cooldown(session.mstore, spec.name, action, parse_duration(spec.cooldown), now)
            if blocked:
                outcome = ActionOutcome(action, "skipped", blocked)
            elif action == "retrain":
                session.echo(f"retrain: {reason}")
                outcome = actions.retrain(session.project, session.plugins, spec, version, env=session.env,
                                          overrides=session.overrides, echo=session.echo)
            else:
                deployment = session.store.get(f"deployment.{spec.deployment}")
                outcome = actions.rollback(session.project, session.plugins, spec, deployment, version, reason=reason,
                                           env=session.env, overrides=session.overrides, echo=session.echo)
        result.actions.append(outcome)
        session.mstore.record_action(result.run_id, spec.name, outcome.action, outcome.outcome, outcome.detail)
