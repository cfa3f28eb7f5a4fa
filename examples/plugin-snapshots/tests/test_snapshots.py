"""The plugin's own tests, built on ml's contract kit (ml_framework.testing). They run without the plugin
being installed: the Plugin declaration is handed to the kit, as an entry point would hand it to ml."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from ml_framework.testing import run_cli
from ml_framework.testing.contract import ProviderContract
from ml_framework.testing.harness import Harness
from ml_snapshots import plugin
from ml_snapshots.provider import FilesProvider, snapshot_dir

SPECS = """\
kind: DataSnapshot
name: prices
path: data/prices.csv
keep: 2
"""


def _project(root: Path, specs: str = SPECS) -> Path:
    (root / "specs").mkdir(parents=True, exist_ok=True)
    (root / "data").mkdir(exist_ok=True)
    (root / "specs" / "snapshots.yaml").write_text(textwrap.dedent(specs))
    (root / "data" / "prices.csv").write_text("day,price\n1,10\n2,11\n")
    return root


class TestFilesProviderContract(ProviderContract):
    """Apply then plan is empty, apply twice is a no-op, destroy removes, a crash loses nothing recorded."""

    @pytest.fixture
    def contract_project(self, tmp_path):
        root = _project(tmp_path / "proj", SPECS + "---\nkind: DataSnapshot\nname: volumes\npath: data/volumes.csv\n")
        (root / "data" / "volumes.csv").write_text("day,volume\n1,500\n")
        return root

    @pytest.fixture
    def contract_providers(self):
        return {"files": FilesProvider()}

    @pytest.fixture
    def contract_plugins(self):
        return [plugin]


def test_a_changed_file_is_a_planned_update_and_old_versions_are_pruned(tmp_path):
    root = _project(tmp_path / "proj")
    harness = Harness(root, {"files": FilesProvider()}, plugins=[plugin])
    try:
        assert harness.apply().ok
        first = harness.store.get("datasnapshot.prices").outputs["sha256"]
        for n in range(3):
            (root / "data" / "prices.csv").write_text(f"day,price\n1,{20 + n}\n")
            plan = harness.plan()
            [change] = plan.pending()
            assert change.address == "datasnapshot.prices" and change.action == "update"
            assert harness.apply().ok
        recorded = harness.store.get("datasnapshot.prices").outputs
        assert recorded["sha256"] != first and recorded["versions"] == 2
        kept = json.loads((snapshot_dir(root, "prices") / "index.json").read_text())
        assert [v["sha256"] for v in kept][-1] == recorded["sha256"]
        assert len(list(snapshot_dir(root, "prices").glob("*.csv"))) == 2  # keep: 2
    finally:
        harness.close()


def test_bad_specs_name_the_file_line_and_field(tmp_path):
    root = _project(tmp_path / "proj", SPECS.replace("keep: 2", "keep: 0\nsource: prices"))
    result = run_cli(["validate"], providers={"files": FilesProvider()}, plugins=[plugin], cwd=root)
    assert result.exit_code == 1
    assert "specs/snapshots.yaml:4: keep" in result.output
    assert "Traceback" not in result.output


def test_the_command_lists_and_shows_snapshots(tmp_path):
    root = _project(tmp_path / "proj")
    providers = {"files": FilesProvider()}
    assert run_cli(["apply", "--auto-approve"], providers=providers, plugins=[plugin], cwd=root).exit_code == 0
    listed = run_cli(["snapshots", "list", "--json"], providers=providers, plugins=[plugin], cwd=root)
    assert listed.exit_code == 0, listed.output
    [row] = json.loads(listed.stdout)
    assert row["name"] == "prices" and row["bytes"] == len("day,price\n1,10\n2,11\n")
    shown = run_cli(["snapshots", "show", "price"], providers=providers, plugins=[plugin], cwd=root)
    assert shown.exit_code == 1 and "did you mean 'prices'" in shown.output
