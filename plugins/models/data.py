"""The training frame of a Model: one row per label, with the feature values known at that row's time.

Two steps:

1. :func:`resolve_inputs` (pure Python): from the Model spec and the recorded specs of what it refers to
   (label Source, feature views, feature services, entities, their sources) work out which files,
   columns, join keys and ttls are involved. ``view:*`` and feature services are expanded to
   explicit features.
2. :func:`load_frame` (pandas): the point-in-time join. ``feast``: Feast's
   ``get_historical_features`` through ``ml_framework.plugins.feast.training`` over the project's feature
   repository; ``parquet``: the same semantics directly on the source files with
   ``pandas.merge_asof`` (newest feature row with timestamp <= the label's timestamp, by join keys,
   no older than the view's ttl). Both give the same columns: join keys, the label timestamp, the
   label, slice columns found in the label source, and one column per feature (the feature name, or
   ``view__feature`` when two views share a name).

Every problem with the data is an :class:`ModelDataError` saying what to fix.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from ml_framework.errors import MLError, did_you_mean
from ml_framework.spec.kinds import parse_duration

__all__ = ["ModelDataError", "FileRef", "ViewRef", "DataSpec", "resolve_inputs", "load_frame", "Frame", "label_frame",
           "check_label_source",
           "join_files", "join_feature_store", "to_utc", "spec_lookup"]

ROW = "__ml_row"


JUST_BEFORE_US = 1  # windowed aggregations are read this many microseconds before the label time


def _just_before():
    import pandas as pd

    return pd.Timedelta(JUST_BEFORE_US, "us")


class ModelDataError(MLError):
    """The Model's data cannot be used for training (missing columns, bad labels, too few rows...)."""


@dataclass(frozen=True)
class FileRef:
    path: str  # as written in the spec (relative to the project directory, or absolute)
    timestamp_field: str
    created_timestamp_field: str | None = None
    format: str | None = None
    owner: str = ""  # the address that declares it

    def resolved(self, project_dir: Path) -> Path:
        path = Path(self.path)
        return path if path.is_absolute() else Path(project_dir) / path

    @property
    def file_format(self) -> str:
        return self.format or ("csv" if self.path.endswith(".csv") else "parquet")


@dataclass(frozen=True)
class ViewRef:
    name: str
    file: FileRef
    join_keys: tuple[str, ...]
    ttl_seconds: int | None
    features: tuple[tuple[str, str], ...]  # (feature, column in the frame)
    backend: str = ""
    # Windowed aggregations are read just before the label time (JUST_BEFORE_US): the row of the label's own
    # event includes that event, which the online store cannot hold yet when the event is scored.
    strictly_before: bool = False


@dataclass(frozen=True)
class DerivedRef:
    """An on-demand view the model reads: its computation (features.derived.definition) and the features
    it takes from it (feature, column)."""

    name: str
    computation: Mapping[str, Any]
    features: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class DataSpec:
    label: FileRef
    label_column: str
    label_source: str
    timestamp: str  # the label's as-of time column
    views: tuple[ViewRef, ...]
    derived: tuple[DerivedRef, ...] = ()
    hidden: tuple[str, ...] = ()  # columns joined only as inputs of derived features (not trained on)
    request_columns: tuple[str, ...] = ()  # label-file columns derived features read as request fields

    @property
    def feature_columns(self) -> list[str]:
        return ([column for view in self.views for _, column in view.features if column not in self.hidden]
                + [column for d in self.derived for _, column in d.features])

    @property
    def feature_refs(self) -> list[str]:
        """What the model reads, as references (on-demand views' features included)."""
        return ([f"{view.name}:{feature}" for view in self.views for feature, column in view.features
                 if column not in self.hidden]
                + [f"{d.name}:{feature}" for d in self.derived for feature, _ in d.features])

    @property
    def retrieval_refs(self) -> list[str]:
        """What the join fetches from feature views: the model's features and the derived features' inputs."""
        return [f"{view.name}:{feature}" for view in self.views for feature, _ in view.features]

    @property
    def join_keys(self) -> list[str]:
        return list(dict.fromkeys(k for view in self.views for k in view.join_keys))

    def files(self) -> dict[str, FileRef]:
        out = {self.label.path: self.label}
        for view in self.views:
            out.setdefault(view.file.path, view.file)
        return out


Lookup = Callable[[str], "Mapping[str, Any] | tuple[Mapping[str, Any], str] | None"]


def _need(lookup, address: str, why: str) -> tuple[Mapping[str, Any], str]:
    found = lookup(address)
    if found is None:
        raise ModelDataError(f"{address} ({why}) is not recorded in state",
                             hint=f"apply it first: ml apply --target {address}")
    return found if isinstance(found, tuple) else (found, "")


def _source_ref(lookup, view: str, source: Any) -> FileRef:
    if isinstance(source, str):
        spec, _ = _need(lookup, f"source.{source}", f"the source of feature view {view}")
        owner = f"source.{source}"
    else:
        spec, owner = source, f"featureview.{view}"
    return FileRef(path=spec["path"], timestamp_field=spec["timestamp_field"],
                   created_timestamp_field=spec.get("created_timestamp_field"), format=spec.get("format"),
                   owner=owner)


def _expand(lookup, refs: Sequence[str], seen: tuple[str, ...] = ()) -> list[tuple[str, str | None]]:
    """Feature refs -> (view, feature or None for '*'), feature services expanded."""
    out: list[tuple[str, str | None]] = []
    for ref in refs:
        view, sep, feature = ref.partition(":")
        if sep:
            out.append((view, None if feature == "*" else feature))
            continue
        if ref in seen:
            raise ModelDataError(f"feature service {ref} includes itself")
        spec, _ = _need(lookup, f"featureservice.{ref}", "a feature service the model uses")
        out.extend(_expand(lookup, spec.get("features") or [], seen + (ref,)))
    return out


def resolve_inputs(spec: Mapping[str, Any], lookup: Lookup, project_dir: Path | None = None) -> DataSpec:
    """Which files and columns the Model trains on. ``lookup(address)`` returns a recorded spec (or
    ``(spec, backend)``), None if unknown."""
    label = spec["label"]
    source_spec, _ = _need(lookup, f"source.{label['source']}", "the label source")
    label_file = FileRef(path=source_spec["path"], timestamp_field=source_spec["timestamp_field"],
                         format=source_spec.get("format"), owner=f"source.{label['source']}")
    wanted: dict[str, list[str | None]] = {}
    on_demand: dict[str, tuple[Mapping[str, Any], list[str | None]]] = {}
    for view, feature in _expand(lookup, spec["features"]):
        if lookup(f"featureview.{view}") is None and lookup(f"ondemandfeatureview.{view}") is not None:
            found, _ = _need(lookup, f"ondemandfeatureview.{view}", "an on-demand view the model uses")
            on_demand.setdefault(view, (found, []))[1].append(feature)
            continue
        wanted.setdefault(view, []).append(feature)
    derived, inputs_needed, request_columns = _derived(lookup, on_demand, project_dir)
    chosen_by_model = {(v, f) for v, fs in wanted.items() for f in fs}
    for view, feature in inputs_needed:
        wanted.setdefault(view, []).append(feature)
    names: dict[str, list[str]] = {}
    resolved: list[tuple[str, Mapping[str, Any], str, list[str]]] = []
    for view, features in wanted.items():
        view_spec, backend = _need(lookup, f"featureview.{view}", "a feature view the model uses")
        # Sorted: state stores specs as JSON with sorted keys, so the declared order of a view's features
        # does not survive a round trip; 'view:*' must expand the same way whether the view was applied
        # in this run or read back from state (column order is part of what a model is trained on).
        declared = sorted((view_spec.get("features") or {}).keys())
        chosen: list[str] = []
        for feature in features:
            if feature is None:
                chosen.extend(declared)
            elif feature not in declared:
                hint = did_you_mean(feature, declared)
                raise ModelDataError(f"feature view {view} has no feature {feature!r}",
                                     hint=hint or f"its features: {', '.join(declared)}")
            else:
                chosen.append(feature)
        chosen = list(dict.fromkeys(chosen))
        for feature in chosen:
            names.setdefault(feature, []).append(view)
        resolved.append((view, view_spec, backend, chosen))
    views = []
    for view, view_spec, backend, chosen in resolved:
        keys: list[str] = []
        for entity in view_spec.get("entities") or []:
            entity_spec, _ = _need(lookup, f"entity.{entity}", f"an entity of feature view {view}")
            keys.extend(entity_spec.get("join_keys") or [entity])
        ttl = view_spec.get("ttl")
        columns = tuple((f, f if len(names[f]) == 1 else f"{view}__{f}") for f in chosen)
        file = _source_ref(lookup, view, view_spec["source"])
        if view_spec.get("aggregations"):  # served from the rows its apply aggregated, not the events
            from ml_framework.plugins.features.aggregates import output_path

            file = FileRef(path=output_path(view), timestamp_field=file.timestamp_field, format="parquet",
                           owner=f"featureview.{view}")
        views.append(ViewRef(name=view, file=file, strictly_before=bool(view_spec.get("aggregations")),
                             join_keys=tuple(dict.fromkeys(keys)), ttl_seconds=parse_duration(ttl) if ttl else None,
                             features=columns, backend=backend))
    hidden = tuple(column for view in views for feature, column in view.features
                   if (view.name, feature) not in chosen_by_model and (view.name, None) not in chosen_by_model)
    return DataSpec(label=label_file, label_column=label["column"], label_source=label["source"],
                    timestamp=label.get("timestamp_field") or label_file.timestamp_field, views=tuple(views),
                    derived=derived, hidden=hidden, request_columns=request_columns)


def _derived(lookup, on_demand, project_dir=None) -> tuple[tuple[DerivedRef, ...], list[tuple[str, str]], tuple[str, ...]]:
    """The on-demand views a model reads: their computations, the view features they need joined, and the
    label-file columns they read as request fields."""
    from ml_framework.plugins.features.derived import definition
    from ml_framework.plugins.features.kinds import OnDemandFeatureView

    derived, inputs, request = [], [], []
    for name, (found, features) in on_demand.items():
        view = OnDemandFeatureView.model_validate(found)
        specs = {}
        for source in view.views:
            specs[f"featureview.{source}"], _ = _need(lookup, f"featureview.{source}", f"read by on-demand view {name}")
        try:
            computation = definition(view, specs, project_dir)
        except MLError as exc:
            raise ModelDataError(f"on-demand view {name}: {exc.message}") from None
        declared = list(view.features)
        chosen: list[str] = []
        for feature in features:
            if feature is not None and feature not in declared:
                raise ModelDataError(f"on-demand view {name} has no feature {feature!r}",
                                     hint=did_you_mean(feature, declared) or f"its features: {', '.join(declared)}")
            chosen.extend(sorted(declared) if feature is None else [feature])
        chosen = list(dict.fromkeys(chosen))
        from ml_framework.plugins.features.expressions import compile_expression

        for feature in chosen:
            expr = view.features[feature].expr
            # a Python function reads every input of its view; an expression, the names it mentions
            used = compile_expression(expr, computation["inputs"]).inputs if expr else tuple(computation["inputs"])
            for item in used:
                if "." in item:
                    inputs.append(tuple(item.split(".", 1)))
                else:
                    request.append(item)
        derived.append(DerivedRef(name=name, features=tuple((f, f) for f in chosen),
                                  computation={**computation, "features": {f: computation["features"][f] for f in chosen}}))
    return tuple(derived), list(dict.fromkeys(inputs)), tuple(dict.fromkeys(request))


def add_derived(frame, data: DataSpec, *, keep_inputs: bool = False):
    """The derived features computed on the joined frame (the same function as serving and Feast use),
    and the columns joined only as their inputs dropped (kept with ``keep_inputs``: the skew check)."""
    if not data.derived:
        return frame
    from ml_framework.plugins.features.derived import compute

    columns_of = {(view.name, feature): column for view in data.views for feature, column in view.features}
    for ref in data.derived:
        columns = {}
        for name in ref.computation["inputs"]:
            view, dot, feature = name.partition(".")
            column = columns_of.get((view, feature)) if dot else name
            if column is not None and column in frame.columns:
                columns[name] = frame[column]
        values = compute(columns, ref.computation, length=len(frame))
        for feature, column in ref.features:
            frame[column] = values[feature].to_numpy()
    if keep_inputs:
        return frame
    return frame.drop(columns=[c for c in data.hidden if c in frame.columns])


# -- loading ----------------------------------------------------------------------------------------------
@dataclass
class Frame:
    """The joined frame plus what the trainer needs to know about it."""

    df: Any  # pandas.DataFrame, in the label source's row order
    features: list[str]
    label: str
    timestamp: str
    slices: list[str] = field(default_factory=list)
    route: str = "parquet"


def _schema(path: Path, fmt: str) -> list[str]:
    if fmt == "csv":
        import pandas as pd

        return list(pd.read_csv(path, nrows=0).columns)
    import pyarrow.parquet as pq

    return list(pq.read_schema(path).names)


def _read(path: Path, fmt: str, columns: list[str]):
    if fmt == "csv":
        import pandas as pd

        return pd.read_csv(path, usecols=columns)
    import pyarrow.parquet as pq

    return pq.read_table(path, columns=columns).to_pandas()


def to_utc(series, what: str):
    """A timestamp column as UTC datetimes; naive values are taken as UTC; a clear error otherwise."""
    import pandas as pd

    try:
        if not isinstance(series.dtype, pd.DatetimeTZDtype):
            converted = pd.to_datetime(series, utc=True)
        else:
            converted = series.dt.tz_convert("UTC")
    except (ValueError, TypeError) as exc:
        raise ModelDataError(f"{what} does not hold timestamps: {exc}") from exc
    return converted.astype("datetime64[ns, UTC]")


def _check_file(ref: FileRef, project_dir: Path) -> Path:
    path = ref.resolved(project_dir)
    if not path.exists():
        raise ModelDataError(f"{ref.owner}: data file {ref.path} does not exist",
                             hint="generate or copy the data first (e.g. make data)")
    return path


def check_label_source(data: DataSpec, project_dir: Path, slices: Sequence[str] = ()) -> list[str]:
    """Before anything is read (``ml plan``): the label file exists and has the label, timestamp and join
    key columns, and every slice is a feature or a label-file column. Returns the label file's columns."""
    path = _check_file(data.label, project_dir)
    available = _schema(path, data.label.file_format)
    _check_label_columns(data, available)
    unknown = [s for s in slices if s not in available and s not in data.feature_columns]
    if unknown:
        known = sorted(set(data.feature_columns) | set(available))
        raise ModelDataError(f"slice column {unknown[0]!r} is neither a feature of the model nor a column of "
                             f"the label source {data.label.owner} ({data.label.path})",
                             hint=did_you_mean(unknown[0], known) or "slices name a feature or a label-file column")
    return available


def label_frame(data: DataSpec, project_dir: Path, slices: Sequence[str]):
    """The label rows (join keys, timestamp, label and the label-file slice columns); (frame, slice columns)."""
    path = _check_file(data.label, project_dir)
    fmt = data.label.file_format
    available = _schema(path, fmt)
    _check_label_columns(data, available)
    extra = [s for s in slices if s in available and s not in data.feature_columns]
    missing = [c for c in data.request_columns if c not in available]
    if missing:
        raise ModelDataError(f"the label source {data.label.owner} lacks {', '.join(missing)}, which an on-demand "
                             "view reads as a request field (at training, request fields come from the label rows)",
                             hint=did_you_mean(missing[0], available) or f"its columns: {', '.join(available)}")
    columns = list(dict.fromkeys(data.join_keys + [data.timestamp, data.label_column] + extra
                                 + list(data.request_columns)))
    frame = _read(path, fmt, columns)
    frame[data.timestamp] = to_utc(frame[data.timestamp], f"{data.label.owner} column {data.timestamp}")
    return frame, extra


def _check_label_columns(data: DataSpec, available: Sequence[str]) -> None:
    if data.label_column not in available:
        raise ModelDataError(f"label column {data.label_column!r} is not in {data.label.owner} ({data.label.path})",
                             hint=did_you_mean(data.label_column, available) or f"its columns: {', '.join(available)}")
    if data.timestamp not in available:
        raise ModelDataError(f"timestamp column {data.timestamp!r} is not in {data.label.owner} ({data.label.path})",
                             hint=did_you_mean(data.timestamp, available) or f"its columns: {', '.join(available)}")
    for view in data.views:
        missing = [k for k in view.join_keys if k not in available]
        if missing:
            raise ModelDataError(
                f"the label source {data.label.owner} lacks the join key {', '.join(missing)} that feature view "
                f"{view.name} needs", hint=f"its columns: {', '.join(available)}")


def load_frame(data: DataSpec, project_dir: Path, *, slices: Sequence[str] = (), route: str = "parquet",
               features=None, keep_inputs: bool = False) -> Frame:
    """The training frame (see the module docstring). ``route``: ``parquet`` (the source files joined
    here) or ``feast`` (the feature store, through ``features``: the feature-access service)."""
    labels, label_slices = label_frame(data, project_dir, slices)
    unknown = [s for s in slices if s not in label_slices and s not in data.feature_columns]
    if unknown:
        raise ModelDataError(f"slice column {unknown[0]!r} is neither a feature of the model nor a column of "
                             f"the label source {data.label.owner}",
                             hint=did_you_mean(unknown[0], data.feature_columns) or
                             f"features: {', '.join(data.feature_columns)}")
    if route == "feast":
        df = join_feature_store(data, labels, label_slices, features)
    else:
        df = join_files(data, labels, project_dir)
    df = add_derived(df, data, keep_inputs=keep_inputs)
    return Frame(df=df, features=data.feature_columns, label=data.label_column, timestamp=data.timestamp,
                 slices=list(slices), route=route)


def join_files(data: DataSpec, labels, project_dir: Path):
    """The point-in-time join of the label rows with the feature views' source files (pandas merge_asof)."""
    import pandas as pd

    left = labels.copy()
    left[ROW] = range(len(left))
    left = left.sort_values(data.timestamp, kind="mergesort").reset_index(drop=True)
    for view in data.views:
        path = _check_file(view.file, project_dir)
        fmt = view.file.file_format
        available = _schema(path, fmt)
        wanted = [f for f, _ in view.features]
        needed = list(dict.fromkeys(list(view.join_keys) + [view.file.timestamp_field] + wanted +
                                    ([view.file.created_timestamp_field] if view.file.created_timestamp_field else [])))
        missing = [c for c in needed if c not in available]
        if missing:
            raise ModelDataError(f"{view.file.owner} ({view.file.path}) lacks column {missing[0]!r} that feature view "
                                 f"{view.name} needs", hint=did_you_mean(missing[0], available) or
                                 f"its columns: {', '.join(available)}")
        right = _read(path, fmt, needed)
        ts = "__ml_view_ts"
        right[ts] = to_utc(right[view.file.timestamp_field], f"{view.file.owner} column {view.file.timestamp_field}")
        order = [ts] + ([view.file.created_timestamp_field] if view.file.created_timestamp_field else [])
        right = right.sort_values(order, kind="mergesort")
        for key in view.join_keys:
            if right[key].dtype != left[key].dtype:
                try:
                    right[key] = right[key].astype(left[key].dtype)
                except (TypeError, ValueError) as exc:
                    raise ModelDataError(f"join key {key!r} has type {left[key].dtype} in the label source but "
                                         f"{right[key].dtype} in {view.file.owner}") from exc
        right = right[list(view.join_keys) + [ts] + wanted].rename(columns=dict(view.features))
        tolerance = pd.Timedelta(seconds=view.ttl_seconds) if view.ttl_seconds else None
        if view.strictly_before:  # as of just before the label (the same instant the feature store is asked)
            left["__ml_as_of"] = left[data.timestamp] - _just_before()
        as_of = "__ml_as_of" if view.strictly_before else data.timestamp
        left = pd.merge_asof(left.sort_values(as_of, kind="mergesort"), right, left_on=as_of, right_on=ts,
                             by=list(view.join_keys), direction="backward", tolerance=tolerance,
                             allow_exact_matches=True)
        if view.strictly_before:
            left = left.drop(columns=["__ml_as_of"])
        left = left.drop(columns=[ts])
    left = left.sort_values(ROW, kind="mergesort").drop(columns=[ROW]).reset_index(drop=True)
    return left


def join_feature_store(data: DataSpec, labels, label_slices: list[str], features):
    """The point-in-time join through the feature store: ``features`` is the feature-access service
    (ml_framework.plugins.features.access), e.g. ``ctx.services.get("feature_access")``."""
    if features is None:
        raise ModelDataError("trainer data: feast needs a feature store, and no plugin provides feature access",
                             hint="install/enable the feast plugin, or set trainer.data: parquet to join the source files")
    collide = any(column != feature for view in data.views for feature, column in view.features)
    keep = set(data.join_keys) | {data.timestamp, data.label_column}  # a request field may be one of them
    base = labels[[c for c in labels.columns if c in keep or (c not in label_slices and c not in data.request_columns)]]
    before = {v.name for v in data.views if v.strictly_before}
    refs = [r for r in data.retrieval_refs if r.partition(":")[0] not in before]
    try:
        out = (features.training_frame(base, refs, timestamp_field=data.timestamp,
                                       label_columns=[data.label_column], full_feature_names=collide)
               if refs else base.reset_index(drop=True).copy())
        if before:  # windowed aggregations: as of just before each label (its own event not yet counted)
            earlier = base.assign(**{data.timestamp: base[data.timestamp] - _just_before()})
            shifted = features.training_frame(earlier, [r for r in data.retrieval_refs if r.partition(":")[0] in before],
                                              timestamp_field=data.timestamp, label_columns=[data.label_column],
                                              full_feature_names=collide)
            for view in data.views:
                if view.name in before:
                    for feature, _ in view.features:
                        column = f"{view.name}__{feature}" if collide else feature
                        out[column] = shifted[column].to_numpy()
    except MLError:
        raise
    except Exception as exc:  # the store's own errors: keep the message, add what we were doing
        raise ModelDataError(f"could not build the training frame from the {features.describe()}: "
                             f"{type(exc).__name__}: {exc}",
                             hint="is the feature repository applied? (ml apply) — or set trainer.data: parquet") from exc
    if collide:
        out = out.rename(columns={f"{view.name}__{feature}": column for view in data.views
                                  for feature, column in view.features})
    for column in list(label_slices) + list(data.request_columns):
        if column not in out.columns:
            out[column] = labels[column].to_numpy()
    return out


def spec_lookup(ctx, project=None):
    """``(lookup, close)``: recorded specs by address — the resource's upstream first, then the run's state
    store (``ctx.state``; a store of the project's own only when the caller lent none) — for
    :func:`resolve_inputs`. Shared by training and batch scoring."""
    opened: dict[str, Any] = {}

    def lookup(address: str):
        record = ctx.upstream.get(address)
        if record is None:
            store, owner = ctx.state, project or ctx.project
            if store is None and owner is not None:
                if "store" not in opened:
                    opened["store"] = owner.open_state()
                store = opened["store"]
            record = store.get(address) if store is not None else None
        return (dict(record.spec), record.backend) if record is not None else None

    def close() -> None:
        if "store" in opened:
            opened["store"].close()

    return lookup, close
