"""The reference saved with every accepted model version: a seeded sample of the rows it was trained on
(its whole training frame, both sides of the split) and its own predictions on them.

Monitors compare traffic with it (:mod:`ml_framework.plugins.monitoring.reference`). Saving it at training time means the
reference is the data the version really learned from, even after the sources were rewritten or grew,
and no monitor has to join the training frame again or load the model to score it.

The file is ``reference.parquet`` in the version's BentoML model folder: the feature columns as the model
saw them, plus :data:`PREDICTION_COLUMN` (the score, or the class id for multiclass models). Its parquet
metadata (key ``ml``) records rows, the frame's total, the seed and ``valid_from`` (the first row of the
held-out validation split; rollouts replay those rows when live traffic is short).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

__all__ = ["REFERENCE_FILE", "PREDICTION_COLUMN", "MAX_REFERENCE_ROWS", "build_reference", "save_reference",
           "load_saved_reference"]

REFERENCE_FILE = "reference.parquet"
PREDICTION_COLUMN = "__prediction__"
MAX_REFERENCE_ROWS = 100_000  # twice a monitor's default reference.max_rows; ~5 MB for 20 features


def build_reference(prepared, predict, *, seed: int, max_rows: int = MAX_REFERENCE_ROWS):
    """(frame, info): a seeded sample of the training frame's rows (train and validation) and the
    predictions of ``predict`` (the trained model's) on them."""
    import numpy as np
    import pandas as pd

    train_rows = len(prepared.X_train)
    total = train_rows + len(prepared.X_valid)
    sampled = total > max_rows
    valid_from = train_rows  # rows from here on are the held-out validation split
    if sampled:  # the sample's rows taken from each split (no copy of the whole frame first)
        rows = np.sort(np.random.default_rng(seed).choice(total, size=max_rows, replace=False))
        valid_from = int((rows < train_rows).sum())
        frame = pd.concat([prepared.X_train.iloc[rows[:valid_from]],
                           prepared.X_valid.iloc[rows[valid_from:] - train_rows]], ignore_index=True)
    else:
        frame = pd.concat([prepared.X_train, prepared.X_valid], ignore_index=True)
    scores = np.asarray(predict(frame))
    out = frame.copy()
    for column in prepared.categorical:  # the values themselves (a parquet dictionary), not the model's codes
        out[column] = out[column].astype(object)
    out[PREDICTION_COLUMN] = scores.argmax(axis=1).astype(np.int64) if scores.ndim == 2 else scores.astype(np.float64)
    info = {"rows": len(out), "total": total, "sampled": sampled, "seed": seed, "valid_from": valid_from,
            "prediction_kind": "categorical" if scores.ndim == 2 else "numeric"}
    return out, info


def save_reference(folder: Path, frame, info: dict[str, Any]) -> int:
    """Write ``frame`` as the reference file in ``folder`` (atomically). Returns its size in bytes."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(frame, preserve_index=False)
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), b"ml": json.dumps(info).encode()})
    target = Path(folder) / REFERENCE_FILE
    tmp = target.with_name(f".{REFERENCE_FILE}.{os.getpid()}.tmp")
    try:
        pq.write_table(table, tmp, compression="zstd")
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target.stat().st_size


def load_saved_reference(folder: Path, columns: list[str] | None = None):
    """(frame, info) of the reference saved in ``folder``, or None when the version has none (trained
    before references were saved, or its artifact is gone). ``columns``: the feature columns to read
    (the prediction column is always read)."""
    import pyarrow.parquet as pq

    path = Path(folder) / REFERENCE_FILE
    if not path.is_file():
        return None
    file = pq.ParquetFile(path)
    info = json.loads((file.schema_arrow.metadata or {}).get(b"ml", b"{}"))
    names = file.schema_arrow.names
    wanted = None if columns is None else [c for c in dict.fromkeys(list(columns) + [PREDICTION_COLUMN]) if c in names]
    frame = file.read(columns=wanted).to_pandas()
    for column in frame.columns:
        if str(frame[column].dtype) == "category":
            frame[column] = frame[column].astype(object)
    return frame, info
