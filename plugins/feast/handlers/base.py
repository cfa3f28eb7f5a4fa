"""What every kind's handler shares: the hook signatures, the manifest step, drift comparison."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from typing import Any, Mapping

from framework.contract import ApplyContext, ApplyRequest, ApplyResult, ReadResult, RecordedResource, Resource

from ..backend import Backend

__all__ = ["Handler", "now", "iso", "digest", "not_found"]


def now() -> datetime:
    return datetime.now(timezone.utc)


def iso(value: datetime | None) -> str | None:
    return value.astimezone(timezone.utc).isoformat(timespec="seconds") if value else None


def digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:16]


def not_found(exc: Exception) -> bool:
    from feast.errors import DataSourceNotFoundException, FeastObjectNotFoundException

    return isinstance(exc, (FeastObjectNotFoundException, DataSourceNotFoundException))


class Handler:
    kind = ""
    section = ""  # manifest section

    def fingerprint(self, backend: Backend, resource: Resource) -> Mapping[str, str]:
        return {}

    def apply(self, backend: Backend, request: ApplyRequest, ctx: ApplyContext) -> ApplyResult:
        raise NotImplementedError

    def delete(self, backend: Backend, recorded: RecordedResource, ctx: ApplyContext) -> None:
        raise NotImplementedError

    def read(self, backend: Backend, recorded: RecordedResource) -> ReadResult:
        raise NotImplementedError

    # -- shared steps -------------------------------------------------------------------------------------
    def _remember(self, backend: Backend, name: str, definition: dict | None) -> None:
        """Record (or forget) the applied definition and regenerate the repository module. Under lock."""
        manifest = backend.repo.read_manifest()
        if definition is None:
            manifest[self.section].pop(name, None)
        else:
            manifest[self.section][name] = definition
        backend.repo.write_manifest(manifest)

    @staticmethod
    def _drift(expected: Mapping[str, Any], actual: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
        return {key: (expected[key], actual.get(key)) for key in expected if expected[key] != actual.get(key)}
