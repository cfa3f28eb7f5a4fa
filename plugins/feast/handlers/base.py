"""What every kind's handler shares: the hook signatures, the manifest step, drift comparison."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from typing import Any, Mapping

from ml_framework.contract import ApplyContext, ApplyRequest, ApplyResult, ReadResult, RecordedResource, Resource

from ..backend import Backend

__all__ = ["Handler", "now", "iso", "digest", "not_found", "check_data", "contract_hint", "remove_csv_copy"]


def now() -> datetime:
    return datetime.now(timezone.utc)


def iso(value: datetime | None) -> str | None:
    return value.astimezone(timezone.utc).isoformat(timespec="seconds") if value else None


def digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:16]


def not_found(exc: Exception) -> bool:
    from feast.errors import DataSourceNotFoundException, FeastObjectNotFoundException

    return isinstance(exc, (FeastObjectNotFoundException, DataSourceNotFoundException))


def contract_hint(resource: Resource) -> str | None:
    """Where a broken data contract is declared, for the error's hint."""
    if resource.source_file:
        return f"fix the data, or the rules declared in {resource.source_file}"
    return None


def check_data(backend: Backend, address: str, source: Mapping[str, Any], contract, *, owns_copy: bool,
               hint: str | None = None):
    """Check the data behind a source definition against `contract`; returns the contract Report.

    Parquet is checked where it is. A CSV is checked on the typed table Feast will read: the owner of
    the source's parquet copy (the Source, or the FeatureView of an inline source) refreshes the copy
    when the CSV changed (csvdata.py); a FeatureView reading a named CSV source checks the copy that
    source made, and asks for the source to be applied first when the copy is missing or stale."""
    from ..contracts import validate
    from ..errors import DataContractError, Failure

    data = backend.data_path(source["project_path"])
    if source.get("format") != "csv":
        return validate(address, data, contract, display=source["project_path"], hint=hint)
    from .. import csvdata
    from ..fingerprint import MISSING

    copy = backend.repo.dir / source["path"]
    key = backend.fingerprints.key(data)
    if owns_copy:
        return csvdata.refresh_copy(address, data, copy, contract, key, display=source["project_path"], hint=hint)
    if key == MISSING:
        raise DataContractError(address, source["project_path"],
                                [Failure(contract.path_field, "file exists", detail=f"{data} does not exist")],
                                hint=hint)
    if csvdata.copy_key(copy)[0] != key:
        from ml_framework.errors import ProviderError

        raise ProviderError(address, f"{contract.path_field}: the parquet copy Feast reads of {source['project_path']} "
                                     f"is missing or older than the CSV",
                            hint=f"apply source.{source['name']} first (it converts and checks the CSV)")
    try:
        return validate(address, copy, contract, display=source["project_path"], hint=hint)
    except DataContractError as exc:
        if not any(f.rule == "dtype" for f in exc.failures):
            raise
        typing = (f"a CSV column the source does not declare gets the type pyarrow infers: declare it under "
                  f"columns of source.{source['name']}")
        raise DataContractError(address, source["project_path"], exc.failures,
                                hint=f"{typing}; {hint}" if hint else typing) from None


def remove_csv_copy(backend: Backend, source: Mapping[str, Any] | None) -> None:
    """Delete the parquet copy of a CSV source definition (no-op for parquet sources)."""
    if source and source.get("format") == "csv":
        from ..csvdata import remove_copy

        remove_copy(backend.repo.dir / source["path"])


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
    def _registered(getter, name: str, project: str):
        """The registry object (``getter``: e.g. ``store.registry.get_feature_view``), or None when absent."""
        try:
            return getter(name, project, allow_cache=True)
        except Exception as exc:
            if not_found(exc):
                return None
            raise

    @staticmethod
    def _drift(expected: Mapping[str, Any], actual: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
        return {key: (expected[key], actual.get(key)) for key in expected if expected[key] != actual.get(key)}
