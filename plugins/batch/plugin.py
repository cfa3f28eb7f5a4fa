"""The batch domain plugin: the BatchPrediction kind (its backend, ``batch``, is in this package too)."""

from ml_framework.contract import Kind, Plugin

plugin = Plugin(
    name="batch",
    description="Batch predictions: score a data set with a model version.",
    kinds=(Kind("BatchPrediction", plural="batch_predictions", schema="ml_framework.plugins.batch.kinds:BatchPrediction",
                default_backend="batch", style="model"),),
)
