"""The two drift backends on the same data: a check of a 2k-row window against a 100k-row reference with
scipy-drift, with alibi-detect, and with `scipy.stats` called directly on the same columns; and what each
backend costs `ml monitor run` to import.

    .venv/bin/python benchmarks/bench_drift_backends.py [--reference 100000] [--window 2000] [--features 20]
                                                        [--repeat 15] [--imports 7]

Setup (untimed): the reference and the window are drawn (seeded) from the population of bench_drift.py
(``--features`` columns: all numeric but two categorical ones, ``country`` and ``channel``); each backend
builds its detector folder from the reference through its ``build_bundle`` (method ``auto`` / ``tabular``:
Kolmogorov-Smirnov per numeric column, chi-squared per categorical one; Bonferroni) and opens it with
``open_bundle``, as `ml monitor run` does; each checker runs once before timing (alibi-detect's
``load_detector``, scipy-drift's reference file). The window is the LogColumns `ml monitor run` reads from
the prediction log, built in memory.

Timed, each repeat running the contenders in a random order, one process:

  raw          ``scipy.stats.ks_2samp(ref[:, j], win[:, j], method="asymp")`` per numeric column and
               ``chi2_contingency`` on the ``np.unique`` counts per categorical one, on the reference and
               the window already encoded as float matrices (the statistics alone, as one would write them;
               scipy-drift keeps its reference columns sorted and the categories counted, so it may beat it);
  scipy-drift  ``bundle.check(window, min_samples=100)``: encode the window (codes, missing values), the
               tests, the correction, per-feature results and histograms;
  alibi-detect the same ``check`` on the alibi-detect backend (``TabularDrift.predict``);
  psi          scipy-drift's ``method: psi`` check (no p-values; for reference).

Reported: best-of-N and median of each, and the median of the per-repeat ratios against raw and between the
backends. Then the import cost, fresh processes, median of ``--imports`` runs: ``python -c pass``, the
scipy-drift modules a check needs (``ml_framework.plugins.scipy_drift.detectors`` and ``scipy.stats``) and
``import alibi_detect`` (plus what its check needs: ``alibi_detect.cd`` and ``alibi_detect.saving``).
Timings are printed, never asserted.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_drift import population  # noqa: E402  (the same synthetic columns as the other drift benchmark)

CATEGORICAL = ("country", "channel")


def window_columns(frame):
    """``frame`` as the LogColumns `ml monitor run` reads (text columns dictionary-encoded)."""
    import numpy as np

    from ml_framework.plugins.monitoring.logcache import Categories, LogColumns

    cols = {}
    for name in frame.columns:
        values = frame[name].to_numpy()
        if values.dtype.kind in "OU":
            vocab, codes = np.unique(values.astype(str), return_inverse=True)
            cols["f:" + name] = Categories(codes.astype(np.int32), vocab)
        else:
            cols["f:" + name] = values.astype(np.float64)
    n = len(frame)
    cols["prediction"] = np.zeros(n)
    cols["prediction_class"] = np.full(n, -1)
    return LogColumns(cols, n)


def build(tmp: Path, reference_frame):
    from ml_framework.plugins.alibi_detect.config import AlibiDetectSettings
    from ml_framework.plugins.alibi_detect.detectors import build_bundle as build_alibi, open_bundle as open_alibi
    from ml_framework.plugins.monitoring.reference import Reference
    from ml_framework.plugins.scipy_drift.config import ScipyDriftSettings
    from ml_framework.plugins.scipy_drift.detectors import build_bundle as build_scipy, open_bundle as open_scipy

    features = list(reference_frame.columns)
    n = len(reference_frame)
    reference = Reference(frame=reference_frame, features=features, task="binary", rows=n, total=n)
    max_rows = {"reference": {"max_rows": max(n, 100)}}
    out, seconds = {}, {}
    for name, builder, opener, settings in (
            ("scipy-drift", build_scipy, open_scipy, ScipyDriftSettings.model_validate(max_rows)),
            ("alibi-detect", build_alibi, open_alibi, AlibiDetectSettings.model_validate(max_rows)),
            ("psi", build_scipy, open_scipy, ScipyDriftSettings.model_validate({"method": "psi", **max_rows}))):
        started = time.perf_counter()
        builder(tmp / name, reference, settings, model="m", version="v1", predictions=False)
        seconds[name] = time.perf_counter() - started
        out[name] = opener(tmp / name)
    return out, seconds


def raw_inputs(bundle, reference_frame, window_frame):
    """The reference and window as the float matrices the statistics take (codes for categories)."""
    import numpy as np

    from ml_framework.plugins.monitoring.schema import encode_frame

    ref = encode_frame(reference_frame, bundle.schema).X
    win = encode_frame(window_frame, bundle.schema).X
    kinds = [f.kind for f in bundle.schema.features]
    assert not np.isnan(ref).any() and not np.isnan(win).any()
    return ref, win, kinds


def raw_check(ref, win, kinds):
    import numpy as np
    from scipy.stats import chi2_contingency, ks_2samp

    p = np.empty(len(kinds))
    for j, kind in enumerate(kinds):
        if kind == "numeric":
            p[j] = ks_2samp(ref[:, j], win[:, j], method="asymp").pvalue
        else:
            ref_cats, ref_counts = np.unique(ref[:, j], return_counts=True)
            win_cats, win_counts = np.unique(win[:, j], return_counts=True)
            cats = np.union1d(ref_cats, win_cats)
            table = np.zeros((2, len(cats)))
            table[0, np.searchsorted(cats, ref_cats)] = ref_counts
            table[1, np.searchsorted(cats, win_cats)] = win_counts
            p[j] = chi2_contingency(table)[1]
    return p


def timed(fn) -> float:
    import gc

    gc.collect()
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def import_cost(code: str, runs: int) -> float:
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1", TF_CPP_MIN_LOG_LEVEL="3")
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT)
        samples.append(time.perf_counter() - started)
        if proc.returncode != 0:
            raise RuntimeError(f"{code!r} failed: {proc.stderr[-2000:]}")
    return statistics.median(samples)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reference", type=int, default=100_000)
    parser.add_argument("--window", type=int, default=2_000)
    parser.add_argument("--features", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--imports", type=int, default=7, help="fresh processes per import measurement")
    args = parser.parse_args()

    import numpy as np

    reference_frame = population(args.reference, args.features, seed=0)
    window_frame = population(args.window, args.features, seed=1)
    window = window_columns(window_frame)
    tmp = Path(tempfile.mkdtemp(prefix="bench-drift-backends-"))
    try:
        bundles, build_seconds = build(tmp, reference_frame)
        print(f"reference {args.reference:,} rows × {args.features} features ({args.features - 2} numeric, "
              f"2 categorical), window {args.window:,} rows; Python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
        print("build (apply) from the reference: " + ", ".join(f"{k} {v:.2f}s" for k, v in build_seconds.items()))
        ref, win, kinds = raw_inputs(bundles["scipy-drift"], reference_frame, window_frame)

        contenders = {
            "raw": lambda: raw_check(ref, win, kinds),
            "scipy-drift": lambda: bundles["scipy-drift"].check(window, min_samples=100),
            "alibi-detect": lambda: bundles["alibi-detect"].check(window, min_samples=100),
            "psi": lambda: bundles["psi"].check(window, min_samples=100),
        }
        results = {name: fn() for name, fn in contenders.items()}  # warm: detectors loaded, caches filled
        p_raw = results["raw"]
        p_scipy = np.array([f.p_val for f in results["scipy-drift"].features])
        p_alibi = np.array([f.p_val for f in results["alibi-detect"].features])
        assert np.allclose(p_scipy, p_raw, rtol=1e-9, atol=0), "scipy-drift disagrees with scipy.stats"
        assert np.allclose(p_alibi, p_raw, rtol=1e-4, atol=1e-12), "alibi-detect disagrees with scipy.stats"
        assert results["scipy-drift"].drifted() == results["alibi-detect"].drifted()
        print(f"same decisions: {results['scipy-drift'].status} (drifted: {results['scipy-drift'].drifted() or 'none'}); "
              f"largest p-value difference scipy-drift vs alibi-detect {np.max(np.abs(p_scipy - p_alibi)):.1e}")

        samples: dict[str, list[float]] = {name: [] for name in contenders}
        order = random.Random(0)
        names = list(contenders)
        for _ in range(args.repeat):
            order.shuffle(names)
            for name in names:
                samples[name].append(timed(contenders[name]))

        def paired(a: str, b: str) -> float:
            return statistics.median(x / y for x, y in zip(samples[a], samples[b]))

        print(f"\n{'':14}{'best':>10}{'median':>10}   ratio to raw (median of {args.repeat} repeats)")
        for name in contenders:
            best, median = min(samples[name]), statistics.median(samples[name])
            ratio = "" if name == "raw" else f"{paired(name, 'raw'):.2f}"
            print(f"{name:14}{best * 1000:>8.1f}ms{median * 1000:>8.1f}ms   {ratio}")
        print(f"scipy-drift / alibi-detect: {paired('scipy-drift', 'alibi-detect'):.2f} "
              f"(best runs {min(samples['scipy-drift']) / min(samples['alibi-detect']):.2f})")

        print(f"\nimport cost, fresh processes (median of {args.imports}):")
        floor = import_cost("pass", args.imports)
        costs = {
            "python -c pass": floor,
            "import ml_framework.plugins.scipy_drift.detectors": import_cost(
                "import ml_framework.plugins.scipy_drift.detectors", args.imports),
            "  + scipy.stats (what a scipy-drift check loads)": import_cost(
                "import ml_framework.plugins.scipy_drift.detectors, scipy.stats", args.imports),
            "import alibi_detect": import_cost("import alibi_detect", args.imports),
            "  + alibi_detect.cd, .saving (what its check loads)": import_cost(
                "import ml_framework.plugins.alibi_detect.detectors, alibi_detect.cd, alibi_detect.saving",
                args.imports),
        }
        for label, seconds in costs.items():
            extra = "" if label == "python -c pass" else f"   (+{(seconds - floor) * 1000:,.0f} ms over python)"
            print(f"  {label:<54}{seconds:>7.2f}s{extra}")
        scipy_set = costs["  + scipy.stats (what a scipy-drift check loads)"]
        alibi_set = costs["  + alibi_detect.cd, .saving (what its check loads)"]
        print(f"a check's imports over python: scipy-drift {scipy_set - floor:.2f}s, alibi-detect "
              f"{alibi_set - floor:.2f}s: `ml monitor run` starts {alibi_set - scipy_set:.2f}s sooner on scipy-drift")
        return 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
