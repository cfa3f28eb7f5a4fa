"""The plan: pure, serializable data. Renderers read it; the executor applies exactly it.

JSON format (``format_version`` 1), stable and documented in docs/plan-format.md:

    {"format_version": 1, "plan_id": ..., "created_at": ..., "ml_version": ...,
     "state": {"lineage": ..., "serial": ...}, "env": ..., "overrides": [...], "targets": [...],
     "operation": "apply" | "destroy",
     "changes": [{"address", "kind", "backend", "action", "actions": [...], "reasons": [...],
                  "fields": [{"path", "before", "after", "forces_replacement"}],
                  "before", "after", "fingerprint", "depends_on", "inputs", "estimate_seconds"}],
     "drift": [{"address", "kind", "exists", "fields": [{"path", "recorded", "actual"}]}],
     "errors": [{"address", "message"}],
     "policy_checks": [{"name", "level", "source", "description", "checked", "outcome", "failures", "overridden_by"}],
     "summary": {"create": n, "update": n, "replace": n, "delete": n, "no-op": n}}

``actions`` follows Terraform: ["no-op"], ["create"], ["update"], ["delete", "create"] for a replace
(delete first), ["delete"].
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = [
    "PLAN_FORMAT_VERSION",
    "CREATE",
    "UPDATE",
    "REPLACE",
    "DELETE",
    "NOOP",
    "ACTIONS",
    "FieldDiff",
    "Change",
    "Drift",
    "PlanIssue",
    "PolicyCheck",
    "Plan",
]

PLAN_FORMAT_VERSION = 1
CREATE, UPDATE, REPLACE, DELETE, NOOP = "create", "update", "replace", "delete", "no-op"
ACTIONS = (CREATE, UPDATE, REPLACE, DELETE, NOOP)
_ACTION_LIST = {CREATE: [CREATE], UPDATE: [UPDATE], REPLACE: [DELETE, CREATE], DELETE: [DELETE], NOOP: [NOOP]}


@dataclass(frozen=True)
class FieldDiff:
    path: str
    before: Any
    after: Any
    forces_replacement: bool = False


@dataclass(frozen=True)
class Change:
    address: str
    kind: str
    backend: str
    action: str
    reasons: tuple[str, ...] = ()
    fields: tuple[FieldDiff, ...] = ()
    before: dict | None = None  # recorded spec (masked)
    after: dict | None = None  # desired spec (masked)
    fingerprint: str | None = None  # desired fingerprint (None for delete)
    depends_on: tuple[str, ...] = ()
    inputs: dict = field(default_factory=dict)  # upstream fingerprints + provider extra inputs
    estimate_seconds: float | None = None
    held: str | None = None  # a no-op the provider held back, and why (`--retry ADDRESS` applies it)
    cost: dict | None = None  # {"apply", "monthly", "currency"} from ml.yaml's pricing, where it can be known
    moved_from: str | None = None  # `kind: Moved`: the address this resource is recorded under now (renamed first)
    restate: str | None = None  # a no-op whose recorded spec is rewritten, and why (a reference to a moved resource)
    imported: str | None = None  # `kind: Import`: a create that adopts this existing object (its backend's id)

    @property
    def pending(self) -> bool:
        """Something to do at apply: an action, a rename or a record to rewrite."""
        return self.action != NOOP or bool(self.moved_from) or bool(self.restate)

    @property
    def actions(self) -> list[str]:
        return list(_ACTION_LIST[self.action])

    def to_dict(self) -> dict:
        data = asdict(self)
        data["actions"] = self.actions
        data["reasons"] = list(self.reasons)
        data["depends_on"] = list(self.depends_on)
        data["fields"] = [asdict(f) for f in self.fields]
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "Change":
        data = dict(data)
        data.pop("actions", None)
        data["reasons"] = tuple(data.get("reasons", ()))
        data["depends_on"] = tuple(data.get("depends_on", ()))
        data["fields"] = tuple(FieldDiff(**f) for f in data.get("fields", ()))
        return cls(**data)


@dataclass(frozen=True)
class Drift:
    """Out-of-band change found by refresh, reported apart from the plan's own changes."""

    address: str
    kind: str
    exists: bool
    fields: tuple[tuple[str, Any, Any], ...] = ()  # (path, recorded, actual)

    def to_dict(self) -> dict:
        return {"address": self.address, "kind": self.kind, "exists": self.exists,
                "fields": [{"path": p, "recorded": r, "actual": a} for p, r, a in self.fields]}

    @classmethod
    def from_dict(cls, data: dict) -> "Drift":
        return cls(address=data["address"], kind=data["kind"], exists=data["exists"],
                   fields=tuple((f["path"], f["recorded"], f["actual"]) for f in data.get("fields", ())))


@dataclass(frozen=True)
class PlanIssue:
    """A resource that could not be planned (e.g. its plugin failed to import)."""

    address: str
    message: str


@dataclass(frozen=True)
class PolicyCheck:
    """One policy rule evaluated over the plan: how many resources it looked at and which failed."""

    name: str
    level: str  # advisory | soft-mandatory | hard-mandatory
    source: str  # file:line of the rule
    description: str = ""
    checked: int = 0
    failures: tuple[tuple[str, str], ...] = ()  # (address, message)
    overridden_by: str | None = None  # who passed a failing soft-mandatory rule (`--override-policy`)

    @property
    def outcome(self) -> str:
        return "passed" if not self.failures else ("overridden" if self.overridden_by else "failed")

    @property
    def blocking(self) -> bool:
        return self.outcome == "failed" and self.level != "advisory"

    def to_dict(self) -> dict:
        return {"name": self.name, "level": self.level, "source": self.source, "description": self.description,
                "checked": self.checked, "outcome": self.outcome,
                "failures": [{"address": a, "message": m} for a, m in self.failures],
                "overridden_by": self.overridden_by}

    @classmethod
    def from_dict(cls, data: dict) -> "PolicyCheck":
        return cls(name=data["name"], level=data["level"], source=data.get("source", ""),
                   description=data.get("description", ""), checked=int(data.get("checked", 0)),
                   failures=tuple((f["address"], f["message"]) for f in data.get("failures", ())),
                   overridden_by=data.get("overridden_by"))


@dataclass(frozen=True)
class Plan:
    plan_id: str
    created_at: str
    ml_version: str
    lineage: str
    serial: int
    changes: tuple[Change, ...]
    drift: tuple[Drift, ...] = ()
    errors: tuple[PlanIssue, ...] = ()
    env: str | None = None
    overrides: tuple[str, ...] = ()
    targets: tuple[str, ...] = ()
    operation: str = "apply"
    spec_dir: str | None = None
    retry: tuple[str, ...] = ()  # addresses applied even if their provider would hold them (`--retry`)
    policy_checks: tuple[PolicyCheck, ...] = ()  # the project's policy rules evaluated over this plan

    def blocked_by_policy(self) -> list[PolicyCheck]:
        """Mandatory policy checks that failed and were not overridden: apply refuses the plan."""
        return [c for c in self.policy_checks if c.blocking]

    def held(self) -> list[Change]:
        """Changes a provider held back (planned as no change; `--retry ADDRESS` applies them)."""
        return [c for c in self.changes if c.held]

    def summary(self) -> dict[str, int]:
        counts = {a: 0 for a in ACTIONS}
        for change in self.changes:
            counts[change.action] += 1
        counts["move"] = sum(1 for c in self.changes if c.moved_from)
        counts["import"] = sum(1 for c in self.changes if c.imported)
        return counts

    @property
    def has_changes(self) -> bool:
        return any(c.pending for c in self.changes)

    def costs(self) -> dict | None:
        """Totals of the changes' costs: ``{"apply", "monthly", "currency"}`` (monthly: what keeps running
        after this plan, unchanged resources included), or None without pricing."""
        priced = [c.cost for c in self.changes if c.cost]
        if not priced:
            return None
        apply = [p["apply"] for p in priced if p.get("apply") is not None]
        monthly = [p["monthly"] for p in priced if p.get("monthly") is not None]
        return {"apply": round(sum(apply), 6) if apply else None, "monthly": round(sum(monthly), 4) if monthly else None,
                "currency": priced[0].get("currency", "USD")}

    def pending(self) -> list[Change]:
        return [c for c in self.changes if c.pending]

    def to_dict(self) -> dict:
        return {
            "format_version": PLAN_FORMAT_VERSION,
            "plan_id": self.plan_id,
            "created_at": self.created_at,
            "ml_version": self.ml_version,
            "operation": self.operation,
            "state": {"lineage": self.lineage, "serial": self.serial},
            "env": self.env,
            "overrides": list(self.overrides),
            "targets": list(self.targets),
            "spec_dir": self.spec_dir,
            "retry": list(self.retry),
            "changes": [c.to_dict() for c in self.changes],
            "drift": [d.to_dict() for d in self.drift],
            "errors": [{"address": e.address, "message": e.message} for e in self.errors],
            "policy_checks": [c.to_dict() for c in self.policy_checks],
            "summary": self.summary(),
        }

    @classmethod
    def from_dict(cls, data: dict) -> "Plan":
        return cls(
            plan_id=data["plan_id"],
            created_at=data["created_at"],
            ml_version=data["ml_version"],
            lineage=data["state"]["lineage"],
            serial=data["state"]["serial"],
            changes=tuple(Change.from_dict(c) for c in data["changes"]),
            drift=tuple(Drift.from_dict(d) for d in data.get("drift", ())),
            errors=tuple(PlanIssue(**e) for e in data.get("errors", ())),
            env=data.get("env"),
            overrides=tuple(data.get("overrides", ())),
            targets=tuple(data.get("targets", ())),
            operation=data.get("operation", "apply"),
            spec_dir=data.get("spec_dir"),
            retry=tuple(data.get("retry", ())),
            policy_checks=tuple(PolicyCheck.from_dict(c) for c in data.get("policy_checks", ())),
        )
