"""Import hygiene: the CLI and the engine never import a heavy backend library unless a resource of that
backend is actually handled. `ml --help` and `ml validate` of a project on a local plugin stay light.

Each check runs in a fresh interpreter (this test process may already hold those modules) and reads
`sys.modules` at exit. No timing is asserted here: see benchmarks/bench_cli_startup.py for figures.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

HEAVY = ("feast", "bentoml", "torch", "lightgbm", "alibi_detect", "pandas", "sklearn")
ROOT = Path(__file__).resolve().parents[2]

# Runs the real console-script entry point in-process and dumps sys.modules to a file at exit
# (stdout belongs to the CLI). argv: <modules file> <ml arguments...>
CLI_WRAPPER = textwrap.dedent("""\
    import atexit, json, sys
    out = sys.argv[1]
    atexit.register(lambda: open(out, "w").write(json.dumps(sorted(sys.modules))))
    sys.argv = ["ml"] + sys.argv[2:]
    import ml_framework.cli.main
    ml_framework.cli.main.run()
""")

SPECS = textwrap.dedent("""\
    kind: Entity
    name: customer
    join_keys: [customer_id]
    backend: memory
    ---
    kind: Source
    name: events
    path: data/events.parquet
    timestamp_field: event_ts
    columns:
      amount: {dtype: float64, checks: {ge: 0}}
    backend: memory
    ---
    kind: FeatureView
    name: customer_stats
    entities: [customer]
    source: events
    ttl: 7d
    features:
      amount_sum: {dtype: float64}
    backend: memory
    ---
    kind: Model
    name: fraud
    task: binary
    label: {source: events, column: is_fraud}
    features: ["customer_stats:amount_sum"]
    trainer: {backend: memory, params: {num_leaves: 31}}
""")


def heavy_in(modules) -> list[str]:
    return sorted(m for m in modules if m.split(".")[0] in HEAVY)


def run_cli(tmp_path: Path, *args: str, cwd: Path | None = None) -> tuple[subprocess.CompletedProcess, list[str]]:
    out = tmp_path / "modules.json"
    proc = subprocess.run([sys.executable, "-c", CLI_WRAPPER, str(out), *args], cwd=cwd or tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert out.exists(), f"the CLI did not reach exit normally: {proc.stderr}"
    return proc, json.loads(out.read_text())


@pytest.fixture
def memory_project(tmp_path: Path) -> Path:
    project = tmp_path / "project"
    (project / "specs").mkdir(parents=True)
    (project / "specs" / "all.yaml").write_text(SPECS)
    (project / "ml.yaml").write_text('plugins:\n  local:\n    memory: "memplugin:provider"\n')
    (project / "memplugin.py").write_text(
        "from ml_framework.testing import InMemoryProvider\n\nprovider = InMemoryProvider()\n")
    return project


def test_import_cli_module_is_light(tmp_path):
    code = "import json, sys, ml_framework.cli.main; print(json.dumps(sorted(sys.modules)))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert heavy_in(json.loads(proc.stdout)) == []


def test_help_imports_no_heavy_library(tmp_path):
    proc, modules = run_cli(tmp_path, "--help")
    assert proc.returncode == 0, proc.stderr
    assert "validate" in proc.stdout and "plan" in proc.stdout
    assert heavy_in(modules) == []
    # --help does not even load the engine: no spec loading, no state store.
    assert "ml_framework.operations" not in modules
    assert "sqlalchemy" not in modules


def test_validate_with_local_plugin_imports_no_heavy_library(tmp_path, memory_project):
    proc, modules = run_cli(tmp_path, "validate", "specs", cwd=memory_project)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "specs are valid: 4 resources" in proc.stdout
    assert "memplugin" in modules  # the local plugin did load: phase-2 validation ran
    assert heavy_in(modules) == []
    assert "sqlalchemy" not in modules  # validate never opens the state store


def test_every_framework_module_imports_without_heavy_libraries(tmp_path):
    """Import each module of framework/ (ml_framework.testing excepted) in one interpreter, in turn, and
    name the first module after whose import a heavy library appeared."""
    code = textwrap.dedent("""\
        import importlib, json, pkgutil, sys
        import ml_framework
        HEAVY = %r
        names = sorted(m.name for m in pkgutil.walk_packages(ml_framework.__path__, "ml_framework.")
                       if not (m.name == "ml_framework.testing" or m.name.startswith("ml_framework.testing.")))
        culprits = {}
        for name in names:
            importlib.import_module(name)
            heavy = sorted(m for m in sys.modules if m.split(".")[0] in HEAVY)
            if heavy and not culprits:
                culprits[name] = heavy
        print(json.dumps({"imported": names, "culprits": culprits}))
    """) % (HEAVY,)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert "ml_framework.cli.main" in result["imported"] and "ml_framework.state.sql" in result["imported"]
    assert result["culprits"] == {}, f"heavy library imported by {result['culprits']}"
