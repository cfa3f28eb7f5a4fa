"""What a command needs, for the core's commands and for commands plugins contribute (``ml models``,
``ml monitor``, a third party's ``ml <name>``): the project and its plugins, consoles, one-line errors
with exit codes, the positional-argument grammar (spec path, ``env=``, overrides).

    from ml_framework.cli import kit

    app = typer.Typer(help="...")

    @app.command()
    @kit.handles_errors
    def hello():
        project, registry = kit.project_and_registry()
        kit.console().print(f"{project.root}: {len(registry.kinds)} kinds")
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Callable, List, Optional

import typer

from ..errors import MLError

__all__ = ["State", "EXIT_OK", "EXIT_ERROR", "EXIT_CHANGES", "EXIT_POLICY", "ARGS_HELP", "console", "fail", "escape",
           "handles_errors", "split_args", "project_and_registry"]

EXIT_OK, EXIT_ERROR, EXIT_CHANGES, EXIT_POLICY = 0, 1, 2, 3

ARGS_HELP = ("Spec path and/or overrides: `env=prod` selects specs/env/prod.yaml; `models.fraud.trainer.params."
             "num_leaves=63` changes a field, `+key=v` adds, `~key` deletes.")


class State:
    """Options of the `ml` group, set before any command runs."""

    project_dir: Optional[Path] = None
    color: bool = True
    registry_factory: Optional[Callable] = None  # project -> PluginRegistry (tests, embedding)


#: Width of output that goes to a pipe or a file: rich assumes 80 columns there and would cut model names
#: and tags in tables (`ml models list | grep ...`, CI logs). COLUMNS, when set, still wins.
PIPE_WIDTH = 400


def console(stderr: bool = False):
    import os

    from rich.console import Console

    out = Console(stderr=stderr, highlight=False, no_color=not State.color, soft_wrap=True)
    if not out.is_terminal and not os.environ.get("COLUMNS"):
        out.width = PIPE_WIDTH
    return out


def escape(text: str) -> str:
    from rich.markup import escape as rich_escape

    return rich_escape(str(text))


def fail(message: str, code: int = EXIT_ERROR):
    """Print one error line and exit with ``code``."""
    console(stderr=True).print(f"[bold red]Error:[/bold red] {escape(message)}")
    raise typer.Exit(code)


def handles_errors(func: Callable) -> Callable:
    """Every user-facing failure is one clear message and an exit code, never a traceback."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except MLError as exc:
            fail(str(exc), exc.exit_code)
        except KeyboardInterrupt:
            console(stderr=True).print("Interrupted.")
            raise typer.Exit(130)
        except OSError as exc:
            fail(f"{exc.strerror or exc}: {exc.filename}" if getattr(exc, "filename", None) else str(exc))

    return wrapper


def split_args(args: Optional[List[str]]) -> tuple[Optional[Path], Optional[str], list[str]]:
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


def project_and_registry(spec_dir: Optional[Path] = None):
    """The project (ml.yaml, found from ``-C`` or the current folder) and its PluginRegistry."""
    from ..project import Project

    project = Project.load(State.project_dir, spec_dir=spec_dir)
    registry = State.registry_factory(project) if State.registry_factory else project.registry()
    return project, registry
