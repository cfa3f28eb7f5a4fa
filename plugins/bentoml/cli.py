"""`ml package DEPLOYMENT`: the served version as a Bento (an image where a container engine runs) and
Kubernetes manifests for it (plugins/bentoml/package.py does the work)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Optional

import typer

from ml_framework.cli.kit import console, escape, fail, handles_errors

__all__ = ["package"]


def _engine_ready() -> bool:
    docker = shutil.which("docker")
    if docker is None:
        return False
    try:
        return subprocess.run([docker, "info"], capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


@handles_errors
def package(
    deployment: str = typer.Argument(..., help="The deployment: fraud-api, deployment.fraud-api or deployment/fraud-api."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Where to write the Bento's source and the manifests "
                                       "(default: dist/DEPLOYMENT)."),
    image: bool = typer.Option(False, "--image", help="Also build the container image (`bentoml containerize`); needs a "
                               "running container engine."),
    image_name: Optional[str] = typer.Option(None, "--image-name", help="The image reference the manifests run "
                                             "(default: the Bento's tag, as `bentoml containerize` names it)."),
    namespace: Optional[str] = typer.Option(None, "--namespace", "-n", help="Kubernetes namespace of the manifests."),
    replicas: int = typer.Option(2, "--replicas", min=1, help="Replicas (and the autoscaler's minimum)."),
    max_replicas: int = typer.Option(6, "--max-replicas", min=1, help="The autoscaler's maximum."),
    memory: str = typer.Option("1Gi", "--memory", help="Memory request and limit of each pod."),
    wheel: Optional[Path] = typer.Option(None, "--wheel", help="The ml wheel to put in the Bento (default: built "
                                         "from ml's source tree)."),
):
    """Package a deployment's served version: a Bento (`bentoml build`), optionally its image, and Kubernetes
    manifests (Deployment, Service, autoscaler, probes, secrets by reference), checked against Kubernetes' schemas."""
    from ml_framework.cli.kit import project_and_registry

    from .package import manifests, package_deployment, validate_manifests, write_manifests

    project, _ = project_and_registry()
    name = deployment.replace("/", ".").split(".", 1)[1] if deployment.lower().startswith("deployment") else deployment
    address = f"deployment.{name}"
    store = project.open_state()
    try:
        record = store.get(address)
    finally:
        store.close()
    if record is None:
        fail(f"{address} is not in state: apply it first (`ml apply`)")
    if record.backend != "bentoml":
        fail(f"{address} is served by {record.backend!r}; `ml package` packages bentoml deployments")
    if image and not _engine_ready():  # found out before a minute of building
        fail("--image: no container engine answers (`docker info` failed); build the Bento without --image and "
             "run `bentoml containerize TAG` where Docker runs")
    out = out or project.root / "dist" / name
    err = console(stderr=True)
    built = package_deployment(project.root, record, out, wheel=wheel,
                               progress=lambda m: err.print(f"[dim]{escape(address)}: {escape(m)}[/dim]"))
    reference = image_name or built.bento_tag
    if image:
        from .process import _environment

        err.print(f"[dim]{escape(address)}: bentoml containerize {escape(built.bento_tag)}[/dim]")
        done = subprocess.run([sys.executable, "-m", "bentoml", "containerize", built.bento_tag, "-t", reference],
                              env=_environment(project_dir=project.root), capture_output=True, text=True)
        if done.returncode != 0:
            fail(f"bentoml containerize failed: {(done.stderr or done.stdout).strip()[-400:]}")
        built.image = reference
    auth = (record.spec or {}).get("auth") or {}
    secret_note = []
    if auth.get("api_keys_env") or auth.get("api_keys_file"):
        key = auth.get("api_keys_env") or "keys"
        secret_note = [f"Secret {name}-api-keys (key {key!r}) holds the API keys: kubectl create secret generic "
                       f"{name}-api-keys --from-file={key}=PATH"]
    path = write_manifests(manifests(record, built.bento_tag, image=reference, namespace=namespace, replicas=replicas,
                                     max_replicas=max_replicas, memory=memory), built.manifests, name, secret_note)
    problem = validate_manifests(path)
    if problem:
        fail(f"{path}: the manifests do not match Kubernetes' schema: {problem}")
    out_console = console()
    out_console.print(f"[green]Packaged {escape(address)}[/green] ({escape(str(record.outputs.get('stable', {}).get('version')))})")
    out_console.print(f"  Bento      {escape(built.bento_tag)}   (bentoml get {escape(built.bento_tag)}; source {escape(str(built.source))})")
    out_console.print(f"  image      {escape(built.image or reference)}"
                      + ("" if built.image else f"   (not built: bentoml containerize {escape(built.bento_tag)})"))
    out_console.print(f"  manifests  {escape(str(path))}   (kubectl apply -f {escape(str(path))})")
    for line in secret_note:
        out_console.print(f"  secret     {escape(line)}")
    for note in built.notes:
        out_console.print(f"[yellow]Note:[/yellow] {escape(note)}")
