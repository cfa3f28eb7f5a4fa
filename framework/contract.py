"""The provider contract: the one seam between the engine and every backend.

A provider owns one or more spec kinds for one backend name (``feast``, ``lightgbm``, ``bentoml``...).
It is registered under that name in the ``ml.providers`` entry-point group, built-in backends exactly
as third-party ones, and imported only when a resource it owns is validated, planned or applied.

Call order, per resource, in one run:

0. ``configure(project_dir, settings)`` — optional, once after loading: the project directory and the
   ``backends.<name>`` block of the project file ``ml.yaml`` (plain data, may be empty).
1. ``config_model(kind)`` — at validation. Returns the pydantic model of the backend's own settings
   (the block named by the kind's backend field, e.g. ``trainer`` of a Model), or None for none.
   Errors still point at the YAML line: the engine maps the model's error locations back to the file.
2. ``fingerprint(FingerprintRequest)`` — at planning, for every desired resource. Returns extra inputs
   that should trigger a change (e.g. ``{"source_data": "<hash>"}``). Must be cheap: no whole-file reads
   when nothing changed (use size/mtime caches).
3. ``read(ReadRequest)`` — at refresh, only for resources recorded in state. Says whether the thing
   still exists and reports out-of-band drift. Cheap, read-only.
4. ``plan(PlanRequest)`` — only when the engine found a difference for the resource. Says which changed
   fields force replacement and adds human reasons. Pure: no side effects.
5. ``apply(ApplyRequest, ctx)`` — create, update or replace the resource (after the engine deleted the
   prior one for a delete-then-create replace). Reports progress through ``ctx``; may checkpoint
   intermediate outputs with ``ctx.checkpoint`` so an interrupted multi-step change can resume.
   Returns the outputs to record in state (ids, versions, URLs) — never secret values.
6. ``delete(DeleteRequest, ctx)`` — remove what ``apply`` made. Must succeed if it is already gone.

Any exception raised by a provider is wrapped by the engine with the resource address
(``model.fraud: ...``) and chained, so providers may simply raise. Raise
:class:`ml_framework.errors.MLError` subclasses for messages meant for users.

``ml_framework.testing`` ships an in-memory provider and a contract suite every provider should pass.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Mapping, Protocol, runtime_checkable

if TYPE_CHECKING:  # pydantic is only needed by providers that declare settings
    from pydantic import BaseModel

__all__ = [
    "ENTRY_POINT_GROUP",
    "Resource",
    "RecordedResource",
    "FieldChange",
    "FingerprintRequest",
    "ReadRequest",
    "ReadResult",
    "PlanRequest",
    "PlanResult",
    "ApplyRequest",
    "ApplyResult",
    "DeleteRequest",
    "ApplyContext",
    "Provider",
    "BaseProvider",
    "verify_provider",
]

ENTRY_POINT_GROUP = "ml.providers"


@dataclass(frozen=True)
class Resource:
    """One desired resource, as validated from the specs."""

    address: str  # "featureview.txn_stats"
    kind: str  # "FeatureView"
    name: str
    backend: str
    spec: Mapping[str, Any]  # canonical, JSON-compatible spec (backend settings included)
    config: Any = None  # the backend's validated settings model instance, or None
    depends_on: tuple[str, ...] = ()
    source_file: str | None = None


@dataclass(frozen=True)
class RecordedResource:
    """What the state store holds for one resource after a successful apply."""

    address: str
    kind: str
    backend: str
    spec: Mapping[str, Any]
    fingerprint: str
    inputs: Mapping[str, str] = field(default_factory=dict)  # upstream fingerprints + extra inputs
    outputs: Mapping[str, Any] = field(default_factory=dict)
    status: str = "applied"  # applied | in_progress
    depends_on: tuple[str, ...] = ()
    updated_at: str | None = None


@dataclass(frozen=True)
class FieldChange:
    """One field that differs between the recorded and the desired spec."""

    path: str  # dotted, e.g. "trainer.params.num_leaves"
    before: Any
    after: Any
    forces_replacement: bool = False


@dataclass(frozen=True)
class FingerprintRequest:
    resource: Resource
    project_dir: Path
    prior: RecordedResource | None = None


@dataclass(frozen=True)
class ReadRequest:
    recorded: RecordedResource
    project_dir: Path


@dataclass(frozen=True)
class ReadResult:
    """What exists now. ``drift`` maps a field/output name to (recorded, actual)."""

    exists: bool
    outputs: Mapping[str, Any] | None = None
    drift: Mapping[str, tuple[Any, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class PlanRequest:
    resource: Resource
    prior: RecordedResource
    changes: tuple[FieldChange, ...]


@dataclass(frozen=True)
class PlanResult:
    replace_paths: tuple[str, ...] = ()  # changed fields that force replacement
    reasons: tuple[str, ...] = ()  # extra human-readable reasons
    estimate_seconds: float | None = None  # how long apply is expected to take, if known


@dataclass(frozen=True)
class ApplyRequest:
    action: str  # "create" | "update" | "replace"
    resource: Resource
    prior: RecordedResource | None = None


@dataclass(frozen=True)
class ApplyResult:
    outputs: Mapping[str, Any] = field(default_factory=dict)
    message: str | None = None


@dataclass(frozen=True)
class DeleteRequest:
    recorded: RecordedResource


class ApplyContext:
    """What the engine lends a provider during apply/delete."""

    def __init__(
        self,
        *,
        address: str,
        project_dir: Path,
        env: str | None = None,
        upstream: Mapping[str, RecordedResource] | None = None,
        on_progress: Callable[[str, str, float | None], None] | None = None,
        on_checkpoint: Callable[[str, Mapping[str, Any]], None] | None = None,
        trigger: Mapping[str, Any] | None = None,
    ):
        self.address = address
        self.project_dir = project_dir
        self.env = env
        self.upstream: Mapping[str, RecordedResource] = upstream or {}
        # Who started this apply when it was not a person: e.g. {"by": "monitor", "monitor": "fraud-drift",
        # "action": "retrain"}. None for `ml apply`. Providers may adapt (a rollout after a retrain).
        self.trigger: Mapping[str, Any] | None = dict(trigger) if trigger else None
        self._on_progress = on_progress
        self._on_checkpoint = on_checkpoint

    def progress(self, message: str, fraction: float | None = None) -> None:
        """Report live progress (shown by the CLI next to the resource)."""
        if self._on_progress:
            self._on_progress(self.address, message, fraction)

    def checkpoint(self, outputs: Mapping[str, Any]) -> None:
        """Record intermediate outputs now, so an interrupted apply can resume from them."""
        if self._on_checkpoint:
            self._on_checkpoint(self.address, outputs)


@runtime_checkable
class Provider(Protocol):
    """What a backend implements. Subclass :class:`BaseProvider` for sensible defaults."""

    name: str
    kinds: tuple[str, ...]

    def config_model(self, kind: str) -> type[BaseModel] | None: ...

    def fingerprint(self, request: FingerprintRequest) -> Mapping[str, str]: ...

    def read(self, request: ReadRequest) -> ReadResult: ...

    def plan(self, request: PlanRequest) -> PlanResult: ...

    def apply(self, request: ApplyRequest, ctx: ApplyContext) -> ApplyResult: ...

    def delete(self, request: DeleteRequest, ctx: ApplyContext) -> None: ...


class BaseProvider:
    """Defaults: no settings, no extra inputs, trust state on read, replace on ``replace_on`` fields."""

    name: ClassVar[str] = ""
    kinds: ClassVar[tuple[str, ...]] = ()
    # Dotted field prefixes whose change forces delete-then-create, per kind ("*" for every kind).
    replace_on: ClassVar[Mapping[str, tuple[str, ...]]] = {}

    def config_model(self, kind: str) -> type[BaseModel] | None:
        return None

    def fingerprint(self, request: FingerprintRequest) -> Mapping[str, str]:
        return {}

    def read(self, request: ReadRequest) -> ReadResult:
        return ReadResult(exists=True, outputs=request.recorded.outputs)

    def plan(self, request: PlanRequest) -> PlanResult:
        prefixes = tuple(self.replace_on.get(request.resource.kind, ())) + tuple(self.replace_on.get("*", ()))
        replace = tuple(
            c.path for c in request.changes if any(c.path == p or c.path.startswith(p + ".") for p in prefixes)
        )
        return PlanResult(replace_paths=replace)

    def apply(self, request: ApplyRequest, ctx: ApplyContext) -> ApplyResult:  # pragma: no cover - abstract
        raise NotImplementedError(f"provider {self.name!r} does not implement apply")

    def delete(self, request: DeleteRequest, ctx: ApplyContext) -> None:  # pragma: no cover - abstract
        raise NotImplementedError(f"provider {self.name!r} does not implement delete")


_REQUIRED = ("config_model", "fingerprint", "read", "plan", "apply", "delete")


def verify_provider(obj: Any, plugin: str) -> None:
    """Check a loaded plugin object against the contract; name the plugin and hook in the error."""
    from .errors import PluginError

    for hook in _REQUIRED:
        if not callable(getattr(obj, hook, None)):
            raise PluginError(f"plugin {plugin!r} does not implement the provider hook {hook!r}")
    kinds = getattr(obj, "kinds", None)
    if not kinds or not all(isinstance(k, str) for k in kinds):
        raise PluginError(f"plugin {plugin!r} must declare the spec kinds it owns in 'kinds'")
