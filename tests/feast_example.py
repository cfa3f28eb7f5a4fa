"""The example project's feature specs and Feast repository in a test folder, with generated data: what the
Feast-backed integration tests start from (each adds its own models, deployments, monitors...)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Iterable

REPO = Path(__file__).resolve().parents[1]


def fraud_model(*, rounds: int = 40, gates: Iterable[str] = (), slices: Iterable[str] = ()) -> str:
    """The example's fraud model (LightGBM) on the example's features, small enough for a test."""
    text = ("kind: Model\nname: fraud\ntask: binary\nlabel: {source: fraud_labels, column: is_fraud}\n"
            'features: [fraud_detection, "customer_profile:home_country"]\n'
            "split: {by: time, valid: 0.25, seed: 7}\n"
            f"trainer:\n  backend: lightgbm\n  params: {{num_leaves: 15, num_boost_round: {rounds}, min_data_in_leaf: 20}}\n")
    if gates:
        text += "gates: [" + ", ".join(f'"{g}"' for g in gates) + "]\n"
    if slices:
        text += "slices: [" + ", ".join(slices) + "]\n"
    return text


def write_example(root: Path, *, specs: dict[str, str], also: Iterable[str] = (), rows: int = 4000,
                  offline_store: str | None = None, end: str = "2024-07-01") -> Path:
    """``root`` with the example's feature specs (and its ``also`` spec folders, e.g. ``monitors``), its
    Feast repository configuration (``offline_store``: another store type than the example's), the
    ``specs`` files given (name -> text) and ``rows`` generated transactions ending ``end``."""
    for folder in ("features", *also):
        shutil.copytree(REPO / "specs" / folder, root / "specs" / folder)
    (root / "feature_repo").mkdir(parents=True)
    config = (REPO / "feature_repo" / "feature_store.yaml").read_text()
    if offline_store is not None:
        config, count = re.subn(r"(?m)^(offline_store:\n(?:  #.*\n)*  type:) \S+$", rf"\1 {offline_store}", config)
        assert count == 1, "the example's feature_store.yaml names no offline store type"
    (root / "feature_repo" / "feature_store.yaml").write_text(config)
    for name, text in specs.items():
        (root / "specs" / name).write_text(text)
    subprocess.run([sys.executable, str(REPO / "scripts" / "generate_data.py"), "--out", str(root / "data"),
                    "--rows", str(rows), "--end", end], check=True, capture_output=True)
    return root
