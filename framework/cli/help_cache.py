"""`ml --help` without building the CLI: the rendered top-level help, cached per environment.

The help lists the commands every installed plugin contributes, so rendering it means scanning entry
points, importing each plugin's declaration and Typer: about 100 ms. It only changes when the
environment does, so the rendered text is kept in the user cache directory under a key made of what it
depends on — the interpreter, ml's version, the mtimes of ``sys.path`` folders (an install or uninstall
changes them), the files of the plugin declarations it read (editable installs, project-local plugins),
the project file, the options that change rendering (colour, width, disabled plugins). Any difference
is a miss: the help is rendered the normal way and stored again. ``ML_HELP_CACHE=0`` turns it off.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import sys
from pathlib import Path

__all__ = ["cached_help", "store_help", "is_help_request"]

_ENV = ("ML_DISABLE_PLUGINS", "NO_COLOR", "COLUMNS", "TERM", "ML_STATE_URL")
_START_PATH = list(sys.path)  # as the interpreter set it up (loading project-local plugins appends to it)


def is_help_request(argv: list[str]) -> bool:
    return argv in ([], ["--help"], ["-h"])


def _enabled() -> bool:
    return os.environ.get("ML_HELP_CACHE", "1") not in ("0", "false", "no")


def _cache_file() -> Path:
    """One file per interpreter environment and project (projects differ by their local plugins)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    tag = hashlib.sha256(f"{sys.prefix}\0{_project_file()}".encode()).hexdigest()[:16]
    return Path(base) / "ml" / f"help-{tag}.json"


def _stamp(path: str) -> list:
    try:
        st = os.stat(path)
        return [path, st.st_mtime_ns, st.st_size]
    except OSError:
        return [path, None, None]


@functools.lru_cache(maxsize=1)
def _project_file() -> str:
    here = Path.cwd()
    for folder in (here, *here.parents):
        candidate = folder / "ml.yaml"
        if candidate.is_file():
            return str(candidate)
    return ""


def _key(files: list[str]) -> str:
    import shutil

    from .. import __version__

    parts = {
        "python": sys.version, "prefix": sys.prefix, "ml": __version__,
        "paths": [_stamp(p) for p in _START_PATH if p and os.path.isdir(p)],
        "files": [_stamp(f) for f in files],
        "project": _stamp(_project_file()) if _project_file() else None,  # found once per process
        "env": {name: os.environ.get(name) for name in _ENV},
        "width": shutil.get_terminal_size().columns, "tty": sys.stdout.isatty(),
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def cached_help() -> str | None:
    """The stored help text if nothing it depends on changed, else None."""
    if not _enabled():
        return None
    try:
        data = json.loads(_cache_file().read_text(encoding="utf-8"))
        if data.get("key") == _key(list(data.get("files") or [])):
            return str(data["text"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return None


def store_help(text: str, declaration_files: list[str]) -> None:
    """Keep ``text`` under the current key (never fails: a read-only home just means no cache)."""
    if not _enabled() or not text:
        return
    files = sorted(set(declaration_files))
    try:
        path = _cache_file()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"key": _key(files), "files": files, "text": text}), encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        pass
