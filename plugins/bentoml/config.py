"""The ``serving`` block of a Deployment on the ``bentoml`` backend (validated at `ml validate`)."""

from __future__ import annotations

import ipaddress

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = ["BentoMLSettings", "Batching", "RESTART_PATHS", "RELOAD_PATHS", "NO_RESTART"]

RESTART_PATHS = ("serving", "input")  # spec fields baked into the running process
RELOAD_PATHS = ("auth", "rate_limit")  # applied to the running workers through control.json: no restart
NO_RESTART = ("build", "startup_timeout_s")  # serving settings only `ml` itself reads


class Batching(BaseModel):
    """Adaptive batching (BentoML's CORK dispatcher): requests arriving together are predicted as one
    matrix, waiting at most ``max_latency_ms``."""

    model_config = ConfigDict(extra="forbid")
    enabled: bool = True
    max_batch_size: int = Field(default=64, ge=1, le=10_000)
    max_latency_ms: float = Field(default=5.0, gt=0, le=60_000)


class BentoMLSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(default=3000, ge=1, le=65535)
    workers: int = Field(default=1, ge=1, le=64)
    timeout_s: float = Field(default=10.0, gt=0, le=3600)  # per request (BentoML traffic.timeout)
    max_request_bytes: int = Field(default=65_536, ge=64, le=64 * 1024 * 1024)  # larger: 413
    batching: Batching | None = None
    startup_timeout_s: float = Field(default=120.0, gt=0, le=3600)  # to /readyz, all workers ready
    fast_path: bool = True  # POST /predict served by the service's ASGI gateway (else BentoML's API route)
    # online feature lookups on the event loop (SQLite: CPU-bound, a thread only adds switching) or in a
    # thread (network stores such as Redis); auto: inline for SQLite, else a thread
    feature_lookup: Literal["auto", "thread", "inline"] = "auto"
    access_log: bool = False  # BentoML's per-request access log (the prediction log records every request)
    # BentoML's OpenTelemetry middleware on the prediction route. Off: at BentoML's default sample rate (0)
    # no trace is kept, yet the middleware took ~40 % of each prediction's CPU and most of its p99
    # (benchmarks/README.md). On, with BentoML's tracing configured (exporter, sample_rate), predictions
    # are traced; every other route is traced either way.
    trace_predictions: bool = False
    log_predictions: bool = True
    allow_external: bool = False  # bind to a non-loopback address
    build: bool = False  # also `bentoml build` a Bento of the service after each change (outputs.bento_tag)

    @field_validator("host")
    @classmethod
    def _host(cls, value: str) -> str:
        if value == "localhost":
            return value
        try:
            ipaddress.ip_address(value)
        except ValueError:
            raise ValueError(f"not an IP address: {value!r} (use 127.0.0.1)") from None
        return value

    @model_validator(mode="after")
    def _loopback(self):
        if self.host != "localhost" and not ipaddress.ip_address(self.host).is_loopback and not self.allow_external:
            raise ValueError(f"host {self.host} is not a loopback address; the embedded default serves on "
                             "loopback only (set allow_external: true to bind elsewhere, and configure auth)")
        return self
