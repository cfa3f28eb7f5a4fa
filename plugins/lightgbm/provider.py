"""`LightGBMProvider`: the Model kind on LightGBM (see plugins/models/provider.py for the flow)."""

from __future__ import annotations

from typing import ClassVar

from ml_framework.plugins.models.provider import TrainerProvider, Trained

__all__ = ["LightGBMProvider"]


class LightGBMProvider(TrainerProvider):
    name: ClassVar[str] = "lightgbm"
    flavor: ClassVar[str] = "LightGBM"
    library: ClassVar[str] = "lightgbm"
    module: ClassVar[str] = "bentoml.lightgbm"

    def settings_model(self):
        from .config import LightGBMSettings

        return LightGBMSettings

    def fit(self, prepared, spec, settings, ctx) -> Trained:
        from .train import train

        return train(prepared, spec, settings, progress=ctx.progress)

    def save_artifact(self, name, trained, prepared, spec, *, labels, metadata, project_dir=None):
        from .train import save

        return save(name, trained, labels=labels, metadata=metadata, project_dir=project_dir)
