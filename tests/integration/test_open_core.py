"""The open core, checked as users meet it:

* the example third-party plugin (examples/plugin-snapshots), installed by pip with its entry point as
  the only link to ml, adds a kind and a command that every core command treats like a built-in one;
* a project with its own `plugins/` and `framework/` packages (common folder names) plans and applies
  the whole example on the real backends: neither shadows ml's modules, and a project-local plugin
  living in that `plugins/` package still loads.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
ML = str(Path(sys.executable).with_name("ml"))


def _ml(cwd: Path, *args: str, env: dict | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    full = {**os.environ, "NO_COLOR": "1", **(env or {})}
    for name in ("ML_STATE_URL", "ML_DISABLE_PLUGINS"):
        full.pop(name, None)
    return subprocess.run([ML, *args], cwd=cwd, env=full, capture_output=True, text=True, timeout=timeout)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_the_example_plugin_installed_by_pip_adds_a_kind_and_a_command(tmp_path):
    site, source = tmp_path / "site", tmp_path / "plugin-snapshots"  # a copy: pip leaves build/ in the source
    shutil.copytree(REPO / "examples" / "plugin-snapshots", source, ignore=shutil.ignore_patterns("build", "*.egg-info"))
    install = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                              "--target", str(site), str(source)],
                             capture_output=True, text=True, timeout=300)
    assert install.returncode == 0, install.stderr
    env = {"PYTHONPATH": str(site)}
    project = tmp_path / "proj"
    (project / "specs").mkdir(parents=True)
    (project / "data").mkdir()
    (project / "data" / "prices.csv").write_text("day,price\n1,10\n")
    (project / "specs" / "snapshots.yaml").write_text("kind: DataSnapshot\nname: prices\npath: data/prices.csv\nkeep: 3\n")

    help_text = _ml(project, "--help", env=env)
    assert help_text.returncode == 0 and "snapshots" in help_text.stdout
    plugins = _ml(project, "plugins", env=env)
    assert "snapshots" in plugins.stdout and "DataSnapshot" in plugins.stdout and "files" in plugins.stdout

    valid = _ml(project, "validate", env=env)
    assert valid.returncode == 0, valid.stderr
    assert "1 DataSnapshot" in valid.stdout
    schema = json.loads(_ml(project, "schema", env=env).stdout)
    assert "DataSnapshot" in json.dumps(schema)
    graph = _ml(project, "graph", env=env)
    assert graph.returncode == 0 and "datasnapshot.prices" in graph.stdout

    plan = _ml(project, "plan", "--json", "data_snapshots.prices.keep=5", env=env)  # an override reaches it
    assert plan.returncode == 0, plan.stderr
    [change] = json.loads(plan.stdout)["changes"]
    assert change["address"] == "datasnapshot.prices" and change["action"] == "create"
    assert change["after"]["keep"] == 5

    bad = project / "specs" / "bad.yaml"
    bad.write_text("kind: DataSnapshot\nname: broken\npath: data/prices.csv\nkepe: 2\n")
    invalid = _ml(project, "validate", env=env)
    assert invalid.returncode == 1 and "specs/bad.yaml:4: kepe" in invalid.stderr and "did you mean 'keep'" in invalid.stderr
    bad.unlink()

    applied = _ml(project, "apply", "--auto-approve", env=env)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    listed = _ml(project, "snapshots", "list", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    assert [row["name"] for row in json.loads(listed.stdout)] == ["prices"]
    assert _ml(project, "plan", "--detailed-exitcode", env=env).returncode == 0

    # Without the package, specs of its kind are an error that says so; ml itself still runs.
    missing = _ml(project, "validate")
    assert missing.returncode == 1 and "unknown kind 'DataSnapshot'" in missing.stderr
    assert "Traceback" not in missing.stderr


LOCAL_PLUGIN = '''\
"""A project-local plugin living in the project's own `plugins` package."""
from ml_framework.contract import Command, Plugin

plugin = Plugin(name="notes", commands=(Command("notes", "plugins.notes_cli:app", "Project notes."),))
'''

LOCAL_CLI = '''\
import typer

app = typer.Typer()


@app.command()
def show():
    """Print the project's note."""
    typer.echo("notes from the project's own plugins package")
'''


def test_a_project_with_its_own_plugins_and_framework_packages_applies_the_example(tmp_path):
    root = tmp_path / "proj"
    shutil.copytree(REPO / "specs", root / "specs")
    (root / "feature_repo").mkdir()
    shutil.copy(REPO / "feature_repo" / "feature_store.yaml", root / "feature_repo" / "feature_store.yaml")
    subprocess.run([sys.executable, str(REPO / "scripts" / "generate_data.py"), "--out", str(root / "data"),
                    "--rows", "4000", "--end", "2024-07-01"], check=True, capture_output=True, timeout=300)
    # Folder names a project is likely to have; ml's old top-level names. Importing `framework` fails loudly.
    (root / "framework").mkdir()
    (root / "framework" / "__init__.py").write_text('raise ImportError("the project\'s framework package was imported")\n')
    (root / "plugins").mkdir()
    (root / "plugins" / "__init__.py").write_text('"""The project\'s own plugins."""\n')
    (root / "plugins" / "notes.py").write_text(LOCAL_PLUGIN)
    (root / "plugins" / "notes_cli.py").write_text(LOCAL_CLI)
    (root / "ml.yaml").write_text(textwrap.dedent("""\
        name: shadow-test
        plugins:
          local: {notes: "plugins.notes:plugin"}
        """))
    # 4,000 rows train weaker models than the example's 100k: no quality gates here, this test is about imports.
    args = (f"deployments.fraud-api.serving.port={_free_port()}", "models.fraud.gates=[]", "models.fraud_mlp.gates=[]")
    env = {"BENTOML_HOME": str(tmp_path / "bentoml"), "BENTOML_DO_NOT_TRACK": "True"}
    try:
        assert _ml(root, "validate", env=env).returncode == 0
        applied = _ml(root, "apply", "--auto-approve", *args, env=env, timeout=900)
        assert applied.returncode == 0, applied.stdout[-3000:] + applied.stderr[-3000:]
        assert "Traceback" not in applied.stdout + applied.stderr
        again = _ml(root, "plan", "--detailed-exitcode", *args, env=env)
        assert again.returncode == 0, again.stdout + again.stderr
        notes = _ml(root, "notes", "show", env=env)
        assert notes.returncode == 0 and "project's own plugins package" in notes.stdout, notes.stderr
        status = _ml(root, "status", "--json", env=env)
        assert status.returncode == 0 and json.loads(status.stdout)["deployment.fraud-api"]["ready"]
    finally:
        _ml(root, "destroy", "--auto-approve", *args, env=env, timeout=600)
