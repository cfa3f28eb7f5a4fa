"""What drift backends share when they build and run detectors (numpy: imported only when a detector is
built or run, never by a plugin's declaration).

Building, from a :class:`ml_framework.plugins.monitoring.reference.Reference`:

* :func:`encode_reference` — the reference as the schema's matrix, missing values filled by drawing from
  the observed values of the same column (seeded), and the prediction column;
* :func:`staging` / :func:`write_meta` — a detector folder is written aside and moved in place; its
  ``meta.json`` (schema, settings, reference, columns, notes: what the report reads) is written last, so a
  folder without it is an interrupted build.

Running (:class:`SavedBundle`, the base of a backend's checker): a window of logged requests is encoded
with the saved schema, counted into the reference histograms, described per feature (rows, missing,
unseen categories) and declared inconclusive when too small; the backend's ``run`` then tests the columns.
The univariate tests (:func:`ks_test`, :func:`chi2_test`) and the batch decision over them
(:func:`decide`: Bonferroni, or the false discovery rate as alibi-detect computes it) are the same for
every backend that runs them.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import numpy as np

from .logcache import LogColumns
from .results import INCONCLUSIVE, DriftResult, FeatureResult
from .schema import (
    PREDICTION,
    FeatureSchema,
    Schema,
    build_schema,
    encode_frame,
    encode_window,
    histogram,
    histograms,
    prediction_values,
)

__all__ = ["HISTOGRAM_ROWS", "ReferenceMatrix", "encode_reference", "missing_mask", "fill_missing",
           "prediction_column", "ks_test", "chi2_test", "fdr", "decide", "staging", "write_meta", "open_cached",
           "window_histograms", "feature_results", "SavedBundle"]

HISTOGRAM_ROWS = 5_000  # histograms of larger windows are counted on every k-th row (about this many)
_LOADED: dict[tuple[Any, str, float], Any] = {}
_LOADED_GUARD = threading.Lock()


# -- building ----------------------------------------------------------------------------------------------------
def missing_mask(X: np.ndarray, j: int, feature: FeatureSchema | None) -> np.ndarray:
    """Where column ``j`` has no value: NaN, or the missing code of a categorical feature."""
    if feature is not None and feature.kind == "categorical":
        return X[:, j] == feature.missing_code
    return np.isnan(X[:, j])


def fill_missing(X: np.ndarray, schema: Schema, rng: np.random.Generator) -> np.ndarray:
    """Reference rows without a value get one drawn from the observed values of the same column, so the
    reference is the distribution of values present — what windows are tested on."""
    for j, feature in enumerate(schema.features):
        holes = missing_mask(X, j, feature)
        if holes.any():
            observed = X[~holes, j]
            X[holes, j] = rng.choice(observed, size=int(holes.sum())) if len(observed) else 0.0
    return X


def _one_column(values):
    import pandas as pd

    return pd.DataFrame({PREDICTION: np.asarray(values).astype(np.int64).astype(str)})


def prediction_column(schema: Schema, preds, rng: np.random.Generator) -> np.ndarray | None:
    """The reference predictions as a detector column: numbers, or class codes (multiclass)."""
    if schema.prediction is None:
        return None
    if schema.prediction.kind == "categorical":
        frame = _one_column(preds)
        return encode_frame(frame, Schema([schema.prediction])).X[:, 0]
    column = np.asarray(preds, dtype=np.float64).copy()
    holes = np.isnan(column)
    if holes.any():  # rows the model could not score (NaN inputs it does not handle)
        observed = column[~holes]
        column[holes] = rng.choice(observed, size=int(holes.sum())) if len(observed) else 0.0
    return column


@dataclass
class ReferenceMatrix:
    """The reference of one model version, encoded: what every backend builds its detector from."""

    schema: Schema
    X: np.ndarray  # (rows, features) float64, missing values filled
    predictions: np.ndarray | None  # the prediction column (numbers or class codes), or None
    rng: np.random.Generator  # seeded by reference.seed, after the fills: for any further sampling
    notes: list[str]


def encode_reference(reference, *, categorical, seed: int, predictions: bool) -> ReferenceMatrix:
    """The schema of ``reference`` (features named ``categorical`` are categorical besides text/bool ones and
    those the model was trained with as categorical) and its matrix, missing values filled (seeded)."""
    rng = np.random.default_rng(seed)
    categorical = sorted(set(reference.categorical) | set(categorical))
    preds = reference.predictions if predictions else None
    schema = build_schema(reference.frame, reference.features, categorical=categorical, predictions=preds,
                          prediction_kind=reference.prediction_kind)
    X = fill_missing(encode_frame(reference.frame, schema).X, schema, rng)
    pred_column = prediction_column(schema, preds, rng)
    return ReferenceMatrix(schema=schema, X=X, predictions=pred_column, rng=rng, notes=list(reference.notes))


@contextmanager
def staging(folder: Path) -> Iterator[Path]:
    """A fresh folder beside ``folder`` to write a detector into; moved in place of ``folder`` when the block
    ends without an error, removed in any case."""
    folder = Path(folder)
    tmp = folder.with_name(folder.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        yield tmp
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_meta(folder: Path, meta: Mapping[str, Any]) -> None:
    """``meta.json`` of a detector folder: write it last (its presence says the folder is complete)."""
    (Path(folder) / "meta.json").write_text(json.dumps(meta, indent=1, default=str), encoding="utf-8")


def open_cached(folder: Path, factory: Callable[[Path], Any]) -> Any:
    """``factory(folder)``, shared by the runs of one process (``ml monitor watch``) until meta.json changes."""
    folder = Path(folder)
    meta = folder / "meta.json"
    key = (factory, str(folder.resolve()), meta.stat().st_mtime)
    with _LOADED_GUARD:
        found = _LOADED.get(key)
        if found is None:
            found = _LOADED[key] = factory(folder)
        return found


# -- testing -----------------------------------------------------------------------------------------------------
def ks_test(reference: np.ndarray, values: np.ndarray, alternative: str = "two-sided") -> tuple[float, float]:
    """Two-sample Kolmogorov-Smirnov (asymptotic p-value, as alibi-detect runs it): (statistic, p-value)."""
    from scipy.stats import ks_2samp

    out = ks_2samp(reference, values, alternative=alternative, method="asymp")
    return float(out.statistic), float(out.pvalue)


def chi2_test(ref_codes: np.ndarray, ref_counts: np.ndarray, values: np.ndarray) -> tuple[float, float]:
    """Chi-squared test of homogeneity between the reference's counts per category code (``ref_codes``: the
    codes it holds, each with a positive count) and the codes in ``values``, over the union of the
    categories either holds (as alibi-detect's TabularDrift): (statistic, p-value)."""
    from scipy.stats import chi2_contingency

    codes, counts = np.unique(values, return_counts=True)
    cats = np.union1d(np.asarray(ref_codes, dtype=np.float64), codes)
    table = np.zeros((2, len(cats)))
    table[0, np.searchsorted(cats, ref_codes)] = ref_counts
    table[1, np.searchsorted(cats, codes)] = counts
    out = chi2_contingency(table)
    return float(out[0]), float(out[1])


def fdr(p_val: np.ndarray, q_val: float) -> tuple[int, float | np.ndarray]:
    """The false discovery rate correction (Benjamini-Hochberg), exactly as alibi-detect's
    ``alibi_detect.utils.statstest.fdr``: (whether any p-value is significant, the largest threshold met —
    or every candidate threshold when none is)."""
    n = p_val.shape[0]
    i = np.arange(n) + 1
    p_sorted = np.sort(p_val)
    q_threshold = q_val * i / n
    below = p_sorted < q_threshold
    hits = np.flatnonzero(below)
    if not len(hits):
        return int(below.any()), q_threshold
    return int(below.any()), q_threshold[hits.max()]


def decide(p: np.ndarray, p_val: float, correction: str, n_tests: int) -> tuple[float | None, np.ndarray]:
    """The per-test threshold and which tests reject, as alibi-detect's batch decision (NaN: not tested).
    Bonferroni divides ``p_val`` by ``n_tests`` (every planned test, tested or not: conservative)."""
    valid = ~np.isnan(p)
    flags = np.zeros(len(p), dtype=bool)
    if not valid.any():
        return None, flags
    if correction == "fdr":
        drift, threshold = fdr(p[valid], q_val=p_val)
        if not drift:
            return None, flags
        threshold = float(threshold)
    else:
        threshold = p_val / max(n_tests, 1)
    flags[valid] = p[valid] < threshold
    return threshold, flags


# -- running -----------------------------------------------------------------------------------------------------
def window_histograms(result: DriftResult, schema: Schema, X: np.ndarray, pred_values) -> None:
    """Count the window into the reference bins (every k-th row of large windows: a view, no copy)."""
    rows = slice(None, None, -(-len(X) // HISTOGRAM_ROWS) or 1)
    result.histogram_rows = len(range(len(X))[rows])
    result.histograms.update(histograms(schema.features, X[rows]))
    if pred_values is not None:
        result.histograms[PREDICTION] = histogram(schema.prediction, pred_values[rows])


def feature_results(schema: Schema, encoded, pred_values, tests: Mapping[str, str], method: str
                    ) -> dict[str, FeatureResult]:
    """One result per feature (and the prediction) before testing: rows with a value, missing, unseen.
    ``tests``: feature -> the test it gets (``ks``, ``chi2``, ``psi``, ``mmd``); any other is ``none``."""
    out = {}
    n = len(encoded.X)
    for feature in schema.features:
        missing = encoded.missing.get(feature.name, 0)
        test = tests.get(feature.name, "none")
        note = None
        if feature.name in encoded.absent:
            note = "not in any logged row"
        elif test == "none":
            note = f"{feature.kind}: not tested by method {method}"
        out[feature.name] = FeatureResult(name=feature.name, kind=feature.kind, test=test, n=n - missing,
                                          missing=missing, unseen=encoded.unseen.get(feature.name, {}), note=note)
    if pred_values is not None:
        pred = schema.prediction
        holes = np.isnan(pred_values) if pred.kind == "numeric" else pred_values == pred.missing_code
        missing = int(holes.sum())
        out[PREDICTION] = FeatureResult(name=PREDICTION, kind=pred.kind, test=tests.get(PREDICTION, "none"),
                                        n=n - missing, missing=missing)
    return out


class SavedBundle:
    """A saved detector folder, opened once per process: ``meta.json`` read now, the backend's own files
    when a subclass needs them. ``check(window, min_samples=...)`` is the ``drift_checker``'s check.

    Subclasses define ``tests()`` (feature -> test name, for the features they test) and
    ``run(result, encoded, pred_values, features)``, which fills p-values/distances/decisions and the status.
    ``columns`` (from meta.json) are the tested columns in order; ``__prediction__`` among them puts the
    window's predictions in the encoded matrix's last column.
    """

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.meta = json.loads((self.folder / "meta.json").read_text(encoding="utf-8"))
        self.schema = Schema.from_dict(self.meta["schema"])
        self.settings = self.meta["settings"]
        self.columns: list[str] = self.meta["columns"]
        self.built_now = False  # set by the provider when the folder was built for this run

    def tests(self) -> Mapping[str, str]:  # pragma: no cover - abstract
        raise NotImplementedError

    def run(self, result: DriftResult, encoded, pred_values, features: Mapping[str, FeatureResult]) -> None:
        raise NotImplementedError  # pragma: no cover - abstract

    def check(self, window: LogColumns, *, min_samples: int) -> DriftResult:
        method = self.meta["method"]
        result = DriftResult(status=INCONCLUSIVE, method=method, n=window.n, min_samples=min_samples,
                             notes=list(self.meta.get("notes", [])))
        pred_feature = self.schema.prediction
        with_pred = PREDICTION in self.columns
        encoded = encode_window(window, self.schema, extra=1 if with_pred else 0)
        pred_values = None
        if pred_feature is not None:
            pred_values = np.asarray(prediction_values(window, pred_feature), dtype=np.float64)
            if with_pred:
                encoded.X[:, -1] = pred_values
        window_histograms(result, self.schema, encoded.X, pred_values)
        features = feature_results(self.schema, encoded, pred_values, self.tests(), method)
        result.features = list(features.values())
        if window.n == 0:
            result.notes.append("no traffic in the window yet: inconclusive")
            return result
        if window.n < min_samples:
            result.notes.append(f"the window holds {window.n} rows, fewer than min_samples ({min_samples}): "
                                "inconclusive, not drift")
            return result
        if encoded.absent:
            result.notes.append("not logged at all, so not tested: " + ", ".join(encoded.absent))
        self.run(result, encoded, pred_values, features)
        return result

    def feature(self, name: str) -> FeatureSchema | None:
        if name == PREDICTION:
            return self.schema.prediction
        return next((f for f in self.schema.features if f.name == name), None)

    def matrix(self, encoded) -> np.ndarray:
        """The window in the tested columns' order: the encoded matrix itself when they agree."""
        names = self.schema.names + ([PREDICTION] if PREDICTION in self.columns else [])
        if self.columns == names:
            return encoded.X
        index = {name: j for j, name in enumerate(names)}
        return np.asfortranarray(encoded.X[:, [index[c] for c in self.columns]])
