"""One apply of a BatchPrediction: score the input with one model version and write the outputs.

1. resolve the model reference (``fraud``: production, ``fraud@candidate``, ``fraud:v3``) in the
   registry; only an accepted version with a saved artifact can score;
2. find the input file and decide how its rows get their features (:mod:`.inputs`); every check of
   columns happens here, before anything is written;
3. stream the input in chunks of ``options.chunk_rows``: features → ``predict`` → one Arrow table of
   the copied input columns, the prediction column(s) and ``model_version``, written to every sink;
4. commit the sinks (the PostgreSQL transaction, then the parquet rename). Any failure before that
   aborts them all: the previous outputs are left exactly as they were.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ml_framework.contract import ApplyContext, ApplyRequest, ApplyResult
from ml_framework.errors import did_you_mean

from .inputs import BatchInputError

__all__ = ["run_batch", "resolve_version", "output_path", "VERSION_COLUMN"]

VERSION_COLUMN = "model_version"


def resolve_version(registry, ref: str, project_dir=None):
    """The ModelVersion a reference points at, if it can score (accepted, artifact present)."""
    from ml_framework.plugins.models.registry import ACCEPTED

    from ml_framework.plugins.models.artifacts import model_exists

    version = registry.resolve(ref)
    if version.status != ACCEPTED:
        raise BatchInputError(f"{version.ref} is {version.status} and cannot score",
                              hint=f"versions: ml models list {version.model}")
    if not version.bentoml_tag or not model_exists(version.bentoml_tag, project_dir):
        raise BatchInputError(f"the artifact of {version.ref} ({version.bentoml_tag}) is not in the BentoML model "
                              "store", hint="retrain it (ml apply) or score with another version")
    return version


def output_path(spec, project_dir: Path) -> Path:
    path = Path(spec.output.path)
    return path if path.is_absolute() else Path(project_dir) / path


@dataclass
class _Layout:
    """The output table: input columns copied, then predictions, then the version."""

    copied: list[str]
    prediction: str
    classes: list[Any] | None  # multiclass: class values, index = predictor column
    schema: Any  # pyarrow.Schema

    def table(self, chunk, scores, version_ref: str):
        import numpy as np
        import pyarrow as pa

        arrays = [chunk.column(name) for name in self.copied]
        scores = np.asarray(scores)
        if self.classes is None:
            arrays.append(pa.array(scores.reshape(-1).astype("float64")))
        else:
            arrays.append(pa.array([self.classes[i] for i in np.argmax(scores, axis=1)]).cast(
                self.schema.field(self.prediction).type))
            arrays.extend(pa.array(scores[:, i].astype("float64")) for i in range(len(self.classes)))
        arrays.append(pa.array([version_ref] * chunk.num_rows, type=pa.string()))
        return pa.Table.from_arrays(arrays, schema=self.schema)


def _layout(spec, schema, predictor, found, features) -> _Layout:
    import pyarrow as pa

    names = list(schema.names)
    prediction = spec.output.prediction_column
    classes = list(predictor.schema.get("classes") or []) if predictor.task == "multiclass" else None
    generated = [prediction] + ([f"proba_{c}" for c in classes] if classes else []) + [VERSION_COLUMN]
    if spec.output.columns is not None:
        missing = [c for c in spec.output.columns if c not in names]
        if missing:
            raise BatchInputError(f"output.columns names {missing[0]!r}, which is not a column of the input "
                                  f"({found.owner})", hint=did_you_mean(missing[0], names) or
                                  f"its columns: {', '.join(names)}")
        copied = list(dict.fromkeys(spec.output.columns))
    else:
        copied = [c for c in names if c not in features.features]
    clash = [c for c in copied if c in generated]
    if clash:
        raise BatchInputError(f"the input column {clash[0]!r} would be overwritten by the predictions",
                              hint="set output.prediction_column, or list the columns to keep in output.columns")
    fields = [schema.field(c) for c in copied]
    if classes is None:
        fields.append(pa.field(prediction, pa.float64()))
    else:
        fields.append(pa.field(prediction, pa.array(classes).type))
        fields.extend(pa.field(f"proba_{c}", pa.float64()) for c in classes)
    fields.append(pa.field(VERSION_COLUMN, pa.string()))
    return _Layout(copied=copied, prediction=prediction, classes=classes, schema=pa.schema(fields))


def _open_sinks(spec, settings, out: Path, layout: _Layout, address: str, version) -> list[Any]:
    from .sinks import ParquetSink, PostgresSink

    sinks: list[Any] = []
    try:
        if spec.output.postgres is not None:  # first: a missing URL or an unreachable server fails early
            pg = spec.output.postgres
            sinks.append(PostgresSink(pg.url_env, pg.table, layout.schema,
                                      comment=f"predictions of {version.ref} written by ml ({address})"))
        sinks.append(ParquetSink(out, layout.schema, compression=settings.compression))
    except BaseException:
        for sink in sinks:
            sink.abort()
        raise
    return sinks


def _remove_previous(prior, spec, project_dir: Path, ctx: ApplyContext) -> None:
    """After a successful run that moved its outputs, the old file/table go (as a delete would)."""
    from .sinks import drop_table

    if prior is None:
        return
    outputs = dict(prior.outputs or {})
    old = outputs.get("output_path")
    if old and old != spec.output.path:
        path = Path(old) if Path(old).is_absolute() else Path(project_dir) / old
        ctx.progress(f"removing the previous output {old}")
        path.unlink(missing_ok=True)
    table, url_env = outputs.get("table"), outputs.get("url_env")
    new = spec.output.postgres
    if table and url_env and (new is None or (new.table, new.url_env) != (table, url_env)):
        ctx.progress(f"dropping the previous table {table}")
        drop_table(url_env, table)


@dataclass
class _Job:
    """Everything checked before anything is written."""

    spec: Any
    settings: Any
    version: Any
    predictor: Any
    found: Any  # inputs.InputFile
    path: Path
    out: Path
    features: Any  # inputs.FeatureSource
    layout: _Layout
    keys: dict[str, str]  # data file -> content key (for the next plan's fingerprint)


def _prepare(provider, request: ApplyRequest, ctx: ApplyContext) -> _Job:
    from ml_framework.plugins.batch.kinds import BatchPrediction
    from ml_framework.plugins.models.registry import registry_for

    from ml_framework.plugins.models.fingerprint import DataKeys
    from ml_framework.plugins.models.predictor import load_predictor

    from .inputs import feature_source, file_schema, input_file, require_file

    spec = BatchPrediction.model_validate(dict(request.resource.spec))
    settings = provider.settings(request.resource)
    project_dir = Path(ctx.project_dir)
    version = resolve_version(registry_for(ctx.services, project_dir), spec.model, project_dir)
    ctx.progress(f"scoring with {version.ref} ({spec.model})")
    predictor = load_predictor(version.bentoml_tag, project_dir)
    from ml_framework.plugins.models.data import spec_lookup

    lookup, close = spec_lookup(ctx)
    try:
        found = input_file(spec, lookup)
        path = require_file(found, project_dir)
        out = output_path(spec, project_dir)
        if out.resolve() == path.resolve():
            raise BatchInputError(f"output.path {spec.output.path} is the input file: it would be overwritten")
        schema = file_schema(path, found.format)
        features = feature_source(spec, found, schema.names, predictor, version, lookup, project_dir,
                                  _feature_access(ctx), route=settings.route)
    finally:
        close()
    layout = _layout(spec, schema, predictor, found, features)
    keys = DataKeys(project_dir).keys([found.path, *features.files])
    return _Job(spec=spec, settings=settings, version=version, predictor=predictor, found=found, path=path,
                out=out, features=features, layout=layout, keys=keys)


def _stream(job: _Job, sinks: list[Any], ctx: ApplyContext) -> tuple[int, int]:
    """Score the input chunk by chunk into the sinks. Returns (rows, chunks)."""
    from .inputs import read_chunks

    features, version = job.features, job.version
    total = _row_count(job.path, job.found.format)
    columns = list(dict.fromkeys(job.layout.copied + features.needed))
    rows = chunks = 0
    for chunk in read_chunks(job.path, job.found.format, columns, job.settings.chunk_rows):
        frame = features.frame(chunk.select(features.needed).to_pandas())
        try:
            scores = job.predictor.predict(frame)
        except Exception as exc:  # the library's own error, with what was being scored
            raise BatchInputError(f"{version.ref} could not score rows {rows + 1}-{rows + chunk.num_rows}: "
                                  f"{type(exc).__name__}: {exc}") from exc
        table = job.layout.table(chunk, scores, version.ref)
        for sink in sinks:
            sink.write(table)
        rows += chunk.num_rows
        chunks += 1
        ctx.progress(f"scored {rows}" + (f"/{total}" if total else "") + " rows", rows / total if total else None)
    return rows, chunks


def run_batch(provider, request: ApplyRequest, ctx: ApplyContext) -> ApplyResult:
    from ml_framework.plugins.models.fingerprint import DataKeys, combine

    started = time.perf_counter()
    job = _prepare(provider, request, ctx)
    spec, version = job.spec, job.version
    sinks = _open_sinks(spec, job.settings, job.out, job.layout, request.resource.address, version)
    try:
        rows, chunks = _stream(job, sinks, ctx)
        for sink in sinks:  # PostgreSQL first: if its commit fails, the parquet file is not replaced either
            sink.commit()
    except BaseException:
        for sink in sinks:
            sink.abort()
        raise
    _remove_previous(request.prior, spec, Path(ctx.project_dir), ctx)

    pg = spec.output.postgres
    outputs: dict[str, Any] = {
        "rows": rows,
        "chunks": chunks,
        "model": version.model,
        "model_ref": version.ref,
        "model_version": version.label,
        "bentoml_tag": version.bentoml_tag,
        "input_path": job.found.path,
        "mode": job.features.mode,
        "route": job.features.route,
        "output_path": spec.output.path,
        "output_key": DataKeys(Path(ctx.project_dir)).key(spec.output.path),
        "columns": list(job.layout.schema.names),
        "table": pg.table if pg else None,
        "url_env": pg.url_env if pg else None,
        "data": {"files": job.keys, "digest": combine(job.keys)},
        "duration_seconds": round(time.perf_counter() - started, 3),
    }
    where = spec.output.path + (f" and table {pg.table}" if pg else "")
    return ApplyResult(outputs=outputs, message=f"{rows} rows scored with {version.ref} → {where}")


def _row_count(path: Path, fmt: str) -> int | None:
    if fmt != "parquet":
        return None
    import pyarrow.parquet as pq

    with pq.ParquetFile(path) as handle:
        return handle.metadata.num_rows


def _feature_access(ctx):
    """The feature-access service, or None when no plugin provides one (a lookup through it then explains)."""
    from ml_framework.errors import PluginError

    try:
        return ctx.services.get("feature_access")
    except PluginError:
        return None
