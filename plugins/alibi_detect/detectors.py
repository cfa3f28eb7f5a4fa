"""Build, save, load and run alibi-detect drift detectors for one model version.

A detector folder (``.ml/monitors/<monitor>/<model>/v<N>-<key>/``) holds:

* ``detector/`` — the detector, written by alibi-detect's ``save_detector`` (config.toml + x_ref.npy);
* ``prediction/`` — with ``method: mmd`` only, the prediction-drift detector (KS or chi-squared);
* ``meta.json`` — the schema (features, kinds, categories, reference histograms), the settings, the
  reference used (rows, total, sampled, notes), the columns the detector sees, and the standardisation of
  ``mmd`` inputs. Written last: a folder without it is an interrupted build and is built again.

``key`` hashes what the detector depends on (method, p-value, correction, features, categorical,
reference settings): a change of any of them builds a new folder; alerts, schedule or window do not.

Missing values: the reference's missing numeric values are filled by drawing from its observed values of
the same feature (seeded), and its missing share is kept in the schema. A window column with missing
values is tested exactly on the rows that have a value (the same two-sample test alibi-detect runs, on
fewer rows), and the batch decision is taken again with the same correction. A feature that no logged row
carried is not tested (reported), and still counts in the Bonferroni family, which keeps it conservative.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import threading
import time
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ml_framework.plugins.monitoring.logcache import LogColumns
from ml_framework.plugins.monitoring.results import DRIFT, INCONCLUSIVE, OK, DriftResult, FeatureResult
from ml_framework.plugins.monitoring.schema import (
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

__all__ = ["BUNDLE_FORMAT", "build_bundle", "open_bundle", "Bundle", "bundle_key", "HISTOGRAM_ROWS"]

BUNDLE_FORMAT = 1
HISTOGRAM_ROWS = 5_000  # histograms of larger windows are counted on every k-th row (about this many)
_LOADED: dict[tuple[str, float], "Bundle"] = {}
_LOADED_GUARD = threading.Lock()


def _quiet() -> None:
    """alibi-detect logs a warning per saved folder and per CPU fallback: not news to our users."""
    for name in ("alibi_detect", "alibi_detect.saving", "alibi_detect.saving.saving", "alibi_detect.utils"):
        logging.getLogger(name).setLevel(logging.ERROR)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def bundle_key(settings: Mapping[str, Any], features: list[str] | None, predictions: bool) -> str:
    from ml_framework.graph import canonical_json, digest

    relevant = {k: settings.get(k) for k in ("method", "p_val", "correction", "categorical", "reference")}
    if settings.get("method") == "mmd":
        relevant["mmd"] = settings.get("mmd")
    relevant.update(features=features, predictions=predictions, format=BUNDLE_FORMAT)
    return digest(canonical_json(relevant))[:12]


# -- building -------------------------------------------------------------------------------------------------
def _holes(X: np.ndarray, j: int, feature: FeatureSchema | None) -> np.ndarray:
    """Where column ``j`` has no value: NaN, or the missing code of a categorical feature."""
    if feature is not None and feature.kind == "categorical":
        return X[:, j] == feature.missing_code
    return np.isnan(X[:, j])


def _fill_missing(X: np.ndarray, schema: Schema, rng: np.random.Generator) -> np.ndarray:
    """Reference rows without a value get one drawn from the observed values of the same column, so the
    reference is the distribution of values present — what windows are tested on."""
    for j, feature in enumerate(schema.features):
        holes = _holes(X, j, feature)
        if holes.any():
            observed = X[~holes, j]
            X[holes, j] = rng.choice(observed, size=int(holes.sum())) if len(observed) else 0.0
    return X


def _mmd_inputs(X: np.ndarray, schema: Schema, scale: Mapping[str, Any]) -> np.ndarray:
    """Standardised numeric columns and one-hot categorical codes (missing/unseen get their own column)."""
    parts = []
    for j, feature in enumerate(schema.features):
        column = X[:, j]
        if feature.kind == "numeric":
            mean, std = scale[feature.name]
            z = (column - mean) / std
            parts.append(np.nan_to_num(z, nan=0.0)[:, None])
        else:
            width = feature.unseen_code + 1
            onehot = np.zeros((len(column), width))
            onehot[np.arange(len(column)), column.astype(np.int64)] = 1.0
            parts.append(onehot)
    return np.hstack(parts).astype(np.float32) if parts else np.zeros((len(X), 0), np.float32)


def _prediction_column(schema: Schema, preds, rng: np.random.Generator) -> np.ndarray | None:
    """The reference predictions as the detector's column: numbers, or class codes (multiclass)."""
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


def _univariate(X, schema: Schema, pred_column, settings, notes: list[str], progress):
    """TabularDrift (or KSDrift on the numeric columns) over the features and the predictions."""
    from alibi_detect.cd import KSDrift, TabularDrift

    use = list(range(len(schema.features)))
    if settings.method == "ks":
        use = [j for j, f in enumerate(schema.features) if f.kind == "numeric"]
        skipped = [f.name for f in schema.features if f.kind != "numeric"]
        if skipped:
            notes.append(f"method ks tests numeric features only; not tested: {', '.join(skipped)} "
                         "(use method tabular for chi-squared on categorical features)")
    ref = X[:, use]
    columns = [schema.features[j].name for j in use]
    cats = {i: None for i, j in enumerate(use) if schema.features[j].kind == "categorical"}
    if pred_column is not None and (settings.method == "tabular" or schema.prediction.kind == "numeric"):
        ref = np.column_stack([ref, pred_column])
        columns.append(PREDICTION)
        if schema.prediction.kind == "categorical":
            cats[len(columns) - 1] = None
    if not columns:
        raise ValueError("no feature to test: every watched feature is categorical and method ks tests "
                         "numeric ones only (use method tabular)")
    name = "TabularDrift" if settings.method == "tabular" else "KSDrift"
    if progress:
        progress(f"building {name} on {len(ref):,} reference rows × {len(columns)} columns")
    ref = np.asfortranarray(ref)
    if settings.method == "tabular":
        return TabularDrift(ref, p_val=settings.p_val, categories_per_feature=cats,
                            correction=settings.correction), columns
    return KSDrift(ref, p_val=settings.p_val, correction=settings.correction), columns


def _mmd(X, schema: Schema, pred_column, settings, meta: dict, rng, progress):
    """MMDDrift (PyTorch) over standardised/one-hot features, and a separate prediction detector."""
    from alibi_detect.cd import ChiSquareDrift, KSDrift, MMDDrift

    scale = {f.name: (float(np.mean(X[:, j])), float(np.std(X[:, j])) or 1.0)
             for j, f in enumerate(schema.features) if f.kind == "numeric"}
    meta["scale"] = scale
    sample = np.sort(rng.choice(len(X), size=min(len(X), settings.mmd.max_rows), replace=False))
    Z = _mmd_inputs(X[sample], schema, scale)
    p_val = settings.p_val / 2 if pred_column is not None else settings.p_val
    if progress:
        progress(f"building MMDDrift (pytorch) on {len(Z):,} reference rows × {Z.shape[1]} inputs")
    detector = MMDDrift(Z, backend="pytorch", p_val=p_val, n_permutations=settings.mmd.n_permutations, device="cpu")
    prediction = None
    if pred_column is not None:
        kind = ChiSquareDrift if schema.prediction.kind == "categorical" else KSDrift
        prediction = kind(pred_column[:, None], p_val=p_val)
    return detector, prediction


def build_bundle(folder: Path, reference, settings, *, model: str, version: str, predictions: bool,
                 progress=None) -> dict[str, Any]:
    """Build the detector(s) for ``reference`` (a :class:`ml_framework.plugins.monitoring.reference.Reference`) and
    save them under ``folder`` (written aside, then moved in place). Returns the meta of meta.json."""
    _quiet()
    from alibi_detect.saving import save_detector

    started = time.perf_counter()
    rng = np.random.default_rng(settings.reference.seed)
    categorical = sorted(set(reference.categorical) | set(settings.categorical))
    preds = reference.predictions if predictions else None
    schema = build_schema(reference.frame, reference.features, categorical=categorical, predictions=preds,
                          prediction_kind=reference.prediction_kind)
    X = _fill_missing(encode_frame(reference.frame, schema).X, schema, rng)
    pred_column = _prediction_column(schema, preds, rng)
    notes = list(reference.notes)
    meta: dict[str, Any] = {"format": BUNDLE_FORMAT, "model": model, "version": version, "method": settings.method,
                            "settings": settings.model_dump(), "reference": reference.info()}
    tmp = folder.with_name(folder.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        if settings.method == "mmd":
            columns = list(schema.names)
            detector, prediction = _mmd(X, schema, pred_column, settings, meta, rng, progress)
            if prediction is not None:
                save_detector(prediction, tmp / "prediction")
        else:
            detector, columns = _univariate(X, schema, pred_column, settings, notes, progress)
        save_detector(detector, tmp / "detector")
        meta.update(schema=schema.to_dict(), columns=columns, notes=notes,
                    build_seconds=round(time.perf_counter() - started, 3),
                    built_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1, default=str), encoding="utf-8")
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return meta


def _one_column(values):
    import pandas as pd

    return pd.DataFrame({PREDICTION: np.asarray(values).astype(np.int64).astype(str)})


# -- running ---------------------------------------------------------------------------------------------------
class Bundle:
    """A saved detector folder, loaded once per process (the detectors themselves on first use)."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.meta = json.loads((self.folder / "meta.json").read_text(encoding="utf-8"))
        self.schema = Schema.from_dict(self.meta["schema"])
        self.settings = self.meta["settings"]
        self.columns: list[str] = self.meta["columns"]
        self._detector = None
        self._prediction = None
        self._lock = threading.Lock()

    @property
    def detector(self):
        with self._lock:
            if self._detector is None:
                _quiet()
                from alibi_detect.saving import load_detector

                self._detector = load_detector(self.folder / "detector")
                if (self.folder / "prediction").is_dir():
                    self._prediction = load_detector(self.folder / "prediction")
            return self._detector

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
        self._histograms(result, encoded.X, pred_values)
        features = self._feature_results(encoded, pred_values)
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
        if method == "mmd":
            self._run_mmd(result, encoded, pred_values, features)
        else:
            self._run_univariate(result, encoded, features)
        return result

    def _feature(self, name: str) -> FeatureSchema | None:
        if name == PREDICTION:
            return self.schema.prediction
        return next((f for f in self.schema.features if f.name == name), None)

    def _histograms(self, result: DriftResult, X: np.ndarray, pred_values) -> None:
        rows = slice(None, None, -(-len(X) // HISTOGRAM_ROWS) or 1)  # every k-th row: a view, no copy
        result.histogram_rows = len(range(len(X))[rows])
        result.histograms.update(histograms(self.schema.features, X[rows]))
        if pred_values is not None:
            result.histograms[PREDICTION] = histogram(self.schema.prediction, pred_values[rows])

    def _feature_results(self, encoded, pred_values) -> dict[str, FeatureResult]:
        out = {}
        tested = set(self.columns) if self.meta["method"] != "mmd" else set()
        n = len(encoded.X)
        for feature in self.schema.features:
            missing = encoded.missing.get(feature.name, 0)
            test = ("ks" if feature.kind == "numeric" else "chi2") if feature.name in tested else (
                "mmd" if self.meta["method"] == "mmd" else "none")
            note = None
            if feature.name in encoded.absent:
                note = "not in any logged row"
            elif test == "none":
                note = "categorical: not tested by method ks"
            out[feature.name] = FeatureResult(name=feature.name, kind=feature.kind, test=test, n=n - missing,
                                              missing=missing, unseen=encoded.unseen.get(feature.name, {}),
                                              note=note)
        if pred_values is not None:
            pred = self.schema.prediction
            holes = np.isnan(pred_values) if pred.kind == "numeric" else pred_values == pred.missing_code
            missing = int(holes.sum())
            test = "ks" if pred.kind == "numeric" else "chi2"
            if self.meta["method"] != "mmd" and PREDICTION not in tested:
                test = "none"
            out[PREDICTION] = FeatureResult(name=PREDICTION, kind=pred.kind, test=test, n=n - missing, missing=missing)
        return out

    def _matrix(self, encoded) -> np.ndarray:
        """The window in the detector's column order: the encoded matrix itself when they agree."""
        names = self.schema.names + ([PREDICTION] if PREDICTION in self.columns else [])
        if self.columns == names:
            return encoded.X
        index = {name: j for j, name in enumerate(names)}
        return np.asfortranarray(encoded.X[:, [index[c] for c in self.columns]])

    def _run_univariate(self, result: DriftResult, encoded, features) -> None:
        detector = self.detector
        X = self._matrix(encoded)
        observed = {}
        for j, name in enumerate(self.columns):
            if features[name].missing:  # tested below on the rows that have a value
                holes = _holes(X, j, self._feature(name))
                observed[j] = X[~holes, j].copy()
                X[holes, j] = observed[j][0] if len(observed[j]) else 0.0
        data = detector.predict(X, drift_type="batch", return_p_val=True, return_distance=True)["data"]
        p = np.asarray(data["p_val"], dtype=np.float64)
        dist = np.asarray(data["distance"], dtype=np.float64)
        if observed:
            self._retest_observed(detector, observed, p, dist)
        threshold, flags = _decide(p, detector.p_val, self.settings["correction"], detector.n_features)
        result.threshold = threshold
        for j, name in enumerate(self.columns):
            feature = features[name]
            if np.isnan(p[j]):
                feature.drift = None
                continue
            feature.p_val, feature.distance, feature.drift = float(p[j]), float(dist[j]), bool(flags[j])
        result.status = DRIFT if flags.any() else OK

    @staticmethod
    def _retest_observed(detector, observed: Mapping[int, np.ndarray], p, dist) -> None:
        """Columns with missing values: the same test on the rows that have a value (NaN when none)."""
        from scipy.stats import chi2_contingency, ks_2samp

        x_ref = detector.x_ref
        categorical = set(getattr(detector, "cat_vars", []) or [])
        alternative = getattr(detector, "alternative", "two-sided")
        for j, values in observed.items():
            if not len(values):
                p[j], dist[j] = np.nan, np.nan
                continue
            if j in categorical:
                cats = sorted(set(np.unique(x_ref[:, j]).tolist()) | set(np.unique(values).tolist()))
                table = np.vstack([[np.sum(x_ref[:, j] == c) for c in cats], [np.sum(values == c) for c in cats]])
                dist[j], p[j] = chi2_contingency(table)[:2]
            else:
                dist[j], p[j] = ks_2samp(x_ref[:, j], values, alternative=alternative, mode="asymp")

    def _run_mmd(self, result: DriftResult, encoded, pred_values, features) -> None:
        detector = self.detector
        max_rows = int(self.settings["mmd"]["max_rows"])
        rows = np.sort(np.random.default_rng(0).choice(len(encoded.X), size=min(len(encoded.X), max_rows),
                                                       replace=False))
        if len(rows) < len(encoded.X):
            result.notes.append(f"mmd: an even random sample of {len(rows):,} of the window's {len(encoded.X):,} rows is tested")
        Z = _mmd_inputs(encoded.X[rows], self.schema, {k: tuple(v) for k, v in self.meta["scale"].items()})
        data = detector.predict(Z, return_p_val=True, return_distance=True)["data"]
        result.p_val, result.distance = float(data["p_val"]), float(data["distance"])
        result.threshold = float(self.settings["p_val"]) / (2 if self._prediction is not None else 1)
        drift = bool(data["is_drift"])
        if self._prediction is not None and pred_values is not None:
            pred_schema = self.schema.prediction
            values = pred_values[~(np.isnan(pred_values) if pred_schema.kind == "numeric"
                                   else pred_values == pred_schema.missing_code)]
            pred = features[PREDICTION]
            if len(values):
                out = self._prediction.predict(values[:, None], return_p_val=True, return_distance=True)["data"]
                pred.p_val = float(np.ravel(out["p_val"])[0])
                pred.distance = float(np.ravel(out["distance"])[0])
                pred.drift = bool(out["is_drift"])
                drift = drift or pred.drift
        result.status = DRIFT if drift else OK


def _decide(p: np.ndarray, p_val: float, correction: str, n_tests: int) -> tuple[float | None, np.ndarray]:
    """The per-test threshold and which tests reject, as alibi-detect's batch decision (NaN: not tested)."""
    valid = ~np.isnan(p)
    flags = np.zeros(len(p), dtype=bool)
    if not valid.any():
        return None, flags
    if correction == "fdr":
        from alibi_detect.utils.statstest import fdr

        drift, threshold = fdr(p[valid], q_val=p_val)
        if not drift:
            return None, flags
        threshold = float(threshold)
    else:
        threshold = p_val / max(n_tests, 1)
    flags[valid] = p[valid] < threshold
    return threshold, flags


def open_bundle(folder: Path) -> Bundle:
    """The bundle in ``folder``, shared by the runs of one process (``ml monitor watch``)."""
    folder = Path(folder)
    meta = folder / "meta.json"
    key = (str(folder.resolve()), meta.stat().st_mtime)
    with _LOADED_GUARD:
        found = _LOADED.get(key)
        if found is None:
            found = _LOADED[key] = Bundle(folder)
        return found
