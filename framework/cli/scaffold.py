"""`ml init`: a new project with a project file, .gitignore and the starter files installed plugins
contribute (``Plugin(scaffold={"specs/features.yaml": "..."})``): the core knows no kind."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from ..errors import MLError

__all__ = ["scaffold"]

PROJECT_YAML = """\
# ml project file. Every key is optional.
name: {name}
specs: specs                         # where spec files live (any *.yaml below, except specs/env/)
state: sqlite:///.ml/state.db        # or postgresql+psycopg://user@host/db ; ML_STATE_URL overrides
plugins:
  disabled: []                       # plugin or backend names to switch off
  local: {{}}                          # name: "module:attr" of a plugin inside the project
backends: {{}}                         # each backend's project-level settings, e.g. feast: {{repo: feature_repo}}
"""

GITIGNORE = ".ml/\n"


def scaffold(directory: Path, plugins: Iterable = ()) -> list[Path]:
    """Write the project's starter files; ``plugins``: Plugin declarations whose ``scaffold`` files are added
    (the first plugin to claim a path wins)."""
    directory = Path(directory)
    files = {
        directory / "ml.yaml": PROJECT_YAML.format(name=directory.resolve().name),
        directory / ".gitignore": GITIGNORE,
    }
    for plugin in plugins:
        for rel, text in plugin.scaffold.items():
            files.setdefault(directory / rel, text)
    existing = [p for p in files if p.exists() and p.name != ".gitignore"]
    if existing:
        raise MLError(f"{existing[0]} already exists; `ml init` does not overwrite files")
    created = []
    for path, text in files.items():
        if path.exists():
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        created.append(path)
    return created
