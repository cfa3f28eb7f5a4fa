"""Find, load and check providers.

Built-in backends and third-party ones register the same way: an entry point in the ``ml.providers``
group whose name is the backend name. Nothing is imported until a resource owned by that backend is
validated, planned or applied (or `ml plugins` is asked to describe them).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

from .contract import ENTRY_POINT_GROUP, Provider, verify_provider
from .errors import PluginError, did_you_mean

__all__ = ["PluginRegistry", "PluginInfo", "DISABLE_ENV"]

DISABLE_ENV = "ML_DISABLE_PLUGINS"  # comma-separated backend names


@dataclass(frozen=True)
class PluginInfo:
    name: str
    version: str
    kinds: tuple[str, ...]
    origin: str  # "entry point <value>" or "registered in code"
    status: str  # "ok", "disabled" or "failed"
    error: str | None = None


class PluginRegistry:
    def __init__(
        self,
        *,
        disabled: Iterable[str] = (),
        use_entry_points: bool = True,
        project_dir: Path | None = None,
        backend_settings: Mapping[str, Mapping[str, Any]] | None = None,
        local: Mapping[str, str] | None = None,
    ):
        self.local = dict(local or {})  # name -> "module:attr", importable from the project directory
        self.project_dir = project_dir or Path.cwd()
        self.backend_settings = dict(backend_settings or {})
        env_disabled = [n.strip() for n in os.environ.get(DISABLE_ENV, "").split(",") if n.strip()]
        self.disabled = set(disabled) | set(env_disabled)
        self._use_entry_points = use_entry_points
        self._entry_points: dict[str, Any] | None = None
        self._providers: dict[str, Provider] = {}
        self._failures: dict[str, PluginError] = {}

    # -- registration --------------------------------------------------------------------------------
    def register(self, name: str, provider: Provider) -> None:
        """Register a provider object in code (tests, embedding). Checked like an entry point."""
        verify_provider(provider, name)
        self._configure(name, provider)
        self._providers[name] = provider
        self._failures.pop(name, None)

    def _configure(self, name: str, provider: Provider) -> None:
        configure = getattr(provider, "configure", None)
        if callable(configure):
            configure(self.project_dir, dict(self.backend_settings.get(name, {})))

    def _eps(self) -> dict[str, Any]:
        if self._entry_points is None:
            self._entry_points = {}
            if self._use_entry_points:
                from importlib.metadata import entry_points

                for ep in entry_points(group=ENTRY_POINT_GROUP):
                    self._entry_points.setdefault(ep.name, ep)
            for name, value in self.local.items():
                self._entry_points[name] = _LocalEntryPoint(name, value, self.project_dir)
        return self._entry_points

    def names(self) -> list[str]:
        return sorted(set(self._eps()) | set(self._providers))

    # -- lookup ---------------------------------------------------------------------------------------
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
            verify_provider(provider, name)
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

    def describe(self) -> list[PluginInfo]:
        infos = []
        eps = self._eps()
        for name in self.names():
            ep = eps.get(name)
            origin = f"entry point {ep.value}" if ep is not None and name not in self._providers else "registered in code"
            version = (ep.dist.version if ep is not None and ep.dist is not None else "") or "-"
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


class _LocalEntryPoint:
    """A plugin module inside the project (ml.yaml `plugins.local`), loaded like an entry point."""

    dist = None

    def __init__(self, name: str, value: str, project_dir: Path):
        self.name, self.value, self.project_dir = name, value, project_dir

    def load(self):
        import importlib
        import sys

        module_name, _, attr = self.value.partition(":")
        if str(self.project_dir) not in sys.path:
            sys.path.insert(0, str(self.project_dir))
        obj = importlib.import_module(module_name)
        for part in filter(None, attr.split(".")):
            obj = getattr(obj, part)
        return obj
