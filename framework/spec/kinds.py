"""Core spec kinds: the fields the engine itself understands.

Each kind names the field that holds its backend (``backend_field``): the core validates everything
else and hands that block, minus ``backend``, to the owning provider's config model (two-phase
validation). Unknown fields are rejected everywhere in the core models.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, ClassVar, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator

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
    "Monitor",
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


class Deployment(SpecBase):
    kind: Literal["Deployment"]
    model: str  # "fraud" (follows its production alias), "fraud@candidate" or "fraud:v3"
    serving: BackendBlock
    rollout: dict[str, Any] | None = None
    input: dict[str, Any] | None = None
    auth: dict[str, Any] | None = None
    rate_limit: dict[str, Any] | None = None
    backend_field: ClassVar[str] = "serving"

    @field_validator("model")
    @classmethod
    def _model_ref(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_\-]*([@:][A-Za-z0-9_.\-]+)?", value):
            raise ValueError("expected a model name, optionally with @alias or :version")
        return value

    def references(self) -> list[tuple[str, str]]:
        return [("model", "model." + re.split(r"[@:]", self.model)[0])]


class Monitor(SpecBase):
    kind: Literal["Monitor"]
    deployment: str
    detector: BackendBlock
    features: list[str] | None = None
    predictions: bool = True
    window: dict[str, Any] | None = None
    schedule: str | None = None
    ground_truth: dict[str, Any] | None = None
    on_drift: list[Literal["alert", "retrain", "rollback"]] = Field(default_factory=list)
    backend_field: ClassVar[str] = "detector"

    def references(self) -> list[tuple[str, str]]:
        return [("deployment", f"deployment.{self.deployment}")]


KINDS: dict[str, type[SpecBase]] = {
    cls.__name__: cls
    for cls in (FeatureStore, Entity, Source, FeatureView, FeatureService, Model, Deployment, Monitor)
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
}
