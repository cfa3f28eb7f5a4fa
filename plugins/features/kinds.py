"""The feature kinds: FeatureStore, Entity, Source, FeatureView and FeatureService (schemas only: pydantic).

The feast backend implements them; ``ColumnChecks``/``DatasetChecks`` are the data-contract rules any
feature backend compiles (feast: to pandera)."""

from __future__ import annotations

import re
from typing import Annotated, Any, ClassVar, Literal, Union

from pydantic import Field, field_validator, model_validator

from ml_framework.spec.kinds import DURATION_PATTERN, SpecBase, StrictModel


__all__ = ["ColumnChecks", "DatasetChecks", "Dtype", "FeatureSpec", "Entity", "Source", "InlineSource", "FeatureView", "FeatureService", "SqliteOnlineStore", "RedisOnlineStore", "FeatureStore", "feature_ref_targets", "DerivedFeature", "OnDemandFeatureView", "Aggregation"]


class ColumnChecks(StrictModel):
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


class DatasetChecks(StrictModel):
    min_rows: int | None = Field(default=None, ge=0)
    max_age: str | None = Field(default=None, pattern=DURATION_PATTERN)  # freshness of the newest timestamp


Dtype = Literal["int32", "int64", "float32", "float64", "string", "bool", "timestamp"]


class FeatureSpec(StrictModel):
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

    local_fields: ClassVar[frozenset[str]] = frozenset({"checks"})  # re-checks the data, retrains nothing


class InlineSource(StrictModel):
    """A feature view's own data file, when no separate Source spec is worth declaring."""

    path: str
    format: Literal["parquet", "csv"] | None = None
    timestamp_field: str
    created_timestamp_field: str | None = None


class Aggregation(StrictModel):
    """A windowed aggregation of the source's events, by entity: ``function`` of ``column`` over the
    ``window`` ending at each event (count needs no column). See plugins/features/aggregates.py."""

    function: Literal["sum", "mean", "count", "min", "max", "last"]
    window: str = Field(pattern=DURATION_PATTERN)
    column: str | None = None
    dtype: Literal["float32", "float64", "int64", "string"] | None = None  # default: float64 (int64 for count)
    description: str | None = None
    checks: ColumnChecks | None = None

    @model_validator(mode="after")
    def _column(self):
        if self.function != "count" and not self.column:
            raise ValueError(f"{self.function} needs a column")
        return self

    @property
    def feature_dtype(self) -> str:
        return self.dtype or ("int64" if self.function == "count" else "float64")


class FeatureView(SpecBase):
    kind: Literal["FeatureView"]
    entities: list[str] = Field(min_length=1)
    source: str | InlineSource  # a Source name, or an inline {path, timestamp_field}
    ttl: str | None = Field(default=None, pattern=DURATION_PATTERN)
    online: bool = True
    features: dict[str, FeatureSpec] = Field(default_factory=dict)
    # computed at apply from the source's events instead of read as columns: name -> aggregation
    aggregations: dict[str, Aggregation] = Field(default_factory=dict)
    checks: DatasetChecks | None = None
    store: str | None = None  # a FeatureStore name: switching its online store re-materializes the view
    backend: str = "feast"
    options: dict[str, Any] = Field(default_factory=dict)

    local_fields: ClassVar[frozenset[str]] = frozenset({"checks"})  # re-checks the data, retrains nothing

    @model_validator(mode="after")
    def _aggregated(self):
        if self.aggregations:
            clash = sorted(set(self.features) - set(self.aggregations))
            if clash:
                raise ValueError(f"a view with aggregations has no other features ({', '.join(clash)}): "
                                 "its features are its aggregations")
            # the features the view serves: one per aggregation (declared by the aggregation)
            self.features = {name: FeatureSpec(dtype=a.feature_dtype, description=a.description, checks=a.checks)
                             for name, a in self.aggregations.items()}
        elif not self.features:
            raise ValueError("a feature view needs features (or aggregations)")
        return self

    def references(self) -> list[tuple[str, str]]:
        # entities and store are declared in the Kind; the source may be inline
        return [("source", f"source.{self.source}")] if isinstance(self.source, str) else []


def feature_ref_targets(field_name: str, refs: list[str]) -> list[tuple[str, str]]:
    """'view:feature' / 'view:*' refer to a feature view (or an on-demand one); a bare name refers to a
    feature service."""
    out = []
    for i, ref in enumerate(refs):
        view, sep, _ = ref.partition(":")
        out.append((f"{field_name}.{i}", f"featureview.{view}|ondemandfeatureview.{view}" if sep
                    else f"featureservice.{ref}"))
    return out


class DerivedFeature(StrictModel):
    """One feature an on-demand view computes: ``expr`` in the expression language
    (ml_framework.plugins.features.expressions) or ``function``, a Python function of the project
    (``path/to/file.py:name``, called with the inputs as arrays), its ``dtype``, and ``fill``, the value
    of a null result."""

    expr: str | None = Field(default=None, min_length=1)
    function: str | None = Field(default=None, pattern=r"^[^:]+\.py:[A-Za-z_][A-Za-z0-9_]*$")
    dtype: Literal["float32", "float64", "int32", "int64", "bool", "string"]
    description: str | None = None
    fill: float | int | bool | str | None = None

    @model_validator(mode="after")
    def _one_way(self):
        if (self.expr is None) == (self.function is None):
            raise ValueError("give exactly one of expr (an expression) or function (file.py:name)")
        return self


class OnDemandFeatureView(SpecBase):
    """Features computed when they are asked for, from the request's fields (``request``: name -> dtype)
    and the online features of ``views``, by expressions checked at ``ml validate``. The same definition
    computes the training frame's values and a request's (Feast's on-demand feature views)."""

    kind: Literal["OnDemandFeatureView"]
    request: dict[str, Literal["float32", "float64", "int32", "int64", "bool", "string", "timestamp"]] = Field(
        default_factory=dict)
    views: list[str] = Field(default_factory=list)
    features: dict[str, DerivedFeature] = Field(min_length=1)
    backend: str = "feast"
    options: dict[str, Any] = Field(default_factory=dict)


class FeatureService(SpecBase):
    kind: Literal["FeatureService"]
    features: list[str] = Field(min_length=1)
    backend: str = "feast"
    options: dict[str, Any] = Field(default_factory=dict)

    def references(self) -> list[tuple[str, str]]:
        return feature_ref_targets("features", self.features)


class SqliteOnlineStore(StrictModel):
    type: Literal["sqlite"]
    path: str = "data/online_store.db"  # relative to the feature repository


class RedisOnlineStore(StrictModel):
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
