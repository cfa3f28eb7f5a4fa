"""Content fingerprints of source data, cheap enough to run on every `ml plan`.

Cheapest check first (as DVC does): a small JSON cache maps (path, size, mtime_ns, inode) to the
content key, so an unchanged file is not opened at all. On a miss, a parquet file is keyed by its size
and footer (schema, row groups, column statistics, offsets: any rewrite of the data changes it), read
from the end of the file without touching the data pages; other files are hashed in full. A folder
(partitioned data set) combines the keys of its files. Standard library only.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import threading
from pathlib import Path

__all__ = ["FingerprintCache", "MISSING", "CACHE_FILE"]

CACHE_FILE = "feast_fingerprints.json"
MISSING = "missing"
_FOOTER_MAGIC = b"PAR1"
_LOCK = threading.Lock()


class FingerprintCache:
    """Content keys of data files, cached by stat under `cache_dir`. Thread-safe."""

    def __init__(self, cache_dir: Path):
        self.path = Path(cache_dir) / CACHE_FILE
        self._entries: dict[str, dict] | None = None
        self.hits = 0
        self.misses = 0

    # -- public -------------------------------------------------------------------------------------------
    def key(self, path: Path) -> str:
        """The content key of a file or folder, or MISSING when it does not exist."""
        path = Path(path)
        try:
            if path.is_dir():
                return self._folder_key(path)
            st = path.stat()
        except OSError:
            return MISSING
        return self._file_key(path, st)

    # -- internals ----------------------------------------------------------------------------------------
    def _folder_key(self, folder: Path) -> str:
        h = hashlib.sha256(b"folder\0")
        for file in sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith((".", "_"))):
            h.update(file.relative_to(folder).as_posix().encode() + b"\0")
            h.update(self._file_key(file, file.stat()).encode() + b"\0")
        return h.hexdigest()[:32]

    def _file_key(self, path: Path, st: os.stat_result) -> str:
        stamp = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "ino": st.st_ino}
        entry_key = str(path.resolve())
        with _LOCK:
            entries = self._load()
            cached = entries.get(entry_key)
            if cached and all(cached.get(k) == v for k, v in stamp.items()):
                self.hits += 1
                return cached["key"]
        content = content_key(path, st.st_size)
        with _LOCK:
            self.misses += 1
            entries = self._load()
            entries[entry_key] = {**stamp, "key": content}
            self._save(entries)
        return content

    def _load(self) -> dict[str, dict]:
        if self._entries is None:
            try:
                data = json.loads(self.path.read_text())
                self._entries = data.get("files", {}) if isinstance(data, dict) else {}
            except (OSError, ValueError):
                self._entries = {}
        return self._entries

    def _save(self, entries: dict[str, dict]) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
            tmp.write_text(json.dumps({"version": 1, "files": entries}, sort_keys=True, indent=1))
            tmp.replace(self.path)
        except OSError:
            pass  # a cache that cannot be written only costs time


def content_key(path: Path, size: int) -> str:
    """Key one file's content: parquet by size + footer, anything else by a full hash."""
    with open(path, "rb") as fh:
        footer = _parquet_footer(fh, size)
        if footer is not None:
            h = hashlib.sha256(b"parquet\0" + str(size).encode() + b"\0")
            h.update(footer)
            return h.hexdigest()[:32]
        fh.seek(0)
        h = hashlib.sha256(b"bytes\0")
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
        return h.hexdigest()[:32]


def _parquet_footer(fh, size: int) -> bytes | None:
    if size < 12:
        return None
    fh.seek(0)
    if fh.read(4) != _FOOTER_MAGIC:
        return None
    fh.seek(size - 8)
    tail = fh.read(8)
    if tail[4:] != _FOOTER_MAGIC:
        return None
    (length,) = struct.unpack("<I", tail[:4])
    if length <= 0 or length > size - 12:
        return None
    fh.seek(size - 8 - length)
    return fh.read(length)
