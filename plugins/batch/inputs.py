"""The rows a BatchPrediction scores, and the model's feature columns for them.

* :func:`input_file` — which file: ``input.path``, or the file of the Source named by ``input.source``
  (its recorded spec), with the as-of timestamp column.
* :func:`read_chunks` — the file as Arrow tables of at most ``chunk_rows`` rows (parquet: row batches of
  the columns needed; CSV: Arrow's streaming reader), so memory is bounded by the chunk size.
* :func:`feature_source` — how a chunk becomes the predictor's feature frame:
  ``raw`` takes the feature columns from the file; ``lookup`` joins the features of the model version
  point-in-time (newest value at or before each row's timestamp, within the view's ttl) with the
  training code's own join (``ml_framework.plugins.models.data``: the parquet ``merge_asof`` route or Feast's
  ``get_historical_features``, whichever route the version was trained through) — so batch scores see
  exactly the values training would have seen for the same keys and time: no training/serving skew.
  ``options.route`` may pick the other route (they give the same values; the parquet join is faster).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from ml_framework.errors import MLError, did_you_mean

__all__ = ["BatchInputError", "InputFile", "input_file", "file_schema", "read_chunks", "FeatureSource",
           "feature_source", "RAW", "LOOKUP"]

RAW, LOOKUP = "raw", "lookup"


class BatchInputError(MLError):
    """The input cannot be scored: missing file, missing columns, no model version to score with..."""


@dataclass(frozen=True)
class InputFile:
    path: str  # as written in the spec (relative to the project directory, or absolute)
    format: str  # parquet | csv
    timestamp_field: str | None
    owner: str  # "source.transactions" or "input.path"

    def resolved(self, project_dir: Path) -> Path:
        path = Path(self.path)
        return path if path.is_absolute() else Path(project_dir) / path


def _format(path: str, declared: str | None) -> str:
    return declared or ("csv" if path.lower().endswith(".csv") else "parquet")


def input_file(spec, lookup: Callable[[str], Any]) -> InputFile:
    """The input of a BatchPrediction spec; ``lookup(address)`` returns a recorded spec (or
    ``(spec, backend)``), None if unknown."""
    given = spec.input
    if given.path:
        return InputFile(path=given.path, format=_format(given.path, given.format),
                         timestamp_field=given.timestamp_field, owner="input.path")
    address = f"source.{given.source}"
    source = lookup(address)
    if source is None:
        raise BatchInputError(f"{address} (the input) is not recorded in state",
                              hint=f"apply it first: ml apply --target {address}")
    if isinstance(source, tuple):  # (spec, backend)
        source = source[0]
    path = str(source["path"])
    return InputFile(path=path, format=_format(path, given.format or source.get("format")),
                     timestamp_field=given.timestamp_field or source.get("timestamp_field"), owner=address)


def require_file(found: InputFile, project_dir: Path) -> Path:
    path = found.resolved(project_dir)
    if path.is_dir():
        raise BatchInputError(f"input {found.path} is a folder: batch scoring reads one parquet or CSV file")
    if not path.is_file():
        where = "" if found.owner == "input.path" else f" (the file of {found.owner})"
        raise BatchInputError(f"input file {found.path}{where} does not exist",
                              hint="generate or copy the data first; the previous output is left as it was")
    return path


def file_schema(path: Path, fmt: str):
    """The Arrow schema of the input (CSV: inferred from its first block, as the reader will)."""
    try:
        if fmt == "csv":
            from pyarrow import csv

            reader = csv.open_csv(path)
            try:
                return reader.schema
            finally:
                reader.close()
        import pyarrow.parquet as pq

        return pq.read_schema(path)
    except (OSError, ValueError) as exc:  # pyarrow.ArrowInvalid is a ValueError
        raise BatchInputError(f"cannot read the input file {path.name} as {fmt}: {exc}") from exc


def _batches(path: Path, fmt: str, columns: Sequence[str], chunk_rows: int):
    if fmt == "csv":
        from pyarrow import csv

        reader = csv.open_csv(path, convert_options=csv.ConvertOptions(include_columns=list(columns)))
        try:
            while True:
                try:
                    yield reader.read_next_batch()
                except StopIteration:
                    return
        finally:
            reader.close()
    else:
        import pyarrow.parquet as pq

        with pq.ParquetFile(path) as handle:
            yield from handle.iter_batches(batch_size=chunk_rows, columns=list(columns))


def read_chunks(path: Path, fmt: str, columns: Sequence[str], chunk_rows: int) -> Iterator[Any]:
    """Arrow tables of exactly ``chunk_rows`` rows (the last may be shorter), only ``columns``."""
    import pyarrow as pa

    buffered: list[Any] = []
    count = 0
    try:
        for batch in _batches(path, fmt, columns, chunk_rows):
            if batch.num_rows == 0:
                continue
            buffered.append(batch)
            count += batch.num_rows
            while count >= chunk_rows:
                table = pa.Table.from_batches(buffered)
                yield table.slice(0, chunk_rows)
                rest = table.slice(chunk_rows)
                buffered, count = rest.to_batches(), rest.num_rows
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise BatchInputError(f"cannot read the input file {path.name}: {exc}",
                              hint="CSV column types are inferred from the first block: quote or fix the "
                                   "values, or convert the file to parquet") from exc
    if count:
        yield pa.Table.from_batches(buffered)


# -- features ---------------------------------------------------------------------------------------------
@dataclass
class FeatureSource:
    """Turns one chunk (a pandas DataFrame of ``needed`` columns) into the predictor's feature frame."""

    mode: str  # raw | lookup
    features: list[str]  # the predictor's feature columns, in its order
    needed: list[str]  # input columns this reads
    route: str | None = None  # lookup: parquet | feast
    data: Any = None  # lookup: the DataSpec of the version's features (ml_framework.plugins.models.data)
    project_dir: Path | None = None
    access: Any = None  # lookup through the feature store: the feature-access service
    files: tuple[str, ...] = ()  # data files the lookup reads (for fingerprints)

    def frame(self, chunk):
        if self.mode == RAW:
            return chunk[self.features]
        return self._lookup(chunk)

    def _lookup(self, chunk):
        from ml_framework.plugins.models.data import add_derived, join_feature_store, join_files, to_utc

        data = self.data
        left = chunk[self.needed].reset_index(drop=True)
        left[data.timestamp] = to_utc(left[data.timestamp], f"input column {data.timestamp}")
        if left[data.timestamp].isna().any():
            count = int(left[data.timestamp].isna().sum())
            raise BatchInputError(f"{count} input rows have no timestamp in {data.timestamp!r}: features cannot "
                                  "be looked up as of an unknown time")
        if self.route == "feast":
            joined = join_feature_store(data, left, [], self.access)
        else:
            joined = join_files(data, left, self.project_dir)
        if len(joined) != len(left):  # the joins keep one row per input row, in order
            raise BatchInputError(f"the feature lookup returned {len(joined)} rows for {len(left)} input rows")
        return add_derived(joined, data)[self.features]  # on-demand features: the training frame's function


def _missing(columns: Sequence[str], available: Sequence[str], what: str, owner: str) -> None:
    missing = [c for c in columns if c not in available]
    if missing:
        raise BatchInputError(
            f"the input ({owner}) lacks {what} {', '.join(repr(c) for c in missing)}",
            hint=did_you_mean(missing[0], available) or f"its columns: {', '.join(available)}")


def feature_source(spec, found: InputFile, columns: Sequence[str], predictor, version,
                   lookup: Callable[[str], Any], project_dir: Path, access: Any = None,
                   route: str = "training") -> FeatureSource:
    """Decide raw or lookup for this input and check that the columns it needs are there. ``route``:
    ``training`` (the version's own), ``parquet`` or ``feast`` (through ``access``, the feature-access
    service)."""
    features = list(predictor.features)
    mode = spec.input.features
    if mode == "auto":
        mode = RAW if all(f in columns for f in features) else LOOKUP
    if mode == RAW:
        _missing(features, columns, "the model's feature columns", found.owner)
        return FeatureSource(mode=RAW, features=features, needed=features)
    data, trained_route = _lookup_spec(version, lookup, features, project_dir)
    route = trained_route if route == "training" else route
    ts = found.timestamp_field
    if not ts:
        raise BatchInputError(f"looking up the features of {version.ref} needs the time each row is scored as of",
                              hint="set input.timestamp_field (or pass the feature columns and set "
                                   "input.features: raw)")
    _missing(data.join_keys, columns, "the entity key column(s)", found.owner)
    _missing([ts], columns, "the timestamp column", found.owner)
    _missing(list(data.request_columns), columns, "the request field(s) its on-demand views read", found.owner)
    data = replace(data, timestamp=ts, label_column=ts)  # no label when scoring: the Feast join needs a column
    files = tuple(path for path in data.files() if path != data.label.path)
    return FeatureSource(mode=LOOKUP, features=features,
                         needed=list(dict.fromkeys(data.join_keys + [ts] + list(data.request_columns))),
                         route=route, data=data, project_dir=Path(project_dir), access=access, files=files)


def _lookup_spec(version, lookup, features: list[str], project_dir=None):
    """The DataSpec of the features the version was trained on, resolved from the recorded feature specs."""
    from ml_framework.plugins.models.data import ModelDataError, resolve_inputs

    lineage = dict(version.lineage or {})
    refs = list(lineage.get("feature_refs") or [])
    label = dict((lineage.get("data") or {}).get("label") or {})
    if not refs or not label.get("source"):
        raise BatchInputError(f"{version.ref} records no feature references to look its features up with",
                              hint="pass the feature columns in the input and set input.features: raw")
    spec = {"label": {"source": label["source"], "column": label.get("column") or "label",
                      "timestamp_field": label.get("timestamp")}, "features": refs}
    try:
        data = resolve_inputs(spec, lookup, project_dir)
    except ModelDataError as exc:
        raise BatchInputError(f"cannot look up the features of {version.ref}: {exc.message}", hint=exc.hint) from exc
    if sorted(data.feature_columns) != sorted(features):
        raise BatchInputError(f"the feature views no longer provide the features {version.ref} was trained on "
                              f"(trained on {', '.join(features)}; found {', '.join(data.feature_columns)})",
                              hint="score with a newer version, or restore the feature views")
    route = str((lineage.get("data") or {}).get("route") or "parquet")
    return data, route
