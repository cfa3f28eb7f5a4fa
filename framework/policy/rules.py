"""Policy rules: YAML files in the project's ``policies/`` folder, read and checked before any plan.

A file holds a ``policies:`` list. Each rule names the resources it looks at and a JMESPath expression
(https://jmespath.org) that must be truthy for each of them::

    policies:
      - name: rate-limited
        description: Every Deployment has a rate limit.
        level: hard-mandatory            # advisory | soft-mandatory | hard-mandatory
        kinds: [Deployment]              # optional: every kind
        envs: [prod]                     # optional: every environment
        actions: [create, update, replace]  # optional: every action but delete
        where: "spec.serving.backend == 'bentoml'"   # optional: narrows the resources further
        require: "spec.rate_limit"
        message: "set rate_limit: {requests_per_second: N}"   # optional: the description

Expressions see one resource of the plan: ``address``, ``kind``, ``name``, ``backend``, ``action``,
``spec`` (the desired spec, or the recorded one for a delete), ``before``, ``after``, ``fields`` (the
changed fields), ``env`` and ``cost`` (``{apply, monthly, currency}`` with ml.yaml's ``pricing``). Mistakes in a rule are reported with its file and line, at ``ml validate``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import Location, SpecError, SpecErrors, did_you_mean

__all__ = ["LEVELS", "ADVISORY", "SOFT_MANDATORY", "HARD_MANDATORY", "Rule", "load_rules", "POLICY_DIR"]

POLICY_DIR = "policies"
ADVISORY, SOFT_MANDATORY, HARD_MANDATORY = "advisory", "soft-mandatory", "hard-mandatory"
LEVELS = (ADVISORY, SOFT_MANDATORY, HARD_MANDATORY)
_ACTIONS = ("create", "update", "replace", "delete", "no-op")
_DEFAULT_ACTIONS = ("create", "update", "replace", "no-op")
_FIELDS = {"name", "description", "level", "kinds", "envs", "actions", "where", "require", "message"}


@dataclass(frozen=True)
class Rule:
    name: str
    level: str
    require: Any  # a compiled JMESPath expression
    source: str  # "policies/serving.yaml:4"
    description: str = ""
    message: str = ""
    kinds: tuple[str, ...] = ()  # lower-case kind names; empty = every kind
    envs: tuple[str, ...] = ()  # empty = every environment
    actions: tuple[str, ...] = _DEFAULT_ACTIONS
    where: Any = None  # a compiled JMESPath expression, or None
    require_text: str = ""


def load_rules(folder: Path, base: Path, kinds: list[str] | None = None) -> tuple[Rule, ...]:
    """Every rule of every ``*.yaml`` file in ``folder`` (none when it does not exist). ``kinds``: the
    registered kinds' names, to check ``kinds:`` against. Raises SpecErrors naming each mistake."""
    if not folder.is_dir():
        return ()
    from ..spec.loader import load_yaml_documents

    rules: list[Rule] = []
    errors: list[SpecError] = []
    for path in sorted(p for p in folder.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file()):
        display = str(path.relative_to(base)) if path.is_relative_to(base) else str(path)
        for doc in load_yaml_documents(path, display):
            items = doc.data.get("policies")
            unknown = sorted(set(doc.data) - {"policies"})
            if unknown or not isinstance(items, list):
                key = unknown[0] if unknown else "policies"
                errors.append(SpecError("a policy file holds one key, 'policies', a list of rules",
                                        location=Location(display, doc.locations.get((key,), doc.line)), field=key))
                continue
            for index, item in enumerate(items):
                _Reader(display, doc.locations, index, kinds, errors).read(item, rules)
    seen: dict[str, str] = {}
    for rule in rules:
        if rule.name in seen:
            file, _, line = rule.source.rpartition(":")
            errors.append(SpecError(f"duplicate policy name {rule.name!r} (first at {seen[rule.name]})",
                                    location=Location(file, int(line)), field="name"))
        seen.setdefault(rule.name, rule.source)
    if errors:
        raise SpecErrors(errors)
    return tuple(rules)


class _Reader:
    """Reads one rule, adding a located SpecError per mistake."""

    def __init__(self, file: str, locations, index: int, kinds, errors: list[SpecError]):
        self.file, self.locations, self.index, self.kinds, self.errors = file, locations, index, kinds, errors

    def where(self, key: str | None = None) -> Location:
        path = ("policies", str(self.index)) + ((key,) if key else ())
        return Location(self.file, self.locations.get(path) or self.locations.get(path[:2]))

    def error(self, key: str, message: str, hint: str | None = None) -> None:
        self.errors.append(SpecError(message, location=self.where(key), field=f"policies[{self.index}].{key}",
                                     hint=hint))

    def read(self, item: Any, rules: list[Rule]) -> None:
        before = len(self.errors)
        if not isinstance(item, dict):
            self.errors.append(SpecError("a rule is a mapping (name, level, require, ...)", location=self.where()))
            return
        for key in sorted(set(item) - _FIELDS):
            self.error(key, "unknown field", did_you_mean(key, _FIELDS))
        name, level, require = item.get("name"), item.get("level"), item.get("require")
        if not isinstance(name, str) or not name.strip():
            self.error("name", "every rule needs a name (a string)")
        if level not in LEVELS:
            self.error("level", f"level must be one of {', '.join(LEVELS)}, got {level!r}",
                       did_you_mean(str(level), LEVELS))
        compiled = self.expression("require", require, required=True)
        condition = self.expression("where", item.get("where"), required=False)
        kinds = self.names("kinds", item.get("kinds"))
        if self.kinds is not None:
            known = {k.lower(): k for k in self.kinds}
            for kind in kinds:
                if kind.lower() not in known:
                    self.error("kinds", f"unknown kind {kind!r}", did_you_mean(kind, list(self.kinds)))
        actions = self.names("actions", item.get("actions"))
        for action in actions:
            if action not in _ACTIONS:
                self.error("actions", f"unknown action {action!r} (one of {', '.join(_ACTIONS)})",
                           did_you_mean(action, _ACTIONS))
        envs = self.names("envs", item.get("envs"))
        if len(self.errors) > before:
            return
        rules.append(Rule(name=name.strip(), level=level, require=compiled, source=str(self.where()),
                          description=str(item.get("description") or ""), message=str(item.get("message") or ""),
                          kinds=tuple(k.lower() for k in kinds), envs=tuple(envs),
                          actions=tuple(actions) or _DEFAULT_ACTIONS, where=condition, require_text=str(require)))

    def names(self, key: str, value: Any) -> list[str]:
        if value is None:
            return []
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.error(key, "expected a list of names")
            return []
        return value

    def expression(self, key: str, text: Any, *, required: bool):
        if text is None:
            if required:
                self.error(key, "every rule needs 'require': a JMESPath expression that must be true")
            return None
        if not isinstance(text, str) or not text.strip():
            self.error(key, "expected a JMESPath expression (a string)")
            return None
        import jmespath
        from jmespath.exceptions import JMESPathError

        try:
            return jmespath.compile(text)
        except JMESPathError as exc:
            detail = str(exc).strip().splitlines()[0].removeprefix("Bad jmespath expression: ").rstrip(":")
            position = getattr(exc, "lex_position", None)
            position = getattr(exc, "lexer_position", None) if position is None else position
            if isinstance(position, int):
                detail += f" at character {position + 1} of {text!r}"
            self.error(key, f"not a valid JMESPath expression: {detail}",
                       "string literals take single quotes ('auto'), numbers backticks (`0`)")
            return None
