"""Online features for serving: the latest values for entity keys, with missing entities reported.

Feast answers an unknown entity with nulls, indistinguishable from a stored null in `to_dict()`. Here
every row whose requested feature views hold nothing for it is listed in ``missing`` (and per feature
in ``not_found``), from the per-value statuses Feast returns — or, for stores that report an unknown
entity as PRESENT (Redis), from the empty value without an event timestamp. The FeatureStore object is built once per
repository and reused, so a call costs what `get_online_features` costs.

Views the online store cannot answer for the rows — offline views (``online: false``), or views keyed by
a join key the rows do not carry (a service mixing customer features with those of the transaction being
scored, whose values come with the request) — get their features reported as not found, where Feast
would refuse the whole lookup; the other views are fetched as usual. Which views those are is worked out
once per feature list, row keys and registry version, so a lookup costs what `get_online_features` costs.

SQLite and Redis online stores are read directly (:mod:`.direct_reads`: the same tables, hashes and
values, parity tests against `get_online_features`, several times faster per call);
``ML_FEAST_ONLINE_READS=feast`` asks Feast instead.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from ml_framework.plugins.features.access import OnlineFeatures  # the seam's result type

__all__ = ["OnlineFeatures", "fetch_online_features", "feature_store", "clear_cache"]

_NOT_FOUND = 3  # feast.protos.feast.serving.ServingService_pb2.FieldStatus.NOT_FOUND
_STORES: dict[Any, Any] = {}  # by the path as given (str or Path) and by the resolved path
_GUARD = threading.Lock()
_PLANS: dict[tuple, tuple[Any, Any, Any]] = {}  # (store, features, row keys) -> (registry version, refs, _Partial)


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
                from .rename import manifest_state
                from .repo import new_feature_store

                token = manifest_state(Path(key))[1]  # read first: the registry loaded next is at least this new
                store = new_feature_store(Path(key))
                _STORES[key] = store
                _SEEN[id(store)] = token
            _STORES[repo] = store
    return store


_SEEN: dict[int, tuple] = {}


def current(store) -> dict[str, str]:
    """Keep a long-lived FeatureStore current: when ml rewrote the repository's manifest (after changing
    the registry: a view renamed, added, removed) since this store last looked — or since it was created,
    for the stores cached here — its registry cache is refreshed (else it answers from the registry as it
    was until its cache expires: a view applied after the store was built "does not exist"). Returns the
    views renamed (old -> new)."""
    from .rename import manifest_state

    renamed, token = manifest_state(store.repo_path)
    seen = _SEEN.get(id(store))
    if seen != token:  # also a store first seen here, of unknown age (created before views were applied)
        if seen is not None or not any(cached is store for cached in _STORES.values()):
            try:
                store.refresh_registry()
            except Exception:  # noqa: BLE001 - read while ml rewrote it: once more, a moment later
                time.sleep(0.2)
                store.refresh_registry()
        _SEEN[id(store)] = token
    return renamed


def clear_cache() -> None:
    """Forget cached FeatureStore objects (after the repository's configuration changed)."""
    with _GUARD:
        _STORES.clear()
        _PLANS.clear()


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
    renamed = current(store)
    if renamed and not isinstance(features, str):  # a version trained before a view was renamed: old names
        from .rename import follow

        features = follow(renamed, features)
    rows = entity_rows if isinstance(entity_rows, list) else list(entity_rows)
    if rows:
        refs, partial, reader = _plan(store, features, rows)
        if partial is not None:
            return _fetch_partial(store, partial, rows, full_feature_names)
        if reader is not None and not full_feature_names:
            return reader.read(rows)
    else:
        refs = _refs(store, features)
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


@dataclass(frozen=True)
class _Partial:
    """A lookup the online store can answer only in part: `servable` refs, out of every (view, feature)."""

    servable: list[str]
    pairs: list[tuple[str, str]]


def _registry_version(store) -> Any:
    proto = getattr(store.registry, "cached_registry_proto", None)
    if proto is not None and proto.version_id:
        return proto.version_id  # a new one on every registry commit
    return int(time.monotonic() // 30)  # registries without a local cache: work it out again every 30 s


def _refs(store, features: Any) -> Any:
    """What Feast is asked for: the FeatureService of a service name, else the list of "view:feature"."""
    return store.get_feature_service(features, allow_cache=True) if isinstance(features, str) else list(features)


def _plan(store, features: Any, rows: list[Mapping[str, Any]]) -> tuple[Any, _Partial | None, Any]:
    """(refs, None, reader) when the online store can answer every requested view for these rows (the
    common case; ``reader``: a direct reader of SQLite or Redis, else None); else (refs, the part
    it can answer, None). Worked out once per registry version."""
    key = (id(store), features if isinstance(features, str) else tuple(features), frozenset(rows[0]))
    version = _registry_version(store)
    found = _PLANS.get(key)
    if found is not None and found[0] == version:
        return found[1], found[2], found[3]
    refs = _refs(store, features)
    if isinstance(refs, (list, tuple)):
        pairs = [tuple(ref.split(":", 1)) for ref in refs]
    else:
        pairs = [(p.name, f.name) for p in refs.feature_view_projections for f in p.features]
    servable = {}
    for view in dict.fromkeys(view for view, _ in pairs):
        try:
            fv = store.get_feature_view(view, allow_registry_cache=True)
        except Exception:  # not a plain feature view: an on-demand one needs its request fields in the rows
            servable[view] = _request_fields(store, view) <= key[2]
            continue
        servable[view] = bool(fv.online) and {c.name for c in fv.entity_columns} <= key[2]
    partial = None if all(servable.values()) else _Partial(
        servable=[f"{view}:{feature}" for view, feature in pairs if servable[view]], pairs=pairs)
    reader = None
    if partial is None and os.environ.get("ML_FEAST_ONLINE_READS", "direct") != "feast":
        from .direct_reads import direct_reader

        try:
            reader = direct_reader(store, pairs)
        except Exception:  # anything unexpected: Feast's own path answers
            reader = None
    if len(_PLANS) > 1024:
        _PLANS.clear()
    _PLANS[key] = (version, refs, partial, reader)
    return refs, partial, reader


def _request_fields(store, view: str) -> set[str]:
    """The request fields an on-demand view computes from (none for a view Feast does not know)."""
    try:
        odfv = store.get_on_demand_feature_view(view, allow_registry_cache=True)
    except Exception:
        return set()
    return {f.name for source in odfv.source_request_sources.values() for f in source.schema}


def _fetch_partial(store, partial: _Partial, rows: list[Mapping[str, Any]],
                   full_feature_names: bool) -> OnlineFeatures:
    """Fetch the servable views; the others' features are not found for every row."""
    found = fetch_online_features(store, partial.servable, rows, full_feature_names=full_feature_names) \
        if partial.servable else None
    count = len(rows)
    served = set(partial.servable)
    values: dict[str, list[Any]] = {key: [row[key] for row in rows] for key in rows[0]}
    not_found: dict[str, list[int]] = {}
    names = []
    for view, feature in partial.pairs:
        name = f"{view}__{feature}" if full_feature_names else feature
        names.append(name)
        if f"{view}:{feature}" in served:
            values[name] = found.features[name]
            if name in found.not_found:
                not_found[name] = found.not_found[name]
        else:
            values[name] = [None] * count
            not_found[name] = list(range(count))
    missing = [dict(rows[i]) for i in range(count) if all(i in not_found.get(n, ()) for n in names)]
    return OnlineFeatures(features=values, missing=missing, not_found=not_found)
