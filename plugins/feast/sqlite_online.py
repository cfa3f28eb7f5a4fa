"""Online lookups straight from Feast's SQLite online tables: the same rows `get_online_features` reads
(one table per feature view, a row per entity key and feature, the value a serialized ``ValueProto``),
without Feast's per-call plumbing (entity protos, projections, response protos, ``to_dict``).

Keys are serialized and values parsed with Feast's own public functions (``serialize_entity_key``,
``python_values_to_proto_values``, ``feast_value_type_to_python_type``); the table name is Feast's
(``plugins/compat/feast.py:sqlite_table_name``). A parity test holds the answers equal to
``get_online_features(...).to_dict()`` on the same repository (``tests/integration/test_serving_feast.py``).
Used by :func:`ml_framework.plugins.feast.online.fetch_online_features` for SQLite online stores only.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any, Mapping, Sequence

from ml_framework.plugins.features.access import OnlineFeatures

__all__ = ["SqliteReader", "sqlite_reader"]


class _View:
    __slots__ = ("name", "table", "join_keys", "key_types", "features", "query")

    def __init__(self, name, table, join_keys, key_types, features):
        self.name, self.table, self.join_keys, self.key_types, self.features = name, table, join_keys, key_types, features
        self.query = f'SELECT entity_key, feature_name, value FROM "{table}" WHERE entity_key IN '


class SqliteReader:
    """Reads ``pairs`` ((view, feature), in the caller's order) for rows carrying ``row_keys``."""

    def __init__(self, path: Path, version: int, views: list[_View], pairs: Sequence[tuple[str, str]]):
        self.path = str(path)
        self.version = version
        self.views = views
        self.pairs = list(pairs)
        self._local = threading.local()

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:  # one read-only connection per thread (sqlite3 objects stay in their thread)
            conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, check_same_thread=True)
            self._local.conn = conn
        return conn

    def read(self, rows: Sequence[Mapping[str, Any]]) -> OnlineFeatures:
        from feast.infra.key_encoding_utils import serialize_entity_key
        from feast.protos.feast.types.EntityKey_pb2 import EntityKey
        from feast.protos.feast.types.Value_pb2 import Value
        from feast.type_map import feast_value_type_to_python_type, python_values_to_proto_values

        count = len(rows)
        values: dict[str, list[Any]] = {key: [row[key] for row in rows] for key in rows[0]}
        found_by_view: dict[str, list[dict[str, Any] | None]] = {}
        cursor = self._conn().cursor()
        for view in self.views:
            keys = []
            for row in rows:
                protos = [_key_value(row[k], t, Value, python_values_to_proto_values)
                          for k, t in zip(view.join_keys, view.key_types)]
                keys.append(serialize_entity_key(EntityKey(join_keys=view.join_keys, entity_values=protos),
                                                 entity_key_serialization_version=self.version))
            wanted = set(view.features)
            by_key: dict[bytes, dict[str, Any]] = {}
            for key, name, blob in cursor.execute(view.query + "(" + ",".join("?" * len(keys)) + ")", keys):
                if name in wanted:
                    proto = Value()
                    proto.ParseFromString(blob)
                    by_key.setdefault(key, {})[name] = feast_value_type_to_python_type(proto)
            found_by_view[view.name] = [by_key.get(k) for k in keys]
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


def _key_value(value: Any, value_type, Value, convert) -> Any:
    """A join key's ValueProto: built directly for the usual int64 / string keys (what Feast's
    ``python_values_to_proto_values`` builds for them), through Feast for anything else."""
    name = getattr(value_type, "name", "")
    if name == "INT64" and isinstance(value, int) and not isinstance(value, bool):
        return Value(int64_val=value)
    if name == "STRING" and isinstance(value, str):
        return Value(string_val=value)
    return convert([value], value_type)[0]


def sqlite_reader(store, pairs: Sequence[tuple[str, str]]) -> SqliteReader | None:
    """A reader of ``pairs`` from ``store``'s SQLite online store, or None when the store is not SQLite
    (or a view is not a plain, online feature view): the caller asks Feast instead."""
    from ml_framework.plugins.compat.feast import sqlite_table_name

    config = store.config
    online = getattr(config, "online_store", None)
    if getattr(online, "type", None) != "sqlite":
        return None
    path = Path(online.path)
    if not path.is_absolute():
        path = Path(config.repo_path or ".") / path
    if not path.is_file():
        return None
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
            views[view_name] = _View(view_name, sqlite_table_name(store.project, fv), [c.name for c in columns],
                                     [c.dtype.to_value_type() for c in columns], [])
        views[view_name].features.append(feature)
    return SqliteReader(path, config.entity_key_serialization_version, list(views.values()), pairs)
