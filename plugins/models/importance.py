"""Global importance of a model version, computed at training on its held-out rows and stored in its
lineage (``lineage["importance"]``): the mean absolute contribution of each feature to the raw output
(through the flavour's explainer: LightGBM's exact tree contributions) and, where the flavour reports it,
the total split gain. `ml models show` lists it, `ml models compare` and an apply's message say which
features moved most against another version."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

__all__ = ["global_importance", "moved_most", "MAX_ROWS"]

MAX_ROWS = 5000  # held-out rows explained (a seeded sample beyond): enough for stable means, ~0.1 s


def global_importance(folder: Path, schema: Mapping[str, Any], frame, *, seed: int = 7) -> dict[str, Any] | None:
    """{"mean_abs_contribution": {feature: value}, "gain": {...} or None, "rows": n} on ``frame`` (held-out
    rows holding ``schema["features"]``), or None when the flavour has no explainer."""
    import numpy as np

    from .flavors import flavor_loader

    loader = flavor_loader(str(schema.get("flavor")))
    load_explainer, load_rows = getattr(loader, "load_explainer", None), getattr(loader, "load_rows", None)
    if load_explainer is None or len(frame) == 0:
        return None
    rows = load_rows(folder, schema) if load_rows is not None else None
    encode = rows[0] if rows is not None else (lambda record: record)  # no fast path: values by name
    if len(frame) > MAX_ROWS:
        frame = frame.sample(MAX_ROWS, random_state=seed)
    features = list(schema["features"])
    records = frame[features].astype(object).where(frame[features].notna(), None).to_dict("records")
    contributions = np.asarray(load_explainer(folder, schema)([encode(r) for r in records]))
    per_feature = np.abs(contributions[..., :-1])  # (rows, [classes,] features): the expected value is last
    means = per_feature.reshape(-1, len(features)).mean(axis=0) if per_feature.size else np.zeros(len(features))
    gain = getattr(loader, "gain_importance", None)
    return {"mean_abs_contribution": {f: round(float(v), 6) for f, v in zip(features, means)},
            "gain": {f: round(v, 3) for f, v in gain(folder, schema).items()} if gain is not None else None,
            "rows": int(len(records))}


def moved_most(before: Mapping[str, Any] | None, after: Mapping[str, Any] | None, *, top: int = 3) -> list[dict]:
    """The features whose share of the total mean |contribution| changed most between two versions'
    importance (shares, so versions of different scales compare): [{"feature", "a", "b", "delta"}]."""
    a = dict((before or {}).get("mean_abs_contribution") or {})
    b = dict((after or {}).get("mean_abs_contribution") or {})
    if not a or not b:
        return []
    total_a, total_b = sum(a.values()) or 1.0, sum(b.values()) or 1.0
    rows = []
    for feature in dict.fromkeys(list(a) + list(b)):
        share_a, share_b = a.get(feature, 0.0) / total_a, b.get(feature, 0.0) / total_b
        rows.append({"feature": feature, "a": round(share_a, 4), "b": round(share_b, 4),
                     "delta": round(share_b - share_a, 4)})
    rows.sort(key=lambda r: -abs(r["delta"]))
    return [r for r in rows[:top] if r["delta"]]
