"""The bentoml plugin's declaration: its spec checks. Its provider (the serving backend of the
Deployment kind) is registered in ``ml.providers`` as ``bentoml``."""

from ml_framework.contract import Plugin

plugin = Plugin(
    name="bentoml",
    description="BentoML serving backend of the Deployment kind.",
    checks=("ml_framework.plugins.bentoml.spec_checks:check_ports",),
)
