"""The features domain: the feature kinds (FeatureStore, Entity, Source, FeatureView, FeatureService) and
the data-contract rules. Nothing heavy is imported here; the feast plugin is their backend.

Modules:
  kinds   the schemas (pydantic)
  plugin  the Plugin declaration (entry point ``ml.plugins: features``)
"""

__all__: list[str] = []
