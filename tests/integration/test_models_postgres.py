"""The model registry on PostgreSQL: its tables live next to the state tables (same database and schema),
and a model trained with the state in PostgreSQL is recorded there.

The server is ``ML_TEST_POSTGRES_URL`` (default ``postgresql+psycopg://postgres@127.0.0.1:5432/test``);
the tests are skipped when it cannot be reached.
"""

from __future__ import annotations

import os
import uuid

import pytest

from ml_framework.plugins.models.registry import ModelRegistry, RegistryError

pytestmark = pytest.mark.integration

SERVER = os.environ.get("ML_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def admin():
    psycopg = pytest.importorskip("psycopg")
    try:
        return psycopg.connect(SERVER.replace("postgresql+psycopg://", "postgresql://", 1), autocommit=True,
                               connect_timeout=5)
    except psycopg.OperationalError as exc:  # pragma: no cover - depends on the machine
        pytest.skip(f"PostgreSQL not reachable at {SERVER}: {exc}")


@pytest.fixture
def schema():
    name = f"ml_models_{uuid.uuid4().hex[:10]}"
    with admin() as conn:
        conn.execute(f"CREATE SCHEMA {name}")
    yield name
    with admin() as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")


def test_registry_tables_live_in_the_state_schema_and_aliases_move(schema):
    from ml_framework.state import open_state

    store = open_state(f"postgresql://{SERVER.split('://', 1)[1]}?schema={schema}")
    try:
        store.meta()
        registry = ModelRegistry.for_store(store)
        for auc in (0.8, 0.85):
            registry.record_version(model="fraud", backend="lightgbm", address="model.fraud", status="accepted",
                                    metrics={"auc": auc}, gates=[], lineage={}, promote=True)
        assert registry.aliases("fraud") == {"candidate": 2, "production": 2, "previous": 1}
        registry.rollback("fraud")
        assert registry.resolve("fraud").version == 1
        with pytest.raises(RegistryError, match="has no version v9"):
            registry.resolve("fraud:v9")
    finally:
        store.close()
    with admin() as conn:
        tables = {r[0] for r in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (schema,))}
    assert {"ml_resources", "ml_model_versions", "ml_model_aliases", "ml_model_events"} <= tables


def test_a_model_applied_with_postgres_state_is_recorded_there(schema, tmp_path, monkeypatch, bentoml_home):
    from ml_framework.testing.harness import Harness
    from ml_framework.plugins.lightgbm import LightGBMProvider
    from ml_framework.plugins.models.testing import feature_providers, write_project

    monkeypatch.setenv("ML_STATE_URL", f"{SERVER}?schema={schema}")
    root = write_project(tmp_path / "p", rows=1500)
    harness = Harness(root, {**feature_providers(), "lightgbm": LightGBMProvider()})
    try:
        assert harness.apply().ok
        assert harness.store.get("model.fraud").outputs["version"] == "v1"
        assert not harness.plan().has_changes
    finally:
        harness.close()
    with admin() as conn:
        rows = conn.execute(f"SELECT model, version, status FROM {schema}.ml_model_versions").fetchall()
    assert rows == [("fraud", 1, "accepted")]
