"""Shared fixtures: small spec projects on disk and a logical snapshot of their SQLite state."""

from __future__ import annotations

import sqlite3
import textwrap
from pathlib import Path
from typing import Callable, Mapping

import pytest

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def fixtures_dir() -> Path:
    """tests/fixtures: helper files (plugin modules) that tests copy into their projects."""
    return FIXTURES


@pytest.fixture
def make_project(tmp_path: Path) -> Callable[..., Path]:
    """make_project({"specs/a.yaml": "...", "ml.yaml": "..."}, name="proj") -> the project directory.

    Texts are dedented; writing the same name again updates files in place.
    """

    def make(files: Mapping[str, str], name: str = "proj") -> Path:
        root = tmp_path / name
        root.mkdir(exist_ok=True)
        for rel, text in files.items():
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(textwrap.dedent(text), encoding="utf-8")
        return root

    return make


def _snapshot(project_dir: Path, rel: str = ".ml/state.db") -> dict[str, list] | None:
    """Every row of every table of the project's SQLite state (None if there is no state file).

    Logical, not byte-wise: SQLite may rewrite pages (WAL checkpoints) without changing any data.
    """
    path = Path(project_dir) / rel
    if not path.exists():
        return None
    conn = sqlite3.connect(path)
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        return {t: sorted(conn.execute(f'SELECT * FROM "{t}"').fetchall(), key=repr) for t in tables}
    finally:
        conn.close()


@pytest.fixture
def state_snapshot() -> Callable[[Path], dict[str, list] | None]:
    """state_snapshot(project_dir): compare before/after to prove a command left state untouched."""
    return _snapshot


@pytest.fixture
def clean_ml_env(monkeypatch):
    """No ambient ML_* settings (state URL, disabled plugins) or forced colours leak into a test."""
    for name in ("ML_STATE_URL", "ML_DISABLE_PLUGINS", "ML_DEBUG", "FORCE_COLOR", "ML_TEST_APPLY_SLEEP",
                 "ML_TEST_FAIL_ON"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_COLOR", "1")
