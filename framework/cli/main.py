"""The `ml` command line. Commands import what they need when they run, so `ml --help` stays fast."""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path
from typing import Callable, List, Optional

import typer

from .. import __version__
from ..errors import MLError

__all__ = ["build_app", "run"]

EXIT_OK, EXIT_ERROR, EXIT_CHANGES = 0, 1, 2

ARGS_HELP = ("Spec path and/or overrides: `env=prod` selects specs/env/prod.yaml; `models.fraud.trainer.params."
             "num_leaves=63` changes a field, `+key=v` adds, `~key` deletes.")


class _State:
    project_dir: Optional[Path] = None
    color: bool = True


def _console(stderr: bool = False):
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, no_color=not _State.color, soft_wrap=True)


def _fail(message: str, code: int = EXIT_ERROR):
    _console(stderr=True).print(f"[bold red]Error:[/bold red] {_escape(message)}")
    raise typer.Exit(code)


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def _handles_errors(func: Callable) -> Callable:
    """Every user-facing failure is one clear message and exit code 1, never a traceback."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except MLError as exc:
            _fail(str(exc), exc.exit_code)
        except KeyboardInterrupt:
            _console(stderr=True).print("Interrupted.")
            raise typer.Exit(130)
        except OSError as exc:
            _fail(f"{exc.strerror or exc}: {exc.filename}" if getattr(exc, "filename", None) else str(exc))

    return wrapper


def _split_args(args: Optional[List[str]]) -> tuple[Optional[Path], Optional[str], list[str]]:
    """Positional args: a spec path, `env=NAME`, and overrides (anything with '=' or a leading ~/+)."""
    spec_dir, env, overrides = None, None, []
    for arg in args or []:
        if arg.startswith("env="):
            env = arg[4:]
        elif "=" in arg or arg.startswith(("~", "+")):
            overrides.append(arg)
        elif spec_dir is None:
            spec_dir = Path(arg)
        else:
            from ..errors import SpecError

            raise SpecError(f"unexpected argument {arg!r}", hint="give at most one spec path; overrides look like key=value")
    return spec_dir, env, overrides


def build_app(registry_factory: Callable | None = None) -> typer.Typer:
    """The Typer app. `registry_factory(project)` replaces plugin discovery (tests, embedding)."""
    app = typer.Typer(
        name="ml",
        help="Declarative ML infrastructure: plan and apply features, models, deployments and monitors from YAML specs.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        rich_markup_mode=None,
        context_settings={"help_option_names": ["-h", "--help"]},
    )

    def project_and_registry(spec_dir: Optional[Path] = None):
        from ..project import Project

        project = Project.load(_State.project_dir, spec_dir=spec_dir)
        registry = registry_factory(project) if registry_factory else project.registry()
        return project, registry

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
        _State.project_dir = project_dir
        _State.color = not no_color

    from . import commands

    commands.register(app, project_and_registry, _split_args, _handles_errors, _console, _fail, ARGS_HELP)
    return app


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
    try:
        build_app()(prog_name="ml")
    except MLError as exc:  # raised outside a command (e.g. while parsing)
        print(f"Error: {exc}", file=sys.stderr)
        sys.exit(EXIT_ERROR)
    except Exception as exc:  # a bug in ml itself: still no traceback unless asked for
        if os.environ.get("ML_DEBUG"):
            raise
        print(f"Error: internal error: {type(exc).__name__}: {exc}\n  (set ML_DEBUG=1 for a traceback)", file=sys.stderr)
        sys.exit(EXIT_ERROR)
