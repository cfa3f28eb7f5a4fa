"""The Deployment kind (schema only: pydantic): input contract, auth, rate limit, rollout and its analysis.
Serving backends (bentoml) validate its ``serving`` block."""

from __future__ import annotations

import re
from typing import Annotated, Any, ClassVar, Literal, Union

from pydantic import Field, field_validator, model_validator

from ml_framework.spec.kinds import DURATION_PATTERN, BackendBlock, SpecBase, StrictModel


__all__ = ["ROLLOUT_DURATION_PATTERN", "DeploymentInput", "DeploymentAuth", "DeploymentRateLimit", "AnalysisCheck", "RolloutAnalysis", "RolloutReplay", "DeploymentRollout", "ServesModel", "Deployment"]


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


class DeploymentInput(StrictModel):
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


class DeploymentAuth(StrictModel):
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


class DeploymentRateLimit(StrictModel):
    """A token bucket: ``requests_per_second`` sustained, ``burst`` at once; per API key, per client
    address or for everyone (``global``). Requests over it get 429 with Retry-After."""

    requests_per_second: float = Field(gt=0)
    burst: int | None = Field(default=None, ge=1)  # default: one second's worth (at least 1)
    per: Literal["global", "api_key", "client"] = "global"


class DeploymentExplain(StrictModel):
    """Per-prediction explanations: each answer can carry the ``top_k`` largest feature contributions to
    its raw output — when the request asks (``"explain": true`` in the body, if ``on_request``) or
    ``always``. Served by the model flavour's explainer (LightGBM: exact tree contributions)."""

    on_request: bool = True
    always: bool = False
    top_k: int = Field(default=5, ge=1, le=1000)


class DecisionLog(StrictModel):
    """How long answered requests stay retrievable (``ml decisions``): segments older than ``retention``
    are dropped, and the oldest beyond ``max_mb``."""

    retention: str = Field(default="90d", pattern=DURATION_PATTERN)
    max_mb: int = Field(default=512, ge=1, le=1_000_000)


AnalysisCheck = Literal["error_rate", "p99", "p99_ratio", "cost_ratio", "prediction_shift", "agreement"]


class RolloutAnalysis(StrictModel):
    """Checks of the candidate against stable, per step (Argo Rollouts / Flagger style).

    A step with fewer than ``min_requests`` candidate requests is inconclusive, never passed. Error rate:
    candidate 5xx / requests. p99: ``max_p99_ms`` absolute and/or ``max_p99_ratio`` x stable's p99.
    Prediction shift: the two-sample Kolmogorov-Smirnov distance between candidate and stable predictions
    (counted only when also statistically significant). Agreement (shadow, blue_green): the share of
    mirrored requests whose predictions agree: within ``agreement_tolerance`` — by default, for the
    model's task: binary ±0.05 in probability; regression ±0.5 × the stable version's validation RMSE (on
    the label's scale; 5% of the value when the version has none); multiclass the same class and at most
    0.1 total-variation distance between the probability vectors. ``dry_run``: metrics
    reported but not enforced. ``retrain_dry_run``: also reported, not enforced, when a monitor's
    ``retrain`` started the rollout (default: prediction shift — a model retrained after drift or decay is
    meant to answer differently from the one it replaces; its gates judged it on fresh data)."""

    min_requests: int = Field(default=100, ge=1)
    max_error_rate: float = Field(default=0.01, ge=0, le=1)
    max_p99_ms: float | None = Field(default=None, gt=0)
    max_p99_ratio: float | None = Field(default=None, gt=0)
    # candidate's CPU per prediction at most this x stable's (both measured in the same workers)
    max_cost_ratio: float | None = Field(default=None, gt=0)
    max_prediction_shift: float | None = Field(default=0.1, ge=0, le=1)
    min_agreement: float | None = Field(default=0.95, ge=0, le=1)
    agreement_tolerance: float | None = Field(default=None, ge=0)  # None: the task's default (see above)
    dry_run: list[AnalysisCheck] = Field(default_factory=list)
    retrain_dry_run: list[AnalysisCheck] = Field(default_factory=lambda: ["prediction_shift"])


class RolloutReplay(StrictModel):
    """``on_inconclusive: replay``: what a step replays when live traffic stays below ``min_requests`` for
    ``max_wait`` — e.g. a CI apply with no traffic. ``sources`` in order: ``prediction_log`` (this
    deployment's recent successful requests, with the feature values they were answered with) and
    ``validation`` (the candidate's held-out validation rows). ``requests``: how many (default and minimum:
    ``analysis.min_requests``). Both versions score the same inputs inside the service; the step is
    judged like a shadow on them (error rate, latency, prediction shift; agreement for shadow and
    blue_green). Replayed requests are not logged as predictions and no caller sees them."""

    sources: list[Literal["prediction_log", "validation"]] = Field(
        default_factory=lambda: ["prediction_log", "validation"], min_length=1)
    requests: int | None = Field(default=None, ge=1, le=100_000)


class DeploymentRollout(StrictModel):
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
    # Live traffic below min_requests for max_wait: roll back (default), pause (the next apply resumes the
    # step), or replay recorded inputs to both versions and judge the step on them (see RolloutReplay).
    on_inconclusive: Literal["rollback", "pause", "replay"] = "rollback"
    replay: RolloutReplay = Field(default_factory=RolloutReplay)
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


class ServesModel(SpecBase):
    """A kind that serves a model: ``model`` names it ("fraud" follows its production alias; "fraud@candidate",
    "fraud:v3") and makes the Model an upstream. Shared by the Deployment kind and the kinds other plugins
    contribute (a stream deployment)."""

    model: str

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


class Deployment(ServesModel):
    kind: Literal["Deployment"]
    model: str  # "fraud" (follows its production alias), "fraud@candidate" or "fraud:v3"
    serving: BackendBlock
    rollout: DeploymentRollout = Field(default_factory=DeploymentRollout)
    input: DeploymentInput = Field(default_factory=DeploymentInput)
    auth: DeploymentAuth | None = None
    rate_limit: DeploymentRateLimit | None = None
    explain: DeploymentExplain = Field(default_factory=DeploymentExplain)
    decision_log: DecisionLog = Field(default_factory=DecisionLog)
    backend_field: ClassVar[str] = "serving"
