"""The plugin contract: the one module that says what a plugin may contribute and how it is called.

A **plugin** is one object, a :class:`Plugin`, registered in the ``ml.plugins`` entry-point group (the
built-in ones exactly as third-party ones). It may contribute:

* **kinds** (:class:`Kind`): a spec kind's schema, its plural key in the composed tree, the block its
  backend validates and the fields that reference other resources (graph edges). The core knows only
  the envelope (kind, name, description, labels, backend block, references);
* **commands** (:class:`Command`): ``ml <name>``, imported only when that command runs;
* **backends**: providers (below), by backend name;
* **capabilities** (:class:`Capability`): typed optional interfaces a provider may offer, beyond the
  six hooks (e.g. a drift checker); the core declares the generic ones (:data:`CONFIGURABLE`,
  :data:`STATUS`, :data:`ROLLBACK`);
* **services** (seams): objects other plugins ask for by name (``ctx.services.get("feature_access")``)
  instead of importing this plugin's modules.

Declarations name their code as ``"module:attribute"`` strings, so reading every plugin's declaration
(what ``ml --help`` and ``ml validate`` do) imports no backend library.

The rest of this module is the **provider** contract: the seam between the engine and every backend.

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
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Iterable, Mapping, Protocol, runtime_checkable

if TYPE_CHECKING:  # pydantic is only needed by providers that declare settings
    from pydantic import BaseModel

__all__ = [
    "ENTRY_POINT_GROUP",
    "UI_PAGE_PREFIX",
    "WebPage",
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
    "PLUGIN_ENTRY_POINT_GROUP",
    "Kind",
    "Command",
    "Capability",
    "Plugin",
    "Services",
    "Configurable",
    "ReportsStatus",
    "RollsBack",
    "CONFIGURABLE",
    "STATUS",
    "ROLLBACK",
    "PREFLIGHT",
    "Preflights",
    "ResourceUse",
    "EstimatesUse",
    "MoveRequest",
    "Moves",
    "MOVE",
    "AdoptRequest",
    "Adopts",
    "ADOPT",
    "RESOURCE_USE",
    "CORE_CAPABILITIES",
    "verify_capability",
    "resolve",
    "SpecIssue",
]

ENTRY_POINT_GROUP = "ml.providers"  # backend name -> provider (a provider-only plugin)
PLUGIN_ENTRY_POINT_GROUP = "ml.plugins"  # plugin name -> Plugin (kinds, commands, backends, capabilities, services)


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
    services: "Services | None" = None  # seams to other plugins (read-only use while planning)
    # The desired specs of everything this resource depends on, transitively, by address — so a provider
    # can check, before anything runs, what it will need of them (e.g. that a label column exists).
    upstream: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class ReadRequest:
    recorded: RecordedResource
    project_dir: Path
    services: "Services | None" = None


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
    services: "Services | None" = None
    fingerprint: str | None = None  # the change's planned fingerprint (what apply will record)
    retry: bool = False  # the user asked to apply it again (`--retry ADDRESS`): do not hold it


@dataclass(frozen=True)
class PlanResult:
    replace_paths: tuple[str, ...] = ()  # changed fields that force replacement
    reasons: tuple[str, ...] = ()  # extra human-readable reasons
    estimate_seconds: float | None = None  # how long apply is expected to take, if known
    # Hold the change (plan it as no change, shown with this message) when applying it would only repeat
    # a known outcome — e.g. a model retrained on inputs whose version was already rejected by its gates.
    # Dependents see it unchanged. `--retry ADDRESS` applies it anyway (the request's ``retry``).
    hold: str | None = None


@dataclass(frozen=True)
class ApplyRequest:
    action: str  # "create" | "update" | "replace"
    resource: Resource
    prior: RecordedResource | None = None
    fingerprint: str | None = None  # the planned fingerprint this apply records (e.g. to remember an outcome)
    retry: bool = False  # `--retry ADDRESS`: the user asked for this again (e.g. a rolled-back rollout)


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
        services: "Services | None" = None,
        state: Any = None,
        project: Any = None,
    ):
        self.address = address
        self.project_dir = project_dir
        self.env = env
        self.upstream: Mapping[str, RecordedResource] = upstream or {}
        # Who started this apply when it was not a person: e.g. {"by": "monitor", "monitor": "fraud-drift",
        # "action": "retrain"}. None for `ml apply`. Providers may adapt (a rollout after a retrain).
        self.trigger: Mapping[str, Any] | None = dict(trigger) if trigger else None
        # Seams: services other plugins provide (feature access, model registry, ...), by name.
        self.services: Services = services if services is not None else Services()
        # The open state store of this run (read it; the engine records outputs): providers never reopen it.
        self.state = state
        # The project's settings (ml_framework.project.Project: spec_dir, name, backends), loaded once per run
        # by the engine; None when a caller lends none.
        self.project = project
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
    # Optional interfaces this provider offers, by capability name ("configure", "status", "rollback", ...).
    capabilities: ClassVar[tuple[str, ...]] = ()
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


def verify_provider(obj: Any, plugin: str, *, capabilities: Mapping[str, "Capability"] | None = None,
                    known_kinds: Iterable[str] | None = None) -> None:
    """Check a loaded provider against the contract; name the plugin and hook in the error.

    ``capabilities``: every capability declared by the core and the installed plugins, by name; each one
    the provider lists in ``capabilities`` is verified, and a method of a capability it does not list is
    an error (it would never be called). ``known_kinds``: the kinds contributed by installed plugins.
    """
    from .errors import PluginError, did_you_mean

    for hook in _REQUIRED:
        if not callable(getattr(obj, hook, None)):
            raise PluginError(f"plugin {plugin!r} does not implement the provider hook {hook!r}")
    kinds = getattr(obj, "kinds", None)
    if not kinds or not all(isinstance(k, str) for k in kinds):
        raise PluginError(f"plugin {plugin!r} must declare the spec kinds it owns in 'kinds'")
    version = getattr(obj, "version", "")
    if not isinstance(version, str):
        raise PluginError(f"plugin {plugin!r}: 'version' must be text (a property or a class attribute), "
                          f"not {type(version).__name__}",
                          hint="decorate `def version(self)` with @property")
    if known_kinds is not None:
        known = set(known_kinds)
        for kind in kinds:
            if kind not in known:
                raise PluginError(f"plugin {plugin!r} handles kind {kind!r}, which no installed plugin contributes",
                                  hint=did_you_mean(kind, known) or "a plugin declares kinds with Plugin(kinds=[Kind(...)])")
    if capabilities is None:
        return
    declared = getattr(obj, "capabilities", ()) or ()
    if isinstance(declared, str) or not all(isinstance(c, str) for c in declared):
        raise PluginError(f"plugin {plugin!r}: 'capabilities' must be a tuple of capability names")
    for name in declared:
        capability = capabilities.get(name)
        if capability is None:
            raise PluginError(f"plugin {plugin!r} declares unknown capability {name!r}",
                              hint=did_you_mean(name, capabilities) or f"known: {', '.join(sorted(capabilities))}")
        verify_capability(obj, plugin, capability)
    for capability in capabilities.values():
        if capability.name in declared:
            continue
        for method_name in _protocol_methods(capability.protocol):
            if callable(getattr(obj, method_name, None)):
                raise PluginError(f"plugin {plugin!r} defines {method_name}() but does not declare the capability "
                                  f"{capability.name!r}", hint=f"add {capability.name!r} to its 'capabilities'")


# --- plugin declarations ---------------------------------------------------------------------------------


def resolve(target: Any) -> Any:
    """``"package.module:attr.sub"`` -> the object (imported now); anything else is returned as is."""
    if not isinstance(target, str):
        return target
    import importlib

    module_name, sep, attr = target.partition(":")
    if not sep or not module_name:
        raise ValueError(f"expected 'module:attribute', got {target!r}")
    obj = importlib.import_module(module_name)
    for part in filter(None, attr.split(".")):
        obj = getattr(obj, part)
    return obj


@dataclass(frozen=True)
class Kind:
    """A spec kind a plugin owns.

    ``schema``: a :class:`ml_framework.spec.kinds.SpecBase` subclass, or ``"module:Class"`` imported when
    specs of the kind are validated. ``backend_block``: the field that names the backend (``trainer`` of a
    Model: ``{backend: lightgbm, ...}``); ``None``: a top-level ``backend`` string with its settings under
    ``options``. ``references``: field path -> target kind, for fields holding another resource's name
    (or a list of names); a schema with edges it computes itself overrides ``references()`` instead.
    """

    name: str
    plural: str
    schema: Any
    backend_block: str | None = None
    default_backend: str | None = None
    references: Mapping[str, str] = field(default_factory=dict)
    description: str = ""
    style: str | None = None  # how `ml graph` draws it: "data", "model", "service", "watch" (else a plain box)


@dataclass(frozen=True)
class Command:
    """``ml <name>``: ``target`` is ``"module:attr"`` of a ``typer.Typer`` (a command group) or of a function
    (one command), imported only when that command runs; ``help`` is what ``ml --help`` shows meanwhile."""

    name: str
    target: str
    help: str = ""


@dataclass(frozen=True)
class Capability:
    """An optional interface a provider may offer: ``protocol`` is a ``typing.Protocol`` whose methods the
    provider must define with (at least) those parameters. A provider lists the capability names it offers
    in its ``capabilities`` attribute; they are checked when it is registered, and callers ask the registry
    for them (``registry.capable(backend, "rollback")``) instead of probing with ``getattr``."""

    name: str
    protocol: type
    description: str = ""


@dataclass(frozen=True)
class SpecIssue:
    """A problem a plugin's spec check found: the resource, the dotted field inside its spec (the engine
    adds the file and line), what is wrong and how to fix it."""

    address: str
    field: str
    message: str
    hint: str | None = None


@dataclass(frozen=True)
class Plugin:
    """Everything one plugin contributes; one object per ``ml.plugins`` entry point.

    ``checks``: ``"module:function"`` of spec checks run by ``ml validate`` (and every command that loads
    specs) after each spec validated on its own: ``function(specs)`` gets every valid spec by address
    (``Mapping[str, SpecBase]``, all kinds) and returns :class:`SpecIssue` s — for rules that span fields
    or resources (two deployments on one port, entity keys that are no join keys of the model's
    features), caught before anything runs."""

    name: str
    kinds: tuple[Kind, ...] = ()
    checks: tuple[str, ...] = ()
    commands: tuple[Command, ...] = ()
    backends: Mapping[str, str] = field(default_factory=dict)  # backend name -> "module:Provider"
    capabilities: tuple[Capability, ...] = ()
    services: Mapping[str, str] = field(default_factory=dict)  # service name -> "module:factory"
    scaffold: Mapping[str, str] = field(default_factory=dict)  # `ml init`: project-relative path -> text
    version: str | None = None
    description: str = ""


class Services:
    """Seams between plugins: ``get(name)`` builds the named service once per run from the factory its
    plugin declared (``factory(project_dir, settings)``), so a plugin never imports another plugin's
    private modules nor reopens the project."""

    def __init__(self, factories: Mapping[str, Callable[[], Any]] | None = None, *, project_dir: Path | None = None,
                 state: Any = None, registry: Any = None):
        self._factories = dict(factories or {})
        self._built: dict[str, Any] = {}
        self.project_dir = project_dir  # what a factory may need: the project, its open state, the plugins
        self.state = state
        self.registry = registry

    def provide(self, name: str, factory: Callable[[], Any]) -> None:
        """Declare how to build ``name`` on first use."""
        self._factories[name] = factory
        self._built.pop(name, None)

    def names(self) -> list[str]:
        return sorted(self._factories)

    def get(self, name: str) -> Any:
        if name not in self._built:
            factory = self._factories.get(name)
            if factory is None:
                from .errors import PluginError, did_you_mean

                raise PluginError(f"no plugin provides the service {name!r}",
                                  hint=did_you_mean(name, self._factories) or
                                  (f"services: {', '.join(self.names())}" if self._factories else None))
            self._built[name] = factory()
        return self._built[name]

    def add(self, name: str, service: Any) -> None:
        """Provide a ready-made service (tests, embedding)."""
        self._factories.setdefault(name, lambda: service)
        self._built[name] = service


# --- capabilities the core declares ------------------------------------------------------------------------


class Configurable(Protocol):
    """Called once after loading, with the project directory and ``backends.<name>`` of ml.yaml."""

    def configure(self, project_dir: Path, settings: Mapping[str, Any]) -> None: ...


UI_PAGE_PREFIX = "ui.page."


class WebPage(Protocol):
    """A page of `ml ui`, contributed as the service ``ui.page.<slug>`` (``Plugin(services=...)``), served
    at ``/<slug>`` and listed in the navigation by ``title``. Built once per request from ``factory(services)``;
    read-only: it must not change state, the registry or running services. ``render`` gets the rest of the
    path after ``/<slug>`` ("" or "/fraud") and the query parameters, and returns an HTML fragment
    (``ml_framework.web`` escapes and lays out), or a whole document starting with ``<!DOCTYPE``.
    Raise ``LookupError`` for a path it does not know (404)."""

    title: str

    def render(self, path: str, query: Mapping[str, str]) -> str: ...


class ReportsStatus(Protocol):
    """What runs for a recorded resource (``ml status``): a dict with at least ``running`` and ``ready``."""

    def status(self, record: RecordedResource, project_dir: Path) -> Mapping[str, Any]: ...


class RollsBack(Protocol):
    """Switch a recorded resource back to an earlier revision at once (``ml rollback``, monitors).
    Returns the outputs to record."""

    def rollback(self, record: RecordedResource, project_dir: Path, *, to: int | None = None,
                 progress: Callable[[str], None] | None = None, reason: str = "") -> Mapping[str, Any]: ...


class Preflights(Protocol):
    """Checks that need the environment of the apply (secrets, files, ports) and must not wait until the
    resource's turn: the engine asks every pending change before applying any, and refuses the whole
    apply — nothing started — if one raises (an MLError with a hint). Plans stay quiet about them, so a
    pull request's plan made without production secrets still passes."""

    def preflight(self, request: ApplyRequest, project_dir: Path) -> None: ...


@dataclass(frozen=True)
class ResourceUse:
    """What a resource uses, for the cost a plan shows (with ml.yaml's ``pricing``): cores busy while it is
    applied (times the apply's estimated duration), and cores and memory held while it runs."""

    apply_cpus: float = 1.0
    running_cpus: float = 0.0
    running_memory_gb: float = 0.0


class EstimatesUse(Protocol):
    """Says what a desired resource will use (``ResourceUse``), from its spec alone: called at plan time
    for every resource that is not deleted; cheap, no side effects."""

    def resource_use(self, resource: Resource) -> ResourceUse: ...


@dataclass(frozen=True)
class MoveRequest:
    """A ``kind: Moved`` rename: ``recorded`` is the resource under its old address and spec, ``resource``
    the same object under its new address and spec (the name changed; nothing else changed, or the other
    changes are applied right after by ``apply``)."""

    recorded: RecordedResource
    resource: Resource


class Moves(Protocol):
    """Renames a resource in place instead of destroying and re-creating it (a model keeps its versions and
    registry history; nothing is retrained). Must be idempotent: a move interrupted after the rename is
    asked again. Returns the outputs to record under the new address. A backend that renames only some of
    its kinds lists them in a ``movable_kinds`` attribute (the others are destroyed and re-created, and the
    plan says so)."""

    def move(self, request: MoveRequest, ctx: ApplyContext) -> Mapping[str, Any]: ...


@dataclass(frozen=True)
class AdoptRequest:
    """A ``kind: Import``: ``resource`` (its desired spec) is the existing object its backend calls ``id``."""

    resource: Resource
    id: str
    project_dir: Path
    services: "Services | None" = None


class Adopts(Protocol):
    """Takes an existing object into state instead of building it (``kind: Import``). ``adoptable`` is
    asked at plan time and says what will be adopted, in words, or raises an MLError saying why it cannot
    (not found, another kind of object, not matching the spec); ``adopt`` records it and returns the
    outputs to record. Neither may change the object itself."""

    def adoptable(self, request: AdoptRequest) -> str: ...

    def adopt(self, request: AdoptRequest, ctx: ApplyContext) -> Mapping[str, Any]: ...


CONFIGURABLE = Capability("configure", Configurable, "receives ml.yaml's backends.<name> settings")
PREFLIGHT = Capability("preflight", Preflights, "checks the apply's environment before any change starts")
STATUS = Capability("status", ReportsStatus, "reports what runs (ml status)")
ROLLBACK = Capability("rollback", RollsBack, "switches back to an earlier revision (ml rollback)")
RESOURCE_USE = Capability("resource_use", EstimatesUse, "says what a resource uses (cores, memory), for costs in plans")
MOVE = Capability("move", Moves, "renames a resource in place (kind: Moved): nothing rebuilt, history kept")
ADOPT = Capability("adopt", Adopts, "adopts an existing object into state (kind: Import), previewed in the plan")
CORE_CAPABILITIES: tuple[Capability, ...] = (CONFIGURABLE, STATUS, ROLLBACK, PREFLIGHT, RESOURCE_USE, MOVE, ADOPT)


def _protocol_methods(protocol: type) -> dict[str, Callable]:
    return {name: value for name, value in vars(protocol).items()
            if callable(value) and not name.startswith("_")}


def verify_capability(obj: Any, plugin: str, capability: Capability) -> None:
    """Check that ``obj`` implements ``capability``: each method exists and accepts the protocol's
    parameters (like pluggy's hook verification); name the plugin, capability and method in the error."""
    import inspect

    from .errors import PluginError

    for method_name, spec in _protocol_methods(capability.protocol).items():
        impl = getattr(obj, method_name, None)
        if not callable(impl):
            raise PluginError(f"plugin {plugin!r} declares capability {capability.name!r} but has no "
                              f"method {method_name}()")
        try:
            impl_params = inspect.signature(impl).parameters
        except (TypeError, ValueError):  # builtins without a signature: trust them
            continue
        if any(p.kind in (p.VAR_KEYWORD,) for p in impl_params.values()):
            continue
        wanted = [n for n in inspect.signature(spec).parameters if n != "self"]
        missing = [n for n in wanted if n not in impl_params]
        if missing:
            raise PluginError(f"plugin {plugin!r}: {method_name}() of capability {capability.name!r} lacks "
                              f"parameter(s) {', '.join(missing)}",
                              hint=f"expected {method_name}{inspect.signature(spec)}")
