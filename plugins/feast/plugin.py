"""The feast plugin's declaration: the services it provides to other plugins. Its provider (the backend
of the feature kinds) is registered in ``ml.providers`` as ``feast``."""

from ml_framework.contract import Plugin

plugin = Plugin(
    name="feast",
    description="Feast backend of the feature kinds; provides feature access (training frames, online lookups).",
    services={"feature_access": "ml_framework.plugins.feast.access:feature_access"},
)
