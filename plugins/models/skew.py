"""Training/serving skew of a model's features (`ml models skew MODEL`), for sampled label rows:

* **transformation**: each derived feature (on-demand views) as the training frame computed it, against
  what the serving path computes — ``features.derived.compute_row``, one request at a time — from the
  same row's inputs;
* **online**: each feature fetched online by entity keys, as the offline store gives it as of the newest
  row the view holds, against what the online store answers for the same keys. A value
  training would treat as expired (older than the view's ttl) but the online store still serves is
  counted apart (``expired_online``): Feast's online reads do not apply the ttl.

A difference beyond ``tolerance`` (absolute, for numbers; exact for text) is skew.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from ml_framework.errors import MLError

__all__ = ["SkewResult", "check_skew", "check_live_skew", "live_skew_service"]


@dataclass
class SkewResult:
    feature: str
    kind: str  # transformation | online
    checked: int = 0
    mismatches: int = 0
    max_difference: float = 0.0
    expired_online: int = 0
    example: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.mismatches == 0


def _plain(value: Any) -> Any:
    if value is None:
        return None
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    if str(value) in ("<NA>", "NaT"):
        return None
    return value


def _differs(a: Any, b: Any, tolerance: float) -> tuple[bool, float]:
    a, b = _plain(a), _plain(b)
    if a is None or b is None:
        return (a is None) != (b is None), 0.0
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        difference = abs(float(a) - float(b))
        return difference > tolerance, difference
    return a != b, 0.0


def _record(result: SkewResult, key: dict, training: Any, serving: Any, tolerance: float) -> None:
    result.checked += 1
    bad, difference = _differs(training, serving, tolerance)
    result.max_difference = max(result.max_difference, difference)
    if bad:
        result.mismatches += 1
        if not result.example:
            result.example = {"row": key, "training": _plain(training), "serving": _plain(serving)}


def check_skew(project, registry, store, model: str, *, rows: int = 200, tolerance: float = 1e-6,
               seed: int = 0) -> list[SkewResult]:
    from .data import load_frame, resolve_inputs
    from .pipeline import choose_route

    record = store.get(f"model.{model}")
    if record is None:
        raise MLError(f"model.{model} is not applied", hint="ml apply first; `ml models list` shows what is")

    def lookup(address: str):
        found = store.get(address)
        return (dict(found.spec), found.backend) if found is not None else None

    data = resolve_inputs(record.spec, lookup, project.root)
    services = registry.services(state=store)
    route = choose_route("auto", data)
    access = services.get("feature_access") if route == "feast" or data.views else None
    frame = load_frame(data, project.root, route=route, features=access, keep_inputs=True).df
    sample = frame.sample(n=min(rows, len(frame)), random_state=seed) if len(frame) else frame
    results = _transformation(data, sample, tolerance)
    if access is not None:
        results += _online(data, sample, access, store, tolerance)
    return results


def _transformation(data, sample, tolerance: float) -> list[SkewResult]:
    from ml_framework.plugins.features.derived import compute_row

    columns_of = {(view.name, feature): column for view in data.views for feature, column in view.features}
    results = []
    for ref in data.derived:
        checks = {feature: SkewResult(f"{ref.name}:{feature}", "transformation") for feature, _ in ref.features}
        for index, row in sample.iterrows():
            values = {}
            for name in ref.computation["inputs"]:
                view, dot, short = name.partition(".")
                column = columns_of.get((view, short)) if dot else name
                if column in row.index:
                    values[short if dot else name] = _plain(row[column])
            served = compute_row(values, ref.computation)  # what a request carrying these inputs gets
            key = {k: _plain(row[k]) for k in data.join_keys if k in row.index}
            for feature, column in ref.features:
                _record(checks[feature], key, row[column], served[feature], tolerance)
        results.extend(checks.values())
    return results


def _online(data, sample, access, store, tolerance: float) -> list[SkewResult]:
    import pandas as pd

    results = []
    for view in data.views:
        record = store.get(f"featureview.{view.name}")
        if record is None or record.spec.get("online") is False or not view.join_keys:
            continue
        keys = list(view.join_keys)
        if not set(keys) <= set(sample.columns):
            continue
        entities = sample[keys].drop_duplicates().reset_index(drop=True)
        # as of the newest row the view holds (or its last materialization): what the online store was loaded with
        outputs = record.outputs or {}
        until = outputs.get("max_timestamp") or outputs.get("materialized_until")
        as_of = pd.Timestamp(until) if until else pd.Timestamp(datetime.now(timezone.utc))
        refs = [f"{view.name}:{feature}" for feature, _ in view.features]
        offline = access.training_frame(entities.assign(__as_of=as_of), refs, timestamp_field="__as_of",
                                        label_columns=[])
        online = access.online_features(refs, entities.to_dict("records"))
        for feature, _ in view.features:
            result = SkewResult(f"{view.name}:{feature}", "online")
            served = list(online.features.get(feature) or [])
            for i in range(len(entities)):
                key = {k: _plain(entities.iloc[i][k]) for k in keys}
                trained = offline[feature].iloc[i] if feature in offline.columns else None
                value = served[i] if i < len(served) else None
                if _plain(trained) is None and _plain(value) is not None:
                    result.expired_online += 1  # beyond the ttl offline, still served online
                    continue
                _record(result, key, trained, value, tolerance)
            results.append(result)
    return results


def check_live_skew(project, registry, store, model: str, deployment: str, *, last: int = 200,
                    tolerance: float = 1e-6) -> list[SkewResult]:
    """On live traffic: the deployment's logged answers for ``model`` (its last ``last`` successful
    requests), each served feature against what training would have used for that request — the offline
    value as of the request's time for features fetched online by its entity keys, the training frame's
    computation of each derived feature from the logged inputs. Features the caller sent cannot be
    checked here and are left out."""
    import pandas as pd

    from ml_framework.plugins.features.derived import compute
    from ml_framework.plugins.serving.prediction_log import read_predictions

    from .data import resolve_inputs

    record = store.get(f"model.{model}")
    if record is None:
        raise MLError(f"model.{model} is not applied", hint="ml apply first; `ml models list` shows what is")
    logged = [r for r in read_predictions(project.root, deployment, last=last * 5)
              if r.get("status") == 200 and r.get("model") == model][-last:]
    if not logged:
        raise MLError(f"deployment {deployment} has logged no successful prediction of {model} yet",
                      hint="send requests first; the prediction log is under .ml/predictions/")

    def lookup(address: str):
        found = store.get(address)
        return (dict(found.spec), found.backend) if found is not None else None

    data = resolve_inputs(record.spec, lookup, project.root)
    results: list[SkewResult] = []
    access = registry.services(state=store).get("feature_access") if data.views else None
    for view in data.views:
        keys = list(view.join_keys)
        rows = [r for r in logged if set(keys) <= set(r.get("entity_keys") or {})]
        if not rows or access is None:
            continue  # keyed by something the caller does not send as an entity key: sent raw
        labels = pd.DataFrame([{**{k: r["entity_keys"][k] for k in keys},
                                "__at": pd.Timestamp(r["ts"])} for r in rows])
        refs = [f"{view.name}:{feature}" for feature, _ in view.features]
        offline = access.training_frame(labels, refs, timestamp_field="__at", label_columns=[])
        for feature, _ in view.features:
            result = SkewResult(f"{view.name}:{feature}", "online (live)")
            for i, r in enumerate(rows):
                if feature not in (r.get("features") or {}):
                    continue
                trained = offline[feature].iloc[i] if feature in offline.columns else None
                if _plain(trained) is None and _plain(r["features"][feature]) is not None:
                    result.expired_online += 1  # past the view's ttl at that time, yet served online
                    continue
                _record(result, {"request_id": r.get("request_id"), **r["entity_keys"]}, trained,
                        r["features"][feature], tolerance)
            if result.checked or result.expired_online:
                results.append(result)
    for ref in data.derived:
        columns = {}
        for name in ref.computation["inputs"]:
            short = name.split(".", 1)[1] if "." in name else name
            columns[name] = pd.Series([(r.get("features") or {}).get(short) for r in logged], dtype="object")
            numeric = pd.to_numeric(columns[name], errors="coerce")
            if ref.computation["inputs"][name] == "number":
                columns[name] = numeric
        values = compute(columns, ref.computation, length=len(logged))
        for feature, column in ref.features:
            result = SkewResult(f"{ref.name}:{feature}", "transformation (live)")
            for i, r in enumerate(logged):
                _record(result, {"request_id": r.get("request_id")}, values[feature].iloc[i],
                        (r.get("features") or {}).get(column), tolerance)
            results.append(result)
    return results


def live_skew_service(services):
    """The ``live_skew`` service (declared by the models plugin): ``check(model, deployment, last=,
    tolerance=)`` -> [SkewResult], :func:`check_live_skew` on the run's open state store — what a Monitor's
    ``skew:`` block runs without importing this plugin."""
    from pathlib import Path
    from types import SimpleNamespace

    project = SimpleNamespace(root=Path(services.project_dir))

    def check(model: str, deployment: str, *, last: int = 200, tolerance: float = 1e-6) -> list[SkewResult]:
        return check_live_skew(project, services.registry, services.state, model, deployment, last=last,
                               tolerance=tolerance)

    return check
