"""The plan as JSON (the stable, documented format of docs/plan-format.md) and back."""

from __future__ import annotations

import json

from ml_framework.errors import PlanError
from ml_framework.plan.model import ACTIONS, PLAN_FORMAT_VERSION, Plan

__all__ = ["render_json", "load_plan_json"]


def render_json(plan: Plan, *, indent: int | None = 2) -> str:
    """``plan.to_dict()`` as JSON, keys in the order ``to_dict`` gives them (not sorted)."""
    return json.dumps(plan.to_dict(), indent=indent, default=str, ensure_ascii=False)


def load_plan_json(text: str | bytes, *, source: str | None = None) -> Plan:
    """Parse a plan written by :func:`render_json`. Raises PlanError when it cannot be read.

    ``source`` (a file name) only makes the error messages more useful.
    """
    where = f"plan {source}" if source else "plan"
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise PlanError(f"{where} is not valid JSON: {exc}",
                        hint="was it written by `ml plan -out` or `ml plan --json`?") from exc
    except TypeError as exc:
        raise PlanError(f"{where} is not valid JSON: expected text, got {type(text).__name__}") from exc
    if not isinstance(data, dict):
        raise PlanError(f"{where} is not an ml plan: expected a JSON object, got {type(data).__name__}")

    if "format_version" not in data:
        raise PlanError(f"{where} is not an ml plan: missing key 'format_version'")
    version = data["format_version"]
    if isinstance(version, bool) or not isinstance(version, int):
        raise PlanError(f"{where} has an invalid format_version {version!r} (expected an integer)")
    if version > PLAN_FORMAT_VERSION:
        raise PlanError(
            f"{where} has format_version {version}, newer than this ml understands "
            f"(format_version {PLAN_FORMAT_VERSION})",
            hint="upgrade ml, or make the plan again with this version",
        )
    if version < 1:
        raise PlanError(f"{where} has an invalid format_version {version!r}")

    try:
        plan = Plan.from_dict(data)
    except KeyError as exc:
        raise PlanError(f"{where} is malformed: missing key {exc.args[0]!r}") from exc
    except (TypeError, ValueError, AttributeError) as exc:
        raise PlanError(f"{where} is malformed: {exc}") from exc

    for change in plan.changes:
        if change.action not in ACTIONS:
            raise PlanError(f"{where} is malformed: {change.address}: unknown action {change.action!r}"
                            f" (expected one of {', '.join(ACTIONS)})")
    return plan
