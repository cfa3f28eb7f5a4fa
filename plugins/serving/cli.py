"""`ml status` and `ml rollback`: what serves, whether it is healthy, and going back instantly.

Both work on deployments recorded in state. A backend may offer ``status(record, project_dir)`` and
``rollback(record, project_dir, to=, progress=, reason=)`` on its provider (the bentoml backend does);
without them `ml status` checks the recorded URL's ``/readyz`` and `ml rollback` is refused.

:func:`rollback_deployment` is the same operation for programs (monitors acting on drift): it takes the
state lock, asks the provider to switch, records the new outputs and a ``rollback`` run in history.
"""

from __future__ import annotations

import json
import time
from typing import Any, Callable, Optional

import typer

__all__ = ["status", "rollback", "rollback_deployment", "deployment_address", "revisions_table"]


def deployment_address(text: str) -> str:
    """'deployment/fraud-api', 'deployment.fraud-api' or 'fraud-api' -> 'deployment.fraud-api'."""
    name = text
    for prefix in ("deployment/", "deployment."):
        if text.lower().startswith(prefix):
            name = text[len(prefix):]
            break
    return f"deployment.{name}"


def _reports_status(registry, record) -> bool:
    """A recorded resource another kind contributes (a stream deployment) whose backend reports status."""
    try:
        return record.kind.endswith("Deployment") and bool(registry.capable(record.backend, "status"))
    except Exception:  # noqa: BLE001 - an unknown backend is not listed
        return False


def _generic_status(record) -> dict[str, Any]:
    import urllib.request

    url = (record.outputs or {}).get("url")
    ready = False
    if url:
        try:
            with urllib.request.urlopen(url + "/readyz", timeout=1.0) as response:
                ready = response.status == 200
        except OSError:
            ready = False
    return {"running": ready, "ready": ready, "url": url, "pid": (record.outputs or {}).get("pid"),
            "stable": (record.outputs or {}).get("model_version")}


def _esc(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def rollback_deployment(project, registry, address: str, *, to: int | None = None, reason: str = "ml rollback",
                        progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Switch a deployment back to revision ``to`` (default: the previous one that served); returns the
    recorded outputs. Raises MLError with a message for users."""
    from dataclasses import replace
    from datetime import datetime, timezone

    from ml_framework.errors import MLError, did_you_mean
    from ml_framework.secrets import mask_secrets
    from ml_framework.locking import held_lock
    from ml_framework.state.base import ResourceOutcome

    address = deployment_address(address)
    store = project.open_state()
    try:
        with held_lock(store, "rollback") as lock:
            record = store.get(address)
            if record is None:
                known = [r.address for r in store.list_resources() if r.kind == "Deployment"]
                raise MLError(f"{address} is not in state", hint=did_you_mean(address, known)
                              or (f"deployments: {', '.join(known)}" if known else "no deployment is applied yet"))
            provider = registry.get(record.backend)
            if registry.capable(record.backend, "rollback") is None:
                raise MLError(f"backend {record.backend!r} cannot roll back deployments")
            run_id = store.begin_run("rollback", plan_id=None, lock_id=lock.id,
                                     details={"address": address, "to": to, "reason": reason})
            started = time.perf_counter()
            try:
                outputs = provider.rollback(record, project.root, to=to, progress=progress, reason=reason)
            except BaseException as exc:
                message = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
                store.record_outcome(run_id, ResourceOutcome(address, "rollback", "failed", message,
                                                             round(time.perf_counter() - started, 3)))
                store.finish_run(run_id, "failed")
                raise
            now = datetime.now(timezone.utc).isoformat(timespec="seconds")
            store.put(replace(record, outputs=mask_secrets(dict(outputs)), updated_at=now), lock_id=lock.id)
            store.record_outcome(run_id, ResourceOutcome(address, "rollback", "succeeded", None,
                                                         round(time.perf_counter() - started, 3)))
            store.finish_run(run_id, "succeeded")
            return dict(outputs)
    finally:
        store.close()


def revisions_table(record, console) -> None:
    """Print a deployment's revisions (newest last) with their outcomes."""
    from rich.table import Table

    outputs = record.outputs or {}
    revisions = list(outputs.get("revisions") or [])
    current = outputs.get("revision")
    table = Table(title=f"{record.address} revisions", title_justify="left")
    for column in ("rev", "version", "strategy", "outcome", "at (UTC)", "detail"):
        table.add_column(column, overflow="fold")
    for revision in revisions:
        mark = " *" if revision.get("revision") == current else ""
        table.add_row(f"{revision.get('revision')}{mark}", str(revision.get("version", "")),
                      str(revision.get("strategy", "")), str(revision.get("outcome", "")),
                      str(revision.get("at", ""))[:19].replace("T", " "), str(revision.get("detail", "")))
    console.print(table if revisions else f"{record.address}: no revisions recorded")
    if revisions:
        console.print("* serving now")


def _build(project_and_registry, handles_errors, console, fail) -> tuple[typer.Typer, typer.Typer]:  # noqa: C901
    status_app, rollback_app = typer.Typer(), typer.Typer()

    @status_app.command()
    @handles_errors
    def status(
        addresses: Optional[list[str]] = typer.Argument(None, help="Deployments (deployment/NAME); default: all."),
        as_json: bool = typer.Option(False, "--json", help="Print as JSON."),
    ):
        """What serves: process, health, versions and traffic of each deployment."""
        project, registry = project_and_registry()
        store = project.open_state()
        try:
            records = [r for r in store.list_resources() if r.kind == "Deployment" or _reports_status(registry, r)]
        finally:
            store.close()
        if addresses:
            wanted = {deployment_address(a) for a in addresses}
            missing = wanted - {r.address for r in records}
            if missing:
                fail(f"{', '.join(sorted(missing))} is not in state")
            records = [r for r in records if r.address in wanted]
        rows = []
        for record in sorted(records, key=lambda r: r.address):
            try:
                provider = registry.get(record.backend)
                info = (provider.status(record, project.root) if registry.capable(record.backend, "status")
                        else _generic_status(record))
            except Exception as exc:  # one broken backend does not hide the others
                info = {"running": False, "ready": False, "error": f"{type(exc).__name__}: {exc}"}
            rows.append((record, info))
        if as_json:
            typer.echo(json.dumps({r.address: dict(info, state=r.status) for r, info in rows}, indent=2, default=str))
            return
        out = console()
        if not rows:
            out.print("No deployments recorded. Apply a Deployment spec with `ml apply`.")
            return
        unhealthy = 0
        for record, info in rows:
            if info.get("ready"):
                workers = info.get("workers")
                health = "[green]healthy[/green]" + (f" ({workers} worker{'s' if workers != 1 else ''})" if workers else "")
            elif info.get("running"):
                health = "[yellow]running, not ready[/yellow]"
                unhealthy += 1
            else:
                health = "[red]not running[/red]" + (f": {_esc(info['error'])}" if info.get("error") else "")
                unhealthy += 1
            out.print(f"[bold]{_esc(record.address)}[/bold]  {health}  {_esc(str(info.get('url') or '-'))}  "
                      f"pid {info.get('pid') or '-'}")
            out.print(f"  serving {info.get('stable') or '-'} (revision {info.get('revision') or '-'})")
            if "lag" in info:  # a stream deployment: its consumer
                out.print(f"  consumer: lag {info.get('lag') if info.get('lag') is not None else '?'}, unacked "
                          f"{info.get('unacked') if info.get('unacked') is not None else '?'}; processed "
                          f"{info.get('processed', 0):,}, dead-lettered {info.get('dead_lettered', 0):,}, errors "
                          f"{info.get('stream_errors', 0):,}; {info.get('rate_per_s', 0):g} msg/s")
            if info.get("candidate"):
                mode = info.get("mode")
                share = "mirrored traffic" if mode == "mirror" else f"{float(info.get('weight') or 0):g}% of traffic"
                out.print(f"  rollout: {info['candidate']} on {share} ({_esc(str(info.get('step') or mode))})")
            cost = info.get("cost") or {}
            if cost:
                from ml_framework.cost import money

                per = (f"{money(cost['per_1000'], cost['currency'], small=True)} per 1,000 predictions "
                       f"({cost['cpu_seconds_per_1000']:.3g} CPU-s per 1,000; {cost['priced_by']})"
                       if cost.get("per_1000") is not None else "no prediction answered yet")
                out.print(f"  cost: {per}; {cost['answered']:,} answered in {cost['uptime_s'] / 3600:.2f} h, "
                          f"{cost['cpu_seconds']:.1f} CPU-s, {cost['memory_mb']:.0f} MB")
            if record.status != "applied":
                out.print("  [yellow]the last apply did not finish: `ml plan` shows what is left[/yellow]")
            for tag, message in (info.get("errors") or {}).items():
                out.print(f"  [red]error loading {_esc(tag)}: {_esc(message)}[/red]")
        if unhealthy:
            out.print(f"{unhealthy} deployment(s) not healthy: `ml plan` shows how apply restores them.")
            raise typer.Exit(1)

    @rollback_app.command()
    @handles_errors
    def rollback(
        address: str = typer.Argument(..., help="deployment/NAME"),
        to: Optional[int] = typer.Option(None, "--to", help="Revision to go back to (see `ml history deployment/NAME`)."),
    ):
        """Switch a deployment back to an earlier revision, instantly (no restart, no failed requests)."""
        project, registry = project_and_registry()
        out = console()
        outputs = rollback_deployment(project, registry, address, to=to,
                                      progress=lambda message: out.print(f"[dim]{message}[/dim]"))
        out.print(f"[green]Rolled back.[/green] {deployment_address(address)} serves "
                  f"{outputs.get('model_version')} (revision {outputs.get('revision')}).")

    return status_app, rollback_app


def _apps() -> tuple[typer.Typer, typer.Typer]:
    from ml_framework.cli import kit

    return _build(kit.project_and_registry, kit.handles_errors, kit.console, kit.fail)


status_app, rollback_app = _apps()
# `ml status`, `ml rollback`: single commands contributed by the serving plugin (functions, not groups)
status = status_app.registered_commands[0].callback
rollback = rollback_app.registered_commands[0].callback
