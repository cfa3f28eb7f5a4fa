"""The feast backend driven by the engine: the provider contract suite, and `ml apply` end to end."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from framework.testing.contract import ProviderContract
from plugins.feast import FeastProvider

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
    assert "14 added" in applied.stdout
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
    from framework.spec.compose import compose
    from framework.spec.validate import validate_specs

    for env in (None, "prod", "redis"):
        specs = {v.spec.address: v.spec for v in validate_specs(compose(ROOT / "specs", env=env))}
        assert {"featurestore.default", "entity.customer", "featureview.customer_txn_stats",
                "featureservice.fraud_detection"} <= set(specs)
    redis = {v.spec.address: v.spec for v in validate_specs(compose(ROOT / "specs", env="redis"))}
    assert redis["featurestore.default"].online_store.type == "redis"
    prod = {v.spec.address: v.spec for v in validate_specs(compose(ROOT / "specs", env="prod"))}
    assert prod["featureview.customer_txn_stats"].ttl == "14d"
