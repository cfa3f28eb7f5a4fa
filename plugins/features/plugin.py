"""The features domain plugin: the feature kinds. The feast plugin implements them (backend ``feast``)."""

from ml_framework.contract import Kind, Plugin

_KINDS = "ml_framework.plugins.features.kinds:"

plugin = Plugin(
    name="features",
    description="Feature stores, entities, sources, feature views and feature services.",
    kinds=(
        Kind("FeatureStore", plural="feature_stores", schema=_KINDS + "FeatureStore", default_backend="feast"),
        Kind("Entity", plural="entities", schema=_KINDS + "Entity", default_backend="feast"),
        Kind("Source", plural="sources", schema=_KINDS + "Source", default_backend="feast"),
        Kind("FeatureView", plural="feature_views", schema=_KINDS + "FeatureView", default_backend="feast",
             references={"entities": "Entity", "store": "FeatureStore"}),
        Kind("FeatureService", plural="feature_services", schema=_KINDS + "FeatureService", default_backend="feast"),
    ),
)
