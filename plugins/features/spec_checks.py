"""Spec checks of the features plugin, run by `ml validate`: every expression of an on-demand feature view
compiles against its inputs (the request's fields, the features of the views it reads), with a type that
fits the feature's dtype — found in the specs, never at the first request."""

from __future__ import annotations

from typing import Iterable, Mapping

from ml_framework.contract import SpecIssue

__all__ = ["check_on_demand_views", "expression_inputs"]

_FITS = {"number": ("float32", "float64", "int32", "int64"), "bool": ("bool", "int32", "int64", "float32", "float64"),
         "string": ("string",), "timestamp": ()}


def expression_inputs(view, specs: Mapping[str, object]) -> dict[str, str] | None:
    """name -> expression type of everything ``view``'s expressions may read; None when a view it reads is
    not in the specs (the graph reports that reference)."""
    from .expressions import dtype_type

    inputs = {name: dtype_type(dtype) for name, dtype in view.request.items()}
    for name in view.views:
        source = specs.get(f"featureview.{name}")
        if source is None:
            return None
        for feature, spec in source.features.items():
            inputs[f"{name}.{feature}"] = dtype_type(spec.dtype)
    return inputs


def check_on_demand_views(specs: Mapping[str, object]) -> Iterable[SpecIssue]:
    from .expressions import ExpressionError, compile_expression

    for address, view in specs.items():
        if getattr(view, "kind", None) != "OnDemandFeatureView":
            continue
        inputs = expression_inputs(view, specs)
        if inputs is None:
            continue
        clashes = sorted(set(view.request) & {n.split(".", 1)[1] for n in inputs if "." in n})
        for name in clashes:
            yield SpecIssue(address, f"request.{name}", f"{name!r} is also a feature of a view it reads: "
                            "name the request field apart (features are read as view.feature, fields by name)")
        for name, feature in view.features.items():
            if feature.expr is None:  # a Python function: its file is read (and checked) at plan time
                continue
            try:
                compiled = compile_expression(feature.expr, inputs)
            except ExpressionError as exc:
                yield SpecIssue(address, f"features.{name}.expr", exc.message, exc.hint)
                continue
            if feature.dtype not in _FITS.get(compiled.type, ()):
                yield SpecIssue(address, f"features.{name}.dtype", f"the expression gives a {compiled.type}, "
                                f"which dtype {feature.dtype} cannot hold",
                                f"use dtype {_FITS[compiled.type][0]}" if _FITS.get(compiled.type) else None)
