"""`TorchProvider`: the Model kind as a PyTorch tabular MLP (see plugins/models/provider.py for the flow)."""

from __future__ import annotations

from typing import ClassVar

from ml_framework.plugins.models.provider import TrainerProvider, Trained

__all__ = ["TorchProvider"]


class TorchProvider(TrainerProvider):
    name: ClassVar[str] = "torch"
    flavor: ClassVar[str] = "PyTorch"
    library: ClassVar[str] = "torch"
    module: ClassVar[str] = "ml_framework.plugins.torch"

    def settings_model(self):
        from .config import TorchSettings

        return TorchSettings

    def fit(self, prepared, spec, settings, ctx) -> Trained:
        from .train import train

        return train(prepared, spec, settings.params, progress=ctx.progress)

    def save_artifact(self, name, trained, prepared, spec, *, labels, metadata, project_dir=None):
        from .train import save

        return save(name, trained, labels=labels, metadata=metadata, project_dir=project_dir)
