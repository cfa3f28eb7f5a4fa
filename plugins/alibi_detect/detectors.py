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

import logging
import os
import threading
import time
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ml_framework.plugins.monitoring.detection import (
    HISTOGRAM_ROWS,
    SavedBundle,
    chi2_test,
    decide,
    encode_reference,
    ks_test,
    missing_mask,
    open_cached,
    staging,
    write_meta,
)
from ml_framework.plugins.monitoring.results import DRIFT, OK, DriftResult
from ml_framework.plugins.monitoring.schema import PREDICTION, Schema

__all__ = ["BUNDLE_FORMAT", "build_bundle", "open_bundle", "Bundle", "bundle_key", "HISTOGRAM_ROWS"]

BUNDLE_FORMAT = 1


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
    encoded = encode_reference(reference, categorical=settings.categorical, seed=settings.reference.seed,
                               predictions=predictions)
    schema, X, pred_column, rng = encoded.schema, encoded.X, encoded.predictions, encoded.rng
    notes = encoded.notes
    meta: dict[str, Any] = {"format": BUNDLE_FORMAT, "model": model, "version": version, "method": settings.method,
                            "settings": settings.model_dump(), "reference": reference.info()}
    with staging(folder) as tmp:
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
        write_meta(tmp, meta)
    return meta


# -- running ---------------------------------------------------------------------------------------------------
class Bundle(SavedBundle):
    """A saved detector folder, loaded once per process (the detectors themselves on first use)."""

    def __init__(self, folder: Path):
        super().__init__(folder)
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

    def tests(self) -> dict[str, str]:
        """ks/chi2 per tested column; with mmd, every feature is in the one multivariate test."""
        kinds = {f.name: f.kind for f in self.schema.features}
        if self.schema.prediction is not None:
            kinds[PREDICTION] = self.schema.prediction.kind
        univariate = {name: "ks" if kind == "numeric" else "chi2" for name, kind in kinds.items()}
        if self.meta["method"] == "mmd":
            out = {name: "mmd" for name in self.schema.names}
            if PREDICTION in univariate:
                out[PREDICTION] = univariate[PREDICTION]
            return out
        return {name: univariate[name] for name in self.columns}

    def run(self, result: DriftResult, encoded, pred_values, features) -> None:
        if self.meta["method"] == "mmd":
            self._run_mmd(result, encoded, pred_values, features)
        else:
            self._run_univariate(result, encoded, features)

    def _run_univariate(self, result: DriftResult, encoded, features) -> None:
        detector = self.detector
        X = self.matrix(encoded)
        observed = {}
        for j, name in enumerate(self.columns):
            if features[name].missing:  # tested below on the rows that have a value
                holes = missing_mask(X, j, self.feature(name))
                observed[j] = X[~holes, j].copy()
                X[holes, j] = observed[j][0] if len(observed[j]) else 0.0
        data = detector.predict(X, drift_type="batch", return_p_val=True, return_distance=True)["data"]
        p = np.asarray(data["p_val"], dtype=np.float64)
        dist = np.asarray(data["distance"], dtype=np.float64)
        if observed:
            self._retest_observed(detector, observed, p, dist)
        threshold, flags = decide(p, detector.p_val, self.settings["correction"], detector.n_features)
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
        x_ref = detector.x_ref
        categorical = set(getattr(detector, "cat_vars", []) or [])
        alternative = getattr(detector, "alternative", "two-sided")
        for j, values in observed.items():
            if not len(values):
                p[j], dist[j] = np.nan, np.nan
                continue
            if j in categorical:
                codes, counts = np.unique(x_ref[:, j], return_counts=True)
                dist[j], p[j] = chi2_test(codes, counts, values)
            else:
                dist[j], p[j] = ks_test(x_ref[:, j], values, alternative)

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


def open_bundle(folder: Path) -> Bundle:
    """The bundle in ``folder``, shared by the runs of one process (``ml monitor watch``)."""
    return open_cached(folder, Bundle)
