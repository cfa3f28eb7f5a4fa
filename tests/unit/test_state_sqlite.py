"""The SQLite state store: what only SQLite does (URLs and paths, WAL, damaged and foreign files).

What every backend shares (records, serial and lineage, the lease lock, history, a newer format) is
``StateStoreSuite`` (tests/state_suite.py), run here as ``TestSQLiteStateStore``.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ml_framework.errors import StateError
from ml_framework.state import open_state
from state_suite import StateStoreSuite

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / ".ml" / "state.db"


@pytest.fixture
def store(tmp_path: Path, db_path: Path):
    s = open_state("sqlite:///.ml/state.db", project_dir=tmp_path)
    yield s
    s.close()


def run_python(code: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args], capture_output=True,
                          text=True, timeout=timeout, env=env, cwd=REPO)


# -- the shared suite -------------------------------------------------------------------------------

class SQLiteRawState:
    """The state file through the sqlite3 module, bypassing the store."""

    def __init__(self, path: Path):
        self.path = path

    def execute(self, sql: str, **params) -> list[tuple]:
        conn = sqlite3.connect(self.path)
        try:
            with conn:
                return [tuple(row) for row in conn.execute(sql, params).fetchall()]
        finally:
            conn.close()

    def snapshot(self) -> tuple[dict[str, list], bytes]:
        """Every row of every table, then the file's bytes: not even a page of it may be rewritten."""
        tables = [r[0] for r in self.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        rows = {t: sorted(self.execute(f'SELECT * FROM "{t}"'), key=repr) for t in tables}
        return rows, self.path.read_bytes()


class TestSQLiteStateStore(StateStoreSuite):
    @pytest.fixture
    def state_url(self, db_path: Path) -> str:
        return f"sqlite:///{db_path}"  # absolute: other processes open it from another directory

    @pytest.fixture
    def open_store(self, tmp_path: Path):
        opened = []

        def open_(url: str):
            opened.append(open_state(url, project_dir=tmp_path))
            return opened[-1]

        yield open_
        for s in opened:
            s.close()

    @pytest.fixture
    def raw_state(self, db_path: Path) -> SQLiteRawState:
        return SQLiteRawState(db_path)


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
        same = open_state(f"sqlite:///{db_path}", project_dir=tmp_path / "elsewhere")
        try:
            assert same.meta().lineage == s.meta().lineage  # the same file, named absolutely
        finally:
            same.close()
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


def test_two_state_files_have_different_lineages(tmp_path: Path):
    a = open_state("sqlite:///a.db", project_dir=tmp_path)
    b = open_state("sqlite:///b.db", project_dir=tmp_path)
    try:
        assert a.meta().lineage != b.meta().lineage
    finally:
        a.close()
        b.close()


# -- damaged and foreign files ----------------------------------------------------------------------

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
