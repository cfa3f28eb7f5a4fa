"""Trained models in BentoML's local model store (so `bentoml models list` shows them).

The store is ``$BENTOML_HOME/models`` (default ``~/bentoml/models``), read from the environment on
every call: BentoML itself caches the home at first use, which would pin one process (a test run) to
the first home it saw. BentoML is imported only here, only when a model is saved or deleted; checking
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

__all__ = ["bentoml_home", "save_model", "model_exists", "delete_models", "artifact_dir", "bento_name"]

_STORES: dict[str, Any] = {}
_GUARD = threading.Lock()


def bentoml_home() -> Path:
    return Path(os.path.expandvars(os.path.expanduser(os.environ.get("BENTOML_HOME") or "~/bentoml")))


def bento_name(model: str) -> str:
    """A Model name as a BentoML tag name (lower case; BentoML refuses upper case)."""
    return model.lower()


def _store():
    os.environ.setdefault("BENTOML_DO_NOT_TRACK", "True")
    root = bentoml_home() / "models"
    key = str(root)
    with _GUARD:
        store = _STORES.get(key)
        if store is None:
            root.mkdir(parents=True, exist_ok=True)
            store = _STORES[key] = model_store(key)
        return store


def artifact_dir(tag: str) -> Path:
    name, _, version = tag.partition(":")
    return bentoml_home() / "models" / name / version


def model_exists(tag: str | None) -> bool:
    return bool(tag) and (artifact_dir(tag) / "model.yaml").is_file()


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
               signatures: Mapping[str, Any] | None = None) -> tuple[str, int]:
    """Create a model in the store; ``write(path_of)`` writes its files. Returns (tag, size in bytes)."""
    os.environ.setdefault("BENTOML_DO_NOT_TRACK", "True")
    context = model_context(framework, versions)  # imports BentoML (outside the filter below, as before)
    with warnings.catch_warnings():  # BentoML's own dependencies warn about their deprecations on save
        warnings.simplefilter("ignore", DeprecationWarning)
        return _create(name, write, context=context, module=module, labels=labels, metadata=metadata,
                       signatures=signatures)


def _create(name, write, *, context, module, labels, metadata, signatures):
    with create_model(
        bento_name(name), module=module, api_version="v1",
        signatures=dict(signatures or {"predict": {"batchable": True, "batch_dim": 0}}),
        labels=dict(labels), metadata=_metadata(metadata), context=context,
        store=_store(),
    ) as model:
        write(model.path_of)
    tag = str(model.tag)
    return tag, _size(artifact_dir(tag))


def delete_models(tags) -> list[str]:
    """Delete these tags from the store; already-missing ones are fine. Returns the tags deleted."""
    deleted = []
    for tag in tags:
        if not tag or not artifact_dir(tag).exists():
            continue
        try:
            _store().delete(tag)
        except Exception:  # a half-written folder BentoML cannot read: remove it directly
            shutil.rmtree(artifact_dir(tag), ignore_errors=True)
        deleted.append(tag)
    return deleted
