"""The Feast repository the backend manages: its files, its lock and one cached FeatureStore.

Files in the repository:
  feature_store.yaml   project, registry, provider, offline store: the user's; ``online_store`` is
                       rewritten by a FeatureStore spec when one exists
  ml_generated.json    the applied definitions (see compile.py), the source of the module below,
                       and the online-store blocks applied by FeatureStore specs
  ml_generated.py      the Feast objects as Python, regenerated on every apply/delete (codegen.py)

All changes to the registry and these files happen under one lock per repository: a thread lock (the
engine applies resources in parallel) plus an exclusive file lock (another `ml` process; Feast's file
registry has no lock of its own, feast-dev/feast#2176).
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from pathlib import Path
from typing import Any, ContextManager, Iterator

import yaml

from ml_framework.plugins.compat.feast import (DUCKDB_STORES, atomic_registry_writes, duckdb_reads_from_repo,
                                               plan_infra, recording_infra_on_commit)

__all__ = ["FeastRepo", "new_feature_store", "MANIFEST_FILE", "MODULE_FILE", "SECTIONS", "DEFAULT_ONLINE_STORE"]

MANIFEST_FILE = "ml_generated.json"
MODULE_FILE = "ml_generated.py"
SECTIONS = ("feature_stores", "entities", "sources", "feature_views", "feature_services", "on_demand_feature_views",
            "renamed_views")  # renamed_views: old name -> new (kind: Moved), followed by lookups (rename.py)
DEFAULT_ONLINE_STORE = {"type": "sqlite", "path": "data/online_store.db"}
_THREAD_LOCKS: dict[str, threading.RLock] = {}
_THREAD_LOCKS_GUARD = threading.Lock()


class FeastRepo:
    def __init__(self, repo_dir: Path, lock_dir: Path):
        self.dir = Path(repo_dir).resolve()
        self.lock_dir = Path(lock_dir)
        with _THREAD_LOCKS_GUARD:
            self._thread_lock = _THREAD_LOCKS.setdefault(str(self.dir), threading.RLock())
        self._held = threading.local()
        self._store = None
        self._store_key: tuple | None = None

    # -- locking ------------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Exclusive access to the registry and the generated files (re-entrant within a thread)."""
        with self._thread_lock:
            depth = getattr(self._held, "depth", 0)
            if depth:
                self._held.depth = depth + 1
                try:
                    yield
                finally:
                    self._held.depth -= 1
                return
            self.lock_dir.mkdir(parents=True, exist_ok=True)
            with open(self.lock_dir / "feast.lock", "a+") as fh:
                _flock(fh)
                self._held.depth = 1
                try:
                    yield
                finally:
                    self._held.depth = 0

    # -- feature_store.yaml -----------------------------------------------------------------------------
    @property
    def config_file(self) -> Path:
        return self.dir / "feature_store.yaml"

    def read_config(self) -> dict[str, Any]:
        from ml_framework.errors import PluginError

        try:
            data = yaml.safe_load(self.config_file.read_text())
        except OSError as exc:
            raise PluginError(f"feast: cannot read {self.config_file}: {exc.strerror}",
                              hint="set backends.feast.repo in ml.yaml to the Feast repository") from exc
        except yaml.YAMLError as exc:
            raise PluginError(f"feast: {self.config_file} is not valid YAML: {exc}") from exc
        if not isinstance(data, dict) or "project" not in data:
            raise PluginError(f"feast: {self.config_file} must be a mapping with a 'project'")
        return data

    def project(self) -> str:
        return str(self.read_config()["project"])

    def online_store_config(self) -> dict[str, Any]:
        value = self.read_config().get("online_store") or dict(DEFAULT_ONLINE_STORE)
        return {"type": value} if isinstance(value, str) else dict(value)

    def write_online_store(self, online_store: dict[str, Any], owner: str) -> bool:
        """Rewrite the online_store block; returns True when the file changed."""
        data = self.read_config()
        if data.get("online_store") == online_store:
            return False
        data["online_store"] = online_store
        header = (f"# Feast repository configuration. online_store is managed by `ml` ({owner});\n"
                  f"# change it in the specs, not here.\n")
        _atomic_write(self.config_file, header + yaml.safe_dump(data, sort_keys=False))
        return True

    # -- the FeatureStore object ------------------------------------------------------------------------
    def store(self):
        """One FeatureStore per repository, rebuilt when feature_store.yaml changes."""
        st = self.config_file.stat()
        key = (st.st_size, st.st_mtime_ns, st.st_ino)
        if self._store is None or key != self._store_key:
            self._store = new_feature_store(self.dir)
            self._store_key = key
        return self._store

    def record_infra(self, refresh: bool = True) -> None:
        """Record the online-store tables in the registry as `feast apply` does, so `feast plan` is clean."""
        store = self.store()
        registry = store.registry
        if refresh:
            registry.refresh(project=store.project)
        infra = plan_infra(store, registry)
        registry.update_infra(infra, store.project, commit=True)

    def infra_recorded_on_commit(self, store) -> ContextManager[None]:
        """Within: the registry's commit also records the online-store tables, in the same write.

        `FeatureStore.apply` creates the tables and commits the registry without recording them (the
        `feast apply` CLI records them, so `feast plan` expects them); recording them afterwards would
        rewrite the whole registry file once more. `feast apply` too writes both in one commit. Patches
        this registry object only: use it under the repository lock (compat.feast.recording_infra_on_commit)."""
        return recording_infra_on_commit(store)

    # -- applied definitions and the generated module ----------------------------------------------------
    @property
    def manifest_file(self) -> Path:
        return self.dir / MANIFEST_FILE

    def read_manifest(self) -> dict[str, dict[str, Any]]:
        try:
            data = json.loads(self.manifest_file.read_text())
        except (OSError, ValueError):
            data = {}
        return {section: dict(data.get(section, {})) for section in SECTIONS}

    def write_manifest(self, manifest: dict[str, dict[str, Any]]) -> None:
        from .codegen import render_module

        clean = {section: dict(sorted(manifest.get(section, {}).items())) for section in SECTIONS}
        text = json.dumps({"format_version": 1, **clean}, indent=2, sort_keys=True) + "\n"
        module = render_module(clean)
        if not self.manifest_file.exists() or self.manifest_file.read_text() != text:
            _atomic_write(self.manifest_file, text)
        module_file = self.dir / MODULE_FILE
        if not module_file.exists() or module_file.read_text() != module:
            _atomic_write(module_file, module)


def new_feature_store(repo_dir: Path):
    """A FeatureStore for `repo_dir`, without the import-time warnings Feast's own modules trigger."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"Field name .* shadows an attribute", category=UserWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        from feast import FeatureStore

        atomic_registry_writes()  # readers beside a registry write never see half of it
        store = FeatureStore(repo_path=str(repo_dir))
    if getattr(store.config.offline_store, "type", None) in DUCKDB_STORES:
        duckdb_reads_from_repo()
    return store


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


def _flock(fh) -> None:
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: thread lock only
        return
    fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
