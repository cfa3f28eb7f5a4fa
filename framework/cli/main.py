"""The `ml` command line. Commands import what they need when they run, so `ml --help` stays fast; the
commands plugins contribute are listed from their declarations and imported only when they run."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Callable, Optional

import typer

from .. import __version__
from ..errors import MLError
from . import kit

__all__ = ["build_app", "run"]


def _contributions():
    """(Command, plugin) for every command the project's plugins contribute."""
    try:
        _, registry = kit.project_and_registry()
    except MLError:  # a broken ml.yaml: still list installed plugins' commands; running one reports it
        from ..plugin_registry import PluginRegistry

        registry = PluginRegistry()
    return registry.commands()


def build_app(registry_factory: Callable | None = None) -> typer.Typer:
    """The Typer app. `registry_factory(project)` replaces plugin discovery (tests, embedding)."""
    from .lazy import LazyGroup

    kit.State.registry_factory = registry_factory
    group = type("MLGroup", (LazyGroup,), {"contributions": staticmethod(_contributions)})
    app = typer.Typer(
        name="ml",
        cls=group,
        help="Declarative ML infrastructure: plan and apply features, models, deployments and monitors from YAML specs.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        rich_markup_mode=None,
        context_settings={"help_option_names": ["-h", "--help"]},
    )

    def version_callback(value: bool):
        if value:
            typer.echo(f"ml {__version__}")
            raise typer.Exit()

    @app.callback()
    def main(
        project_dir: Optional[Path] = typer.Option(None, "--project-dir", "-C", help="Project root (default: the nearest folder with ml.yaml, else the current one)."),
        no_color: bool = typer.Option(False, "--no-color", help="Plain output without colours.", envvar="NO_COLOR"),
        version: bool = typer.Option(False, "--version", callback=version_callback, is_eager=True, help="Show the version and exit."),
    ):
        kit.State.project_dir = project_dir
        kit.State.color = not no_color

    from . import commands

    commands.register(app)
    return app


def _render_help() -> None:
    """Render the top-level help, print it and keep it in the help cache with the files it read."""
    import contextlib
    import io

    from .help_cache import store_help

    buffer = io.StringIO()
    code = 0
    with contextlib.redirect_stdout(buffer):
        try:
            build_app()(prog_name="ml", standalone_mode=False, args=sys.argv[1:] or ["--help"])
        except SystemExit as exc:  # click exits after printing help
            code = exc.code or 0
        except Exception:
            code = 1
    text = buffer.getvalue()
    sys.stdout.write(text)
    if code == 0 and text.startswith("Usage"):
        store_help(text, _declaration_files())
    if code:
        sys.exit(code)


def _declaration_files() -> list[str]:
    """The files of every plugin declaration module imported so far (what the help was built from)."""
    from ..plugin_registry import DECLARATION_MODULES

    files = []
    for name in sorted(DECLARATION_MODULES | {"ml_framework.cli.main", "ml_framework.cli.commands"}):
        path = getattr(sys.modules.get(name), "__file__", None)
        if path:
            files.append(path)
    return files


def run() -> None:
    """Console-script entry point."""
    import gc
    import signal

    # A short-lived process that builds large acyclic trees (specs, graph, plan): with the default
    # gen-0 threshold (700) the cyclic GC re-scans them thousands of times, about a third of `ml plan`
    # on 10,000 resources. Collections still run, only less often (mypy does the same).
    gc.set_threshold(100_000, 50, 100)

    def terminate(signum, frame):  # CI cancellations send SIGTERM: stop like Ctrl-C, releasing the lock
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, terminate)
    # A shell starts background jobs with SIGINT ignored and children inherit it, so Python would never
    # raise KeyboardInterrupt: a Ctrl-C (or a CI runner's SIGINT) was lost and the apply ran to the end.
    # ml always stops on SIGINT, finishing what is in flight and releasing the lock.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    from .help_cache import is_help_request

    if is_help_request(sys.argv[1:]):
        _render_help()
        return
    try:
        build_app()(prog_name="ml")
    except MLError as exc:  # raised outside a command (e.g. while parsing)
        print(f"Error: {exc}", file=sys.stderr)
        sys.exit(kit.EXIT_ERROR)
    except Exception as exc:  # a bug in ml itself: still no traceback unless asked for
        if os.environ.get("ML_DEBUG"):
            raise
        print(f"Error: internal error: {type(exc).__name__}: {exc}\n  (set ML_DEBUG=1 for a traceback)", file=sys.stderr)
        sys.exit(kit.EXIT_ERROR)
