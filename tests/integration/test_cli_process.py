"""The `ml` console script as real processes: concurrent runs, Ctrl-C mid-apply, a killed run's lock,
a plugin that cannot be imported. The backend is tests/fixtures/fileprovider.py, a local plugin whose
world is a JSON file in the project (it survives between processes) and whose apply can be slowed down.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ML_YAML = """\
name: cli-process
plugins:
  local:
    memory: "fileprovider:provider"
"""

SPECS = """\
kind: Entity
name: customer
backend: memory
---
kind: Source
name: txns
backend: memory
path: data/txns.csv
timestamp_field: ts
---
kind: FeatureView
name: customer_stats
backend: memory
entities: [customer]
source: txns
features:
  amount_mean_7d: {dtype: float32}
"""

ALL = ["entity.customer", "featureview.customer_stats", "source.txns"]
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


def _ml_script() -> str:
    script = Path(sys.executable).parent / "ml"
    found = str(script) if script.exists() else shutil.which("ml")
    if not found:
        pytest.skip("the `ml` console script is not installed")
    return found


ML = _ml_script()


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("ML_") and k not in ("FORCE_COLOR", "PYTHONBREAKPOINT")}
    env.update(NO_COLOR="1", PYTHONUNBUFFERED="1", **extra)
    return env


class Project:
    def __init__(self, root: Path):
        self.root = root

    def ml(self, *args: str, timeout: float = 60, **env: str) -> subprocess.CompletedProcess:
        done = subprocess.run([ML, *args], cwd=self.root, env=_env(**env), capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL)
        assert "Traceback" not in done.stderr + done.stdout, done.stderr
        return done

    def start(self, *args: str, sigint_ignored: bool = False, **env: str) -> subprocess.Popen:
        """``sigint_ignored``: start it as a shell starts a background job (SIGINT ignored, inherited)."""
        ignore = (lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if sigint_ignored else None
        return subprocess.Popen([ML, *args], cwd=self.root, env=_env(**env), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL, preexec_fn=ignore)

    def events(self) -> list[str]:
        path = self.root / "events.log"
        return path.read_text().splitlines() if path.exists() else []

    def world(self) -> list[str]:
        path = self.root / "world.json"
        return sorted(json.loads(path.read_text())) if path.exists() else []

    def _query(self, sql: str) -> list[tuple]:
        conn = sqlite3.connect(self.root / ".ml" / "state.db", timeout=30)
        try:
            return conn.execute(sql).fetchall()
        finally:
            conn.close()

    def recorded(self) -> list[str]:
        return [row[0] for row in self._query("SELECT address FROM ml_resources ORDER BY address")]

    def lock(self) -> tuple | None:
        rows = self._query("SELECT id, who, operation FROM ml_lock")
        return rows[0] if rows else None

    def pending(self) -> list[tuple[str, str]]:
        plan = self.ml("plan", "--json")
        assert plan.returncode == 0, plan.stderr
        return [(c["address"], c["action"]) for c in json.loads(plan.stdout)["changes"] if c["action"] != "no-op"]


def wait_for(condition, timeout: float = 20, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def finish(proc: subprocess.Popen, timeout: float = 30) -> tuple[int, str, str]:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"`ml` did not finish in {timeout}s:\n{out}\n{err}")
    assert "Traceback" not in out + err, err
    return proc.returncode, out, err


@pytest.fixture
def project(make_project, fixtures_dir) -> Project:
    root = make_project({"ml.yaml": ML_YAML, "specs/features.yaml": SPECS})
    shutil.copy(fixtures_dir / "fileprovider.py", root / "fileprovider.py")
    return Project(root)


@pytest.fixture
def procs():
    """Started processes, killed at the end of the test if still running."""
    started: list[subprocess.Popen] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def test_second_concurrent_apply_fails_fast_naming_the_holder(project: Project, procs):
    first = project.start("apply", "--auto-approve", "--parallelism", "1", ML_TEST_APPLY_SLEEP="1")
    procs.append(first)
    wait_for(lambda: any(e.startswith("start ") for e in project.events()), what="the first apply to start")
    lock_id, who, operation = project.lock()
    assert f"pid {first.pid}" in who and operation == "apply"

    began = time.monotonic()
    second = project.ml("apply", "--auto-approve", timeout=30)
    elapsed = time.monotonic() - began
    assert second.returncode == 1, second.stderr
    assert elapsed < 5, f"the second apply took {elapsed:.1f}s to give up"
    assert first.poll() is None, "the first apply should still be running"
    message = second.stderr
    assert message.count("Error:") == 1, message
    assert "is locked by" in message and f"pid {first.pid}" in message and f"lock id {lock_id}" in message
    assert f"ml force-unlock {lock_id}" in message

    code, out, _ = finish(first)
    assert code == 0, out
    assert project.recorded() == ALL and project.world() == ALL
    assert project.lock() is None


@pytest.mark.parametrize("signum, ignored", [(signal.SIGINT, False), (signal.SIGINT, True), (signal.SIGTERM, False)],
                         ids=["ctrl-c", "ctrl-c-to-a-background-job", "sigterm"])
def test_interrupt_mid_apply_keeps_finished_work_and_releases_the_lock(project: Project, procs, signum, ignored):
    # ctrl-c-to-a-background-job: SIGINT ignored when ml starts (a shell's background job, as CI runs
    # it) was how a Ctrl-C got lost and the apply ran to the end with exit 0.
    first = project.start("apply", "--auto-approve", "--parallelism", "1", sigint_ignored=ignored,
                          ML_TEST_APPLY_SLEEP="1")
    procs.append(first)
    # Interrupt while the first resource is being applied (Ctrl-C, or a CI cancellation's SIGTERM).
    wait_for(lambda: sum(e.startswith("start ") for e in project.events()) == 1, what="the first resource to start")
    time.sleep(0.2)
    first.send_signal(signum)
    code, out, err = finish(first)
    assert code == 130, out + err
    assert "interrupted" in out.lower(), out

    done = [e.split()[1] for e in project.events() if e.startswith("done ")]
    started = [e.split()[1] for e in project.events() if e.startswith("start ")]
    assert len(started) == 1, f"started more work after Ctrl-C: {project.events()}"
    assert done == started  # the resource in flight was finished, not abandoned half-way
    assert project.recorded() == sorted(done) and project.world() == sorted(done)
    assert project.lock() is None

    left = sorted(set(ALL) - set(done))
    assert sorted(a for a, _ in project.pending()) == left
    assert all(action == "create" for _, action in project.pending())
    assert project.ml("plan", "--detailed-exitcode").returncode == 2

    runs = json.loads(project.ml("history", "--json").stdout)
    assert runs[0]["status"] == "interrupted"

    rest = project.ml("apply", "--auto-approve")
    assert rest.returncode == 0, rest.stderr
    assert f"{len(left)} added" in rest.stdout
    assert project.recorded() == ALL
    assert project.ml("plan", "--detailed-exitcode").returncode == 0


def test_a_killed_run_leaves_a_lock_the_next_run_takes_over_and_says_so(project: Project, procs):
    first = project.start("apply", "--auto-approve", "--parallelism", "1", ML_TEST_APPLY_SLEEP="5")
    procs.append(first)
    wait_for(lambda: project.events(), what="the first apply to start")
    first.kill()  # no chance to clean up: the lease stays behind
    first.communicate()
    lock_id, who, _ = project.lock()
    assert sorted(a for a, _ in project.pending()) == ALL  # nothing finished before the kill

    # Its holder is provably gone (this host, its PID namespace, no such process): no 2-minute wait.
    applied = project.ml("apply", "--auto-approve")
    assert applied.returncode == 0, applied.stderr
    assert f"took over the state lock of {who}" in applied.stderr and "that process is gone" in applied.stderr
    assert project.recorded() == ALL  # converged, nothing duplicated
    assert project.lock() is None
    assert project.ml("plan", "--detailed-exitcode").returncode == 0


@pytest.mark.parametrize("finished", [1, 2, 3])
def test_kill_9_after_any_resource_converges_on_the_next_apply_with_nothing_lost_or_duplicated(project: Project,
                                                                                                procs, finished):
    first = project.start("apply", "--auto-approve", "--parallelism", "1", ML_TEST_APPLY_SLEEP="0.4")
    procs.append(first)
    wait_for(lambda: sum(line.startswith("done ") for line in project.events()) >= finished,
             what=f"{finished} resource(s) applied")
    first.kill()  # SIGKILL right after the world changed: its state record may or may not have landed
    first.communicate()
    recorded_before = set(project.recorded())
    applied = project.ml("apply", "--auto-approve")
    assert applied.returncode == 0, applied.stderr
    assert project.recorded() == ALL and project.world() == ALL  # converged: each once in state and world
    starts = [line.split()[1] for line in project.events() if line.startswith("start ")]
    for address in recorded_before:  # what was recorded is not applied again
        assert starts.count(address) == 1, (address, starts)
    assert project.lock() is None and project.ml("plan", "--detailed-exitcode").returncode == 0


def test_force_unlock_frees_a_lock_whose_holder_cannot_be_proven_gone(project: Project, procs):
    second = project.start("apply", "--auto-approve", "--parallelism", "1", ML_TEST_APPLY_SLEEP="5")
    procs.append(second)
    wait_for(lambda: project.events(), what="the apply to start")
    lock_id, who, _ = project.lock()
    refused = project.ml("apply", "--auto-approve")  # the holder is alive: refused, naming it
    assert refused.returncode == 1
    assert f"lock id {lock_id}" in refused.stderr and who in refused.stderr
    assert re.search(rf"ml force-unlock {UUID}", refused.stderr)
    second.kill()
    second.communicate()

    unlocked = project.ml("force-unlock", lock_id, "--force")
    assert unlocked.returncode == 0, unlocked.stderr
    assert lock_id in unlocked.stdout
    assert project.lock() is None
    applied = project.ml("apply", "--auto-approve")
    assert applied.returncode == 0, applied.stderr
    assert "took over" not in applied.stderr
    assert project.recorded() == ALL


def test_plugin_that_fails_to_import_fails_only_its_resources(project: Project, fixtures_dir):
    shutil.copy(fixtures_dir / "brokenplugin.py", project.root / "brokenplugin.py")
    (project.root / "ml.yaml").write_text(ML_YAML + '    broken: "brokenplugin:provider"\n')
    (project.root / "specs" / "merchant.yaml").write_text("kind: Entity\nname: merchant\nbackend: broken\n")

    validate = project.ml("validate")
    assert validate.returncode == 1
    assert "entity.merchant" in validate.stderr and "plugin 'broken' failed to load" in validate.stderr
    assert "brokenplugin:provider" in validate.stderr and "libbroken.so.1" in validate.stderr

    plan = project.ml("plan", "--json")
    assert plan.returncode == 1
    data = json.loads(plan.stdout)
    assert sorted(c["address"] for c in data["changes"]) == ALL
    assert [e["address"] for e in data["errors"]] == ["entity.merchant"]

    apply = project.ml("apply", "--auto-approve")
    assert apply.returncode == 1
    assert "plugin 'broken'" in apply.stdout + apply.stderr
    assert project.recorded() == ALL and project.world() == ALL
    assert project.lock() is None

    plugins = project.ml("plugins")
    assert plugins.returncode == 0 and "broken" in plugins.stdout and "failed" in plugins.stdout


def test_bad_input_in_a_process_is_one_line_without_traceback(project: Project):
    (project.root / "specs" / "features.yaml").write_text(SPECS.replace("source: txns", "source: txn"))
    for args in (["validate"], ["plan"], ["apply", "--auto-approve"], ["plan", "env=nope"],
                 ["plan", "sources.txns.pth=x"]):
        done = project.ml(*args)
        assert done.returncode == 1, args
        assert done.stderr.startswith("Error:") and done.stderr.count("Error:") == 1, done.stderr
    assert not (project.root / ".ml" / "state.db").exists()
    version = project.ml("--version")
    assert version.returncode == 0 and version.stdout.startswith("ml ")
