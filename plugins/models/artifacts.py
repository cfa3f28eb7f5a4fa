"""Trained models in BentoML's local model store (so `bentoml models list` shows them).

Each project has its own BentoML home, ``<project>/.ml/bentoml`` (models under ``models/``), so two
projects — or two copies of one — never see, overwrite or delete each other's models (BentoML itself has
one global home, bentoml#3290). A store is shared only on purpose: ``BENTOML_HOME`` set in the
environment (BentoML's own convention), or ``backends.bentoml.home`` in ml.yaml (a path, relative to
the project, ``${VAR}`` expanded), which wins. In a shared store, model names are namespaced by the
project (``<project>-<path hash>.<model>``) and a project deletes only its own namespace's models.
Without a project (inside a service process that ml started) the home is ``$BENTOML_HOME``, which ml
sets. Homes are resolved on every call: BentoML caches the home at first use, which would pin one
process (a test run) to the first home it saw. BentoML is imported only here, only when a model is saved or deleted; checking
that a model exists is a file-system test (cheap enough for every `ml plan`). BentoML's private
internals (ModelStore, ModelContext, create's `_model_store`) are reached through
ml_framework.plugins.compat.bentoml only.
"""

from __future__ import annotations

import os
import shutil
import threading
import warnings
from pathlib import Path
from typing import Any, Callable, Mapping

from ml_framework.plugins.compat.bentoml import create_model, model_context, model_store

__all__ = ["bentoml_home", "store_home", "store_is_shared", "namespace", "save_model", "model_exists", "delete_models",
           "artifact_dir", "bento_name"]

_STORES: dict[str, Any] = {}
_GUARD = threading.Lock()


def bentoml_home(project_dir: Path | str | None = None) -> Path:
    """The BentoML home of the project at ``project_dir`` (see the module doc); without one, $BENTOML_HOME."""
    if project_dir is None:
        return Path(os.path.expandvars(os.path.expanduser(os.environ.get("BENTOML_HOME") or "~/bentoml")))
    return store_home(project_dir)


_HOMES: dict[tuple, Path] = {}


def store_home(project_dir: Path | str) -> Path:
    root = Path(project_dir).resolve()
    config = root / "ml.yaml"
    try:
        st = config.stat()
        stamp = (st.st_mtime_ns, st.st_size)
    except OSError:
        stamp = None
    key = (str(root), stamp, os.environ.get("BENTOML_HOME"))
    home = _HOMES.get(key)
    if home is None:
        configured = _configured_home(root) if stamp else None
        if configured:
            home = Path(os.path.expandvars(os.path.expanduser(configured)))
            home = home if home.is_absolute() else root / home
        elif os.environ.get("BENTOML_HOME"):
            home = Path(os.path.expandvars(os.path.expanduser(os.environ["BENTOML_HOME"])))
        else:
            home = root / ".ml" / "bentoml"
        _HOMES[key] = home = home.resolve()
    return home


def _configured_home(root: Path) -> str | None:
    from ml_framework.errors import MLError
    from ml_framework.project import Project

    try:
        settings = Project.load(root).backends.get("bentoml") or {}
    except MLError:
        return None
    value = settings.get("home") if isinstance(settings, Mapping) else None
    return str(value) if value else None


def store_is_shared(project_dir: Path | str) -> bool:
    """True when the project's store lies outside the project (other projects may use it)."""
    root = Path(project_dir).resolve()
    home = store_home(root)
    return not (home == root or root in home.parents)


def namespace(project_dir: Path | str | None) -> str:
    """The prefix of this project's model names in a shared store ('' in its own store)."""
    if project_dir is None or not store_is_shared(project_dir):
        return ""
    import hashlib
    import re

    root = Path(project_dir).resolve()
    slug = re.sub(r"[^a-z0-9_]+", "_", root.name.lower()).strip("_") or "project"
    return f"{slug}-{hashlib.sha256(str(root).encode()).hexdigest()[:6]}."


def bento_name(model: str, project_dir: Path | str | None = None) -> str:
    """A Model name as a BentoML tag name: lower case (BentoML refuses upper case), namespaced by the
    project in a shared store."""
    return namespace(project_dir) + model.lower()


def _store(project_dir: Path | str | None = None):
    os.environ.setdefault("BENTOML_DO_NOT_TRACK", "True")
    root = bentoml_home(project_dir) / "models"
    key = str(root)
    with _GUARD:
        store = _STORES.get(key)
        if store is None:
            root.mkdir(parents=True, exist_ok=True)
            store = _STORES[key] = model_store(key)
        return store


def artifact_dir(tag: str, project_dir: Path | str | None = None) -> Path:
    name, _, version = tag.partition(":")
    return bentoml_home(project_dir) / "models" / name / version


def model_exists(tag: str | None, project_dir: Path | str | None = None) -> bool:
    return bool(tag) and (artifact_dir(tag, project_dir) / "model.yaml").is_file()


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _metadata(value: Any) -> Any:
    """BentoML metadata takes basic types only: drop None values, stringify the rest it would refuse."""
    if isinstance(value, Mapping):
        return {str(k): _metadata(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [_metadata(v) for v in value if v is not None]
    if isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def save_model(name: str, write: Callable[[Callable[[str], str]], None], *, module: str, framework: str,
               versions: Mapping[str, str], labels: Mapping[str, str], metadata: Mapping[str, Any],
               signatures: Mapping[str, Any] | None = None, project_dir: Path | str | None = None) -> tuple[str, int]:
    """Create a model in the store; ``write(path_of)`` writes its files. Returns (tag, size in bytes)."""
    os.environ.setdefault("BENTOML_DO_NOT_TRACK", "True")
    context = model_context(framework, versions)  # imports BentoML (outside the filter below, as before)
    with warnings.catch_warnings():  # BentoML's own dependencies warn about their deprecations on save
        warnings.simplefilter("ignore", DeprecationWarning)
        return _create(name, write, context=context, module=module, labels=labels, metadata=metadata,
                       signatures=signatures, project_dir=project_dir)


def _create(name, write, *, context, module, labels, metadata, signatures, project_dir=None):
    with create_model(
        bento_name(name, project_dir), module=module, api_version="v1",
        signatures=dict(signatures or {"predict": {"batchable": True, "batch_dim": 0}}),
        labels=dict(labels), metadata=_metadata(metadata), context=context,
        store=_store(project_dir),
    ) as model:
        write(model.path_of)
    tag = str(model.tag)
    return tag, _size(artifact_dir(tag, project_dir))


def delete_models(tags, project_dir: Path | str | None = None) -> list[str]:
    """Delete these tags from the project's store; already-missing ones are fine. In a shared store, a tag
    of another project's namespace (a copy of a project shares its recorded tags) is kept. Returns the
    tags deleted."""
    deleted = []
    mine = namespace(project_dir)
    shared = project_dir is not None and store_is_shared(project_dir)
    for tag in tags:
        if not tag or not artifact_dir(tag, project_dir).exists():
            continue
        if shared and not tag.startswith(mine):
            continue  # not this project's model: another project (or the original of a copy) may serve it
        try:
            _store(project_dir).delete(tag)
        except Exception:  # a half-written folder BentoML cannot read: remove it directly
            shutil.rmtree(artifact_dir(tag, project_dir), ignore_errors=True)
        deleted.append(tag)
    return deleted
