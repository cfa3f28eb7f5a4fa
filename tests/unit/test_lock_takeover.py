"""A state lock whose holder is provably gone (this host, this PID namespace, no such process) is taken
over at once, and the takeover is said; a live holder, another host, or an older holder that did not
record its PID namespace still blocks until the lease expires."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pytest

from ml_framework.errors import LockedError
from ml_framework.locking import held_lock
from ml_framework.state import open_state
from ml_framework.state.sql import _pid_namespace, holder_is_gone


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _plant(store, who: str) -> None:
    """A lock row as a run would leave it, lease still valid for an hour."""
    import sqlalchemy as sa

    later = (datetime.now(timezone.utc) + timedelta(hours=1)).isoformat(timespec="microseconds")
    with store._tx(write=True) as conn:
        conn.execute(sa.insert(store._t["lock"]).values(slot=1, id="planted", operation="apply", who=who,
                                                        version="0.1.0", created="2026-12-07T00:00:00+00:00",
                                                        expires=later))


@pytest.fixture
def store(tmp_path):
    s = open_state(f"sqlite:///{tmp_path / 'state.db'}", project_dir=tmp_path)
    s.meta()
    yield s
    s.close()


def test_a_dead_holder_on_this_host_is_taken_over_and_said(store):
    host, ns = socket.gethostname(), _pid_namespace()
    who = f"ci@{host} (pid {_dead_pid()}, pidns {ns})"
    assert holder_is_gone(who)
    _plant(store, who)
    said = []
    with held_lock(store, "apply", notice=said.append) as lock:
        assert store.current_lock().id == lock.id != "planted"
    assert len(said) == 1 and who in said[0] and "that process is gone" in said[0]


@pytest.mark.parametrize("who", [
    f"ci@{socket.gethostname()} (pid {os.getpid()}, pidns {_pid_namespace()})",  # alive: this very process
    f"ci@another-host (pid {2 ** 22 + 7}, pidns {_pid_namespace()})",  # another machine: cannot tell
    f"ci@{socket.gethostname()} (pid {2 ** 22 + 7})",  # an older ml that did not record its namespace
    f"ci@{socket.gethostname()} (pid {2 ** 22 + 7}, pidns 1)",  # another container on this host
])
def test_a_holder_that_may_be_alive_still_blocks(store, who):
    assert not holder_is_gone(who)
    _plant(store, who)
    with pytest.raises(LockedError, match="locked by"):
        store.acquire_lock("apply")
