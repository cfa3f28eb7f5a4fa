"""`ml ci`: what a pull request's pipeline runs (examples/ci has the GitHub Actions and GitLab CI files).

``ml ci plan`` runs ``ml validate``, ``ml fmt --check`` and ``ml plan -out`` (each as its own ``ml``
process, exactly as a person would), writes the saved plan and its markdown, and posts one comment on
the pull request — updated in place on every push, found again by a hidden marker naming the project.
On merge, the pipeline applies exactly the saved plan with ``ml apply plan.json``, which refuses a plan
made against a state that has moved on (another merge applied first) or specs that changed since.

Exit codes: 0 — planned (changes or not); 1 — invalid specs, a plan error or the comment could not be
posted; 2 — a spec file needs ``ml fmt``; 3 — a mandatory policy failed. The comment is posted first
in every case but the last line of defence (no plan at all).
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import List, Optional

import typer

from ml_framework.cli.kit import ARGS_HELP, State, console, escape, handles_errors

__all__ = ["app", "compose_comment"]

app = typer.Typer(help="Pull requests: validate, format-check and plan, and post (or update) one plan comment.",
                  no_args_is_help=True)

_LOG_LINES = 60  # of a failing step's output, in the comment


def _ml(*args: str, capture: bool = True) -> subprocess.CompletedProcess:
    """One `ml` step as its own process (the same interpreter), from this project's folder."""
    base = [sys.executable, "-m", "ml_framework", "--no-color"]
    if State.project_dir is not None:
        base += ["-C", str(State.project_dir)]
    env = dict(os.environ, COLUMNS=os.environ.get("COLUMNS", "200"))
    return subprocess.run([*base, *args], capture_output=capture, text=True, env=env)


def _commit(root: Path) -> str | None:
    for name in ("ML_CI_COMMIT", "CI_COMMIT_SHA", "GITHUB_SHA"):
        if os.environ.get(name):
            return os.environ[name][:12]
    try:
        found = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=root, capture_output=True, text=True,
                               timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return found.stdout.strip() or None


def _tail(text: str) -> str:
    lines = text.rstrip().splitlines()
    if len(lines) > _LOG_LINES:
        lines = [f"… ({len(lines) - _LOG_LINES} lines above)", *lines[-_LOG_LINES:]]
    return "\n".join(lines).replace("```", "'''")


def compose_comment(*, project: str, commit: str | None, plan_markdown: str | None, plan_file: str,
                    failures: list[tuple[str, str]], notes: list[str], limit: int) -> str:
    """The comment's body: a heading naming project and commit, failed steps with their output, the plan,
    and how it will be applied. Cut to ``limit`` characters (the full plan is in the job's artifacts)."""
    from .comments import marker_for

    at = f" · commit `{commit}`" if commit else ""
    parts = [marker_for(project), f"## `ml` plan for **{project}**{at}", ""]
    for step, output in failures:
        parts += [f"#### ❌ `{step}` failed", "", "```", _tail(output), "```", ""]
    parts += notes
    if notes:
        parts.append("")
    if plan_markdown:
        parts.append(plan_markdown.rstrip())
        parts.append("")
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    parts += ["---", f"<sub>Merging applies exactly this plan (`ml apply {plan_file}`); if the state moves on first "
              f"(another merge applied) or the specs change, that apply refuses it and the plan is made again. "
              f"Updated by `ml ci plan`, {stamp}.</sub>"]
    body = "\n".join(parts)
    if len(body) > limit:
        cut = body[: limit - 200].rsplit("\n", 1)[0]
        body = (cut + "\n\n…\n\n> The plan is longer than a comment can hold; the whole plan is in the job's "
                f"artifacts (`{plan_file}` and its markdown).\n")
    return body


@app.command("plan")
@handles_errors
def plan(
    args: Optional[List[str]] = typer.Argument(None, help=ARGS_HELP),
    out: Path = typer.Option(Path("plan.json"), "--out", "-out", help="The saved plan, for `ml apply FILE` on merge."),
    markdown: Path = typer.Option(Path("plan.md"), "--markdown", help="The plan as markdown (the comment's body)."),
    comment: str = typer.Option("auto", "--comment", help="Where to post: auto (the CI system this runs in), "
                                "github, gitlab, or none."),
    fmt_check: bool = typer.Option(True, "--fmt/--no-fmt", help="Check spec and policy files with `ml fmt --check`."),
):
    """Validate, format-check and plan; save the plan; post or update the pull request's plan comment."""
    from ml_framework.cli.kit import project_and_registry

    from .comments import COMMENT_LIMIT, marker_for, thread_for, upsert

    project, _ = project_and_registry()
    thread = thread_for(comment)  # settings checked before any work
    name = project.name or project.root.name
    args = list(args or [])
    out_console = console()
    failures: list[tuple[str, str]] = []
    notes: list[str] = []
    code = 0

    out_console.print("[bold]ml validate[/bold]")
    validate = _ml("validate", *args)
    sys.stdout.write(validate.stdout + validate.stderr)
    plan_markdown = None
    if validate.returncode not in (0, 3):  # 3: a policy fails; the plan shows it with the rest
        failures.append(("ml validate", validate.stdout + validate.stderr))
        code = 1
    else:
        if fmt_check:
            paths = [str(p) for p in (project.spec_dir, project.policies) if p.exists()]
            out_console.print("[bold]ml fmt --check[/bold]")
            checked = _ml("fmt", "--check", *paths)
            sys.stdout.write(checked.stdout + checked.stderr)
            if checked.returncode == 2:
                names = [line.removeprefix("would reformat ").strip() for line in checked.stdout.splitlines()
                         if line.startswith("would reformat ")]
                notes.append(f"⚠️ `ml fmt --check`: {len(names)} file{'s' if len(names) != 1 else ''} need"
                             f"{'s' if len(names) == 1 else ''} formatting (run `ml fmt`): "
                             + ", ".join(f"`{n}`" for n in names[:10]))
                code = 2
            elif checked.returncode != 0:
                failures.append(("ml fmt --check", checked.stdout + checked.stderr))
                code = 1
        out_console.print(f"[bold]ml plan -out {escape(str(out))}[/bold]")
        planned = _ml("plan", "--out", str(out), "--format", "markdown", *args)
        sys.stderr.write(planned.stderr)
        if planned.stdout.strip():
            plan_markdown = planned.stdout
            markdown.parent.mkdir(parents=True, exist_ok=True)
            markdown.write_text(planned.stdout, encoding="utf-8")
            sys.stdout.write(planned.stdout)
        if planned.returncode == 3:
            code = 3
        elif planned.returncode != 0:
            failures.append(("ml plan", planned.stdout + planned.stderr))
            code = 1
    body = compose_comment(project=name, commit=_commit(project.root), plan_markdown=plan_markdown,
                           plan_file=str(out), failures=failures, notes=notes, limit=COMMENT_LIMIT)
    if thread is not None:
        how, comment_id = upsert(thread, marker_for(name), body)
        out_console.print(f"{how.capitalize()} the plan comment on {thread.name} (id {comment_id}).")
    if code:
        raise typer.Exit(code)


@app.command("comment")
@handles_errors
def comment_command(
    file: Path = typer.Argument(..., help="Markdown to post (e.g. `ml plan --format markdown` output)."),
    comment: str = typer.Option("auto", "--comment", help="auto, github or gitlab."),
    key: Optional[str] = typer.Option(None, "--key", help="Which comment to update (default: the project's name)."),
):
    """Post FILE as the pull request's comment for this project, updating the earlier one in place."""
    from ml_framework.cli.kit import fail, project_and_registry

    from .comments import COMMENT_LIMIT, marker_for, thread_for, upsert

    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        fail(f"cannot read {file}: {exc.strerror}")
    thread = thread_for(comment)
    if thread is None:
        fail("--comment: not in a CI system that `ml` can comment on (GitHub Actions or GitLab CI); "
             "pass --comment github or gitlab")
    if key is None:
        project, _ = project_and_registry()
        key = project.name or project.root.name
    how, comment_id = upsert(thread, marker_for(key), text[:COMMENT_LIMIT])
    console().print(f"{how.capitalize()} the comment on {thread.name} (id {comment_id}).")
