"""Core spec kinds: the fields the engine itself understands.

Each kind names the field that holds its backend (``backend_field``): the core validates everything
else and hands that block, minus ``backend``, to the owning provider's config model (two-phase
validation). Unknown fields are rejected everywhere in the core models.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, ClassVar, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "SpecBase",
    "BackendBlock",
    "Entity",
    "Source",
    "FeatureView",
    "FeatureService",
    "FeatureStore",
    "InlineSource",
    "Model",
    "Deployment",
    "DeploymentInput",
    "DeploymentAuth",
    "DeploymentRateLimit",
    "DeploymentRollout",
    "RolloutAnalysis",
    "Monitor",
    "MonitorWindow",
    "GroundTruth",
    "AlertSpec",
    "BatchPrediction",
    "BatchInput",
    "BatchOutput",
    "BatchPostgres",
    "KINDS",
    "PLURALS",
    "NON_BEHAVIOURAL",
    "parse_duration",
]

NAME_PATTERN = r"^[A-Za-z][A-Za-z0-9_\-]*$"
DURATION_PATTERN = r"^\d+(s|m|h|d|w)$"
# Fields that describe a resource without changing what it does: never trigger a change.
NON_BEHAVIOURAL = frozenset({"description", "labels"})

_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> int:
    """'7d' -> seconds."""
    match = re.fullmatch(r"(\d+)([smhdw])", text)
    if not match:
        raise ValueError(f"not a duration: {text!r} (use e.g. 30s, 15m, 6h, 7d, 2w)")
    return int(match.group(1)) * _DURATION_UNITS[match.group(2)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False)


class BackendBlock(BaseModel):
    """A block that names its backend; the remaining keys belong to the backend's config model."""

    model_config = ConfigDict(extra="allow")
    backend: str


class SpecBase(_Strict):
    kind: str
    name: str = Field(pattern=NAME_PATTERN)
    description: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)

    # Dotted path of the block that names the backend, or the name of a top-level `backend` string field.
    backend_field: ClassVar[str] = "backend"
    default_backend: ClassVar[str | None] = None

    @property
    def address(self) -> str:
        return f"{self.kind.lower()}.{self.name}"

    def backend_name(self) -> str:
        value = getattr(self, self.backend_field)
        return value.backend if isinstance(value, BackendBlock) else value

    def backend_settings(self) -> dict[str, Any]:
        """The keys the backend's config model validates (location prefix: ``settings_path()``)."""
        value = getattr(self, self.backend_field)
        if isinstance(value, BackendBlock):
            return dict(value.model_extra or {})
        return dict(getattr(self, "options", {}) or {})

    def settings_path(self) -> tuple[str, ...]:
        value = getattr(self, self.backend_field)
        return (self.backend_field,) if isinstance(value, BackendBlock) else ("options",)

    def references(self) -> list[tuple[str, str]]:
        """(field path, target address) for every other resource this one depends on."""
        return []


# --- features -----------------------------------------------------------------------------------


class ColumnChecks(_Strict):
    """Data-contract rules for one column, compiled to pandera checks by the feature backend."""

    nullable: bool | None = None  # default: nulls are not allowed
    ge: float | None = None
    le: float | None = None
    gt: float | None = None
    lt: float | None = None
    between: tuple[float, float] | None = None  # inclusive
    isin: list[Any] | None = None
    regex: str | None = None  # the whole value must match
    unique: bool | None = None

    @field_validator("between")
    @classmethod
    def _ordered(cls, value):
        if value is not None and value[0] > value[1]:
            raise ValueError(f"between needs low <= high, got {list(value)}")
        return value

    @field_validator("regex")
    @classmethod
    def _compiles(cls, value):
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"not a valid regular expression: {exc}") from None
        return value


class DatasetChecks(_Strict):
    min_rows: int | None = Field(default=None, ge=0)
    max_age: str | None = Field(default=None, pattern=DURATION_PATTERN)  # freshness of the newest timestamp


Dtype = Literal["int32", "int64", "float32", "float64", "string", "bool", "timestamp"]


class FeatureSpec(_Strict):
    dtype: Dtype
    description: str | None = None
    checks: ColumnChecks | None = None


class Entity(SpecBase):
    kind: Literal["Entity"]
    join_keys: list[str] | None = Field(default=None, min_length=1, max_length=1)  # defaults to [name]
    dtype: Literal["int64", "string"] = "int64"
    backend: str = "feast"
    options: dict[str, Any] = Field(default_factory=dict)

    @property
    def join_key(self) -> str:
        return (self.join_keys or [self.name])[0]


class Source(SpecBase):
    kind: Literal["Source"]
    path: str  # relative to the project directory
    format: Literal["parquet", "csv"] | None = None  # inferred from the file suffix
    timestamp_field: str
    created_timestamp_field: str | None = None
    columns: dict[str, FeatureSpec] = Field(default_factory=dict)
    checks: DatasetChecks | None = None
    backend: str = "feast"
    options: dict[str, Any] = Field(default_factory=dict)


class InlineSource(_Strict):
    """A feature view's own data file, when no separate Source spec is worth declaring."""

    path: str
    format: Literal["parquet", "csv"] | None = None
    timestamp_field: str
    created_timestamp_field: str | None = None


class FeatureView(SpecBase):
    kind: Literal["FeatureView"]
    entities: list[str] = Field(min_length=1)
    source: str | InlineSource  # a Source name, or an inline {path, timestamp_field}
    ttl: str | None = Field(default=None, pattern=DURATION_PATTERN)
    online: bool = True
    features: dict[str, FeatureSpec] = Field(min_length=1)
    checks: DatasetChecks | None = None
    store: str | None = None  # a FeatureStore name: switching its online store re-materializes the view
    backend: str = "feast"
    options: dict[str, Any] = Field(default_factory=dict)

    def references(self) -> list[tuple[str, str]]:
        refs = [(f"entities.{i}", f"entity.{e}") for i, e in enumerate(self.entities)]
        if isinstance(self.source, str):
            refs.append(("source", f"source.{self.source}"))
        if self.store:
            refs.append(("store", f"featurestore.{self.store}"))
        return refs


def _feature_ref_targets(field_name: str, refs: list[str]) -> list[tuple[str, str]]:
    """'view:feature' / 'view:*' refer to a feature view; a bare name refers to a feature service."""
    out = []
    for i, ref in enumerate(refs):
        view, sep, _ = ref.partition(":")
        out.append((f"{field_name}.{i}", f"featureview.{view}" if sep else f"featureservice.{ref}"))
    return out


class FeatureService(SpecBase):
    kind: Literal["FeatureService"]
    features: list[str] = Field(min_length=1)
    backend: str = "feast"
    options: dict[str, Any] = Field(default_factory=dict)

    def references(self) -> list[tuple[str, str]]:
        return _feature_ref_targets("features", self.features)


class SqliteOnlineStore(_Strict):
    type: Literal["sqlite"]
    path: str = "data/online_store.db"  # relative to the feature repository


class RedisOnlineStore(_Strict):
    type: Literal["redis"]
    connection_string: str = "127.0.0.1:6379"  # host:port[,db=0,ssl=true] — no password here
    password_env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")  # env var holding it
    key_ttl_seconds: int | None = Field(default=None, gt=0)

    @field_validator("connection_string")
    @classmethod
    def _no_password(cls, value: str) -> str:
        if re.search(r"(^|,)\s*password\s*=", value):
            raise ValueError("do not write a password into specs; name its environment variable in password_env")
        return value


OnlineStoreSpec = Annotated[Union[SqliteOnlineStore, RedisOnlineStore], Field(discriminator="type")]


class FeatureStore(SpecBase):
    """The feature store's online store. Feature views naming it (``store: default``) depend on it, so
    switching stores (e.g. an env overlay selecting Redis) is a planned change that re-materializes them."""

    kind: Literal["FeatureStore"]
    online_store: OnlineStoreSpec = Field(default_factory=lambda: SqliteOnlineStore(type="sqlite"))
    backend: str = "feast"
    options: dict[str, Any] = Field(default_factory=dict)


# --- models ---------------------------------------------------------------------------------------


class LabelSpec(_Strict):
    source: str
    column: str
    timestamp_field: str | None = None


class SplitSpec(_Strict):
    by: Literal["time", "random"] = "time"
    valid: float = Field(default=0.2, gt=0, lt=1)
    seed: int = 0


class Model(SpecBase):
    kind: Literal["Model"]
    task: Literal["binary", "multiclass", "regression"]
    label: LabelSpec
    features: list[str] = Field(min_length=1)
    split: SplitSpec = Field(default_factory=SplitSpec)
    trainer: BackendBlock
    metrics: list[str] = Field(default_factory=list)
    gates: list[str] = Field(default_factory=list)
    slices: list[str] = Field(default_factory=list)
    backend_field: ClassVar[str] = "trainer"

    def references(self) -> list[tuple[str, str]]:
        return [("label.source", f"source.{self.label.source}")] + _feature_ref_targets("features", self.features)


# --- serving and monitoring -------------------------------------------------------------------------


ROLLOUT_DURATION_PATTERN = r"^\d+(\.\d+)?(ms|s|m|h)$"  # rollout timings: "500ms", "10s", "5m"
RolloutDuration = Annotated[Union[float, str], Field(union_mode="left_to_right")]
_SECRET_FIELDS = ("api_key", "api_keys", "key", "keys", "token", "tokens", "secret", "password")


def _check_rollout_duration(value: Any, field_name: str) -> Any:
    if isinstance(value, bool):
        raise ValueError(f"{field_name}: expected seconds or a duration like 500ms, 10s, 5m")
    if isinstance(value, (int, float)):
        if value <= 0:
            raise ValueError(f"{field_name} must be positive")
        return float(value)
    if not re.fullmatch(ROLLOUT_DURATION_PATTERN, str(value)):
        raise ValueError(f"{field_name}: not a duration: {value!r} (use e.g. 500ms, 10s, 5m, 1h)")
    return value


class DeploymentInput(_Strict):
    """What a request may carry. ``entity_keys``: join keys whose features are fetched from the Feast
    online store; ``raw_features``: feature values sent in the request (they override fetched ones).
    ``on_unknown_entity``: ``reject`` answers 404; ``missing`` predicts with those features missing (NaN)."""

    entity_keys: list[str] = Field(default_factory=list)
    raw_features: bool | None = None  # default: true when no entity keys are declared
    on_unknown_entity: Literal["reject", "missing"] = "reject"

    @model_validator(mode="after")
    def _some_input(self):
        if self.raw_features is None:
            self.raw_features = not self.entity_keys
        if not self.entity_keys and not self.raw_features:
            raise ValueError("requests need a way in: declare entity_keys, or allow raw_features")
        if len(set(self.entity_keys)) != len(self.entity_keys):
            raise ValueError("entity_keys lists a key twice")
        return self


class DeploymentAuth(_Strict):
    """API keys, read by the service from an environment variable (comma-separated) and/or a file (one
    key per line, re-read when it changes) — never from the spec. Requests send ``X-API-Key: KEY`` (or
    the header named here) or ``Authorization: Bearer KEY``."""

    api_keys_env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    api_keys_file: str | None = None  # relative to the project directory
    header: str = Field(default="x-api-key", pattern=r"^[A-Za-z0-9\-]+$")

    @model_validator(mode="before")
    @classmethod
    def _no_literal_keys(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for name in data:
                if str(name).lower() in _SECRET_FIELDS:
                    raise ValueError(f"do not write API keys into specs ({name!r}): name an environment "
                                     "variable in api_keys_env or a file in api_keys_file")
        return data

    @model_validator(mode="after")
    def _one_source(self):
        if not self.api_keys_env and not self.api_keys_file:
            raise ValueError("auth needs api_keys_env (an environment variable) or api_keys_file")
        return self


class DeploymentRateLimit(_Strict):
    """A token bucket: ``requests_per_second`` sustained, ``burst`` at once; per API key, per client
    address or for everyone (``global``). Requests over it get 429 with Retry-After."""

    requests_per_second: float = Field(gt=0)
    burst: int | None = Field(default=None, ge=1)  # default: one second's worth (at least 1)
    per: Literal["global", "api_key", "client"] = "global"


AnalysisCheck = Literal["error_rate", "p99", "p99_ratio", "prediction_shift", "agreement"]


class RolloutAnalysis(_Strict):
    """Checks of the candidate against stable, per step (Argo Rollouts / Flagger style).

    A step with fewer than ``min_requests`` candidate requests is inconclusive, never passed. Error rate:
    candidate 5xx / requests. p99: ``max_p99_ms`` absolute and/or ``max_p99_ratio`` x stable's p99.
    Prediction shift: the two-sample Kolmogorov-Smirnov distance between candidate and stable predictions
    (counted only when also statistically significant). Agreement (shadow, blue_green): the share of
    mirrored requests whose predictions differ by at most ``agreement_tolerance``. ``dry_run``: metrics
    reported but not enforced. ``retrain_dry_run``: also reported, not enforced, when a monitor's
    ``retrain`` started the rollout (default: prediction shift — a model retrained after drift or decay is
    meant to answer differently from the one it replaces; its gates judged it on fresh data)."""

    min_requests: int = Field(default=100, ge=1)
    max_error_rate: float = Field(default=0.01, ge=0, le=1)
    max_p99_ms: float | None = Field(default=None, gt=0)
    max_p99_ratio: float | None = Field(default=None, gt=0)
    max_prediction_shift: float | None = Field(default=0.1, ge=0, le=1)
    min_agreement: float | None = Field(default=0.95, ge=0, le=1)
    agreement_tolerance: float = Field(default=0.05, ge=0)
    dry_run: list[AnalysisCheck] = Field(default_factory=list)
    retrain_dry_run: list[AnalysisCheck] = Field(default_factory=lambda: ["prediction_shift"])


class DeploymentRollout(_Strict):
    """How a new model version replaces the one serving: ``recreate`` (switch at once, no analysis),
    ``canary`` (weights ``steps``, analysis at each), ``shadow`` (candidate answers a copy of the traffic,
    users see stable), ``ab`` (``split`` % sticky per entity key), ``blue_green`` (candidate warmed with
    ``warmup_requests`` and checked on mirrored traffic, then an instant switch). Each analysed step
    collects for ``interval``, waits up to ``max_wait`` for enough requests, and rolls back after
    ``failure_limit`` failed checks."""

    strategy: Literal["recreate", "canary", "shadow", "ab", "blue_green"] = "recreate"
    steps: list[float] = Field(default_factory=lambda: [5.0, 25.0, 100.0], min_length=1)
    split: float = Field(default=50.0, gt=0, lt=100)
    interval: RolloutDuration = "30s"
    max_wait: RolloutDuration = "5m"
    failure_limit: int = Field(default=1, ge=1)
    on_inconclusive: Literal["rollback", "pause"] = "rollback"
    warmup_requests: int = Field(default=20, ge=0)
    analysis: RolloutAnalysis = Field(default_factory=RolloutAnalysis)

    @field_validator("steps")
    @classmethod
    def _steps(cls, value: list[float]) -> list[float]:
        if any(not (0 < w <= 100) for w in value):
            raise ValueError("canary weights are percentages in (0, 100]")
        if any(b <= a for a, b in zip(value, value[1:])):
            raise ValueError("canary weights must increase, e.g. [5, 25, 100]")
        return value

    @field_validator("interval", "max_wait")
    @classmethod
    def _duration(cls, value: Any, info) -> Any:
        return _check_rollout_duration(value, info.field_name)


class Deployment(SpecBase):
    kind: Literal["Deployment"]
    model: str  # "fraud" (follows its production alias), "fraud@candidate" or "fraud:v3"
    serving: BackendBlock
    rollout: DeploymentRollout = Field(default_factory=DeploymentRollout)
    input: DeploymentInput = Field(default_factory=DeploymentInput)
    auth: DeploymentAuth | None = None
    rate_limit: DeploymentRateLimit | None = None
    backend_field: ClassVar[str] = "serving"

    @field_validator("model")
    @classmethod
    def _model_ref(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_\-]*([@:][A-Za-z0-9_.\-]+)?", value):
            raise ValueError("expected a model name, optionally with @alias or :version")
        return value

    @property
    def model_name(self) -> str:
        return re.split(r"[@:]", self.model)[0]

    def references(self) -> list[tuple[str, str]]:
        return [("model", "model." + self.model_name)]


MonitorAction = Literal["alert", "retrain", "rollback"]


class MonitorWindow(_Strict):
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


class GroundTruth(_Strict):
    """Labels that arrive after the predictions, joined to the prediction log.

    ``join: request_id`` matches the label file's ``request_id`` column with the logged request ids;
    ``join: entity`` matches on ``entity_keys`` and the nearest logged prediction within ``tolerance``
    of the label's ``timestamp_field``. ``max_decay``: the drop of a metric below the deployed
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


class AlertSpec(_Strict):
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

    def references(self) -> list[tuple[str, str]]:
        return [("deployment", f"deployment.{self.deployment}")]


# --- batch scoring ------------------------------------------------------------------------------------------

_BATCH_ALIASES = ("candidate", "production", "previous")
_ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"
_SQL_NAME = r"^[A-Za-z_][A-Za-z0-9_]{0,62}(\.[A-Za-z_][A-Za-z0-9_]{0,62})?$"


class BatchInput(_Strict):
    """The rows to score: a Source (by name) or a parquet/CSV file. ``features``: ``lookup`` joins the
    model version's features point-in-time (as of ``timestamp_field``, by the entity keys) through the
    same path its training used; ``raw``: the feature columns are in the file; ``auto``: raw when every
    feature column is present, else lookup."""

    source: str | None = Field(default=None, pattern=NAME_PATTERN)
    path: str | None = None  # relative to the project directory
    format: Literal["parquet", "csv"] | None = None  # inferred from the file suffix
    timestamp_field: str | None = None  # default: the source's timestamp_field
    features: Literal["auto", "lookup", "raw"] = "auto"

    @model_validator(mode="after")
    def _one_input(self):
        if bool(self.source) == bool(self.path):
            raise ValueError("name exactly one of source (a Source spec) or path (a parquet or CSV file)")
        return self


class BatchPostgres(_Strict):
    """A PostgreSQL table replaced by every run (in one transaction). The server's URL is read from the
    environment variable ``url_env`` at apply time — never written into specs or state."""

    url_env: str = Field(pattern=_ENV_NAME)
    table: str = Field(pattern=_SQL_NAME)  # "scores" or "schema.scores"

    @model_validator(mode="before")
    @classmethod
    def _no_literal_url(cls, data: Any) -> Any:
        if isinstance(data, dict):
            literal = [name for name in data if str(name).lower() in ("url", "dsn", "password", "connection_string", "uri")]
            if literal:
                for name in literal:  # the error echoes its input: never the secret itself
                    data[name] = "(redacted)"
                raise ValueError(f"do not write database URLs or passwords into specs ({literal[0]!r}): name the "
                                 "environment variable that holds the URL in url_env")
        return data


class BatchOutput(_Strict):
    """Where predictions go: a parquet file (written to a temporary file, then renamed) and optionally a
    PostgreSQL table. ``columns``: input columns copied next to the predictions (default: every input
    column that is not a model feature)."""

    path: str  # relative to the project directory
    columns: list[str] | None = None
    prediction_column: str = Field(default="prediction", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    postgres: BatchPostgres | None = None


class BatchPrediction(SpecBase):
    kind: Literal["BatchPrediction"]
    model: str  # "fraud" (its production version), "fraud@candidate" or "fraud:v3"
    input: BatchInput
    output: BatchOutput
    backend: str = "batch"
    options: dict[str, Any] = Field(default_factory=dict)

    @field_validator("model")
    @classmethod
    def _model_ref(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_\-]*([@:][A-Za-z0-9_.\-]+)?", value):
            raise ValueError("expected a model name, optionally with @alias or :version")
        if "@" in value and value.split("@", 1)[1] not in _BATCH_ALIASES:
            raise ValueError(f"unknown alias {value.split('@', 1)[1]!r} (aliases: {', '.join(_BATCH_ALIASES)})")
        if ":" in value and not re.fullmatch(r"[vV]?[1-9][0-9]*", value.split(":", 1)[1]):
            raise ValueError("a pinned version looks like fraud:v3")
        return value

    @property
    def model_name(self) -> str:
        return re.split(r"[@:]", self.model)[0]

    def references(self) -> list[tuple[str, str]]:
        refs = [("model", "model." + self.model_name)]
        if self.input.source:
            refs.append(("input.source", f"source.{self.input.source}"))
        return refs


KINDS: dict[str, type[SpecBase]] = {
    cls.__name__: cls
    for cls in (FeatureStore, Entity, Source, FeatureView, FeatureService, Model, Deployment, Monitor,
                BatchPrediction)
}
# Keys of the composed tree, e.g. `ml plan models.fraud.trainer.params.num_leaves=63`.
PLURALS: dict[str, str] = {
    "FeatureStore": "feature_stores",
    "Entity": "entities",
    "Source": "sources",
    "FeatureView": "feature_views",
    "FeatureService": "feature_services",
    "Model": "models",
    "Deployment": "deployments",
    "Monitor": "monitors",
    "BatchPrediction": "batch_predictions",
}
