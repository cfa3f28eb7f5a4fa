"""Shared fixtures: small spec projects on disk, a logical snapshot of their SQLite state, a BentoML home.

Also checks the ``integration`` marker at collection: every test under tests/integration/ carries it and
no test under tests/unit/ does, so ``pytest -m "not integration"`` runs exactly the unit tests.
"""

from __future__ import annotations

import sqlite3
import textwrap
from pathlib import Path
from typing import Callable, Iterator, Mapping

import pytest

TESTS = Path(__file__).resolve().parent
FIXTURES = TESTS / "fixtures"


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects anything: every collected test is checked
def pytest_collection_modifyitems(config, items) -> None:
    """Fail collection when a test under tests/integration/ lacks the ``integration`` marker, or a test
    under tests/unit/ carries it."""
    unmarked: set[str] = set()
    marked: set[str] = set()
    for item in items:
        path = Path(item.path).resolve()
        has_marker = item.get_closest_marker("integration") is not None
        if path.is_relative_to(TESTS / "integration") and not has_marker:
            unmarked.add(str(path.relative_to(TESTS.parent)))
        elif path.is_relative_to(TESTS / "unit") and has_marker:
            marked.add(str(path.relative_to(TESTS.parent)))
    problems = [f"{name}: a test under tests/integration/ without the 'integration' marker "
                f"(add `pytestmark = pytest.mark.integration` to the module)" for name in sorted(unmarked)]
    problems += [f"{name}: a test under tests/unit/ marked 'integration' "
                 f"(move it to tests/integration/ or drop the marker)" for name in sorted(marked)]
    if problems:
        raise pytest.UsageError("integration markers do not match the test folders:\n  " + "\n  ".join(problems))


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


@pytest.fixture
def bentoml_home(tmp_path: Path, monkeypatch) -> Path:
    """A fresh, empty BentoML home for this test (BENTOML_HOME; BENTOML_DO_NOT_TRACK set): models and
    bentos saved by the test land there, never in ~/bentoml."""
    home = tmp_path / "bentoml"
    home.mkdir()
    monkeypatch.setenv("BENTOML_HOME", str(home))
    monkeypatch.setenv("BENTOML_DO_NOT_TRACK", "True")
    return home


@pytest.fixture(scope="module")
def module_bentoml_home(tmp_path_factory) -> Iterator[Path]:
    """``bentoml_home`` shared by every test of a module (for module-scoped fixtures that train or serve
    once); the environment is restored after the module's last test and its fixtures' teardown."""
    home = tmp_path_factory.mktemp("bentoml")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BENTOML_HOME", str(home))
        mp.setenv("BENTOML_DO_NOT_TRACK", "True")
        yield home
