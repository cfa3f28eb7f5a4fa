"""What one monitor run found: plain data, stored as a time series and rendered by the CLI and the report."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["DRIFT", "OK", "INCONCLUSIVE", "ERROR", "DECAY", "SKEW", "SkewFinding", "FeatureResult", "DriftResult", "MetricResult",
           "PerformanceResult", "VersionResult", "ActionOutcome", "RunResult"]

DRIFT, OK, INCONCLUSIVE, ERROR, DECAY, SKEW = "drift", "ok", "inconclusive", "error", "decay", "skew"


@dataclass
class FeatureResult:
    name: str
    kind: str  # numeric | categorical
    test: str  # ks | chi2 | mmd | none
    p_val: float | None = None
    distance: float | None = None
    drift: bool | None = None  # None: not tested (absent, not covered by the method)
    n: int = 0  # rows with a value
    missing: int = 0
    unseen: dict[str, int] = field(default_factory=dict)  # categorical: values never seen in the reference
    note: str | None = None


@dataclass
class DriftResult:
    status: str  # drift | ok | inconclusive
    method: str
    n: int  # rows in the window (for this model version)
    min_samples: int
    threshold: float | None = None  # the per-test p-value threshold after correction
    p_val: float | None = None  # multivariate methods: the one p-value
    distance: float | None = None
    features: list[FeatureResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    histograms: dict[str, list[int]] = field(default_factory=dict)  # feature -> counts in the schema's bins
    histogram_rows: int = 0  # rows the histograms were counted on (an even sample of large windows)

    @property
    def is_drift(self) -> bool | None:
        return None if self.status == INCONCLUSIVE else self.status == DRIFT

    def drifted(self) -> list[str]:
        return [f.name for f in self.features if f.drift]


@dataclass
class MetricResult:
    metric: str
    value: float | None
    baseline: float | None  # the version's validation value
    n: int
    slice: str = ""  # "" for all rows, else the slice column
    segment: str = ""
    decayed: bool = False
    allowed_drop: float | None = None


@dataclass
class PerformanceResult:
    status: str  # decay | ok | inconclusive
    n: int  # labelled predictions evaluated
    matched_labels: int
    unmatched_labels: int  # labels for request ids / entities the log does not hold
    metrics: list[MetricResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def decayed(self) -> list[MetricResult]:
        """The overall metrics that decayed."""
        return [m for m in self.metrics if m.decayed and not m.slice]

    def decayed_slices(self) -> list[MetricResult]:
        """The slice segments whose metric decayed (acted on unless ``slice_decay: report``)."""
        return [m for m in self.metrics if m.decayed and m.slice]


@dataclass
class SkewFinding:
    """One feature's live skew check: ``checked`` requests, ``mismatches`` beyond the tolerance."""

    feature: str
    kind: str  # "online (live)" | "transformation (live)"
    checked: int
    mismatches: int
    max_difference: float | None = None
    example: dict[str, Any] | None = None


@dataclass
class ActionOutcome:
    action: str  # alert | retrain | rollback
    outcome: str  # succeeded | failed | skipped
    detail: str = ""


@dataclass
class VersionResult:
    """The findings for the rows one model version answered."""

    model: str
    model_version: str  # "v3"
    drift: DriftResult
    performance: PerformanceResult | None = None
    reference: dict[str, Any] = field(default_factory=dict)  # rows, total, sampled, source

    @property
    def status(self) -> str:
        if self.drift.status == DRIFT:
            return DRIFT
        if self.performance is not None and self.performance.status == DECAY:
            return DECAY
        if self.drift.status == INCONCLUSIVE and (self.performance is None or self.performance.status == INCONCLUSIVE):
            return INCONCLUSIVE
        return OK


@dataclass
class RunResult:
    monitor: str
    deployment: str
    at: str  # ISO 8601 UTC
    window: dict[str, Any]  # {"last": N} / {"duration": "1h"}, rows read, start, end
    versions: list[VersionResult] = field(default_factory=list)
    actions: list[ActionOutcome] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    run_id: str | None = None
    duration_s: float | None = None
    error: str | None = None
    skew: list[SkewFinding] | None = None  # the live skew check (a monitor's ``skew:``), None when not run

    @property
    def status(self) -> str:
        if self.error:
            return ERROR
        statuses = [v.status for v in self.versions]
        for status in (DRIFT, DECAY):
            if status in statuses:
                return status
        if self.skew and any(f.mismatches for f in self.skew):
            return SKEW
        if OK in statuses or self.skew:
            return OK
        return INCONCLUSIVE

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["status"] = self.status
        for version, raw in zip(self.versions, data["versions"]):
            raw["status"] = version.status
            raw["drift"]["drifted"] = version.drift.drifted()
        return data
