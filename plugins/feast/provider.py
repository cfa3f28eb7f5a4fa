"""`FeastProvider`: the feast backend's implementation of the provider contract.

Owns FeatureStore, Entity, Source, FeatureView and FeatureService. Dispatches each hook to the kind's
handler (handlers.py). Importing this module imports neither Feast, pandas, pyarrow nor pandera.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, ClassVar, Mapping

from ml_framework.contract import (
    ApplyContext,
    ApplyRequest,
    ApplyResult,
    BaseProvider,
    DeleteRequest,
    FingerprintRequest,
    PlanRequest,
    PlanResult,
    ReadRequest,
    ReadResult,
)
from ml_framework.errors import MLError, PluginError

from .fingerprint import MISSING as _MISSING_DATA

__all__ = ["FeastProvider"]

_REPLACE_REASONS = {
    "Entity": "Feast keys online rows by the entity's join key and type: they cannot change in place",
    "FeatureView": "a feature view's entities key its online table: it is rebuilt and re-materialized",
}


def _reloads(path: str) -> bool:
    """Does a change at this FeatureView field path make apply reload the view's online rows in full?"""
    parts = path.split(".")
    if parts[0] in ("source", "entities", "store"):
        return True
    # a feature added, removed or retyped; descriptions and checks do not touch online rows
    return parts[0] == "features" and (len(parts) <= 2 or parts[2] == "dtype")


class FeastProvider(BaseProvider):
    name: ClassVar[str] = "feast"
    kinds: ClassVar[tuple[str, ...]] = ("FeatureStore", "Entity", "Source", "FeatureView", "FeatureService",
                                        "OnDemandFeatureView")
    capabilities: ClassVar[tuple[str, ...]] = ("configure", "adopt", "move")
    movable_kinds: ClassVar[tuple[str, ...]] = ("FeatureView",)  # the others are cheap to re-create
    replace_on: ClassVar[Mapping[str, tuple[str, ...]]] = {
        "Entity": ("join_keys", "dtype"),
        "FeatureView": ("entities",),
    }

    def __init__(self) -> None:
        self._settings_data: dict[str, Any] = {}
        self._configured_dir: Path | None = None
        self._backends: dict[Path, Any] = {}
        self._guard = threading.Lock()

    @property
    def version(self) -> str:
        from importlib.metadata import PackageNotFoundError, version

        try:
            return f"feast {version('feast')}"
        except PackageNotFoundError:  # pragma: no cover
            return "feast (not installed)"

    # -- setup ---------------------------------------------------------------------------------------------
    def configure(self, project_dir: Path, settings: Mapping[str, Any]) -> None:
        """`settings`: the backends.feast block of ml.yaml (repo, materialize, cache_dir)."""
        from pydantic import ValidationError

        from .settings import FeastSettings

        try:
            FeastSettings.model_validate(dict(settings or {}))
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            raise PluginError(f"ml.yaml: backends.feast: {problems}") from exc
        with self._guard:
            self._settings_data = dict(settings or {})
            self._configured_dir = Path(project_dir).resolve()
            self._backends.clear()

    def backend(self, project_dir: Path):
        """The per-project state (repository, caches) for `project_dir`."""
        from .backend import Backend
        from .settings import FeastSettings

        key = Path(project_dir).resolve()
        with self._guard:
            found = self._backends.get(key)
            if found is None:
                found = Backend(key, FeastSettings.model_validate(self._settings_data))
                self._backends[key] = found
            return found

    def config_model(self, kind: str):
        from .settings import OPTIONS_BY_KIND

        return OPTIONS_BY_KIND.get(kind)

    # -- hooks ---------------------------------------------------------------------------------------------
    @staticmethod
    def _handler(kind: str):
        from .handlers import HANDLERS

        try:
            return HANDLERS[kind]
        except KeyError:
            raise PluginError(f"plugin 'feast' does not handle kind {kind!r}") from None

    def fingerprint(self, request: FingerprintRequest) -> Mapping[str, str]:
        resource = request.resource
        backend = self.backend(request.project_dir)
        if not backend.repo.config_file.is_file():  # say it once, plainly, before Feast trips on it
            raise MLError(f"the Feast repository {backend.repo.dir} has no feature_store.yaml",
                          hint="create it (`ml init` writes one; see the example's feature_repo/), or set "
                               "backends.feast.repo in ml.yaml")
        found = self._handler(resource.kind).fingerprint(backend, resource)
        missing = [k for k, v in found.items() if k == "source_data" and v == _MISSING_DATA]
        if missing:
            path = resource.spec.get("path") or (resource.spec.get("source") or {}).get("path")
            raise MLError(f"data file {path} does not exist", hint="generate or copy the data first (e.g. make data), "
                                                                   "or fix `path` in the spec")
        return found

    def read(self, request: ReadRequest) -> ReadResult:
        recorded = request.recorded
        return self._handler(recorded.kind).read(self.backend(request.project_dir), recorded)

    def plan(self, request: PlanRequest) -> PlanResult:
        result = super().plan(request)
        reasons = []
        if result.replace_paths and request.resource.kind in _REPLACE_REASONS:
            reasons.append(_REPLACE_REASONS[request.resource.kind])
        if request.resource.kind == "FeatureView" and any(_reloads(c.path) for c in request.changes):
            reasons.append("the online store is reloaded from the whole source")
        return PlanResult(replace_paths=result.replace_paths, reasons=tuple(reasons))

    def apply(self, request: ApplyRequest, ctx: ApplyContext) -> ApplyResult:
        return self._handler(request.resource.kind).apply(self.backend(ctx.project_dir), request, ctx)

    # -- kind: Import ------------------------------------------------------------------------------------
    def adoptable(self, request) -> str:
        """A Feast object of the registry, as the spec describes it (Feast knows objects by name: the id is
        the spec's name). Differences are refused: adopting must not change what serves."""
        from ml_framework.contract import RecordedResource

        resource = request.resource
        if request.id != resource.name:
            raise MLError(f"Feast knows objects by name: id must be {resource.name!r} (the spec's name), "
                          f"not {request.id!r}; Feast cannot rename {request.id!r}")
        backend = self.backend(request.project_dir)
        probe = RecordedResource(address=resource.address, kind=resource.kind, backend=self.name, spec=resource.spec,
                                 fingerprint="", outputs={})
        found = self._handler(resource.kind).read(backend, probe)
        if not found.exists:
            raise MLError(f"the Feast registry of {backend.repo.dir} has no {resource.kind} named {request.id!r}")
        if found.drift:
            differences = "; ".join(f"{field}: Feast has {actual!r}, the spec says {wanted!r}"
                                    for field, (wanted, actual) in sorted(found.drift.items()))
            raise MLError(f"the Feast {resource.kind} {request.id!r} differs from the spec ({differences})",
                          hint="make the spec describe it as it is, adopt, then change it with a plan")
        return f"the Feast {resource.kind} {request.id!r} (registry of {backend.repo.dir.name}, online rows kept)"

    def adopt(self, request, ctx: ApplyContext):
        """Record it: its definition is applied again (the same, a no-op for Feast) and its online rows are
        kept as they are — not reloaded."""
        backend = self.backend(ctx.project_dir)
        with backend.keeping_online_rows(request.resource.address):
            result = self.apply(ApplyRequest("create", request.resource, None), ctx)
        return {**dict(result.outputs), "adopted": request.id, "materialization": "adopted: online rows kept"}

    # -- kind: Moved -------------------------------------------------------------------------------------
    def move(self, request, ctx: ApplyContext):
        """A renamed FeatureView: renamed in Feast with its online rows; what names it follows (rename.py)."""
        if request.resource.kind not in self.movable_kinds:
            raise MLError(f"the feast backend cannot rename a {request.resource.kind} in place")
        from .rename import move_feature_view

        return move_feature_view(self.backend(ctx.project_dir), request, ctx)

    def delete(self, request: DeleteRequest, ctx: ApplyContext) -> None:
        recorded = request.recorded
        self._handler(recorded.kind).delete(self.backend(ctx.project_dir), recorded, ctx)
