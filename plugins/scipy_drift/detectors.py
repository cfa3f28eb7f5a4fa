"""Build, save and run the scipy-drift tests of one model version (numpy and scipy.stats, nothing else).

A detector folder (``.ml/monitors/<monitor>/<model>/v<N>-<key>/``) holds:

* ``reference.npy`` — the reference values of the columns tested with Kolmogorov-Smirnov, each column
  sorted on its own (the tests compare one column's distribution at a time; sorted, ``ks_2samp`` sorts
  nothing again). Absent when no column is;
* ``detector.json`` — the test of each column, the reference's counts per category code of the columns
  tested with chi-squared, and the bin edges and reference shares of the columns tested with PSI;
* ``meta.json`` — as every drift backend's (:mod:`ml_framework.plugins.monitoring.detection`): the schema
  (features, kinds, categories, reference histograms), the settings, the reference used, the tested columns
  and notes. Written last: a folder without it is an interrupted build and is built again.

``key`` hashes what the tests depend on (method, p-value, correction, categorical, reference settings, the
PSI settings with ``method: psi``, features, predictions) and the backend's name, so the folders of two
backends never mix.

Tests, per column (``__prediction__``: the model's predictions, one more column of the same family):

* ``ks``: ``scipy.stats.ks_2samp`` (two-sided, asymptotic p-value: what alibi-detect's TabularDrift runs);
* ``chi2``: ``scipy.stats.chi2_contingency`` on the counts per category in the reference and the window,
  over the categories either holds (values never seen in the reference are one more category);
* ``psi``: the population stability index ``sum((a - e) * ln(a / e))`` over the reference-quantile bins
  (categorical: the categories, unseen values one more), shares floored at 1e-4; drift at ``psi.threshold``.

Missing values: the reference's are filled from its observed values (seeded, shared with every backend); a
window column is tested exactly on the rows that have a value; a column no logged row carried is not
tested (reported) and still counts in the Bonferroni family, which keeps it conservative. The p-values of
the tested columns are then decided together with the configured correction (Bonferroni or FDR).
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ml_framework.plugins.monitoring.detection import (
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
from ml_framework.plugins.monitoring.schema import PREDICTION, FeatureSchema, Schema

__all__ = ["BUNDLE_FORMAT", "BACKEND", "bundle_key", "plan_tests", "psi_edges", "psi_bins", "psi_value",
           "build_bundle", "Bundle", "open_bundle"]

BUNDLE_FORMAT = 1
BACKEND = "scipy-drift"
REFERENCE_FILE = "reference.npy"
STATE_FILE = "detector.json"
PSI_FLOOR = 1e-4  # a bin's share is at least this, so an empty bin gives a large but finite index


def bundle_key(settings: Mapping[str, Any], features: list[str] | None, predictions: bool) -> str:
    from ml_framework.graph import canonical_json, digest

    relevant = {k: settings.get(k) for k in ("method", "p_val", "correction", "categorical", "reference")}
    if settings.get("method") == "psi":
        relevant["psi"] = settings.get("psi")
    relevant.update(backend=BACKEND, features=features, predictions=predictions, format=BUNDLE_FORMAT)
    return digest(canonical_json(relevant))[:12]


# -- the tests --------------------------------------------------------------------------------------------------
def plan_tests(schema: Schema, method: str) -> tuple[list[str], list[str], list[str]]:
    """(tested columns, their tests, notes) for ``method``: ``auto`` ks/chi2 by kind, ``ks`` numeric columns
    only, ``chi2`` categorical ones only, ``psi`` every column. The prediction comes last."""
    kinds = [(f.name, f.kind) for f in schema.features]
    if schema.prediction is not None:
        kinds.append((PREDICTION, schema.prediction.kind))
    by_kind = {"numeric": "ks", "categorical": "chi2"}
    columns, tests, skipped = [], [], []
    for name, kind in kinds:
        test = "psi" if method == "psi" else by_kind[kind]
        if method in ("ks", "chi2") and test != method:
            if name != PREDICTION:
                skipped.append(name)
            continue
        columns.append(name)
        tests.append(test)
    notes = []
    if skipped and method == "ks":
        notes.append(f"method ks tests numeric features only; not tested: {', '.join(skipped)} "
                     "(use method auto for chi-squared on categorical features)")
    elif skipped and method == "chi2":
        notes.append(f"method chi2 tests categorical features only; not tested: {', '.join(skipped)} "
                     "(use method auto for Kolmogorov-Smirnov on numeric features)")
    return columns, tests, notes


def psi_edges(reference: np.ndarray, bins: int) -> np.ndarray:
    """The inner cut points of ``bins`` bins of equal reference mass (fewer when values repeat)."""
    if not len(reference):
        return np.zeros(0)
    return np.unique(np.quantile(reference, np.linspace(0.0, 1.0, bins + 1)[1:-1]))


def psi_bins(values: np.ndarray, edges: np.ndarray | None, width: int) -> np.ndarray:
    """Counts of ``values`` per bin: numeric values between ``edges`` (``len(edges) + 1`` bins, beyond the
    outer cut points in the end bins), category codes per code (``edges`` None, ``width`` codes)."""
    if edges is None:
        return np.bincount(values.astype(np.int64), minlength=width)[:width]
    return np.bincount(np.searchsorted(edges, values, side="right"), minlength=len(edges) + 1)


def psi_value(expected: np.ndarray, counts: np.ndarray) -> float:
    """The population stability index of the window's ``counts`` against the reference's ``expected``
    shares, both floored at :data:`PSI_FLOOR`."""
    actual = counts / max(int(counts.sum()), 1)
    e = np.maximum(np.asarray(expected, dtype=np.float64), PSI_FLOOR)
    a = np.maximum(actual, PSI_FLOOR)
    return float(np.sum((a - e) * np.log(a / e)))


def _psi_state(column: np.ndarray, feature: FeatureSchema, bins: int) -> dict[str, Any]:
    if feature.kind == "numeric":
        edges = psi_edges(column, bins)
        counts = psi_bins(column, edges, 0)
        return {"edges": edges.tolist(), "shares": (counts / max(len(column), 1)).tolist()}
    width = feature.unseen_code + 1  # the categories, missing (never, once filled) and unseen values
    counts = psi_bins(column, None, width)
    return {"edges": None, "width": width, "shares": (counts / max(len(column), 1)).tolist()}


# -- building ------------------------------------------------------------------------------------------------------
def build_bundle(folder: Path, reference, settings, *, model: str, version: str, predictions: bool,
                 progress=None) -> dict[str, Any]:
    """Build the tests for ``reference`` (a :class:`ml_framework.plugins.monitoring.reference.Reference`) and
    save them under ``folder`` (written aside, then moved in place). Returns the meta of meta.json."""
    started = time.perf_counter()
    encoded = encode_reference(reference, categorical=settings.categorical, seed=settings.reference.seed,
                               predictions=predictions)
    schema = encoded.schema
    columns, tests, notes = plan_tests(schema, settings.method)
    notes = encoded.notes + notes
    if not columns:
        raise ValueError(f"no feature to test: method {settings.method} tests "
                         f"{'numeric' if settings.method == 'ks' else 'categorical'} features only and none is "
                         "(use method auto)")
    if settings.method == "psi":
        notes.append(f"method psi: a feature drifts when its population stability index (d) reaches "
                     f"{settings.psi.threshold:g}")
    if progress:
        progress(f"building {settings.method} tests on {len(encoded.X):,} reference rows × {len(columns)} columns")
    index = {name: j for j, name in enumerate(schema.names)}
    state: dict[str, Any] = {"tests": tests, "ks": [], "counts": {}, "psi": {}}
    ks_columns = []
    for name, test in zip(columns, tests):
        column = encoded.predictions if name == PREDICTION else encoded.X[:, index[name]]
        feature = schema.prediction if name == PREDICTION else schema.features[index[name]]
        if test == "ks":
            state["ks"].append(name)
            ks_columns.append(np.sort(column))
        elif test == "chi2":
            codes, counts = np.unique(column, return_counts=True)
            state["counts"][name] = {"codes": codes.tolist(), "counts": counts.astype(int).tolist()}
        else:
            state["psi"][name] = _psi_state(column, feature, settings.psi.bins)
    meta: dict[str, Any] = {"format": BUNDLE_FORMAT, "backend": BACKEND, "model": model, "version": version,
                            "method": settings.method, "settings": settings.model_dump(),
                            "reference": reference.info()}
    with staging(folder) as tmp:
        if ks_columns:
            np.save(tmp / REFERENCE_FILE, np.asfortranarray(np.column_stack(ks_columns)))
        (tmp / STATE_FILE).write_text(json.dumps(state), encoding="utf-8")
        meta.update(schema=schema.to_dict(), columns=columns, notes=notes,
                    build_seconds=round(time.perf_counter() - started, 3),
                    built_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        write_meta(tmp, meta)
    return meta


# -- running ---------------------------------------------------------------------------------------------------------
class Bundle(SavedBundle):
    """A saved folder, opened once per process (the KS reference values on first use)."""

    def __init__(self, folder: Path):
        super().__init__(folder)
        self.state = json.loads((self.folder / STATE_FILE).read_text(encoding="utf-8"))
        self._tests = dict(zip(self.columns, self.state["tests"]))
        self._ks_index = {name: k for k, name in enumerate(self.state["ks"])}
        self._counts = {name: (np.asarray(c["codes"], dtype=np.float64), np.asarray(c["counts"], dtype=np.int64))
                        for name, c in self.state["counts"].items()}
        self._psi = {name: (None if s["edges"] is None else np.asarray(s["edges"], dtype=np.float64),
                            s.get("width", 0), np.asarray(s["shares"], dtype=np.float64))
                     for name, s in self.state["psi"].items()}
        self._reference: np.ndarray | None = None
        self._lock = threading.Lock()

    @property
    def reference(self) -> np.ndarray:
        """The sorted reference values of the KS columns (one column each, in ``state["ks"]`` order)."""
        with self._lock:
            if self._reference is None:
                path = self.folder / REFERENCE_FILE
                self._reference = np.load(path) if path.is_file() else np.zeros((0, 0))
            return self._reference

    def tests(self) -> dict[str, str]:
        return self._tests

    def test_column(self, name: str, values: np.ndarray) -> tuple[float, float]:
        """(statistic, p-value) of one column's window ``values`` (present values only); PSI: (index, NaN)."""
        test = self._tests[name]
        if test == "ks":
            return ks_test(self.reference[:, self._ks_index[name]], values)
        if test == "chi2":
            codes, counts = self._counts[name]
            return chi2_test(codes, counts, values)
        edges, width, shares = self._psi[name]
        return psi_value(shares, psi_bins(values, edges, width)), float("nan")

    def run(self, result: DriftResult, encoded, pred_values, features) -> None:
        X = self.matrix(encoded)
        n = len(self.columns)
        p, stat = np.full(n, np.nan), np.full(n, np.nan)
        for j, name in enumerate(self.columns):
            values = X[:, j]
            if features[name].missing:  # tested on the rows that have a value
                values = values[~missing_mask(X, j, self.feature(name))]
            if len(values):
                stat[j], p[j] = self.test_column(name, values)
        if self.meta["method"] == "psi":
            tested = ~np.isnan(stat)
            flags = np.zeros(n, dtype=bool)
            flags[tested] = stat[tested] >= float(self.settings["psi"]["threshold"])
        else:
            result.threshold, flags = decide(p, float(self.settings["p_val"]), self.settings["correction"], n)
        for j, name in enumerate(self.columns):
            feature = features[name]
            if np.isnan(stat[j]):
                feature.drift = None
                continue
            feature.p_val = None if np.isnan(p[j]) else float(p[j])
            feature.distance, feature.drift = float(stat[j]), bool(flags[j])
        result.status = DRIFT if flags.any() else OK


def open_bundle(folder: Path) -> Bundle:
    """The bundle in ``folder``, shared by the runs of one process (``ml monitor watch``)."""
    return open_cached(folder, Bundle)
