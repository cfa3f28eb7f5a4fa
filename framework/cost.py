"""What a plan costs, where it can be known: ml.yaml's ``pricing`` times what each resource uses
(``contract.ResourceUse``, from backends with the ``resource_use`` capability) — the apply's estimated
duration on its cores, and the cores and memory a running resource holds, per month.

    pricing: {cpu_hour: 0.048, memory_gb_hour: 0.0053, currency: USD}   # e.g. your cloud's on-demand price
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .contract import ResourceUse
from .errors import Location, SpecError

__all__ = ["Pricing", "HOURS_PER_MONTH", "DEFAULT_PRICING", "parse_pricing", "with_costs", "money", "running_cost"]

HOURS_PER_MONTH = 730  # 365 * 24 / 12, as cloud price lists count a month


class Pricing(BaseModel):
    model_config = ConfigDict(extra="forbid")

    cpu_hour: float = Field(ge=0, description="price of one core for one hour")
    memory_gb_hour: float = Field(default=0.0, ge=0, description="price of one GB of memory for one hour")
    currency: str = Field(default="USD", min_length=1, max_length=8)


def parse_pricing(value: Any, file: str, lines: Mapping[tuple, int]) -> Pricing | None:
    """ml.yaml's ``pricing`` block, or None; errors name the file, line and field."""
    if value is None:
        return None
    try:
        return Pricing.model_validate(value)
    except ValidationError as exc:
        errors = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")  # a typo explains the rest
        first = errors[0]
        path = ("pricing",) + tuple(str(p) for p in first["loc"])
        line = lines.get(path) or lines.get(("pricing",))
        hint = None
        if first["type"] == "extra_forbidden":
            from .errors import did_you_mean

            hint = did_you_mean(str(first["loc"][-1]), Pricing.model_fields)
        raise SpecError("unknown field" if first["type"] == "extra_forbidden" else first["msg"],
                        location=Location(file, line), field=".".join(path), hint=hint) from exc


# Used for running costs (per 1,000 predictions, per training run) when ml.yaml sets no ``pricing``: about a
# cloud's on-demand price of a general-purpose core and of a GB of its memory, per hour (USD).
DEFAULT_PRICING = Pricing(cpu_hour=0.048, memory_gb_hour=0.0053, currency="USD")


def running_cost(cpu_seconds: float, gb_hours: float, pricing: Pricing | None) -> float:
    """The price of ``cpu_seconds`` of CPU and ``gb_hours`` of memory."""
    pricing = pricing or DEFAULT_PRICING
    return cpu_seconds / 3600.0 * pricing.cpu_hour + gb_hours * pricing.memory_gb_hour


_SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£"}


def money(value: float, currency: str, *, small: bool = False) -> str:
    """``small``: four significant digits below one unit (a cost per 1,000 predictions), not "<$0.01"."""
    symbol = _SYMBOLS.get(currency)
    if small and 0 < value < 1:
        text = f"{value:.4g}"
        return f"{symbol}{text}" if symbol else f"{text} {currency}"
    if 0 < value < 0.01:
        return f"<{symbol or ''}0.01{'' if symbol else ' ' + currency}"
    text = f"{value:,.2f}"
    return f"{symbol}{text}" if symbol else f"{text} {currency}"


def with_costs(plan, uses: Mapping[str, ResourceUse], pricing: Pricing | None):
    """The plan with each change's ``cost``: ``{"apply": ..., "monthly": ..., "currency": ...}`` (a part is
    None when it cannot be known: no estimate of the apply's duration, nothing that keeps running)."""
    if pricing is None:
        return plan
    changes = []
    for change in plan.changes:
        use = uses.get(change.address)
        if use is None or change.action == "delete":
            changes.append(change)
            continue
        apply_cost = None
        if change.action != "no-op" and change.estimate_seconds is not None:
            apply_cost = change.estimate_seconds / 3600 * use.apply_cpus * pricing.cpu_hour
        monthly = None
        if use.running_cpus or use.running_memory_gb:
            monthly = HOURS_PER_MONTH * (use.running_cpus * pricing.cpu_hour + use.running_memory_gb * pricing.memory_gb_hour)
        if apply_cost is None and monthly is None:
            changes.append(change)
            continue
        cost = {"apply": round(apply_cost, 6) if apply_cost is not None else None,
                "monthly": round(monthly, 4) if monthly is not None else None, "currency": pricing.currency}
        changes.append(dataclasses.replace(change, cost=cost))
    return dataclasses.replace(plan, changes=tuple(changes))
