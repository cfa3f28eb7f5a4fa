"""The PostgreSQL state store against a real server, each test in its own fresh schema.

The server is ``ML_TEST_POSTGRES_URL`` (default ``postgresql+psycopg://postgres@127.0.0.1:5432/test``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from datetime import datetime
from pathlib import Path

import pytest

from ml_framework.contract import RecordedResource
from ml_framework.errors import LockedError, StateError
from ml_framework.state import STATE_FORMAT_VERSION, ResourceOutcome, open_state

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
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


def record(address: str = "model.fraud", **overrides) -> RecordedResource:
    values = dict(
        address=address, kind="Model", backend="lightgbm",
        spec={"trainer": {"params": {"num_leaves": 31}}, "tags": ["a"], "none": None},
        fingerprint="sha256:abc", inputs={"featureview.txn": "sha256:def"},
        outputs={"version": 3, "metrics": {"auc": 0.91}}, depends_on=("featureview.txn",),
    )
    values.update(overrides)
    return RecordedResource(**values)


def tables_in(schema: str) -> list[str]:
    with admin_connect() as conn:
        rows = conn.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = %s"
                            " ORDER BY table_name", (schema,)).fetchall()
    return [r[0] for r in rows]


def python_env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))


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


# -- lineage, serial, records -----------------------------------------------------------------------

def test_serial_and_lineage_across_reopen(url: str, store):
    lineage = store.meta().lineage
    lock = store.acquire_lock("apply")
    assert store.put(record("a.one"), lock_id=lock.id) == 1
    assert store.put(record("a.two"), lock_id=lock.id) == 2
    assert store.remove("a.two", lock_id=lock.id) == 3
    store.release_lock(lock.id)
    store.close()
    again = open_state(url)
    try:
        assert again.meta().lineage == lineage
        assert again.meta().serial == 3
        assert [r.address for r in again.list_resources()] == ["a.one"]
    finally:
        again.close()


def test_schemas_are_separate_states(store, schema: str):
    other = f"ml_test_{uuid.uuid4().hex[:12]}"
    s = open_state(f"{SERVER}?schema={other}")
    try:
        assert s.meta().lineage != store.meta().lineage
    finally:
        s.close()
        with admin_connect() as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {other} CASCADE")


def test_round_trip(store):
    lock = store.acquire_lock("apply")
    original = record()
    store.put(original, lock_id=lock.id)
    got = store.get("model.fraud")
    assert (got.spec, got.inputs, got.outputs) == (original.spec, original.inputs, original.outputs)
    assert got.depends_on == ("featureview.txn",)
    assert datetime.fromisoformat(got.updated_at).utcoffset().total_seconds() == 0
    store.put(record(status="in_progress", outputs={"step": 2}), lock_id=lock.id)
    assert store.get("model.fraud").outputs == {"step": 2}
    assert [r.address for r in store.list_resources()] == ["model.fraud"]
    store.remove("model.fraud", lock_id=lock.id)
    assert store.get("model.fraud") is None


def test_writes_refused_without_the_lock(store):
    with pytest.raises(StateError, match="not held"):
        store.put(record(), lock_id="nope")
    lock = store.acquire_lock("apply")
    with pytest.raises(StateError, match="not held"):
        store.remove("model.fraud", lock_id="other")
    store.release_lock(lock.id)
    with pytest.raises(StateError, match="not held"):
        store.put(record(), lock_id=lock.id)
    assert store.meta().serial == 0


def test_writes_from_several_threads(store):
    lock = store.acquire_lock("apply")
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            for j in range(5):
                store.put(record(f"model.m{i}_{j}"), lock_id=lock.id)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert store.meta().serial == 30
    assert len(store.list_resources()) == 30


# -- locking ----------------------------------------------------------------------------------------

def test_second_acquire_names_the_holder(store):
    lock = store.acquire_lock("apply")
    with pytest.raises(LockedError) as err:
        store.acquire_lock("destroy")
    message = str(err.value)
    assert lock.who in message and lock.id in message and "'apply'" in message
    assert lock.created in message
    assert f"ml force-unlock {lock.id}" in message


def test_second_process_fails_fast(url: str, store):
    lock = store.acquire_lock("apply")
    started = time.monotonic()
    code = """
        import sys
        from ml_framework.state import open_state
        from ml_framework.errors import LockedError
        try:
            open_state(sys.argv[1]).acquire_lock("destroy")
        except LockedError as exc:
            print("LOCKED", exc)
        else:
            print("ACQUIRED")
    """
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code), url], capture_output=True,
                          text=True, timeout=60, env=python_env(), cwd=REPO)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("LOCKED") and lock.id in done.stdout, done.stdout
    assert time.monotonic() - started < 20


RACE = """
    import sys, time
    from ml_framework.state import open_state
    from ml_framework.errors import LockedError
    store = open_state(sys.argv[1])
    start = float(sys.argv[2])
    while time.time() < start:
        time.sleep(0.001)
    try:
        lock = store.acquire_lock("apply")
    except LockedError:
        print("LOCKED")
    else:
        print("WON", lock.id)
"""


def test_exactly_one_of_concurrent_processes_wins(url: str):
    start = str(time.time() + 3)  # fresh schema: they also race to create the tables
    procs = [subprocess.Popen([sys.executable, "-c", textwrap.dedent(RACE), url, start],
                              env=python_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, cwd=REPO) for _ in range(6)]
    outputs = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        outputs.append(out.strip())
    winners = [o for o in outputs if o.startswith("WON")]
    assert len(winners) == 1, outputs
    s = open_state(url)
    try:
        assert s.current_lock().id == winners[0].split()[1]
    finally:
        s.close()


def test_expired_lease(store):
    old = store.acquire_lock("apply", ttl_seconds=-1)
    assert store.put(record(), lock_id=old.id) == 1  # expired, but still ours
    new = store.acquire_lock("destroy")
    assert new.id != old.id and store.current_lock() == new
    with pytest.raises(StateError, match="not held"):
        store.put(record(), lock_id=old.id)
    store.release_lock(old.id)
    assert store.current_lock() == new


def test_renew_and_release(store):
    lock = store.acquire_lock("apply", ttl_seconds=-1)
    store.renew_lock(lock.id, ttl_seconds=300)
    with pytest.raises(LockedError):
        store.acquire_lock("apply")
    with pytest.raises(StateError):
        store.renew_lock("other")
    store.release_lock("wrong-id")
    assert store.current_lock().id == lock.id
    store.release_lock(lock.id)
    store.release_lock(lock.id)
    assert store.current_lock() is None


def test_force_unlock(store):
    with pytest.raises(StateError, match="not locked"):
        store.force_unlock("x")
    lock = store.acquire_lock("apply")
    with pytest.raises(StateError) as err:
        store.force_unlock("wrong")
    assert lock.id in str(err.value)
    assert store.force_unlock(lock.id) == lock
    assert store.current_lock() is None


# -- history ----------------------------------------------------------------------------------------

def test_history(store):
    lock = store.acquire_lock("apply")
    first = store.begin_run("apply", plan_id="p1", lock_id=lock.id, details={"targets": ["a"]})
    store.record_outcome(first, ResourceOutcome("a.one", "create", "succeeded", None, 2.0))
    store.record_outcome(first, ResourceOutcome("a.two", "create", "failed", "boom", 0.5))
    store.put(record("a.one"), lock_id=lock.id)
    store.finish_run(first, "failed")
    second = store.begin_run("destroy", plan_id=None, lock_id=lock.id)
    store.record_outcome(second, ResourceOutcome("a.one", "delete", "succeeded"))
    store.finish_run(second, "succeeded")

    runs = store.history()
    assert [r.id for r in runs] == [second, first]
    assert runs[1].outcomes == (ResourceOutcome("a.one", "create", "succeeded", None, 2.0),
                                ResourceOutcome("a.two", "create", "failed", "boom", 0.5))
    assert runs[1].details == {"targets": ["a"]} and runs[1].serial_before == 0
    assert runs[0].serial_before == 1 and runs[0].status == "succeeded"
    assert [r.id for r in store.history(address="a.two")] == [first]
    assert [r.id for r in store.history(limit=1)] == [second]


# -- newer format -----------------------------------------------------------------------------------

def test_newer_format_refused_and_nothing_rewritten(url: str, schema: str, store):
    store.meta()
    store.close()
    newer = STATE_FORMAT_VERSION + 1
    with admin_connect() as conn:
        conn.execute(f"UPDATE {schema}.ml_meta SET format_version = %s", (newer,))
        before = conn.execute(f"SELECT * FROM {schema}.ml_meta").fetchall()
    tables = tables_in(schema)
    again = open_state(url)
    try:
        with pytest.raises(StateError) as err:
            again.acquire_lock("apply")
    finally:
        again.close()
    assert str(newer) in str(err.value) and str(STATE_FORMAT_VERSION) in str(err.value)
    assert "upgrade ml" in str(err.value)
    with admin_connect() as conn:
        assert conn.execute(f"SELECT * FROM {schema}.ml_meta").fetchall() == before
        assert conn.execute(f"SELECT count(*) FROM {schema}.ml_lock").fetchone() == (0,)
    assert tables_in(schema) == tables
