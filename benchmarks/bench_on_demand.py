"""What on-demand features cost, ours beside the same computation written directly, in one run:

* per request: ``features.derived.compute_row`` (what the service runs for each prediction) vs the same
  three features in plain Python on one dict, and in pandas on a one-row frame;
* per training frame: ``features.derived.compute`` on N rows vs the same in vectorized pandas/numpy
  (rows per second);
* windowed aggregations at apply: ``features.aggregates.aggregate`` (sum/count/mean by running sums, max
  by pandas rolling) vs pandas' own ``groupby().rolling()`` for the same windows (events per second), and
  an incremental refresh after 1 % new events.

    .venv/bin/python benchmarks/bench_on_demand.py [--rows 1000000] [--requests 20000]
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

VIEW = {
    "name": "spend_ratios",
    "inputs": {"transaction_features.amount": "number", "customer_txn_stats.amount_mean_7d": "number",
               "hour_of_day": "number", "channel_risk": "number"},
    "features": {
        "amount_vs_mean_7d": {"expr": "transaction_features.amount / customer_txn_stats.amount_mean_7d",
                              "dtype": "float64", "fill": None},
        "log_amount": {"expr": "log1p(clip(transaction_features.amount, 0, None))", "dtype": "float64", "fill": None},
        "night_risky": {"expr": "1 if hour_of_day < 6 and channel_risk > 0.5 else 0", "dtype": "int64", "fill": 0},
    },
}


def direct_row(values: dict) -> dict:
    amount, mean = values.get("amount"), values.get("amount_mean_7d")
    ratio = None if amount is None or not mean else amount / mean
    log_amount = None if amount is None else math.log1p(max(amount, 0.0))
    risky = 1 if (values.get("hour_of_day") or 99) < 6 and (values.get("channel_risk") or 0) > 0.5 else 0
    return {"amount_vs_mean_7d": ratio, "log_amount": log_amount, "night_risky": risky}


def pandas_row(values: dict) -> dict:
    import numpy as np
    import pandas as pd

    frame = pd.DataFrame([values])
    with np.errstate(all="ignore"):
        ratio = frame["amount"] / frame["amount_mean_7d"].replace(0, np.nan)
        log_amount = np.log1p(frame["amount"].clip(lower=0))
        risky = ((frame["hour_of_day"] < 6) & (frame["channel_risk"] > 0.5)).astype("int64")
    return {"amount_vs_mean_7d": ratio.iloc[0], "log_amount": log_amount.iloc[0], "night_risky": risky.iloc[0]}


def timed_per_call(function, payloads, repeat: int) -> list[float]:
    samples = []
    for i in range(repeat):
        started = time.perf_counter()
        function(payloads[i % len(payloads)])
        samples.append((time.perf_counter() - started) * 1e6)
    return samples


def main() -> None:
    import numpy as np
    import pandas as pd

    from ml_framework.plugins.features.derived import compute, compute_row

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=20_000)
    args = parser.parse_args()
    rng = np.random.default_rng(7)
    payloads = [{"amount": float(rng.lognormal(3, 1)), "amount_mean_7d": float(rng.lognormal(3, 0.5)),
                 "hour_of_day": int(rng.integers(0, 24)), "channel_risk": float(rng.random())} for _ in range(1000)]
    compute_row(payloads[0], VIEW)  # compile once, as a service does at its first request
    assert compute_row(payloads[1], VIEW)["night_risky"] == direct_row(payloads[1])["night_risky"]

    print(f"per request ({args.requests} calls, one row each): p50 / p99 in microseconds")
    rows = []
    for name, function in (("ml compute_row", lambda v: compute_row(v, VIEW)), ("direct Python", direct_row),
                           ("direct pandas (1-row frame)", pandas_row)):
        samples = sorted(timed_per_call(function, payloads, args.requests))
        rows.append((name, statistics.median(samples), samples[int(len(samples) * 0.99)]))
    for name, p50, p99 in rows:
        print(f"  {name:<30} p50 {p50:9.1f}   p99 {p99:9.1f}   ratio p50 vs ml {rows[0][1] / p50:6.2f}x")

    frame = pd.DataFrame({
        "transaction_features.amount": rng.lognormal(3, 1, args.rows),
        "customer_txn_stats.amount_mean_7d": rng.lognormal(3, 0.5, args.rows),
        "hour_of_day": rng.integers(0, 24, args.rows).astype("float64"),
        "channel_risk": rng.random(args.rows)})
    started = time.perf_counter()
    ours = compute({k: frame[k] for k in frame.columns}, VIEW, length=len(frame))
    ml_seconds = time.perf_counter() - started
    started = time.perf_counter()
    with np.errstate(all="ignore"):
        amount, mean = frame["transaction_features.amount"], frame["customer_txn_stats.amount_mean_7d"]
        direct = {"amount_vs_mean_7d": amount / mean.replace(0, np.nan),
                  "log_amount": np.log1p(amount.clip(lower=0)),
                  "night_risky": ((frame["hour_of_day"] < 6) & (frame["channel_risk"] > 0.5)).astype("int64")}
    direct_seconds = time.perf_counter() - started
    assert np.allclose(ours["amount_vs_mean_7d"].to_numpy(), direct["amount_vs_mean_7d"].to_numpy(), equal_nan=True)
    assert (ours["night_risky"].to_numpy() == direct["night_risky"].to_numpy()).all()
    print(f"\ntraining frame ({args.rows:,} rows, 3 features):")
    print(f"  ml compute                     {ml_seconds:7.3f} s   {args.rows / ml_seconds:13,.0f} rows/s")
    print(f"  direct pandas/numpy            {direct_seconds:7.3f} s   {args.rows / direct_seconds:13,.0f} rows/s")
    print(f"  ratio (direct / ml time)       {direct_seconds / ml_seconds:7.2f}")

    from ml_framework.plugins.features.aggregates import aggregate, refresh

    entities = max(1000, args.rows // 20)
    events = pd.DataFrame({"customer_id": rng.integers(0, entities, args.rows),
                           "event_ts": pd.Timestamp("2026-01-01", tz="UTC")
                           + pd.to_timedelta(rng.integers(0, 90 * 86400, args.rows), unit="s"),
                           "amount": rng.lognormal(3, 1, args.rows)})
    plan = {"amount_sum_7d": {"column": "amount", "function": "sum", "window": "7d"},
            "amount_mean_7d": {"column": "amount", "function": "mean", "window": "7d"},
            "txn_count_1d": {"function": "count", "window": "1d"},
            "amount_max_30d": {"column": "amount", "function": "max", "window": "30d"}}
    started = time.perf_counter()
    rows = aggregate(events, ["customer_id"], "event_ts", plan)
    ours = time.perf_counter() - started
    started = time.perf_counter()
    ordered = events.sort_values(["customer_id", "event_ts"], kind="mergesort")
    grouped = ordered.groupby("customer_id", sort=False)
    direct = {
        "amount_sum_7d": grouped.rolling("7D", on="event_ts", closed="right")["amount"].sum(),
        "amount_mean_7d": grouped.rolling("7D", on="event_ts", closed="right")["amount"].mean(),
        "txn_count_1d": grouped.rolling("1D", on="event_ts", closed="right")["amount"].count(),
        "amount_max_30d": grouped.rolling("30D", on="event_ts", closed="right")["amount"].max()}
    pandas_seconds = time.perf_counter() - started
    same = np.allclose(np.sort(rows["amount_sum_7d"].to_numpy()), np.sort(direct["amount_sum_7d"].to_numpy()[
        ~ordered.duplicated(["customer_id", "event_ts"], keep="last").to_numpy()]), rtol=1e-6)
    cut = events["event_ts"].quantile(0.99)
    early, late = events[events["event_ts"] <= cut], events
    previous = aggregate(early, ["customer_id"], "event_ts", plan)
    started = time.perf_counter()
    _, recomputed = refresh(late, previous, ["customer_id"], "event_ts", plan)
    incremental = time.perf_counter() - started
    print(f"\nwindowed aggregations ({args.rows:,} events, {entities:,} entities, 4 aggregations):")
    print(f"  ml aggregate                   {ours:7.2f} s   {args.rows / ours:13,.0f} events/s")
    print(f"  pandas groupby().rolling()     {pandas_seconds:7.2f} s   {args.rows / pandas_seconds:13,.0f} events/s"
          f"   (same sums: {same})")
    print(f"  ratio (pandas / ml time)       {pandas_seconds / ours:7.2f}")
    print(f"  incremental refresh, 1% newer  {incremental:7.2f} s   ({recomputed:,} rows recomputed)")


if __name__ == "__main__":
    main()
