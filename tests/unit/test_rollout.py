"""The rollout engine (framework/rollout.py): statistics, analysis verdicts, strategies as steps, and the
driver against a fake backend — promotion, rollback on failed analysis, inconclusive waits, pauses,
load failures, failure limits, resuming at a checkpointed step and interrupts."""

from __future__ import annotations

import random

import pytest

from ml_framework.plugins.serving.rollout import (
    FAILED,
    INCONCLUSIVE,
    PASSED,
    RolloutState,
    Sample,
    describe,
    evaluate,
    ks_critical,
    ks_statistic,
    parse_seconds,
    plan_steps,
    quantile,
    run_rollout,
)
from ml_framework.plugins.serving.kinds import DeploymentRollout


def sample(n, *, errors=0, latency=2.0, predictions=None, seed=0):
    rng = random.Random(seed)
    s = Sample()
    for i in range(n):
        status = 500 if i < errors else 200
        p = predictions[i % len(predictions)] if predictions else rng.random()
        s.add(status=status, latency_ms=latency + rng.random() * 0.1, prediction=p)
    return s


def test_parse_seconds():
    assert parse_seconds("500ms") == 0.5
    assert parse_seconds("10s") == 10 and parse_seconds("5m") == 300 and parse_seconds("1h") == 3600
    assert parse_seconds(2) == 2.0 and parse_seconds("1.5s") == 1.5
    with pytest.raises(ValueError, match="not a duration"):
        parse_seconds("10 minutes")


def test_quantile_nearest_rank():
    assert quantile([], 0.99) is None
    values = list(range(1, 101))
    assert quantile(values, 0.99) == 99 and quantile(values, 0.5) == 50 and quantile([7], 0.99) == 7


def test_ks_statistic_matches_scipy():
    scipy_stats = pytest.importorskip("scipy.stats")
    rng = random.Random(3)
    for _ in range(20):
        a = [rng.gauss(0, 1) for _ in range(rng.randint(5, 200))]
        b = [rng.gauss(rng.choice([0, 0.5]), 1) for _ in range(rng.randint(5, 200))]
        b += a[:3]  # ties across samples
        assert ks_statistic(a, b) == pytest.approx(scipy_stats.ks_2samp(a, b).statistic)
    assert ks_statistic([], [1.0]) == 0.0
    assert ks_critical(200, 200) == pytest.approx(1.628 * (400 / 40000) ** 0.5)


def test_sample_counts_errors_and_scalarises_predictions():
    s = Sample()
    s.add(status=200, latency_ms=1.0, prediction=0.3)
    s.add(status=500, latency_ms=9.0, prediction=None)
    s.add(status=200, latency_ms=2.0, prediction=[0.1, 0.7, 0.2])  # multiclass: the winning class
    assert s.requests == 3 and s.errors == 1 and s.error_rate == pytest.approx(1 / 3)
    assert s.predictions == [0.3, 1.0] and s.latencies_ms == [1.0, 2.0]


ANALYSIS = {"min_requests": 100, "max_error_rate": 0.01, "max_p99_ms": 50, "max_prediction_shift": 0.1}


def test_too_few_requests_is_inconclusive_not_passed():
    verdict = evaluate(ANALYSIS, sample(1000), sample(99))
    assert verdict.status == INCONCLUSIVE and "99 of 100" in verdict.reason and not verdict.checks


def test_same_behaviour_passes():
    verdict = evaluate(ANALYSIS, sample(1000, seed=1), sample(300, seed=2))
    assert verdict.status == PASSED, verdict.summary()
    assert {c.name for c in verdict.checks} == {"error_rate", "p99", "prediction_shift"}


def test_error_rate_fails():
    verdict = evaluate(ANALYSIS, sample(1000), sample(200, errors=5))
    assert verdict.status == FAILED and [c.name for c in verdict.failed_checks] == ["error_rate"]
    assert "2.50%" in verdict.summary()


def test_p99_absolute_and_relative():
    slow = sample(200, latency=80.0)
    assert [c.name for c in evaluate(ANALYSIS, sample(1000), slow).failed_checks] == ["p99"]
    relative = {"min_requests": 100, "max_p99_ratio": 2.0, "max_prediction_shift": None}
    assert evaluate(relative, sample(1000, latency=5.0), sample(200, latency=9.0)).status == PASSED
    verdict = evaluate(relative, sample(1000, latency=5.0), sample(200, latency=11.0))
    assert [c.name for c in verdict.failed_checks] == ["p99_ratio"]
    # a sub-millisecond stable p99 is compared as 1 ms: noise at that scale does not fail a step
    assert evaluate(relative, sample(1000, latency=0.2), sample(200, latency=1.5)).status == PASSED


def test_prediction_shift_fails_only_when_large_and_significant():
    shifted = sample(300, predictions=[0.9, 0.95, 0.99])
    verdict = evaluate(ANALYSIS, sample(1000), shifted)
    assert [c.name for c in verdict.failed_checks] == ["prediction_shift"] and verdict.checks[-1].value > 0.5
    # over 0.1 but within what 100 vs 100 samples differ by chance: passes, and says so
    noisy = {**ANALYSIS, "max_prediction_shift": 0.05}
    verdict = evaluate(noisy, sample(100, seed=5), sample(100, seed=6))
    shift = next(c for c in verdict.checks if c.name == "prediction_shift")
    assert shift.passed and shift.value > 0.05 and "within noise" in shift.detail


def test_agreement_on_mirrored_traffic():
    analysis = {"min_requests": 50, "min_agreement": 0.9, "agreement_tolerance": 0.05, "max_prediction_shift": None}
    good = [(p, p + 0.01) for p in (i / 100 for i in range(100))]
    bad = [(p, 1 - p) for p in (i / 100 for i in range(100))]
    candidate = sample(100)
    assert evaluate(analysis, Sample(), candidate, pairs=good).status == PASSED
    verdict = evaluate(analysis, Sample(), candidate, pairs=bad)
    assert [c.name for c in verdict.failed_checks] == ["agreement"]


def test_agreement_fits_the_task():
    """Regression on the label's scale (from the stable version's validation RMSE), multiclass by class and
    probability distance; the fixed ±0.05 used to fail every regression shadow rollout."""
    from ml_framework.plugins.serving.rollout import describe

    analysis = {"min_requests": 50, "min_agreement": 0.9, "max_prediction_shift": None}
    candidate = sample(100)
    prices = [(1000.0 + i, 1000.0 + i + 3.0) for i in range(100)]  # a house price model, off by 3
    assert evaluate(analysis, Sample(), candidate, pairs=prices).status == FAILED  # binary's ±0.05: wrong here
    regression = evaluate(analysis, Sample(), candidate, pairs=prices, task="regression", scale=12.0)
    assert regression.status == PASSED
    assert "within ±6 (0.5 × the stable version's validation RMSE 12)" in regression.checks[-1].detail
    tight = evaluate(analysis, Sample(), candidate, pairs=prices, task="regression", scale=4.0)
    assert [c.name for c in tight.failed_checks] == ["agreement"]
    assert evaluate(analysis, Sample(), candidate, pairs=prices, task="regression").status == PASSED  # 5% of the value
    same = [([0.7, 0.2, 0.1], [0.65, 0.25, 0.1])] * 100
    flipped = [([0.5, 0.4, 0.1], [0.4, 0.5, 0.1])] * 100
    assert evaluate(analysis, Sample(), candidate, pairs=same, task="multiclass").status == PASSED
    verdict = evaluate(analysis, Sample(), candidate, pairs=flipped, task="multiclass")
    assert [c.name for c in verdict.failed_checks] == ["agreement"] and "same class" in verdict.checks[-1].detail
    rollout = {"strategy": "shadow", "analysis": {"min_agreement": 0.95}}
    assert "agreement ≥ 95% (within ±6 (0.5 × the stable" in describe(rollout, task="regression", scale=12.0)
    assert "agreement ≥ 95% (within ±0.05)" in describe(rollout, task="binary")
    # The plan says what the rollout needs: without live traffic a step is inconclusive.
    assert "each step needs 100 live requests within 5m, else it is inconclusive: rollback" in describe(rollout)


def test_dry_run_metrics_are_reported_not_enforced():
    analysis = {**ANALYSIS, "dry_run": ["error_rate"]}
    verdict = evaluate(analysis, sample(1000), sample(200, errors=50))
    assert verdict.status == PASSED and not verdict.checks[0].passed and "dry run" in verdict.summary()


def test_plan_steps_per_strategy():
    labels = lambda rollout: [(s.mode, s.weight, s.analyze) for s in plan_steps(rollout)]  # noqa: E731
    assert labels({"strategy": "recreate"}) == [("promote", 100.0, False)]
    assert labels({"strategy": "canary", "steps": [5, 25, 100]}) == [
        ("weight", 5.0, True), ("weight", 25.0, True), ("promote", 100.0, False)]
    assert labels({"strategy": "canary", "steps": [10, 50]})[-1] == ("promote", 100.0, False)
    assert labels({"strategy": "shadow"}) == [("mirror", 0.0, True), ("promote", 100.0, False)]
    assert labels({"strategy": "ab", "split": 30}) == [("split", 30.0, True), ("promote", 100.0, False)]
    blue_green = plan_steps({"strategy": "blue_green", "warmup_requests": 7})
    assert blue_green[0].mode == "mirror" and blue_green[0].warmup == 7 and blue_green[1].mode == "promote"
    with pytest.raises(ValueError, match="unknown rollout strategy"):
        plan_steps({"strategy": "yolo"})


def test_describe_reads_like_a_plan_line():
    text = describe(DeploymentRollout(strategy="canary", steps=[5, 25, 100], interval="10s",
                                      analysis={"min_requests": 200, "max_p99_ms": 50}))
    assert text.startswith("canary 5% → 25% → 100%") and "≥200 req" in text and "p99 ≤ 50 ms" in text
    assert describe({"strategy": "recreate"}).startswith("recreate")


# --- the driver ---------------------------------------------------------------------------------------------


class FakeIO:
    """Traffic and analysis without a server: `verdicts` scripts what each collect returns."""

    def __init__(self, verdicts, *, fail_set_traffic_at=None):
        self.verdicts = list(verdicts)
        self.fail_at = fail_set_traffic_at
        self.clock = 1000.0
        self.traffic: list[tuple[str, float]] = []
        self.events: list[str] = []
        self.checkpoints: list[dict] = []
        self.messages: list[str] = []

    def set_traffic(self, state, step):
        if self.fail_at is not None and len(self.traffic) == self.fail_at:
            raise RuntimeError("cannot load fraud:v2")
        self.traffic.append((step.mode, step.weight))
        return len(self.traffic)

    def collect(self, state, marker, since):
        kind = self.verdicts.pop(0) if self.verdicts else "pass"
        if kind == "pass":
            return sample(1000), sample(200), None
        if kind == "fail":
            return sample(1000), sample(200, errors=20), None
        return sample(1000), sample(3), None  # too few

    def warm_up(self, state, requests):
        self.events.append(f"warm_up {requests}")

    def rollback(self, state):
        self.events.append("rollback")

    def promote(self, state):
        self.events.append("promote")

    def checkpoint(self, state):
        self.checkpoints.append(state.to_dict())

    def progress(self, message):
        self.messages.append(message)

    def sleep(self, seconds):
        self.clock += seconds

    def now(self):
        return self.clock


def new_state(strategy="canary"):
    return RolloutState.new(strategy, {"version": "v1", "tag": "fraud:a"}, {"version": "v2", "tag": "fraud:b"}, now=0)


ROLLOUT = {"strategy": "canary", "steps": [5, 25, 100], "interval": "10s", "max_wait": "30s",
           "analysis": {"min_requests": 100, "max_error_rate": 0.01}}


def test_canary_passes_every_step_and_promotes():
    io = FakeIO(["pass", "pass"])
    result = run_rollout(new_state(), ROLLOUT, io)
    assert result.promoted and io.traffic == [("weight", 5.0), ("weight", 25.0)] and io.events == ["promote"]
    assert [r["status"] for r in result.state.results] == ["passed", "passed", "promoted"]
    assert io.checkpoints[-1]["phase"] == "promoted"


def test_failed_analysis_rolls_back():
    io = FakeIO(["pass", "fail"])
    result = run_rollout(new_state(), ROLLOUT, io)
    assert result.state.phase == "rolled_back" and io.events == ["rollback"]
    assert "canary 25% failed analysis: error_rate" in result.state.reason
    assert io.checkpoints[-1]["phase"] == "rolled_back"


def test_inconclusive_waits_then_passes_when_enough_requests_come():
    io = FakeIO(["few", "few", "pass", "pass"])
    result = run_rollout(new_state(), ROLLOUT, io)
    assert result.promoted and io.clock == 1000 + 4 * 10


def test_inconclusive_past_max_wait_rolls_back_or_pauses():
    io = FakeIO(["few"] * 5)
    result = run_rollout(new_state(), ROLLOUT, io)
    assert result.state.phase == "rolled_back" and "inconclusive after 30s" in result.state.reason
    io = FakeIO(["few"] * 5)
    result = run_rollout(new_state(), {**ROLLOUT, "on_inconclusive": "pause"}, io)
    assert result.state.phase == "paused" and io.events == [] and result.state.step == 0


def test_failure_limit_allows_a_failed_check_before_rolling_back():
    io = FakeIO(["fail", "pass", "pass"])
    assert run_rollout(new_state(), {**ROLLOUT, "failure_limit": 2}, io).promoted
    io = FakeIO(["fail", "fail"])
    assert run_rollout(new_state(), {**ROLLOUT, "failure_limit": 2}, io).state.phase == "rolled_back"


def test_a_candidate_that_cannot_take_traffic_is_rolled_back():
    io = FakeIO([], fail_set_traffic_at=1)  # the second step fails to load
    result = run_rollout(new_state(), ROLLOUT, io)
    assert result.state.phase == "rolled_back" and io.events == ["rollback"]
    assert result.state.results[-1]["status"] == "aborted" and "cannot load fraud:v2" in result.state.reason


def test_resume_starts_at_the_checkpointed_step():
    state = new_state()
    state.step = 1
    io = FakeIO(["pass"])
    assert run_rollout(state, ROLLOUT, io).promoted and io.traffic == [("weight", 25.0)]


def test_an_interrupt_propagates_with_the_step_checkpointed():
    class Interrupting(FakeIO):
        def sleep(self, seconds):
            if len(self.traffic) == 2:
                raise KeyboardInterrupt
            super().sleep(seconds)

    io = Interrupting(["pass"])
    state = new_state()
    with pytest.raises(KeyboardInterrupt):
        run_rollout(state, ROLLOUT, io)
    assert io.checkpoints[-1]["step"] == 1 and io.checkpoints[-1]["phase"] == "running"
    restored = RolloutState.from_dict(io.checkpoints[-1])
    assert run_rollout(restored, ROLLOUT, FakeIO(["pass"])).promoted


def test_shadow_blue_green_and_ab_promote_after_one_analysed_step():
    for strategy, mode in (("shadow", "mirror"), ("blue_green", "mirror"), ("ab", "split")):
        io = FakeIO(["pass"])
        result = run_rollout(new_state(strategy), {**ROLLOUT, "strategy": strategy}, io)
        assert result.promoted and io.traffic[0][0] == mode, strategy
    io = FakeIO(["pass"])
    run_rollout(new_state("blue_green"), {**ROLLOUT, "strategy": "blue_green", "warmup_requests": 5}, io)
    assert io.events[0] == "warm_up 5"


def test_recreate_promotes_without_analysis():
    io = FakeIO([])
    assert run_rollout(new_state("recreate"), {"strategy": "recreate"}, io).promoted
    assert io.traffic == [] and io.events == ["promote"]


def test_rollout_spec_validation():
    from pydantic import ValidationError

    for bad, message in (({"steps": [25, 5]}, "must increase"), ({"steps": [0, 50]}, r"in \(0, 100\]"),
                         ({"interval": "10 minutes"}, "not a duration"), ({"interval": 0}, "positive"),
                         ({"strategy": "yolo"}, "strategy")):
        with pytest.raises(ValidationError, match=message):
            DeploymentRollout.model_validate(bad)
    assert DeploymentRollout.model_validate({"interval": "500ms", "max_wait": 3}).max_wait == 3.0


def test_the_expected_time_of_a_rollout_counts_its_analysis_intervals():
    from ml_framework.plugins.serving.rollout import expected_seconds

    assert expected_seconds({"strategy": "canary", "steps": [5, 25, 100], "interval": "30s"}) == 60.0
    assert expected_seconds({"strategy": "shadow", "interval": "2m"}) == 120.0
    assert expected_seconds({"strategy": "recreate"}) == 0.0


class ReplayIO(FakeIO):
    """FakeIO whose live traffic never comes; `replayed` scripts what a replay returns."""

    def __init__(self, replayed):
        super().__init__(["short"] * 50)
        self.replayed = replayed
        self.replays: list[int] = []

    def replay(self, state, step, requests):
        self.replays.append(requests)
        if self.replayed is None:
            return None
        stable, candidate = self.replayed
        pairs = list(zip(stable.predictions, candidate.predictions))
        return stable, candidate, pairs, "prediction log"


def test_short_live_traffic_is_judged_on_replayed_requests_when_declared():
    rollout = {**ROLLOUT, "on_inconclusive": "replay", "replay": {"requests": 150},
               "analysis": {"min_requests": 100, "max_error_rate": 0.01, "max_prediction_shift": 0.2}}
    same = [0.1 * (i % 10) for i in range(300)]
    io = ReplayIO((sample(300, predictions=same), sample(300, predictions=same, seed=1)))
    result = run_rollout(new_state(), rollout, io)
    assert result.promoted and io.replays == [150, 150]  # each analysed step replayed once, after max_wait
    assert [r.get("replayed") for r in result.state.results[:4] if r.get("replayed")] == ["prediction log"] * 2
    # a candidate that answers differently on the replayed inputs is rolled back, naming the replay
    shifted = [0.9 + 0.01 * (i % 10) for i in range(300)]
    io = ReplayIO((sample(300, predictions=same), sample(300, predictions=shifted)))
    result = run_rollout(new_state(), rollout, io)
    assert result.state.phase == "rolled_back" and "on replayed prediction log: prediction_shift" in result.state.reason
    # nothing to replay: rolled back, saying so
    io = ReplayIO(None)
    result = run_rollout(new_state(), rollout, io)
    assert result.state.phase == "rolled_back" and "nothing to replay" in result.state.reason


def test_a_replayed_canary_step_is_not_judged_on_agreement_but_a_shadow_is():
    rollout = {**ROLLOUT, "on_inconclusive": "replay",
               "analysis": {"min_requests": 100, "max_prediction_shift": None, "min_agreement": 0.95}}
    stable = [0.1 * (i % 10) for i in range(200)]
    candidate = [p + 0.2 for p in stable]  # same ranking (no shift judged here), but never within ±0.05
    canary = run_rollout(new_state(), rollout, ReplayIO((sample(200, predictions=stable), sample(200, predictions=candidate))))
    assert canary.promoted
    shadow = run_rollout(new_state("shadow"), {**rollout, "strategy": "shadow"},
                         ReplayIO((sample(200, predictions=stable), sample(200, predictions=candidate))))
    assert shadow.state.phase == "rolled_back" and "agreement" in shadow.state.reason


def test_the_plan_states_what_happens_without_traffic():
    from ml_framework.plugins.serving.rollout import describe

    assert "inconclusive: rollback" in describe(ROLLOUT)
    text = describe({**ROLLOUT, "on_inconclusive": "replay", "replay": {"sources": ["validation"]}})
    assert "100 inputs are replayed to both versions (the candidate's validation rows)" in text


def test_a_candidate_costing_more_per_prediction_than_allowed_fails_the_step():
    stable, cheap, dear = Sample(), Sample(), Sample()
    for _ in range(200):
        stable.add(status=200, latency_ms=1.0, prediction=0.5, cpu_ms=0.10)
        cheap.add(status=200, latency_ms=1.0, prediction=0.5, cpu_ms=0.11)
        dear.add(status=200, latency_ms=1.0, prediction=0.5, cpu_ms=0.30)
    analysis = {"min_requests": 100, "max_cost_ratio": 1.5, "max_prediction_shift": None}
    assert evaluate(analysis, stable, cheap).status == "passed"
    verdict = evaluate(analysis, stable, dear)
    (check,) = [c for c in verdict.checks if c.name == "cost_ratio"]
    assert verdict.status == "failed" and not check.passed and check.value == pytest.approx(3.0)
    assert "300 vs stable 100 CPU-ms per 1,000 predictions" in check.detail
    without = Sample()
    for _ in range(200):
        without.add(status=200, latency_ms=1.0, prediction=0.5)  # batching: no per-request CPU, not judged
    assert [c.name for c in evaluate(analysis, stable, without).checks] == ["error_rate"]
