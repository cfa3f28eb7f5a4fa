"""`ml decisions`: the decision log of the project's deployments — one answered request by the request id
its caller got back, or the requests of a time range (by deployment, model version, caller).

    ml decisions show REQUEST_ID [--deployment NAME] [--json]
    ml decisions list [--deployment NAME] [--since 2h|ISO] [--until ISO] [--version v3] [--caller key:ab12…]
                      [--status 200] [--limit 50] [--json]

Reads the prediction logs (prediction_log.py) of the deployments in state and any left under
``.ml/predictions/``; exit 1 with a clear message for an unknown request id or a malformed range.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterable, Optional

import typer

__all__ = ["app", "find_decision", "query_decisions", "parse_time"]

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_time(text: str, *, option: str, now: datetime | None = None) -> str:
    """An ISO 8601 time, or a duration back from now (``30m``, ``2h``, ``7d``), as ISO 8601 UTC."""
    from ml_framework.errors import MLError

    now = now or datetime.now(timezone.utc)
    found = _DURATION.match(text.strip())
    if found:
        return (now - timedelta(seconds=float(found.group(1)) * _UNITS[found.group(2)])).isoformat(
            timespec="microseconds")
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise MLError(f"{option} {text!r}: expected an ISO 8601 time (2026-12-07T10:00:00Z) or a duration back "
                      "from now (30m, 2h, 7d)") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc).isoformat(timespec="microseconds")


def _deployments(project_dir: Path, store=None, only: str | None = None) -> list[str]:
    names = set()
    if store is not None:
        names |= {r.address.split(".", 1)[1] for r in store.list_resources() if r.kind == "Deployment"}
    root = Path(project_dir) / ".ml" / "predictions"
    if root.is_dir():
        names |= {p.name for p in root.iterdir() if p.is_dir()}
    if only is not None:
        from ml_framework.errors import MLError, did_you_mean

        if only not in names:
            raise MLError(f"no deployment named {only!r} has a decision log", hint=did_you_mean(only, sorted(names))
                          or (f"deployments with a log: {', '.join(sorted(names))}" if names else None))
        return [only]
    return sorted(names)


def find_decision(project_dir: Path, request_id: str, deployments: Iterable[str]) -> dict | None:
    """The answered request ``request_id`` (the newest record of it), or None."""
    from .prediction_log import log_dir

    needle = json.dumps(str(request_id))
    for deployment in deployments:
        directory = log_dir(project_dir, deployment)
        if not directory.is_dir():
            continue
        for path in sorted(directory.glob("*.jsonl"), key=lambda p: (p.stat().st_mtime, p.name), reverse=True):
            try:
                text = path.read_text(encoding="utf-8")
            except OSError:
                continue
            if needle not in text:  # most segments: skipped without parsing a line
                continue
            for line in reversed(text.splitlines()):
                if needle in line:
                    try:
                        record = json.loads(line)
                    except json.JSONDecodeError:
                        continue
                    if str(record.get("request_id")) == str(request_id):
                        return record
    return None


def query_decisions(project_dir: Path, deployments: Iterable[str], *, since: str | None = None,
                    until: str | None = None, version: str | None = None, caller: str | None = None,
                    status: int | None = None, limit: int = 50) -> list[dict]:
    """Records matching every filter, newest first, at most ``limit``."""
    from .prediction_log import iter_predictions

    out: list[dict] = []
    for deployment in deployments:
        for record in iter_predictions(project_dir, deployment):
            ts = str(record.get("ts") or "")
            if (since and ts < since) or (until and ts > until):
                continue
            if version and record.get("model_version") != version:
                continue
            if caller and record.get("caller") != caller:
                continue
            if status is not None and record.get("status") != status:
                continue
            out.append(record)
    out.sort(key=lambda r: str(r.get("ts") or ""), reverse=True)
    return out[:limit]


def _build(project_and_registry, handles_errors, console, fail) -> typer.Typer:
    app = typer.Typer(help="The decision log: answered requests by request id or time range.", no_args_is_help=True)

    def open_state():
        project, _ = project_and_registry()
        return project, project.open_state()

    @app.command("show")
    @handles_errors
    def show(request_id: str = typer.Argument(..., help="The request id the service returned."),
             deployment: Optional[str] = typer.Option(None, "--deployment", "-d", help="Only this deployment."),
             as_json: bool = typer.Option(False, "--json", help="Print JSON.")):
        """One answered request: when, who, which version, the features used, the output, the explanation."""
        project, store = open_state()
        try:
            names = _deployments(project.root, store, deployment)
        finally:
            store.close()
        record = find_decision(project.root, request_id, names)
        if record is None:
            from ml_framework.errors import MLError

            raise MLError(f"no decision with request id {request_id!r} in the decision logs of "
                          f"{', '.join(names) or 'no deployment'}",
                          hint="records older than a deployment's decision_log.retention are dropped; "
                               "`ml decisions list --since 1d` shows recent ones")
        if as_json:
            typer.echo(json.dumps(record, indent=2, default=str))
            return
        out = console()
        out.print(f"[bold]{record.get('request_id')}[/bold]  {record.get('ts')}  deployment {record.get('deployment')}")
        out.print(f"  model {record.get('model')}:{record.get('model_version')} ({record.get('variant')}), "
                  f"status {record.get('status')}, {record.get('latency_ms')} ms, caller {record.get('caller') or '–'}")
        out.print(f"  prediction {record.get('prediction')}" + (f"  error: {record['error']}" if record.get("error") else ""))
        if record.get("entity_keys"):
            out.print("  entity keys: " + ", ".join(f"{k}={v}" for k, v in record["entity_keys"].items()))
        for name, value in (record.get("features") or {}).items():
            out.print(f"    {name} = {value!r}")
        explanation = record.get("explanation") or {}
        if explanation.get("top"):
            out.print(f"  explanation ({explanation.get('output')}: base {explanation.get('base'):.4f} → "
                      f"{explanation.get('raw'):.4f}):")
            for c in explanation["top"]:
                out.print(f"    {c['feature']:<32} {c['contribution']:+.4f}  (value {c.get('value')!r})")

    @app.command("list")
    @handles_errors
    def list_(deployment: Optional[str] = typer.Option(None, "--deployment", "-d", help="Only this deployment."),
              since: Optional[str] = typer.Option(None, "--since", help="ISO 8601 time, or 30m / 2h / 7d back."),
              until: Optional[str] = typer.Option(None, "--until", help="ISO 8601 time, or a duration back."),
              version: Optional[str] = typer.Option(None, "--version", help="Model version, e.g. v3."),
              caller: Optional[str] = typer.Option(None, "--caller", help="key:… as logged (an API key's digest)."),
              status: Optional[int] = typer.Option(None, "--status", help="HTTP status, e.g. 200."),
              limit: int = typer.Option(50, "--limit", "-n", min=1, help="At most this many, newest first."),
              as_json: bool = typer.Option(False, "--json", help="Print JSON (one object per line).")):
        """Answered requests of a time range, newest first, filtered by deployment, version, caller, status."""
        now = datetime.now(timezone.utc)
        lower = parse_time(since, option="--since", now=now) if since else None
        upper = parse_time(until, option="--until", now=now) if until else None
        if lower and upper and lower > upper:
            fail(f"--since {since!r} is after --until {until!r}: nothing can match")
        if version is not None and not re.fullmatch(r"v\d+", version):
            fail(f"--version {version!r}: expected a version such as v3")
        project, store = open_state()
        try:
            names = _deployments(project.root, store, deployment)
        finally:
            store.close()
        found = query_decisions(project.root, names, since=lower, until=upper, version=version, caller=caller,
                                status=status, limit=limit)
        if as_json:
            for record in found:
                typer.echo(json.dumps(record, default=str))
            return
        from rich.table import Table

        table = Table(title=f"{len(found)} decision(s), newest first", title_justify="left")
        for column in ("time (UTC)", "request id", "deployment", "version", "caller", "status", "prediction"):
            table.add_column(column)
        for r in found:
            prediction = r.get("prediction")
            table.add_row(str(r.get("ts", ""))[:23], str(r.get("request_id")), str(r.get("deployment")),
                          str(r.get("model_version") or "–"), str(r.get("caller") or "–"), str(r.get("status")),
                          f"{prediction:.4f}" if isinstance(prediction, float) else str(prediction))
        console().print(table)

    return app


def _app() -> typer.Typer:
    from ml_framework.cli import kit

    return _build(kit.project_and_registry, kit.handles_errors, kit.console, kit.fail)


app = _app()
