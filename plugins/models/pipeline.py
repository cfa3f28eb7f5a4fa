"""One training run of a Model (see TrainerProvider's docstring for the steps and their guarantees)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from ml_framework.contract import ApplyContext, ApplyRequest, ApplyResult
from ml_framework.errors import MLError

from .trained import MAX_SEGMENTS, GateFailure, TrainingError

if TYPE_CHECKING:
    from .provider import TrainerProvider

__all__ = ["run_training", "slice_metrics", "choose_route", "cached_frame"]

_FRAMES: dict[tuple, Any] = {}  # recent frames and splits: models (or sweep candidates) sharing inputs join once
_FRAME_LOCKS: dict[tuple, Any] = {}
_FRAMES_GUARD = threading.Lock()
_FRAMES_KEPT = 4  # two frames and their splits


def cached_frame(key: tuple, build):
    """The object for ``key`` (route, inputs, data content keys, slices[, split settings]), built once even
    when two models ask at the same time. Content keys are part of the key, so changed data is never
    served stale. Cached objects are never modified by their users (features are copied when encoded)."""
    with _FRAMES_GUARD:
        lock = _FRAME_LOCKS.setdefault(key, threading.Lock())
    with lock:
        with _FRAMES_GUARD:
            if key in _FRAMES:
                return _FRAMES[key]
        frame = build()
        with _FRAMES_GUARD:
            _FRAMES[key] = frame
            while len(_FRAMES) > _FRAMES_KEPT:
                oldest = next(iter(_FRAMES))
                _FRAMES.pop(oldest)
                _FRAME_LOCKS.pop(oldest, None)
        return frame


def choose_route(setting: str, data) -> str:
    if setting != "auto":
        return setting
    return "feast" if data.views and all(v.backend == "feast" for v in data.views) else "parquet"


def slice_metrics(task: str, names, valid_rows, y_valid, preds, slices) -> dict[str, dict[str, Any]]:
    """{column: {segment: {"rows": n, "metrics": {...}}}} for the largest segments of each slice column."""
    import numpy as np

    from .metrics import compute_metrics

    out: dict[str, dict[str, Any]] = {}
    preds = np.asarray(preds)
    for column in slices:
        values = valid_rows[column].astype("object").where(valid_rows[column].notna(), "(missing)").astype(str)
        counts = values.value_counts(sort=True)
        segments = {}
        for segment in list(counts.index[:MAX_SEGMENTS]):
            mask = (values == segment).to_numpy()
            segments[str(segment)] = {"rows": int(mask.sum()),
                                      "metrics": compute_metrics(task, names, y_valid[mask], preds[mask])}
        if len(counts) > MAX_SEGMENTS:
            segments["(other)"] = {"rows": int(counts.iloc[MAX_SEGMENTS:].sum()), "metrics": {}}
        out[column] = segments
    return out


def _jsonable(value: Any) -> Any:
    import numpy as np

    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    return value


def _gate_summary(results) -> str:
    from .gates import BLOCKING, SKIPPED

    failed = [r for r in results if r.status in BLOCKING]
    if failed:
        return "; ".join(f"gate {r.gate!r} {r.status} ({r.detail})" for r in failed)
    skipped = [r for r in results if r.status == SKIPPED]
    text = "gates passed" if results else "no gates"
    if skipped:
        text += " (" + "; ".join(f"{r.gate!r} skipped: {r.detail}" for r in skipped) + ")"
    return text


@dataclass
class _Run:
    """What one training run knows before it trains: the spec, settings, gates and the registry."""

    provider: TrainerProvider
    resource: Any
    ctx: ApplyContext
    spec: Any
    settings: Any
    names: list[str]
    primary: str
    gates: list[Any]
    project: Any
    registry: Any
    production: Any  # the production ModelVersion, or None
    started: float

    @property
    def keep(self) -> str:
        return f"; production stays at {self.production.label}" if self.production else ""


@dataclass
class _Inputs:
    data: Any  # DataSpec
    route: str
    keys: dict[str, str]  # data file -> content key
    prepared: Any
    seconds: float
    time_range: tuple[str | None, str | None] = (None, None)  # the labels' first and last time


def _start(provider: TrainerProvider, request: ApplyRequest, ctx: ApplyContext) -> _Run:
    from ml_framework.plugins.models.kinds import Model
    from ml_framework.plugins.models.registry import registry_for
    from ml_framework.project import Project

    from .checks import check_model_spec, metric_list, primary_metric
    from .gates import parse_gates

    spec = Model.model_validate(dict(request.resource.spec))
    check_model_spec(spec)
    registry = registry_for(ctx.services, ctx.project_dir)
    return _Run(provider=provider, resource=request.resource, ctx=ctx, spec=spec,
                settings=provider._settings(request.resource), names=metric_list(spec),
                primary=primary_metric(spec), gates=parse_gates(spec.gates, spec.task),
                project=ctx.project or Project.load(Path(ctx.project_dir)), registry=registry,
                production=registry.alias(spec.name, "production"), started=time.perf_counter())


def _inputs(run: _Run) -> _Inputs:
    """The training frame and its split, from the in-process cache when another run built them."""
    from .data import load_frame, resolve_inputs, spec_lookup
    from .fingerprint import DataKeys, combine
    from .prepare import prepare

    spec, settings, ctx, project = run.spec, run.settings, run.ctx, run.project
    lookup, close = spec_lookup(ctx, project)
    try:
        data = resolve_inputs(run.resource.spec, lookup, run.ctx.project_dir)
    finally:
        close()
    route = choose_route(settings.data, data)
    ctx.progress(f"building the training frame ({route} point-in-time join, {len(data.feature_columns)} features)")
    started = time.perf_counter()
    keys = DataKeys(ctx.project_dir).keys(data.files())
    # Slices that are features add nothing to the frame: models differing only in those share one frame
    # (one point-in-time join for the example's two models).
    extra_slices = tuple(s for s in spec.slices if s not in data.feature_columns)
    key = (route, repr(data), combine(keys), extra_slices, str(Path(ctx.project_dir).resolve()))
    features = ctx.services.get("feature_access") if route == "feast" and "feature_access" in ctx.services.names() else None
    frame = cached_frame(key, lambda: load_frame(data, ctx.project_dir, slices=list(extra_slices), route=route,
                                                 features=features))
    split_key = key + ("prepared", spec.task, spec.split.by, spec.split.valid, spec.split.seed,
                       tuple(settings.categorical))
    prepared = cached_frame(split_key, lambda: prepare(frame, spec.task, by=spec.split.by, valid=spec.split.valid,
                                                       seed=spec.split.seed, categorical=settings.categorical))
    times = frame.df[frame.timestamp] if frame.timestamp in frame.df.columns else None
    span = ((str(times.min()), str(times.max())) if times is not None and len(times) and times.notna().any()
            else (None, None))
    return _Inputs(data=data, route=route, keys=keys, prepared=prepared, seconds=time.perf_counter() - started,
                   time_range=span)


def _fit(run: _Run, prepared):
    """(Trained, held-out predictions), on the training thread; library errors become TrainingError."""
    from .runner import on_training_thread

    provider = run.provider
    run.ctx.progress(f"training {provider.flavor} on {prepared.rows['train']} rows "
                     f"(validating on {prepared.rows['valid']})")

    def fit_and_predict():
        trained = provider.fit(prepared, run.spec, run.settings, run.ctx)
        return trained, trained.predict(prepared.X_valid)

    try:
        return on_training_thread(fit_and_predict)
    except (MLError, KeyboardInterrupt):
        raise
    except Exception as exc:
        if not provider.wrap_library_error(exc):
            raise
        raise TrainingError(f"training failed inside {provider.flavor}: {type(exc).__name__}: {exc}"
                            f" (nothing was recorded{run.keep})") from exc


def _lineage(run: _Run, inputs: _Inputs, trained, slices) -> dict[str, Any]:
    from ml_framework.graph import canonical_json, digest
    from ml_framework.spec.kinds import NON_BEHAVIOURAL

    from .fingerprint import combine
    from .lineage import git_info, library_versions
    from .metrics import METRICS

    data, spec = inputs.data, run.spec
    ignored = NON_BEHAVIOURAL | getattr(type(spec), "non_behavioural", frozenset())
    behaviour = {k: v for k, v in dict(run.resource.spec).items() if k not in ignored}
    return {
        "spec_hash": digest(canonical_json(behaviour)),
        "upstream": {address: record.fingerprint for address, record in sorted(run.ctx.upstream.items())},
        "data": {"route": inputs.route, "files": inputs.keys, "digest": combine(inputs.keys),
                 "label": {"source": data.label_source, "column": data.label_column, "timestamp": data.timestamp},
                 "time_range": list(inputs.time_range)},
        "feature_refs": data.feature_refs,
        "metric_goals": {n: "higher" if METRICS[n].higher_is_better else "lower" for n in run.names},
        "params": trained.params,
        "trainer": {k: v for k, v in run.settings.model_dump().items() if k != "params"},
        "split": spec.split.model_dump(),
        "rows": inputs.prepared.rows,
        "git": git_info(run.project.spec_dir),
        "libraries": library_versions(run.provider.library),
        "training_seconds": round(trained.seconds, 3),
        "data_seconds": round(inputs.seconds, 3),
        "info": trained.info,
        "slices": slices,
        "baseline": run.production.label if run.production else None,
    }


def _reference(run: _Run, prepared, trained):
    """The monitors' reference (:mod:`.training_reference`), scored on the training thread."""
    from .runner import on_training_thread
    from .training_reference import build_reference

    return on_training_thread(build_reference, prepared, trained.predict, seed=run.spec.split.seed)


def run_training(provider: TrainerProvider, request: ApplyRequest, ctx: ApplyContext, *,
                 sweep: Mapping[str, Any] | None = None):
    """Train one version. Returns the ApplyResult for state; with ``sweep`` (a sweep candidate: its id
    and overrides) the version is recorded without moving any alias and a failing gate does not raise:
    the recorded ModelVersion is returned instead."""
    from ml_framework.plugins.models.registry import ACCEPTED, REJECTED

    from .artifacts import artifact_dir, delete_models
    from .training_reference import save_reference
    from .fingerprint import combine
    from .gates import BLOCKING, evaluate_gates
    from .metrics import compute_metrics

    run = _start(provider, request, ctx)
    spec, registry, production = run.spec, run.registry, run.production
    inputs = _inputs(run)
    prepared = inputs.prepared
    usage = _usage()
    trained, predictions = _fit(run, prepared)
    training_cost = _training_cost(usage, trained.seconds, getattr(run.project, "pricing", None))

    metrics = compute_metrics(spec.task, run.names, prepared.y_valid, predictions)
    slices = slice_metrics(spec.task, run.names, prepared.valid_rows, prepared.y_valid, predictions, spec.slices)
    robustness = (_raw_predictor(trained, prepared), prepared.features, prepared.categorical)
    results = evaluate_gates(run.gates, metrics, slices=slices, rows=(spec.task, prepared.y_valid, predictions,
                                                                      prepared.valid_rows, robustness),
                             seed=spec.split.seed,
                             production=production.metrics if production else None,
                             production_label=production.label if production else None,
                             min_slice_rows=run.settings.slice_min_rows)
    number = registry.next_version(spec.name)
    lineage = _lineage(run, inputs, trained, slices)
    from .metrics import metric_intervals

    # for the model card: how sure each held-out figure is (95 % bootstrap), and what the version is for
    lineage["cost"] = training_cost
    lineage["metric_intervals"] = metric_intervals(spec.task, run.names, prepared.y_valid, predictions,
                                                   seed=spec.split.seed)
    lineage["intended_use"] = {"description": spec.description, "labels": dict(spec.labels or {}),
                               **(spec.card.model_dump(exclude_none=True) if spec.card else {})}
    # What was planned and against which production: the same inputs are not trained again after a
    # rejection unless asked (`--retry`), see TrainerProvider.plan.
    lineage["planned"] = {"fingerprint": request.fingerprint, "production": production.label if production else None}
    if sweep is not None:
        lineage["sweep"] = dict(sweep)
    common = dict(model=spec.name, backend=provider.name, address=request.resource.address, metrics=metrics,
                  gates=_jsonable([r.to_dict() for r in results]), primary_metric=run.primary)
    from .robustness import RobustGate

    group = [r.to_dict() for r, g in zip(results, run.gates) if not hasattr(g, "production_metric")
             and not isinstance(g, RobustGate)]
    if group:  # for the model card: fairness (measures and gaps) and the other group gates
        lineage["fairness"] = group
    robust = [r.to_dict() for r, g in zip(results, run.gates) if isinstance(g, RobustGate)]
    if robust:
        lineage["robustness"] = robust
    if any(r.status in BLOCKING for r in results):
        lineage["apply_seconds"] = round(time.perf_counter() - run.started, 3)
        rejected = registry.record_version(status=REJECTED, lineage=_jsonable(lineage), version=number, **common)
        _write_card(registry, rejected, ctx.project_dir)
        if sweep is not None:
            return rejected
        raise GateFailure(f"v{number} rejected: {_gate_summary(results)}"
                          f"{run.keep or '; nothing was promoted (no production version yet)'}",
                          hint=f"details: ml models show {spec.name}:v{number}")

    reference, reference_info = _reference(run, prepared, trained)
    ctx.progress(f"saving v{number} to the BentoML model store")
    labels = {"ml.model": spec.name, "ml.version": f"v{number}", "ml.task": spec.task, "ml.backend": provider.name}
    metadata = _jsonable({"ml_version": f"v{number}", "address": request.resource.address, "task": spec.task,
                          "features": prepared.features, "categorical": prepared.categorical,
                          "classes": prepared.classes, "metrics": metrics, "label": inputs.data.label_column,
                          "feature_refs": inputs.data.feature_refs,
                          # what serving computes per request, exactly as the training frame did
                          "derived": [{"name": d.name, "computation": dict(d.computation),
                                       "features": [list(f) for f in d.features]} for d in inputs.data.derived]})
    tag, size = provider.save_artifact(spec.name, trained, prepared, spec, labels=labels, metadata=metadata,
                                       project_dir=ctx.project_dir)
    promote = run.settings.promote == "auto" and sweep is None
    try:
        importance = _importance(artifact_dir(tag, ctx.project_dir), prepared, spec.split.seed)
        if importance is not None:
            lineage["importance"] = importance
        reference_info["bytes"] = save_reference(artifact_dir(tag, ctx.project_dir), reference, reference_info)
        lineage["reference"] = reference_info
        lineage["model_size_bytes"] = size
        lineage["apply_seconds"] = round(time.perf_counter() - run.started, 3)
        version = registry.record_version(status=ACCEPTED, lineage=_jsonable(lineage), version=number,
                                          bentoml_tag=tag, promote=promote, move_aliases=sweep is None, **common)
    except BaseException:
        delete_models([tag], ctx.project_dir)  # nothing half-recorded: the artifact goes with the failed record
        raise
    _write_card(registry, version, ctx.project_dir)
    if sweep is not None:
        return version
    outputs = {
        "version": version.label,
        "bentoml_tag": tag,
        "metrics": metrics,
        "primary_metric": run.primary,
        "gate_status": "passed",
        "gates": {r.gate: r.status for r in results},
        "promoted": promote,
        "rows": prepared.rows,
        "training_seconds": round(trained.seconds, 3),
        "apply_seconds": lineage["apply_seconds"],
        "model_size_bytes": size,
        "data": {"files": inputs.keys, "digest": combine(inputs.keys), "route": inputs.route},
    }
    value = metrics.get(run.primary)
    summary = f"{version.label}: {run.primary} {value:.4f}" if isinstance(value, float) else version.label
    if not promote:
        tail = f"; candidate → {version.label} (promote: manual)"
    elif "release" in version.aliases:
        followers = registry.followers(spec.name)
        tail = (f"; release → {version.label}: production moves when {' or '.join(followers)} has rolled it out")
        outputs["released_by"] = followers
    else:
        tail = f"; production → {version.label}"
    message = f"{summary}, {_gate_summary(results)}" + tail
    if production is not None and lineage.get("importance"):
        from .importance import moved_most

        moved = moved_most((production.lineage or {}).get("importance"), lineage["importance"])
        if moved:
            message += ("; importance moved most vs " + production.label + ": "
                        + ", ".join(f"{m['feature']} {m['delta']:+.1%}" for m in moved))
    return ApplyResult(outputs=_jsonable(outputs), message=message)


def _usage() -> tuple[float, float]:
    """(CPU seconds of this process so far — every thread, the trainer's OpenMP team included; its peak RSS
    in MB)."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024.0


def _training_cost(before: tuple[float, float], seconds: float, pricing) -> dict[str, Any]:
    """What training this version cost: CPU seconds and peak memory (the process's: another model training
    beside it in the same apply is counted too), priced (framework.cost; default prices without pricing)."""
    from ml_framework.cost import DEFAULT_PRICING, running_cost

    cpu, peak = _usage()
    cpu_seconds = max(0.0, cpu - before[0])
    used = pricing or DEFAULT_PRICING
    return {"cpu_seconds": round(cpu_seconds, 3), "peak_rss_mb": round(peak, 1), "wall_seconds": round(seconds, 3),
            "price": round(running_cost(cpu_seconds, peak / 1024.0 * seconds / 3600.0, pricing), 8),
            "currency": used.currency, "priced_by": "ml.yaml pricing" if pricing else "default prices"}


def _raw_predictor(trained, prepared):
    """Predict raw feature rows (as a request carries them) with the trained version: encoded the way the
    held-out rows were (an unknown category is missing, as served), on the training thread."""
    from .prepare import encode_features
    from .runner import on_training_thread

    def predict(frame):
        return on_training_thread(trained.predict, encode_features(frame, prepared.features, prepared.categorical))

    return predict


def _write_card(registry, version, project_dir) -> None:
    """The version's model card under .ml/cards/ (card.py), at registration; never fails a training run."""
    import logging

    from .card import card_data, write_card

    try:
        write_card(Path(project_dir), card_data(version, registry.events(version.model, limit=200)))
    except Exception as exc:  # noqa: BLE001 - `ml models card` writes it again
        logging.getLogger(__name__).warning("model card not written: %s: %s", type(exc).__name__, exc)


def _importance(folder: Path, prepared, seed: int):
    """Global importance on the held-out rows (importance.py); never worth failing a training run for."""
    import json
    import logging

    from .importance import global_importance

    try:
        schema = json.loads((folder / "ml_model.json").read_text(encoding="utf-8"))
        return global_importance(folder, schema, prepared.valid_rows, seed=seed)  # raw values, as served
    except Exception as exc:  # noqa: BLE001 - reported, the version is still recorded
        logging.getLogger(__name__).warning("global importance not computed: %s: %s", type(exc).__name__, exc)
        return None
