"""Training the tabular MLP: seeded and deterministic on CPU, CUDA when present (and allowed).

Determinism: weights, dropout and batch order come from one seed inside ``torch.random.fork_rng`` (the
caller's global RNG state is left as it was), and ``torch.use_deterministic_algorithms(True)`` is on
for the duration of training (restored afterwards). Same data + same seed on CPU -> same weights ->
same metrics, bit for bit.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any, Callable

from ml_framework.plugins.models.provider import Trained

from .preprocess import fit_preprocessor, input_width, transform

__all__ = ["build_mlp", "train", "save", "MODEL_FILE", "SCHEMA_FILE", "pick_device"]

MODEL_FILE = "model.pt"  # the state dict
SCHEMA_FILE = "ml_model.json"  # architecture + preprocessing + features: what a predictor needs


def build_mlp(inputs: int, layers: list[int], outputs: int, dropout: float):
    from torch import nn

    modules: list[Any] = []
    width = inputs
    for hidden in layers:
        modules += [nn.Linear(width, hidden), nn.ReLU()]
        if dropout:
            modules.append(nn.Dropout(dropout))
        width = hidden
    modules.append(nn.Linear(width, outputs))
    return nn.Sequential(*modules)


def pick_device(setting: str) -> str:
    import torch

    from ml_framework.plugins.models.data import ModelDataError

    available = torch.cuda.is_available()
    if setting == "cuda" and not available:
        raise ModelDataError("trainer.params.device is cuda, but PyTorch sees no CUDA device",
                             hint="use device: auto (CUDA when present) or cpu")
    return "cuda" if available and setting in ("auto", "cuda") else "cpu"


def _outputs(task: str, classes) -> int:
    return len(classes) if task == "multiclass" else 1


def _loss(task: str):
    from torch import nn

    return {"binary": nn.BCEWithLogitsLoss, "multiclass": nn.CrossEntropyLoss, "regression": nn.MSELoss}[task]()


def _targets(task: str, y, scale):
    import numpy as np
    import torch

    if task == "multiclass":
        return torch.as_tensor(np.asarray(y), dtype=torch.long)
    values = np.asarray(y, dtype=np.float32)
    if task == "regression":
        values = (values - scale["mean"]) / scale["std"]
    return torch.as_tensor(values, dtype=torch.float32).reshape(-1, 1)


def _predict(model, X, task: str, scale, device: str, batch: int = 8192):
    import numpy as np
    import torch

    model.eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(X), batch):
            logits = model(X[start:start + batch].to(device))
            if task == "binary":
                out.append(torch.sigmoid(logits).reshape(-1).cpu().numpy())
            elif task == "multiclass":
                out.append(torch.softmax(logits, dim=1).cpu().numpy())
            else:
                out.append(logits.reshape(-1).cpu().numpy() * scale["std"] + scale["mean"])
    if not out:
        return np.zeros((0,))
    return np.concatenate(out).astype(np.float64)


def train(prepared, spec, params, *, progress: Callable[..., None] | None = None) -> Trained:
    import numpy as np
    import torch

    device = pick_device(params.device)
    if device == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # deterministic cuBLAS
    seed = spec.split.seed if params.seed is None else params.seed
    prep = fit_preprocessor(prepared.X_train, prepared.categorical)
    X_train = torch.as_tensor(transform(prepared.X_train, prep))
    X_valid = torch.as_tensor(transform(prepared.X_valid, prep))
    scale = {"mean": 0.0, "std": 1.0}
    if spec.task == "regression":
        y = np.asarray(prepared.y_train, dtype=np.float64)
        scale = {"mean": float(y.mean()), "std": float(y.std()) or 1.0}
    y_train = _targets(spec.task, prepared.y_train, scale)
    y_valid = _targets(spec.task, prepared.y_valid, scale)
    outputs = _outputs(spec.task, prepared.classes)
    was_deterministic = torch.are_deterministic_algorithms_enabled()
    threads = torch.get_num_threads()
    started = time.perf_counter()
    try:
        torch.use_deterministic_algorithms(True)
        if params.num_threads:
            torch.set_num_threads(params.num_threads)
        with torch.random.fork_rng(devices=[torch.cuda.current_device()] if device == "cuda" else []):
            torch.manual_seed(seed)
            model, info = _fit(X_train, y_train, X_valid, y_valid, spec.task, prep, params, outputs, device, seed,
                               progress)
    finally:
        torch.use_deterministic_algorithms(was_deterministic)
        torch.set_num_threads(threads)
    seconds = time.perf_counter() - started
    model = model.to("cpu")

    def predict(X):
        return _predict(model, torch.as_tensor(transform(X, prep)), spec.task, scale, "cpu")

    effective = dict(params.model_dump(), seed=seed, device=device)
    architecture = {"inputs": input_width(prep), "layers": list(params.layers), "outputs": outputs,
                    "dropout": params.dropout}
    info.update(device=device, architecture=architecture, preprocess=prep, target_scale=scale)
    return Trained(model=model, predict=predict, params=effective, seconds=seconds, info=info)


def _fit(X_train, y_train, X_valid, y_valid, task, prep, params, outputs, device, seed, progress):
    import torch

    model = build_mlp(input_width(prep), list(params.layers), outputs, params.dropout).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=params.learning_rate, weight_decay=params.weight_decay)
    loss_fn = _loss(task)
    order_rng = torch.Generator().manual_seed(seed)
    X_train, y_train = X_train.to(device), y_train.to(device)
    X_valid, y_valid = X_valid.to(device), y_valid.to(device)
    best_loss, best_state, best_epoch, stale = float("inf"), None, 0, 0
    epoch = 0
    for epoch in range(1, params.epochs + 1):
        model.train()
        order = torch.randperm(len(X_train), generator=order_rng).to(device)
        for start in range(0, len(order), params.batch_size):
            idx = order[start:start + params.batch_size]
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(X_train[idx]), y_train[idx])
            loss.backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            valid_loss = float(loss_fn(model(X_valid), y_valid))
        if progress is not None:
            progress(f"epoch {epoch}/{params.epochs}: validation loss {valid_loss:.4f}", epoch / params.epochs)
        if valid_loss < best_loss - 1e-7:
            best_loss, best_epoch, stale = valid_loss, epoch, 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            stale += 1
            if params.patience is not None and stale >= params.patience:
                break
    if params.patience is not None and best_state is not None:
        model.load_state_dict(best_state)
    return model, {"epochs_run": epoch, "best_epoch": best_epoch, "best_valid_loss": round(best_loss, 6)}


def save(name: str, trained: Trained, *, labels, metadata, project_dir=None) -> tuple[str, int]:
    import torch

    from ml_framework.plugins.models.artifacts import save_model
    from ml_framework.plugins.models.lineage import library_versions

    info = trained.info
    schema = {"flavor": "torch", **metadata, "architecture": info["architecture"], "preprocess": info["preprocess"],
              "target_scale": info["target_scale"]}

    def write(path_of) -> None:
        torch.save(trained.model.state_dict(), path_of(MODEL_FILE))
        with open(path_of(SCHEMA_FILE), "w", encoding="utf-8") as fh:
            json.dump(schema, fh, indent=2, sort_keys=True)

    versions = {"torch": library_versions("torch").get("torch", "")}
    return save_model(name, write, module="ml_framework.plugins.torch", framework="torch", versions=versions, labels=labels,
                      metadata=dict(metadata, flavor="torch", architecture=info["architecture"]), project_dir=project_dir)
