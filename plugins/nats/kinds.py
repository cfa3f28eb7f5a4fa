"""The StreamDeployment kind (schema only: pydantic): a model scoring the messages of a NATS JetStream
subject, publishing each prediction to an output subject, sending what it cannot score to a dead-letter
subject.

    kind: StreamDeployment
    name: fraud-stream
    model: fraud                            # its production version (or fraud@candidate, fraud:v3)
    input: {subject: transactions.new, entity_keys: [customer_id, merchant_id]}
    output: {subject: fraud.scores}
    dead_letter: {subject: fraud.dead}
    consumer: {batch: 64, max_wait_ms: 50, ack_wait: 30s, max_deliver: 5}

A message is a JSON object as an HTTP request's body (``entity_keys``, ``features``): the same contract,
online lookup, derived features and prediction log as an HTTP Deployment of the model.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field

from ml_framework.plugins.serving.kinds import ServesModel
from ml_framework.spec.kinds import DURATION_PATTERN, StrictModel

__all__ = ["StreamInput", "StreamOutput", "ConsumerSettings", "StreamDeployment"]

_SUBJECT = r"^[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-]+)*$"  # a literal subject: no wildcards (one consumer, one subject)
_STREAM = r"^[A-Za-z0-9_\-]+$"


class StreamInput(StrictModel):
    """Where messages come from: ``subject``, captured by the JetStream ``stream`` (created by ml, named
    ``ML_<NAME>_IN``, when it does not exist); ``entity_keys``: keys looked up in the online store."""

    subject: str = Field(pattern=_SUBJECT)
    stream: str | None = Field(default=None, pattern=_STREAM)
    entity_keys: list[str] = Field(default_factory=list)
    raw_features: bool = True
    on_unknown_entity: Literal["reject", "missing"] = "reject"


class StreamOutput(StrictModel):
    """Where predictions (or dead letters) go: ``subject``, captured by ``stream`` (created by ml with a
    duplicate window when absent): each message's id is the input message's, so a redelivered message never
    publishes a second prediction."""

    subject: str = Field(pattern=_SUBJECT)
    stream: str | None = Field(default=None, pattern=_STREAM)


class ConsumerSettings(StrictModel):
    """The durable pull consumer the workers share: at most ``batch`` messages fetched at a time (waiting at
    most ``max_wait_ms`` for them): back-pressure, never an unbounded queue; a message not acked within
    ``ack_wait`` is delivered again, at most ``max_deliver`` times, then dead-lettered."""

    durable: str | None = Field(default=None, pattern=_STREAM)  # default: ml_<name>
    batch: int = Field(default=64, ge=1, le=10_000)
    max_wait_ms: int = Field(default=50, ge=1, le=60_000)
    ack_wait: str = Field(default="30s", pattern=DURATION_PATTERN)
    max_deliver: int = Field(default=5, ge=1, le=1000)
    workers: int = Field(default=1, ge=1, le=64)


class StreamDeployment(ServesModel):
    kind: Literal["StreamDeployment"]
    input: StreamInput
    output: StreamOutput
    dead_letter: StreamOutput
    consumer: ConsumerSettings = Field(default_factory=ConsumerSettings)
    url: str = Field(default="nats://127.0.0.1:4222", pattern=r"^(nats|tls)://")
    backend: str = "nats"
    options: dict[str, Any] = Field(default_factory=dict)

    def stream_names(self) -> tuple[str, str, str]:
        """(input stream, output stream, dead-letter stream) names."""
        base = re.sub(r"[^A-Za-z0-9_]", "_", self.name).upper()
        return (self.input.stream or f"ML_{base}_IN", self.output.stream or f"ML_{base}_OUT",
                self.dead_letter.stream or self.output.stream or f"ML_{base}_OUT")
