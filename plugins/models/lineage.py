"""Lineage facts recorded with every model version: git commit of the specs, library versions."""

from __future__ import annotations

import platform
import subprocess
from functools import lru_cache
from pathlib import Path

__all__ = ["git_info", "library_versions"]


def git_info(spec_dir: Path) -> dict[str, object] | None:
    """{"commit", "dirty"} of the repository holding the specs, or None outside git (or without git)."""
    def run(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", "-C", str(spec_dir), *args], capture_output=True, text=True, timeout=5)
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    if not Path(spec_dir).exists():
        return None
    commit = run("rev-parse", "HEAD")
    if not commit:
        return None
    status = run("status", "--porcelain", "--", ".")
    return {"commit": commit, "dirty": bool(status)}


@lru_cache(maxsize=None)
def _version(dist: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def library_versions(*dists: str) -> dict[str, str]:
    from ml_framework import __version__

    out = {"python": platform.python_version(), "ml": __version__}
    for dist in ("numpy", "pandas", "pyarrow", "bentoml", *dists):
        found = _version(dist)
        if found:
            out[dist] = found
    return out
