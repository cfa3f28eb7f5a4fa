"""Evaluate policy rules over a plan's changes (or, at ``ml validate``, over the desired specs).

Levels follow Sentinel's: a failing ``advisory`` rule is reported and lets the run go on; a failing
``soft-mandatory`` rule blocks apply unless overridden by name (``--override-policy NAME``, recorded with
who overrode it); a failing ``hard-mandatory`` rule always blocks.
"""

from __future__ import annotations

from typing import Iterable, Mapping

from ..errors import MLError, did_you_mean
from ..plan.model import DELETE, Change, PolicyCheck
from .rules import HARD_MANDATORY, SOFT_MANDATORY, Rule

__all__ = ["PolicyError", "evaluate", "check_overrides", "blocking_message"]


class PolicyError(MLError):
    """A mandatory policy failed, or an override names no rule that can be overridden."""

    exit_code = 3


def check_overrides(rules: Iterable[Rule], names: Iterable[str]) -> None:
    """Refuse overrides of unknown or hard-mandatory rules before anything is planned."""
    by_name = {r.name: r for r in rules}
    for name in names:
        rule = by_name.get(name)
        if rule is None:
            raise PolicyError(f"--override-policy {name}: no such policy", hint=did_you_mean(name, by_name)
                              or (f"policies: {', '.join(sorted(by_name))}" if by_name else "the project has no policies"))
        if rule.level == HARD_MANDATORY:
            raise PolicyError(f"--override-policy {name}: a hard-mandatory policy cannot be overridden "
                              f"(defined at {rule.source}); change the specs or the policy")


def _context(change: Change, env: str | None) -> dict:
    spec = change.before if change.action == DELETE else change.after
    spec = dict(spec or {})
    return {"address": change.address, "kind": change.kind, "name": spec.get("name", change.address.partition(".")[2]),
            "backend": change.backend, "action": change.action, "spec": spec, "before": change.before,
            "after": change.after, "env": env, "cost": change.cost,
            "fields": [{"path": f.path, "before": f.before, "after": f.after} for f in change.fields]}


def _applies(rule: Rule, change: Change, env: str | None) -> bool:
    return ((not rule.kinds or change.kind.lower() in rule.kinds) and change.action in rule.actions
            and (not rule.envs or (env or "") in rule.envs))


def _truthy(expression, context: dict) -> bool:
    """JMESPath truth: false, null, '', [] and {} are false."""
    value = expression.search(context)
    return value not in (None, False, "", [], {})


def evaluate(rules: Iterable[Rule], changes: Iterable[Change], *, env: str | None, overrides: Iterable[str] = (),
             actor: str | None = None, made: Mapping[str, str] | None = None) -> tuple[PolicyCheck, ...]:
    """One PolicyCheck per rule: how many resources it looked at and which failed, with why. ``overrides``
    are made now, by ``actor``; ``made``: overrides made earlier (a saved plan's), rule -> who made them."""
    from jmespath.exceptions import JMESPathError

    changes = list(changes)
    who_overrode = {**dict(made or {}), **{name: actor or "unknown" for name in overrides}}
    checks = []
    for rule in rules:
        checked, failures = 0, []
        for change in changes:
            if not _applies(rule, change, env):
                continue
            context = _context(change, env)
            try:
                if rule.where is not None and not _truthy(rule.where, context):
                    continue
                checked += 1
                if not _truthy(rule.require, context):
                    failures.append((change.address, rule.message or rule.description or f"requires {rule.require_text}"))
            except JMESPathError as exc:  # e.g. a function given the wrong type: the rule cannot pass
                failures.append((change.address, f"the rule could not be evaluated: {str(exc).strip()}"))
        who = who_overrode.get(rule.name) if failures and rule.level == SOFT_MANDATORY else None
        checks.append(PolicyCheck(name=rule.name, level=rule.level, source=rule.source, description=rule.description,
                                  checked=checked, failures=tuple(failures), overridden_by=who))
    return tuple(checks)


def blocking_message(checks: Iterable[PolicyCheck]) -> str | None:
    """The error for the checks that block an apply (their failures are printed with the plan), or None."""
    blocking = [c for c in checks if c.blocking]
    if not blocking:
        return None
    names = ", ".join(f"{c.name} ({c.level}, {len(c.failures)} resource{'s' if len(c.failures) != 1 else ''})"
                      for c in blocking)
    soft = [c.name for c in blocking if c.level == SOFT_MANDATORY]
    hint = None
    if soft:
        hint = ("a soft-mandatory policy can be overridden, recorded with who did: "
                + " ".join(f"--override-policy {n}" for n in soft))
    return PolicyError(f"mandatory polic{'y' if len(blocking) == 1 else 'ies'} failed: {names}", hint=hint).__str__()
