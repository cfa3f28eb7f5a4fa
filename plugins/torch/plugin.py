"""The torch plugin's declaration: the model flavour it saves and loads. Its provider (a trainer backend
of the Model kind) is registered in ``ml.providers`` as ``torch``."""

from ml_framework.contract import Plugin

plugin = Plugin(
    name="torch",
    description="PyTorch (tabular MLP) trainer backend; the torch model flavour.",
    services={"model_flavor.torch": "ml_framework.plugins.torch.flavor:flavor"},
)
