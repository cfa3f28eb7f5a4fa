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
  fingerprint  cheap content keys of source data (stat cache, parquet footers)
  materialize  loading a view into the online store
  training     point-in-time training frames (get_historical_features)
  online       online feature lookups for serving, with missing entities reported
"""

from .provider import FeastProvider

__all__ = ["FeastProvider"]
