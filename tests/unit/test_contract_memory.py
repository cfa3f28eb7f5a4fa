"""The shipped contract suite, run against the shipped in-memory provider."""

import pytest

from ml_framework.testing import InMemoryProvider
from ml_framework.testing.contract import ProviderContract

SPECS = """\
kind: Entity
name: customer
backend: memory
---
kind: Source
name: txns
path: data/t.parquet
timestamp_field: event_ts
backend: memory
---
kind: FeatureView
name: txn_stats
entities: [customer]
source: txns
backend: memory
features:
  amount: {dtype: float32}
"""


class TestInMemoryProvider(ProviderContract):
    @pytest.fixture
    def contract_project(self, tmp_path):
        (tmp_path / "specs").mkdir()
        (tmp_path / "specs" / "features.yaml").write_text(SPECS)
        return tmp_path

    @pytest.fixture
    def contract_providers(self):
        return {"memory": InMemoryProvider()}
