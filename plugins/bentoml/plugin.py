"""The bentoml plugin's declaration: its spec checks. Its provider (the serving backend of the
Deployment kind) is registered in ``ml.providers`` as ``bentoml``."""

from ml_framework.contract import Command, Plugin

plugin = Plugin(
    name="bentoml",
    description="BentoML serving backend of the Deployment kind; `ml package`.",
    checks=("ml_framework.plugins.bentoml.spec_checks:check_ports",),
    commands=(Command("package", "ml_framework.plugins.bentoml.cli:package",
                      "A deployment's served version as a Bento (and image) with Kubernetes manifests."),),
)
