"""The core's commands of `ml`. Heavy imports happen inside each command, when it runs; plugins add
their own commands (``Plugin(commands=...)``), built with the same kit (ml_framework.cli.kit)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import List, Optional

import typer

from .kit import ARGS_HELP as args_help
from .kit import EXIT_CHANGES, EXIT_ERROR, EXIT_POLICY, State, console, escape, fail, handles_errors, project_and_registry
from .kit import split_args

__all__ = ["register"]


def register(app) -> None:  # noqa: C901
    state_app = typer.Typer(help="Inspect and edit recorded state.", no_args_is_help=True)
    override_help = "Pass this failing soft-mandatory policy (recorded with who overrode it). Repeatable."
    app.add_typer(state_app, name="state")

    def load(args, registry_needed=True):
        from ..operations import load_specs

        spec_dir, env, overrides = split_args(args)
        project, registry = project_and_registry(spec_dir)
        loaded = load_specs(project, registry if registry_needed else None, env=env, overrides=overrides)
        return project, registry, loaded

    # -- validate --------------------------------------------------------------------------------------
    @app.command()
    @handles_errors
    def validate(args: Optional[List[str]] = typer.Argument(None, help=args_help),
                 override_policy: List[str] = typer.Option([], "--override-policy", metavar="NAME",
                                                           help=override_help)):
        """Check specs: YAML, fields, references, cycles, each backend's own settings and the project's policies."""
        from ..operations import check_specs_against_policies

        project, registry, loaded = load(args)
        broken = [(a, n.plugin_error) for a, n in loaded.graph.nodes.items() if n.plugin_error is not None]
        out = console()
        for address, error in broken:
            console(stderr=True).print(f"[red]✗[/red] {address}: {error}")
        if broken:
            raise typer.Exit(EXIT_ERROR)
        counts: dict[str, int] = {}
        for node in loaded.graph.nodes.values():
            counts[node.kind] = counts.get(node.kind, 0) + 1
        detail = ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "no resources"
        out.print(f"[green]✓[/green] specs are valid: {len(loaded.graph.nodes)} resources ({detail}) "
                  f"in {len(loaded.composed.files)} files")
        if loaded.policies:
            from ..plan.render_text import render_policy_checks

            checks = check_specs_against_policies(loaded, project, override_policy)
            out.print(render_policy_checks(checks, color=State.color and sys.stdout.isatty()), markup=False,
                      highlight=False)
            refuse_blocked(checks)

    def refuse_blocked(checks) -> None:
        from ..policy import PolicyError, blocking_message

        message = blocking_message(checks)
        if message:
            raise PolicyError(message)

    # -- plan ------------------------------------------------------------------------------------------------
    def render(plan, fmt: str, show_noop: bool = False) -> str:
        if fmt == "json":
            from ..plan.render_json import render_json

            return render_json(plan)
        if fmt == "markdown":
            from ..plan.render_markdown import render_markdown

            return render_markdown(plan)
        from ..plan.render_text import render_text

        return render_text(plan, color=State.color and sys.stdout.isatty(), show_noop=show_noop)

    def write_plan(plan, path: Path) -> None:
        from ..plan.render_json import render_json

        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render_json(plan), encoding="utf-8")

    @app.command()
    @handles_errors
    def plan(
        args: Optional[List[str]] = typer.Argument(None, help=args_help),
        target: List[str] = typer.Option([], "--target", "-t", help="Plan only this address (and what it needs). Repeatable."),
        out: Optional[Path] = typer.Option(None, "--out", "-out", help="Save the plan to FILE for `ml apply FILE`."),
        as_json: bool = typer.Option(False, "--json", help="Print the plan as JSON (docs/plan-format.md)."),
        fmt: str = typer.Option("text", "--format", help="text, json or markdown (for pull-request comments)."),
        detailed_exitcode: bool = typer.Option(False, "--detailed-exitcode", help="Exit 0: no changes, 1: error, 2: changes."),
        refresh: bool = typer.Option(True, "--refresh/--no-refresh", help="Ask backends what exists now."),
        destroy: bool = typer.Option(False, "--destroy", help="Plan to destroy everything recorded."),
        show_noop: bool = typer.Option(False, "--show-unchanged", help="List unchanged resources too."),
        retry: List[str] = typer.Option([], "--retry", help="Apply this address again, even unchanged or held by its "
                                        "backend (a model whose inputs were already rejected, a deployment whose "
                                        "rollout was rolled back). Repeatable."),
        refresh_only: bool = typer.Option(False, "--refresh-only", "-refresh-only",
                                          help="Show only what changed outside of ml since the last apply (drift); "
                                          "with --detailed-exitcode, exit 2 when there is some."),
        override_policy: List[str] = typer.Option([], "--override-policy", metavar="NAME", help=override_help),
    ):
        """Show what `ml apply` would change, and why, and check the project's policies. Changes nothing."""
        import dataclasses

        from ..operations import make_plan

        fmt = "json" if as_json else fmt
        if fmt not in ("text", "json", "markdown"):
            fail(f"--format: unknown format {fmt!r} (text, json or markdown)")
        if refresh_only and (destroy or out is not None or not refresh):
            fail("--refresh-only reads what exists now and applies nothing: it goes with neither --destroy, "
                 "--out nor --no-refresh")
        project, registry, loaded = load(args)
        store = project.open_state()
        try:
            the_plan = make_plan(project, registry, store, loaded, targets=target, refresh=refresh, destroy=destroy,
                                 retry=retry, policy_overrides=override_policy)
        finally:
            store.close()
        if refresh_only:
            the_plan = dataclasses.replace(the_plan, changes=(), operation="refresh-only")
        typer.echo(render(the_plan, fmt, show_noop))
        if out is not None:
            write_plan(the_plan, out)
            if fmt == "text":
                console().print(f"\nSaved the plan to {out}. Apply exactly this plan with: ml apply {out}")
        if the_plan.errors:
            raise typer.Exit(EXIT_ERROR)
        if the_plan.blocked_by_policy() and not refresh_only:
            raise typer.Exit(EXIT_POLICY)
        if detailed_exitcode and (the_plan.has_changes or (refresh_only and the_plan.drift)):
            raise typer.Exit(EXIT_CHANGES)

    # -- apply / destroy -----------------------------------------------------------------------------------
    def confirm(the_plan, auto_approve: bool, verb: str) -> None:
        if auto_approve:
            return
        if not sys.stdin.isatty():
            fail(f"refusing to {verb} without confirmation: stdin is not a terminal; pass --auto-approve")
        answer = typer.prompt(f"\nDo you want to {verb}? Only 'yes' will be accepted", default="", show_default=False)
        if answer.strip() != "yes":
            console().print(f"{verb.capitalize()} cancelled.")
            raise typer.Exit(EXIT_ERROR)

    def progress_printer():
        out = console()
        verbs = {"create": ("Creating", "Creation"), "update": ("Updating", "Update"), "move": ("Moving", "Move"),
                 "import": ("Importing", "Import"),
                 "restate": ("Rewriting the record of", "Record rewrite"),
                 "replace": ("Replacing", "Replacement"), "delete": ("Destroying", "Destruction")}

        def on_event(event):
            start, done = verbs.get(event.action, ("Working on", "Work"))
            address = _esc(event.address)
            if event.kind == "start":
                out.print(f"[bold]{address}[/bold]: {start}...")
            elif event.kind == "progress":
                out.print(f"[dim]{address}: {_esc(event.message)}[/dim]")
            elif event.kind == "succeeded":
                said = f" — {_esc(event.message)}" if event.message else ""
                out.print(f"[bold]{address}[/bold]: [green]{done} complete after {event.duration_s:.1f}s[/green]{said}")
            elif event.kind == "failed":
                message = event.message.removeprefix(f"{event.address}: ")  # the line already names it
                out.print(f"[bold]{address}[/bold]: [red]failed: {_esc(message)}[/red]")
            elif event.kind == "skipped":
                out.print(f"[bold]{address}[/bold]: [yellow]skipped ({_esc(event.message)})[/yellow]")

        return on_event

    def done_counts(outcomes) -> dict[str, int]:
        """Succeeded resources by action (create, update, replace, delete)."""
        counts = {a: 0 for a in ("create", "update", "replace", "delete")}
        for outcome in outcomes:
            if outcome.outcome == "succeeded":
                counts[outcome.action] = counts.get(outcome.action, 0) + 1
        return counts

    def report_result(report, the_plan, verb: str) -> None:
        out = console()
        counts = done_counts(report.outcomes)
        moved = f", {counts['move']} moved" if counts.get("move") else ""
        moved += f", {counts['import']} imported" if counts.get("import") else ""
        summary = (f"Resources: {counts['create']} added, {counts['update']} changed, "
                   f"{counts['replace']} replaced, {counts['delete']} destroyed{moved}.")
        failed = report.count("failed")
        skipped = report.count("skipped")
        if report.interrupted:
            out.print(f"\n[yellow]{verb} interrupted.[/yellow] {summary} Finished work is recorded; "
                      "run `ml plan` to see what is left.")
            raise typer.Exit(130)
        if failed:
            out.print(f"\n[red]{verb} failed:[/red] {failed} failed, {skipped} skipped. {summary}")
            raise typer.Exit(EXIT_ERROR)
        if the_plan.errors:
            out.print(f"\n[red]{verb} incomplete:[/red] {len(the_plan.errors)} resources could not be planned. {summary}")
            raise typer.Exit(EXIT_ERROR)
        out.print(f"\n[green]{verb} complete![/green] {summary}")

    def write_report(path: Path, verb: str, the_plan, report, store) -> None:
        """What the apply did, as JSON for bots (``--report``): per resource its action, outcome, time, what
        its backend said (a model's metrics and gate verdicts, a rollout's verdict) and its recorded outputs."""
        outcomes = report.outcomes if report is not None else []
        resources = []
        for o in outcomes:
            record = store.get(o.address) if o.outcome == "succeeded" and o.action != "delete" else None
            resources.append({"address": o.address, "action": o.action, "outcome": o.outcome,
                              "duration_s": o.duration_s, "message": report.messages.get(o.address),
                              "error": o.error, "outputs": dict(record.outputs) if record is not None else None})
        counts = done_counts(outcomes)
        summary = {name: counts.get(action, 0) for name, action in
                   (("added", "create"), ("changed", "update"), ("replaced", "replace"), ("destroyed", "delete"),
                    ("moved", "move"), ("imported", "import"))}
        summary.update(failed=sum(1 for o in outcomes if o.outcome == "failed"),
                       skipped=sum(1 for o in outcomes if o.outcome == "skipped"))
        data = {"format_version": 1, "operation": verb, "plan_id": the_plan.plan_id,
                "ok": bool((report is None or report.ok) and not the_plan.errors),
                "interrupted": bool(report is not None and report.interrupted), "summary": summary,
                "plan_errors": [{"address": e.address, "message": e.message} for e in the_plan.errors],
                "resources": resources}
        tmp = path.with_name(f".{path.name}.tmp")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")
            tmp.replace(path)
        except OSError as exc:  # what was applied is recorded in state either way
            console(stderr=True).print(f"[red]Error:[/red] --report: could not write {_esc(str(path))}: "
                                       f"{_esc(exc.strerror or str(exc))} (the apply itself is recorded)")

    def run_apply(args, target, auto_approve, parallelism, keep_going, refresh, destroy, plan_file=None, retry=(),
                  report_file=None, override_policy=()):
        from ..actor import current_actor
        from ..apply import apply_plan
        from ..locking import held_lock
        from ..operations import check_saved_plan, load_specs, make_plan, resources_for, with_policy_checks

        verb = "destroy" if destroy else "apply"
        if report_file is not None:  # found out now, not after the apply
            import os

            existing = next((p for p in (report_file.parent, *report_file.parent.parents) if p.exists()), Path("."))
            if report_file.is_dir() or not existing.is_dir() or not os.access(existing, os.W_OK):
                fail(f"--report: cannot write {report_file} (not a writable place)")
        saved = None
        if plan_file is not None:
            from ..plan.render_json import load_plan_json

            try:
                text = plan_file.read_text(encoding="utf-8")
            except OSError as exc:
                fail(f"cannot read plan file {plan_file}: {exc.strerror}")
            saved = load_plan_json(text, source=str(plan_file))
            target, destroy, verb = list(saved.targets), saved.operation == "destroy", saved.operation
            retry = list(saved.retry)
            project, registry = project_and_registry()
            spec_dir = project.root / saved.spec_dir if saved.spec_dir else None
            env, overrides = saved.env, list(saved.overrides)
            if spec_dir is not None:
                project.spec_dir = spec_dir
        else:
            spec_dir, env, overrides = split_args(args)
            project, registry = project_and_registry(spec_dir)
        loaded = load_specs(project, registry, env=env, overrides=overrides)
        store = project.open_state()
        try:
            with held_lock(store, verb, notice=lambda m: console(stderr=True).print(f"[yellow]Note:[/yellow] {_esc(m)}")) as lock:
                fresh = make_plan(project, registry, store, loaded, targets=target, refresh=refresh and saved is None,
                                  destroy=destroy, retry=retry, policy_overrides=override_policy)
                if saved is not None:
                    check_saved_plan(saved, store, fresh)
                    # The policies in force now decide (a rule may have changed since the plan was saved).
                    the_plan = with_policy_checks(saved, loaded.policies, project, override_policy)
                    if the_plan.policy_checks:
                        from ..plan.render_text import render_policy_checks

                        typer.echo(render_policy_checks(the_plan.policy_checks, color=False))
                else:
                    the_plan = fresh
                    typer.echo(render(the_plan, "text"))
                if the_plan.has_changes:
                    refuse_blocked(the_plan.policy_checks)
                if not the_plan.has_changes:
                    if report_file is not None:
                        write_report(report_file, verb, the_plan, None, store)
                    if the_plan.errors:
                        raise typer.Exit(EXIT_ERROR)
                    return
                if saved is None:
                    confirm(the_plan, auto_approve, f"{verb} these changes" if verb == "apply" else "destroy these resources")
                report = apply_plan(the_plan, resources_for(the_plan, loaded), store, registry, lock_id=lock.id,
                                    project_dir=project.root, parallelism=parallelism, keep_going=keep_going,
                                    on_event=progress_printer(), actor=current_actor(project.root))
                if report_file is not None:
                    write_report(report_file, verb, the_plan, report, store)
                report_result(report, the_plan, verb.capitalize())
        finally:
            store.close()

    @app.command()
    @handles_errors
    def apply(
        args: Optional[List[str]] = typer.Argument(None, help="A saved plan file (from `ml plan -out`), or " + args_help),
        target: List[str] = typer.Option([], "--target", "-t", help="Apply only this address (and what it needs). Repeatable."),
        auto_approve: bool = typer.Option(False, "--auto-approve", help="Skip the confirmation prompt."),
        parallelism: Optional[int] = typer.Option(None, "--parallelism", min=1, help="Resources worked on at once (default: 2 per core)."),
        keep_going: bool = typer.Option(False, "--keep-going", help="After a failure, go on with everything that does not depend on it."),
        refresh: bool = typer.Option(True, "--refresh/--no-refresh", help="Ask backends what exists now."),
        retry: List[str] = typer.Option([], "--retry", help="Apply this address again, even unchanged or held by its "
                                        "backend (a model whose inputs were already rejected, a deployment whose "
                                        "rollout was rolled back). Repeatable."),
        report_file: Optional[Path] = typer.Option(None, "--report", help="Also write what happened to FILE as JSON "
                                                   "(outcomes, what each backend said, recorded outputs): for bots."),
        override_policy: List[str] = typer.Option([], "--override-policy", metavar="NAME", help=override_help),
    ):
        """Make the world match the specs: plan, confirm, apply, recording each result as it lands."""
        plan_file = None
        # A saved plan: an existing file, or a missing *.json (reported as an unreadable plan file, not
        # as a missing spec directory).
        if (args and len(args) == 1 and "=" not in args[0]
                and (Path(args[0]).is_file() or Path(args[0]).suffix.lower() == ".json")):
            plan_file = Path(args[0])
            args = []
        run_apply(args, target, auto_approve, parallelism, keep_going, refresh, False, plan_file, retry, report_file,
                  override_policy)

    @app.command()
    @handles_errors
    def destroy(
        args: Optional[List[str]] = typer.Argument(None, help=args_help),
        target: List[str] = typer.Option([], "--target", "-t", help="Destroy only this address and what depends on it."),
        auto_approve: bool = typer.Option(False, "--auto-approve", help="Skip the confirmation prompt."),
        parallelism: Optional[int] = typer.Option(None, "--parallelism", min=1),
        keep_going: bool = typer.Option(False, "--keep-going"),
    ):
        """Remove everything recorded in state, dependents first."""
        run_apply(args, target, auto_approve, parallelism, keep_going, False, True)

    # -- state ---------------------------------------------------------------------------------------------
    def open_store():
        project, _ = project_and_registry()
        return project.open_state()

    @state_app.command("list")
    @handles_errors
    def state_list():
        """List recorded resources."""
        store = open_store()
        try:
            meta, records = store.meta(), store.list_resources()
        finally:
            store.close()
        from rich.table import Table

        table = Table(title=f"state serial {meta.serial} · lineage {meta.lineage}", title_justify="left")
        for column in ("address", "backend", "status", "updated"):
            table.add_column(column)
        for record in sorted(records, key=lambda r: r.address):
            table.add_row(record.address, record.backend, record.status, record.updated_at or "")
        console().print(table)

    @state_app.command("show")
    @handles_errors
    def state_show(address: str = typer.Argument(..., help="e.g. model.fraud")):
        """Show one recorded resource: spec, inputs, outputs (JSON)."""
        store = open_store()
        try:
            record = store.get(address)
            known = [r.address for r in store.list_resources()] if record is None else []
        finally:
            store.close()
        if record is None:
            from ..errors import did_you_mean

            hint = did_you_mean(address, known)
            fail(f"{address} is not in state" + (f" ({hint})" if hint else ""))
        from dataclasses import asdict

        typer.echo(json.dumps(asdict(record), indent=2, default=str))

    @state_app.command("rm")
    @handles_errors
    def state_rm(address: str = typer.Argument(..., help="Forget this resource (does not delete it).")):
        """Forget a resource without deleting it; the next plan will create it again."""
        from ..locking import held_lock
        from ..state.base import ResourceOutcome

        store = open_store()
        try:
            if store.get(address) is None:
                fail(f"{address} is not in state")
            with held_lock(store, "state rm") as lock:
                run_id = store.begin_run("state rm", plan_id=None, lock_id=lock.id)
                store.remove(address, lock_id=lock.id)
                store.record_outcome(run_id, ResourceOutcome(address, "forget", "succeeded"))
                store.finish_run(run_id, "succeeded")
        finally:
            store.close()
        console().print(f"Removed {address} from state (nothing was deleted).")

    # -- history ----------------------------------------------------------------------------------------------
    @app.command()
    @handles_errors
    def history(
        address: Optional[str] = typer.Argument(None, help="Only runs that touched this address."),
        limit: int = typer.Option(20, "--limit", "-n"),
        as_json: bool = typer.Option(False, "--json"),
    ):
        """Past runs: who, when, which plan, and each resource's outcome (a deployment: its revisions too)."""
        if address and "/" in address:  # `deployment/fraud-api` reads like `deployment.fraud-api`
            kind, _, name = address.partition("/")
            address = f"{kind.lower()}.{name}"
        store = open_store()
        try:
            runs = store.history(limit=limit, address=address)
            record = store.get(address) if address else None
        finally:
            store.close()
        if record is not None and (record.outputs or {}).get("revisions") and not as_json:
            _revisions_table(record, console())
        if as_json:
            from dataclasses import asdict

            typer.echo(json.dumps([asdict(r) for r in runs], indent=2, default=str))
            return
        from rich.table import Table

        table = Table()
        for column in ("started (UTC)", "operation", "status", "resources", "who", "plan"):
            table.add_column(column, overflow="fold")
        for run in runs:
            outcomes = [o for o in run.outcomes if address is None or o.address == address]
            if address is not None:
                detail = "; ".join(f"{o.action} {o.outcome}" + (f": {o.error}" if o.error else "") for o in outcomes)
            else:
                counts: dict[str, int] = {}
                for o in outcomes:
                    counts[o.outcome] = counts.get(o.outcome, 0) + 1
                detail = ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "-"
            who = str((run.details or {}).get("actor") or run.who)
            git = (run.details or {}).get("git") or {}
            if git.get("commit"):
                detail += f"; commit {git['commit'][:10]}" + (" (uncommitted changes)" if git.get("dirty") else "")
            overrides = [f"{o.get('policy')} by {o.get('by')}" for o in (run.details or {}).get("policy_overrides") or []]
            if overrides:
                detail += "; policy overridden: " + ", ".join(overrides)
            table.add_row(run.started[:19].replace("T", " "), run.operation, run.status, detail, who,
                          (run.plan_id or "")[:8])
        console().print(table if runs else "No runs recorded yet.")

    # -- graph / schema / plugins / unlock --------------------------------------------------------------------
    @app.command()
    @handles_errors
    def graph(
        args: Optional[List[str]] = typer.Argument(None, help=args_help),
        fmt: str = typer.Option("mermaid", "--format", help="mermaid or dot"),
    ):
        """Print the resource graph (Mermaid or Graphviz dot)."""
        from ..graph_export import to_dot, to_mermaid

        if fmt not in ("mermaid", "dot"):
            fail(f"--format: unknown format {fmt!r} (mermaid or dot)")
        _, registry, loaded = load(args, registry_needed=False)
        nodes = [(n.address, n.kind, n.depends_on) for n in loaded.graph.nodes.values()]
        kinds = registry.kinds
        styles = {key: kinds.get(name).style for name in kinds.names() for key in (name, name.lower())}
        typer.echo(to_mermaid(nodes, styles=styles) if fmt == "mermaid" else to_dot(nodes, styles=styles))

    @app.command()
    @handles_errors
    def schema(out: Optional[Path] = typer.Option(None, "--out", "-o", help="Write to FILE instead of stdout.")):
        """Export the JSON Schema of spec documents (for editor completion, e.g. yaml-language-server)."""
        from ..spec.schema import spec_json_schema

        text = json.dumps(spec_json_schema(), indent=2)
        if out:
            out.write_text(text + "\n", encoding="utf-8")
            console().print(f"Wrote {out}")
        else:
            typer.echo(text)

    @app.command()
    @handles_errors
    def fmt(
        paths: Optional[List[Path]] = typer.Argument(None, help="Files or folders (default: the project's specs)."),
        check: bool = typer.Option(False, "--check", help="Change nothing; exit 2 if a file is not formatted (CI)."),
        show_diff: bool = typer.Option(False, "--diff", help="Show what changes, as a unified diff."),
    ):
        """Rewrite spec files in one layout (indentation, spacing), keeping comments, key order and quoting.

        Exit codes: 0 formatted (or nothing to do), 2 with --check when a file needs formatting, 1 on
        an error (a file that is not valid YAML is named with its line and left as it is)."""
        from ..spec.fmt import FormatError, display_name, format_file, spec_files
        from ..spec.fmt import diff as unified_diff

        if paths:
            root = Path.cwd()
            targets = [p if p.is_absolute() else root / p for p in paths]
        else:
            project, _ = project_and_registry()
            root, targets = project.root, [project.spec_dir]
        out, err = console(), console(stderr=True)
        changed, failed = [], []
        for path in spec_files(targets):
            try:
                result = format_file(path, root)
            except FormatError as exc:
                failed.append(path)
                err.print(f"[red]✗[/red] {escape(str(exc))}")
                continue
            if not result.changed:
                continue
            changed.append(result)
            name = display_name(path, root)
            if show_diff:
                typer.echo(unified_diff(result, root), nl=False)
            if check:
                out.print(f"would reformat {escape(name)}")
            else:
                tmp = path.with_name(f".{path.name}.fmt.tmp")
                tmp.write_text(result.after, encoding="utf-8")
                tmp.replace(path)
                out.print(f"formatted {escape(name)}")
        if failed:
            raise typer.Exit(EXIT_ERROR)
        if check and changed:
            err.print(f"{len(changed)} file(s) need formatting: run `ml fmt`")
            raise typer.Exit(EXIT_CHANGES)
        if not changed:
            out.print("[green]✓[/green] all spec files are formatted")

    @app.command()
    @handles_errors
    def plugins():
        """List installed plugins (kinds, commands) and backends, with their versions."""
        _, registry = project_and_registry()
        from rich.table import Table

        table = Table()
        for column in ("name", "role", "version", "kinds", "status", "source"):
            table.add_column(column)
        infos = registry.describe()
        for info in infos:
            status = info.status if not info.error else f"{info.status}: {info.error}"
            table.add_row(info.name, info.role, info.version, ", ".join(info.kinds), status, info.origin)
        console().print(table if infos else "No plugins installed.")

    @app.command("force-unlock")
    @handles_errors
    def force_unlock(lock_id: str = typer.Argument(..., metavar="ID", help="The lock id shown in the 'locked' error."),
                     force: bool = typer.Option(False, "--force", "-f", help="Do not ask for confirmation.")):
        """Remove a stuck state lock left by a run that is gone."""
        store = open_store()
        try:
            current = store.current_lock()
            if current is not None and current.id == lock_id and not force:
                if not sys.stdin.isatty():
                    fail("refusing to unlock without confirmation: stdin is not a terminal; pass --force")
                typer.confirm(f"Unlock {lock_id} held by {current.who} ({current.operation} since {current.created})?",
                              abort=True)
            info = store.force_unlock(lock_id)
        finally:
            store.close()
        console().print(f"Unlocked {info.id} (was held by {info.who} for {info.operation}).")

    @app.command()
    @handles_errors
    def init(directory: Path = typer.Argument(Path("."), help="Where to create the project.")):
        """Scaffold a new project: ml.yaml, specs/ with an example, .gitignore."""
        from .scaffold import scaffold

        _, registry = project_and_registry()
        created = scaffold(directory, registry.plugins().values())
        out = console()
        for path in created:
            out.print(f"  created {path}")
        steps = "ml validate && ml plan && ml apply"
        here = Path(directory).resolve() == Path.cwd().resolve()
        out.print(f"\nNext: {steps}" if here else f"\nNext: cd {_esc(str(directory))} && {steps}")



def _revisions_table(record, out) -> None:
    """A resource's revisions (outputs ``revisions``: a list of dicts, newest last), e.g. a deployment's."""
    from rich.table import Table

    revisions = list(record.outputs.get("revisions") or [])
    current = record.outputs.get("revision")
    preferred = ["revision", "version", "strategy", "outcome", "at", "detail"]
    keys = [k for k in preferred if any(k in r for r in revisions)]
    keys += sorted({k for r in revisions for k in r} - set(keys) - {"tag", "ref"})
    table = Table(title=f"{record.address} revisions", title_justify="left")
    for key in keys:
        table.add_column({"revision": "rev", "at": "at (UTC)"}.get(key, key), overflow="fold")
    for revision in revisions:
        cells = []
        for key in keys:
            value = str(revision.get(key, ""))
            if key == "revision" and revision.get("revision") == current:
                value += " *"
            elif key == "at":
                value = value[:19].replace("T", " ")
            cells.append(value)
        table.add_row(*cells)
    out.print(table)
    out.print("* current")


def _esc(text: str) -> str:
    from rich.markup import escape

    return escape(str(text))
