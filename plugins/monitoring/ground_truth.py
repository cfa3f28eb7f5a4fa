"""Delayed labels joined to logged predictions, and the model's performance on them.

Labels arrive after the predictions, in a file the monitor names (``ground_truth.path``: parquet, csv or
jsonl). ``join: request_id`` matches its ``request_id`` column with the logged request ids;
``join: entity`` matches on ``entity_keys`` and takes, per label, the prediction that was served for the
same entity at or before the label's ``timestamp_field`` (the latest one, within ``tolerance``) — never
a later one, which a newer model version may have answered. Labels that match no
logged prediction (unknown request ids, entities never scored, or older than ``lookback``) are counted
and reported, never an error.

The newest ``last`` labelled predictions are evaluated with the trainer's own metrics
(:mod:`ml_framework.plugins.models.metrics`) and compared with the version's validation metrics from the registry:
a metric that fell more than its allowed drop (``max_decay``, default 0.05 on the version's primary
metric) is decay. Slices (label-file columns, logged features or entity keys) get the same metrics per
segment, compared with the version's recorded slice metrics where it has them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ml_framework.errors import MLError, did_you_mean

from .logcache import MISSING, Categories, LogColumns, category_text
from .results import DECAY, INCONCLUSIVE, OK, MetricResult, PerformanceResult

__all__ = ["GroundTruthError", "load_labels", "evaluate", "DEFAULT_DECAY", "MAX_SEGMENTS"]

DEFAULT_DECAY = 0.05
MAX_SEGMENTS = 20


class GroundTruthError(MLError):
    """The ground-truth file cannot be used as declared."""


def _label_path(project_dir: Path, gt) -> tuple[Path, str]:
    path = Path(gt.path) if Path(gt.path).is_absolute() else Path(project_dir) / gt.path
    return path, gt.format or {".csv": "csv", ".jsonl": "jsonl", ".json": "jsonl"}.get(path.suffix, "parquet")


def _needed_columns(gt) -> list[str]:
    keys = [gt.request_id] if gt.join == "request_id" else list(gt.entity_keys or []) + [gt.timestamp_field]
    return keys + [gt.label]


def _require_columns(gt, columns: list[str]) -> None:
    for column in _needed_columns(gt):
        if column not in columns:
            raise GroundTruthError(f"the ground-truth file {gt.path} has no column {column!r}",
                                   hint=did_you_mean(column, columns) or f"its columns: {', '.join(map(str, columns))}")


def check_label_file(project_dir: Path, gt, deployment_keys: list[str] | None = None) -> None:
    """At plan: the join and label columns exist in the ground-truth file (its schema only; a file not
    there yet is normal: labels arrive later), and entity keys are ones the deployment logs."""
    if gt.join == "entity" and deployment_keys is not None:
        unknown = [k for k in gt.entity_keys or [] if k not in deployment_keys]
        if unknown:
            raise GroundTruthError(f"ground_truth.entity_keys: {unknown[0]!r} is not an entity key of the deployment "
                                   "(requests log only those)",
                                   hint=did_you_mean(unknown[0], deployment_keys)
                                   or f"its entity keys: {', '.join(deployment_keys) or 'none (raw features)'}")
    path, fmt = _label_path(project_dir, gt)
    if not path.is_file():
        return
    try:
        if fmt == "csv":
            import pandas as pd

            columns = list(pd.read_csv(path, nrows=0).columns)
        elif fmt == "jsonl":
            with open(path, encoding="utf-8") as fh:
                first = fh.readline()
            if not first.strip():
                return
            import json

            columns = list(json.loads(first))
        else:
            import pyarrow.parquet as pq

            columns = list(pq.read_schema(path).names)
    except Exception as exc:
        raise GroundTruthError(f"cannot read the ground-truth file {gt.path}: {type(exc).__name__}: {exc}") from exc
    _require_columns(gt, [str(c) for c in columns])


def load_labels(project_dir: Path, gt) -> Any:
    """The label file as a pandas DataFrame (only the columns the join and slices need)."""
    import pandas as pd

    path, fmt = _label_path(project_dir, gt)
    if not path.exists():
        return pd.DataFrame()  # no labels yet: inconclusive
    try:
        if fmt == "csv":
            frame = pd.read_csv(path)
        elif fmt == "jsonl":
            frame = pd.read_json(path, lines=True)
        else:
            frame = pd.read_parquet(path)
    except Exception as exc:  # pandas/pyarrow parse errors
        raise GroundTruthError(f"cannot read the ground-truth file {gt.path}: {type(exc).__name__}: {exc}") from exc
    _require_columns(gt, [str(c) for c in frame.columns])
    return frame


def _log_frame(log: LogColumns, gt, slices: list[str]):
    import pandas as pd

    data: dict[str, Any] = {"__ts": log.get("ts"), "__prediction": log.get("prediction"),
                            "__class": log.get("prediction_class")}
    if gt.join == "request_id":
        data["__rid"] = log.get("request_id")
    else:
        for key in gt.entity_keys:
            column = log.get("e:" + key)
            if column is None:
                column = log.feature(key)
                column = column.text() if isinstance(column, Categories) else (
                    np.array([category_text(v) for v in column.tolist()]) if column is not None else None)
            data["__e:" + key] = column if column is not None else np.full(log.n, MISSING)
    for name in slices:
        column = log.feature(name)
        if column is None:
            column = log.get("e:" + name)
        if column is not None:
            data["__s:" + name] = column.text() if isinstance(column, Categories) else column
    return pd.DataFrame(data)


def _join(log_frame, labels, gt):
    import pandas as pd

    if gt.join == "request_id":
        right = labels.copy()
        right["__rid"] = right[gt.request_id].map(category_text)
        right = right.drop_duplicates("__rid", keep="last")
        joined = log_frame.merge(right, on="__rid", how="inner")
        matched = int(right["__rid"].isin(log_frame["__rid"]).sum())
        return joined, matched, len(right) - matched
    keys = ["__e:" + k for k in gt.entity_keys]
    right = labels.copy()
    for key in gt.entity_keys:
        right["__e:" + key] = right[key].map(category_text)
    right["__label_ts"] = pd.to_datetime(right[gt.timestamp_field], utc=True, errors="coerce").astype("datetime64[ns, UTC]")
    right = right.dropna(subset=["__label_ts"]).sort_values("__label_ts", kind="mergesort")
    left = log_frame[log_frame["__ts"] != np.iinfo(np.int64).min].copy()
    left["__pred_ts"] = pd.to_datetime(left["__ts"], unit="us", utc=True).astype("datetime64[ns, UTC]")
    left = left.sort_values("__pred_ts", kind="mergesort")
    from ml_framework.spec.kinds import parse_duration

    tolerance = pd.Timedelta(seconds=parse_duration(gt.tolerance))
    joined = pd.merge_asof(right, left, left_on="__label_ts", right_on="__pred_ts", by=keys,
                           direction="backward", tolerance=tolerance)
    found = joined["__pred_ts"].notna()
    return joined[found], int(found.sum()), int((~found).sum())


def _metric_names(gt, task: str, version) -> list[str]:
    from ml_framework.plugins.models.metrics import check_metric

    names = list(gt.metrics) or [m for m in (version.metrics or {}) if check_metric(m, task) is None]
    if not names:
        from ml_framework.plugins.models.metrics import DEFAULT_METRICS

        names = list(DEFAULT_METRICS[task])
    for name in names:
        problem = check_metric(name, task)
        if problem:
            raise GroundTruthError(f"ground_truth.metrics: {problem}")
    return names


def _scores(frame, task: str):
    if task == "multiclass":
        klass = frame["__class"].to_numpy()
        width = int(klass.max()) + 1 if len(klass) else 1
        onehot = np.zeros((len(klass), max(width, 1)))
        onehot[np.arange(len(klass)), np.maximum(klass, 0)] = 1.0
        return onehot
    return frame["__prediction"].to_numpy(dtype=np.float64)


def _class_index(frame, column: str, classes: list):
    """Multiclass labels (class values: names or numbers) as the class indexes predictions are logged with;
    a value the version never learned becomes -1 (dropped by the caller, and counted)."""
    index = {str(c): i for i, c in enumerate(classes)}
    return frame[column].map(lambda v: index.get(str(v), index.get(str(v).removesuffix(".0"), -1))).astype("int64")


def _labels(frame, column: str, task: str):
    values = frame[column]
    if task == "regression":
        return values.to_numpy(dtype=np.float64)
    return values.astype("int64").to_numpy() if values.dtype != bool else values.astype("int64").to_numpy()


def _decayed(metric: str, value, baseline, allowed) -> bool:
    from ml_framework.plugins.models.metrics import METRICS

    if value is None or baseline is None or allowed is None:
        return False
    drop = baseline - value if METRICS[metric].higher_is_better else value - baseline
    return drop > allowed


def evaluate(log: LogColumns, labels, gt, *, task: str, version, classes: list | None = None) -> PerformanceResult:
    """Join ``labels`` to the logged predictions of one model version and compare with its validation metrics.
    ``classes`` (multiclass): the version's class values in index order, to read the labels' class values
    (names or numbers) as the indexes the log holds."""
    from ml_framework.plugins.models.metrics import compute_metrics

    names = _metric_names(gt, task, version)
    result = PerformanceResult(status=INCONCLUSIVE, n=0, matched_labels=0, unmatched_labels=len(labels))
    if not len(labels):
        result.notes.append(f"no labels yet in {gt.path}: inconclusive")
        return result
    if log.n == 0:
        result.notes.append("no logged predictions in the lookback to join labels to: inconclusive")
        return result
    frame = _log_frame(log, gt, gt.slices)
    joined, matched, unmatched = _join(frame, labels, gt)
    result.matched_labels, result.unmatched_labels = matched, unmatched
    if unmatched:
        what = "request ids" if gt.join == "request_id" else "entities/times"
        result.notes.append(f"{unmatched} labels match no logged prediction of {version.label} (unknown {what}, "
                            f"or older than the lookback of {gt.lookback}): ignored")
    joined = joined[joined[gt.label].notna()]
    if task == "multiclass" and classes:
        joined = joined.assign(**{gt.label: _class_index(joined, gt.label, classes)})
        unknown = int((joined[gt.label] < 0).sum())
        if unknown:
            result.notes.append(f"{unknown} labels name a class {version.label} was not trained on: ignored")
            joined = joined[joined[gt.label] >= 0]
    if task != "multiclass":
        joined = joined[joined["__prediction"].notna()]
    joined = joined.sort_values("__ts", kind="mergesort").tail(gt.last)
    result.n = len(joined)
    if result.n < gt.min_samples:
        result.notes.append(f"{result.n} labelled predictions, fewer than min_samples ({gt.min_samples}): inconclusive")
        return result
    if task == "multiclass" and "logloss" in names:
        names = [n for n in names if n != "logloss"]
        result.notes.append("logloss needs every class probability, which the log does not keep: not tracked")
    y, scores = _labels(joined, gt.label, task), _scores(joined, task)
    values = compute_metrics(task, names, y, scores)
    allowed = dict(gt.max_decay) or ({version.primary_metric: DEFAULT_DECAY} if version.primary_metric else {})
    baseline = dict(version.metrics or {})
    for name in names:
        result.metrics.append(MetricResult(metric=name, value=values.get(name), baseline=baseline.get(name),
                                           n=result.n, allowed_drop=allowed.get(name),
                                           decayed=_decayed(name, values.get(name), baseline.get(name),
                                                            allowed.get(name))))
    result.metrics.extend(_slices(joined, gt, task, names, y, scores, version, allowed))
    slices = result.decayed_slices()
    acted = slices if gt.slice_decay == "act" else []
    result.status = DECAY if result.decayed() or acted else OK
    if slices and not acted:
        result.notes.append(f"{len(slices)} slice segment(s) decayed: reported, not acted on "
                            "(ground_truth.slice_decay: report)")
    return result


def _slices(joined, gt, task, names, y, scores, version, allowed) -> list[MetricResult]:
    from ml_framework.plugins.models.metrics import compute_metrics

    out = []
    recorded: Mapping[str, Any] = (version.lineage or {}).get("slices") or {}
    for name in gt.slices:
        column = joined.get(name) if name in joined.columns and name != gt.label else joined.get("__s:" + name)
        if column is None:
            out.append(MetricResult(metric=names[0], value=None, baseline=None, n=0, slice=name, segment="(not found)"))
            continue
        text = np.array([category_text(v) for v in column.tolist()])
        segments, counts = np.unique(text, return_counts=True)
        for segment in segments[np.argsort(-counts)][:MAX_SEGMENTS]:
            mask = text == segment
            label = "(missing)" if segment == MISSING else str(segment)
            values = compute_metrics(task, names, y[mask], scores[mask])
            base = ((recorded.get(name) or {}).get(label) or {}).get("metrics") or {}
            for metric in names:
                enough = int(mask.sum()) >= gt.min_samples
                out.append(MetricResult(metric=metric, value=values.get(metric), baseline=base.get(metric),
                                        n=int(mask.sum()), slice=name, segment=label,
                                        allowed_drop=allowed.get(metric),
                                        decayed=enough and _decayed(metric, values.get(metric), base.get(metric),
                                                                    allowed.get(metric))))
    return out
