"""The feast backend: feature stores, entities, sources, feature views and feature services on Feast.

Registered as the ``feast`` entry point of the ``ml.providers`` group. Importing this package is cheap:
Feast, pandas, pyarrow and pandera are imported only when a hook needs them.

Modules, one job each:
  provider     FeastProvider: the contract hooks, dispatched by kind to handlers
  handlers     apply / delete / read / fingerprint per kind
  settings     pydantic models: backends.feast in ml.yaml, each kind's `options`
  compile      specs -> plain Feast definitions (pure)
  objects      definitions -> Feast SDK objects; registry objects -> comparable dicts
  codegen      definitions -> the repository's generated Python module
  repo         the Feast repository: feature_store.yaml, lock, generated files, FeatureStore cache
  contracts    data contracts checked with pandera before anything changes in Feast
  csvdata      CSV sources: read typed by their contract, checked, kept as the parquet copy Feast reads
  fingerprint  cheap content keys of source data (stat cache, parquet footers)
  materialize  loading a view into the online store
  training     point-in-time training frames (get_historical_features)
  online       online feature lookups for serving, with missing entities reported

Choosing the online store: an optional ``FeatureStore`` spec (``kind: FeatureStore, name: default,
online_store: {type: sqlite}`` or ``{type: redis, connection_string: "127.0.0.1:6379", password_env:
REDIS_PASSWORD}``) owns the ``online_store`` block of feature_store.yaml, so the ``feast`` CLI sees the
same store. Feature views that name it (``store: default``) depend on it: switching stores, e.g. with
the ``specs/env/redis.yaml`` overlay, plans an update of the store and of those views, and applying it
reloads their rows into the new store. Without a FeatureStore spec, feature_store.yaml is left as
written. Passwords never appear in specs, state or outputs: Feast expands ``${VAR}`` at load time.
"""

from .provider import FeastProvider

__all__ = ["FeastProvider"]
