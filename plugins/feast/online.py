"""Online features for serving: the latest values for entity keys, with missing entities reported.

Feast answers an unknown entity with nulls, indistinguishable from a stored null in `to_dict()`. Here
every row whose requested feature views hold nothing for it is listed in ``missing`` (and per feature
in ``not_found``), from the per-value statuses Feast returns — or, for stores that report an unknown
entity as PRESENT (Redis), from the empty value without an event timestamp. The FeatureStore object is built once per
repository and reused, so a call costs what `get_online_features` costs.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

__all__ = ["OnlineFeatures", "fetch_online_features", "feature_store", "clear_cache"]

_NOT_FOUND = 3  # feast.protos.feast.serving.ServingService_pb2.FieldStatus.NOT_FOUND
_STORES: dict[Any, Any] = {}  # by the path as given (str or Path) and by the resolved path
_GUARD = threading.Lock()


@dataclass(frozen=True)
class OnlineFeatures:
    """Column-wise values (as `OnlineResponse.to_dict()`), plus what was not found."""

    features: dict[str, list[Any]]
    missing: list[dict[str, Any]] = field(default_factory=list)  # entity rows unknown to every requested view
    not_found: dict[str, list[int]] = field(default_factory=dict)  # feature -> indexes of rows without a value

    @property
    def complete(self) -> bool:
        return not self.not_found

    def rows(self) -> list[dict[str, Any]]:
        names = list(self.features)
        count = len(self.features[names[0]]) if names else 0
        return [{name: self.features[name][i] for name in names} for i in range(count)]


def feature_store(repo: str | Path | Any):
    """The cached FeatureStore of a repository path (or the object itself when given one)."""
    if not isinstance(repo, (str, Path)):
        return repo
    store = _STORES.get(repo)  # as given: no path resolution on the hot path
    if store is None:
        key = str(Path(repo).resolve())
        with _GUARD:
            store = _STORES.get(key)
            if store is None:
                from .repo import new_feature_store

                store = new_feature_store(Path(key))
                _STORES[key] = store
            _STORES[repo] = store
    return store


def clear_cache() -> None:
    """Forget cached FeatureStore objects (after the repository's configuration changed)."""
    with _GUARD:
        _STORES.clear()


def _unset(result, i: int) -> bool:
    """Some stores (Redis) answer an unknown entity with PRESENT, an empty value and no event time."""
    ts = result.event_timestamps[i] if i < len(result.event_timestamps) else None
    return ts is not None and ts.seconds == 0 and ts.nanos == 0 and result.values[i].WhichOneof("val") is None


def fetch_online_features(repo: str | Path | Any, features: Sequence[str] | str,
                          entity_rows: Sequence[Mapping[str, Any]], *,
                          full_feature_names: bool = False) -> OnlineFeatures:
    """Latest feature values for `entity_rows` from the online store.

    `features`: feature references ("view:feature") or the name of a feature service.
    `repo`: the Feast repository path, or a FeatureStore.
    """
    store = feature_store(repo)
    refs: Any = store.get_feature_service(features) if isinstance(features, str) else list(features)
    rows = entity_rows if isinstance(entity_rows, list) else list(entity_rows)
    response = store.get_online_features(features=refs, entity_rows=rows, full_feature_names=full_feature_names)
    proto = response.proto
    values = response.to_dict()
    keys = set(rows[0]) if rows else set()
    not_found: dict[str, list[int]] = {}
    feature_count = 0
    for name, result in zip(proto.metadata.feature_names.val, proto.results):
        if name in keys:
            continue
        feature_count += 1
        column = values[name]
        if None not in column:  # the common case: every value found, nothing more to look at
            continue
        statuses = result.statuses
        absent = [i for i, v in enumerate(column) if v is None and (statuses[i] == _NOT_FOUND or _unset(result, i))]
        if absent:
            not_found[name] = absent
    missing = []
    if not_found and len(not_found) == feature_count:
        counts: dict[int, int] = {}
        for indexes in not_found.values():
            for i in indexes:
                counts[i] = counts.get(i, 0) + 1
        missing = [dict(rows[i]) for i in sorted(counts) if counts[i] == feature_count]
    return OnlineFeatures(features=values, missing=missing, not_found=not_found)
