"""`ml ui`: serve the project's read-only web view on loopback until interrupted."""

from __future__ import annotations

from typing import Optional

import typer

from ml_framework.cli.kit import console, escape, fail, handles_errors

__all__ = ["ui"]


@handles_errors
def ui(
    port: int = typer.Option(8470, "--port", "-p", min=0, max=65535, help="Port (0: any free one)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (loopback by default: the view has "
                             "no login)."),
    env: Optional[str] = typer.Option(None, "--env", help="Environment overlay the plan page uses (specs/env/NAME.yaml)."),
):
    """Serve a local, read-only web view: the resource graph, the current plan, history, model versions,
    deployments with live status, monitors with their drift and performance plots."""
    from ml_framework.cli.kit import project_and_registry

    from .server import serve

    project, registry = project_and_registry()
    try:
        server = serve(project, registry, host=host, port=port, env=env)
    except OSError as exc:
        fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}")
    address = f"http://{host}:{server.server_address[1]}/"
    if host not in ("127.0.0.1", "localhost", "::1"):
        console(stderr=True).print(f"[yellow]Note:[/yellow] listening on {escape(host)}: the view has no login, so "
                                   "anyone who reaches this address can read the project's specs, plans and history")
    console().print(f"Serving the read-only view of {escape(project.name or project.root.name)} on {escape(address)} "
                    "(Ctrl+C stops it)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
