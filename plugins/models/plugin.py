"""The models domain plugin: the Model kind, `ml models`, and what every trainer backend shares (split,
metrics, gates, registry, lineage). Trainer backends (lightgbm, torch) implement the ``trainer`` block."""

from ml_framework.contract import Command, Kind, Plugin

from .capabilities import TRAIN_CANDIDATE

plugin = Plugin(
    name="models",
    description="Models: training with gates, the model registry, `ml models`.",
    kinds=(Kind("Model", plural="models", schema="ml_framework.plugins.models.kinds:Model", backend_block="trainer",
                style="model"),),
    commands=(Command("models", "ml_framework.plugins.models.cli:app",
                      "The model registry: versions, lineage, aliases (promote / rollback), sweeps."),),
    capabilities=(TRAIN_CANDIDATE,),
    checks=("ml_framework.plugins.models.spec_checks:check_models",),
    services={"model_registry": "ml_framework.plugins.models.registry:registry_service",
              "live_skew": "ml_framework.plugins.models.skew:live_skew_service",
              "ui.page.models": "ml_framework.plugins.models.ui:models_page"},
)
