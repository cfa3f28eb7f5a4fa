"""BatchPrediction output to a real PostgreSQL table: written in one transaction (staging table renamed over
the old one), replaced on every run, left intact by a run that fails half way, dropped on destroy.

The server is ``ML_TEST_POSTGRES_URL`` (default ``postgresql+psycopg://postgres@127.0.0.1:5432/test``); the
tests are skipped when it cannot be reached. Each test uses its own table (and schema), dropped at teardown.
"""

from __future__ import annotations

import os
import uuid

import pytest

from ml_framework.testing.harness import Harness
from ml_framework.plugins.models.testing import write_project

from ml_framework.plugins.batch.testing import ADDRESS, batch_providers as providers, batch_spec, write_batch

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("clean_ml_env", "bentoml_home")]

SERVER = os.environ.get("ML_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
URL_ENV = "ML_TEST_BATCH_PG_URL"


def admin():
    psycopg = pytest.importorskip("psycopg")
    try:
        return psycopg.connect(SERVER.replace("postgresql+psycopg://", "postgresql://", 1), autocommit=True,
                               connect_timeout=5)
    except psycopg.OperationalError as exc:  # pragma: no cover - depends on the machine
        pytest.skip(f"PostgreSQL not reachable at {SERVER}: {exc}")


@pytest.fixture
def schema(monkeypatch):
    """A fresh schema name (created by the sink itself) and the URL in the environment variable the spec names."""
    name = f"ml_batch_{uuid.uuid4().hex[:10]}"
    with admin():
        pass
    monkeypatch.setenv(URL_ENV, SERVER)  # SQLAlchemy's spelling: the sink accepts it
    yield name
    with admin() as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")


@pytest.fixture
def public_table(monkeypatch):
    name = f"ml_batch_scores_{uuid.uuid4().hex[:10]}"
    with admin():
        pass
    monkeypatch.setenv(URL_ENV, SERVER)
    yield name
    with admin() as conn:
        conn.execute(f"DROP TABLE IF EXISTS {name}")


def outcome(report, address=ADDRESS):
    return next(o for o in report.outcomes if o.address == address)


def read_output(root, rel: str = "out/scores.parquet"):
    import pandas as pd

    return pd.read_parquet(root / rel)


def pg_output(table: str) -> str:
    return f"{{path: out/scores.parquet, postgres: {{url_env: {URL_ENV}, table: {table}}}}}"


def fetch(sql: str, *args):
    with admin() as conn:
        return conn.execute(sql, args).fetchall()


def tables_in(schema: str) -> set[str]:
    return {r[0] for r in fetch("SELECT table_name FROM information_schema.tables WHERE table_schema = %s", schema)}


@pytest.fixture
def project(tmp_path, schema):
    root = write_project(tmp_path / "proj", rows=2000)
    write_batch(root, batch_spec(output=pg_output(f"{schema}.scores")))
    return root


@pytest.fixture
def harness(project):
    h = Harness(project, providers())
    yield h
    h.close()


def test_the_table_holds_what_the_parquet_file_holds_and_is_replaced_on_each_run(harness, project, schema):
    import numpy as np
    import pandas as pd

    report = harness.apply()
    assert report.ok, report.outcomes
    outputs = harness.store.get(ADDRESS).outputs
    assert outputs["table"] == f"{schema}.scores" and outputs["url_env"] == URL_ENV
    assert "127.0.0.1" not in str(outputs) and "postgresql" not in str(outputs)  # no URL recorded in state
    types = dict(fetch("SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = %s "
                       "AND table_name = 'scores' ORDER BY ordinal_position", schema))
    assert types == {"customer_id": "bigint", "event_ts": "timestamp with time zone", "channel": "text",
                     "is_fraud": "bigint", "prediction": "double precision", "model_version": "text"}
    rows = fetch(f"SELECT customer_id, event_ts, channel, prediction, model_version FROM {schema}.scores")
    table = pd.DataFrame(rows, columns=["customer_id", "event_ts", "channel", "prediction", "model_version"])
    scored = read_output(project)
    assert len(table) == len(scored) == 2000
    # PostgreSQL keeps microseconds (it rounds nanoseconds): compare the timestamps at that precision
    a = scored.assign(event_ts=scored["event_ts"].dt.round("us")).sort_values(["customer_id", "event_ts"])
    b = table.assign(event_ts=pd.to_datetime(table["event_ts"], utc=True)).sort_values(["customer_id", "event_ts"])
    assert (a["customer_id"].to_numpy() == b["customer_id"].to_numpy()).all()
    assert (a["event_ts"].to_numpy() == b["event_ts"].to_numpy()).all()
    assert np.array_equal(a["prediction"].to_numpy(), b["prediction"].to_numpy())
    assert set(table["model_version"]) == {"fraud:v1"}
    comment = fetch("SELECT obj_description(%s::regclass)", f"{schema}.scores")[0][0]
    assert comment == f"predictions of fraud:v1 written by ml ({ADDRESS})"

    assert not harness.plan().has_changes

    labels = pd.read_parquet(project / "data" / "labels.parquet")
    labels.iloc[:1200].to_parquet(project / "data" / "labels.parquet", index=False)
    assert harness.apply().ok
    assert fetch(f"SELECT count(*) FROM {schema}.scores")[0][0] == 1200
    assert tables_in(schema) == {"scores"}, "no staging table is left behind"


def test_a_run_that_fails_half_way_leaves_the_table_and_file_as_they_were(harness, project, schema):
    import pandas as pd

    labels = pd.read_parquet(project / "data" / "labels.parquet")
    labels.to_parquet(project / "data" / "to_score.parquet", index=False)
    write_batch(project, batch_spec(input="{path: data/to_score.parquet, timestamp_field: event_ts}",
                                    output=pg_output(f"{schema}.scores")))
    assert harness.apply().ok
    before_rows = fetch(f"SELECT count(*), sum(prediction) FROM {schema}.scores")[0]
    before_file = (project / "out" / "scores.parquet").read_bytes()
    labels.loc[labels.index[-1], "event_ts"] = pd.NaT  # the last chunk (rows 1401-2000) fails
    labels.to_parquet(project / "data" / "to_score.parquet", index=False)
    error = outcome(harness.apply()).error
    assert error.startswith(f"{ADDRESS}: 1 input rows have no timestamp in 'event_ts'"), error
    assert fetch(f"SELECT count(*), sum(prediction) FROM {schema}.scores")[0] == before_rows
    assert (project / "out" / "scores.parquet").read_bytes() == before_file
    assert tables_in(schema) == {"scores"}, "the staging table went with the rolled-back transaction"
    assert not list((project / "out").glob(".*.tmp"))


def test_a_table_dropped_outside_ml_is_planned_again_and_destroy_drops_it(harness, project, schema):
    assert harness.apply().ok
    with admin() as conn:
        conn.execute(f"DROP TABLE {schema}.scores")
    (change,) = harness.plan().pending()
    assert change.address == ADDRESS and change.action == "create"
    assert harness.apply().ok and tables_in(schema) == {"scores"}
    assert harness.destroy().ok
    assert tables_in(schema) == set() and not (project / "out" / "scores.parquet").exists()


def test_unqualified_table_and_a_plan_without_the_url_trusts_state(tmp_path, public_table, monkeypatch):
    root = write_project(tmp_path / "p", rows=1500)
    write_batch(root, batch_spec(output=pg_output(public_table)))
    h = Harness(root, providers())
    try:
        assert h.apply().ok
        assert fetch(f"SELECT count(*) FROM {public_table}")[0][0] == 1500
        monkeypatch.delenv(URL_ENV)  # e.g. a CI job that plans without database access
        plan = h.plan()
        assert not plan.has_changes and not plan.errors
        error = outcome(h.destroy()).error  # dropping it does need the URL: said, not silently skipped
        assert f"the environment variable {URL_ENV} is not set" in error
        monkeypatch.setenv(URL_ENV, SERVER)
        assert h.destroy().ok
        assert fetch("SELECT to_regclass(%s)", public_table)[0][0] is None
    finally:
        h.close()


def test_moving_the_output_to_another_table_drops_the_old_one(harness, project, schema):
    assert harness.apply().ok
    write_batch(project, batch_spec(output=pg_output(f"{schema}.scores_v2")))
    (change,) = harness.plan().pending()
    assert f"the previous table {schema}.scores is dropped once the new output is written" in change.reasons
    assert harness.apply().ok
    assert tables_in(schema) == {"scores_v2"}
