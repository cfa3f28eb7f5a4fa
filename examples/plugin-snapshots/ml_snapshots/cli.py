"""`ml snapshots`: the recorded snapshots and their versions on disk (built with ml's CLI kit)."""

from __future__ import annotations

import json

import typer

from ml_framework.cli import kit

from .provider import snapshot_dir

__all__ = ["app"]

app = typer.Typer(help="Versioned copies of data files: list, show.", no_args_is_help=True)


def _records():
    project, _ = kit.project_and_registry()
    store = project.open_state()
    try:
        return project, [r for r in store.list_resources() if r.kind == "DataSnapshot"]
    finally:
        store.close()


@app.command("list")
@kit.handles_errors
def list_(as_json: bool = typer.Option(False, "--json", help="Print as JSON.")):
    """Every applied snapshot: its current hash and size."""
    _, records = _records()
    rows = [{"name": r.spec["name"], "sha256": r.outputs.get("sha256"), "bytes": r.outputs.get("bytes"),
             "versions": r.outputs.get("versions")} for r in records]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    out = kit.console()
    if not rows:
        out.print("No snapshots recorded. Apply a DataSnapshot spec with `ml apply`.")
    for row in rows:
        out.print(f"{row['name']}  {str(row['sha256'])[:12]}  {row['bytes']:,} bytes  ({row['versions']} kept)")


@app.command("show")
@kit.handles_errors
def show(name: str = typer.Argument(..., help="The snapshot's name.")):
    """The versions of one snapshot kept on disk, newest last."""
    from ml_framework.errors import MLError, did_you_mean

    project, records = _records()
    names = [r.spec["name"] for r in records]
    if name not in names:
        raise MLError(f"no snapshot named {name!r} is recorded", hint=did_you_mean(name, names))
    index = snapshot_dir(project.root, name) / "index.json"
    versions = json.loads(index.read_text()) if index.is_file() else []
    for version in versions:
        kit.console().print(f"{version['sha256'][:12]}  {version['file']}  {version['bytes']:,} bytes")
