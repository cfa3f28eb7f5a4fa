"""A feature's data contract (``checks`` of a feature view's feature: ``ge``, ``le``, ``gt``, ``lt``,
``between``, ``isin``, ``regex``) applied to one value — what a serving backend checks on every request,
from the same declarations the feature backend compiles to pandera for the training data. Pure Python:
a service imports nothing heavy for it."""

from __future__ import annotations

import math
import re
from typing import Any, Mapping

__all__ = ["VALUE_RULES", "value_rules", "violation"]

VALUE_RULES = ("ge", "le", "gt", "lt", "between", "isin", "regex")  # the rules one value can break


def value_rules(checks: Mapping[str, Any] | None) -> dict[str, Any]:
    """The per-value rules of a feature's ``checks`` block (None values and dataset rules dropped)."""
    return {k: v for k, v in (checks or {}).items() if k in VALUE_RULES and v is not None}


def violation(rules: Mapping[str, Any] | None, value: Any) -> str | None:
    """What is wrong with ``value`` under ``rules`` (for a 422 naming the rule), or None. Missing values
    are the request's business (nullable features): not judged here."""
    if not rules or value is None:
        return None
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if number and isinstance(value, float) and math.isnan(value):
        return None
    for rule, bound in rules.items():
        if rule in ("ge", "le", "gt", "lt") and number:
            ok = {"ge": value >= bound, "le": value <= bound, "gt": value > bound, "lt": value < bound}[rule]
            if not ok:
                sign = {"ge": ">=", "le": "<=", "gt": ">", "lt": "<"}[rule]
                return f"must be {sign} {bound:g} (the feature's contract: checks.{rule})"
        elif rule == "between" and number:
            low, high = bound
            if not low <= value <= high:
                return f"must be between {low:g} and {high:g} (the feature's contract: checks.between)"
        elif rule == "isin" and value not in bound:
            shown = ", ".join(repr(v) for v in list(bound)[:8]) + (", ..." if len(bound) > 8 else "")
            return f"must be one of {shown} (the feature's contract: checks.isin)"
        elif rule == "regex" and isinstance(value, str) and not re.fullmatch(bound, value):
            return f"must match {bound!r} (the feature's contract: checks.regex)"
    return None
