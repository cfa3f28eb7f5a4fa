"""The behaviour every state store backend shares: one suite, run once per backend.

Not a test module (no ``test_`` prefix, and ``StateStoreSuite`` does not start with ``Test``): pytest
collects nothing here. A backend's test module imports the suite (``tests/`` is on ``sys.path`` through
``pythonpath`` in ``[tool.pytest.ini_options]``) and subclasses it as ``Test<Backend>StateStore``,
providing three fixtures:

* ``state_url``: a URL string naming a fresh, empty state (nothing created yet). Other processes open it
  too, from another working directory, so it must not depend on the current directory;
* ``open_store``: a callable ``url -> opened store``; the stores it opened are closed at teardown;
* ``raw_state``: direct access to the state's database, bypassing the store (see :class:`RawState`).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Protocol

import pytest

from ml_framework.contract import RecordedResource
from ml_framework.errors import LockedError, StateError
from ml_framework.state import STATE_FORMAT_VERSION, ResourceOutcome, StateStore

REPO = Path(__file__).resolve().parents[1]


class RawState(Protocol):
    """The backend's database as the store keeps it, for what the store's API cannot show or do."""

    def execute(self, sql: str, **params: Any) -> list[tuple]:
        """Run one statement (unqualified ml_* table names, ``:name`` parameters); the rows it returns."""

    def snapshot(self) -> Any:
        """Everything the state holds (equal snapshots: nothing was rewritten)."""


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


def python_env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))


def run_python(code: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args], capture_output=True,
                          text=True, timeout=timeout, env=python_env(), cwd=REPO)


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
        print("WON", lock.id, flush=True)
        # hold it (stay alive) while the others try: a lock whose holder exited is rightly taken over, and a
        # process slowed by a busy machine may try only after the winner would have exited
        time.sleep(max(0.0, start + 5 - time.time()))
"""


def race(url: str, processes: int = 6) -> list[str]:
    """Start ``processes`` processes that all try to take the lock at the same moment; their outputs."""
    start = str(time.time() + 3)
    procs = [subprocess.Popen([sys.executable, "-c", textwrap.dedent(RACE), url, start], env=python_env(),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
             for _ in range(processes)]
    outputs = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        outputs.append(out.strip())
    return outputs


class StateStoreSuite:
    """Subclass as ``Test<Backend>StateStore`` and provide ``state_url``, ``open_store`` and ``raw_state``."""

    @pytest.fixture
    def store(self, state_url: str, open_store: Callable[[str], StateStore]) -> StateStore:
        return open_store(state_url)

    # -- lineage and serial -------------------------------------------------------------------------

    def test_empty_state_on_first_use(self, store):
        meta = store.meta()
        assert meta.serial == 0
        assert meta.format_version == STATE_FORMAT_VERSION
        assert len(meta.lineage) == 36
        assert store.list_resources() == []
        assert store.get("model.fraud") is None
        assert store.current_lock() is None
        assert store.history() == []

    def test_serial_increments_per_write_and_lineage_survives_reopen(self, state_url, open_store, store):
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

        again = open_store(state_url)
        assert again.meta().lineage == lineage
        assert again.meta().serial == 5
        assert [r.address for r in again.list_resources()] == ["a.one"]
        assert again.get("a.one").fingerprint == "new"

    # -- records ------------------------------------------------------------------------------------

    def test_put_get_list_remove_round_trip(self, store):
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

    def test_unserialisable_record_is_a_state_error(self, store):
        lock = store.acquire_lock("apply")
        with pytest.raises(StateError, match="model.fraud"):
            store.put(record(outputs={"obj": object()}), lock_id=lock.id)
        assert store.meta().serial == 0

    def test_writes_refused_without_the_lock(self, store):
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

    def test_writes_from_several_threads(self, store):
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

    # -- locking ------------------------------------------------------------------------------------

    def test_acquire_records_holder(self, store):
        lock = store.acquire_lock("destroy", ttl_seconds=60)
        assert lock.operation == "destroy"
        assert f"(pid {os.getpid()}" in lock.who and "@" in lock.who
        from ml_framework import __version__
        assert lock.version == __version__
        created, expires = datetime.fromisoformat(lock.created), datetime.fromisoformat(lock.expires)
        assert created.utcoffset().total_seconds() == 0
        assert 59 <= (expires - created).total_seconds() <= 61
        assert store.current_lock() == lock

    def test_second_acquire_fails_naming_the_holder(self, store):
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

    def test_second_process_fails_fast(self, state_url, store):
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
        """, state_url)
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith("LOCKED"), done.stdout
        assert lock.id in done.stdout and lock.who in done.stdout
        assert time.monotonic() - started < 20  # fails at once, no waiting for the lease
        assert store.current_lock() == lock

    def test_exactly_one_of_concurrent_processes_wins(self, state_url, open_store):
        outputs = race(state_url)  # a fresh state: they also race to create it
        winners = [o for o in outputs if o.startswith("WON")]
        assert len(winners) == 1, outputs
        assert outputs.count("LOCKED") == len(outputs) - 1, outputs
        assert open_store(state_url).current_lock().id == winners[0].split()[1]

    def test_expired_lease_is_still_ours_until_taken_over(self, store):
        lock = store.acquire_lock("apply", ttl_seconds=-1)
        assert store.put(record(), lock_id=lock.id) == 1  # expired, but nobody took it over
        assert store.current_lock().id == lock.id

    def test_expired_lease_taken_over(self, store):
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

    def test_renew_extends_the_lease(self, store):
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

    def test_renewing_an_expired_lease_that_nobody_took_over_keeps_it(self, store):
        lock = store.acquire_lock("apply", ttl_seconds=-1)
        store.renew_lock(lock.id, ttl_seconds=300)
        with pytest.raises(LockedError):
            store.acquire_lock("apply")
        assert store.current_lock().id == lock.id

    def test_release_with_wrong_id_is_a_no_op(self, store):
        lock = store.acquire_lock("apply")
        store.release_lock("wrong-id")
        assert store.current_lock() == lock
        store.release_lock(lock.id)
        assert store.current_lock() is None
        store.release_lock(lock.id)  # already gone: no error
        assert store.current_lock() is None
        assert store.acquire_lock("apply").id != lock.id

    def test_force_unlock(self, store):
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

    # -- history ------------------------------------------------------------------------------------

    def test_history_newest_first_with_outcomes(self, store):
        lock = store.acquire_lock("apply")
        first = store.begin_run("apply", plan_id="plan-1", lock_id=lock.id,
                                details={"env": "dev", "targets": ["a"]})
        store.record_outcome(first, ResourceOutcome("featureview.txn", "create", "succeeded", None, 1.5))
        store.record_outcome(first, ResourceOutcome("model.fraud", "create", "failed", "boom", 0.25))
        store.put(record("featureview.txn"), lock_id=lock.id)
        store.finish_run(first, "failed")

        second = store.begin_run("destroy", plan_id=None, lock_id=lock.id)
        store.record_outcome(second, ResourceOutcome("featureview.txn", "delete", "succeeded"))

        runs = store.history()
        assert [r.id for r in runs] == [second, first]
        newest, oldest = runs
        assert newest.operation == "destroy"
        assert newest.status == "running" and newest.finished is None and newest.plan_id is None
        assert newest.serial_before == 1
        assert oldest.operation == "apply" and oldest.status == "failed" and oldest.plan_id == "plan-1"
        assert oldest.serial_before == 0
        assert oldest.details == {"env": "dev", "targets": ["a"]}
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

        store.finish_run(second, "succeeded")
        newest = store.history(limit=1)[0]
        assert newest.id == second and newest.status == "succeeded"
        assert datetime.fromisoformat(newest.finished) >= datetime.fromisoformat(newest.started)
        assert newest.outcomes == (ResourceOutcome("featureview.txn", "delete", "succeeded"),)

    def test_begin_run_requires_the_lock(self, store):
        with pytest.raises(StateError, match="not held"):
            store.begin_run("apply", plan_id=None, lock_id="nope")
        assert store.history() == []

    def test_finish_unknown_run(self, store):
        with pytest.raises(StateError):
            store.finish_run("no-such-run", "succeeded")

    # -- a newer format -----------------------------------------------------------------------------

    def test_newer_format_is_refused_and_nothing_is_rewritten(self, state_url, open_store, raw_state, store):
        lock = store.acquire_lock("apply")
        store.put(record(), lock_id=lock.id)
        store.release_lock(lock.id)
        store.close()
        newer = STATE_FORMAT_VERSION + 7
        raw_state.execute("UPDATE ml_meta SET format_version = :newer", newer=newer)
        before = raw_state.snapshot()

        again = open_store(state_url)
        for call in (again.meta, again.list_resources, lambda: again.acquire_lock("apply")):
            with pytest.raises(StateError) as err:
                call()
            message = str(err.value)
            assert str(newer) in message and str(STATE_FORMAT_VERSION) in message
            assert "upgrade ml" in message
        again.close()

        assert raw_state.snapshot() == before
        assert raw_state.execute("SELECT format_version, serial FROM ml_meta") == [(newer, 1)]
        assert raw_state.execute("SELECT count(*) FROM ml_lock") == [(0,)]
