"""The torch flavour: a saved tabular MLP (``model.pt`` state dict + preprocessing) loaded for prediction."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping

__all__ = ["TorchFlavor", "flavor"]


class TorchFlavor:
    name = "torch"

    def load(self, folder: Path, schema: Mapping[str, Any]) -> Callable[[Any], Any]:
        import torch

        from .preprocess import transform
        from .train import _predict, build_mlp

        arch = schema["architecture"]
        model = build_mlp(arch["inputs"], arch["layers"], arch["outputs"], arch["dropout"])
        model.load_state_dict(torch.load(Path(folder) / "model.pt", map_location="cpu", weights_only=True))
        model.eval()

        def predict(frame):
            X = torch.as_tensor(transform(frame, schema["preprocess"]))
            return _predict(model, X, schema["task"], schema["target_scale"], "cpu")

        return predict

    def load_rows(self, folder: Path, schema: Mapping[str, Any]):
        return None  # no pandas-free path: serving uses load()


def flavor(services) -> TorchFlavor:
    return TorchFlavor()
