"""The torch flavour: a saved tabular MLP (``model.pt`` state dict + preprocessing) loaded for prediction."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping

__all__ = ["TorchFlavor", "flavor", "IG_STEPS"]

IG_STEPS = 64  # integration points of an explanation (cost: that many forward and backward passes per row)


class TorchFlavor:
    name = "torch"

    def load(self, folder: Path, schema: Mapping[str, Any]) -> Callable[[Any], Any]:
        import torch

        from .preprocess import transform
        from .train import _predict

        model = _load_model(folder, schema)

        def predict(frame):
            X = torch.as_tensor(transform(frame, schema["preprocess"]))
            return _predict(model, X, schema["task"], schema["target_scale"], "cpu")

        return predict

    def load_rows(self, folder: Path, schema: Mapping[str, Any]):
        return None  # no pandas-free path: serving uses load()

    def load_explainer(self, folder: Path, schema: Mapping[str, Any], *, steps: int = IG_STEPS):
        """``explain(items) -> array (rows, [classes,] features + 1)``: integrated gradients (Captum) of the raw
        output — log-odds (binary), each class's logit (multiclass), the value (regression) — from a baseline
        of every numeric feature at its training mean and no category, summed over a categorical feature's
        one-hot inputs; the baseline's output last. ``items``: request values by feature name (this
        flavour's serving encoding). Contributions and base add up to the raw output up to the integral's
        approximation (``steps`` points; reported with each explanation as ``approximation``: ~0.1-1 % of the output on a small MLP). Costs ``steps`` forward
        and backward passes per row (per class, multiclass)."""
        import numpy as np
        import pandas as pd
        import torch
        from captum.attr import IntegratedGradients

        from .preprocess import transform

        model = _load_model(folder, schema)
        prep, features, task = schema["preprocess"], list(schema["features"]), schema["task"]
        scale = schema.get("target_scale") or {"mean": 0.0, "std": 1.0}
        blocks = []  # (feature index, first input column, width)
        start = 0
        for column in prep["columns"]:
            width = 1 if column in prep["numeric"] else len(prep["categorical"][column])
            blocks.append((features.index(column), start, width))
            start += width

        def raw(x):
            out = model(x)
            if task == "binary":
                return out.reshape(-1)
            if task == "regression":
                return out.reshape(-1) * float(scale["std"]) + float(scale["mean"])
            return out

        ig = IntegratedGradients(raw)

        def per_feature(attributions, base):
            out = np.zeros((attributions.shape[0], len(features) + 1))
            for index, first, width in blocks:
                out[:, index] += attributions[:, first:first + width].sum(axis=1)
            out[:, -1] = base
            return out

        def explain(items):
            frame = pd.DataFrame([{f: item.get(f) for f in features} for item in items], columns=features)
            X = torch.as_tensor(transform(frame, prep))
            baseline = torch.zeros_like(X)
            if task != "multiclass":
                attributions = ig.attribute(X, baselines=baseline, n_steps=steps).detach().numpy()
                with torch.no_grad():
                    base = raw(baseline).numpy()
                return per_feature(attributions, base)
            with torch.no_grad():
                base = raw(baseline).numpy()
            return np.stack([per_feature(ig.attribute(X, baselines=baseline, target=k, n_steps=steps).detach().numpy(),
                                         base[:, k]) for k in range(base.shape[1])], axis=1)

        return explain


def _load_model(folder: Path, schema: Mapping[str, Any]):
    """The saved MLP, in eval mode. Built under a forked RNG: creating its layers draws initial weights,
    and loading a model (say, to explain it right after training) must not move the global torch RNG."""
    import torch

    from .train import build_mlp

    arch = schema["architecture"]
    with torch.random.fork_rng(devices=[]):
        model = build_mlp(arch["inputs"], arch["layers"], arch["outputs"], arch["dropout"])
    model.load_state_dict(torch.load(Path(folder) / "model.pt", map_location="cpu", weights_only=True))
    model.eval()
    return model


def flavor(services) -> TorchFlavor:
    return TorchFlavor()
