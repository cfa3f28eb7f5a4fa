"""What a monitor watches, and how logged values become numbers a detector compares.

A :class:`Schema` is built once per model version from its reference data and saved with the detectors
(plain JSON). Numeric features stay numbers; categorical ones (text, bools, or named categorical) become
codes: the reference categories ``0..k-1`` in a fixed order, then :data:`MISSING_CODE_OFFSET` (``k``) for
a missing value and ``k + 1`` for any value never seen in the reference (reported by name and count).

Histograms of the reference (numeric: fixed bins between its 0.5% and 99.5% quantiles, the end bins
also counting what lies beyond; categorical: counts per category) are kept with the schema, and the
window's values are counted into the same bins at every run: the report shows both without ever
storing rows.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from .logcache import MISSING, Categories, LogColumns, category_text

__all__ = ["FeatureSchema", "Schema", "Encoded", "PREDICTION", "build_schema", "encode_frame", "encode_window",
           "histogram", "histograms"]

PREDICTION = "__prediction__"  # the pseudo-feature for prediction drift
BINS = 20
MAX_CATEGORIES_SHOWN = 30


@dataclass
class FeatureSchema:
    name: str
    kind: str  # numeric | categorical
    categories: list[str] = field(default_factory=list)
    ref_missing: float = 0.0  # share of missing values in the reference
    edges: list[float] = field(default_factory=list)  # numeric histogram bin edges
    ref_hist: list[float] = field(default_factory=list)  # reference shares per bin / per category

    @property
    def missing_code(self) -> int:
        return len(self.categories)

    @property
    def unseen_code(self) -> int:
        return len(self.categories) + 1


@dataclass
class Schema:
    features: list[FeatureSchema]
    prediction: FeatureSchema | None = None

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.features]

    def categorical_indices(self) -> list[int]:
        return [i for i, f in enumerate(self.features) if f.kind == "categorical"]

    def to_dict(self) -> dict:
        return {"features": [asdict(f) for f in self.features],
                "prediction": asdict(self.prediction) if self.prediction else None}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Schema":
        pred = data.get("prediction")
        return cls([FeatureSchema(**f) for f in data["features"]], FeatureSchema(**pred) if pred else None)


@dataclass
class Encoded:
    """A window (or the reference) as a float matrix, with what was missing or new in it."""

    X: np.ndarray  # (n, features) float64, column-major; categorical columns hold codes
    missing: dict[str, int] = field(default_factory=dict)  # feature -> rows without a value
    unseen: dict[str, dict[str, int]] = field(default_factory=dict)  # feature -> {new value: count}
    absent: list[str] = field(default_factory=list)  # features no logged row carried at all


def _is_categorical(values: np.ndarray) -> bool:
    return values.dtype.kind in "OUSb" or str(values.dtype) == "category"


def _text(values) -> np.ndarray:
    """Any column -> the canonical category spellings (vectorised over the distinct values)."""
    values = np.asarray(values, dtype=object) if not isinstance(values, np.ndarray) else values
    if values.dtype.kind == "U":
        return values
    if values.dtype.kind == "f":
        out = np.full(len(values), MISSING, dtype=object)
        ok = ~np.isnan(values)
        uniq, inverse = np.unique(values[ok], return_inverse=True)
        out[ok] = np.array([category_text(float(u)) for u in uniq], dtype=object)[inverse]
        return out.astype(str)
    return np.array([category_text(None if _isnull(v) else v) for v in values], dtype=str)


def _isnull(value) -> bool:
    if value is None:
        return True
    try:
        return bool(value != value)  # NaN, pandas NA/NaT
    except (TypeError, ValueError):
        return False


def histogram(feature: FeatureSchema, values: np.ndarray) -> list[int]:
    """Counts of ``values`` (numbers or codes) in the feature's bins / categories (+ missing, unseen).
    Numeric values beyond the outer edges count in the end bins; missing ones are not counted."""
    if feature.kind == "numeric":
        bins = max(len(feature.edges) - 1, 0)
        ok = values[~np.isnan(values)]
        if not bins or not len(ok):
            return [0] * bins
        lo, hi = feature.edges[0], feature.edges[-1]
        index = np.clip((ok - lo) * (bins / (hi - lo)), 0, bins - 1).astype(np.int64)  # ±inf: the end bins
        return np.bincount(index, minlength=bins).astype(int).tolist()
    codes = values.astype(np.int64)
    return np.bincount(codes, minlength=feature.unseen_code + 1)[: feature.unseen_code + 1].astype(int).tolist()


def histograms(features: Sequence[FeatureSchema], X: np.ndarray) -> dict[str, list[int]]:
    """``histogram`` of every column of ``X`` (one per feature, in order). Column by column: on the
    strided row samples monitors count, that measured faster than one pass over the whole matrix."""
    return {feature.name: histogram(feature, X[:, j]) for j, feature in enumerate(features)}


def _numeric_schema(name: str, values: np.ndarray) -> FeatureSchema:
    values = values.astype(np.float64)
    ok = values[~np.isnan(values)]
    missing = float(1 - len(ok) / len(values)) if len(values) else 0.0
    feature = FeatureSchema(name=name, kind="numeric", ref_missing=round(missing, 6))
    if len(ok):
        lo, hi = np.quantile(ok, [0.005, 0.995])
        if hi <= lo:
            lo, hi = float(ok.min()), float(ok.max())
        if hi <= lo:
            lo, hi = lo - 0.5, hi + 0.5
        feature.edges = np.linspace(lo, hi, BINS + 1).round(10).tolist()
        counts = histogram(feature, ok)
        feature.ref_hist = (np.asarray(counts) / max(len(ok), 1)).round(6).tolist()
    return feature


def _categorical_schema(name: str, values) -> FeatureSchema:
    text = _text(values)
    present = text[text != MISSING]
    uniq, counts = np.unique(present, return_counts=True)
    order = np.lexsort((uniq, -counts))  # most frequent first, then by name
    feature = FeatureSchema(name=name, kind="categorical", categories=[str(u) for u in uniq[order]],
                            ref_missing=round(float(1 - len(present) / len(text)), 6) if len(text) else 0.0)
    codes = _codes(feature, text)[0]
    feature.ref_hist = (np.asarray(histogram(feature, codes)) / max(len(text), 1)).round(6).tolist()
    return feature


def build_schema(frame, features: Sequence[str], *, categorical: Sequence[str] = (),
                 predictions: np.ndarray | None = None, prediction_kind: str = "numeric") -> Schema:
    """The schema of a reference ``frame`` (a pandas DataFrame) for these features."""
    out = []
    for name in features:
        column = frame[name]
        raw = column.to_numpy()
        if name in categorical or _is_categorical(raw) or str(column.dtype) in ("category", "boolean", "string"):
            out.append(_categorical_schema(name, column.astype(object).to_numpy()))
        else:
            out.append(_numeric_schema(name, column.to_numpy(dtype=np.float64, na_value=np.nan)))
    prediction = None
    if predictions is not None:
        if prediction_kind == "categorical":
            prediction = _categorical_schema(PREDICTION, np.asarray(predictions).astype(np.int64).astype(str))
        else:
            prediction = _numeric_schema(PREDICTION, np.asarray(predictions, dtype=np.float64))
    return Schema(out, prediction)


def _codes(feature: FeatureSchema, text: np.ndarray) -> tuple[np.ndarray, dict[str, int], int]:
    """Category texts -> codes; returns (codes, unseen {value: count}, missing count)."""
    uniq, inverse = np.unique(text, return_inverse=True)
    index = {c: i for i, c in enumerate(feature.categories)}
    mapping = np.empty(len(uniq), dtype=np.float64)
    unseen: dict[str, int] = {}
    counts = np.bincount(inverse, minlength=len(uniq)) if len(uniq) else np.zeros(0, dtype=np.int64)
    missing = 0
    for i, value in enumerate(uniq):
        value = str(value)
        if value == MISSING:
            mapping[i] = feature.missing_code
            missing = int(counts[i])
        elif value in index:
            mapping[i] = index[value]
        else:
            mapping[i] = feature.unseen_code
            unseen[value] = int(counts[i])
    return mapping[inverse] if len(uniq) else np.zeros(0), unseen, missing


_TABLES: dict[tuple[int, int], tuple[FeatureSchema, np.ndarray, np.ndarray, dict]] = {}  # see _code_table
_TABLES_KEPT = 256


def _code_table(feature: FeatureSchema, vocab: np.ndarray) -> tuple[np.ndarray, dict[str, int]]:
    """(vocabulary index -> feature code, with -1 -> missing last; the unseen values). Log caches hand
    out the same vocabulary array run after run, so the table is kept per (feature, vocabulary) object."""
    key = (id(feature), id(vocab))
    found = _TABLES.get(key)
    if found is not None and found[0] is feature and found[1] is vocab:  # the ids were not reused
        return found[2], found[3]
    mapped, unseen_by_vocab, _ = _codes(feature, vocab.astype(str)) if len(vocab) else (np.zeros(0), {}, 0)
    table = np.append(mapped, feature.missing_code).astype(np.float64)  # code -1 -> the last entry: missing
    if len(_TABLES) >= _TABLES_KEPT:
        _TABLES.clear()
    _TABLES[key] = (feature, vocab, table, unseen_by_vocab)
    return table, unseen_by_vocab


def _vocab_codes(feature: FeatureSchema, cats: Categories) -> tuple[np.ndarray, dict[str, int], int]:
    """Dictionary-encoded logged values -> the feature's codes (one lookup per distinct value)."""
    table, unseen_by_vocab = _code_table(feature, cats.vocab)
    codes = table[cats.codes]
    if not unseen_by_vocab:
        return codes, {}, int(np.count_nonzero(cats.codes < 0))
    counts = np.bincount(cats.codes + 1, minlength=len(cats.vocab) + 1)  # [missing, vocab...]
    unseen = {str(v): int(counts[i + 1]) for i, v in enumerate(cats.vocab) if str(v) in unseen_by_vocab
              and counts[i + 1]}
    return codes, unseen, int(counts[0])


def _encode_column(feature: FeatureSchema, values, n: int, encoded: Encoded) -> np.ndarray:
    if values is None:
        encoded.absent.append(feature.name)
        encoded.missing[feature.name] = n
        return np.full(n, np.nan if feature.kind == "numeric" else feature.missing_code, dtype=np.float64)
    if feature.kind == "numeric":
        if isinstance(values, Categories):  # text logged for a numeric feature: numbers where it parses
            import pandas as pd

            table = np.append(pd.to_numeric(pd.Series(values.vocab, dtype=object), errors="coerce")
                              .to_numpy(np.float64), np.nan)
            values = table[values.codes]
        elif values.dtype.kind != "f":
            import pandas as pd

            values = pd.to_numeric(pd.Series(values).replace(MISSING, None), errors="coerce").to_numpy(np.float64)
        missing = int(np.isnan(values).sum())
        if missing:
            encoded.missing[feature.name] = missing
        return values
    if isinstance(values, Categories):
        codes, unseen, missing = _vocab_codes(feature, values)
    else:
        codes, unseen, missing = _codes(feature, _text(values))
    if unseen:
        encoded.unseen[feature.name] = unseen
    if missing:
        encoded.missing[feature.name] = missing
    return codes


def encode_window(window: LogColumns, schema: Schema, *, extra: int = 0) -> Encoded:
    """The logged rows of ``window`` as the schema's matrix (features that no row carried are NaN /
    missing and listed in ``absent``). Column-major, so each column is one contiguous block (what the
    per-feature tests read); ``extra`` empty columns are left at the end for the caller."""
    encoded = Encoded(X=np.empty((window.n, len(schema.features) + extra), order="F"))
    for j, feature in enumerate(schema.features):
        column = encoded.X[:, j]
        if feature.kind == "numeric" and window.copy_feature(feature.name, column):
            # Straight from the log's segments, one copy; the caches know which columns have no NaN.
            if "f:" + feature.name not in window.no_nan and np.isnan(column.sum()):
                encoded.missing[feature.name] = int(np.isnan(column).sum())
            continue
        column[:] = _encode_column(feature, window.feature(feature.name), window.n, encoded)
    return encoded


def encode_frame(frame, schema: Schema) -> Encoded:
    """A pandas frame (the reference) as the schema's matrix."""
    n = len(frame)
    encoded = Encoded(X=np.empty((n, len(schema.features)), order="F"))
    for j, feature in enumerate(schema.features):
        column = frame[feature.name] if feature.name in frame.columns else None
        if column is None:
            values = None
        elif feature.kind == "numeric":
            values = column.to_numpy(dtype=np.float64, na_value=np.nan)
        else:
            values = _text(column.astype(object).to_numpy())
        encoded.X[:, j] = _encode_column(feature, values, n, encoded)
    return encoded


def prediction_values(window: LogColumns, feature: FeatureSchema) -> np.ndarray:
    """The window's predictions as the prediction pseudo-feature's numbers or codes."""
    if feature.kind == "numeric":
        return window.get("prediction") if window.n else np.zeros(0)
    klass = window.get("prediction_class")
    text = np.where(klass >= 0, klass.astype(str), MISSING) if klass is not None else np.full(window.n, MISSING)
    return _codes(feature, text.astype(str))[0]
