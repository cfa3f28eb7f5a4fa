"""`ml monitor report` over a prediction log of 1M rows × 20 features: time and file size.

    .venv/bin/python benchmarks/bench_report.py [--rows 1000000] [--features 20] [--runs 50]

Setup (untimed): the project of bench_drift.py (a TabularDrift detector on a 20-feature reference), then
``--rows`` logged requests written in ``--runs`` chunks as the serving backend writes them (JSON lines,
16 MB segments), with a drift growing in two features over the later chunks; after each chunk
`ml monitor run` checks the newest chunk (so the report has that many points over time).

Timed: the report's code path (``build_report`` + writing the file, as `ml monitor report` runs it):

  latest     current distributions from the latest run's stored histograms (the default);
  log all    ``--log all``: every one of the logged rows counted into the reference's bins
             (parsed-segment cache warm, as after the monitor runs; and cold, every segment parsed again).

Printed: seconds and the size of the HTML file — aggregates only, so it does not grow with the log.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

SEGMENT_BYTES = 16 * 1024 * 1024


def write_chunk(directory: Path, frame, *, start: datetime, first: int, state: dict) -> None:
    """Append rows to 16 MB JSON-lines segments, in the prediction log's record format."""
    import numpy as np

    rng = np.random.default_rng(first)
    scores = rng.random(len(frame))
    columns = list(frame.columns)
    values = [frame[c].tolist() for c in columns]
    for i in range(len(frame)):
        if state.get("handle") is None or state["written"] >= SEGMENT_BYTES:
            if state.get("handle") is not None:
                state["handle"].close()
            state["handle"] = open(directory / f"seg-{state['count']:05d}.jsonl", "w", encoding="utf-8")
            state["written"], state["count"] = 0, state["count"] + 1
        record = {"request_id": str(uuid.UUID(int=first + i)), "ts": (start + timedelta(seconds=first + i)).isoformat(),
                  "deployment": "api", "model": "fraud", "model_version": "v1", "variant": "stable",
                  "entity_keys": {"customer_id": (first + i) % 5000},
                  "features": {c: v[i] for c, v in zip(columns, values)}, "prediction": float(scores[i]),
                  "latency_ms": 2.0, "status": 200}
        line = json.dumps(record, separators=(",", ":")) + "\n"
        state["handle"].write(line)
        state["written"] += len(line)
    state["handle"].flush()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--features", type=int, default=20)
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args()

    import bench_drift

    from ml_framework.plugins.serving.prediction_log import log_dir
    from ml_framework.plugins.monitoring.logcache import cache_dir
    from ml_framework.plugins.monitoring.report import build_report
    from ml_framework.plugins.monitoring.runner import Session, run_monitor

    tmp = Path(tempfile.mkdtemp(prefix="bench-report-"))
    try:
        t0 = time.perf_counter()
        chunk = args.rows // args.runs
        harness = bench_drift.setup(tmp / "proj", 0, args.features, 20_000, window=chunk)  # no traffic yet
        root = harness.project.root
        session = Session(project=harness.project, plugins=harness.registry, store=harness.store, act=False,
                          echo=lambda line: None)
        directory = log_dir(root, "api")
        directory.mkdir(parents=True, exist_ok=True)
        state = {"count": 0, "written": 0}
        start = datetime.now(timezone.utc) - timedelta(seconds=args.rows)
        statuses = []
        for run in range(args.runs):
            drift = max(0.0, (run - args.runs / 2) / args.runs)  # the second half drifts slowly
            frame = bench_drift.population(chunk, args.features, seed=100 + run)
            frame["x0"] += drift
            frame["country"] = frame["country"].where(frame.index % 10 >= int(10 * drift), "c0")
            write_chunk(directory, frame, start=start, first=run * chunk, state=state)
            statuses.append(run_monitor(session, "drift", now=start + timedelta(seconds=(run + 1) * chunk)).status)
        state["handle"].close()
        size = sum(p.stat().st_size for p in directory.glob("*.jsonl"))
        print(f"setup: {args.rows:,} logged rows × {args.features} features in {state['count']} segments "
              f"({size / 1e6:.0f} MB of JSON lines), {args.runs} monitor runs "
              f"({statuses.count('drift')} drift), {time.perf_counter() - t0:.1f}s")

        record = harness.store.get("monitor.drift")

        def report(log_range):
            started = time.perf_counter()
            html = build_report(session.mstore, root, "drift", record, log_range=log_range)
            path = tmp / f"report-{log_range or 'latest'}.html"
            path.write_text(html, encoding="utf-8")
            return time.perf_counter() - started, path.stat().st_size, html

        seconds, size_latest, _ = report(None)
        print(f"\nreport, latest run's window (default):      {seconds:7.3f}s  {size_latest / 1024:7.1f} KB")
        seconds, size_all, html = report("all")
        assert f"every logged row of the whole log ({args.rows:,} rows)" in html, "not every row was counted"
        print(f"report --log all, {args.rows:,} rows (cache warm): {seconds:7.3f}s  {size_all / 1024:7.1f} KB")
        shutil.rmtree(cache_dir(root, "api"))
        seconds, size_cold, _ = report("all")
        print(f"report --log all, {args.rows:,} rows (cache cold): {seconds:7.3f}s  {size_cold / 1024:7.1f} KB"
              "  (every segment parsed from JSON)")
        print(f"\nthe log is {size / 1e6:.0f} MB; the report {size_all / 1024:.0f} KB holds aggregates only "
              "(bins, categories, p-values and metrics per run)")
        session.mstore.close()
        harness.close()
        return 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
