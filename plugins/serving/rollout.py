"""The rollout engine: strategies as steps, analysis of candidate against stable, and the driver that
walks the steps — pure logic, no I/O of its own (a backend lends it a :class:`RolloutIO`).

A rollout moves traffic from the *stable* model version to a *candidate*, one :class:`Step` at a time:

=============  =====================================================================================
recreate       promote at once, no analysis
canary         candidate answers ``w``% of requests for each weight in ``steps`` (< 100), analysed at
               each; a final 100 (or the end of the list) promotes
shadow         candidate answers a mirrored copy of every request (users see stable); analysed with
               agreement, then promoted
ab             fixed ``split``% to the candidate, sticky per entity key; analysed, then promoted
blue_green     candidate warmed up and checked on mirrored traffic, then switched to in one step
=============  =====================================================================================

Analysis, per step, like Argo Rollouts / Flagger: candidate error rate, p99 latency (absolute and/or
relative to stable), prediction shift (two-sample Kolmogorov–Smirnov distance to stable's predictions)
and, on mirrored traffic, agreement. Too few candidate requests is *inconclusive*, never passed: the
step keeps collecting up to ``max_wait``, then rolls back (or pauses, ``on_inconclusive: pause``; or,
``on_inconclusive: replay``, scores recorded inputs — recent requests from the prediction log, then the
candidate's held-out validation rows — with both versions and analyses those, as a shadow would).
``failure_limit`` failed checks roll back.

The driver checkpoints a :class:`RolloutState` after every decision, so an interrupted rollout resumes at
its step on the next apply (the step's analysis starts again on fresh data).
"""

from __future__ import annotations

import math
import re
import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping, Protocol, Sequence

__all__ = [
    "expected_seconds",
    "STRATEGIES",
    "PASSED",
    "FAILED",
    "INCONCLUSIVE",
    "parse_seconds",
    "quantile",
    "ks_statistic",
    "ks_critical",
    "Sample",
    "Check",
    "Verdict",
    "evaluate",
    "Step",
    "plan_steps",
    "describe",
    "RolloutState",
    "RolloutIO",
    "RolloutResult",
    "run_rollout",
    "REPLAY_SOURCES",
    "replay_count",
]

STRATEGIES = ("recreate", "canary", "shadow", "ab", "blue_green")
PASSED, FAILED, INCONCLUSIVE = "passed", "failed", "inconclusive"
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_KS_C = 1.628  # c(alpha) of the two-sample KS test at alpha = 0.01
_P99_FLOOR_MS = 1.0  # relative p99 checks compare against at least this much


def parse_seconds(value: Any) -> float:
    """'500ms', '10s', '5m', '1h' or a number of seconds -> seconds."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m|h)", str(value).strip())
    if not match:
        raise ValueError(f"not a duration: {value!r} (use e.g. 500ms, 10s, 5m, 1h)")
    return float(match.group(1)) * _UNITS[match.group(2)]


# --- statistics -------------------------------------------------------------------------------------


def quantile(values: Sequence[float], q: float) -> float | None:
    """The q-quantile (nearest rank, as latency percentiles are usually reported); None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q * len(ordered)))
    return float(ordered[min(rank, len(ordered)) - 1])


def ks_statistic(a: Sequence[float], b: Sequence[float]) -> float:
    """Two-sample Kolmogorov–Smirnov distance: the largest gap between the empirical CDFs (0..1)."""
    if not a or not b:
        return 0.0
    xs, ys = sorted(a), sorted(b)
    n, m = len(xs), len(ys)
    i = j = 0
    best = 0.0
    while i < n and j < m:
        value = min(xs[i], ys[j])
        while i < n and xs[i] <= value:
            i += 1
        while j < m and ys[j] <= value:
            j += 1
        best = max(best, abs(i / n - j / m))
    return best


def ks_critical(n: int, m: int) -> float:
    """The KS distance two samples of sizes n and m exceed by chance 1% of the time."""
    if n <= 0 or m <= 0:
        return 1.0
    return _KS_C * math.sqrt((n + m) / (n * m))


def _scalar(prediction: Any) -> float | None:
    """A prediction as one number: the value itself, or the winning class of a probability vector."""
    if isinstance(prediction, bool):
        return float(prediction)
    if isinstance(prediction, (int, float)):
        return float(prediction) if math.isfinite(prediction) else None
    if isinstance(prediction, (list, tuple)) and prediction:
        try:
            values = [float(v) for v in prediction]
        except (TypeError, ValueError):
            return None
        return float(max(range(len(values)), key=values.__getitem__))
    return None


@dataclass
class Sample:
    """What one variant did in an analysis window."""

    requests: int = 0
    errors: int = 0  # 5xx: the variant failed to answer
    latencies_ms: list[float] = field(default_factory=list)
    predictions: list[float] = field(default_factory=list)
    cpu_ms: list[float] = field(default_factory=list)  # the prediction's CPU time (the log's cpu_ms)

    def add(self, *, status: int, latency_ms: float | None, prediction: Any = None, cpu_ms: float | None = None) -> None:
        self.requests += 1
        if status >= 500:
            self.errors += 1
            return
        if latency_ms is not None:
            self.latencies_ms.append(float(latency_ms))
        if isinstance(cpu_ms, (int, float)):
            self.cpu_ms.append(float(cpu_ms))
        value = _scalar(prediction)
        if value is not None:
            self.predictions.append(value)

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    @property
    def p99_ms(self) -> float | None:
        return quantile(self.latencies_ms, 0.99)


@dataclass(frozen=True)
class Check:
    name: str  # error_rate | p99 | p99_ratio | cost_ratio | prediction_shift | agreement
    value: float | None
    threshold: float
    passed: bool
    enforced: bool = True
    detail: str = ""

    def text(self) -> str:
        mark = "ok" if self.passed else ("FAIL" if self.enforced else "fail (dry run)")
        return f"{self.name} {self.detail} [{mark}]"


@dataclass(frozen=True)
class Verdict:
    status: str  # passed | failed | inconclusive
    checks: tuple[Check, ...] = ()
    candidate_requests: int = 0
    stable_requests: int = 0
    reason: str = ""

    @property
    def failed_checks(self) -> list[Check]:
        return [c for c in self.checks if not c.passed and c.enforced]

    def summary(self) -> str:
        head = f"{self.status}: candidate {self.candidate_requests} req, stable {self.stable_requests} req"
        if self.reason:
            head += f" ({self.reason})"
        return head + ("; " + "; ".join(c.text() for c in self.checks) if self.checks else "")

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "candidate_requests": self.candidate_requests,
                "stable_requests": self.stable_requests, "reason": self.reason,
                "checks": [asdict(c) for c in self.checks]}


def _get(analysis: Any, name: str, default: Any = None) -> Any:
    if isinstance(analysis, Mapping):
        return analysis.get(name, default)
    return getattr(analysis, name, default)


def agreement_rule(task: str | None, tolerance: float | None, scale: float | None = None):
    """(agrees(stable, candidate) -> bool, description) for the model's task. ``tolerance``: the spec's
    ``agreement_tolerance`` (None: the task's default); ``scale``: regression — the stable version's
    validation RMSE, so the default tolerance is on the label's scale."""
    if task == "multiclass":
        limit = 0.1 if tolerance is None else float(tolerance)

        def agrees(a, b) -> bool:
            if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)) and len(a) == len(b) and a:
                same = max(range(len(a)), key=a.__getitem__) == max(range(len(b)), key=b.__getitem__)
                return same and 0.5 * sum(abs(float(x) - float(y)) for x, y in zip(a, b)) <= limit
            return _scalar(a) == _scalar(b)

        return agrees, f"same class, probabilities within {limit:g} total variation"
    if task == "regression":
        if tolerance is not None:
            limit = float(tolerance)
            return (lambda a, b: abs(float(a) - float(b)) <= limit), f"within ±{limit:g}"
        if scale:
            limit = 0.5 * float(scale)
            return (lambda a, b: abs(float(a) - float(b)) <= limit), \
                f"within ±{limit:.4g} (0.5 × the stable version's validation RMSE {float(scale):.4g})"
        return (lambda a, b: abs(float(a) - float(b)) <= 0.05 * max(abs(float(a)), abs(float(b)), 1e-12)), \
            "within 5% of the value (the stable version recorded no RMSE)"
    limit = 0.05 if tolerance is None else float(tolerance)
    return (lambda a, b: abs(_scalar(a) - _scalar(b)) <= limit), f"within ±{limit:g}"


def evaluate(analysis: Any, stable: Sample, candidate: Sample, *,
             pairs: Sequence[tuple[Any, Any]] | None = None, task: str | None = None,
             scale: float | None = None, agreement: bool = True) -> Verdict:
    """Compare candidate with stable under ``analysis`` (a RolloutAnalysis or a plain mapping).

    ``pairs``: (stable, candidate) predictions of the same requests (mirrored traffic): adds agreement,
    judged by the model's ``task`` (``scale``: see :func:`agreement_rule`); ``agreement=False`` keeps the
    pairs for the prediction shift only (a replayed canary step: its strategy does not judge agreement).
    """
    min_requests = int(_get(analysis, "min_requests", 100))
    dry = set(_get(analysis, "dry_run", ()) or ())
    mirrored = pairs is not None
    counts = dict(candidate_requests=candidate.requests, stable_requests=stable.requests)
    if candidate.requests < min_requests:
        return Verdict(INCONCLUSIVE, reason=f"{candidate.requests} of {min_requests} candidate requests", **counts)
    checks: list[Check] = []

    def check(name: str, value: float | None, threshold: float, passed: bool, detail: str) -> None:
        checks.append(Check(name, value, threshold, passed, name not in dry, detail))

    max_error = float(_get(analysis, "max_error_rate", 0.01))
    rate = candidate.error_rate
    check("error_rate", rate, max_error, rate <= max_error, f"{rate:.2%} (max {max_error:.2%})")
    p99 = candidate.p99_ms
    max_p99 = _get(analysis, "max_p99_ms")
    if max_p99 is not None and p99 is not None:
        check("p99", p99, float(max_p99), p99 <= float(max_p99), f"{p99:.1f} ms (max {float(max_p99):g} ms)")
    ratio = _get(analysis, "max_p99_ratio")
    stable_p99 = stable.p99_ms
    if ratio is not None and p99 is not None and stable_p99 is not None and stable.requests >= min_requests:
        limit = float(ratio) * max(stable_p99, _P99_FLOOR_MS)
        check("p99_ratio", p99, limit, p99 <= limit,
              f"{p99:.1f} ms vs stable {stable_p99:.1f} ms (max x{float(ratio):g} = {limit:.1f} ms)")
    cost_ratio = _get(analysis, "max_cost_ratio")
    if cost_ratio is not None and len(candidate.cpu_ms) >= min_requests and len(stable.cpu_ms) >= min_requests:
        # CPU per prediction (per 1,000: the same ratio), measured on the same workers at the same time
        mine, theirs = sum(candidate.cpu_ms) / len(candidate.cpu_ms), sum(stable.cpu_ms) / len(stable.cpu_ms)
        ratio_found = mine / max(theirs, 1e-6)
        check("cost_ratio", ratio_found, float(cost_ratio), ratio_found <= float(cost_ratio),
              f"{mine * 1000:.0f} vs stable {theirs * 1000:.0f} CPU-ms per 1,000 predictions "
              f"(x{ratio_found:.2f}, max x{float(cost_ratio):g})")
    max_shift = _get(analysis, "max_prediction_shift")
    if max_shift is not None:
        reference = [_scalar(p) for p, _ in pairs] if mirrored else stable.predictions
        reference = [p for p in reference if p is not None]
        if len(reference) >= min_requests and candidate.predictions:
            shift = ks_statistic(candidate.predictions, reference)
            noise = ks_critical(len(candidate.predictions), len(reference))
            passed = shift <= float(max_shift) or shift <= noise
            note = "" if shift <= float(max_shift) or not passed else f", within noise {noise:.3f}"
            check("prediction_shift", shift, float(max_shift), passed,
                  f"KS {shift:.3f} (max {float(max_shift):g}{note})")
    min_agreement = _get(analysis, "min_agreement")
    if mirrored and agreement and min_agreement is not None and pairs:
        agrees, rule = agreement_rule(task, _get(analysis, "agreement_tolerance"), scale)
        agree = sum(1 for s, c in pairs if agrees(s, c)) / len(pairs)
        check("agreement", agree, float(min_agreement), agree >= float(min_agreement),
              f"{agree:.1%} {rule} (min {float(min_agreement):.0%})")
    failed = any(not c.passed and c.enforced for c in checks)
    return Verdict(FAILED if failed else PASSED, tuple(checks), **counts)


# --- strategies ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """One traffic setting. ``mode``: weight (random share), split (sticky per entity key), mirror
    (candidate gets a copy, answers nothing), promote (candidate becomes stable)."""

    mode: str
    weight: float = 0.0  # % of requests the candidate answers
    analyze: bool = False
    warmup: int = 0  # mirrored warm-up requests before the analysis (blue_green)

    @property
    def label(self) -> str:
        if self.mode == "weight":
            return f"canary {self.weight:g}%"
        if self.mode == "split":
            return f"a/b {self.weight:g}%"
        if self.mode == "mirror":
            return "preview (mirrored traffic)" if self.warmup else "shadow"
        return "promote"


def plan_steps(rollout: Any) -> list[Step]:
    strategy = _get(rollout, "strategy", "recreate")
    promote = Step("promote", 100.0)
    if strategy == "recreate":
        return [promote]
    if strategy == "canary":
        weights = [float(w) for w in (_get(rollout, "steps") or [5, 25, 100])]
        return [Step("weight", w, analyze=True) for w in weights if w < 100] + [promote]
    if strategy == "shadow":
        return [Step("mirror", 0.0, analyze=True), promote]
    if strategy == "ab":
        return [Step("split", float(_get(rollout, "split", 50)), analyze=True), promote]
    if strategy == "blue_green":
        return [Step("mirror", 0.0, analyze=True, warmup=max(1, int(_get(rollout, "warmup_requests", 20)))),
                promote]
    raise ValueError(f"unknown rollout strategy {strategy!r} (one of {', '.join(STRATEGIES)})")


def expected_seconds(rollout: Any) -> float:
    """How long a rollout takes at least when traffic is sufficient: one analysis interval per analysed
    step (a step waits up to ``max_wait`` for enough requests, so this is a floor, not a promise)."""
    analysed = [s for s in plan_steps(rollout) if s.analyze]
    return len(analysed) * parse_seconds(_get(rollout, "interval", "30s"))


def describe(rollout: Any, *, task: str | None = None, scale: float | None = None) -> str:
    """One line for plans: 'canary 5% → 25% → 100%, analysis: ≥100 req, errors ≤ 1%, shift ≤ 0.1'."""
    strategy = _get(rollout, "strategy", "recreate")
    if strategy == "recreate":
        return "recreate (switch at once, no analysis)"
    steps = plan_steps(rollout)
    if strategy == "canary":
        head = "canary " + " → ".join(f"{s.weight:g}%" for s in steps[:-1]) + " → 100%"
    elif strategy == "ab":
        head = f"a/b {steps[0].weight:g}% sticky per entity key, then 100%"
    elif strategy == "shadow":
        head = "shadow (mirrored, users see stable), then 100%"
    else:
        head = "blue/green (warm up, check on mirrored traffic, instant switch)"
    analysis = _get(rollout, "analysis") or {}
    parts = [f"≥{_get(analysis, 'min_requests', 100)} req", f"errors ≤ {float(_get(analysis, 'max_error_rate', 0.01)):.1%}"]
    if _get(analysis, "max_p99_ms") is not None:
        parts.append(f"p99 ≤ {_get(analysis, 'max_p99_ms'):g} ms")
    if _get(analysis, "max_p99_ratio") is not None:
        parts.append(f"p99 ≤ x{_get(analysis, 'max_p99_ratio'):g} stable")
    if _get(analysis, "max_cost_ratio") is not None:
        parts.append(f"cost per 1,000 ≤ x{_get(analysis, 'max_cost_ratio'):g} stable")
    if _get(analysis, "max_prediction_shift") is not None:
        parts.append(f"shift ≤ {_get(analysis, 'max_prediction_shift'):g}")
    if strategy in ("shadow", "blue_green") and _get(analysis, "min_agreement") is not None:
        _, rule = agreement_rule(task, _get(analysis, "agreement_tolerance"), scale)
        parts.append(f"agreement ≥ {float(_get(analysis, 'min_agreement')):.0%} ({rule})")
    need = (f"; each step needs {_get(analysis, 'min_requests', 100)} live requests within "
            f"{_get(rollout, 'max_wait', '5m')}, else " + _short_traffic(rollout, analysis))
    return f"{head}; analysis every {_get(rollout, 'interval', '30s')}: " + ", ".join(parts) + need


def _short_traffic(rollout: Any, analysis: Any) -> str:
    """What a step does when live traffic stays short (for plans and docs)."""
    choice = _get(rollout, "on_inconclusive", "rollback")
    if choice != "replay":
        return f"it is inconclusive: {choice}"
    replay = _get(rollout, "replay") or {}
    count = replay_count(rollout)
    names = {"prediction_log": "recent requests in the prediction log", "validation": "the candidate's validation rows"}
    sources = ", then ".join(names.get(s, s) for s in (_get(replay, "sources") or REPLAY_SOURCES))
    return (f"{count} inputs are replayed to both versions ({sources}) and analysed; with nothing to replay "
            "it rolls back")


REPLAY_SOURCES = ("prediction_log", "validation")


def replay_count(rollout: Any) -> int:
    """How many requests a replayed step sends: ``replay.requests``, at least ``analysis.min_requests``."""
    analysis = _get(rollout, "analysis") or {}
    wanted = _get(_get(rollout, "replay") or {}, "requests")
    minimum = int(_get(analysis, "min_requests", 100))
    return max(minimum, int(wanted)) if wanted else minimum


# --- the driver -----------------------------------------------------------------------------------------


@dataclass
class RolloutState:
    """Progress of one rollout, checkpointed into state after every decision (plain JSON)."""

    id: str
    strategy: str
    stable: dict[str, Any]  # {"version": "v3", "tag": "fraud:abc", ...}: what users got before
    candidate: dict[str, Any]
    step: int = 0
    phase: str = "running"  # running | promoted | rolled_back | paused | failed
    started_at: float = 0.0
    step_started_at: float | None = None
    results: list[dict[str, Any]] = field(default_factory=list)  # one per finished step / decision
    reason: str = ""

    @classmethod
    def new(cls, strategy: str, stable: Mapping[str, Any], candidate: Mapping[str, Any],
            now: float | None = None) -> "RolloutState":
        return cls(id=uuid.uuid4().hex[:12], strategy=strategy, stable=dict(stable), candidate=dict(candidate),
                   started_at=time.time() if now is None else now)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "RolloutState":
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in dict(data).items() if k in known})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def finished(self) -> bool:
        return self.phase in ("promoted", "rolled_back", "failed")


class RolloutIO(Protocol):
    """What a serving backend lends the driver."""

    def set_traffic(self, state: RolloutState, step: Step) -> Any:
        """Apply the step's traffic (load the candidate if needed); return a marker for `collect`.
        Raise to abort (e.g. the candidate failed to load): the driver rolls back."""

    def collect(self, state: RolloutState, marker: Any, since: float) -> tuple[Sample, Sample, list | None]:
        """(stable, candidate, mirrored pairs or None) of requests served under `marker` since `since`."""

    def warm_up(self, state: RolloutState, requests: int) -> None:
        """Send the candidate `requests` warm-up predictions (blue_green)."""

    def replay(self, state: RolloutState, step: "Step", requests: int) -> tuple[Sample, Sample, list, str] | None:
        """Optional (``on_inconclusive: replay``): score up to `requests` recorded inputs with both versions;
        (stable, candidate, pairs, where they came from), or None when there is nothing to replay."""

    def rollback(self, state: RolloutState) -> None:
        """All traffic back to stable; the candidate unloaded."""

    def promote(self, state: RolloutState) -> None:
        """All traffic to the candidate, which becomes stable."""

    def checkpoint(self, state: RolloutState) -> None: ...

    def progress(self, message: str) -> None: ...

    def sleep(self, seconds: float) -> None: ...

    def now(self) -> float: ...


@dataclass
class RolloutResult:
    state: RolloutState

    @property
    def promoted(self) -> bool:
        return self.state.phase == "promoted"


def run_rollout(state: RolloutState, rollout: Any, io: RolloutIO, *, task: str | None = None,
                scale: float | None = None) -> RolloutResult:
    """Walk the steps from ``state.step``; returns with phase promoted, rolled_back or paused.

    A KeyboardInterrupt is not caught: the last checkpoint says which step was running, and the next
    run resumes there (its analysis on fresh data).
    """
    steps = plan_steps(rollout)
    interval = parse_seconds(_get(rollout, "interval", "30s"))
    max_wait = parse_seconds(_get(rollout, "max_wait", "5m"))
    failure_limit = int(_get(rollout, "failure_limit", 1))
    choice = _get(rollout, "on_inconclusive", "rollback")
    pause = choice == "pause"
    replay = replay_count(rollout) if choice == "replay" else 0
    analysis = _get(rollout, "analysis") or {}
    state.phase = "running"
    while state.step < len(steps):
        step = steps[state.step]
        if step.mode == "promote":
            io.progress(f"promoting {state.candidate.get('version')}: 100% of traffic")
            io.promote(state)
            state.results.append({"step": step.label, "status": "promoted", "at": io.now()})
            state.phase = "promoted"
            state.step += 1
            io.checkpoint(state)
            return RolloutResult(state)
        try:
            marker = io.set_traffic(state, step)
        except Exception as exc:  # the candidate cannot take traffic: stable keeps it
            return _roll_back(state, io, step, f"{step.label}: {exc}", status="aborted")
        if step.warmup:
            io.progress(f"{step.label}: warming up {state.candidate.get('version')} with {step.warmup} requests")
            try:
                io.warm_up(state, step.warmup)
            except Exception as exc:
                return _roll_back(state, io, step, f"warm-up failed: {exc}", status="aborted")
        state.step_started_at = io.now()
        io.checkpoint(state)
        outcome = _analyse_step(state, step, marker, analysis, io, interval, max_wait, failure_limit, pause,
                                task=task, scale=scale, replay=replay)
        if outcome is not None:
            return outcome
        state.step += 1
        state.step_started_at = None
        io.checkpoint(state)
    state.phase = "promoted"
    return RolloutResult(state)


def _analyse_step(state, step, marker, analysis, io, interval, max_wait, failure_limit,
                  pause, *, task=None, scale=None, replay=0) -> RolloutResult | None:
    """None when the step passed; else the finished (rolled back or paused) result."""
    started = state.step_started_at or io.now()
    window_start = started
    failures = 0
    io.progress(f"{step.label}: collecting for {interval:g}s (up to {max_wait:g}s for enough requests)")
    while True:
        io.sleep(interval)
        stable, candidate, pairs = io.collect(state, marker, window_start)
        verdict = evaluate(analysis, stable, candidate, pairs=pairs, task=task, scale=scale)
        io.progress(f"{step.label}: {verdict.summary()}")
        if verdict.status == PASSED:
            state.results.append({"step": step.label, "at": io.now(), **verdict.to_dict()})
            return None
        if verdict.status == FAILED:
            failures += 1
            if failures >= failure_limit:
                why = "; ".join(c.text() for c in verdict.failed_checks)
                state.results.append({"step": step.label, "at": io.now(), **verdict.to_dict()})
                return _roll_back(state, io, step, f"{step.label} failed analysis: {why}", status=None)
            window_start = io.now()  # the next check looks at fresh requests
            continue
        if io.now() - started >= max_wait:
            state.results.append({"step": step.label, "at": io.now(), **verdict.to_dict()})
            why = f"{step.label} inconclusive after {io.now() - started:.0f}s: {verdict.reason}"
            if replay:
                return _replayed_step(state, step, analysis, io, replay, why, task=task, scale=scale)
            if pause:  # like Argo's Inconclusive: hold the weights; the next apply resumes the step
                state.phase = "paused"
                state.reason = why
                io.checkpoint(state)
                return RolloutResult(state)
            return _roll_back(state, io, step, why, status=None)


def _replayed_step(state, step, analysis, io, count, why, *, task=None, scale=None) -> RolloutResult | None:
    """Live traffic stayed short: analyse the step on recorded inputs scored by both versions."""
    io.progress(f"{step.label}: live traffic too short ({why.split(': ', 1)[-1]}); replaying {count} requests")
    method = getattr(io, "replay", None)
    try:
        replayed = method(state, step, count) if method is not None else None
    except Exception as exc:  # the candidate failed on recorded inputs: it does not take traffic
        return _roll_back(state, io, step, f"{step.label}: replay failed: {exc}", status="aborted")
    if replayed is None:
        return _roll_back(state, io, step, f"{why}; nothing to replay (no logged requests, no validation rows)",
                          status=None)
    stable, candidate, pairs, source = replayed
    verdict = evaluate(analysis, stable, candidate, pairs=pairs, task=task, scale=scale,
                       agreement=step.mode == "mirror")
    io.progress(f"{step.label} (replayed {source}): {verdict.summary()}")
    state.results.append({"step": step.label, "at": io.now(), "replayed": source, **verdict.to_dict()})
    if verdict.status == PASSED:
        return None
    detail = ("; ".join(c.text() for c in verdict.failed_checks) if verdict.status == FAILED else verdict.reason)
    return _roll_back(state, io, step, f"{step.label} failed analysis on replayed {source}: {detail}", status=None)


def _roll_back(state: RolloutState, io: RolloutIO, step: Step, why: str, *, status: str | None) -> RolloutResult:
    io.progress(f"rolling back to {state.stable.get('version')}: {why}")
    io.rollback(state)
    if status is not None:
        state.results.append({"step": step.label, "status": status, "reason": why, "at": io.now()})
    state.phase = "rolled_back"
    state.reason = why
    io.checkpoint(state)
    return RolloutResult(state)
