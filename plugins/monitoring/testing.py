"""Synthetic traffic for testing and benchmarking monitors (shipped like ml_framework.testing).

    from ml_framework.plugins.monitoring.testing import write_traffic, monitor_specs
    ids = write_traffic(root, "fraud-api", features_frame, n=1000, version="v1", shift={"amount_mean_7d": 2.0})

Rows go straight into the deployment's prediction log through :class:`ml_framework.plugins.serving.prediction_log.PredictionLogWriter`
(no server needed), with the fields a serving backend writes.
"""

from __future__ import annotations

import textwrap
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

__all__ = ["write_traffic", "traffic_frame", "monitor_specs", "write_labels", "serving_provider"]


def traffic_frame(source, n: int, *, seed: int = 0, shift: Mapping[str, float] | None = None,
                  scale: Mapping[str, float] | None = None, replace: Mapping[str, Any] | None = None):
    """``n`` rows drawn (with replacement, seeded) from ``source`` (a DataFrame), numeric columns shifted by
    ``shift[col]`` standard deviations and multiplied by ``scale[col]``; ``replace[col]`` sets a value."""
    import numpy as np

    rng = np.random.default_rng(seed)
    frame = source.iloc[rng.integers(0, len(source), n)].reset_index(drop=True).copy()
    for column, delta in (shift or {}).items():
        frame[column] = frame[column] + delta * float(source[column].std())
    for column, factor in (scale or {}).items():
        frame[column] = frame[column] * factor
    for column, value in (replace or {}).items():
        frame[column] = value
    return frame


def write_traffic(project_dir: Path, deployment: str, frame, *, model: str = "fraud", version: str = "v1",
                  features: Sequence[str] | None = None, entity_keys: Sequence[str] = ("customer_id",),
                  predict: Callable[[Any], Any] | None = None, start: datetime | None = None, step_s: float = 1.0,
                  variant: str = "stable", seed: int = 0, drop: Mapping[str, float] | None = None,
                  status: int = 200) -> list[str]:
    """Log one prediction per row of ``frame``; returns the request ids. ``drop[col]``: the share of rows
    whose record lacks that feature entirely."""
    import numpy as np

    from ml_framework.plugins.serving.prediction_log import PredictionLogWriter, log_dir

    rng = np.random.default_rng(seed)
    features = list(features or [c for c in frame.columns if c not in entity_keys])
    scores = np.asarray(predict(frame[features])) if predict is not None else rng.random(len(frame))
    start = start or datetime.now(timezone.utc) - timedelta(seconds=step_s * len(frame))
    writer = PredictionLogWriter(log_dir(project_dir, deployment), queue_size=len(frame) + 10)
    ids = []
    records = frame.to_dict("records")
    for i, row in enumerate(records):
        rid = str(uuid.UUID(int=int(rng.integers(0, 2**63)) << 64 | i))
        values = {f: _plain(row[f]) for f in features}
        for column, share in (drop or {}).items():
            if rng.random() < share:
                values.pop(column, None)
        score = scores[i]
        writer.write({
            "request_id": rid, "ts": (start + timedelta(seconds=i * step_s)).isoformat(),
            "deployment": deployment, "model": model, "model_version": version, "variant": variant,
            "entity_keys": {k: _plain(row[k]) for k in entity_keys if k in row},
            "features": values, "prediction": score.tolist() if hasattr(score, "tolist") else score,
            "latency_ms": 2.0, "status": status,
        })
        ids.append(rid)
    writer.close()
    return ids


def _plain(value):
    import math

    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def write_labels(path: Path, request_ids: Sequence[str], labels: Sequence[int | float], **columns) -> None:
    """A ground-truth file: request_id, label (and any extra columns), parquet or csv by suffix."""
    import pandas as pd

    frame = pd.DataFrame({"request_id": list(request_ids), "label": list(labels), **columns})
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False) if path.suffix == ".csv" else frame.to_parquet(path, index=False)


def serving_provider():
    """An in-memory stand-in for the serving backend (named ``serving``) that owns Deployment specs."""
    from ml_framework.testing import InMemoryProvider

    return InMemoryProvider("serving", kinds=("Deployment",))


def monitor_specs(*, deployment: str = "fraud-api", model: str = "fraud", monitor: str = "fraud-drift",
                  detector: str = "{backend: alibi-detect, method: tabular, p_val: 0.05}", extra: str = "",
                  window: str = "{last: 1000, min_samples: 100}", on_drift: str = "[alert]") -> str:
    """A Deployment (on the in-memory ``serving`` backend) and a Monitor watching it."""
    return textwrap.dedent(f"""\
        kind: Deployment
        name: {deployment}
        model: {model}
        serving: {{backend: serving, port: 3000}}
        ---
        kind: Monitor
        name: {monitor}
        deployment: {deployment}
        detector: {detector}
        window: {window}
        on_drift: {on_drift}
        """) + textwrap.dedent(extra)
