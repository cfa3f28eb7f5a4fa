"""One training run of a Model (see TrainerProvider's docstring for the steps and their guarantees)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Mapping

from framework.contract import ApplyContext, ApplyRequest, ApplyResult
from framework.errors import MLError

from .provider import MAX_SEGMENTS, GateFailure, TrainerProvider, TrainingError

__all__ = ["run_training", "slice_metrics", "choose_route"]


def _lookup(ctx: ApplyContext, project):
    """Recorded specs by address: the resource's upstream first, then the state store."""
    opened: dict[str, Any] = {}

    def lookup(address: str):
        record = ctx.upstream.get(address)
        if record is None:
            if "store" not in opened:
                opened["store"] = project.open_state()
            record = opened["store"].get(address)
        return (dict(record.spec), record.backend) if record is not None else None

    def close() -> None:
        if "store" in opened:
            opened["store"].close()

    return lookup, close


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
    from .gates import FAILED, SKIPPED

    failed = [r for r in results if r.status == FAILED]
    if failed:
        return "; ".join(f"gate {r.gate!r} failed ({r.detail})" for r in failed)
    skipped = [r for r in results if r.status == SKIPPED]
    text = "gates passed" if results else "no gates"
    if skipped:
        text += " (" + "; ".join(f"{r.gate!r} skipped: {r.detail}" for r in skipped) + ")"
    return text


def run_training(provider: TrainerProvider, request: ApplyRequest, ctx: ApplyContext) -> ApplyResult:
    from framework.graph import canonical_json, digest
    from framework.project import Project
    from framework.registry import ACCEPTED, REJECTED, ModelRegistry
    from framework.spec.kinds import NON_BEHAVIOURAL, Model

    from .artifacts import delete_models
    from .checks import check_model_spec, metric_list, primary_metric
    from .data import load_frame, resolve_inputs
    from .fingerprint import DataKeys, combine
    from .gates import FAILED, evaluate_gates, parse_gates
    from .lineage import git_info, library_versions
    from .metrics import METRICS, compute_metrics
    from .prepare import prepare

    started = time.perf_counter()
    resource = request.resource
    spec = Model.model_validate(dict(resource.spec))
    settings = provider._settings(resource)
    check_model_spec(spec)
    names, primary = metric_list(spec), primary_metric(spec)
    gates = parse_gates(spec.gates, spec.task)
    project = Project.load(Path(ctx.project_dir))
    registry = ModelRegistry.for_project(ctx.project_dir)
    production = registry.alias(spec.name, "production")
    keep = f"; production stays at {production.label}" if production else ""

    lookup, close = _lookup(ctx, project)
    try:
        data = resolve_inputs(resource.spec, lookup)
    finally:
        close()
    route = choose_route(settings.data, data)
    feast_repo = Path(project.root) / str((project.backends.get("feast") or {}).get("repo", "feature_repo"))
    ctx.progress(f"building the training frame ({route} point-in-time join, {len(data.feature_columns)} features)")
    t_load = time.perf_counter()
    frame = load_frame(data, ctx.project_dir, slices=spec.slices, route=route, feast_repo=feast_repo)
    data_keys = DataKeys(ctx.project_dir).keys(data.files())
    prepared = prepare(frame, spec.task, by=spec.split.by, valid=spec.split.valid, seed=spec.split.seed,
                       categorical=settings.categorical)
    load_seconds = time.perf_counter() - t_load

    ctx.progress(f"training {provider.flavor} on {prepared.rows['train']} rows "
                 f"(validating on {prepared.rows['valid']})")
    try:
        trained = provider.fit(prepared, spec, settings, ctx)
        predictions = trained.predict(prepared.X_valid)
    except (MLError, KeyboardInterrupt):
        raise
    except Exception as exc:
        if not provider.wrap_library_error(exc):
            raise
        raise TrainingError(f"training failed inside {provider.flavor}: {type(exc).__name__}: {exc}"
                            f" (nothing was recorded{keep})") from exc

    metrics = compute_metrics(spec.task, names, prepared.y_valid, predictions)
    slices = slice_metrics(spec.task, names, prepared.valid_rows, prepared.y_valid, predictions, spec.slices)
    results = evaluate_gates(gates, metrics, slices=slices, production=production.metrics if production else None,
                             production_label=production.label if production else None,
                             min_slice_rows=settings.slice_min_rows)
    failed = [r for r in results if r.status == FAILED]
    number = registry.next_version(spec.name)
    behaviour = {k: v for k, v in dict(resource.spec).items() if k not in NON_BEHAVIOURAL}
    lineage: dict[str, Any] = {
        "spec_hash": digest(canonical_json(behaviour)),
        "upstream": {address: record.fingerprint for address, record in sorted(ctx.upstream.items())},
        "data": {"route": route, "files": data_keys, "digest": combine(data_keys),
                 "label": {"source": data.label_source, "column": data.label_column, "timestamp": data.timestamp}},
        "feature_refs": data.feature_refs,
        "metric_goals": {n: "higher" if METRICS[n].higher_is_better else "lower" for n in names},
        "params": trained.params,
        "trainer": {k: v for k, v in settings.model_dump().items() if k != "params"},
        "split": spec.split.model_dump(),
        "rows": prepared.rows,
        "git": git_info(project.spec_dir),
        "libraries": library_versions(provider.library),
        "training_seconds": round(trained.seconds, 3),
        "data_seconds": round(load_seconds, 3),
        "info": trained.info,
        "slices": slices,
        "baseline": production.label if production else None,
    }
    gate_dicts = [r.to_dict() for r in results]
    common = dict(model=spec.name, backend=provider.name, address=resource.address, metrics=metrics,
                  gates=_jsonable(gate_dicts), primary_metric=primary)
    if failed:
        lineage["apply_seconds"] = round(time.perf_counter() - started, 3)
        registry.record_version(status=REJECTED, lineage=_jsonable(lineage), version=number, **common)
        raise GateFailure(f"v{number} rejected: {_gate_summary(results)}{keep or '; no production version changed'}",
                          hint=f"details: ml models show {spec.name}:v{number}")

    ctx.progress(f"saving v{number} to the BentoML model store")
    labels = {"ml.model": spec.name, "ml.version": f"v{number}", "ml.task": spec.task, "ml.backend": provider.name}
    metadata = _jsonable({"ml_version": f"v{number}", "address": resource.address, "task": spec.task,
                          "features": prepared.features, "categorical": prepared.categorical,
                          "classes": prepared.classes, "metrics": metrics, "label": data.label_column,
                          "feature_refs": data.feature_refs})
    tag, size = provider.save_artifact(spec.name, trained, prepared, spec, labels=labels, metadata=metadata)
    lineage["model_size_bytes"] = size
    lineage["apply_seconds"] = round(time.perf_counter() - started, 3)
    promote = settings.promote == "auto"
    try:
        version = registry.record_version(status=ACCEPTED, lineage=_jsonable(lineage), version=number,
                                          bentoml_tag=tag, promote=promote, **common)
    except BaseException:
        delete_models([tag])  # nothing half-recorded: the artifact goes with the failed record
        raise
    outputs = {
        "version": version.label,
        "bentoml_tag": tag,
        "metrics": metrics,
        "primary_metric": primary,
        "gate_status": "passed",
        "gates": {r.gate: r.status for r in results},
        "promoted": promote,
        "rows": prepared.rows,
        "training_seconds": round(trained.seconds, 3),
        "apply_seconds": lineage["apply_seconds"],
        "model_size_bytes": size,
        "data": {"files": data_keys, "digest": combine(data_keys), "route": route},
    }
    value = metrics.get(primary)
    summary = f"{version.label}: {primary} {value:.4f}" if isinstance(value, float) else version.label
    message = f"{summary}, {_gate_summary(results)}" + (f"; production → {version.label}" if promote else
                                                         f"; candidate → {version.label} (promote: manual)")
    return ApplyResult(outputs=_jsonable(outputs), message=message)
