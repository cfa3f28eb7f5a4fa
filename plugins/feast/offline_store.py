"""A Feast offline store: Feast 0.49's DuckDB store, with point-in-time joins done by DuckDB's ASOF JOIN.

Selected in feature_store.yaml like any custom Feast store, so the ``feast`` CLI, notebooks and ``ml``
all get it through Feast's own API (``FeatureStore.get_historical_features``)::

    offline_store:
      type: ml_framework.plugins.feast.offline_store.DuckDBAsofOfflineStore
      chunk_rows: 250000   # optional: entity rows per DuckDB query (bounds the join's working memory)

Why: Feast's DuckDB store (through ibis) joins every entity row with every feature row of its key inside
the ttl window, keys rows by a string of all key values and the timestamp, and ranks the pairs with a
window function. On 1.4M label rows against a daily per-customer view (7-day ttl) that took 21 s; DuckDB's
ASOF JOIN gives the same rows in under 1 s (benchmarks/bench_first_apply.py, benchmarks/README.md).

Semantics are Feast's, row for row (``tests/integration/test_offline_store.py`` compares both on every
case): for each entity row and feature view, the feature row of the same join keys with the newest event
timestamp <= the row's, if that timestamp is within the view's ttl (none when the newest is older: an
older row cannot be inside the window when a newer one is not); ties on the event timestamp go to the
newest ``created_timestamp_column``. Naive timestamps are read as UTC. Unlike Feast's store, the result
keeps the entity frame's row order.

Anything this store does not join itself falls back to Feast's DuckDB implementation: an entity frame
given as SQL, sources that are not local parquet (Delta, object stores), substrait on-demand views.
Materialization and every other method are Feast's DuckDB store unchanged.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, List, Optional, Union

import pandas as pd
import pyarrow
from feast.data_format import ParquetFormat
from feast.feature_view import FeatureView
from feast.infra.offline_stores.duckdb import DuckDBOfflineStore, DuckDBOfflineStoreConfig
from feast.infra.offline_stores.file_source import FileSource
from feast.infra.offline_stores.offline_store import RetrievalJob, RetrievalMetadata
from feast.infra.registry.base_registry import BaseRegistry
from feast.on_demand_feature_view import OnDemandFeatureView
from feast.repo_config import RepoConfig
from pydantic import Field, StrictStr

from ml_framework.plugins.compat.feast import ASOF_STORE, entity_timestamp_column, write_duckdb_source

__all__ = ["DuckDBAsofOfflineStore", "DuckDBAsofOfflineStoreConfig", "TYPE"]

TYPE = ASOF_STORE
_ROW = "__ml_row"


CHUNK_ROWS = 250_000


class DuckDBAsofOfflineStoreConfig(DuckDBOfflineStoreConfig):
    type: StrictStr = TYPE
    #: entity rows joined per DuckDB query: bounds the join's working memory (see _AsofRetrievalJob)
    chunk_rows: int = Field(default=CHUNK_ROWS, ge=1)


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _parquet_path(source: Any, repo_path: str | None) -> str | None:
    """The local parquet file (or folder) behind ``source``; None when this store does not read it."""
    if not isinstance(source, FileSource) or not isinstance(source.file_format, (ParquetFormat, type(None))):
        return None
    uri = source.path
    if "://" in uri and not uri.startswith("file://"):
        return None
    path = Path(FileSource.get_uri_for_file_path(repo_path=repo_path, uri=uri) if repo_path else uri)
    if str(path).startswith("file://"):
        path = Path(str(path)[len("file://"):])
    if path.is_dir():
        return str(path / "**" / "*.parquet")
    return str(path)


class _View:
    """One feature view's part of the join: where its rows are and which columns it adds."""

    def __init__(self, view: FeatureView, refs: List[str], full_feature_names: bool, path: str):
        source = view.batch_source
        prefix = view.projection.name_alias or view.name
        self.path = path
        # the source's own column names (field_mapping renames source columns to feature names)
        reverse = {new: old for old, new in (source.field_mapping or {}).items()}
        keys = view.projection.join_key_map or {e.name: e.name for e in view.entity_columns}
        self.source_keys = {reverse.get(k, k): entity_column for k, entity_column in keys.items()}
        features = [ref.split(":", 1)[1] for ref in refs if ref.startswith(f"{prefix}:")]
        self.features = [(reverse.get(f, f), f"{prefix}__{f}" if full_feature_names else f) for f in features]
        self.ttl_us = int(view.ttl.total_seconds() * 1_000_000) if view.ttl else 0
        self.source_timestamp = reverse.get(source.timestamp_field, source.timestamp_field)
        created = source.created_timestamp_column
        self.source_created = reverse.get(created, created) if created else None


def _sql(views: List[_View], entity_ts: str) -> str:
    """One query: per view, a narrow ASOF join of (row number, keys, time) against the view's rows, then
    the entity frame with each view's columns joined back by row number. Narrow joins keep DuckDB's sorts
    small (carrying the growing frame through every ASOF join needed twice the memory)."""
    entity_time = f"CAST({_q(entity_ts)} AS TIMESTAMPTZ)"
    keys = list(dict.fromkeys(col for view in views for col in view.source_keys.values()))
    ctes = [f"e AS (SELECT {_ROW}, {''.join(_q(k) + ', ' for k in keys)}{entity_time} AS __ml_t FROM entity_df)"]
    select = ["x.* EXCLUDE (" + _ROW + ")"]
    joins = []
    for i, view in enumerate(views, start=1):
        if not view.features:
            continue
        ts = f"__ml_ts{i}"
        source_ts = f"CAST({_q(view.source_timestamp)} AS TIMESTAMPTZ)"
        columns = [f"{_q(src)} AS {_q(f'__ml_k{i}_{n}')}" for n, src in enumerate(view.source_keys)]
        columns.append(f"{source_ts} AS {ts}")
        columns += [f"{_q(src)} AS {_q(out)}" for src, out in view.features]
        dedup = ""
        if view.source_created:
            partition = ", ".join([_q(k) for k in view.source_keys] + [_q(view.source_timestamp)])
            dedup = (f" QUALIFY row_number() OVER (PARTITION BY {partition} "
                     f"ORDER BY {_q(view.source_created)} DESC NULLS LAST) = 1")
        # Only the rows the join can pick: keys of the entity frame, up to its newest time (and no older
        # than its oldest time less the ttl). Cheap to test, and the sort behind the ASOF join then sees
        # a chunk's rows rather than the whole history (batch scoring asks chunk by chunk).
        where = [f"{source_ts} <= (SELECT max(__ml_t) FROM e)"]
        if view.ttl_us:
            where.append(f"{source_ts} >= (SELECT min(__ml_t) FROM e) - to_microseconds({view.ttl_us})")
        match = " AND ".join(f"e.{_q(entity_col)} = {_q(src)}" for src, entity_col in view.source_keys.items())
        where.append(f"EXISTS (SELECT 1 FROM e WHERE {match})")
        ctes.append(f"f{i} AS (SELECT {', '.join(columns)} FROM read_parquet({_lit(view.path)}) "
                    f"WHERE {' AND '.join(where)}{dedup})")
        on = [f"e.{_q(entity_col)} = f.{_q(f'__ml_k{i}_{n}')}" for n, entity_col in enumerate(view.source_keys.values())]
        on.append(f"e.__ml_t >= f.{ts}")
        within = f"f.{ts} >= e.__ml_t - to_microseconds({view.ttl_us})" if view.ttl_us else None
        picked = [f"CASE WHEN {within} THEN f.{_q(out)} END AS {_q(out)}" if within else f"f.{_q(out)}"
                  for _, out in view.features]
        ctes.append(f"a{i} AS (SELECT e.{_ROW}, {', '.join(picked)} FROM e ASOF LEFT JOIN f{i} AS f "
                    f"ON {' AND '.join(on)})")
        select.append(", ".join(f"a{i}.{_q(out)}" for _, out in view.features))
        joins.append(f"LEFT JOIN a{i} ON a{i}.{_ROW} = x.{_ROW}")
    return (f"WITH {', '.join(ctes)} SELECT {', '.join(select)} FROM entity_df AS x {' '.join(joins)} "
            f"ORDER BY x.{_ROW}")


class _AsofRetrievalJob(RetrievalJob):
    """The join, run when the frame is asked for (as Feast's jobs are lazy)."""

    def __init__(self, entity_df: pd.DataFrame, query: str, odfvs, full_feature_names: bool,
                 metadata: RetrievalMetadata, repo_path: str, chunk_rows: int):
        super().__init__()
        self._chunk_rows = chunk_rows
        self._entity_df = entity_df
        self._query = query
        self._odfvs = odfvs
        self._full_feature_names = full_feature_names
        self._metadata = metadata
        self._repo_path = repo_path

    def _to_arrow_internal(self, timeout: Optional[int] = None) -> pyarrow.Table:
        """The join, ``chunk_rows`` entity rows at a time: DuckDB's ASOF join needs several times its
        result in working memory, so chunks bound the peak (1.4M rows at once: +1.3 GB; in chunks of
        250k: see benchmarks/README.md) at the cost of reading the views' rows once per chunk."""
        import duckdb

        entity = pyarrow.Table.from_pandas(self._entity_df, preserve_index=False)
        entity = entity.append_column(_ROW, pyarrow.array(range(entity.num_rows), type=pyarrow.int64()))
        parts = []
        with contextlib.closing(duckdb.connect()) as con:
            con.execute("SET TimeZone = 'UTC'")
            for start in range(0, max(entity.num_rows, 1), self._chunk_rows):
                con.register("entity_df", entity.slice(start, self._chunk_rows))
                parts.append(con.execute(self._query).fetch_arrow_table())
                con.unregister("entity_df")
        return pyarrow.concat_tables(parts) if len(parts) > 1 else parts[0]

    def _to_df_internal(self, timeout: Optional[int] = None) -> pd.DataFrame:
        return self._to_arrow_internal(timeout).to_pandas(timestamp_as_object=False)

    @property
    def full_feature_names(self) -> bool:
        return self._full_feature_names

    @property
    def on_demand_feature_views(self) -> List[OnDemandFeatureView]:
        return self._odfvs

    @property
    def metadata(self) -> Optional[RetrievalMetadata]:
        return self._metadata

    def persist(self, storage, allow_overwrite: bool = False, timeout: Optional[int] = None):
        import ibis

        write_duckdb_source(ibis.memtable(self._to_arrow_internal()), storage.to_data_source(), self._repo_path,
                           "overwrite", allow_overwrite)

    @property
    def query(self) -> str:
        """The SQL this job runs (for debugging and `EXPLAIN`)."""
        return self._query


class DuckDBAsofOfflineStore(DuckDBOfflineStore):
    @staticmethod
    def get_historical_features(
        config: RepoConfig,
        feature_views: List[FeatureView],
        feature_refs: List[str],
        entity_df: Union[pd.DataFrame, str],
        registry: BaseRegistry,
        project: str,
        full_feature_names: bool = False,
    ) -> RetrievalJob:
        def feast_own():
            return DuckDBOfflineStore.get_historical_features(config, feature_views, feature_refs, entity_df, registry,
                                                             project, full_feature_names)

        if not isinstance(entity_df, pd.DataFrame):
            return feast_own()
        repo_path = str(config.repo_path) if config.repo_path else None
        paths = [_parquet_path(view.batch_source, repo_path) for view in feature_views]
        odfvs = OnDemandFeatureView.get_requested_odfvs(feature_refs, project, registry)
        if any(p is None for p in paths) or any(v.mode == "substrait" for v in odfvs):
            return feast_own()
        entity_ts = entity_timestamp_column(entity_df)
        entity_df = entity_df.copy(deep=False)
        column = entity_df[entity_ts]
        if pd.api.types.is_string_dtype(column) or pd.api.types.is_object_dtype(column):
            entity_df[entity_ts] = pd.to_datetime(column, utc=True)
        views = [_View(view, feature_refs, full_feature_names, path) for view, path in zip(feature_views, paths)]
        timestamps = entity_df[entity_ts]
        metadata = RetrievalMetadata(features=feature_refs, keys=list(set(entity_df.columns) - {entity_ts}),
                                     # metadata only: nanoseconds (e.g. "just before" a label) are dropped quietly
                                     min_event_timestamp=timestamps.min().to_pydatetime(warn=False) if len(timestamps) else None,
                                     max_event_timestamp=timestamps.max().to_pydatetime(warn=False) if len(timestamps) else None)
        return _AsofRetrievalJob(entity_df, _sql(views, entity_ts), odfvs, full_feature_names, metadata,
                                 repo_path or "", getattr(config.offline_store, "chunk_rows", CHUNK_ROWS))
