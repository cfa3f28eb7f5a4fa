"""Model versions loaded for serving: one request's feature values -> a prediction, fast.

A flavour that predicts plain rows (``load_rows`` of the model-artifact seam, e.g. lightgbm: a numpy row
built directly from the request's values) is used that way, without a pandas DataFrame per request: the
same numbers the training pipeline's pandas path gives (tests check it), at a fraction of the cost.
Other flavours (torch) go through ``ml_framework.plugins.models.predictor`` (pandas).

Every artifact folder holds ``ml_model.json`` (written by the trainer backends): flavor, task, feature
columns in order, categories, feature references and the version label.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

__all__ = ["ServingModel", "load_serving_model", "FeatureKind"]

NUMBER, CATEGORY, TIMESTAMP = "number", "category", "timestamp"


@dataclass(frozen=True)
class FeatureKind:
    name: str
    kind: str  # number | category | timestamp (a request field of an on-demand view)
    categories: tuple[Any, ...] = ()

    def accepts(self, value: Any) -> str | None:
        """None if `value` fits this feature, else what is wrong (for a 422)."""
        if value is None:
            return None
        if self.kind == TIMESTAMP:
            return None if _iso_timestamp(value) else f"expected an ISO 8601 timestamp (text), got {_type_name(value)}" \
                + (f" {value!r}" if isinstance(value, str) else "")
        if self.kind == NUMBER:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                return f"expected a number, got {_type_name(value)}"
            if isinstance(value, float) and not math.isfinite(value):
                return "expected a finite number"
            return None
        if isinstance(value, (dict, list, bool)) or (
                isinstance(value, (int, float)) and all(isinstance(c, str) for c in self.categories)):
            return f"expected a category (text), got {_type_name(value)}"
        return None


def _iso_timestamp(value: Any) -> bool:
    from datetime import datetime

    if not isinstance(value, str):
        return False
    try:
        datetime.fromisoformat(value)  # 3.11: "2026-06-01T14:03:00Z", "+02:00", a date alone
    except ValueError:
        return False
    return True


def _type_name(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "text", bool: "a boolean", int: "a number",
            float: "a number"}.get(type(value), type(value).__name__)


@dataclass
class ServingModel:
    """One loaded model version."""

    tag: str  # BentoML tag, e.g. fraud:x4lcahhghsrt6ax4
    model: str  # Model spec name
    version: str  # v3
    flavor: str
    task: str
    features: list[str]
    kinds: dict[str, FeatureKind]
    feature_refs: list[str] = field(default_factory=list)
    classes: list[Any] | None = None  # multiclass: the class of each probability, in order
    # On-demand views the model reads: computed per request by the same function as the training frame
    # (features.derived.compute); each {"name", "computation", "features": [[feature, column]]}.
    derived: list[dict] = field(default_factory=list)
    # the flavour's explainer, when it has one: rows -> contributions (see ModelFlavor.load_explainer)
    _explain: Callable[[Any], Any] | None = None
    _encode: Callable[[Mapping[str, Any]], Any] | None = None
    _predict_batch: Callable[[Sequence[Any]], list] | None = None

    def encode(self, values: Mapping[str, Any]) -> Any:
        """The model's input for one request (features absent from `values` are missing; derived features
        are computed first when absent)."""
        if self.derived and any(c not in values for c in self.derived_columns):
            values = self.with_derived(values)
        return self._encode(values)

    @property
    def derived_columns(self) -> list[str]:
        return [column for d in self.derived for _, column in d["features"]]

    def derived_inputs(self) -> tuple[list[str], list[str], dict[str, str]]:
        """(view refs the derived features read, request fields they read, input feature name -> type)."""
        cached = getattr(self, "_inputs_cache", None)
        if cached is not None:
            return cached
        from ml_framework.plugins.features.expressions import compile_expression

        refs, fields, types = [], [], {}
        for d in self.derived:
            inputs = d["computation"]["inputs"]
            for feature, _ in d["features"]:
                expr = d["computation"]["features"][feature].get("expr")
                for name in (compile_expression(expr, inputs).inputs if expr else tuple(inputs)):
                    view, dot, short = name.partition(".")
                    if dot and f"{view}:{short}" not in refs:
                        refs.append(f"{view}:{short}")
                    elif not dot and name not in fields:
                        fields.append(name)
                    types.setdefault(short if dot else name, inputs[name])
        self._inputs_cache = (refs, fields, types)
        return self._inputs_cache

    def with_derived(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """``values`` with the derived features computed from them (raises DerivedFeatureError)."""
        from ml_framework.plugins.features.derived import compute_row

        out = dict(values)
        for d in self.derived:
            computed = compute_row(values, d["computation"])
            for feature, column in d["features"]:
                out[column] = computed[feature]
        return out

    def predict_batch(self, items: Sequence[Any]) -> list:
        """Predictions for encoded inputs: floats (binary: P(1); regression) or lists (multiclass)."""
        return self._predict_batch(items)

    def predict(self, values: Mapping[str, Any]) -> Any:
        return self.predict_batch([self.encode(values)])[0]

    @property
    def explains(self) -> bool:
        return self._explain is not None

    def explain(self, item: Any, values: Mapping[str, Any], prediction: Any, top_k: int) -> dict[str, Any]:
        """The ``top_k`` largest contributions to this prediction's raw output (``item``: the encoded row),
        named by feature with the value used; ``base`` + every contribution = ``raw`` (``rest``: the sum of
        those not listed)."""
        found = self._explain([item])[0]
        if getattr(found, "ndim", 1) == 2:  # multiclass: the predicted class's raw score
            index = max(range(len(prediction)), key=prediction.__getitem__) if isinstance(prediction, list) else 0
            found = found[index]
            output = f"raw score of class {self.classes[index] if self.classes else index}"
        else:
            output = {"binary": "log-odds"}.get(self.task, "value")
        contributions = [float(c) for c in found[:-1]]
        base = float(found[-1])
        order = sorted(range(len(contributions)), key=lambda i: -abs(contributions[i]))
        top = order[:max(0, top_k)]
        reconstructed = base + sum(contributions)
        raw = _raw_output(self.task, prediction)
        raw = reconstructed if raw is None else raw
        # exact explainers (LightGBM's tree contributions) leave 0 here; integrated gradients the integral's error
        return {"output": output, "base": base, "raw": raw,
                "top": [{"feature": self.features[i], "value": values.get(self.features[i]),
                         "contribution": contributions[i]} for i in top],
                "rest": sum(contributions[i] for i in order[len(top):]),
                "approximation": raw - reconstructed}


def _raw_output(task: str, prediction: Any) -> float | None:
    """The raw output behind a prediction where it can be recovered: log-odds of a binary probability, the
    value of a regression; None for multiclass (probabilities lose their logits' common offset)."""
    if task == "binary" and isinstance(prediction, (int, float)):
        p = min(max(float(prediction), 1e-15), 1 - 1e-15)
        return math.log(p / (1 - p))
    if task == "regression" and isinstance(prediction, (int, float)):
        return float(prediction)
    return None


def _schema(folder: Path) -> dict[str, Any]:
    path = folder / "ml_model.json"
    if not path.is_file():
        raise FileNotFoundError(f"{folder} holds no ml_model.json: not a model saved by ml")
    return json.loads(path.read_text(encoding="utf-8"))


def _kinds(schema: Mapping[str, Any]) -> dict[str, FeatureKind]:
    categorical = {c: tuple(v) for c, v in (schema.get("categorical") or {}).items()}
    return {f: FeatureKind(f, CATEGORY, categorical[f]) if f in categorical else FeatureKind(f, NUMBER)
            for f in schema["features"]}


def _outputs(task: str) -> Callable[[Any], list]:
    if task == "multiclass":
        return lambda raw: [[float(v) for v in row] for row in raw]
    return lambda raw: [float(v) for v in raw]


def load_serving_model(folder: str | Path, tag: str | None = None) -> ServingModel:
    """Load the model version saved in ``folder`` (a BentoML model store entry)."""
    folder = Path(folder)
    schema = _schema(folder)
    flavor = schema.get("flavor")
    features = list(schema["features"])
    kinds = _kinds(schema)
    address = str(schema.get("address") or "")
    model = address.split(".", 1)[1] if address.startswith("model.") else folder.parent.name
    common = dict(tag=tag or f"{folder.parent.name}:{folder.name}", model=model,
                  version=str(schema.get("ml_version") or "?"), flavor=str(flavor), task=str(schema["task"]),
                  features=features, kinds=kinds, feature_refs=list(schema.get("feature_refs") or []),
                  classes=list(schema["classes"]) if schema.get("task") == "multiclass" and schema.get("classes") else None,
                  derived=list(schema.get("derived") or []))
    fast = _fast(folder, schema)
    encode, predict = fast or _generic(folder)
    return ServingModel(**common, _encode=encode, _predict_batch=predict, _explain=_explainer(folder, schema))


def _explainer(folder: Path, schema: Mapping[str, Any]):
    """The flavour's explainer over rows as this model encodes them (its fast path's rows, else the values by
    feature name), or None (not every flavour explains)."""
    from ml_framework.plugins.models.flavors import flavor_loader

    loader = flavor_loader(str(schema.get("flavor")))
    load = getattr(loader, "load_explainer", None)
    if load is None:
        return None
    loaded: list = []

    def explain(items):  # built on the first explanation: loading a version (and serving) never pays for it
        if not loaded:
            loaded.append(load(folder, schema))
        return loaded[0](items)

    return explain


def _fast(folder: Path, schema: Mapping[str, Any]):
    """The flavour's own row predictor (the model-artifact seam's optional fast path), if it has one."""
    from ml_framework.plugins.models.flavors import flavor_loader

    fast = flavor_loader(str(schema.get("flavor"))).load_rows(folder, schema)
    if fast is None:
        return None
    encode, predict_rows = fast
    convert = _outputs(schema["task"])
    return encode, lambda items: convert(predict_rows(items))


def _generic(folder: Path):
    from ml_framework.plugins.models.predictor import load_predictor

    predictor = load_predictor(folder)
    convert = _outputs(predictor.task)

    def encode(values: Mapping[str, Any]) -> dict[str, Any]:
        return {name: values.get(name) for name in predictor.features}

    def predict(items: Sequence[dict[str, Any]]) -> list:
        import numpy as np

        return convert(np.asarray(predictor.predict(list(items))))

    return encode, predict
