"""The ``files`` backend of DataSnapshot: copies a file under its content hash.

The six hooks of the ml provider contract; nothing else. The content hash is the fingerprint, so a
changed file is a planned update (a cheap size/mtime check first, the full hash only when they moved).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any, ClassVar, Mapping

from ml_framework.contract import (
    ApplyContext,
    ApplyRequest,
    ApplyResult,
    BaseProvider,
    DeleteRequest,
    FingerprintRequest,
    ReadRequest,
    ReadResult,
)
from ml_framework.errors import MLError

__all__ = ["FilesProvider", "snapshot_dir"]


def snapshot_dir(project_dir: Path, name: str) -> Path:
    return Path(project_dir) / ".ml" / "snapshots" / name


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class FilesProvider(BaseProvider):
    name: ClassVar[str] = "files"
    kinds: ClassVar[tuple[str, ...]] = ("DataSnapshot",)
    capabilities: ClassVar[tuple[str, ...]] = ("configure",)
    version = "0.1.0"

    def __init__(self) -> None:
        self.project_dir = Path.cwd()
        self._hashes: dict[tuple[str, int, int], str] = {}  # (path, size, mtime_ns) -> sha256, per process

    def configure(self, project_dir: Path, settings: Mapping[str, Any]) -> None:
        self.project_dir = Path(project_dir)

    # -- helpers ----------------------------------------------------------------------------------------------
    def _file(self, spec: Mapping[str, Any], upstream_path: str | None = None) -> Path:
        rel = spec.get("path") or upstream_path
        if not rel:
            raise MLError(f"snapshot {spec['name']}: the source's path is not known yet (apply the source first)")
        return self.project_dir / rel

    def _hash(self, path: Path) -> str:
        try:
            stat = path.stat()
        except FileNotFoundError:
            raise MLError(f"{path}: no such file", hint="create it, or fix `path` in the spec") from None
        key = (str(path), stat.st_size, stat.st_mtime_ns)
        if key not in self._hashes:
            self._hashes[key] = _sha256(path)
        return self._hashes[key]

    @staticmethod
    def _source_path(upstream: Mapping[str, Any]) -> str | None:
        for record in upstream.values():
            if record.kind == "Source":
                return record.spec.get("path")
        return None

    # -- the contract ---------------------------------------------------------------------------------------
    def fingerprint(self, request: FingerprintRequest) -> Mapping[str, str]:
        spec = request.resource.spec
        if not spec.get("path"):
            return {}  # a Source's data is already in its own fingerprint, an upstream input of this one
        return {"content": self._hash(self._file(spec))}

    def read(self, request: ReadRequest) -> ReadResult:
        outputs = dict(request.recorded.outputs or {})
        copy = Path(outputs.get("copy", ""))
        exists = bool(outputs.get("copy")) and (self.project_dir / copy).is_file()
        return ReadResult(exists=exists, outputs=outputs if exists else None)

    def apply(self, request: ApplyRequest, ctx: ApplyContext) -> ApplyResult:
        spec = request.resource.spec
        source = self._file(spec, self._source_path(ctx.upstream))
        sha = self._hash(source)
        folder = snapshot_dir(ctx.project_dir, spec["name"])
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / f"{sha[:16]}{source.suffix}"
        if not target.is_file():
            ctx.progress(f"copying {source.name} ({source.stat().st_size:,} bytes)")
            tmp = target.with_name(target.name + ".tmp")
            shutil.copyfile(source, tmp)
            os.replace(tmp, target)  # a crash leaves a .tmp file, never a partial snapshot
        index = folder / "index.json"
        versions = json.loads(index.read_text()) if index.is_file() else []
        versions = [v for v in versions if v["sha256"] != sha] + [{"sha256": sha, "file": target.name,
                                                                   "bytes": target.stat().st_size}]
        for old in versions[:-int(spec.get("keep", 3))]:
            (folder / old["file"]).unlink(missing_ok=True)
        versions = versions[-int(spec.get("keep", 3)):]
        index.write_text(json.dumps(versions, indent=2))
        return ApplyResult(outputs={"sha256": sha, "copy": str(target.relative_to(ctx.project_dir)),
                                    "bytes": target.stat().st_size, "versions": len(versions)},
                           message=f"snapshot {sha[:12]}")

    def delete(self, request: DeleteRequest, ctx: ApplyContext) -> None:
        shutil.rmtree(snapshot_dir(ctx.project_dir, request.recorded.spec["name"]), ignore_errors=True)
