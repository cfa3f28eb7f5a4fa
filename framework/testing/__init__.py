"""Fakes and helpers for testing the engine and plugins — shipped with the library, like httpx's
MockTransport. `InMemoryProvider` is a complete provider whose "world" is a dict; `ProviderContract`
(in `ml_framework.testing.contract`) is the test suite every provider should pass.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Iterable, Mapping

from ..contract import (
    ApplyContext,
    ApplyRequest,
    ApplyResult,
    BaseProvider,
    DeleteRequest,
    MoveRequest,
    FingerprintRequest,
    ReadRequest,
    ReadResult,
)
from ..graph import canonical_json, digest

__all__ = ["InMemoryProvider", "MovableMemoryProvider", "registry_with", "run_cli"]


class InMemoryProvider(BaseProvider):
    """A provider for engine tests. `world` holds what exists; `calls` records every hook call.

    Knobs: `extra_inputs[address]` simulates provider fingerprints (e.g. source data hashes);
    `fail_on` makes apply raise for those addresses; `replace_on` (class-compatible mapping) marks
    fields that force replacement; `on_apply` is called inside apply (to interrupt or slow it down).
    """

    def __init__(self, name: str = "memory", kinds: Iterable[str] | None = None, *,
                 replace_on: Mapping[str, tuple[str, ...]] | None = None, config_model=None):
        self.name = name
        if kinds is None:  # every kind the installed plugins contribute
            from ..plugin_registry import PluginRegistry

            kinds = PluginRegistry().kinds.names()
        self.kinds = tuple(kinds)
        self.replace_on = dict(replace_on or {})
        self._config_model = config_model
        self.world: dict[str, dict[str, Any]] = {}
        self.calls: list[tuple[str, str]] = []
        self.extra_inputs: dict[str, dict[str, str]] = {}
        self.fail_on: set[str] = set()
        self.on_apply = None
        self._lock = threading.Lock()

    def config_model(self, kind: str):
        if self._config_model is not None:
            return self._config_model
        from pydantic import BaseModel, ConfigDict

        class AnySettings(BaseModel):  # the fake accepts whatever a backend block holds
            model_config = ConfigDict(extra="allow")

        return AnySettings

    def count(self, hook: str) -> int:
        return sum(1 for h, _ in self.calls if h == hook)

    def _call(self, hook: str, address: str) -> None:
        with self._lock:
            self.calls.append((hook, address))

    def fingerprint(self, request: FingerprintRequest) -> Mapping[str, str]:
        self._call("fingerprint", request.resource.address)
        return dict(self.extra_inputs.get(request.resource.address, {}))

    def read(self, request: ReadRequest) -> ReadResult:
        address = request.recorded.address
        self._call("read", address)
        actual = self.world.get(address)
        if actual is None:
            return ReadResult(exists=False)
        recorded_hash = request.recorded.outputs.get("spec_hash")
        drift = {} if actual["spec_hash"] == recorded_hash else {"spec_hash": (recorded_hash, actual["spec_hash"])}
        return ReadResult(exists=True, outputs=dict(actual), drift=drift)

    def apply(self, request: ApplyRequest, ctx: ApplyContext) -> ApplyResult:
        address = request.resource.address
        self._call("apply", address)
        ctx.progress(f"{request.action} {address}")
        if self.on_apply is not None:
            self.on_apply(request, ctx)
        if address in self.fail_on:
            raise RuntimeError(f"simulated failure applying {address}")
        outputs = {"id": address, "spec_hash": digest(canonical_json(dict(request.resource.spec))),
                   "upstream": sorted(ctx.upstream)}
        with self._lock:
            self.world[address] = outputs
        return ApplyResult(outputs=outputs)

    def delete(self, request: DeleteRequest, ctx: ApplyContext) -> None:
        self._call("delete", request.recorded.address)
        with self._lock:
            self.world.pop(request.recorded.address, None)


class MovableMemoryProvider(InMemoryProvider):
    """``InMemoryProvider`` that renames in place (the ``move`` capability, for ``kind: Moved``)."""

    capabilities = ("move",)

    def move(self, request: MoveRequest, ctx: ApplyContext) -> Mapping[str, Any]:
        """Rename in place (idempotent): what existed under the old address now has the new one."""
        old, new = request.recorded.address, request.resource.address
        self._call("move", new)
        with self._lock:
            found = self.world.pop(old, None) or self.world.get(new) or dict(request.recorded.outputs)
            outputs = dict(found, id=new, spec_hash=digest(canonical_json(dict(request.resource.spec))))
            self.world[new] = outputs
        return outputs


def registry_with(providers: Mapping[str, Any], *, project_dir: Path | None = None, entry_points: bool = False,
                  plugins: Iterable[Any] = (), installed_kinds: bool = True):
    """A PluginRegistry holding exactly these providers (installed backends off unless ``entry_points``),
    with the kinds, commands and capabilities of the installed plugins (unless ``installed_kinds`` is
    False) and of ``plugins`` (Plugin declarations, e.g. the one under test)."""
    from ..plugin_registry import PluginRegistry

    registry = PluginRegistry(use_entry_points=entry_points, project_dir=project_dir, plugins=plugins,
                              plugin_entry_points=entry_points or installed_kinds)
    for name, provider in providers.items():
        registry.register(name, provider)
    return registry


def run_cli(args: list[str], *, providers: Mapping[str, Any] | None = None, cwd: Path | None = None,
            input: str | None = None, plugins: Iterable[Any] = ()):
    """Run the `ml` CLI in-process (Click's CliRunner) with these providers instead of installed backends,
    and ``plugins`` (Plugin declarations, e.g. one under test) beside the installed ones.

    Returns the click Result: `.exit_code`, `.output`.
    """
    import os

    from click.testing import CliRunner

    from ..cli.main import build_app

    factory = None
    plugins = list(plugins)
    if providers is not None:
        def factory(project):
            return registry_with(providers, project_dir=project.root, plugins=plugins)
    elif plugins:
        def factory(project):
            registry = project.registry()
            for plugin in plugins:
                registry.register_plugin(plugin)
            return registry
    import typer.main

    command = typer.main.get_command(build_app(registry_factory=factory))
    old = os.getcwd()
    try:
        if cwd is not None:
            os.chdir(cwd)
        return CliRunner().invoke(command, args, input=input, catch_exceptions=False)
    finally:
        os.chdir(old)
