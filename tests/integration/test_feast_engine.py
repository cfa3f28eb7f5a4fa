"""The feast backend driven by the engine: the provider contract suite, and `ml apply` end to end."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ml_framework.testing.contract import ProviderContract
from ml_framework.plugins.feast import FeastProvider

from test_feast_provider import ROOT, feast_cli, make_project

pytestmark = pytest.mark.integration

SMALL_SPECS = """\
kind: FeatureStore
name: default
---
kind: Entity
name: customer
join_keys: [customer_id]
---
kind: Source
name: customer_txn_stats
path: data/customer_txn_stats.parquet
timestamp_field: event_ts
---
kind: FeatureView
name: customer_txn_stats
entities: [customer]
source: customer_txn_stats
store: default
ttl: 7d
features:
  amount_mean_7d: {dtype: float32, checks: {ge: 0}}
  txn_count_7d: {dtype: int64, checks: {ge: 1}}
---
kind: FeatureService
name: spending
features: ["customer_txn_stats:*"]
"""


def small_project(root: Path) -> Path:
    make_project(root, rows=500)
    for path in (root / "specs").rglob("*.yaml"):
        path.unlink()
    (root / "specs" / "features.yaml").write_text(SMALL_SPECS)
    return root


class TestFeastProviderContract(ProviderContract):
    @pytest.fixture
    def contract_project(self, tmp_path):
        return small_project(tmp_path)

    @pytest.fixture
    def contract_providers(self):
        return {"feast": FeastProvider()}


def _ml(root: Path, *args: str) -> subprocess.CompletedProcess:
    ml = Path(sys.executable).with_name("ml")
    env = {**os.environ, "NO_COLOR": "1"}
    return subprocess.run([str(ml), *args], cwd=root, capture_output=True, text=True, timeout=300, env=env)


@pytest.mark.skipif(not Path(sys.executable).with_name("ml").exists(), reason="the ml CLI is not installed")
def test_ml_apply_end_to_end(tmp_path):
    make_project(tmp_path, rows=1000)
    (tmp_path / "ml.yaml").write_text(textwrap.dedent("""\
        backends:
          feast: {repo: feature_repo}
    """))
    applied = _ml(tmp_path, "apply", "--auto-approve")
    assert applied.returncode == 0, applied.stdout[-3000:] + applied.stderr[-3000:]
    assert "19 added" in applied.stdout
    plan = _ml(tmp_path, "plan")
    assert plan.returncode == 0 and "No changes" in plan.stdout, plan.stdout[-2000:]
    assert "No changes to registry" in feast_cli(tmp_path / "feature_repo", "plan")

    # a spec edit through an override is one planned update, and Feast follows
    changed = _ml(tmp_path, "apply", "--auto-approve", "feature_views.merchant_stats.ttl=3d")
    assert changed.returncode == 0, changed.stdout[-3000:] + changed.stderr[-3000:]
    # the view, and the feature service built on it (its upstream changed)
    assert "2 changed" in changed.stdout and "featureview.merchant_stats" in changed.stdout
    assert "timedelta(seconds=259200)" in (tmp_path / "feature_repo" / "ml_generated.py").read_text()

    destroyed = _ml(tmp_path, "destroy", "--auto-approve")
    assert destroyed.returncode == 0, destroyed.stdout[-3000:] + destroyed.stderr[-3000:]
    listed = feast_cli(tmp_path / "feature_repo", "feature-views", "list")
    assert "customer_txn_stats" not in listed and "merchant_stats" not in listed


def test_specs_of_the_example_project_validate():
    from ml_framework.spec.compose import compose
    from ml_framework.spec.validate import validate_specs

    for env in (None, "prod", "redis"):
        specs = {v.spec.address: v.spec for v in validate_specs(compose(ROOT / "specs", env=env))}
        assert {"featurestore.default", "entity.customer", "featureview.customer_txn_stats",
                "featureservice.fraud_detection"} <= set(specs)
    redis = {v.spec.address: v.spec for v in validate_specs(compose(ROOT / "specs", env="redis"))}
    assert redis["featurestore.default"].online_store.type == "redis"
    prod = {v.spec.address: v.spec for v in validate_specs(compose(ROOT / "specs", env="prod"))}
    assert prod["featureview.customer_txn_stats"].ttl == "14d"


CSV_SPECS = """\
kind: Entity
name: customer
join_keys: [customer_id]
---
kind: Source
name: spending
path: data/spending.csv
timestamp_field: event_ts
columns:
  customer_id: {dtype: int64}
  amount_mean_7d: {dtype: float32, checks: {ge: 0}}
  txn_count_7d: {dtype: int64, checks: {ge: 1}}
---
kind: FeatureView
name: spending
entities: [customer]
source: spending
ttl: 7d
features:
  amount_mean_7d: {dtype: float32}
  txn_count_7d: {dtype: int64}
"""


def test_csv_source_through_the_engine(tmp_path):
    """A CSV-backed view: applied, a changed CSV planned as "source data changed", a broken one refused."""
    import pandas as pd

    from ml_framework.testing.harness import Harness
    from ml_framework.plugins.feast.online import fetch_online_features
    from ml_framework.plugins.feast.repo import new_feature_store

    small_project(tmp_path)
    (tmp_path / "specs" / "features.yaml").write_text(CSV_SPECS)
    df = pd.read_parquet(tmp_path / "data" / "customer_txn_stats.parquet")
    csv = tmp_path / "data" / "spending.csv"
    df.to_csv(csv, index=False)
    harness = Harness(tmp_path, {"feast": FeastProvider()})
    try:
        assert harness.apply().ok
        assert not harness.plan().has_changes

        changed = df.copy()
        changed.loc[changed["event_ts"].idxmax(), "txn_count_7d"] = 777
        changed.to_csv(csv, index=False)
        plan = harness.plan()
        reasons = {c.address: c.reasons for c in plan.changes if c.action != "no-op"}
        assert reasons["source.spending"] == ("source data changed",)
        assert "upstream source.spending changed (source data changed)" in reasons["featureview.spending"]
        assert harness.apply().ok and not harness.plan().has_changes
        newest = changed.loc[changed["event_ts"].idxmax()]
        served = fetch_online_features(new_feature_store(tmp_path / "feature_repo"), ["spending:txn_count_7d"],
                                       [{"customer_id": int(newest["customer_id"])}])
        assert served.features["txn_count_7d"] == [777]

        broken = changed.rename(columns={"amount_mean_7d": "amount_avg_7d"})
        broken["txn_count_7d"] = broken["txn_count_7d"].astype(str)
        broken.loc[2, "txn_count_7d"] = "seven"
        broken.to_csv(csv, index=False)
        registry = tmp_path / "feature_repo" / "data" / "registry.db"
        before = registry.read_bytes()
        report = harness.apply()
        failed = {o.address: o for o in report.outcomes if o.outcome == "failed"}
        assert set(failed) == {"source.spending"}
        assert "columns.txn_count_7d: parses as int64 fails for 1 row, e.g. 'seven' (first on line 4)" \
            in failed["source.spending"].error
        error = failed["source.spending"].error
        assert "columns.amount_mean_7d: column 'amount_mean_7d' present" in error and "amount_avg_7d" in error
        assert "hint: fix the data, or the rules declared in specs/features.yaml" in error
        assert {o.address: o.outcome for o in report.outcomes}["featureview.spending"] == "skipped"
        assert registry.read_bytes() == before and harness.plan().has_changes
    finally:
        harness.close()
