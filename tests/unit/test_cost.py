"""Costs in plans: ml.yaml's pricing times what each backend says a resource uses."""

from __future__ import annotations

import json
from typing import ClassVar

from ml_framework.contract import PlanResult, ResourceUse
from ml_framework.testing import InMemoryProvider, run_cli
from memory_specs import feature_specs, write_specs

SPECS = feature_specs(view_backend="serve")


class Serving(InMemoryProvider):
    """Stands for a backend that trains for 2 hours on 4 cores and keeps 3 cores while it runs."""

    capabilities: ClassVar[tuple[str, ...]] = ("resource_use",)

    def resource_use(self, resource):
        return ResourceUse(apply_cpus=4, running_cpus=3, running_memory_gb=2)

    def plan(self, request):
        return PlanResult(estimate_seconds=7200.0)


def _project(tmp_path, pricing: str | None = "pricing: {cpu_hour: 0.05, memory_gb_hour: 0.01, currency: EUR}\n"):
    write_specs(tmp_path, SPECS)
    if pricing:
        (tmp_path / "ml.yaml").write_text(pricing)
    return tmp_path


def providers():
    return {"memory": InMemoryProvider(), "serve": Serving("serve")}


def test_a_plan_prices_what_applying_takes_and_what_keeps_running(tmp_path):
    root = _project(tmp_path)
    chosen = providers()
    created = json.loads(run_cli(["plan", "--json"], providers=chosen, cwd=root).output)
    view = next(c for c in created["changes"] if c["address"] == "featureview.txn_stats")
    # A create has no duration estimate yet: only what it will hold while running is priced.
    assert view["cost"] == {"apply": None, "monthly": round(730 * (3 * 0.05 + 2 * 0.01), 4), "currency": "EUR"}
    entity = next(c for c in created["changes"] if c["address"] == "entity.customer")
    assert entity["cost"] is None  # one core while applying, no estimate, nothing running: unknown
    assert run_cli(["apply", "--auto-approve"], providers=chosen, cwd=root).exit_code == 0

    changed = run_cli(["plan", "+feature_views.txn_stats.ttl=2d"], providers=chosen, cwd=root)
    line = next(l for l in changed.output.splitlines() if "featureview.txn_stats" in l)
    assert "~ 2h" in line and "€0.40 to apply, €124.10/month running" in line, line  # 2 h x 4 cores x 0.05
    assert "Estimated cost: €0.40 to apply, €124.10/month running (ml.yaml pricing)" in changed.output
    md = run_cli(["plan", "--format", "markdown", "+feature_views.txn_stats.ttl=2d"], providers=chosen,
                 cwd=root).output
    assert "Estimated cost: €0.40 to apply" in md and "· €0.40 to apply, €124.10/month running |" in md


def test_a_policy_can_cap_what_a_resource_costs(tmp_path):
    root = _project(tmp_path)
    (root / "policies").mkdir()
    (root / "policies" / "cost.yaml").write_text(
        "policies:\n  - {name: cheap, level: hard-mandatory, where: 'cost.monthly', require: 'cost.monthly < `100`'}\n")
    result = run_cli(["plan"], providers=providers(), cwd=root)
    assert result.exit_code == 3 and "featureview.txn_stats: requires cost.monthly < `100`" in result.output


def test_without_pricing_plans_say_nothing_of_cost_and_bad_pricing_is_named(tmp_path):
    root = _project(tmp_path, pricing=None)
    plain = json.loads(run_cli(["plan", "--json"], providers=providers(), cwd=root).output)
    assert all(c["cost"] is None for c in plain["changes"])
    (root / "ml.yaml").write_text("name: x\npricing:\n  cpu_hour: -1\n")
    bad = run_cli(["plan"], providers=providers(), cwd=root)
    assert bad.exit_code == 1 and "ml.yaml:3: pricing.cpu_hour: Input should be greater than or equal to 0" in bad.output
    (root / "ml.yaml").write_text("pricing: {cpu_hours: 1}\n")
    typo = run_cli(["plan"], providers=providers(), cwd=root)
    assert typo.exit_code == 1 and "pricing.cpu_hours: unknown field" in typo.output and "did you mean 'cpu_hour'" in typo.output
