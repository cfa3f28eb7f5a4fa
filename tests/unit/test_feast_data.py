"""scripts/generate_data.py: deterministic, skips up-to-date output, realistic shapes and UTC timestamps."""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def gen():
    spec = importlib.util.spec_from_file_location("generate_data", ROOT / "scripts" / "generate_data.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("*.parquet"))}


def test_same_parameters_same_bytes_and_second_run_skips(gen, tmp_path):
    params = gen.default_params(2000, "2025-06-01")
    written, manifest = gen.write(tmp_path / "a", params)
    assert written and set(manifest["files"]) == set(gen.FILES)
    assert gen.write(tmp_path / "a", params)[0] is False  # up to date: nothing rewritten
    gen.write(tmp_path / "b", params)
    assert _digests(tmp_path / "a") == _digests(tmp_path / "b")
    assert gen.write(tmp_path / "a", gen.default_params(2100, "2025-06-01"))[0] is True
    (tmp_path / "b" / "merchants.parquet").unlink()
    assert gen.write(tmp_path / "b", params)[0] is True  # a missing file is regenerated


def test_tables_are_realistic(gen, tmp_path):
    import pandas as pd

    gen.write(tmp_path, gen.default_params(20_000, "2025-06-01"))
    txns = pd.read_parquet(tmp_path / "transactions.parquet")
    labels = pd.read_parquet(tmp_path / "fraud_labels.parquet")
    stats = pd.read_parquet(tmp_path / "customer_txn_stats.parquet")
    assert len(txns) == 20_000 and txns["transaction_id"].is_unique
    for frame, column in ((txns, "event_ts"), (labels, "label_ts"), (stats, "event_ts")):
        assert str(frame[column].dt.tz) == "UTC"
    assert txns["event_ts"].max() < pd.Timestamp("2025-06-01", tz="UTC")
    delay = labels["label_ts"] - labels["event_ts"]
    assert delay.min() >= pd.Timedelta(days=1) and delay.max() <= pd.Timedelta(days=30)
    assert 0.01 < labels["is_fraud"].mean() < 0.04
    # daily aggregates are stamped at the close of the day they describe: never before their transactions
    first_txn = txns.groupby("customer_id")["event_ts"].min()
    first_stat = stats.groupby("customer_id")["event_ts"].min()
    assert (first_stat >= first_txn.reindex(first_stat.index)).all()
    assert not stats.duplicated(["customer_id", "event_ts"]).any()


def test_every_label_joins_its_own_transaction_and_raw_facts_only_are_written(gen, tmp_path):
    import pandas as pd

    gen.write(tmp_path, gen.default_params(5_000, "2025-06-01"))
    txns = pd.read_parquet(tmp_path / "transactions.parquet")
    labels = pd.read_parquet(tmp_path / "fraud_labels.parquet")
    # the label's event_ts is its transaction's: the on-demand view's request field at training
    merged = labels.merge(txns, on="transaction_id", suffixes=("", "_t"))
    assert len(merged) == len(labels) and (merged["event_ts"] == merged["event_ts_t"]).all()
    assert (txns["amount"] > 0).all()
    assert not (tmp_path / "transaction_features.parquet").exists()  # derived by the specs, not written
