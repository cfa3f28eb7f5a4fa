"""What explanations cost, ours beside the raw libraries, in one run:

* serving: one LightGBM model behind two deployments, one answering plainly and one with
  ``explain: {always: true}`` (the top 5 contributions in every answer): p50, p99 and requests/s at 1 and
  16 connections, and the ratio;
* per version: LightGBM's ``pred_contrib`` (what ml uses, per request and for global importance) against
  SHAP's ``TreeExplainer`` on the same model and rows — one row (a request) and 1,000 rows (importance) —
  with the largest difference between their values;
* torch: Captum's integrated gradients (what ml uses for the MLP) per row, at the default 64 steps.

    .venv/bin/python benchmarks/bench_explain.py [--duration 8] [--quick]

SHAP is a benchmark-only dependency: `.venv/bin/pip install -c constraints.txt shap`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def bench_serving(args, work: Path) -> None:
    from bench_serving import deploy, measure, served, table

    from ml_framework.plugins.bentoml import BentoMLProvider
    from ml_framework.plugins.bentoml.testing import raw_payloads, stop_all_servers
    from ml_framework.plugins.lightgbm import LightGBMProvider
    from ml_framework.plugins.models.testing import feature_providers, write_project
    from ml_framework.testing.harness import Harness

    root = write_project(work / "proj", rows=3000, gates=())
    harness = Harness(root, {**feature_providers(), "lightgbm": LightGBMProvider(), "bentoml": BentoMLProvider()})
    limit = "rate_limit: {requests_per_second: 1000000, burst: 1000000}\n"
    try:
        urls = {"plain": deploy(root, harness, "plain", extra=limit) + "/predict",
                "explained": deploy(root, harness, "explained", extra=limit + "explain: {always: true}\n") + "/predict"}
        bodies = [json.dumps(p) for p in raw_payloads(64)]
        one = json.loads(__import__("urllib.request").request.urlopen(
            __import__("urllib.request").request.Request(urls["explained"], bodies[0].encode(),
                                                         {"content-type": "application/json"})).read())
        assert len(one["explanation"]["top"]) == 3, one  # the model has three features
        rows, found = [], {}
        for connections in (1, 16):
            for name, url in urls.items():
                pid = served(harness, name)[1]
                runs = [measure(url, bodies, connections, args.duration, work, pid) for _ in range(args.rounds)]
                best = max(runs, key=lambda r: r["rps"])
                found[(name, connections)] = best
                rows.append((name, connections, f"{best['rps']:.0f}", f"{best['p50']:.2f}", f"{best['p99']:.2f}",
                             f"{best.get('cpu_us', 0):.0f}"))
        print("\n== serving: the same LightGBM model, without and with an explanation in every answer ==")
        print(table(rows, ("deployment", "connections", "req/s", "p50 ms", "p99 ms", "server CPU us/req")))
        for connections in (1, 16):
            plain, explained = found[("plain", connections)], found[("explained", connections)]
            print(f"{connections} connection(s): explained/plain req/s {explained['rps'] / plain['rps']:.2f}, "
                  f"p50 +{explained['p50'] - plain['p50']:.2f} ms")
    finally:
        harness.destroy()
        harness.close()
        stop_all_servers([root])


def bench_contrib_vs_shap(args) -> None:
    import lightgbm as lgb
    import numpy as np

    try:
        import shap
    except ImportError:
        print("\n(shap is not installed: `.venv/bin/pip install -c constraints.txt shap` to compare with it)")
        return
    rng = np.random.default_rng(7)
    X = rng.normal(size=(50_000, 20))
    y = (X[:, 0] + 0.5 * X[:, 1] * X[:, 2] + rng.normal(scale=0.5, size=len(X)) > 0).astype(int)
    booster = lgb.train({"objective": "binary", "num_leaves": 31, "verbosity": -1, "seed": 7},
                        lgb.Dataset(X, y), num_boost_round=300)
    explainer = shap.TreeExplainer(booster)
    rows = X[:1000]

    def timed(fn, repeat: int) -> float:
        samples = []
        for _ in range(repeat):
            t = time.perf_counter()
            fn()
            samples.append(time.perf_counter() - t)
        return statistics.median(samples)

    ours_one = timed(lambda: booster.predict(rows[:1], pred_contrib=True, num_threads=1), 200)
    theirs_one = timed(lambda: explainer.shap_values(rows[:1]), 50)
    ours_many = timed(lambda: booster.predict(rows, pred_contrib=True), 5)
    theirs_many = timed(lambda: explainer.shap_values(rows), 3)
    ours = booster.predict(rows, pred_contrib=True)
    theirs = np.asarray(explainer.shap_values(rows))
    theirs = theirs[1] if theirs.ndim == 3 and theirs.shape[0] == 2 else theirs
    difference = float(np.abs(ours[:, :-1] - theirs.reshape(len(rows), -1)[:, :20]).max())
    print("\n== contributions of a 300-tree, 20-feature LightGBM model: pred_contrib (ml) vs SHAP TreeExplainer ==")
    print(f"one row:    pred_contrib {ours_one * 1e3:.3f} ms, TreeExplainer {theirs_one * 1e3:.3f} ms "
          f"(ml/SHAP time ratio {ours_one / theirs_one:.2f})")
    print(f"1,000 rows: pred_contrib {ours_many * 1e3:.1f} ms, TreeExplainer {theirs_many * 1e3:.1f} ms "
          f"(ratio {ours_many / theirs_many:.2f}); largest difference between their values {difference:.2e}")


def bench_captum(args, work: Path) -> None:
    from ml_framework.plugins.bentoml.predictor import load_serving_model
    from ml_framework.plugins.models.artifacts import artifact_dir
    from ml_framework.plugins.models.testing import feature_providers, write_project
    from ml_framework.plugins.torch import TorchProvider
    from ml_framework.testing.harness import Harness
    from ml_framework.plugins.bentoml.testing import raw_payloads

    root = write_project(work / "torch", backend="torch", rows=3000, gates=())
    harness = Harness(root, {**feature_providers(), "torch": TorchProvider()})
    try:
        assert harness.apply().ok
        tag = harness.store.get("model.fraud").outputs["bentoml_tag"]
    finally:
        harness.close()
    model = load_serving_model(artifact_dir(tag, root), tag)
    payloads = [p["features"] for p in raw_payloads(50)]
    predict, explain = [], []
    for values in payloads:
        t = time.perf_counter()
        p = model.predict(values)
        predict.append(time.perf_counter() - t)
        t = time.perf_counter()
        found = model.explain(model.encode(values), values, p, 5)
        explain.append(time.perf_counter() - t)
    print("\n== torch MLP: a prediction vs its integrated-gradients explanation (Captum, 64 steps), one row ==")
    print(f"predict p50 {statistics.median(predict) * 1e3:.2f} ms; explain p50 {statistics.median(explain) * 1e3:.2f} ms "
          f"(x{statistics.median(explain) / statistics.median(predict):.1f}); last approximation "
          f"{found['approximation']:+.2e} of raw {found['raw']:.3f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="3 s measurements, 1 round")
    args = parser.parse_args()
    if args.quick:
        args.duration, args.rounds = 3.0, 1
    work = Path(tempfile.mkdtemp(prefix="ml-bench-explain-"))
    os.environ["BENTOML_HOME"] = str(work / "bentoml")
    os.environ["BENTOML_DO_NOT_TRACK"] = "True"
    os.environ.pop("ML_STATE_URL", None)
    print(f"bench_explain: {os.cpu_count()} CPUs, work dir {work}")
    bench_contrib_vs_shap(args)
    bench_captum(args, work)
    bench_serving(args, work)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
