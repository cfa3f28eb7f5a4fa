"""The streaming plugin: the StreamDeployment kind (scoring messages from NATS JetStream), served by the
``nats`` backend of this package. Contributed like any third-party plugin."""

from ml_framework.contract import Kind, Plugin

plugin = Plugin(
    name="nats",
    description="Streaming deployments: score the messages of a NATS JetStream subject, publish the predictions.",
    kinds=(Kind("StreamDeployment", plural="stream_deployments", schema="ml_framework.plugins.nats.kinds:StreamDeployment",
                default_backend="nats", style="service"),),
)
