"""Content keys of the data files a model was trained on, cheap enough for every `ml plan`.

A stat cache (size, mtime_ns, inode -> key) in ``.ml/training_fingerprints.json`` means an unchanged
file is not opened. On a miss a parquet file is keyed by its size and footer (schema, row groups,
column statistics: any rewrite of the data changes it) without reading the data pages; other files are
hashed in full. A folder combines the keys of its files. Standard library only.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import threading
from pathlib import Path
from typing import Iterable, Mapping

__all__ = ["DataKeys", "MISSING", "combine"]

MISSING = "missing"
_LOCK = threading.Lock()


def combine(keys: Mapping[str, str]) -> str:
    h = hashlib.sha256()
    for path in sorted(keys):
        h.update(f"{path}\0{keys[path]}\0".encode())
    return h.hexdigest()[:32]


class DataKeys:
    def __init__(self, project_dir: Path, cache_dir: str = ".ml"):
        self.project_dir = Path(project_dir)
        self.cache = self.project_dir / cache_dir / "training_fingerprints.json"

    def keys(self, paths: Iterable[str]) -> dict[str, str]:
        """{path as given: content key} — paths relative to the project directory, or absolute."""
        return {p: self.key(p) for p in paths}

    def key(self, path: str) -> str:
        full = Path(path) if Path(path).is_absolute() else self.project_dir / path
        try:
            if full.is_dir():
                h = hashlib.sha256(b"folder\0")
                for f in sorted(x for x in full.rglob("*") if x.is_file() and not x.name.startswith((".", "_"))):
                    h.update(f.relative_to(full).as_posix().encode() + b"\0" + self._file(f).encode() + b"\0")
                return h.hexdigest()[:32]
            return self._file(full)
        except OSError:
            return MISSING

    def _file(self, path: Path) -> str:
        st = path.stat()
        stamp = [st.st_size, st.st_mtime_ns, st.st_ino]
        name = str(path.resolve())
        with _LOCK:
            entries = self._load()
            hit = entries.get(name)
            if hit and hit.get("stamp") == stamp:
                return hit["key"]
        key = _content_key(path, st.st_size)
        with _LOCK:
            entries = self._load()
            entries[name] = {"stamp": stamp, "key": key}
            self._save(entries)
        return key

    def _load(self) -> dict:
        try:
            data = json.loads(self.cache.read_text())
            return data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            return {}

    def _save(self, entries: dict) -> None:
        try:
            self.cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.cache.with_name(f".{self.cache.name}.{os.getpid()}.{threading.get_ident()}.tmp")
            tmp.write_text(json.dumps(entries, sort_keys=True))
            tmp.replace(self.cache)
        except OSError:
            pass  # a cache that cannot be written only costs time


def _content_key(path: Path, size: int) -> str:
    with open(path, "rb") as fh:
        if size >= 12 and fh.read(4) == b"PAR1":
            fh.seek(size - 8)
            tail = fh.read(8)
            (length,) = struct.unpack("<I", tail[:4])
            if tail[4:] == b"PAR1" and 0 < length <= size - 12:
                fh.seek(size - 8 - length)
                h = hashlib.sha256(b"parquet\0" + str(size).encode() + b"\0")
                h.update(fh.read(length))
                return h.hexdigest()[:32]
        fh.seek(0)
        h = hashlib.sha256(b"bytes\0")
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
        return h.hexdigest()[:32]
