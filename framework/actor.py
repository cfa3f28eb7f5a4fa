"""Who is running `ml`: recorded with policy overrides and in the apply history."""

from __future__ import annotations

import getpass
import os
import subprocess
from pathlib import Path

__all__ = ["ACTOR_ENV", "current_actor", "specs_commit"]

ACTOR_ENV = "ML_ACTOR"
# CI systems name the person who started the run; the first set wins.
_CI_VARIABLES = (ACTOR_ENV, "GITHUB_ACTOR", "GITLAB_USER_LOGIN", "BUILDKITE_BUILD_CREATOR", "BUILD_REQUESTEDFOR")


def current_actor(project_dir: Path | None = None) -> str:
    """``ML_ACTOR``, else the CI system's user, else git's ``user.email``, else the login name."""
    for name in _CI_VARIABLES:
        value = os.environ.get(name, "").strip()
        if value:
            return value
    try:
        found = subprocess.run(["git", "config", "user.email"], cwd=project_dir or Path.cwd(), capture_output=True,
                               text=True, timeout=5)
        if found.returncode == 0 and found.stdout.strip():
            return found.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass  # no git: fall back to the login name
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no user database (a bare container): still say something
        return f"uid {os.getuid()}"


def specs_commit(project_dir: Path) -> dict | None:
    """The git commit the project's files are at (``{"commit", "dirty"}``), or None outside a git work tree:
    recorded with each apply, so a served version can be traced to the pull request that shipped it."""
    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", *args], cwd=project_dir, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if not commit:
        return None
    status = git("status", "--porcelain", "--untracked-files=no", "--", ".")
    return {"commit": commit, "dirty": bool(status)}
