"""Computing an on-demand view's features: one function for every path — a training frame, a batch, a
request (a frame of one row), and Feast's own on-demand transformation (its UDF calls this too) — so
training and serving cannot compute a feature differently.

A view's *definition* is plain data (JSON-safe), made once from the spec by :func:`definition`::

    {"name": "ratios",
     "inputs": {"amount": "number", "txn_stats.amount_mean_7d": "number"},   # name -> expression type
     "features": {"amount_vs_mean": {"expr": "...", "dtype": "float64", "fill": null}}}
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Mapping

from ml_framework.errors import MLError

__all__ = ["definition", "compute", "compute_row", "DerivedFeatureError"]

_NUMPY_DTYPES = {"float32": "float32", "float64": "float64", "int32": "Int32", "int64": "Int64", "bool": "boolean",
                 "string": "string"}


class DerivedFeatureError(MLError):
    """A derived feature could not be computed from the inputs given (the message names it)."""

    def __init__(self, feature: str, message: str):
        self.feature = feature
        super().__init__(f"derived feature {feature!r}: {message}")


def definition(view, specs: Mapping[str, Any], project_dir=None) -> dict[str, Any]:
    """The definition of an OnDemandFeatureView spec (``view``); ``specs``: the specs of the views it reads
    by address (``featureview.NAME``), as typed spec objects or their JSON forms. A feature computed by a
    Python function carries the function's file (its source and digest): the definition is all a
    training run, a service or Feast needs, wherever it runs (``project_dir`` locates the file)."""
    from .expressions import dtype_type

    inputs = {name: dtype_type(dtype) for name, dtype in view.request.items()}
    for name in view.views:
        source = specs[f"featureview.{name}"]
        features = source.features if hasattr(source, "features") else source["features"]
        for feature, spec in features.items():
            inputs[f"{name}.{feature}"] = dtype_type(spec.dtype if hasattr(spec, "dtype") else spec["dtype"])
    features = {}
    for n, f in view.features.items():
        entry = {"dtype": f.dtype, "fill": f.fill}
        if f.expr is not None:
            entry["expr"] = f.expr
        else:
            entry["function"] = function_source(f.function, project_dir, view.name, n)
        features[n] = entry
    return {"name": view.name, "inputs": inputs, "features": features}


def function_source(reference: str, project_dir, view: str, feature: str) -> dict[str, str]:
    """``file.py:name`` of the project: {"path", "name", "source", "digest"}; MLError when the file or the
    function is missing (said at plan time)."""
    import ast
    import hashlib
    from pathlib import Path

    path, _, name = reference.rpartition(":")
    if project_dir is None:
        raise DerivedFeatureError(feature, f"function {reference}: the project directory is needed to read it")
    file = Path(project_dir) / path
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise DerivedFeatureError(feature, f"function {reference}: cannot read {path} ({exc.strerror})") from None
    try:
        tree = ast.parse(text, filename=path)
    except SyntaxError as exc:
        raise DerivedFeatureError(feature, f"function {reference}: {path}:{exc.lineno}: {exc.msg}") from None
    defined = [n.name for n in tree.body if isinstance(n, ast.FunctionDef)]
    if name not in defined:
        from ml_framework.errors import did_you_mean

        raise DerivedFeatureError(feature, f"function {reference}: {path} defines no function {name!r}"
                                  + (f" ({did_you_mean(name, defined)})" if did_you_mean(name, defined) else ""))
    return {"path": path, "name": name, "source": text, "digest": hashlib.sha256(text.encode()).hexdigest()[:16]}


@lru_cache(maxsize=64)
def _function(source: str, name: str, digest: str):
    """The project's function, defined from its recorded source (cached by digest)."""
    namespace: dict[str, Any] = {"__name__": f"ml_derived_{digest}"}
    exec(compile(source, f"<{name}>", "exec"), namespace)  # noqa: S102 - the project's own code, as Feast's UDFs
    return namespace[name]


@lru_cache(maxsize=256)
def _compiled(expr: str, inputs: tuple[tuple[str, str], ...]):
    from .expressions import compile_expression

    return compile_expression(expr, dict(inputs))


def _raw(columns: Mapping[str, Any], view: Mapping[str, Any], length: int | None):
    """feature -> (its spec, the evaluated values as a numpy array), before fill and dtype."""
    inputs = tuple(sorted(view["inputs"].items()))
    out = {}
    for name, feature in view["features"].items():
        if "function" in feature:
            out[name] = (feature, _call(name, feature["function"], columns, view, length))
            continue
        expression = _compiled(feature["expr"], inputs)
        missing = [i for i in expression.inputs if i not in columns]
        if missing:
            raise DerivedFeatureError(name, f"needs {', '.join(missing)}, which the inputs lack")
        try:
            out[name] = (feature, expression.evaluate(columns, length))
        except Exception as exc:  # noqa: BLE001 - reported with the feature's name, never half-computed
            raise DerivedFeatureError(name, f"{type(exc).__name__}: {exc}") from exc
    return out


def _call(name: str, function: Mapping[str, str], columns: Mapping[str, Any], view: Mapping[str, Any],
          length: int | None):
    """A project function over the inputs at hand (name -> numpy array; the training frame and the service
    give it every input of the view); its values. A key it reads that is absent fails, naming the feature."""
    import numpy as np

    arrays = {k: (v.to_numpy() if hasattr(v, "to_numpy") else np.asarray(v)) for k, v in columns.items()
              if k in view["inputs"]}
    rows = length if length is not None else (len(next(iter(arrays.values()))) if arrays else 1)
    try:
        values = np.asarray(_function(function["source"], function["name"], function["digest"])(arrays))
    except Exception as exc:  # noqa: BLE001 - the project's code failed: named, never half-computed
        raise DerivedFeatureError(name, f"{function['path']}:{function['name']} raised {type(exc).__name__}: {exc}") from exc
    if values.ndim == 0:
        values = np.full(rows, values.item())
    if len(values) != rows:
        raise DerivedFeatureError(name, f"{function['path']}:{function['name']} returned {len(values)} values for "
                                        f"{rows} rows")
    return values


def compute(columns: Mapping[str, Any], view: Mapping[str, Any], length: int | None = None) -> dict[str, Any]:
    """feature -> values (a pandas Series of the feature's dtype) for each row of ``columns`` (input name ->
    values; request fields by name, view features as ``view.feature``). A null result takes the feature's
    ``fill``. Raises DerivedFeatureError naming the feature and the missing input."""
    import pandas as pd

    out: dict[str, Any] = {}
    for name, (feature, values) in _raw(columns, view, length).items():
        series = pd.Series(values)
        if feature.get("fill") is not None:
            series = series.where(~pd.isna(series), feature["fill"])
        dtype = feature["dtype"]
        if dtype in ("int32", "int64"):
            series = pd.to_numeric(series, errors="coerce").round().astype(_NUMPY_DTYPES[dtype])
        elif dtype == "bool":
            series = series.astype("boolean")
        elif dtype == "string":
            series = series.astype("string")
        else:
            series = pd.to_numeric(series, errors="coerce").astype(dtype)
        out[name] = series
    return out


def _is_null(value: Any) -> bool:
    return value is None or (isinstance(value, float) and value != value) or str(value) in ("<NA>", "NaT", "nan")


def _scalar(value: Any, feature: Mapping[str, Any]) -> Any:
    """One evaluated value as ``compute`` would give it (fill, then the dtype), as a plain Python value."""
    if hasattr(value, "item"):
        value = value.item()
    if _is_null(value):
        value = feature.get("fill")
        if value is None:
            return None
    dtype = feature["dtype"]
    try:
        if dtype in ("int32", "int64"):
            return int(round(float(value)))
        if dtype == "bool":
            return bool(value)
        if dtype == "string":
            return str(value)
        number = float(value)
        if dtype == "float32":
            import numpy as np

            return float(np.float32(number))
        return number
    except (TypeError, ValueError):
        return None


def compute_row(values: Mapping[str, Any], view: Mapping[str, Any]) -> dict[str, Any]:
    """One request's derived features: ``values`` holds request fields and view features by their short
    names (what a serving request carries once its online features are fetched). Plain Python values,
    None for a null — what the serving runtime logs and encodes. The same evaluation as ``compute``,
    without building pandas objects for one row (tests hold the two to the same values)."""
    columns = {}
    for name in view["inputs"]:
        short = name.split(".", 1)[1] if "." in name else name
        if short in values:
            columns[name] = [values[short]]
    return {name: _scalar(array[0], feature) for name, (feature, array) in _raw(columns, view, 1).items()}
