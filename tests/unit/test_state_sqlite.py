"""The SQLite state store: serial and lineage, records, the lease lock, history and damaged files."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from datetime import datetime
from pathlib import Path

import pytest

from ml_framework.contract import RecordedResource
from ml_framework.errors import LockedError, StateError
from ml_framework.state import STATE_FORMAT_VERSION, ResourceOutcome, open_state

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / ".ml" / "state.db"


@pytest.fixture
def store(tmp_path: Path, db_path: Path):
    s = open_state("sqlite:///.ml/state.db", project_dir=tmp_path)
    yield s
    s.close()


def record(address: str = "model.fraud", **overrides) -> RecordedResource:
    values = dict(
        address=address, kind="Model", backend="lightgbm",
        spec={"trainer": {"params": {"num_leaves": 31, "rate": 0.1}}, "tags": ["a", "b"], "none": None},
        fingerprint="sha256:abc", inputs={"featureview.txn": "sha256:def"},
        outputs={"version": 3, "uri": "file:///models/fraud", "metrics": {"auc": 0.91}},
        depends_on=("featureview.txn",),
    )
    values.update(overrides)
    return RecordedResource(**values)


def run_python(code: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args], capture_output=True,
                          text=True, timeout=timeout, env=env, cwd=REPO)


# -- opening ----------------------------------------------------------------------------------------

def test_importing_framework_state_does_not_import_sqlalchemy():
    done = run_python("""
        import sys
        import ml_framework.state
        from ml_framework.state import open_state, StateStore, LockInfo
        print(sorted(m for m in sys.modules if m.split('.')[0] in ('sqlalchemy', 'psycopg')))
    """)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_relative_url_resolved_against_project_dir_and_folder_created(tmp_path: Path, db_path: Path):
    assert not db_path.parent.exists()
    s = open_state("sqlite:///.ml/state.db", project_dir=tmp_path)
    try:
        assert s.meta().serial == 0
        assert db_path.is_file()
        assert s.url == f"sqlite:///{db_path.resolve()}"
    finally:
        s.close()


def test_absolute_url(tmp_path: Path):
    target = tmp_path / "deep" / "er" / "state.db"
    s = open_state(f"sqlite:///{target}", project_dir=tmp_path / "elsewhere")
    try:
        s.meta()
        assert target.is_file()
    finally:
        s.close()


@pytest.mark.parametrize("url", ["mysql://u@h/db", "s3://bucket/state", "state.db"])
def test_unknown_or_missing_scheme(url: str):
    with pytest.raises(StateError) as err:
        open_state(url)
    assert url.split("://")[0] in str(err.value)


def test_unknown_scheme_masks_password():
    with pytest.raises(StateError) as err:
        open_state("mysql://user:hunter2@host/db")
    assert "hunter2" not in str(err.value)
    assert "***" in str(err.value)


def test_sqlite_rejects_schema_parameter(tmp_path: Path):
    with pytest.raises(StateError):
        open_state("sqlite:///s.db?schema=x", project_dir=tmp_path)


# -- lineage and serial -----------------------------------------------------------------------------

def test_empty_state_on_first_use(store):
    meta = store.meta()
    assert meta.serial == 0
    assert meta.format_version == STATE_FORMAT_VERSION
    assert len(meta.lineage) == 36
    assert store.list_resources() == []
    assert store.get("model.fraud") is None
    assert store.current_lock() is None
    assert store.history() == []


def test_serial_increments_per_write_and_lineage_survives_reopen(tmp_path: Path, store):
    lineage = store.meta().lineage
    lock = store.acquire_lock("apply")
    assert store.put(record("a.one"), lock_id=lock.id) == 1
    assert store.put(record("a.two"), lock_id=lock.id) == 2
    assert store.put(record("a.one", fingerprint="new"), lock_id=lock.id) == 3
    assert store.remove("a.two", lock_id=lock.id) == 4
    assert store.remove("a.absent", lock_id=lock.id) == 5  # no error, still a write
    assert store.meta().serial == 5
    store.release_lock(lock.id)
    store.close()

    again = open_state("sqlite:///.ml/state.db", project_dir=tmp_path)
    try:
        assert again.meta().lineage == lineage
        assert again.meta().serial == 5
        assert [r.address for r in again.list_resources()] == ["a.one"]
    finally:
        again.close()


def test_two_state_files_have_different_lineages(tmp_path: Path):
    a = open_state("sqlite:///a.db", project_dir=tmp_path)
    b = open_state("sqlite:///b.db", project_dir=tmp_path)
    try:
        assert a.meta().lineage != b.meta().lineage
    finally:
        a.close()
        b.close()


# -- records ----------------------------------------------------------------------------------------

def test_put_get_list_remove_round_trip(store):
    lock = store.acquire_lock("apply")
    original = record()
    store.put(original, lock_id=lock.id)
    store.put(record("featureview.txn", kind="FeatureView", backend="feast", depends_on=()),
              lock_id=lock.id)

    got = store.get("model.fraud")
    assert got is not None
    assert got.kind == "Model" and got.backend == "lightgbm"
    assert got.spec == original.spec
    assert got.inputs == original.inputs
    assert got.outputs == original.outputs
    assert got.depends_on == ("featureview.txn",)
    assert got.fingerprint == "sha256:abc"
    assert got.status == "applied"
    assert datetime.fromisoformat(got.updated_at).utcoffset().total_seconds() == 0

    assert [r.address for r in store.list_resources()] == ["featureview.txn", "model.fraud"]
    store.put(record(status="in_progress", outputs={"step": 1}), lock_id=lock.id)
    assert store.get("model.fraud").status == "in_progress"
    assert store.get("model.fraud").outputs == {"step": 1}

    store.remove("model.fraud", lock_id=lock.id)
    assert store.get("model.fraud") is None
    assert [r.address for r in store.list_resources()] == ["featureview.txn"]


def test_unserialisable_record_is_a_state_error(store):
    lock = store.acquire_lock("apply")
    with pytest.raises(StateError, match="model.fraud"):
        store.put(record(outputs={"obj": object()}), lock_id=lock.id)
    assert store.meta().serial == 0


def test_writes_refused_without_the_lock(store):
    with pytest.raises(StateError, match="not held"):
        store.put(record(), lock_id="no-such-lock")
    lock = store.acquire_lock("apply")
    with pytest.raises(StateError, match="not held"):
        store.put(record(), lock_id="someone-else")
    with pytest.raises(StateError, match="not held"):
        store.remove("model.fraud", lock_id="someone-else")
    store.release_lock(lock.id)
    with pytest.raises(StateError, match="not held"):
        store.put(record(), lock_id=lock.id)
    assert store.meta().serial == 0
    assert store.list_resources() == []


def test_writes_from_several_threads(store):
    lock = store.acquire_lock("apply")
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            for j in range(10):
                store.put(record(f"model.m{i}_{j}"), lock_id=lock.id)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert store.meta().serial == 80
    assert len(store.list_resources()) == 80


# -- locking ----------------------------------------------------------------------------------------

def test_acquire_records_holder(store):
    lock = store.acquire_lock("destroy", ttl_seconds=60)
    assert lock.operation == "destroy"
    assert f"(pid {os.getpid()})" in lock.who and "@" in lock.who
    from ml_framework import __version__
    assert lock.version == __version__
    created, expires = datetime.fromisoformat(lock.created), datetime.fromisoformat(lock.expires)
    assert created.utcoffset().total_seconds() == 0
    assert 59 <= (expires - created).total_seconds() <= 61
    assert store.current_lock() == lock


def test_second_acquire_fails_naming_the_holder(store):
    lock = store.acquire_lock("apply")
    with pytest.raises(LockedError) as err:
        store.acquire_lock("destroy")
    message = str(err.value)
    assert lock.who in message
    assert lock.id in message
    assert "'apply'" in message
    assert lock.created in message
    assert f"ml force-unlock {lock.id}" in message
    assert store.current_lock() == lock


def test_second_process_fails_fast(tmp_path: Path, db_path: Path, store):
    lock = store.acquire_lock("apply")
    started = time.monotonic()
    done = run_python("""
        import sys
        from ml_framework.state import open_state
        from ml_framework.errors import LockedError
        store = open_state(sys.argv[1])
        try:
            store.acquire_lock("destroy")
        except LockedError as exc:
            print("LOCKED", exc)
        else:
            print("ACQUIRED")
    """, f"sqlite:///{db_path}")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("LOCKED"), done.stdout
    assert lock.id in done.stdout and lock.who in done.stdout
    assert time.monotonic() - started < 20  # fails at once, no waiting for the lease


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


def race(url: str, processes: int = 6) -> list[str]:
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    start = str(time.time() + 3)
    procs = [subprocess.Popen([sys.executable, "-c", textwrap.dedent(RACE), url, start], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
             for _ in range(processes)]
    outputs = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        outputs.append(out.strip())
    return outputs


def test_exactly_one_of_concurrent_processes_wins(tmp_path: Path, db_path: Path):
    outputs = race(f"sqlite:///{db_path}")  # fresh file: they also race to create the state
    winners = [o for o in outputs if o.startswith("WON")]
    assert len(winners) == 1, outputs
    assert outputs.count("LOCKED") == len(outputs) - 1
    s = open_state(f"sqlite:///{db_path}")
    try:
        assert s.current_lock().id == winners[0].split()[1]
    finally:
        s.close()


def test_expired_lease_is_still_ours_until_taken_over(store):
    lock = store.acquire_lock("apply", ttl_seconds=-1)
    assert store.put(record(), lock_id=lock.id) == 1  # expired, but nobody took it over


def test_expired_lease_taken_over(store):
    old = store.acquire_lock("apply", ttl_seconds=0.05)
    time.sleep(0.1)
    new = store.acquire_lock("destroy")
    assert new.id != old.id
    assert store.current_lock() == new
    with pytest.raises(StateError, match="not held"):
        store.put(record(), lock_id=old.id)
    with pytest.raises(StateError):
        store.renew_lock(old.id)
    store.release_lock(old.id)  # the old holder's late release must not free the new lease
    assert store.current_lock() == new
    assert store.put(record(), lock_id=new.id) == 1


def test_renew_extends_the_lease(store):
    lock = store.acquire_lock("apply", ttl_seconds=0.05)
    store.renew_lock(lock.id, ttl_seconds=300)
    time.sleep(0.1)
    current = store.current_lock()
    assert current.id == lock.id
    assert datetime.fromisoformat(current.expires) > datetime.fromisoformat(lock.expires)
    with pytest.raises(LockedError):
        store.acquire_lock("apply")
    with pytest.raises(StateError, match="not held"):
        store.renew_lock("other-id")


def test_release_with_wrong_id_is_a_no_op(store):
    lock = store.acquire_lock("apply")
    store.release_lock("wrong-id")
    assert store.current_lock() == lock
    store.release_lock(lock.id)
    assert store.current_lock() is None
    store.release_lock(lock.id)  # already gone: no error
    assert store.acquire_lock("apply").id != lock.id


def test_force_unlock(store):
    with pytest.raises(StateError, match="not locked"):
        store.force_unlock("anything")
    lock = store.acquire_lock("apply")
    with pytest.raises(StateError) as err:
        store.force_unlock("wrong-id")
    assert lock.id in str(err.value)
    assert store.current_lock() == lock
    assert store.force_unlock(lock.id) == lock
    assert store.current_lock() is None
    with pytest.raises(StateError, match="not held"):
        store.put(record(), lock_id=lock.id)


# -- history ----------------------------------------------------------------------------------------

def test_history_newest_first_with_outcomes(store):
    lock = store.acquire_lock("apply")
    first = store.begin_run("apply", plan_id="plan-1", lock_id=lock.id, details={"env": "dev"})
    store.record_outcome(first, ResourceOutcome("featureview.txn", "create", "succeeded", None, 1.5))
    store.record_outcome(first, ResourceOutcome("model.fraud", "create", "failed", "boom", 0.25))
    store.put(record("featureview.txn"), lock_id=lock.id)
    store.finish_run(first, "failed")

    second = store.begin_run("destroy", plan_id=None, lock_id=lock.id)
    store.record_outcome(second, ResourceOutcome("featureview.txn", "delete", "succeeded"))

    runs = store.history()
    assert [r.id for r in runs] == [second, first]
    newest, oldest = runs
    assert newest.status == "running" and newest.finished is None and newest.plan_id is None
    assert newest.serial_before == 1
    assert oldest.operation == "apply" and oldest.status == "failed" and oldest.plan_id == "plan-1"
    assert oldest.serial_before == 0
    assert oldest.details == {"env": "dev"}
    assert oldest.who == lock.who
    assert datetime.fromisoformat(oldest.finished) >= datetime.fromisoformat(oldest.started)
    assert oldest.outcomes == (
        ResourceOutcome("featureview.txn", "create", "succeeded", None, 1.5),
        ResourceOutcome("model.fraud", "create", "failed", "boom", 0.25),
    )
    assert isinstance(oldest.outcomes, tuple)

    assert [r.id for r in store.history(limit=1)] == [second]
    assert [r.id for r in store.history(address="model.fraud")] == [first]
    assert [r.id for r in store.history(address="featureview.txn")] == [second, first]
    assert store.history(address="nothing.here") == []


def test_begin_run_requires_the_lock(store):
    with pytest.raises(StateError, match="not held"):
        store.begin_run("apply", plan_id=None, lock_id="nope")


def test_finish_unknown_run(store):
    with pytest.raises(StateError):
        store.finish_run("no-such-run", "succeeded")


# -- damaged and foreign files ----------------------------------------------------------------------

def test_newer_format_is_refused_and_nothing_is_rewritten(tmp_path: Path, db_path: Path, store):
    lock = store.acquire_lock("apply")
    store.put(record(), lock_id=lock.id)
    store.release_lock(lock.id)
    store.close()
    newer = STATE_FORMAT_VERSION + 7
    with sqlite3.connect(db_path) as conn:
        conn.execute("UPDATE ml_meta SET format_version = ?", (newer,))
    conn.close()
    before = db_path.read_bytes()

    again = open_state("sqlite:///.ml/state.db", project_dir=tmp_path)
    try:
        for call in (again.meta, again.list_resources, lambda: again.acquire_lock("apply")):
            with pytest.raises(StateError) as err:
                call()
            message = str(err.value)
            assert str(newer) in message and str(STATE_FORMAT_VERSION) in message
            assert "upgrade ml" in message
    finally:
        again.close()
    assert db_path.read_bytes() == before
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("SELECT format_version, serial FROM ml_meta").fetchone() == (newer, 1)
        assert conn.execute("SELECT count(*) FROM ml_lock").fetchone() == (0,)
    conn.close()


def test_corrupt_file_is_a_state_error_naming_the_path(tmp_path: Path, db_path: Path):
    db_path.parent.mkdir(parents=True)
    db_path.write_bytes(os.urandom(8192))
    s = open_state("sqlite:///.ml/state.db", project_dir=tmp_path)
    try:
        with pytest.raises(StateError) as err:
            s.meta()
    finally:
        s.close()
    assert str(db_path) in str(err.value)
    assert "is not a valid ml state database" in str(err.value)
    assert err.value.__cause__ is not None


def test_foreign_sqlite_database_with_broken_tables(tmp_path: Path, db_path: Path):
    db_path.parent.mkdir(parents=True)
    with sqlite3.connect(db_path) as conn:
        conn.execute("CREATE TABLE ml_meta (something TEXT)")  # our table name, another layout
    conn.close()
    s = open_state("sqlite:///.ml/state.db", project_dir=tmp_path)
    try:
        with pytest.raises(StateError) as err:
            s.meta()
    finally:
        s.close()
    assert str(db_path) in str(err.value)
    assert "is not a valid ml state database" in str(err.value)


def test_sqlite_uses_wal(store, db_path: Path):
    store.meta()
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


def test_switching_a_new_file_to_wal_retries_while_another_process_holds_it():
    import sqlite3

    from ml_framework.state.sql import _enable_wal

    class Cursor:  # SQLite's immediate "database is locked" (no busy handler) twice, then the switch
        def __init__(self, failures, message="database is locked"):
            self.failures, self.message, self.calls = failures, message, 0

        def execute(self, sql):
            self.calls += 1
            assert sql == "PRAGMA journal_mode = WAL"
            if self.calls <= self.failures:
                raise sqlite3.OperationalError(self.message)

    cursor = Cursor(2)
    _enable_wal(cursor)
    assert cursor.calls == 3
    other = Cursor(1, "disk I/O error")  # anything else is not waited out
    with pytest.raises(sqlite3.OperationalError, match="disk I/O"):
        _enable_wal(other)
    assert other.calls == 1
