"""The project: where specs live, which state store to use, plugin settings (the file `ml.yaml`).

Every key is optional; a directory with only `specs/` is a project with embedded defaults.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import Location, SpecError

__all__ = ["Project", "PROJECT_FILE", "STATE_URL_ENV", "DEFAULT_STATE_URL"]

PROJECT_FILE = "ml.yaml"
STATE_URL_ENV = "ML_STATE_URL"
DEFAULT_STATE_URL = "sqlite:///.ml/state.db"
_KEYS = {"name", "specs", "state", "plugins", "backends", "policies", "pricing"}


@dataclass
class Project:
    root: Path
    spec_dir: Path
    state_url: str = DEFAULT_STATE_URL
    name: str | None = None
    disabled_plugins: list[str] = field(default_factory=list)
    local_plugins: dict[str, str] = field(default_factory=dict)
    backends: dict[str, dict[str, Any]] = field(default_factory=dict)
    policy_dir: Path | None = None  # policy rules (`policies:` in ml.yaml; default <root>/policies)
    pricing: Any = None  # framework.cost.Pricing from ml.yaml's `pricing:`, for costs in plans

    @classmethod
    def load(cls, root: Path | None = None, *, spec_dir: Path | None = None) -> "Project":
        root = (root or _find_root(Path.cwd())).resolve()
        data = _read_project_file(root / PROJECT_FILE)
        specs = spec_dir if spec_dir is not None else root / str(data.get("specs", "specs"))
        plugins = data.get("plugins") or {}
        return cls(
            root=root,
            spec_dir=Path(specs),
            state_url=os.environ.get(STATE_URL_ENV) or str(data.get("state", DEFAULT_STATE_URL)),
            name=data.get("name"),
            disabled_plugins=list(plugins.get("disabled") or []),
            local_plugins=dict(plugins.get("local") or {}),
            backends=dict(data.get("backends") or {}),
            policy_dir=root / str(data.get("policies", "policies")),
            pricing=data.get("_pricing"),
        )

    @property
    def policies(self) -> Path:
        return self.policy_dir if self.policy_dir is not None else self.root / "policies"

    def registry(self):
        from .plugin_registry import PluginRegistry

        return PluginRegistry(disabled=self.disabled_plugins, project_dir=self.root, backend_settings=self.backends,
                              local=self.local_plugins)

    def open_state(self):
        from .state import open_state

        return open_state(self.state_url, project_dir=self.root)


def _find_root(start: Path) -> Path:
    for folder in (start, *start.parents):
        if (folder / PROJECT_FILE).is_file():
            return folder
    return start


def _read_project_file(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    from .spec.loader import load_yaml_documents

    docs = load_yaml_documents(path, path.name)
    data = docs[0].data if docs else {}
    for key in data:
        if key not in _KEYS:
            from .errors import did_you_mean

            line = docs[0].locations.get((key,))
            raise SpecError("unknown setting", location=Location(path.name, line), field=key,
                            hint=did_you_mean(key, _KEYS) or f"known: {', '.join(sorted(_KEYS))}")
    for key, kind in (("plugins", dict), ("backends", dict), ("specs", str), ("state", str), ("policies", str)):
        if key in data and not isinstance(data[key], kind):
            raise SpecError(f"expected a {kind.__name__}", location=Location(path.name, docs[0].locations.get((key,))),
                            field=key)
    if "pricing" in data:
        from .cost import parse_pricing

        data["_pricing"] = parse_pricing(data["pricing"], path.name, docs[0].locations)
    return data
