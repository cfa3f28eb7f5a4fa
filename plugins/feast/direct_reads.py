"""Online lookups straight from Feast's online stores: the same rows `get_online_features` reads, without
Feast's per-call plumbing (entity protos, projections, one round trip per view, response protos, ``to_dict``).

* SQLite: one table per feature view, a row per entity key and feature, the value a serialized
  ``ValueProto`` (table names: ``plugins/compat/feast.py:sqlite_table_name``).
* Redis: a hash per entity key (the serialized key followed by the project name), a field per feature
  named by the murmur3 hash of ``"<view>:<feature>"`` (``plugins/compat/feast.py:mmh3_hash``), the value a
  serialized ``ValueProto``; every view's keys go in one pipeline (Feast sends one per view).

Keys are serialized and values parsed with Feast's own public functions (``serialize_entity_key``,
``python_values_to_proto_values``, ``feast_value_type_to_python_type``). Parity tests hold the answers
equal to ``get_online_features(...).to_dict()`` on the same repository (``tests/integration/
test_serving_feast.py`` for SQLite, ``tests/integration/test_feast_provider.py`` for Redis). Used by
:func:`ml_framework.plugins.feast.online.fetch_online_features`; any other store is asked through Feast.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any, Mapping, Sequence

from ml_framework.plugins.features.access import OnlineFeatures

__all__ = ["DirectReader", "SqliteReader", "RedisReader", "direct_reader"]


class _View:
    __slots__ = ("name", "table", "join_keys", "key_types", "features")

    def __init__(self, name, table, join_keys, key_types, features):
        self.name, self.table, self.join_keys, self.key_types, self.features = name, table, join_keys, key_types, features


class DirectReader:
    """Reads ``pairs`` ((view, feature), in the caller's order) for rows carrying the views' join keys.
    Subclasses fetch: ``_fetch({view: serialized keys}) -> {view: {key: {feature: python value}}}``."""

    def __init__(self, version: int, views: list[_View], pairs: Sequence[tuple[str, str]]):
        self.version = version
        self.views = views
        self.pairs = list(pairs)

    def _fetch(self, keys_by_view: dict[str, list[bytes]]) -> dict[str, dict[bytes, dict[str, Any]]]:
        raise NotImplementedError

    def read(self, rows: Sequence[Mapping[str, Any]]) -> OnlineFeatures:
        from feast.infra.key_encoding_utils import serialize_entity_key
        from feast.protos.feast.types.EntityKey_pb2 import EntityKey
        from feast.protos.feast.types.Value_pb2 import Value
        from feast.type_map import python_values_to_proto_values

        count = len(rows)
        values: dict[str, list[Any]] = {key: [row[key] for row in rows] for key in rows[0]}
        keys_by_view: dict[str, list[bytes]] = {}
        for view in self.views:
            keys = []
            for row in rows:
                protos = [_key_value(row[k], t, Value, python_values_to_proto_values)
                          for k, t in zip(view.join_keys, view.key_types)]
                keys.append(serialize_entity_key(EntityKey(join_keys=view.join_keys, entity_values=protos),
                                                 entity_key_serialization_version=self.version))
            keys_by_view[view.name] = keys
        fetched = self._fetch(keys_by_view)
        found_by_view = {name: [fetched[name].get(k) for k in keys] for name, keys in keys_by_view.items()}
        not_found: dict[str, list[int]] = {}
        for view_name, feature in self.pairs:
            found = found_by_view[view_name]
            values[feature] = [(f.get(feature) if f is not None else None) for f in found]
            absent = [i for i, f in enumerate(found) if f is None or feature not in f]
            if absent:
                not_found[feature] = absent
        names = [feature for _, feature in self.pairs]
        missing = [dict(rows[i]) for i in range(count) if names and all(i in not_found.get(n, ()) for n in names)]
        return OnlineFeatures(features=values, missing=missing, not_found=not_found)


def _python(blob: bytes) -> Any:
    from feast.protos.feast.types.Value_pb2 import Value
    from feast.type_map import feast_value_type_to_python_type

    proto = Value()
    proto.ParseFromString(blob)
    return feast_value_type_to_python_type(proto)


class SqliteReader(DirectReader):
    def __init__(self, path: Path, version: int, views: list[_View], pairs: Sequence[tuple[str, str]]):
        super().__init__(version, views, pairs)
        self.path = str(path)
        self._local = threading.local()

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:  # one read-only connection per thread (sqlite3 objects stay in their thread)
            conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, check_same_thread=True)
            self._local.conn = conn
        return conn

    def _fetch(self, keys_by_view):
        cursor = self._conn().cursor()
        out: dict[str, dict[bytes, dict[str, Any]]] = {}
        for view in self.views:
            keys = keys_by_view[view.name]
            wanted = set(view.features)
            by_key: dict[bytes, dict[str, Any]] = {}
            query = (f'SELECT entity_key, feature_name, value FROM "{view.table}" WHERE entity_key IN '
                     f'({",".join("?" * len(keys))})')
            for key, name, blob in cursor.execute(query, keys):
                if name in wanted:
                    by_key.setdefault(key, {})[name] = _python(blob)
            out[view.name] = by_key
        return out


class RedisReader(DirectReader):
    def __init__(self, client, project: str, version: int, views: list[_View], pairs: Sequence[tuple[str, str]]):
        from ml_framework.plugins.compat.feast import mmh3_hash

        super().__init__(version, views, pairs)
        self.client = client  # redis-py's client is thread safe (a connection pool)
        self.suffix = project.encode("utf-8")
        self.fields = {view.name: [mmh3_hash(f"{view.name}:{f}") for f in view.features] for view in views}

    def _fetch(self, keys_by_view):
        with self.client.pipeline(transaction=False) as pipe:
            for view in self.views:
                for key in keys_by_view[view.name]:
                    pipe.hmget(key + self.suffix, self.fields[view.name])
            answers = iter(pipe.execute())
        out: dict[str, dict[bytes, dict[str, Any]]] = {}
        for view in self.views:
            by_key: dict[bytes, dict[str, Any]] = {}
            for key in keys_by_view[view.name]:
                blobs = next(answers)
                found = {name: _python(blob) for name, blob in zip(view.features, blobs) if blob is not None}
                if found:
                    by_key[key] = found
            out[view.name] = by_key
        return out


def _key_value(value: Any, value_type, Value, convert) -> Any:
    """A join key's ValueProto: built directly for the usual int64 / string keys (what Feast's
    ``python_values_to_proto_values`` builds for them), through Feast for anything else."""
    name = getattr(value_type, "name", "")
    if name == "INT64" and isinstance(value, int) and not isinstance(value, bool):
        return Value(int64_val=value)
    if name == "STRING" and isinstance(value, str):
        return Value(string_val=value)
    return convert([value], value_type)[0]


def _views(store, pairs: Sequence[tuple[str, str]], table_name) -> list[_View] | None:
    views: dict[str, _View] = {}
    for view_name, feature in pairs:
        if view_name not in views:
            try:
                fv = store.get_feature_view(view_name, allow_registry_cache=True)
            except Exception:  # on-demand or stream views: Feast computes those
                return None
            if not fv.online:
                return None
            columns = list(fv.entity_columns)
            views[view_name] = _View(view_name, table_name(fv), [c.name for c in columns],
                                     [c.dtype.to_value_type() for c in columns], [])
        views[view_name].features.append(feature)
    return list(views.values())


def direct_reader(store, pairs: Sequence[tuple[str, str]]) -> DirectReader | None:
    """A reader of ``pairs`` from ``store``'s SQLite or Redis online store, or None (another store, or a
    view that is not a plain, online feature view): the caller asks Feast instead."""
    from ml_framework.plugins.compat.feast import redis_client, sqlite_table_name

    config = store.config
    online = getattr(config, "online_store", None)
    kind = getattr(online, "type", None)
    version = config.entity_key_serialization_version
    if kind == "sqlite":
        path = Path(online.path)
        if not path.is_absolute():
            path = Path(config.repo_path or ".") / path
        if not path.is_file():
            return None
        views = _views(store, pairs, lambda fv: sqlite_table_name(store.project, fv))
        return SqliteReader(path, version, views, pairs) if views is not None else None
    if kind == "redis":
        views = _views(store, pairs, lambda fv: fv.name)
        return RedisReader(redis_client(store), store.project, version, views, pairs) if views is not None else None
    return None
