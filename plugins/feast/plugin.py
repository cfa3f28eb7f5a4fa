"""The feast plugin's declaration: the services it provides to other plugins. Its provider (the backend
of the feature kinds) is registered in ``ml.providers`` as ``feast``."""

from ml_framework.contract import Plugin

plugin = Plugin(
    name="feast",
    description="Feast backend of the feature kinds; provides feature access (training frames, online lookups).",
    services={"feature_access": "ml_framework.plugins.feast.access:feature_access"},
    scaffold={"feature_repo/feature_store.yaml": """\
# Feast repository configuration, used by `ml` (backend "feast") and by the `feast` CLI alike:
#   feast -c feature_repo feature-views list      feast -c feature_repo plan
# Paths are relative to this folder; a FeatureStore spec, when there is one, manages online_store.
project: ml_project
provider: local
registry: data/registry.db
online_store:
  type: sqlite
  path: data/online_store.db
offline_store:
  # DuckDB with ASOF point-in-time joins (ml's); `type: duckdb` is Feast's own, `type: file` its dask store
  type: ml_framework.plugins.feast.offline_store.DuckDBAsofOfflineStore
entity_key_serialization_version: 3
""", "feature_repo/.gitignore": "data/\n__pycache__/\nml_generated.py\nml_generated.json\n"},
)
