"""Streaming deployments on NATS JetStream: the StreamDeployment kind and its ``nats`` backend."""

from .provider import NatsProvider

__all__ = ["NatsProvider"]
