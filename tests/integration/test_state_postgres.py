"""The PostgreSQL state store against a real server, each test in its own fresh schema.

The server is ``ML_TEST_POSTGRES_URL`` (default ``postgresql+psycopg://postgres@127.0.0.1:5432/test``).
What every backend shares (records, serial and lineage, the lease lock, history, a newer format) is
``StateStoreSuite`` (tests/state_suite.py), run here as ``TestPostgresStateStore``; this module keeps
what only PostgreSQL does (schemas, driver names, an unreachable server).
"""

from __future__ import annotations

import os
import uuid

import pytest

from ml_framework.errors import StateError
from ml_framework.state import STATE_FORMAT_VERSION, open_state
from state_suite import StateStoreSuite

pytestmark = pytest.mark.integration

SERVER = os.environ.get("ML_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def admin_connect():
    import psycopg

    dsn = SERVER.replace("postgresql+psycopg://", "postgresql://", 1)
    try:
        return psycopg.connect(dsn, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:  # pragma: no cover - depends on the machine
        pytest.skip(f"PostgreSQL not reachable at {SERVER}: {exc}")


@pytest.fixture
def schema():
    name = f"ml_test_{uuid.uuid4().hex[:12]}"
    with admin_connect() as conn:
        conn.execute(f"CREATE SCHEMA {name}")
    yield name
    with admin_connect() as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")


@pytest.fixture
def url(schema: str) -> str:
    return f"{SERVER}?schema={schema}"


@pytest.fixture
def store(url: str):
    s = open_state(url)
    yield s
    s.close()


def tables_in(schema: str) -> list[str]:
    with admin_connect() as conn:
        rows = conn.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = %s"
                            " ORDER BY table_name", (schema,)).fetchall()
    return [r[0] for r in rows]


# -- the shared suite -------------------------------------------------------------------------------

class PostgresRawState:
    """The test's schema through its own connection (search_path set to it), bypassing the store."""

    def __init__(self, schema: str):
        self.schema = schema

    def execute(self, sql: str, **params) -> list[tuple]:
        import sqlalchemy as sa
        from sqlalchemy.pool import NullPool

        engine = sa.create_engine("postgresql+psycopg://" + SERVER.split("://", 1)[1], poolclass=NullPool,
                                  connect_args={"options": f"-c search_path={self.schema}"})
        try:
            with engine.begin() as conn:
                result = conn.execute(sa.text(sql), params)
                return [tuple(row) for row in result] if result.returns_rows else []
        finally:
            engine.dispose()

    def snapshot(self) -> tuple[list[str], dict[str, list]]:
        """The schema's tables and every row of each."""
        tables = tables_in(self.schema)
        return tables, {t: sorted(self.execute(f'SELECT * FROM "{t}"'), key=repr) for t in tables}


class TestPostgresStateStore(StateStoreSuite):
    @pytest.fixture
    def state_url(self, url: str) -> str:
        return url  # a fresh, empty schema: no tables until the store first opens it

    @pytest.fixture
    def open_store(self):
        opened = []

        def open_(url: str):
            opened.append(open_state(url))
            return opened[-1]

        yield open_
        for s in opened:
            s.close()

    @pytest.fixture
    def raw_state(self, schema: str) -> PostgresRawState:
        return PostgresRawState(schema)


# -- opening ----------------------------------------------------------------------------------------

def test_tables_created_in_the_schema(store, schema: str):
    meta = store.meta()
    assert meta.serial == 0 and meta.format_version == STATE_FORMAT_VERSION
    assert tables_in(schema) == ["ml_lock", "ml_meta", "ml_resources", "ml_run_outcomes", "ml_runs"]


def test_schema_created_when_missing():
    name = f"ml_test_{uuid.uuid4().hex[:12]}"
    s = open_state(f"{SERVER}?schema={name}")
    try:
        assert s.meta().serial == 0
        assert "ml_meta" in tables_in(name)
    finally:
        s.close()
        with admin_connect() as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")


@pytest.mark.parametrize("scheme", ["postgresql", "postgres", "postgresql+psycopg2"])
def test_driver_normalised_to_psycopg3(schema: str, scheme: str):
    rest = SERVER.split("://", 1)[1]
    s = open_state(f"{scheme}://{rest}?schema={schema}")
    try:
        assert s.url.startswith("postgresql+psycopg://")
        assert s.meta().serial == 0
    finally:
        s.close()


def test_invalid_schema_name():
    with pytest.raises(StateError, match="schema"):
        open_state(f"{SERVER}?schema=bad;name")


def test_unreachable_server_is_a_state_error_with_masked_password():
    s = open_state("postgresql://ml:hunter2@127.0.0.1:1/nowhere")
    try:
        with pytest.raises(StateError) as err:
            s.meta()
    finally:
        s.close()
    assert "hunter2" not in str(err.value)
    assert "127.0.0.1:1/nowhere" in str(err.value)
    assert err.value.__cause__ is not None


def test_schemas_are_separate_states(store, schema: str):
    other = f"ml_test_{uuid.uuid4().hex[:12]}"
    s = open_state(f"{SERVER}?schema={other}")
    try:
        assert s.meta().lineage != store.meta().lineage
    finally:
        s.close()
        with admin_connect() as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {other} CASCADE")
