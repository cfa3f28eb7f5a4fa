"""The private Feast internals the built-in plugins use, wrapped; tested with Feast :data:`TESTED_VERSION`.

Nothing here imports Feast at module level: each function imports what it needs when called.

* :func:`feast_provider`           ``FeatureStore._get_provider()``
* :func:`materialize_single_view`  the provider's ``materialize_single_feature_view`` (what
                                   ``FeatureStore.materialize`` calls, without its printing)
* :func:`plan_infra`               the provider's ``plan_infra`` (what ``feast apply`` records)
* :func:`recording_infra_on_commit` patches ``registry.commit`` on one registry object
* :func:`redis_client`             the provider's ``online_store`` and ``RedisOnlineStore._get_client``
* :func:`mmh3_hash`                ``feast.infra.online_stores.helpers._mmh3`` (Redis hash field names)
* :func:`create_online_tables`     the provider's ``online_store`` and its public ``update`` (empty tables for
                                   offline views, so Feast's SDK answers a feature service holding them)
* :func:`sqlite_table_name`        ``feast.infra.online_stores.sqlite._table_id`` (a view's online table)
* :func:`fresh_duckdb_connection`  ibis's process-wide default connection, which Feast's DuckDB store runs
                                   every query on, replaced by a fresh one for one retrieval
* :func:`duckdb_reads_from_repo`   replaces ``feast.infra.offline_stores.duckdb._read_data_source``, which
                                   reads a relative source path from the process's working directory
                                   instead of the feature repository (feast-dev/feast#5390)
* :func:`write_duckdb_source`      ``feast.infra.offline_stores.duckdb._write_data_source`` (saving a
                                   retrieval, for the ASOF store's ``persist``)
* :func:`entity_timestamp_column`  ``feast.infra.offline_stores.offline_utils.infer_event_timestamp_from_entity_df``

Also relied on, outside this module, for a Feast behaviour rather than a private name:
``plugins/feast/materialize.py:purge_redis_view`` works around Feast 0.49's
``RedisOnlineStore.delete_table`` leaving the rows of entity_key_serialization_version 3 behind.
"""

from __future__ import annotations

import contextlib
from datetime import datetime
from typing import Any, Callable, Iterator

from . import Internal, installed_version, version_mismatch

__all__ = ["TESTED_VERSION", "DISTRIBUTION", "INTERNALS", "check_version", "installed", "feast_provider",
           "materialize_single_view", "plan_infra", "recording_infra_on_commit", "redis_client", "mmh3_hash",
           "create_online_tables", "sqlite_table_name", "duckdb_reads_from_repo", "atomic_registry_writes",
           "fresh_duckdb_connection", "write_duckdb_source", "entity_timestamp_column", "ASOF_STORE",
           "DUCKDB_STORES"]

#: ``offline_store.type`` of ml's DuckDB store with ASOF point-in-time joins (plugins/feast/offline_store.py).
ASOF_STORE = "ml_framework.plugins.feast.offline_store.DuckDBAsofOfflineStore"
#: Offline store types that run Feast's DuckDB code through ibis (retrievals, materialization).
DUCKDB_STORES = ("duckdb", ASOF_STORE)

TESTED_VERSION = "0.49.0"
DISTRIBUTION = "feast"

_VIEW_PARAMS = ("config", "feature_view", "start_date", "end_date", "registry", "project", "tqdm_builder")

#: Every private object reached below, with the parameters the wrappers pass (see tests/unit/test_compat.py).
INTERNALS: tuple[Internal, ...] = (
    Internal("feast.feature_store:FeatureStore._get_provider", ("self",), "feast_provider"),
    Internal("feast.infra.provider:Provider.materialize_single_feature_view", ("self",) + _VIEW_PARAMS,
             "materialize_single_view"),
    Internal("feast.infra.passthrough_provider:PassthroughProvider.materialize_single_feature_view",
             ("self",) + _VIEW_PARAMS, "materialize_single_view"),
    Internal("feast.infra.provider:Provider.plan_infra", ("self", "config", "desired_registry_proto"), "plan_infra"),
    Internal("feast.infra.passthrough_provider:PassthroughProvider.plan_infra",
             ("self", "config", "desired_registry_proto"), "plan_infra"),
    Internal("feast.infra.registry.registry:Registry.commit", ("self",), "recording_infra_on_commit"),
    Internal("feast.infra.passthrough_provider:PassthroughProvider.online_store", None, "redis_client"),
    Internal("feast.infra.online_stores.redis:RedisOnlineStore._get_client", ("self", "online_store_config"),
             "redis_client"),
    Internal("feast.infra.online_stores.helpers:_mmh3", ("key",), "mmh3_hash"),
    Internal("feast.infra.passthrough_provider:PassthroughProvider.online_store", None, "create_online_tables"),
    Internal("feast.infra.online_stores.sqlite:_table_id", ("project", "table"), "sqlite_table_name"),
    Internal("feast.infra.offline_stores.duckdb:_read_data_source", ("data_source", "repo_path"),
             "duckdb_reads_from_repo"),
    Internal("feast.infra.offline_stores.duckdb:_write_data_source",
             ("table", "data_source", "repo_path", "mode", "allow_overwrite"), "write_duckdb_source"),
    Internal("feast.infra.offline_stores.offline_utils:infer_event_timestamp_from_entity_df", ("entity_schema",),
             "entity_timestamp_column"),
    Internal("feast.infra.registry.file:FileRegistryStore._write_registry", ("self", "registry_proto"),
             "atomic_registry_writes"),
)

_RECHECK = ("every wrapper in plugins/compat/feast.py against the new Feast (the objects in its INTERNALS, "
            "and that FeatureStore.apply still ends with one registry commit), and whether "
            "plugins/feast/materialize.py:purge_redis_view (Feast 0.49's RedisOnlineStore.delete_table leaves "
            "entity_key_serialization_version 3 rows behind) is still needed")


def installed() -> str | None:
    """The installed Feast version (None: not installed); Feast itself is not imported."""
    return installed_version(DISTRIBUTION)


def check_version() -> None:
    """Raise RuntimeError, naming this module, both versions and what to re-check, unless the installed
    Feast is :data:`TESTED_VERSION`."""
    message = version_mismatch(__name__, DISTRIBUTION, TESTED_VERSION, _RECHECK)
    if message:
        raise RuntimeError(message)


def feast_provider(store) -> Any:
    """The Provider of a FeatureStore (``FeatureStore._get_provider()``: built once per store)."""
    return store._get_provider()


def materialize_single_view(store, view, start: datetime, end: datetime, *,
                            tqdm_builder: Callable[[int], Any]) -> None:
    """Write [start, end) of one FeatureView to the online store, as ``FeatureStore.materialize`` does
    (``provider.materialize_single_feature_view``) but without printing to stdout. ``tqdm_builder(total)``
    returns the tqdm-like progress object (a context manager with ``update(n)``) Feast reports to. The
    caller records the materialization (``registry.apply_materialization``) afterwards."""
    feast_provider(store).materialize_single_feature_view(
        config=store.config, feature_view=view, start_date=start, end_date=end,
        registry=store.registry, project=store.project, tqdm_builder=tqdm_builder,
    )


def plan_infra(store, registry=None) -> Any:
    """The online-store tables (a Feast ``Infra``) the registry's objects need, as ``feast apply`` records
    them; ``registry``: the store's own unless given."""
    registry = store.registry if registry is None else registry
    return feast_provider(store).plan_infra(store.config, registry.proto())


@contextlib.contextmanager
def recording_infra_on_commit(store) -> Iterator[None]:
    """Within: the store's registry commit also records the online-store tables, in the same write.

    ``FeatureStore.apply`` creates the tables and commits the registry without recording them (the
    ``feast apply`` CLI records them, so ``feast plan`` expects them); recording them afterwards would
    rewrite the whole registry file once more. ``feast apply`` too writes both in one commit. The patch
    is on this registry object only (an instance attribute, removed on exit): hold the repository lock."""
    registry = store.registry
    commit = registry.commit

    def commit_with_infra() -> None:
        infra = plan_infra(store, registry)
        registry.update_infra(infra, store.project, commit=False)
        commit()

    registry.commit = commit_with_infra
    try:
        yield
    finally:
        del registry.commit


def redis_client(store) -> Any:
    """The ``redis`` client of a store whose online store is Redis (``RedisOnlineStore._get_client``)."""
    online = feast_provider(store).online_store
    return online._get_client(store.config.online_store)


def mmh3_hash(key: str) -> bytes:
    """The 4-byte murmur3 hash Feast's Redis online store names a feature's hash field with
    (``"<view>:<feature>"``)."""
    from feast.infra.online_stores.helpers import _mmh3

    return _mmh3(key)


def create_online_tables(store, views) -> bool:
    """Create the online store's (empty) tables of ``views`` — what ``feast apply`` creates only for
    ``online=True`` views. False when the provider has no online store."""
    online_store = getattr(feast_provider(store), "online_store", None)
    if online_store is None:
        return False
    online_store.update(config=store.config, tables_to_delete=[], tables_to_keep=list(views), entities_to_delete=[],
                        entities_to_keep=[], partial=True)
    return True


def sqlite_table_name(project: str, view) -> str:
    """The SQLite online store's table of a feature view (``{project}_{view name}`` in Feast 0.49)."""
    from feast.infra.online_stores.sqlite import _table_id

    return _table_id(project, view)


def atomic_registry_writes() -> None:
    """Make Feast's file registry replace its file atomically (a temporary file, then a rename). Feast 0.49
    truncates and rewrites it in place, so a process or thread reading it meanwhile — a training frame
    built while another resource is applied — parses a partial registry, and a view applied minutes
    earlier "does not exist". Idempotent."""
    try:
        from feast.infra.registry.file import FileRegistryStore
    except ImportError:
        return
    if getattr(FileRegistryStore._write_registry, "_ml_atomic", False):
        return

    def _write_registry(self, registry_proto) -> None:
        import os
        import threading
        import uuid

        from feast.utils import _utc_now

        registry_proto.version_id = str(uuid.uuid4())
        registry_proto.last_updated.FromDatetime(_utc_now())
        self._filepath.parent.mkdir(exist_ok=True)
        tmp = self._filepath.with_name(f".{self._filepath.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        with open(tmp, mode="wb", buffering=0) as fh:
            fh.write(registry_proto.SerializeToString())
        os.replace(tmp, self._filepath)

    _write_registry._ml_atomic = True  # type: ignore[attr-defined]
    FileRegistryStore._write_registry = _write_registry


def duckdb_reads_from_repo() -> None:
    """Make Feast's DuckDB offline store read a source's relative path from the feature repository, as its
    file store and its own writes do (Feast 0.49 reads it from the working directory). Idempotent; a
    no-op when the DuckDB store is not installed."""
    try:
        from feast.infra.offline_stores import duckdb as store
        from feast.infra.offline_stores.file_source import FileSource
    except ImportError:
        return
    original = store._read_data_source
    if getattr(original, "_ml_repo_relative", False):
        return

    def _read_data_source(data_source, repo_path):
        if isinstance(data_source, FileSource) and repo_path and not data_source.path.startswith(("s3://", "gs://")):
            absolute = FileSource.get_uri_for_file_path(repo_path=repo_path, uri=data_source.path)
            if absolute != data_source.path:
                import copy

                data_source = copy.copy(data_source)
                data_source.file_options = copy.copy(data_source.file_options)
                data_source.file_options.uri = absolute
        return original(data_source, repo_path)

    _read_data_source._ml_repo_relative = True  # type: ignore[attr-defined]
    store._read_data_source = _read_data_source


@contextlib.contextmanager
def fresh_duckdb_connection(store) -> Iterator[None]:
    """For one retrieval or materialization through ``store``'s DuckDB offline store: a new DuckDB
    connection as ibis's default backend (Feast's store runs its queries on that process-wide connection;
    used from several threads in turn, it was left with "an unsuccessful or closed pending query result").
    Callers hold ``OFFLINE_READS``. A no-op for other offline stores."""
    if getattr(store.config.offline_store, "type", None) not in DUCKDB_STORES:
        yield
        return
    import ibis

    previous = ibis.options.default_backend
    connection = ibis.duckdb.connect()
    ibis.set_backend(connection)
    try:
        yield
    finally:
        ibis.options.default_backend = previous
        try:
            connection.disconnect()
        except Exception:
            pass


def write_duckdb_source(table, data_source, repo_path: str, mode: str, allow_overwrite: bool) -> None:
    """Write an ibis table to a FileSource as Feast's DuckDB store does (``RetrievalJob.persist``)."""
    from feast.infra.offline_stores.duckdb import _write_data_source

    _write_data_source(table, data_source, repo_path, mode, allow_overwrite)


def entity_timestamp_column(entity_df) -> str:
    """The event-time column of an entity frame, chosen the way Feast's offline stores choose it."""
    from feast.infra.offline_stores.offline_utils import infer_event_timestamp_from_entity_df

    return infer_event_timestamp_from_entity_df(entity_schema=dict(zip(entity_df.columns, entity_df.dtypes)))
