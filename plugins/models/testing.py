"""A small synthetic project for testing and benchmarking trainer backends (shipped like ml_framework.testing).

    from ml_framework.plugins.models.testing import write_project, feature_providers
    root = write_project(tmp_path, backend="lightgbm", rows=3000)
    harness = Harness(root, {**feature_providers(), "lightgbm": LightGBMProvider()})

The data: daily per-customer snapshots (``data/customer_daily.parquet``: amount_mean_7d, txn_count_7d,
segment) and labelled events (``data/labels.parquet``: customer_id, event_ts, channel, is_fraud) whose
label depends on the customer's features *as of the event* — so a model trained on a correct
point-in-time join learns it (AUC ~0.85), and one that leaked future rows would look different.
The feature specs use the in-memory backend ``files`` (no Feast needed); the trainer reads the
parquet files directly.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any, Mapping

__all__ = ["write_data", "write_project", "feature_providers", "FEATURE_SPECS", "model_spec"]

FEATURE_SPECS = """\
kind: Entity
name: customer
join_keys: [customer_id]
backend: files
---
kind: Source
name: labels
path: data/labels.parquet
timestamp_field: event_ts
backend: files
---
kind: Source
name: customer_daily
path: data/customer_daily.parquet
timestamp_field: event_ts
backend: files
---
kind: FeatureView
name: customer_stats
entities: [customer]
source: customer_daily
ttl: 3d
backend: files
features:
  amount_mean_7d: {dtype: float64}
  txn_count_7d: {dtype: int64}
  segment: {dtype: string}
"""


def model_spec(backend: str = "lightgbm", *, name: str = "fraud", params: Mapping[str, Any] | None = None,
               gates: tuple[str, ...] = ("auc >= 0.70", "auc >= production.auc - 0.02"),
               slices: tuple[str, ...] = ("channel",), extra: str = "", task: str = "binary",
               label: str = "is_fraud", split: str = "{by: time, valid: 0.25, seed: 7}") -> str:
    if params is None:
        params = ({"num_leaves": 15, "learning_rate": 0.1, "num_boost_round": 60} if backend == "lightgbm" else
                  {"layers": [32, 16], "dropout": 0.0, "epochs": 8, "batch_size": 128, "learning_rate": 0.01})
    import json

    def flow(values) -> str:
        return "[" + ", ".join(json.dumps(v) for v in values) + "]"

    params_text = "{" + ", ".join(f"{k}: {json.dumps(v)}" for k, v in params.items()) + "}"
    return textwrap.dedent(f"""\
        kind: Model
        name: {name}
        task: {task}
        label: {{source: labels, column: {label}}}
        features: ["customer_stats:*"]
        split: {split}
        trainer:
          backend: {backend}
          params: {params_text}
        """) + (f"gates: {flow(gates)}\n" if gates else "") + (f"slices: {flow(slices)}\n" if slices else "") + extra


def write_data(root: Path, *, rows: int = 3000, customers: int = 300, days: int = 60, seed: int = 7,
               label_shift: float = 0.0) -> None:
    """Write data/customer_daily.parquet and data/labels.parquet under ``root``."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2024-01-01", tz="UTC")
    ids = np.arange(1, customers + 1)
    risk = rng.normal(0, 1, customers)  # a customer's hidden risk drives both features and labels
    segments = np.array(["retail", "business", "premium"])
    seg = segments[rng.integers(0, 3, customers)]
    day = np.repeat(np.arange(days), customers)
    cust = np.tile(np.arange(customers), days)
    drift = np.sin(day / 9.0 + risk[cust])  # features move over time: a wrong join picks wrong values
    daily = pd.DataFrame({
        "customer_id": ids[cust].astype("int64"),
        "event_ts": start + pd.to_timedelta(day, unit="D"),
        "amount_mean_7d": np.round(np.exp(3 + 0.6 * risk[cust] + 0.5 * drift + rng.normal(0, 0.1, len(day))), 2),
        "txn_count_7d": rng.poisson(5 + 2 * np.clip(risk[cust], -2, 2) + 2).astype("int64"),
        "segment": seg[cust],
    })
    who = rng.integers(0, customers, rows)
    at = start + pd.to_timedelta(rng.uniform(1, days, rows) * 86400, unit="s")
    as_of_day = np.floor((at - start).total_seconds() / 86400).astype(int).to_numpy()
    as_of_drift = np.sin(as_of_day / 9.0 + risk[who])
    logit = -1.2 + 1.4 * risk[who] + 1.0 * as_of_drift + 0.6 * (seg[who] == "business") + label_shift
    labels = pd.DataFrame({
        "customer_id": ids[who].astype("int64"),
        "event_ts": at.astype("datetime64[ns, UTC]"),
        "channel": np.where(rng.random(rows) < 0.6, "online", "pos"),
        "is_fraud": (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype("int64"),
    })
    out = Path(root) / "data"
    out.mkdir(parents=True, exist_ok=True)
    daily.to_parquet(out / "customer_daily.parquet", index=False)
    labels.to_parquet(out / "labels.parquet", index=False)


def write_project(root: Path, *, backend: str = "lightgbm", rows: int = 3000, model: str | None = None,
                  data: bool = True, **model_args) -> Path:
    """A project directory: specs/features.yaml, specs/models.yaml and (unless ``data=False``) data/."""
    root = Path(root)
    (root / "specs").mkdir(parents=True, exist_ok=True)
    (root / "specs" / "features.yaml").write_text(FEATURE_SPECS)
    (root / "specs" / "models.yaml").write_text(model if model is not None else model_spec(backend, **model_args))
    if data:
        write_data(root, rows=rows)
    return root


def feature_providers() -> dict[str, Any]:
    """The in-memory backend the feature specs above use (named ``files``)."""
    from ml_framework.testing import InMemoryProvider

    return {"files": InMemoryProvider("files", kinds=("Entity", "Source", "FeatureView", "FeatureService"))}
