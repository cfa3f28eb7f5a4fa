"""Settings models: the project-level ``backends.feast`` block of ml.yaml and each kind's ``options``.

Only pydantic is imported here; the models are handed to the engine at validation time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "FeastSettings",
    "ObjectOptions",
    "FeatureViewOptions",
    "OPTIONS_BY_KIND",
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FeastSettings(_Strict):
    """``backends: {feast: {...}}`` in ml.yaml."""

    repo: str = "feature_repo"  # the Feast repository, relative to the project directory
    materialize: bool = True  # load online feature views into the online store on apply
    cache_dir: str = ".ml"  # fingerprint cache, relative to the project directory

    def repo_path(self, project_dir: Path) -> Path:
        path = Path(self.repo)
        return (path if path.is_absolute() else Path(project_dir) / path).resolve()

    def cache_path(self, project_dir: Path) -> Path:
        path = Path(self.cache_dir)
        return (path if path.is_absolute() else Path(project_dir) / path).resolve()


class ObjectOptions(_Strict):
    """Feast metadata for an entity, source or feature service. Metadata never forces replacement."""

    owner: str = ""
    tags: dict[str, str] = Field(default_factory=dict)


class FeatureViewOptions(ObjectOptions):
    # incremental: load rows newer than the last materialization; full: reload the whole source each apply
    materialization: Literal["incremental", "full"] = "incremental"


OPTIONS_BY_KIND: dict[str, type[BaseModel]] = {
    "Entity": ObjectOptions,
    "Source": ObjectOptions,
    "FeatureView": FeatureViewOptions,
    "FeatureService": ObjectOptions,
}
