"""`ml package`: a deployment's served version as a Bento (and, where a container engine runs, an image),
with Kubernetes manifests for it.

The Bento is built by ``bentoml build`` from what `ml apply` generated for the deployment (service.py,
config.json, control.json), made portable: paths become relative to the Bento, the project's Feast
repository travels inside it (``project/``), API keys are read from a mounted Secret or an environment
variable fed by one, and the Python packages are pinned to the versions this project runs, with `ml`
itself as a wheel built from its installed source. The manifests (Deployment, Service,
HorizontalPodAutoscaler) reference the image by the Bento's tag and secrets by name, never by value.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from ml_framework.errors import MLError

__all__ = ["PackageError", "Package", "package_deployment", "manifests", "KEYS_MOUNT"]

KEYS_MOUNT = "/etc/ml/api-keys"  # where the API-keys Secret is mounted (auth.api_keys_file)
_KEYS_FILE = "keys"
PORT = 3000  # what a containerized Bento listens on
_SERVING_PACKAGES = ("bentoml", "numpy", "pandas", "pyarrow", "pydantic", "typer", "rich", "pyyaml", "omegaconf",
                     "hydra-core", "sqlalchemy", "jinja2", "ruamel.yaml", "jmespath", "psycopg")
_FEATURE_PACKAGES = ("feast",)
_FLAVOR_PACKAGES = {"lightgbm": ("lightgbm",), "torch": ("torch",), "sklearn": ("scikit-learn",)}


class PackageError(MLError):
    """The deployment cannot be packaged (not applied, mid-rollout, no source of `ml` to build a wheel)."""


@dataclass
class Package:
    bento_tag: str
    source: Path  # the Bento's build folder (kept: what was built)
    manifests: Path
    models: list[str]
    packages: list[str]
    notes: list[str] = field(default_factory=list)
    image: str | None = None


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


_EXTRAS = {"psycopg": "psycopg[binary]"}  # the extras ml itself asks for


def _pinned(names) -> list[str]:
    pins = []
    for name in names:
        version = _version(name)
        if version is not None:  # 2.13.0+cpu -> 2.13.0 (the index gives the build)
            pins.append(f"{_EXTRAS.get(name, name)}=={version.split('+')[0]}")
    return pins


def _ml_wheel(into: Path, wheel: Path | None) -> Path:
    """`ml` as a wheel: the one given, or built from the source tree it is installed from (editable)."""
    into.mkdir(parents=True, exist_ok=True)
    if wheel is not None:
        if not wheel.is_file() or wheel.suffix != ".whl":
            raise PackageError(f"--wheel {wheel}: not a wheel file")
        return Path(shutil.copy2(wheel, into / wheel.name))
    import ml_framework

    root = Path(ml_framework.__file__).resolve().parents[1]
    if not (root / "pyproject.toml").is_file() or not (root / "setup.py").is_file():
        raise PackageError("cannot build a wheel of ml: it is not installed from a source tree",
                           hint="pass --wheel FILE with the ml wheel your images should run")
    with tempfile.TemporaryDirectory(prefix="ml-wheel-") as tmp:
        source = Path(tmp) / "src"
        source.mkdir()
        for name in ("pyproject.toml", "setup.py", "README.md", "framework", "plugins"):
            path = root / name
            if path.is_dir():
                shutil.copytree(path, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            elif path.is_file():
                shutil.copy2(path, source / name)
        built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                                "-w", str(into), str(source)], capture_output=True, text=True, timeout=600)
    if built.returncode != 0:
        raise PackageError(f"building the ml wheel failed: {(built.stderr or built.stdout).strip()[-400:]}")
    found = sorted(into.glob("ml_framework-*.whl"))
    if not found:
        raise PackageError("building the ml wheel produced no ml_framework-*.whl")
    return found[-1]


def _portable_config(config: dict[str, Any], uses_features: bool) -> dict[str, Any]:
    config = dict(config)
    config["service_dir"] = "."  # relative paths are resolved against the Bento's folder (runtime.load_config)
    config["project_dir"] = "project" if uses_features else "."
    config["log_dir"] = f"predictions/{config['deployment']}"
    return config


def _portable_control(control: dict[str, Any]) -> dict[str, Any]:
    control = json.loads(json.dumps(control))
    auth = ((control.get("guards") or {}).get("auth") or {})
    if auth.get("file"):
        auth["file"] = f"{KEYS_MOUNT}/{_KEYS_FILE}"
    control.pop("written_at", None)
    return control


def _copy_feature_repo(project_dir: Path, repo: Path, into: Path, notes: list[str]) -> None:
    """The Feast repository as `project/feature_repo`, with an `ml.yaml` that points at it."""
    target = into / "feature_repo"
    shutil.copytree(repo, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.tmp", "*.parquet", "*.csv"))
    (into / "ml.yaml").write_text("# Written by `ml package`: the Feast repository the service reads online features from.\n"
                                  "backends:\n  feast: {repo: feature_repo}\n", encoding="utf-8")
    import yaml

    settings = yaml.safe_load((repo / "feature_store.yaml").read_text(encoding="utf-8")) or {}
    online = settings.get("online_store") or {}
    kind = online.get("type", "sqlite") if isinstance(online, dict) else str(online)
    if kind == "sqlite":
        notes.append("the online store is SQLite, a file on this machine: the Bento carries a copy as of now, which "
                     "no materialization will refresh; for a cluster, use a shared online store (e.g. Redis: "
                     "specs/env/redis.yaml) and apply with it before packaging")


def _deployment_settings(record) -> tuple[dict, dict]:
    spec = dict(record.spec or {})
    return spec, dict(spec.get("serving") or {})


def package_deployment(project_dir: Path, record, out: Path, *, wheel: Path | None = None,
                       progress=lambda message: None) -> Package:
    """Build the Bento of ``record`` (a deployment's state record) and write its manifests under ``out``."""
    from .codegen import service_dir
    from .process import build_bento

    outputs = dict(record.outputs or {})
    name = str(record.spec.get("name") or record.address.partition(".")[2])
    if record.status != "applied" or not (outputs.get("stable") or {}).get("tag"):
        raise PackageError(f"{record.address} is not applied yet (nothing serves)", hint="run `ml apply` first")
    if (outputs.get("rollout") or {}).get("phase") in ("running", "paused", "interrupted"):
        raise PackageError(f"{record.address} is in the middle of a rollout: package it once the rollout has "
                           "finished (`ml apply` resumes it)")
    folder = service_dir(project_dir, name)
    if not (folder / "config.json").is_file():
        raise PackageError(f"{record.address}: the service files are missing ({folder})",
                           hint="run `ml apply` to write them again")
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    control = json.loads((folder / "control.json").read_text(encoding="utf-8"))
    uses_features = bool(config.get("feature_access"))
    notes: list[str] = []

    source = out / "bento"
    if source.exists():
        shutil.rmtree(source)
    source.mkdir(parents=True)
    shutil.copy2(folder / "service.py", source / "service.py")
    (source / "config.json").write_text(json.dumps(_portable_config(config, uses_features), indent=2, sort_keys=True),
                                        encoding="utf-8")
    (source / "control.json").write_text(json.dumps(_portable_control(control), indent=2, sort_keys=True),
                                         encoding="utf-8")
    include = ["service.py", "config.json", "control.json"]
    if uses_features:
        from ml_framework.project import Project

        from ml_framework.plugins.feast.settings import FeastSettings

        project = Project.load(project_dir)
        repo = FeastSettings.model_validate(project.backends.get("feast") or {}).repo_path(project_dir)
        _copy_feature_repo(project_dir, repo, source / "project", notes)
        include.append("project/**")

    models = [control["stable"]["tag"]]
    frameworks = set()
    for tag in models:
        framework = _model_framework(tag, project_dir)
        if framework:
            frameworks.add(framework)
    packages = _pinned(_SERVING_PACKAGES + (_FEATURE_PACKAGES if uses_features else ())
                       + tuple(p for f in sorted(frameworks) for p in _FLAVOR_PACKAGES.get(f, (f,))))
    if uses_features and _feature_store_type(source / "project" / "feature_repo") == "redis":
        packages += _pinned(("redis",))
    progress("building a wheel of ml")
    built_wheel = _ml_wheel(source / "wheels", wheel)
    python: dict[str, Any] = {"packages": packages, "wheels": [f"wheels/{built_wheel.name}"], "lock_packages": False}
    if "torch" in frameworks:
        python["extra_index_url"] = ["https://download.pytorch.org/whl/cpu"]  # the CPU build, not GBs of CUDA
    import yaml

    bentofile = {"service": f"service:{config.get('class_name') or _service_class(source / 'service.py')}",
                 "include": include + [f"wheels/{built_wheel.name}"],
                 "labels": {"ml.deployment": name, "ml.model_version": str(control["stable"].get("version"))},
                 "python": python,
                 "docker": {"python_version": f"{sys.version_info.major}.{sys.version_info.minor}", "distro": "debian"}}
    (source / "bentofile.yaml").write_text(yaml.safe_dump(bentofile, sort_keys=False), encoding="utf-8")
    progress("bentoml build")
    tag = build_bento(source, project_dir=project_dir)
    return Package(bento_tag=tag, source=source, manifests=out / "k8s", models=models, packages=packages, notes=notes)


def _service_class(service_py: Path) -> str:
    import re

    found = re.search(r"^Service = (\w+)$", service_py.read_text(encoding="utf-8"), re.M)
    if not found:
        raise PackageError(f"{service_py}: not a service generated by ml (no `Service = ...` line)")
    return found.group(1)


def _feature_store_type(repo: Path) -> str | None:
    import yaml

    path = repo / "feature_store.yaml"
    if not path.is_file():
        return None
    online = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("online_store") or {}
    return online.get("type", "sqlite") if isinstance(online, dict) else str(online)


def _model_framework(tag: str, project_dir: Path) -> str | None:
    """The ML framework of a model in the project's BentoML store (its saved context)."""
    from ml_framework.plugins.models.artifacts import bentoml_home

    info = Path(bentoml_home(project_dir)) / "models" / tag.split(":")[0] / tag.split(":")[1] / "model.yaml"
    if not info.is_file():
        return None
    import yaml

    data = yaml.safe_load(info.read_text(encoding="utf-8")) or {}
    return ((data.get("context") or {}).get("framework_name")) or None


# -- Kubernetes ---------------------------------------------------------------------------------------------


def manifests(record, bento_tag: str, *, image: str | None = None, namespace: str | None = None, replicas: int = 2,
              max_replicas: int = 6, cpu: str | None = None, memory: str = "1Gi") -> list[dict[str, Any]]:
    """Deployment, Service and HorizontalPodAutoscaler for the Bento's image; secrets by reference."""
    spec, serving = _deployment_settings(record)
    name = str(spec.get("name"))
    workers = int(serving.get("workers") or 1)
    labels = {"app.kubernetes.io/name": name, "app.kubernetes.io/managed-by": "ml",
              "ml/model-version": _label_value(bento_tag.split(":")[-1])}
    selector = {"app.kubernetes.io/name": name}
    meta = {"name": name, "labels": labels, **({"namespace": namespace} if namespace else {})}
    container: dict[str, Any] = {
        "name": "service",
        "image": image or bento_tag,
        "ports": [{"name": "http", "containerPort": PORT}],
        "readinessProbe": {"httpGet": {"path": "/readyz", "port": "http"}, "periodSeconds": 5, "failureThreshold": 3},
        "livenessProbe": {"httpGet": {"path": "/livez", "port": "http"}, "initialDelaySeconds": 30,
                          "periodSeconds": 10},
        "startupProbe": {"httpGet": {"path": "/readyz", "port": "http"}, "periodSeconds": 5, "failureThreshold": 60},
        "resources": {"requests": {"cpu": cpu or str(workers), "memory": memory},
                      "limits": {"memory": memory}},
        "env": [{"name": "BENTOML_DO_NOT_TRACK", "value": "True"}],
    }
    volumes: list[dict[str, Any]] = []
    auth = spec.get("auth") or {}
    secret = f"{name}-api-keys"
    if auth.get("api_keys_env"):
        container["env"].append({"name": auth["api_keys_env"], "valueFrom": {"secretKeyRef": {
            "name": secret, "key": auth["api_keys_env"]}}})
    if auth.get("api_keys_file"):
        container["volumeMounts"] = [{"name": "api-keys", "mountPath": KEYS_MOUNT, "readOnly": True}]
        volumes.append({"name": "api-keys", "secret": {"secretName": secret, "items": [
            {"key": _KEYS_FILE, "path": _KEYS_FILE}]}})
    pod: dict[str, Any] = {"containers": [container]}
    if volumes:
        pod["volumes"] = volumes
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta,
        "spec": {"replicas": replicas, "selector": {"matchLabels": selector},
                 "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
                 "template": {"metadata": {"labels": labels, "annotations": {
                     "prometheus.io/scrape": "true", "prometheus.io/path": "/metrics", "prometheus.io/port": str(PORT)}},
                     "spec": pod}}}
    service = {"apiVersion": "v1", "kind": "Service", "metadata": meta,
               "spec": {"selector": selector, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}}
    autoscaler = {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": meta,
                  "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
                           "minReplicas": replicas, "maxReplicas": max(max_replicas, replicas),
                           "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {
                               "type": "Utilization", "averageUtilization": 70}}}]}}
    return [deployment, service, autoscaler]


def _label_value(text: str) -> str:
    import re

    value = re.sub(r"[^A-Za-z0-9_.-]", "-", text)[:63].strip("-_.")
    return value or "unknown"


def write_manifests(documents: list[dict[str, Any]], folder: Path, name: str, secrets_note: list[str]) -> Path:
    import yaml

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.yaml"
    header = ["# Written by `ml package`: apply with `kubectl apply -f` once the image is in your registry."]
    header += [f"# {line}" for line in secrets_note]
    path.write_text("\n".join(header) + "\n" + yaml.safe_dump_all(documents, sort_keys=False), encoding="utf-8")
    return path


def validate_manifests(path: Path) -> str | None:
    """Kubernetes' own schemas (kubernetes-validate, offline) over the file: None when valid or the validator
    is not installed (said by the caller), else the first problem."""
    try:
        import kubernetes_validate
    except ImportError:
        return None
    import yaml

    version = kubernetes_validate.latest_version()
    for document in yaml.safe_load_all(path.read_text(encoding="utf-8")):
        try:
            kubernetes_validate.validate(document, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            return f"{document.get('kind')}/{(document.get('metadata') or {}).get('name')}: {exc.message}"
    return None
