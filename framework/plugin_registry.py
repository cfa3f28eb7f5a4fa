"""Find, load and check plugins.

Built-in plugins and third-party ones register the same way, through entry points:

* ``ml.plugins``: one :class:`ml_framework.contract.Plugin` per entry point — the kinds, commands,
  backends, capabilities and services it contributes. Declarations are light (names and
  ``"module:attr"`` strings); reading them all imports no backend library.
* ``ml.providers``: a provider-only plugin, one entry point per backend name (the entry point's name).

A project may add its own (ml.yaml ``plugins.local: {name: "module:attr"}``, a Plugin or a provider),
imported from the project directory without shadowing installed modules. A provider is imported only
when a resource it owns is validated, planned or applied (or ``ml plugins`` describes it).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

from .contract import (
    CORE_CAPABILITIES,
    ENTRY_POINT_GROUP,
    PLUGIN_ENTRY_POINT_GROUP,
    Capability,
    Command,
    Plugin,
    Provider,
    Services,
    resolve,
    verify_provider,
)
from .errors import PluginError, did_you_mean

__all__ = ["PluginRegistry", "PluginInfo", "DISABLE_ENV"]

DISABLE_ENV = "ML_DISABLE_PLUGINS"  # comma-separated plugin or backend names
# Modules that held the Plugin declarations read in this process (the help cache watches their files).
DECLARATION_MODULES: set[str] = set()


@dataclass(frozen=True)
class PluginInfo:
    name: str
    version: str
    kinds: tuple[str, ...]
    origin: str  # "entry point <value>" or "registered in code"
    status: str  # "ok", "disabled" or "failed"
    error: str | None = None
    role: str = "backend"  # "backend" (a provider) or "plugin" (kinds, commands, services)


class PluginRegistry:
    def __init__(
        self,
        *,
        disabled: Iterable[str] = (),
        use_entry_points: bool = True,
        project_dir: Path | None = None,
        backend_settings: Mapping[str, Mapping[str, Any]] | None = None,
        local: Mapping[str, str] | None = None,
        plugins: Iterable[Plugin] = (),
        plugin_entry_points: bool | None = None,
    ):
        """``use_entry_points``: load installed providers (``ml.providers`` and the backends Plugins declare);
        ``plugin_entry_points`` (default: the same): load installed Plugin declarations (kinds, commands,
        capabilities, services). Tests of fake providers keep the installed kinds and drop their backends."""
        self.local = dict(local or {})  # name -> "module:attr", importable from the project directory
        self.project_dir = project_dir or Path.cwd()
        self.backend_settings = dict(backend_settings or {})
        env_disabled = [n.strip() for n in os.environ.get(DISABLE_ENV, "").split(",") if n.strip()]
        self.disabled = set(disabled) | set(env_disabled)
        self._use_entry_points = use_entry_points
        self._use_plugin_entry_points = use_entry_points if plugin_entry_points is None else plugin_entry_points
        self._entry_points: dict[str, Any] | None = None  # backend name -> entry point (providers)
        self._providers: dict[str, Provider] = {}
        self._failures: dict[str, PluginError] = {}
        self._plugins: dict[str, Plugin] | None = None  # loaded Plugin declarations, by name
        self._plugin_failures: dict[str, PluginError] = {}
        self._plugin_origins: dict[str, str] = {}
        self._plugin_versions: dict[str, str] = {}  # plugin name -> its distribution's version
        self._local_objects: dict[str, Any] = {}  # ml.yaml plugins.local name -> the imported object
        self._extra_plugins = list(plugins)
        self._kinds = None
        self._capabilities: dict[str, Capability] | None = None

    # -- plugin declarations -----------------------------------------------------------------------------------
    def register_plugin(self, plugin: Plugin) -> None:
        """Add a Plugin declaration in code (tests, embedding), as if it were an entry point."""
        self._extra_plugins.append(plugin)
        self._plugins = None
        self._kinds = None
        self._capabilities = None

    def plugins(self) -> dict[str, Plugin]:
        """Every enabled Plugin declaration that loaded, by name (failures: ``plugin_failures()``)."""
        if self._plugins is None:
            self._plugins, self._plugin_failures, self._plugin_origins = {}, {}, {}
            candidates: list[tuple[str, Any, str]] = []
            if self._use_plugin_entry_points:
                from importlib.metadata import entry_points

                candidates += [(ep.name, ep, f"entry point {ep.value}") for ep in entry_points(group=PLUGIN_ENTRY_POINT_GROUP)]
            candidates += [(p.name, p, "registered in code") for p in self._extra_plugins]
            for name, value in self.local.items():
                if name not in self.disabled:
                    loaded = self._load_local(name, value)
                    if isinstance(loaded, Plugin):
                        candidates.append((name, loaded, f"ml.yaml plugins.local {value}"))
            for name, source, origin in candidates:
                if name in self.disabled or name in self._plugins:
                    continue
                try:
                    plugin = source if isinstance(source, Plugin) else source.load()
                    dist = getattr(source, "dist", None)
                    if dist is not None:
                        self._plugin_versions[name] = dist.version
                    if not isinstance(plugin, Plugin):
                        raise PluginError(f"plugin {name!r} ({origin}) is not an ml_framework.contract.Plugin: {plugin!r}")
                    if plugin.name != name:
                        raise PluginError(f"plugin entry point {name!r} holds a Plugin named {plugin.name!r}",
                                          hint="the entry point's name and Plugin.name must match")
                except PluginError as exc:
                    self._plugin_failures[name] = exc
                    continue
                except Exception as exc:  # any import-time failure of third-party code
                    error = PluginError(f"plugin {name!r} failed to load ({origin}): {type(exc).__name__}: {exc}")
                    error.__cause__ = exc
                    self._plugin_failures[name] = error
                    continue
                self._plugins[name] = plugin
                self._plugin_origins[name] = origin
                value = getattr(source, "value", None) or self.local.get(name, "")
                if value:
                    DECLARATION_MODULES.add(str(value).partition(":")[0])
        return self._plugins

    def plugin_failures(self) -> dict[str, PluginError]:
        self.plugins()
        return dict(self._plugin_failures)

    @property
    def kinds(self):
        """The KindCatalog of every enabled plugin (a conflict between two plugins is an error)."""
        if self._kinds is None:
            from .spec.catalog import KindCatalog

            catalog = KindCatalog(failed=[(n, str(e)) for n, e in self.plugin_failures().items()])
            for plugin in self.plugins().values():
                for kind in plugin.kinds:
                    catalog.add(kind, plugin.name)
            self._kinds = catalog
        return self._kinds

    def commands(self) -> list[tuple[Command, str]]:
        """(command, plugin name) for every command an enabled plugin contributes."""
        out, seen = [], {}
        for plugin in self.plugins().values():
            for command in plugin.commands:
                if command.name in seen:
                    raise PluginError(f"plugins {seen[command.name]!r} and {plugin.name!r} both contribute "
                                      f"the command `ml {command.name}`")
                seen[command.name] = plugin.name
                out.append((command, plugin.name))
        return out

    @property
    def capabilities(self) -> dict[str, Capability]:
        """Every capability a provider may declare: the core's and those plugins contribute."""
        if self._capabilities is None:
            found = {c.name: c for c in CORE_CAPABILITIES}
            owners = {c.name: "the core" for c in CORE_CAPABILITIES}
            for plugin in self.plugins().values():
                for capability in plugin.capabilities:
                    if capability.name in found:
                        raise PluginError(f"plugins {owners[capability.name]!r} and {plugin.name!r} both declare the "
                                          f"capability {capability.name!r}")
                    found[capability.name], owners[capability.name] = capability, plugin.name
            self._capabilities = found
        return self._capabilities

    def services(self, *, state: Any = None) -> Services:
        """The services enabled plugins provide, each built on first use from ``factory(services)``."""
        services = Services(project_dir=self.project_dir, state=state, registry=self)
        for plugin in self.plugins().values():
            for name, target in plugin.services.items():
                services.provide(name, _service_factory(plugin.name, name, target, services))
        return services

    # -- providers ---------------------------------------------------------------------------------------------
    def register(self, name: str, provider: Provider) -> None:
        """Register a provider object in code (tests, embedding). Checked like an entry point."""
        self._verify(provider, name)
        self._configure(name, provider)
        self._providers[name] = provider
        self._failures.pop(name, None)

    def _verify(self, provider: Provider, name: str) -> None:
        kinds = self.kinds
        verify_provider(provider, name, capabilities=self.capabilities,
                        known_kinds=kinds.names() if len(kinds) else None)

    def _configure(self, name: str, provider: Provider) -> None:
        if "configure" in (getattr(provider, "capabilities", ()) or ()):
            provider.configure(self.project_dir, dict(self.backend_settings.get(name, {})))

    def _eps(self) -> dict[str, Any]:
        if self._entry_points is None:
            self._entry_points = {}
            if self._use_entry_points:
                from importlib.metadata import entry_points

                for ep in entry_points(group=ENTRY_POINT_GROUP):
                    self._entry_points.setdefault(ep.name, ep)
            for plugin in (self.plugins().values() if self._use_entry_points else self._extra_plugins):
                for backend, target in plugin.backends.items():
                    self._entry_points.setdefault(backend, _DeclaredBackend(backend, target, plugin.name))
            for name, value in self.local.items():
                self._entry_points[name] = _LocalEntryPoint(name, value, self.project_dir, self)
        return self._entry_points

    def names(self) -> list[str]:
        """Backend names (providers), installed or registered."""
        names = set(self._eps()) | set(self._providers)
        local_plugins = {n for n in self.local if n in self.plugins()}  # project-local Plugin declarations
        return sorted(names - local_plugins)

    def get(self, name: str) -> Provider:
        """The provider for backend `name`, importing it on first use."""
        if name in self.disabled:
            raise PluginError(f"plugin {name!r} is disabled",
                              hint=f"remove it from plugins.disabled in ml.yaml or from ${DISABLE_ENV}")
        if name in self._providers:
            return self._providers[name]
        if name in self._failures:
            raise self._failures[name]
        ep = self._eps().get(name)
        if ep is None:
            known = self.names()
            raise PluginError(f"no plugin provides backend {name!r}",
                              hint=did_you_mean(name, known) or (f"installed: {', '.join(known)}" if known else
                                                                 "no plugins are installed"))
        try:
            loaded = ep.load()
            provider = loaded() if isinstance(loaded, type) else loaded
            self._verify(provider, name)
            self._configure(name, provider)
        except PluginError as exc:
            self._failures[name] = exc
            raise
        except Exception as exc:  # any import-time failure of third-party code
            error = PluginError(f"plugin {name!r} failed to load ({ep.value}): {type(exc).__name__}: {exc}")
            error.__cause__ = exc
            self._failures[name] = error
            raise error from exc
        self._providers[name] = provider
        return provider

    def capable(self, backend: str, capability: str) -> Any | None:
        """The provider of ``backend`` if it declares ``capability``, else None (never a getattr probe)."""
        if capability not in self.capabilities:
            raise PluginError(f"unknown capability {capability!r}", hint=did_you_mean(capability, self.capabilities))
        provider = self.get(backend)
        return provider if capability in (getattr(provider, "capabilities", ()) or ()) else None

    def describe(self) -> list[PluginInfo]:
        infos = []
        loaded = self.plugins()
        versions = self._plugin_versions
        for name, plugin in sorted(loaded.items()):
            infos.append(PluginInfo(name, plugin.version or versions.get(name) or "-",
                                    tuple(k.name for k in plugin.kinds), self._plugin_origins.get(name, ""), "ok",
                                    role="plugin"))
        for name, error in sorted(self.plugin_failures().items()):
            infos.append(PluginInfo(name, "-", (), "entry point", "failed", str(error), role="plugin"))
        eps = self._eps()
        for name in self.names():
            ep = eps.get(name)
            origin = (ep.origin if isinstance(ep, (_DeclaredBackend, _LocalEntryPoint)) else
                      f"entry point {ep.value}" if ep is not None and name not in self._providers else "registered in code")
            version = (ep.dist.version if ep is not None and getattr(ep, "dist", None) is not None else "") or "-"
            if name in self.disabled:
                infos.append(PluginInfo(name, version, (), origin, "disabled"))
                continue
            try:
                provider = self.get(name)
            except PluginError as exc:
                infos.append(PluginInfo(name, version, (), origin, "failed", str(exc)))
                continue
            version = getattr(provider, "version", None) or version
            infos.append(PluginInfo(name, version, tuple(provider.kinds), origin, "ok"))
        return infos

    # -- project-local plugins ---------------------------------------------------------------------------------
    def _load_local(self, name: str, value: str) -> Any:
        try:
            return self._local_object(name)
        except Exception as exc:
            self._plugin_failures[name] = PluginError(f"plugin {name!r} failed to load (ml.yaml plugins.local "
                                                      f"{value}): {type(exc).__name__}: {exc}")
            return None

    def _local_object(self, name: str) -> Any:
        if name not in self._local_objects:
            self._local_objects[name] = _import_from_project(self.local[name], self.project_dir)
        return self._local_objects[name]


def _service_factory(plugin: str, name: str, target: str, services: Services):
    def build():
        try:
            factory = resolve(target)
        except Exception as exc:
            raise PluginError(f"plugin {plugin!r}: cannot import service {name!r} ({target}): "
                              f"{type(exc).__name__}: {exc}") from exc
        return factory(services)

    return build


def _import_from_project(value: str, project_dir: Path) -> Any:
    """Import ``module:attr`` from the project directory. The directory goes to the *end* of sys.path, so
    a project folder named like an installed package (``plugins/``, ``framework/``, ``yaml.py``) never
    shadows it; a local module that an installed one shadows is reported, not silently replaced."""
    import sys

    module_name = value.partition(":")[0]
    folder = str(Path(project_dir).resolve())
    if folder not in sys.path:
        sys.path.append(folder)
    obj = resolve(value)
    top_name = module_name.split(".")[0]
    in_project = (Path(folder) / top_name).is_dir() or (Path(folder) / f"{top_name}.py").is_file()
    top = sys.modules.get(top_name)
    origin = getattr(top, "__file__", None) or next(iter(getattr(top, "__path__", []) or []), None)
    if in_project and origin and not str(Path(origin).resolve()).startswith(folder + os.sep):
        raise PluginError(f"local plugin {value!r}: the project's module {top_name!r} has the name of an installed "
                          f"module ({origin}), which wins", hint="rename the project's module")
    return obj


class _DeclaredBackend:
    """A backend a Plugin declares (``Plugin(backends={"name": "module:Provider"})``)."""

    dist = None

    def __init__(self, name: str, value: str, plugin: str):
        self.name, self.value = name, value
        self.origin = f"plugin {plugin} ({value})"

    def load(self):
        return resolve(self.value)


class _LocalEntryPoint:
    """A plugin module inside the project (ml.yaml `plugins.local`), loaded like an entry point."""

    dist = None

    def __init__(self, name: str, value: str, project_dir: Path, registry: PluginRegistry):
        self.name, self.value, self.project_dir, self._registry = name, value, project_dir, registry
        self.origin = f"ml.yaml plugins.local {value}"

    def load(self):
        obj = self._registry._local_object(self.name)
        if isinstance(obj, Plugin):
            raise PluginError(f"local plugin {self.name!r} is a Plugin declaration, not a provider",
                              hint="name its backends in Plugin(backends=...)")
        return obj
