"""The `trainer` block of a LightGBM Model: `params` are checked against LightGBM's own parameter names
and aliases (plugins/lightgbm/params.py), so `num_leavs: 31` fails `ml validate` at its YAML line with
"did you mean 'num_leaves'?". Common parameters are type-checked too; the rest LightGBM checks itself.
"""

from __future__ import annotations

import functools
from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, create_model, model_validator

from ml_framework.plugins.models.config import TrainerSettings

from .params import CANONICAL

__all__ = ["LightGBMSettings", "LightGBMParams", "MANAGED_PARAMS", "canonical_params"]

# Types of common parameters (by canonical name); aliases share them. None means "any value".
_TYPES: dict[str, Any] = {
    "num_iterations": (int, Field(default=None, ge=0)),
    "learning_rate": (float, Field(default=None, gt=0)),
    "num_leaves": (int, Field(default=None, ge=2, le=131072)),
    "max_depth": (int, None),
    "min_data_in_leaf": (int, Field(default=None, ge=0)),
    "min_sum_hessian_in_leaf": (float, Field(default=None, ge=0)),
    "bagging_fraction": (float, Field(default=None, gt=0, le=1)),
    "bagging_freq": (int, Field(default=None, ge=0)),
    "feature_fraction": (float, Field(default=None, gt=0, le=1)),
    "lambda_l1": (float, Field(default=None, ge=0)),
    "lambda_l2": (float, Field(default=None, ge=0)),
    "min_gain_to_split": (float, Field(default=None, ge=0)),
    "max_bin": (int, Field(default=None, gt=1)),
    "early_stopping_round": (int, Field(default=None, ge=0)),
    "seed": (int, None),
    "num_threads": (int, Field(default=None, ge=0)),
    "verbosity": (int, None),
    "boosting": (Literal["gbdt", "rf", "dart"], None),
    "is_unbalance": (bool, None),
    "scale_pos_weight": (float, Field(default=None, gt=0)),
    "deterministic": (bool, None),
    "force_row_wise": (bool, None),
    "force_col_wise": (bool, None),
    "extra_trees": (bool, None),
    "linear_tree": (bool, None),
    "first_metric_only": (bool, None),
    "max_cat_to_onehot": (int, Field(default=None, ge=1)),
    "cat_smooth": (float, Field(default=None, ge=0)),
    "cat_l2": (float, Field(default=None, ge=0)),
    "path_smooth": (float, Field(default=None, ge=0)),
}

# Parameters ml sets from the spec itself: giving them in params would contradict it.
MANAGED_PARAMS = {
    "task": "ml trains through the Python API",
    "data": "the training data comes from the Model's label and features",
    "valid": "the validation split comes from the Model's split",
    "input_model": "each version trains from scratch",
    "output_model": "models are saved to the BentoML model store",
    "label_column": "the label is the Model's label.column",
    "categorical_feature": "string columns are categorical; list others in trainer.categorical",
    "header": "the training data comes from the Model's label and features",
    "num_class": "the number of classes comes from the labels",
}


class _ParamsBase(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="after")
    def _one_name_per_parameter(self):
        seen: dict[str, str] = {}
        for name in self.model_fields_set:
            canonical = CANONICAL[name]
            if canonical in MANAGED_PARAMS:
                raise ValueError(f"{name!r} is set by ml: {MANAGED_PARAMS[canonical]}")
            if canonical in seen:
                raise ValueError(f"{seen[canonical]!r} and {name!r} are the same LightGBM parameter "
                                 f"({canonical}); give it once")
            seen[canonical] = name
        return self


def _field(canonical: str):
    kind = _TYPES.get(canonical)
    if kind is None:
        return (Optional[Any], None)
    annotation, info = kind
    return (Optional[annotation], info if info is not None else None)


@functools.lru_cache(maxsize=1)
def _params_model() -> type[BaseModel]:
    fields = {name: _field(canonical) for name, canonical in CANONICAL.items()}
    return create_model("LightGBMParams", __base__=_ParamsBase, **fields)


LightGBMParams = _params_model()


class LightGBMSettings(TrainerSettings):
    """``trainer: {backend: lightgbm, params: {...}, promote, data, categorical, slice_min_rows}``.

    ``params`` takes LightGBM's own names or aliases (``num_boost_round`` is ``num_iterations``,
    ``early_stopping_rounds`` is ``early_stopping_round``). Defaults ml adds unless given: the objective
    from the task, ``seed`` from ``split.seed``, ``deterministic``/``force_row_wise`` for reproducible
    runs, ``verbosity: -1``, ``num_iterations: 100`` and ``early_stopping_round: 20`` (0 disables it)
    on the validation split.
    """

    params: LightGBMParams = Field(default_factory=LightGBMParams)  # type: ignore[valid-type]

    def lightgbm_params(self) -> dict[str, Any]:
        return canonical_params(self.params.model_dump(exclude_unset=True))


def canonical_params(params: dict[str, Any]) -> dict[str, Any]:
    """Aliases replaced by LightGBM's canonical names."""
    return {CANONICAL.get(k, k): v for k, v in params.items()}

