"""Cold-start cost of the `ml` CLI, side by side with a bare interpreter.

    .venv/bin/python benchmarks/bench_cli_startup.py [--runs 15] [--resources 100] [--strict]

Every measurement is a fresh process (wall clock, median and min of --runs, after one warm-up run
that fills the OS file cache): `python -c pass` (the floor), `python -c "import ml_framework.cli.main"`,
`ml --help`, `ml --version` and `ml validate specs` on a generated project of --resources resources
(benchmarks/generate_project.py, in-memory backend via a local plugin). It prints each figure, its
ratio to the floor, and, for `ml --help` and `ml validate`, how many modules were imported
(sys.modules at exit, and the `-X importtime` top 10 by cumulative time) and whether any heavy
backend library (feast, bentoml, torch, lightgbm, alibi_detect, pandas, sklearn) was among them.

Targets: `ml --help` well under 0.5 s, and no heavy library imported by `--help` or `validate`.
Exit status 1 if a heavy library is imported (or, with --strict, if `ml --help` takes >= 0.5 s).
No external tool is needed (hyperfine, if installed, gives the same picture).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from generate_project import generate  # noqa: E402

PYTHON = sys.executable
ML = str(Path(sys.executable).with_name("ml"))
HEAVY = ("feast", "bentoml", "torch", "lightgbm", "alibi_detect", "pandas", "sklearn")
HELP_TARGET_S = 0.5
HELP_TARGET_RATIO = 3.0  # issue 12: `ml --help` within 3x `python -c pass`

# Runs the CLI in-process and writes the sorted module names to $ML_BENCH_MODULES at exit.
WRAPPER = """\
import atexit, json, os, sys
atexit.register(lambda: open(os.environ["ML_BENCH_MODULES"], "w").write(json.dumps(sorted(sys.modules))))
sys.argv = ["ml"] + sys.argv[1:]
from ml_framework.cli.main import run
run()
"""


def wall(cmd: list[str], cwd: Path, runs: int) -> list[float]:
    subprocess.run(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # warm-up
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        proc = subprocess.run(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        times.append(time.perf_counter() - start)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return times


def modules(args: list[str], cwd: Path, tmp: Path) -> list[str]:
    out = tmp / "modules.json"
    env = dict(os.environ, ML_BENCH_MODULES=str(out))
    proc = subprocess.run([PYTHON, "-c", WRAPPER, *args], cwd=cwd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"ml {' '.join(args)} failed: {proc.stderr.strip()}")
    return json.loads(out.read_text())


def importtime(args: list[str], cwd: Path, tmp: Path, top: int = 10) -> list[tuple[int, str]]:
    """(cumulative µs, module) of the slowest top-level imports (-X importtime)."""
    env = dict(os.environ, ML_BENCH_MODULES=str(tmp / "modules.json"))
    proc = subprocess.run([PYTHON, "-X", "importtime", "-c", WRAPPER, *args], cwd=cwd, env=env,
                          capture_output=True, text=True)
    rows = []
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _, cumulative, name = line[len("import time:"):].split("|")
        if not name[1:].startswith(" "):  # nested imports are indented further: keep the top-level ones
            rows.append((int(cumulative), name.strip()))
    return sorted(rows, reverse=True)[:top]


def heavy_in(names: list[str]) -> list[str]:
    return sorted(n for n in names if n.split(".")[0] in HEAVY)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=15, help="timed runs per command (median reported)")
    parser.add_argument("--resources", type=int, default=100, help="size of the project `ml validate` reads")
    parser.add_argument("--strict", action="store_true", help=f"exit 1 if `ml --help` takes >= {HELP_TARGET_S} s")
    args = parser.parse_args(argv)

    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, {time.strftime('%Y-%m-%d')}, "
          f"{args.runs} runs each, wall clock per process")
    failures: list[str] = []
    with tempfile.TemporaryDirectory(prefix="ml-startup-") as tmp_name:
        tmp = Path(tmp_name)
        project = tmp / "project"
        generate(project, args.resources)
        commands = {
            "python -c pass": [PYTHON, "-c", "pass"],
            "python -c 'import ml_framework.cli.main'": [PYTHON, "-c", "import ml_framework.cli.main"],
            "ml --help": [ML, "--help"],  # answered from the help cache once rendered (cli/help_cache.py)
            "ml --help, cache off (renders it)": ["/usr/bin/env", "ML_HELP_CACHE=0", ML, "--help"],
            "ml --version": [ML, "--version"],
            f"ml validate specs ({args.resources} resources)": [ML, "validate", "specs"],
        }
        results = {label: wall(cmd, project, args.runs) for label, cmd in commands.items()}
        floor = statistics.median(results["python -c pass"])
        print(f"\n{'command':44s} {'median':>9s} {'min':>9s} {'x floor':>8s}")
        for label, times in results.items():
            median = statistics.median(times)
            print(f"{label:44s} {median * 1000:7.1f}ms {min(times) * 1000:7.1f}ms {median / floor:7.1f}x")
        help_s = statistics.median(results["ml --help"])

        base = set(json.loads(subprocess.run([PYTHON, "-c", "import json, sys; print(json.dumps(list(sys.modules)))"],
                                             capture_output=True, text=True).stdout))
        print(f"\nmodules at exit ({len(base)} in a bare interpreter):")
        for label, cli_args in (("ml --help", ["--help"]), ("ml validate specs", ["validate", "specs"])):
            names = modules(cli_args, project, tmp)
            heavy = heavy_in(names)
            print(f"  {label:20s} {len(names):5d} modules ({len(set(names) - base)} beyond the interpreter's), "
                  f"heavy: {', '.join(heavy) if heavy else 'none'}")
            if heavy:
                failures.append(f"{label} imports {', '.join(heavy)}")
            top = importtime(cli_args, project, tmp)
            print("    slowest top-level imports (cumulative, -X importtime): "
                  + ", ".join(f"{name} {us / 1000:.0f}ms" for us, name in top[:8]))

    print("\n== targets ==")
    ok = help_s < HELP_TARGET_S and help_s / floor <= HELP_TARGET_RATIO
    print(f"  [{'PASS' if ok else 'FAIL'}] ml --help: {help_s * 1000:.0f} ms, {help_s / floor:.1f}x a bare interpreter "
          f"(targets: under {HELP_TARGET_S * 1000:.0f} ms and at most {HELP_TARGET_RATIO:g}x)")
    rendered = statistics.median(results["ml --help, cache off (renders it)"])
    print(f"  [info] ml --help rendered without the cache: {rendered * 1000:.0f} ms, {rendered / floor:.1f}x "
          "(the first run after an install or a plugin change)")
    print(f"  [{'FAIL' if failures else 'PASS'}] no heavy backend import by --help or validate"
          + (f": {'; '.join(failures)}" if failures else ""))
    return 1 if failures or (args.strict and not ok) else 0


if __name__ == "__main__":
    sys.exit(main())
