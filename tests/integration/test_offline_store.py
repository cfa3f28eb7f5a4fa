"""ml's Feast offline store (DuckDB with ASOF point-in-time joins) gives Feast's own DuckDB store's rows.

Each case is retrieved through Feast's API (``FeatureStore.get_historical_features``) twice, once per
store, and compared row by row; the expected values of the cases that matter are also spelled out, so a
bug shared by both stores would fail too.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

pd = pytest.importorskip("pandas")
pytest.importorskip("feast")
pytest.importorskip("duckdb")

from ml_framework.plugins.compat.feast import ASOF_STORE  # noqa: E402

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)


def day(n: float) -> datetime:
    return T0 + timedelta(days=n)


def _repo(root: Path, store_type: str) -> Path:
    """A feature repository: customers (7-day ttl, a created timestamp, a renamed column), merchants (no
    ttl, naive timestamps in the file), both applied through Feast's SDK."""
    from feast import Entity, FeatureService, FeatureStore, FeatureView, Field, FileSource
    from feast.data_format import ParquetFormat
    from feast.types import Float64, Int64, String

    data = root / "data"
    data.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({
        "customer_id": [1, 1, 1, 1, 2, 3],
        "ts": [day(0), day(10), day(10), day(20), day(5), day(30)],
        "created": [day(0), day(10), day(11), day(20), day(5), day(30)],
        "spend_src": [1.0, 10.0, 11.0, 20.0, 5.0, 30.0],
        "tier": ["a", "b", "c", "d", "e", None],
    }).to_parquet(data / "customers.parquet")
    pd.DataFrame({
        "merchant_id": [7, 7, 8],
        "ts": [datetime(2024, 1, 1), datetime(2024, 1, 3, 12), datetime(2024, 1, 2)],  # naive: read as UTC
        "risk": [100, 300, 800],
    }).to_parquet(data / "merchants.parquet")
    (root / "feature_store.yaml").write_text(
        f"project: asof_test\nprovider: local\nregistry: data/registry.db\n"
        f"online_store: {{type: sqlite, path: data/online.db}}\noffline_store:\n  type: {store_type}\n"
        f"entity_key_serialization_version: 3\n")
    customer = Entity(name="customer", join_keys=["customer_id"])
    merchant = Entity(name="merchant", join_keys=["merchant_id"])
    customers = FeatureView(
        name="customer_stats", entities=[customer], ttl=timedelta(days=7),
        schema=[Field(name="spend", dtype=Float64), Field(name="tier", dtype=String)],
        source=FileSource(path="data/customers.parquet", file_format=ParquetFormat(), timestamp_field="ts", created_timestamp_column="created",
                          field_mapping={"spend_src": "spend"}))
    merchants = FeatureView(name="merchant_risk", entities=[merchant], ttl=timedelta(0),
                            schema=[Field(name="risk", dtype=Int64)],
                            source=FileSource(path="data/merchants.parquet", file_format=ParquetFormat(), timestamp_field="ts"))
    payer = FeatureService(name="payer", features=[customers.with_join_key_map({"customer_id": "payer_id"})])
    store = FeatureStore(repo_path=str(root))
    store.apply([customer, merchant, customers, merchants, payer])
    return root


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    from ml_framework.plugins.feast.repo import new_feature_store

    base = tmp_path_factory.mktemp("offline")
    return {name: new_feature_store(_repo(base / name, kind)) for name, kind in
            (("asof", ASOF_STORE), ("feast", "duckdb"))}


ENTITIES = pd.DataFrame({
    "row": range(10),
    "customer_id": [1, 1, 1, 1, 1, 2, 9, 1, 1, 3],
    "merchant_id": [7, 7, 7, 8, 7, 7, 8, 7, 7, 8],
    "event_timestamp": [day(-1), day(0), day(5), day(10), day(25), day(13), day(3), day(40), day(2.5) - timedelta(hours=1),
                        day(30)],
})
# customer_stats (ttl 7 days): the newest row at or before the time, if no older than 7 days; at day 10
# two rows tie and the later created (11.0, "c") wins; spend comes from the renamed column spend_src.
SPEND = [None, 1.0, 1.0, 11.0, 20.0, None, None, None, 1.0, 30.0]
TIER = [None, "a", "a", "c", "d", None, None, None, "a", None]
# merchant_risk (no ttl): 100 from Jan 1, 300 from Jan 3 12:00 UTC (row 8 is an hour before); merchant 8:
# 800 from Jan 2.
RISK = [None, 100, 300, 800, 300, 300, 800, 300, 100, 800]


def _both(stores, entity_df, features, **kwargs):
    frames = {}
    for name, store in stores.items():
        frame = store.get_historical_features(entity_df=entity_df.copy(), features=features, **kwargs).to_df()
        frames[name] = frame.sort_values("row").reset_index(drop=True) if "row" in frame else frame
    return frames["asof"], frames["feast"]


def _values(series):
    return [None if pd.isna(v) else v for v in series]


def test_point_in_time_values_ttl_created_ties_renames_and_naive_timestamps_match_feast(stores):
    features = ["customer_stats:spend", "customer_stats:tier", "merchant_risk:risk"]
    ours, feast = _both(stores, ENTITIES, features)
    pd.testing.assert_frame_equal(ours, feast[ours.columns], check_dtype=False)
    assert list(ours.columns[:4]) == list(ENTITIES.columns)
    assert _values(ours["spend"]) == SPEND
    assert _values(ours["tier"]) == TIER
    assert _values(ours["risk"]) == RISK


def test_rows_keep_the_entity_frame_order_and_duplicates(stores):
    shuffled = pd.concat([ENTITIES, ENTITIES.iloc[[2, 2]]]).sample(frac=1, random_state=3).reset_index(drop=True)
    job = stores["asof"].get_historical_features(entity_df=shuffled, features=["customer_stats:spend"])
    frame = job.to_df()
    assert list(frame["row"]) == list(shuffled["row"])  # Feast's own store returns them in another order
    assert _values(frame["spend"]) == [SPEND[r] for r in shuffled["row"]]


def test_full_feature_names_a_join_key_map_and_string_timestamps_match_feast(stores):
    entity = ENTITIES.rename(columns={"customer_id": "payer_id"})
    entity["event_timestamp"] = entity["event_timestamp"].map(lambda t: t.isoformat())
    service = {name: store.get_feature_service("payer") for name, store in stores.items()}
    ours = stores["asof"].get_historical_features(entity_df=entity.copy(), features=service["asof"],
                                                  full_feature_names=True).to_df()
    feast = (stores["feast"].get_historical_features(entity_df=entity.copy(), features=service["feast"],
                                                     full_feature_names=True).to_df()
             .sort_values("row").reset_index(drop=True))
    assert "customer_stats__spend" in ours.columns
    pd.testing.assert_frame_equal(ours, feast[ours.columns], check_dtype=False)
    assert _values(ours["customer_stats__spend"]) == SPEND


def test_the_feast_cli_reads_a_repository_that_names_the_store(stores):
    feast = Path(sys.executable).with_name("feast")
    repo = stores["asof"].repo_path
    done = subprocess.run([str(feast), "-c", str(repo), "feature-views", "list"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "customer_stats" in done.stdout and "merchant_risk" in done.stdout
