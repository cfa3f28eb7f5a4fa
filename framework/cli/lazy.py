"""Commands contributed by plugins, listed without importing them and imported only when they run.

``ml --help`` reads each plugin's declaration (a name, a ``"module:attr"`` target and a help line); the
target (a ``typer.Typer`` or a function) is imported when its command is invoked or asked for ``--help``.
"""

from __future__ import annotations

from typing import Any, Callable

import typer
import typer.core
import typer.main

__all__ = ["LazyGroup"]


class LazyGroup(typer.core.TyperGroup):
    """The `ml` group: its own commands plus those of plugins, found by ``contributions()``."""

    contributions: Callable[[], list[tuple[Any, str]]] = staticmethod(lambda: [])  # [(Command, plugin name)]

    def _contributed(self) -> dict[str, tuple[Any, str]]:
        cache = self.__dict__.get("_contributed_cache")
        if cache is None:
            try:
                found = type(self).contributions()
            except Exception as exc:  # a broken plugin must not take `ml --help` down with it
                found = []
                self.__dict__["_discovery_error"] = exc
            cache = {command.name: (command, plugin) for command, plugin in found if command.name not in self.commands}
            self.__dict__["_contributed_cache"] = cache
        return cache

    def list_commands(self, ctx) -> list[str]:
        return list(self.commands) + [n for n in self._contributed() if n not in self.commands]

    def get_command(self, ctx, cmd_name: str):
        command = self.commands.get(cmd_name)
        if command is not None:
            return command
        entry = self._contributed().get(cmd_name)
        if entry is None:
            return None
        loaded = _load(*entry)
        self.commands[cmd_name] = loaded
        return loaded

    def format_commands(self, ctx, formatter) -> None:
        # Show contributed commands by their declared help, without importing them.
        placeholders = {}
        for name, (command, plugin) in self._contributed().items():
            if name not in self.commands:
                placeholders[name] = typer.core.TyperCommand(name=name, help=command.help or f"(from plugin {plugin})",
                                                             callback=lambda: None)
        original = self.commands
        self.commands = {**original, **placeholders}
        try:
            super().format_commands(ctx, formatter)
        finally:
            self.commands = original


def _load(command, plugin: str):
    """The click command of a contribution; a failure becomes a command that explains it."""
    from ..contract import resolve

    try:
        target = resolve(command.target)
        if isinstance(target, typer.Typer):  # a group, even with one command: `ml <name> <command>`
            click_command = typer.main.get_group(target)
        elif callable(target):
            app = typer.Typer(add_completion=False)
            app.command(name=command.name, help=None if target.__doc__ else (command.help or None))(target)
            click_command = typer.main.get_command(app)
        else:
            raise TypeError(f"expected a typer.Typer or a function, got {type(target).__name__}")
    except Exception as exc:
        message = (f"plugin {plugin!r} contributes `ml {command.name}` ({command.target}) but it cannot be loaded: "
                   f"{type(exc).__name__}: {exc}")

        def broken():
            from .kit import fail

            fail(message)

        return typer.core.TyperCommand(name=command.name, help=f"(unavailable: {type(exc).__name__})", callback=broken,
                                       context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
    click_command.name = command.name
    return click_command
