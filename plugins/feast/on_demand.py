"""Feast on-demand feature views made from ml's definitions: the UDF Feast stores and runs calls the
features plugin's ``compute`` — the function ml's own training and serving paths use — so Feast's
`get_online_features` / `get_historical_features` and ml agree by construction."""

from __future__ import annotations

from typing import Any, Mapping

__all__ = ["udf_source", "make_udf", "compute_frame"]


def compute_frame(frame, view: Mapping[str, Any]):
    """Feast's pandas-mode transformation: its input frame names request fields and view features by their
    short names (Feast strips the view prefix); returns the derived columns."""
    import pandas as pd

    from ml_framework.plugins.features.derived import compute

    columns = {}
    for name in view["inputs"]:
        short = name.split(".", 1)[1] if "." in name else name
        for candidate in (name.replace(".", "__"), short):
            if candidate in frame.columns:
                columns[name] = frame[candidate].reset_index(drop=True)
                break
    values = compute(columns, view, length=len(frame))
    return pd.DataFrame({name: series.reset_index(drop=True) for name, series in values.items()})


def udf_source(view: Mapping[str, Any]) -> str:
    """The UDF as source (what Feast shows and what the generated repository module defines)."""
    ident = "odfv_" + "".join(c if c.isalnum() else "_" for c in view["name"])
    return (f"def {ident}(features_df):\n"
            f"    from ml_framework.plugins.feast.on_demand import compute_frame\n\n"
            f"    return compute_frame(features_df, {_sorted(view)!r})\n")


def _sorted(value: Any) -> Any:
    """Keys sorted at every level: the source is the same whether the definition comes straight from the
    spec or back from the repository's JSON manifest (else `feast plan` sees a changed view)."""
    if isinstance(value, Mapping):
        return {k: _sorted(value[k]) for k in sorted(value)}
    if isinstance(value, (list, tuple)):
        return [_sorted(v) for v in value]
    return value


def make_udf(view: Mapping[str, Any]):
    """The UDF as a function (defined from its own source, so Feast can serialize it by value)."""
    namespace: dict[str, Any] = {"__name__": "__main__"}
    source = udf_source(view)
    exec(compile(source, f"<ml on-demand view {view['name']}>", "exec"), namespace)  # noqa: S102 - our own generated source
    function = next(v for k, v in namespace.items() if k.startswith("odfv_"))
    return function, source
