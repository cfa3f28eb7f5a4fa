"""The lightgbm plugin's declaration: the model flavour it saves and loads. Its provider (a trainer
backend of the Model kind) is registered in ``ml.providers`` as ``lightgbm``."""

from ml_framework.contract import Plugin

plugin = Plugin(
    name="lightgbm",
    description="LightGBM trainer backend; the lightgbm model flavour.",
    services={"model_flavor.lightgbm": "ml_framework.plugins.lightgbm.flavor:flavor"},
)
