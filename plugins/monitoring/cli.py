"""`ml monitor`: run monitors once (cron), watch them on their schedule, report, expose gauges.

Exit codes of `ml monitor run`: 0 — no drift or decay (an inconclusive window counts here: too few rows,
no traffic yet, no labels yet); 3 — drift or performance decay in at least one monitor; 1 — an error
(a monitor that could not run). Code 2 stays Click's usage error.

The work is done by ``ml_framework.plugins.monitoring`` (imported when a command runs, so `ml --help` stays light).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Optional

import typer

__all__ = ["app"]

EXIT_OK, EXIT_ERROR, EXIT_DRIFT = 0, 1, 3
_STYLE = {"drift": "bold red", "decay": "bold red", "skew": "bold red", "error": "bold red", "ok": "green",
          "inconclusive": "yellow"}


def _p(value) -> str:
    if value is None:
        return "–"
    return f"{value:.2e}" if value < 0.001 else f"{value:.4f}"


def _esc(text) -> str:
    from rich.markup import escape

    return escape(str(text))


def _print_result(out, result, verbose: bool) -> None:
    status = result.status
    window = result.window
    span = f", {window['start']} → {window['end']}" if window.get("start") else ""
    out.print(f"[bold]monitor.{_esc(result.monitor)}[/bold] → deployment {_esc(result.deployment)}: "
              f"[{_STYLE.get(status, '')}]{status}[/] (window: {window.get('rows', 0)} rows{_esc(span)})")
    for version in result.versions:
        drift = version.drift
        ref = version.reference or {}
        sampled = f" (sampled from {ref.get('total'):,})" if ref.get("sampled") else ""
        threshold = f", per-test threshold {drift.threshold:.3g}" if drift.threshold else ""
        out.print(f"  {version.model}:{version.model_version}: [{_STYLE.get(version.status, '')}]{version.status}[/] — "
                  f"{drift.method} on {drift.n} rows vs {ref.get('rows', '?'):,} reference rows{sampled}{threshold}")
        shown = [f for f in drift.features if verbose or f.drift or f.missing or f.unseen or f.note]
        for feature in shown:
            mark = "[red]drift[/red]" if feature.drift else ("–" if feature.drift is None else "ok")
            extra = []
            if feature.missing:
                extra.append(f"{feature.missing} missing")
            if feature.unseen:
                extra.append("unseen: " + ", ".join(f"{_esc(k)} ×{v}" for k, v in list(feature.unseen.items())[:5]))
            if feature.note:
                extra.append(_esc(feature.note))
            distance = f"{feature.distance:.4g}" if feature.distance is not None else "–"
            name = "prediction" if feature.name == "__prediction__" else feature.name
            out.print(f"    {_esc(name):<28} {feature.test:<5} p={_p(feature.p_val):<9} d={distance:<9} {mark}"
                      + (f"  ({'; '.join(extra)})" if extra else ""))
        if drift.method == "mmd" and drift.p_val is not None:
            out.print(f"    multivariate mmd p={_p(drift.p_val)} distance={drift.distance:.4g}")
        for note in drift.notes:
            out.print(f"    [yellow]{_esc(note)}[/yellow]")
        perf = version.performance
        if perf is not None:
            overall = [m for m in perf.metrics if not m.slice]
            parts = [f"{m.metric} {m.value:.4f}" + (f" (validation {m.baseline:.4f})" if m.baseline is not None else "")
                     + (" [red]decay[/red]" if m.decayed else "") for m in overall if m.value is not None]
            out.print(f"    performance on {perf.n} labelled rows: [{_STYLE.get(perf.status, '')}]{perf.status}[/]"
                      + (f" — {', '.join(parts)}" if parts else ""))
            for m in perf.decayed_slices():
                baseline = f" (validation {m.baseline:.4f})" if m.baseline is not None else ""
                out.print(f"      slice {_esc(m.slice)}={_esc(m.segment)}: {m.metric} {m.value:.4f}{baseline} on "
                          f"{m.n} rows [red]decay[/red]")
            for note in perf.notes:
                out.print(f"    [yellow]{_esc(note)}[/yellow]")
    if result.skew is not None:
        skewed = [f for f in result.skew if f.mismatches]
        checked = sum(1 for f in result.skew if f.checked)
        out.print(f"  training/serving skew: {checked} feature(s) checked on live requests — "
                  + (f"[bold red]{len(skewed)} skewed[/]" if skewed else "[green]none[/]"))
        for f in result.skew if verbose else skewed:
            example = f" e.g. {_esc(f.example)}" if f.example and f.mismatches else ""
            out.print(f"    {_esc(f.feature):<40} {f.kind:<22} {f.mismatches}/{f.checked} differ"
                      f" (max |difference| {f.max_difference:.4g}){example}")
    for note in result.notes:
        out.print(f"  [yellow]{_esc(note)}[/yellow]")
    for action in result.actions:
        style = {"succeeded": "green", "failed": "red", "skipped": "yellow"}.get(action.outcome, "")
        out.print(f"  action {action.action}: [{style}]{action.outcome}[/] {_esc(action.detail)}")


def _deployment_cost(session, record) -> dict | None:
    """What the watched deployment costs now, from its serving backend's status (None if unknown)."""
    if record is None:
        return None
    deployment = session.store.get(f"deployment.{record.spec.get('deployment')}")
    try:
        if deployment is None or not session.plugins.capable(deployment.backend, "status"):
            return None
        return session.plugins.get(deployment.backend).status(deployment, session.project.root).get("cost")
    except Exception:  # noqa: BLE001 - a report without the cost is still a report
        return None


def _build(project_and_registry, handles_errors, console, fail) -> typer.Typer:  # noqa: C901
    monitor_app = typer.Typer(help="Drift and performance monitors: run, watch, report, history, metrics.",
                              no_args_is_help=True)

    def open_session(env=None, act=True):
        from ml_framework.plugins.monitoring.runner import Session

        project, plugins = project_and_registry()
        err = console(stderr=True)
        return Session.open(project, plugins, env=env, act=act, echo=lambda line: err.print(_esc(line)))

    def names_for(session, name: Optional[str]) -> list[str]:
        from ml_framework.plugins.monitoring.runner import recorded_monitors

        known = sorted(recorded_monitors(session.store))
        if name is not None:
            return [name]
        if not known:
            fail("no monitor is applied yet: add a Monitor spec and run `ml apply`")
        return known

    def run_all(session, names, as_json: bool, verbose: bool) -> int:
        from ml_framework.errors import MLError
        from ml_framework.plugins.monitoring.runner import exit_code, run_monitor

        out = console()
        code = EXIT_OK
        results = []
        for name in names:
            try:
                result = run_monitor(session, name)
            except MLError as exc:
                console(stderr=True).print(f"[bold red]Error:[/bold red] monitor.{_esc(name)}: {_esc(exc)}")
                results.append({"monitor": name, "status": "error", "error": str(exc)})
                code = EXIT_ERROR
                continue
            results.append(result.to_dict())
            if not as_json:
                _print_result(out, result, verbose)
            if code != EXIT_ERROR:
                code = max(code, exit_code(result))
        if as_json:
            typer.echo(json.dumps(results, indent=2, default=str))
        return code

    @monitor_app.command("run")
    @handles_errors
    def run(name: Optional[str] = typer.Argument(None, help="The monitor (default: every applied monitor)."),
            no_actions: bool = typer.Option(False, "--no-actions", help="Check and record, but take no action."),
            as_json: bool = typer.Option(False, "--json", help="Print the results as JSON."),
            verbose: bool = typer.Option(False, "--verbose", "-v", help="List every feature, not only notable ones."),
            env: Optional[str] = typer.Option(None, "--env", help="Env overlay used if an action plans (retrain).")):
        """Check the monitors once (cron friendly). Exit 0: no drift, 3: drift or decay, 1: error."""
        session = open_session(env, act=not no_actions)
        try:
            code = run_all(session, names_for(session, name), as_json, verbose)
        finally:
            session.close()
        raise typer.Exit(code)

    @monitor_app.command("watch")
    @handles_errors
    def watch(name: Optional[str] = typer.Argument(None, help="The monitor (default: every applied monitor)."),
              interval: Optional[str] = typer.Option(None, "--interval", help="Run every DURATION (e.g. 30s, 15m) "
                                                     "instead of each monitor's schedule (default 15m)."),
              iterations: Optional[int] = typer.Option(None, "--iterations", min=1, help="Stop after N passes."),
              no_actions: bool = typer.Option(False, "--no-actions", help="Check and record, but take no action."),
              env: Optional[str] = typer.Option(None, "--env", help="Env overlay used if an action plans (retrain).")):
        """Run the monitors on their schedule until interrupted (Ctrl-C). Detectors stay loaded."""
        from ml_framework.spec.kinds import parse_duration
        from ml_framework.plugins.monitoring.runner import recorded_monitors

        try:
            forced = parse_duration(interval) if interval else None
        except ValueError as exc:
            fail(f"--interval: {exc}")
        session = open_session(env, act=not no_actions)
        out = console()
        due: dict[str, float] = {}
        passes = 0
        try:
            while True:
                monitors = recorded_monitors(session.store)
                names = [name] if name else sorted(monitors)
                now = time.monotonic()
                ready = [n for n in names if due.get(n, 0.0) <= now]
                if ready:
                    run_all(session, ready, False, False)
                    for n in ready:
                        schedule = (monitors[n].spec.get("schedule") if n in monitors else None) or "15m"
                        due[n] = time.monotonic() + (forced or parse_duration(schedule))
                    passes += 1
                    if iterations is not None and passes >= iterations:
                        return
                wait = max(0.05, min(due.get(n, 0.0) for n in names) - time.monotonic()) if names else 60.0
                time.sleep(min(wait, 60.0))
        except KeyboardInterrupt:
            out.print("Stopped watching.")
        finally:
            session.close()

    @monitor_app.command("report")
    @handles_errors
    def report(name: Optional[str] = typer.Argument(None, help="The monitor (default: every monitor with runs)."),
               out_path: Optional[Path] = typer.Option(None, "--out", "-o", help="The HTML file (one monitor) or "
                                                       "folder (several). Default: .ml/reports/<monitor>.html"),
               runs: int = typer.Option(200, "--runs", min=1, help="Runs shown over time."),
               log_range: Optional[str] = typer.Option(None, "--log", help="'all' or a duration (7d): count the "
                                                       "current distributions over every logged row of that range "
                                                       "instead of the latest run's window.")):
        """Write a self-contained HTML report (aggregates only: small whatever the traffic)."""
        from ml_framework.plugins.monitoring.report import build_report
        from ml_framework.plugins.monitoring.runner import recorded_monitors

        if log_range not in (None, "all"):
            from ml_framework.spec.kinds import parse_duration

            try:
                parse_duration(log_range)
            except ValueError as exc:
                fail(f"--log: {exc}")
        session = open_session()
        try:
            recorded = recorded_monitors(session.store)
            names = [name] if name else sorted(set(recorded) | set(session.mstore.monitors()))
            if not names:
                fail("no monitor has run yet: `ml monitor run` first")
            if name and name not in recorded and name not in session.mstore.monitors():
                from ml_framework.errors import did_you_mean

                hint = did_you_mean(name, sorted(set(recorded) | set(session.mstore.monitors())))
                fail(f"no monitor named {name!r}" + (f" ({hint})" if hint else ""))
            written = []
            for monitor in names:
                html = build_report(session.mstore, session.project.root, monitor, recorded.get(monitor), runs=runs,
                                    log_range=log_range, cost=_deployment_cost(session, recorded.get(monitor)))
                if out_path is None:
                    path = session.project.root / ".ml" / "reports" / f"{monitor}.html"
                elif len(names) > 1 or out_path.is_dir():
                    path = out_path / f"{monitor}.html"
                else:
                    path = out_path
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(html, encoding="utf-8")
                written.append((monitor, path, len(html.encode())))
        finally:
            session.close()
        for monitor, path, size in written:
            console().print(f"Wrote {_esc(path)} ({size / 1024:.1f} KB) for monitor.{_esc(monitor)}")

    @monitor_app.command("history")
    @handles_errors
    def history(name: Optional[str] = typer.Argument(None, help="Only this monitor."),
                limit: int = typer.Option(20, "--limit", "-n"),
                as_json: bool = typer.Option(False, "--json")):
        """Past runs: when, status, rows, drifted features, actions."""
        session = open_session()
        try:
            runs = session.mstore.runs(name, limit=limit)
            features = session.mstore.drifted([run["run_id"] for run in runs])
        finally:
            session.close()
        for run in runs:
            run["drifted"] = features.get(run["run_id"], [])
        if as_json:
            typer.echo(json.dumps(runs, indent=2, default=str))
            return
        if not runs:
            console().print("No monitor runs recorded yet.")
            return
        from rich.table import Table

        table = Table()
        columns = ("at (UTC)",) + (() if name else ("monitor",)) + ("status", "versions (rows)", "drifted", "actions")
        for column in columns:
            table.add_column(column, overflow="fold")
        for run in runs:
            versions = ", ".join(f"{c['model_version']} ({c['rows']})" for c in run["checks"]) or "-"
            actions = "; ".join(f"{a['action']} {a['outcome']}" for a in run["actions"]) or "-"
            table.add_row(run["at"][:19].replace("T", " "), *(() if name else (run["monitor"],)),
                          f"[{_STYLE.get(run['status'], '')}]{run['status']}[/]", versions,
                          ", ".join("prediction" if f == "__prediction__" else f for f in run["drifted"]) or "-",
                          actions)
        console().print(table)

    @monitor_app.command("metrics")
    @handles_errors
    def metrics(serve: Optional[int] = typer.Option(None, "--serve", min=1, max=65535, metavar="PORT",
                                                    help="Serve GET /metrics on this port until Ctrl-C."),
                host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on with --serve.")):
        """Print the drift/performance gauges (Prometheus text), or serve them."""
        from ml_framework.plugins.monitoring.gauges import render_gauges, serve_metrics

        session = open_session()
        try:
            if serve is None:
                typer.echo(render_gauges(session.mstore), nl=False)
                return
            console().print(f"Serving monitor gauges on http://{host}:{serve}/metrics (Ctrl-C to stop)")
            try:
                serve_metrics(session.mstore, host, serve)
            except KeyboardInterrupt:
                console().print("Stopped.")
        finally:
            session.close()

    return monitor_app


def _app() -> typer.Typer:
    from ml_framework.cli import kit

    return _build(kit.project_and_registry, kit.handles_errors, kit.console, kit.fail)


app = _app()  # `ml monitor` (contributed by the monitoring plugin)
