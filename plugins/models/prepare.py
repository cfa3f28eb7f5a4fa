"""From the joined frame to train/validation arrays: label checks, the split, categorical columns.

Checks raise :class:`ModelDataError` with the numbers a person needs: missing (NaN) labels,
non-numeric labels, labels outside what the task allows, too few rows for the split, a split side
holding a single class.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

from .data import Frame, ModelDataError

__all__ = ["Prepared", "prepare", "encode_features", "MIN_SPLIT_ROWS"]

MIN_SPLIT_ROWS = 10  # each side of the split needs at least this many rows


@dataclass
class Prepared:
    X_train: Any  # pandas.DataFrame (categoricals as pandas categories)
    y_train: Any  # numpy array (0/1, 0..k-1 or float)
    X_valid: Any
    y_valid: Any
    valid_rows: Any  # the validation rows of the joined frame (slice columns included)
    features: list[str]
    categorical: dict[str, list[Any]] = field(default_factory=dict)  # column -> categories (training order)
    classes: list[Any] | None = None  # multiclass: original label values, index = class id
    rows: dict[str, int] = field(default_factory=dict)


def _labels(series, task: str, column: str):
    import numpy as np
    import pandas as pd

    total = len(series)
    missing = int(series.isna().sum())
    if missing:
        raise ModelDataError(f"{missing} of {total} labels in column {column!r} are missing (NaN)",
                             hint="drop unlabelled rows from the label source, or fill them, before training")
    if series.dtype == bool:
        series = series.astype(np.int64)
    if task == "multiclass" and not pd.api.types.is_numeric_dtype(series.dtype):
        # Named classes ("low", "high", ...): class ids are their sorted order; the names are saved with
        # the version, so predictions answer with them.
        names = series.astype(str)
        classes = sorted(pd.unique(names).tolist())
        return np.searchsorted(np.asarray(classes, dtype=object), names.to_numpy(dtype=object)).astype(np.int64), classes
    if not pd.api.types.is_numeric_dtype(series.dtype):
        examples = ", ".join(repr(v) for v in pd.unique(series)[:3])
        need = {"binary": "0/1 (or true/false)", "regression": "numbers"}[task]
        raise ModelDataError(f"label column {column!r} holds non-numeric values (e.g. {examples}); "
                             f"a {task} model needs {need}")
    values = series.to_numpy()
    if not np.isfinite(values.astype(np.float64)).all():
        raise ModelDataError(f"label column {column!r} holds infinite values")
    classes = None
    if task == "binary":
        found = sorted(set(np.unique(values).tolist()))
        if not set(found) <= {0, 1}:
            raise ModelDataError(f"binary labels in column {column!r} must be 0 or 1; found "
                                 f"{', '.join(str(v) for v in found[:6])}")
        values = values.astype(np.int64)
    elif task == "multiclass":
        if not np.all(np.equal(np.mod(values, 1), 0)):
            raise ModelDataError(f"multiclass labels in column {column!r} must be integer class ids")
        classes = sorted(np.unique(values).tolist())
        values = np.searchsorted(np.asarray(classes), values).astype(np.int64)
    else:
        values = values.astype(np.float64)
    return values, classes


def _split(frame: Frame, by: str, valid: float, seed: int):
    import numpy as np

    n = len(frame.df)
    n_valid = int(round(n * valid))
    n_train = n - n_valid
    if n_valid < MIN_SPLIT_ROWS or n_train < MIN_SPLIT_ROWS:
        raise ModelDataError(
            f"too few rows for the split: {n} labelled rows give {n_train} to train and {n_valid} to validate "
            f"(split.valid: {valid}); each side needs at least {MIN_SPLIT_ROWS}",
            hint="add labelled rows, or change split.valid")
    if by == "time":
        ts = frame.df[frame.timestamp].values  # datetime64[ns] (UTC); to_numpy() would box every value
        order = np.argsort(ts, kind="mergesort")
    else:
        order = np.random.default_rng(seed).permutation(n)
        order = np.concatenate([np.sort(order[:n_train]), np.sort(order[n_train:])])
    return order[:n_train], order[n_train:]


def _check_classes(y, task: str, side: str, by: str, classes=None) -> None:
    import numpy as np

    if task not in ("binary", "multiclass"):
        return
    present = np.unique(y)
    if len(present) < 2:
        name = present[0] if classes is None else classes[int(present[0])]
        hint = ("with split.by: time the newest rows are held out: check that both classes occur over time, "
                "or use split.by: random" if by == "time" else "check the label source")
        raise ModelDataError(f"the {side} split holds a single class ({name}, {len(y)} rows): a {task} model "
                             "needs at least two classes there", hint=hint)


def encode_features(df, features: Sequence[str], categorical: dict[str, list[Any]]):
    """The feature columns, categoricals as pandas categories with the training categories (unknown -> NaN)."""
    import pandas as pd

    X = df[list(features)].copy()
    for column, categories in categorical.items():
        X[column] = pd.Categorical(X[column].astype("object").where(X[column].notna(), None),
                                   categories=categories)
    return X


def _categoricals(train, features: Sequence[str], extra: Sequence[str]) -> dict[str, list[Any]]:
    import pandas as pd

    unknown = [c for c in extra if c not in features]
    if unknown:
        raise ModelDataError(f"trainer.categorical names {unknown[0]!r}, which is not a feature of the model",
                             hint=f"features: {', '.join(features)}")
    out = {}
    for column in features:
        dtype = train[column].dtype
        is_text = (pd.api.types.is_object_dtype(dtype) or pd.api.types.is_string_dtype(dtype)
                   or isinstance(dtype, pd.CategoricalDtype) or pd.api.types.is_bool_dtype(dtype))
        if is_text or column in extra:
            values = train[column].dropna().astype("object").unique().tolist()
            out[column] = sorted(values, key=lambda v: (str(type(v)), v))
        elif not pd.api.types.is_numeric_dtype(dtype):
            raise ModelDataError(f"feature {column!r} has type {dtype}, which cannot be used for training",
                                 hint="use numbers or strings (categories)")
    return out


def prepare(frame: Frame, task: str, *, by: str, valid: float, seed: int, categorical: Sequence[str] = ()) -> Prepared:
    y, classes = _labels(frame.df[frame.label], task, frame.label)
    train_idx, valid_idx = _split(frame, by, valid, seed)
    y_train, y_valid = y[train_idx], y[valid_idx]
    _check_classes(y_train, task, "training", by, classes)
    _check_classes(y_valid, task, "validation", by, classes)
    train_rows = frame.df.iloc[train_idx]
    valid_rows = frame.df.iloc[valid_idx].reset_index(drop=True)
    cats = _categoricals(train_rows, frame.features, categorical)
    return Prepared(
        X_train=encode_features(train_rows, frame.features, cats).reset_index(drop=True), y_train=y_train,
        X_valid=encode_features(valid_rows, frame.features, cats), y_valid=y_valid, valid_rows=valid_rows,
        features=list(frame.features), categorical=cats, classes=classes,
        rows={"total": len(frame.df), "train": len(train_idx), "valid": len(valid_idx)})
