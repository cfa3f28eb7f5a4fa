#!/usr/bin/env python
"""The example's first `ml apply`, step by step, at a chosen data size, with each offline store side by side.

For each size and each offline store (``duckdb``, the example's; ``file``, Feast's dask store): a fresh
copy of the example (specs, feature repository), data generated with ``scripts/generate_data.py --rows N``,
then ``ml apply --auto-approve`` as a fresh process under ``/usr/bin/time -v``. Printed: the whole apply's
wall time and peak memory (maximum resident set of the `ml` process), and each resource's time from the
apply's own output ("Creation complete after ..."). The deployment is destroyed after each run.

    python benchmarks/bench_first_apply.py [--rows 100000 400000] [--stores asof duckdb file]

Stores: ``asof`` (the example's: ml's DuckDB store with ASOF joins), ``duckdb`` (Feast's own DuckDB
store), ``file`` (Feast's dask store).

Issue 14's targets: 100k transactions ≤ 20 s; 1.6M ≤ 75 s and ≤ 2 GB.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ML = str(Path(sys.executable).with_name("ml"))
STORES = {"asof": "ml_framework.plugins.feast.offline_store.DuckDBAsofOfflineStore", "duckdb": "duckdb",
          "file": "file"}
STEP = re.compile(r"^(?P<address>[\w.-]+): Creation complete after (?P<seconds>[\d.]+)s", re.M)


def _project(base: Path, store: str) -> Path:
    root = base / f"example-{store}"
    shutil.copytree(ROOT / "specs", root / "specs")
    shutil.copytree(ROOT / "feature_repo", root / "feature_repo", ignore=shutil.ignore_patterns("data", "ml_generated*"))
    shutil.copy(ROOT / "scripts" / "generate_data.py", base / "generate_data.py")
    config = root / "feature_repo" / "feature_store.yaml"
    config.write_text(re.sub(r"(?m)^(offline_store:\n(?:  #.*\n)*  type:) \S+$", rf"\1 {STORES[store]}",
                             config.read_text()))
    return root


def run(rows: int, store: str, base: Path) -> dict:
    root = _project(base, store)
    subprocess.run([sys.executable, str(ROOT / "scripts" / "generate_data.py"), "--out", str(root / "data"),
                    "--rows", str(rows)], check=True, capture_output=True)
    env = dict(os.environ, NO_COLOR="1")
    env.pop("ML_STATE_URL", None)
    timed = ["/usr/bin/time", "-v"] if Path("/usr/bin/time").exists() else []
    started = time.perf_counter()
    proc = subprocess.run([*timed, ML, "apply", "--auto-approve"], cwd=root, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    peak = re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)
    steps = {m["address"]: float(m["seconds"]) for m in STEP.finditer(proc.stdout)}
    subprocess.run([ML, "destroy", "--auto-approve"], cwd=root, env=env, capture_output=True)
    return {"ok": proc.returncode == 0, "wall": wall, "peak_mb": int(peak.group(1)) / 1024 if peak else None,
            "steps": steps, "tail": (proc.stdout + proc.stderr)[-1500:]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000])
    parser.add_argument("--stores", nargs="+", default=["asof", "duckdb"], choices=sorted(STORES))
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench_first_apply_") as tmp:
        for rows in args.rows:
            results = {}
            for store in args.stores:
                results[store] = run(rows, store, Path(tmp) / f"{rows}-{store}")
            print(f"\n== {rows:,} transactions ==")
            head = f"{'step':34}" + "".join(f"{s:>14}" for s in args.stores)
            print(head + "\n" + "-" * len(head))
            steps = sorted({a for r in results.values() for a in r["steps"]},
                           key=lambda a: -max(r["steps"].get(a, 0) for r in results.values()))
            for address in steps:
                if max(r["steps"].get(address, 0) for r in results.values()) < 0.5:
                    continue
                print(f"{address:34}" + "".join(f"{r['steps'].get(address, float('nan')):13.1f}s" for r in results.values()))
            print(f"{'whole apply (wall)':34}" + "".join(f"{r['wall']:13.1f}s" for r in results.values()))
            print(f"{'peak memory of ml':34}" + "".join(
                f"{r['peak_mb']:11.0f} MB" if r["peak_mb"] else f"{'?':>14}" for r in results.values()))
            for store, result in results.items():
                if not result["ok"]:
                    print(f"\n{store}: the apply failed:\n{result['tail']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
