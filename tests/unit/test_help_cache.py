"""`ml --help` from the help cache: the same text as rendering it, and a miss whenever what it depends
on changes (here: the disabled plugins and the project file)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ML = str(Path(sys.executable).with_name("ml"))


def _help(cwd: Path, cache: Path, **env: str) -> str:
    full = {k: v for k, v in os.environ.items() if k not in ("ML_DISABLE_PLUGINS", "ML_HELP_CACHE")}
    full.update({"XDG_CACHE_HOME": str(cache), "NO_COLOR": "1", "COLUMNS": "100", **env})
    proc = subprocess.run([ML, "--help"], cwd=cwd, env=full, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_help_is_cached_and_invalidated_by_what_it_depends_on(tmp_path):
    cache, project = tmp_path / "cache", tmp_path / "proj"
    project.mkdir()
    rendered = _help(project, cache)
    assert "models" in rendered and "monitor" in rendered  # commands contributed by plugins
    [stored] = list((cache / "ml").glob("help-*.json"))
    assert json.loads(stored.read_text())["text"] == rendered

    data = json.loads(stored.read_text())
    stored.write_text(json.dumps({**data, "text": "SENTINEL from the cache\n"}))
    assert _help(project, cache) == "SENTINEL from the cache\n"  # a hit: nothing was rendered

    without_models = _help(project, cache, ML_DISABLE_PLUGINS="models")  # another environment: a miss
    assert "SENTINEL" not in without_models and "The model registry" not in without_models

    (project / "ml.yaml").write_text("name: p\n")  # a project file appears: another key, rendered again
    assert "SENTINEL" not in _help(project, cache)
    assert _help(project, cache, ML_HELP_CACHE="0") == rendered  # the cache off: the same text, rendered
