"""Revisions of a deployment: every change of what serves (a first deployment, a rollout promoted or rolled
back, a restore, an `ml rollback`) is appended to ``outputs.revisions`` with its outcome; the newest
``MAX_REVISIONS`` are kept. Helpers shared by apply and rollback."""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping

from ml_framework.errors import MLError

__all__ = ["MAX_REVISIONS", "SERVED", "now", "version_ref", "feature_refs", "next_revision", "rollback_target",
           "rewrite_service"]

MAX_REVISIONS = 50
SERVED = ("deployed", "promoted", "rollback", "restored")  # outcomes after which the version served


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def version_ref(version) -> dict[str, Any]:
    return {"version": version.label, "tag": version.bentoml_tag, "ref": version.ref}


def feature_refs(tag: str | None, project_dir=None) -> list[str]:
    """The feature references a saved version was trained on (its ml_model.json)."""
    from ml_framework.plugins.models.artifacts import artifact_dir

    try:
        return list(json.loads((artifact_dir(tag, project_dir) / "ml_model.json").read_text(encoding="utf-8")).get("feature_refs") or [])
    except (OSError, ValueError, TypeError):
        return []


def model_schema(tag: str | None, project_dir=None) -> dict[str, Any]:
    """A saved version's ml_model.json (task, metrics, features...), or {} when it cannot be read."""
    from ml_framework.plugins.models.artifacts import artifact_dir

    if not tag:
        return {}
    try:
        return dict(json.loads((artifact_dir(tag, project_dir) / "ml_model.json").read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):
        return {}


def analysis_context(tag: str | None, project_dir=None) -> dict[str, Any]:
    """What a rollout's agreement check needs of the stable version: its task, and (regression) the
    validation RMSE that sets the default tolerance on the label's scale."""
    schema = model_schema(tag, project_dir)
    rmse = (schema.get("metrics") or {}).get("rmse")
    return {"task": schema.get("task"), "scale": float(rmse) if isinstance(rmse, (int, float)) else None}


def next_revision(revisions) -> int:
    return max((int(r.get("revision", 0)) for r in revisions), default=0) + 1


def rollback_target(revisions: list[dict], current: Mapping[str, Any], to: int | None) -> dict:
    served = [r for r in revisions if r.get("outcome") in SERVED]
    if to is not None:
        found = next((r for r in revisions if int(r.get("revision", 0)) == int(to)), None)
        if found is None:
            known = ", ".join(str(r.get("revision")) for r in revisions) or "none"
            raise MLError(f"no revision {to}", hint=f"revisions: {known} (see `ml history deployment/NAME`)")
        if not found.get("tag"):
            raise MLError(f"revision {to} has no model version to go back to")
        return found
    for revision in reversed(served):
        if revision.get("tag") != current.get("tag"):
            return revision
    raise MLError("no earlier revision served another version", hint="see `ml history deployment/NAME`")


def rewrite_service(folder: Path, spec: Mapping[str, Any], stable_tag: str) -> None:
    """Point service.py's BentoModel at the version now serving (for `bentoml build`); no restart."""
    path = folder / "service.py"
    if not path.is_file():
        return
    text = path.read_text(encoding="utf-8")
    text = re.sub(r"BentoModel\('[^']*'\)", f"BentoModel({stable_tag!r})", text, count=1)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
