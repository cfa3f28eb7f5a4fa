"""``control.json``: how `ml` tells a running service which versions serve and how traffic is split.

Written atomically (temp file + rename) with a new ``generation`` each time; every worker polls it
(plugins/bentoml/runtime.py), loads new versions off the request path, swaps its routing table and
acknowledges in ``status/<worker pid>.json``. :func:`wait_for_generation` returns once every worker
serves the generation, or raises :class:`LoadError` naming what a worker could not load.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Mapping

from ml_framework.errors import MLError

__all__ = ["LoadError", "read_control", "write_control", "wait_for_generation", "worker_statuses", "traffic"]


class LoadError(MLError):
    """A worker could not load a model version."""


def _path(folder: Path) -> Path:
    return Path(folder) / "control.json"


def read_control(folder: Path) -> dict[str, Any] | None:
    try:
        return json.loads(_path(folder).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def traffic(stable: Mapping[str, Any], candidate: Mapping[str, Any] | None = None, *, mode: str = "single",
            weight: float = 0.0, rollout: str | None = None, step: str | None = None,
            warmup: int = 0) -> dict[str, Any]:
    """A control document (without its generation): who serves and how requests are split; ``warmup``:
    recent requests each worker predicts with the candidate when it loads it (a failure is a load error)."""
    return {"stable": {"tag": stable["tag"], "version": stable["version"]},
            "candidate": ({"tag": candidate["tag"], "version": candidate["version"]} if candidate else None),
            "mode": mode if candidate else "single", "weight": float(weight) if candidate else 0.0,
            "rollout": rollout, "step": step, "warmup": int(warmup) if candidate else 0}


def write_control(folder: Path, document: Mapping[str, Any]) -> int:
    """Write a new generation of control.json; returns its generation number."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    previous = read_control(folder) or {}
    generation = int(previous.get("generation", 0)) + 1
    data = dict(document, generation=generation, written_at=time.time())
    if "guards" not in data and "guards" in previous:  # a traffic change keeps the API keys and rate limit
        data["guards"] = previous["guards"]
    tmp = folder / f"control.json.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True), encoding="utf-8")
    os.replace(tmp, _path(folder))
    return generation


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def worker_statuses(folder: Path, server_pid: int | None = None) -> list[dict[str, Any]]:
    """The acknowledgements of live workers (files of dead ones are removed); only the workers of
    `server_pid` (their parent) when given."""
    out = []
    status_dir = Path(folder) / "status"
    if not status_dir.is_dir():
        return out
    for path in status_dir.glob("*.json"):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        pid = int(data.get("pid") or 0)
        if not pid or not _alive(pid):
            path.unlink(missing_ok=True)
        elif server_pid is None or int(data.get("ppid") or 0) == int(server_pid):
            out.append(data)
    return out


def wait_for_generation(folder: Path, generation: int, workers: int, *, timeout: float = 60.0,
                        alive=None, server_pid: int | None = None) -> list[dict[str, Any]]:
    """Block until `workers` live workers acknowledged `generation` (or a later one).

    Raises LoadError if a worker reports a version it could not load, MLError on timeout, or when
    ``alive()`` (the server process check) turns false.
    """
    deadline = time.monotonic() + timeout
    while True:
        statuses = worker_statuses(folder, server_pid)
        acked = [s for s in statuses if int(s.get("generation") or 0) >= generation]
        errors = {tag: msg for s in acked if int(s.get("generation") or 0) == generation
                  for tag, msg in (s.get("errors") or {}).items()}
        if errors:
            tag, message = next(iter(errors.items()))
            raise LoadError(f"the service could not load {tag}: {message}")
        if len(acked) >= workers:
            return acked
        if alive is not None and not alive():
            raise MLError("the service process exited while switching traffic")
        if time.monotonic() >= deadline:
            raise MLError(f"{len(acked)} of {workers} workers switched to control generation {generation} "
                          f"within {timeout:.0f}s")
        time.sleep(0.05)
