"""LightGBM training: effective parameters, `lightgbm.train` with early stopping on the validation split,
and saving the booster to BentoML's model store in the layout `bentoml.lightgbm.load_model` reads."""

from __future__ import annotations

import json
import time
from typing import Any, Callable

from ml_framework.plugins.models.metrics import DEFAULT_METRICS
from ml_framework.plugins.models.provider import Trained

__all__ = ["effective_params", "train", "save", "MODEL_FILE", "SCHEMA_FILE"]

MODEL_FILE = "saved_model.ubj"  # bentoml.lightgbm's file name (LightGBM's text format inside)
SCHEMA_FILE = "ml_model.json"  # features, categories, classes: what a predictor needs besides the booster
DEFAULT_ROUNDS = 100
DEFAULT_EARLY_STOPPING = 20

_OBJECTIVE = {"binary": "binary", "multiclass": "multiclass", "regression": "regression"}
_METRIC = {
    ("binary", "auc"): "auc", ("binary", "logloss"): "binary_logloss", ("binary", "accuracy"): "binary_error",
    ("multiclass", "logloss"): "multi_logloss", ("multiclass", "accuracy"): "multi_error",
    ("regression", "rmse"): "rmse", ("regression", "mae"): "l1", ("regression", "r2"): "l2",
}
_FALLBACK_METRIC = {"binary": "binary_logloss", "multiclass": "multi_logloss", "regression": "l2"}


def effective_params(settings, spec, n_classes: int | None = None) -> tuple[dict[str, Any], int, int]:
    """(params for lightgbm.train, num_boost_round, early_stopping_round) with ml's defaults filled in."""
    params = settings.lightgbm_params()
    rounds = params.pop("num_iterations", None)
    rounds = DEFAULT_ROUNDS if rounds is None else int(rounds)
    early = params.pop("early_stopping_round", None)
    early = DEFAULT_EARLY_STOPPING if early is None else int(early)
    params.setdefault("objective", _OBJECTIVE[spec.task])
    if spec.task == "multiclass":
        params["num_class"] = int(n_classes or 2)
    primary = (spec.metrics or DEFAULT_METRICS[spec.task])[0]
    params.setdefault("metric", _METRIC.get((spec.task, primary), _FALLBACK_METRIC[spec.task]))
    params.setdefault("seed", spec.split.seed)
    params.setdefault("deterministic", True)
    if not params.get("force_col_wise"):
        params.setdefault("force_row_wise", True)
    params.setdefault("verbosity", -1)
    return params, rounds, early


def _progress_callback(progress: Callable[[str, float | None], None], rounds: int):
    every = max(1, rounds // 5)

    def callback(env) -> None:
        done = env.iteration + 1
        if done % every == 0:
            scores = ", ".join(f"{name} {value:.4f}" for _, name, value, _ in env.evaluation_result_list or [])
            progress(f"iteration {done}/{rounds}" + (f": {scores}" if scores else ""), done / rounds)

    callback.order = 40  # after early stopping's bookkeeping
    return callback


def train(prepared, spec, settings, *, progress: Callable[..., None] | None = None) -> Trained:
    import lightgbm as lgb

    n_classes = len(prepared.classes) if prepared.classes else None
    params, rounds, early = effective_params(settings, spec, n_classes)
    train_set = lgb.Dataset(prepared.X_train, label=prepared.y_train, free_raw_data=True)
    valid_set = lgb.Dataset(prepared.X_valid, label=prepared.y_valid, reference=train_set)
    callbacks = []
    if progress is not None:
        callbacks.append(_progress_callback(progress, rounds))
    if early:
        callbacks.append(lgb.early_stopping(early, first_metric_only=True, verbose=False))
    started = time.perf_counter()
    booster = lgb.train(params, train_set, num_boost_round=rounds, valid_sets=[valid_set], valid_names=["valid"],
                        callbacks=callbacks)
    seconds = time.perf_counter() - started
    best = booster.best_iteration or booster.current_iteration()

    def predict(X):
        return booster.predict(X, num_iteration=best)

    info = {"best_iteration": int(best), "iterations_run": int(booster.current_iteration()),
            "early_stopping_round": early, "num_boost_round": rounds}
    return Trained(model=booster, predict=predict, params=dict(params, num_iterations=rounds,
                                                               early_stopping_round=early),
                   seconds=seconds, info=info)


def save(name: str, trained: Trained, *, labels, metadata, project_dir=None) -> tuple[str, int]:
    from ml_framework.plugins.models.artifacts import save_model
    from ml_framework.plugins.models.lineage import library_versions

    booster = trained.model
    best = trained.info.get("best_iteration")

    def write(path_of) -> None:
        booster.save_model(path_of(MODEL_FILE), num_iteration=best)
        with open(path_of(SCHEMA_FILE), "w", encoding="utf-8") as fh:
            json.dump({"flavor": "lightgbm", **metadata, "best_iteration": best}, fh, indent=2, sort_keys=True)

    versions = {"lightgbm": library_versions("lightgbm").get("lightgbm", "")}
    return save_model(name, write, module="bentoml.lightgbm", framework="lightgbm", versions=versions,
                      labels=labels, metadata=dict(metadata, flavor="lightgbm", best_iteration=best),
                      signatures={"predict": {"batchable": False}}, project_dir=project_dir)
