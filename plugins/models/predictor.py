"""Load a saved model version back as a predict function — for serving and batch scoring.

    from ml_framework.plugins.models.predictor import load_predictor
    predictor = load_predictor("fraud:cg37omhghka4uax4")      # a BentoML tag (or an artifact folder)
    scores = predictor.predict(frame)                          # a pandas DataFrame with the features

Every artifact written by a trainer backend holds ``ml_model.json``: the flavor, the task, the feature
columns in order, the categories of categorical columns and (multiclass) the class values, so a
predictor encodes a raw frame exactly as training did. Binary: P(label == 1); multiclass: an (n, k)
matrix of class probabilities; regression: the predicted value.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

__all__ = ["Predictor", "load_predictor"]


@dataclass
class Predictor:
    tag: str
    flavor: str
    task: str
    features: list[str]
    schema: dict[str, Any]
    _predict: Callable[[Any], Any]

    def predict(self, frame):
        """Scores for the rows of ``frame`` (a DataFrame or a list of dicts with the feature columns)."""
        import pandas as pd

        if not isinstance(frame, pd.DataFrame):
            frame = pd.DataFrame(list(frame))
        missing = [c for c in self.features if c not in frame.columns]
        if missing:
            raise ValueError(f"{self.tag}: input lacks feature columns {missing}")
        return self._predict(frame)


def _folder(ref: str | Path, project_dir=None) -> tuple[str, Path]:
    path = Path(ref)
    if path.is_dir():
        return path.name, path
    from .artifacts import artifact_dir

    folder = artifact_dir(str(ref), project_dir)
    if not (folder / "ml_model.json").is_file():
        raise FileNotFoundError(f"no model artifact for {ref} in {folder.parent.parent} (the project's BentoML home)")
    return str(ref), folder


def load_predictor(ref: str | Path, project_dir: str | Path | None = None) -> Predictor:
    """``ref``: a BentoML tag (in the store of the project at ``project_dir``) or an artifact folder."""
    tag, folder = _folder(ref, project_dir)
    schema = json.loads((folder / "ml_model.json").read_text(encoding="utf-8"))
    flavor = schema["flavor"]
    features = list(schema["features"])
    from .flavors import flavor_loader

    try:
        loader = flavor_loader(flavor)
    except ValueError as exc:
        raise ValueError(f"{tag}: {exc}") from None
    predict = loader.load(folder, schema)
    return Predictor(tag=tag, flavor=flavor, task=schema["task"], features=features, schema=schema, _predict=predict)
