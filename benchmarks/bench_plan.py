"""Scale benchmark of load / validate / graph / plan / apply on generated projects.

    .venv/bin/python benchmarks/bench_plan.py [--sizes 100,1000,10000] [--repeat 3] [--apply-max 10000]
                                              [--cli-repeat 3] [--gc cli|default|off] [--profile] [--strict]

For each size N it generates a project (benchmarks/generate_project.py: entities, sources, feature
views and models, all on the in-memory backend) and measures, in this one process:

  (a) load + validate + graph: compose (YAML with per-field line numbers), two-phase validation,
      graph build; side by side with a *raw* baseline: yaml.load_all (C loader) + the kinds' pydantic
      model_validate of the same files, no locations, no backend phase, no graph;
  (b) plan against an empty state (everything is a create), no refresh, plus rendering it as text;
      side by side with a raw baseline: canonical JSON + sha256 of every validated spec;
  (c) apply of everything through ml_framework.testing.Harness (SQLite state, InMemoryProvider);
  (d) plan against the converged state, refresh off and refresh on (every resource read back);
  (e) a second apply right after the converged one: the provider's apply count must not move;
  (f) the real CLI end to end, `ml plan --no-refresh` in a subprocess (median of --cli-repeat runs),
      against an empty state (all creates, the longest output) and the converged state.

It prints seconds, microseconds per resource, the ratio to the raw baselines, the scaling ratio
t(largest)/t(previous size) per phase (10 for a 10x size step means linear) and PASS/FAIL against
the targets: `ml plan` of 1,000 resources < 1 s and of 10,000 < 10 s, linear scaling, and no provider
apply on a converged re-apply. Exit status 1 if the re-apply check fails (or, with --strict, any
target). Timings are wall-clock (time.perf_counter); no external tool is needed. The in-process
phases run under the GC thresholds the `ml` process sets, unless --gc says otherwise.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import yaml  # noqa: E402

from generate_project import generate  # noqa: E402

from ml_framework.graph import build_graph, canonical_json, digest  # noqa: E402
from ml_framework.operations import load_specs, make_plan  # noqa: E402
from ml_framework.plan.model import CREATE, NOOP  # noqa: E402
from ml_framework.plan.render_text import render_text  # noqa: E402
from ml_framework.spec.compose import compose  # noqa: E402
from ml_framework.plugin_registry import PluginRegistry  # noqa: E402
from ml_framework.spec.validate import validate_specs  # noqa: E402
from ml_framework.testing import InMemoryProvider  # noqa: E402
from ml_framework.testing.harness import Harness  # noqa: E402

ML = Path(sys.executable).with_name("ml")
PLAN_TARGETS = {1000: 1.0, 10000: 10.0}  # `ml plan` (no refresh) must finish under these many seconds
LINEAR_LIMIT = 1.5  # a phase scales linearly if t(kN)/t(N) <= 1.5 k (a quadratic step gives ~k^2)
CLI_GC_THRESHOLD = (100_000, 50, 100)  # what ml_framework.cli.main.run() sets for the `ml` process
_CLOCK = time.perf_counter


def timed(fn, repeat: int = 1):
    """(best wall seconds over `repeat` runs, last result)."""
    best, result = float("inf"), None
    for _ in range(max(1, repeat)):
        start = _CLOCK()
        result = fn()
        best = min(best, _CLOCK() - start)
    return best, result


def raw_load_validate(spec_dir: Path) -> int:
    """The floor for (a): parse every document with the C loader and validate its core fields."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    count = 0
    kinds = PluginRegistry().kinds
    for path in sorted(spec_dir.glob("*.yaml")):
        for data in yaml.load_all(path.read_text(encoding="utf-8"), Loader=loader):
            kinds.schema(data["kind"]).model_validate(data)
            count += 1
    return count


def raw_hash(valid) -> int:
    """The floor for (b): serialise and hash every spec once (the least a diff against state needs)."""
    return len({digest(canonical_json(item.spec.model_dump(mode="json"))) for item in valid})


def run_cli(args: list[str], cwd: Path, env: dict[str, str], repeat: int) -> float:
    times = []
    for _ in range(max(1, repeat)):
        start = _CLOCK()
        proc = subprocess.run([str(ML), *args], cwd=cwd, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
        times.append(_CLOCK() - start)
        if proc.returncode not in (0, 2):
            raise RuntimeError(f"ml {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return statistics.median(times)


def bench_size(n: int, workdir: Path, args) -> dict[str, float]:
    project_dir = workdir / f"project_{n}"
    spec_dir = generate(project_dir, n)
    files = len(list(spec_dir.glob("*.yaml")))
    provider = InMemoryProvider()
    harness = Harness(project_dir, {"memory": provider})
    r: dict[str, float] = {}
    print(f"\n== {n} resources, {files} files ==", flush=True)

    # (a) load + validate + graph, phase by phase, then whole (what every command does first).
    r["a.compose"], composed = timed(lambda: compose(spec_dir), args.repeat)
    r["a.validate"], valid = timed(lambda: validate_specs(composed, harness.registry), args.repeat)
    r["a.graph"], graph = timed(lambda: build_graph(valid, composed.locations), args.repeat)
    r["a.load_total"], loaded = timed(lambda: load_specs(harness.project, harness.registry), args.repeat)
    r["a.raw_baseline"], count = timed(lambda: raw_load_validate(spec_dir), args.repeat)
    assert count == n == len(loaded.graph.nodes), (count, n, len(loaded.graph.nodes))

    # (b) plan against an empty state, no refresh; then render it as `ml plan` prints it.
    r["b.plan_empty"], plan = timed(lambda: make_plan(harness.project, harness.registry, harness.store, loaded,
                                                      refresh=False), args.repeat)
    assert plan.summary()[CREATE] == n and not plan.errors, plan.summary()
    r["b.render_text"], text = timed(lambda: render_text(plan, color=False), args.repeat)
    r["b.raw_baseline"], _ = timed(lambda: raw_hash(valid), args.repeat)
    r["b.ml_plan_inproc"] = r["a.load_total"] + r["b.plan_empty"] + r["b.render_text"]

    # (f1) the real CLI against an empty state (a separate state file, so (c) below starts clean too).
    env = dict(os.environ, NO_COLOR="1", ML_STATE_URL=f"sqlite:///{workdir / f'empty_{n}.db'}")
    if args.cli_repeat:
        r["f.cli_plan_empty"] = run_cli(["plan", "--no-refresh"], project_dir, env, args.cli_repeat)

    # (c) apply everything.
    if n <= args.apply_max:
        r["c.apply_all"], report = timed(lambda: harness.apply(refresh=False))
        assert report.ok and report.count("succeeded") == n, (report.count("succeeded"), n)
        assert provider.count("apply") == n

        # (d) plan against the converged state.
        r["d.plan_converged_norefresh"], plan = timed(
            lambda: make_plan(harness.project, harness.registry, harness.store, loaded, refresh=False), args.repeat)
        assert plan.summary()[NOOP] == n, plan.summary()
        reads = provider.count("read")
        r["d.plan_converged_refresh"], plan = timed(
            lambda: make_plan(harness.project, harness.registry, harness.store, loaded, refresh=True), args.repeat)
        assert plan.summary()[NOOP] == n and not plan.drift, plan.summary()
        assert provider.count("read") - reads == n * max(1, args.repeat)

        # (e) a second apply: plans (with refresh), finds nothing to do, calls no provider apply.
        applies = provider.count("apply")
        r["e.apply_again"], report = timed(lambda: harness.apply())
        r["e.provider_applies"] = provider.count("apply") - applies
        r["e.outcomes"] = len(report.outcomes)

        if args.cli_repeat:
            env = dict(os.environ, NO_COLOR="1")
            env.pop("ML_STATE_URL", None)
            r["f.cli_plan_converged"] = run_cli(["plan", "--no-refresh"], project_dir, env, args.cli_repeat)
    harness.close()

    if args.profile:
        import cProfile
        import pstats

        profiler = cProfile.Profile()
        profiler.enable()
        loaded = load_specs(harness.project, harness.registry)
        harness.store = harness.project.open_state()
        plan = make_plan(harness.project, harness.registry, harness.store, loaded, refresh=False)
        render_text(plan, color=False)
        profiler.disable()
        harness.close()
        print(f"-- cProfile of load + plan + render ({n} resources), top 25 by cumulative time --")
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)

    for key, value in r.items():
        if key.startswith("e.") and key != "e.apply_again":
            print(f"  {key:28s} {int(value):>10d}")
        else:
            print(f"  {key:28s} {value:10.3f} s  {value / n * 1e6:10.1f} µs/resource")
    print(f"  load+validate+graph vs raw yaml+pydantic: {r['a.load_total'] / r['a.raw_baseline']:.2f}x; "
          f"plan vs raw hash of every spec: {r['b.plan_empty'] / r['b.raw_baseline']:.2f}x", flush=True)
    return r


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100,1000,10000", help="comma-separated resource counts")
    parser.add_argument("--repeat", type=int, default=3, help="in-process phases: best of this many runs")
    parser.add_argument("--apply-max", type=int, default=10000, help="skip (c)-(e) above this size")
    parser.add_argument("--cli-repeat", type=int, default=3, help="CLI runs per measurement (0: skip the CLI)")
    parser.add_argument("--profile", action="store_true", help="cProfile load+plan+render of each size")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a timing target is missed too")
    parser.add_argument("--workdir", type=Path, default=None, help="where to generate (default: a temp dir)")
    parser.add_argument("--gc", choices=("cli", "default", "off"), default="cli",
                        help="cyclic GC of this process: as `ml` sets it (cli), Python's default thresholds "
                             "(default: large heaps then cost extra, non-linearly), or disabled (off: pure "
                             "algorithmic scaling)")
    args = parser.parse_args(argv)
    sizes = sorted(int(s) for s in args.sizes.split(",") if s.strip())
    if args.gc == "cli":
        gc.set_threshold(*CLI_GC_THRESHOLD)
    elif args.gc == "off":
        gc.disable()

    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, {time.strftime('%Y-%m-%d')}, "
          f"in-process GC: {args.gc} {gc.get_threshold() if gc.isenabled() else '(disabled)'}")
    with tempfile.TemporaryDirectory(prefix="ml-bench-") as tmp:
        workdir = args.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        results = {n: bench_size(n, workdir, args) for n in sizes}
        gc.collect()

    failures, timing_failures = [], []
    print("\n== scaling: t(N) / t(previous N) (≈ size ratio means linear) ==")
    for prev, cur in zip(sizes, sizes[1:]):
        step = cur / prev
        for key in results[cur]:
            if key.startswith("e.") and key != "e.apply_again" or key not in results[prev]:
                continue
            ratio = results[cur][key] / results[prev][key]
            ok = ratio <= LINEAR_LIMIT * step
            print(f"  {key:28s} {prev:>6d} -> {cur:<6d} x{ratio:6.2f}  (size x{step:g})  "
                  f"{'linear' if ok else 'SUPERLINEAR'}")
            if not ok and prev >= 1000:  # small sizes are dominated by fixed costs
                timing_failures.append(f"{key} scales x{ratio:.1f} for a x{step:g} size step")

    print("\n== targets ==")
    for n, limit in PLAN_TARGETS.items():
        if n not in results:
            continue
        for key in ("f.cli_plan_empty", "f.cli_plan_converged", "b.ml_plan_inproc"):
            if key in results[n]:
                value = results[n][key]
                ok = value < limit
                print(f"  [{'PASS' if ok else 'FAIL'}] {key} of {n} resources: {value:.2f} s (target < {limit:g} s)")
                if not ok:
                    timing_failures.append(f"{key} of {n}: {value:.2f} s")
    for n, r in results.items():
        if "e.provider_applies" in r:
            ok = r["e.provider_applies"] == 0 and r["e.outcomes"] == 0
            print(f"  [{'PASS' if ok else 'FAIL'}] second apply of {n} converged resources: "
                  f"{int(r['e.provider_applies'])} provider apply calls, {int(r['e.outcomes'])} outcomes "
                  f"({r['e.apply_again']:.2f} s)")
            if not ok:
                failures.append(f"re-apply of {n} called apply {int(r['e.provider_applies'])} times")
        else:
            print(f"  [SKIP] apply phases of {n} resources (--apply-max {args.apply_max})")
    for problem in failures + timing_failures:
        print(f"  problem: {problem}")
    return 1 if failures or (args.strict and timing_failures) else 0


if __name__ == "__main__":
    sys.exit(main())
