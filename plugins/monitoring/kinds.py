"""The Monitor kind (schema only: pydantic). Drift backends (alibi-detect, scipy) validate its ``detector`` block."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from ml_framework.spec.kinds import BackendBlock, DURATION_PATTERN, SpecBase, StrictModel


__all__ = ["MonitorAction", "MonitorWindow", "GroundTruth", "SkewCheck", "AlertSpec", "Monitor"]


MonitorAction = Literal["alert", "retrain", "rollback"]


class MonitorWindow(StrictModel):
    """Which logged requests one check looks at: the newest ``last`` N, and/or those of the last
    ``duration``. A window holding fewer than ``min_samples`` usable rows is inconclusive, never drift."""

    last: int | None = Field(default=None, gt=0)
    duration: str | None = Field(default=None, pattern=DURATION_PATTERN)
    min_samples: int = Field(default=100, ge=1)

    @model_validator(mode="after")
    def _default_last(self):
        if self.last is None and self.duration is None:
            self.last = 1000
        return self


class GroundTruth(StrictModel):
    """Labels that arrive after the predictions, joined to the prediction log.

    ``join: request_id`` matches the label file's ``request_id`` column with the logged request ids;
    ``join: entity`` matches on ``entity_keys`` and the prediction served for that entity at or before the
    label's ``timestamp_field`` (the latest, within ``tolerance``). ``max_decay``: the drop of a metric below the deployed
    version's validation value that counts as decay (default: 0.05 on the version's primary metric).
    ``slice_decay``: ``act`` (default) — a slice segment with at least ``min_samples`` labelled rows whose
    metric fell more than ``max_decay`` below the version's validation value for that segment is decay
    and runs ``on_decay``; ``report`` — shown and stored, never acted on.
    """

    path: str  # relative to the project directory: parquet, csv or jsonl
    format: Literal["parquet", "csv", "jsonl"] | None = None
    label: str
    join: Literal["request_id", "entity"] = "request_id"
    request_id: str = "request_id"
    entity_keys: list[str] | None = Field(default=None, min_length=1)
    timestamp_field: str | None = None
    tolerance: str = Field(default="1h", pattern=DURATION_PATTERN)
    lookback: str = Field(default="30d", pattern=DURATION_PATTERN)  # how far back predictions are joined
    last: int = Field(default=1000, gt=0)  # the newest N labelled predictions are evaluated
    min_samples: int = Field(default=100, ge=1)
    metrics: list[str] = Field(default_factory=list)  # default: the version's recorded metrics
    slices: list[str] = Field(default_factory=list)  # label-file columns, logged features or entity keys
    max_decay: dict[str, float] = Field(default_factory=dict)
    slice_decay: Literal["act", "report"] = "act"

    @model_validator(mode="after")
    def _entity_join(self):
        if self.join == "entity" and not (self.entity_keys and self.timestamp_field):
            raise ValueError("join: entity needs entity_keys and timestamp_field")
        return self


class SkewCheck(StrictModel):
    """Training/serving skew on live traffic, checked on every run: the deployment's newest ``last``
    answered requests, each feature it served against what training would have used for that request
    (the offline value as of the request's time; derived features recomputed from the logged inputs).
    Any difference beyond ``tolerance`` is skew (exit 3) and runs ``on_skew``."""

    last: int = Field(default=200, gt=0, le=100_000)
    tolerance: float = Field(default=1e-6, ge=0)
    on_skew: list[Literal["alert"]] = Field(default_factory=lambda: ["alert"])  # a retrain cannot mend skew


class AlertSpec(StrictModel):
    """Where `alert` goes besides the log line and the exit code: an optional webhook (JSON POST)."""

    webhook: str | None = Field(default=None, pattern=r"^https?://")
    webhook_env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")  # env var holding the URL
    timeout_s: float = Field(default=5.0, gt=0, le=60)


class Monitor(SpecBase):
    kind: Literal["Monitor"]
    deployment: str
    detector: BackendBlock
    features: list[str] | None = Field(default=None, min_length=1)  # default: every feature of the version
    predictions: bool = True  # also watch the prediction distribution
    window: MonitorWindow = Field(default_factory=MonitorWindow)
    schedule: str | None = Field(default=None, pattern=DURATION_PATTERN)  # `ml monitor watch` interval
    ground_truth: GroundTruth | None = None
    skew: SkewCheck | None = None  # training/serving skew on the logged requests (needs the models plugin)
    on_drift: list[MonitorAction] = Field(default_factory=list)
    on_decay: list[MonitorAction] | None = None  # default: the same as on_drift
    alert: AlertSpec | None = None
    cooldown: str = Field(default="6h", pattern=DURATION_PATTERN)  # retrain/rollback at most once per cooldown
    backend_field: ClassVar[str] = "detector"

    @field_validator("on_drift", "on_decay")
    @classmethod
    def _unique(cls, value):
        if value is not None and len(set(value)) != len(value):
            raise ValueError("each action may be listed once")
        if value is not None and "retrain" in value and "rollback" in value:
            raise ValueError("retrain and rollback contradict each other: choose one")
        return value
