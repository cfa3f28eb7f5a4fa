"""Training frames by point-in-time join: each label row gets the feature values known at its event time.

Feast's `get_historical_features` joins, for every entity row, the newest feature row whose timestamp
is <= the row's event timestamp and within the view's ttl — so a value stamped after the label's event
is never joined to it. Only the columns the join needs are passed (join keys, event time, labels):
local retrieval is slow and memory hungry on wide entity frames (feast-dev/feast#3003), and a second
timestamp column (e.g. label_ts) would make Feast's event-time inference ambiguous.

Retrievals are serialized within a process (materialize.OFFLINE_READS): Feast's local offline store
builds dask-expr graphs whose cached properties share one lock per property on Python < 3.12, and two
retrievals running in two threads (two models training at once) can each hold one and wait for the
other forever.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from ml_framework.plugins.compat.feast import ASOF_STORE, fresh_duckdb_connection

from .materialize import OFFLINE_READS
from .online import feature_store

__all__ = ["build_training_frame", "join_keys_for"]

_TS = "event_timestamp"


def join_keys_for(store, features: Any) -> list[str]:
    """The entity join keys the feature views behind `features` (refs or a FeatureService) need."""
    if isinstance(features, (list, tuple)):
        views = list(dict.fromkeys(ref.split(":", 1)[0] for ref in features))
    else:
        views = [p.name for p in features.feature_view_projections]
    keys: list[str] = []
    for name in views:
        view = store.get_feature_view(name)
        for column in view.entity_columns:
            if column.name not in keys:
                keys.append(column.name)
    return keys


def _refs_by_view(store, features: Any) -> dict[str, list[str]]:
    if isinstance(features, (list, tuple)):
        pairs = [ref.split(":", 1) for ref in features]
    else:
        pairs = [(p.name, f.name) for p in features.feature_view_projections for f in p.features]
    out: dict[str, list[str]] = {}
    for view, feature in pairs:
        if feature == "*":
            out.setdefault(view, []).extend(f.name for f in store.get_feature_view(view).features)
        else:
            out.setdefault(view, []).append(feature)
    return {view: list(dict.fromkeys(names)) for view, names in out.items()}


def _is_plain_view(store, name: str) -> bool:
    try:
        store.get_feature_view(name)
    except Exception:
        return False
    return True


def build_training_frame(repo: str | Path | Any, labels: Any, features: Sequence[str] | str, *,
                         timestamp_field: str = "event_ts", label_columns: Sequence[str] = ("is_fraud",),
                         full_feature_names: bool = False):
    """A pandas DataFrame: join keys, `timestamp_field`, `label_columns` and the features, one row per label.

    `labels`: a DataFrame or a parquet path of label events. `features`: "view:feature" references or
    the name of a feature service. Rows keep the order of `labels`; a label without a feature value in
    the view's ttl window gets nulls for that view.

    Feast's local (dask) retrieval drops an entity row entirely when the entity has feature rows but
    none inside the ttl window, and collapses entity rows sharing keys and timestamp. So each view is
    retrieved separately for the distinct (keys, event time) pairs, and the results are left-joined
    back onto every label row.
    """
    import pandas as pd

    store = feature_store(repo)
    from .online import current

    renamed = current(store)
    if renamed and not isinstance(features, str):  # a version trained before a view was renamed: old names
        from .rename import follow

        features = follow(renamed, features)
    refs: Any = store.get_feature_service(features) if isinstance(features, str) else list(features)
    if isinstance(features, str) and refs.feature_view_projections != [
            p for p in refs.feature_view_projections if _is_plain_view(store, p.name)]:
        derived = [p.name for p in refs.feature_view_projections if not _is_plain_view(store, p.name)]
        raise ValueError(f"feature service {features!r} includes on-demand view(s) {', '.join(derived)}, computed "
                         "from request fields: ask for its plain views' features (a Model computes derived "
                         "features itself, from the same definition as serving)")
    keys = join_keys_for(store, refs)
    needed = list(dict.fromkeys(keys + [timestamp_field] + list(label_columns)))
    if isinstance(labels, (str, Path)):
        import pyarrow.parquet as pq

        frame = pq.read_table(labels, columns=needed).to_pandas()
    else:
        absent = [c for c in needed if c not in labels.columns]
        if absent:
            raise ValueError(f"label frame lacks columns {absent} (has {list(labels.columns)})")
        frame = labels[needed].reset_index(drop=True)
    if not isinstance(frame[timestamp_field].dtype, pd.DatetimeTZDtype):
        raise ValueError(f"{timestamp_field} must hold timezone-aware timestamps (UTC)")
    frame[timestamp_field] = frame[timestamp_field].astype("datetime64[ns, UTC]")
    if getattr(store.config.offline_store, "type", None) == ASOF_STORE:
        return _join_in_order(store, frame, refs, keys, timestamp_field, full_feature_names)
    out = frame
    for view, names in _refs_by_view(store, refs).items():
        view_keys = [c.name for c in store.get_feature_view(view).entity_columns]
        entity_df = (frame[view_keys + [timestamp_field]].drop_duplicates(ignore_index=True)
                     .rename(columns={timestamp_field: _TS}))
        with OFFLINE_READS, fresh_duckdb_connection(store):
            job = store.get_historical_features(entity_df=entity_df, features=[f"{view}:{n}" for n in names],
                                                full_feature_names=full_feature_names)
            joined = job.to_df().rename(columns={_TS: timestamp_field})
        joined[timestamp_field] = joined[timestamp_field].astype("datetime64[ns, UTC]")
        feature_columns = [c for c in joined.columns if c not in view_keys and c != timestamp_field]
        out = out.merge(joined[view_keys + [timestamp_field] + feature_columns], on=view_keys + [timestamp_field],
                        how="left", validate="many_to_one")
    return out


def _join_in_order(store, frame, refs, keys: list[str], timestamp_field: str, full_feature_names: bool):
    """One retrieval of every view through the ASOF store, which keeps every entity row in order: the
    features are attached by position, with no per-view round trips or merges."""
    entity_df = frame[keys + [timestamp_field]].rename(columns={timestamp_field: _TS})
    with OFFLINE_READS:
        joined = store.get_historical_features(entity_df=entity_df, features=refs,
                                               full_feature_names=full_feature_names).to_df()
    if len(joined) != len(frame):  # the store's promise; a silent misalignment would be far worse
        raise RuntimeError(f"the offline store returned {len(joined)} rows for {len(frame)} entity rows")
    out = frame.copy(deep=False)
    for column in joined.columns:
        if column not in entity_df.columns:
            out[column] = joined[column].to_numpy()
    return out
