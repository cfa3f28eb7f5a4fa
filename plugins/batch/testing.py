"""A small project for testing the batch backend (shipped like ml_framework.plugins.models.testing).

    from ml_framework.plugins.batch.testing import batch_spec, write_batch, batch_providers
    root = write_project(tmp_path / "proj", rows=2000)          # ml_framework.plugins.models.testing: data + fraud model
    write_batch(root, batch_spec(output="{path: out/scores.parquet}"))
    harness = Harness(root, batch_providers())

The default spec scores the label source (``source.labels``: customer_id, event_ts, channel, is_fraud) with
the ``fraud`` model's production version, looking its features up point-in-time.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

__all__ = ["batch_spec", "write_batch", "batch_providers", "ADDRESS"]

ADDRESS = "batchprediction.fraud-scores"


def batch_spec(*, model: str = "fraud", input: str = "{source: labels}", output: str = "{path: out/scores.parquet}",
               options: str = "{chunk_rows: 700}", name: str = "fraud-scores") -> str:
    """A BatchPrediction document; the arguments are YAML flow text."""
    return textwrap.dedent(f"""\
        kind: BatchPrediction
        name: {name}
        model: {model}
        input: {input}
        output: {output}
        options: {options}
        """)


def write_batch(root: Path, text: str) -> None:
    """(Re)write specs/batch.yaml of the project."""
    (Path(root) / "specs" / "batch.yaml").write_text(text)


def batch_providers() -> dict[str, Any]:
    """The in-memory feature backend, LightGBM and batch."""
    from ml_framework.plugins.lightgbm import LightGBMProvider
    from ml_framework.plugins.models.testing import feature_providers

    from .provider import BatchProvider

    return {**feature_providers(), "lightgbm": LightGBMProvider(), "batch": BatchProvider()}
