"""`AlibiDetectProvider`: the Monitor kind on alibi-detect.

Apply builds the drift detectors of every model version the monitored deployment serves, from that
version's reference data (its training frame, see :mod:`ml_framework.plugins.monitoring.reference`), saves them with
alibi-detect's ``save_detector`` under ``.ml/monitors/<monitor>/<model>/<version>-<key>/`` and records
them in state (outputs ``detectors``). A version whose detector already exists with the same settings is
not built again. Later runs load them with ``load_detector`` (:meth:`AlibiDetectProvider.open_checker`);
a version that appears in the log without a detector (promoted since the last apply) is built then.

Read reports drift when the deployment now serves other versions than those recorded (e.g. after
``ml models promote``), so the next plan updates the monitor; a detector folder deleted by hand makes the
monitor planned for creation again.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, ClassVar, Mapping

from ml_framework.contract import ApplyContext, ApplyRequest, ApplyResult, BaseProvider, DeleteRequest, ReadRequest, ReadResult
from ml_framework.errors import MLError

__all__ = ["AlibiDetectProvider", "MonitorError", "monitor_folder"]


class MonitorError(MLError):
    """A monitor cannot be built or run as specified."""


def monitor_folder(project_dir: Path, monitor: str) -> Path:
    return Path(project_dir) / ".ml" / "monitors" / monitor


class AlibiDetectProvider(BaseProvider):
    name: ClassVar[str] = "alibi-detect"
    kinds: ClassVar[tuple[str, ...]] = ("Monitor",)
    capabilities: ClassVar[tuple[str, ...]] = ("configure", "drift_checker")

    def __init__(self) -> None:
        self.project_dir: Path | None = None
        self.backend_settings: dict[str, Any] = {}

    @property
    def version(self) -> str:
        from importlib.metadata import PackageNotFoundError, version

        try:
            return f"alibi-detect {version('alibi-detect')}"
        except PackageNotFoundError:
            return "alibi-detect (not installed)"

    def configure(self, project_dir: Path, settings: Mapping[str, Any]) -> None:
        self.project_dir = Path(project_dir)
        self.backend_settings = dict(settings or {})

    def config_model(self, kind: str):
        from .config import AlibiDetectSettings

        return AlibiDetectSettings if kind == "Monitor" else None

    # -- helpers ------------------------------------------------------------------------------------------
    @staticmethod
    def settings_of(resource_spec: Mapping[str, Any], config=None):
        from .config import AlibiDetectSettings

        if isinstance(config, AlibiDetectSettings):
            return config
        block = {k: v for k, v in dict(resource_spec.get("detector") or {}).items() if k != "backend"}
        return AlibiDetectSettings.model_validate(block)

    def bundle_folder(self, project_dir: Path, spec, settings, version) -> Path:
        from .detectors import bundle_key

        key = bundle_key(settings.model_dump(), spec.features, spec.predictions)
        return monitor_folder(project_dir, spec.name) / version.model / f"{version.label}-{key}"

    def ensure_bundle(self, project_dir: Path, spec, settings, version, store, progress=None) -> tuple[Path, dict, bool]:
        """The detector folder of ``version`` for this monitor: (folder, meta, built now)."""
        import json

        folder = self.bundle_folder(project_dir, spec, settings, version)
        meta_file = folder / "meta.json"
        if meta_file.is_file():
            return folder, json.loads(meta_file.read_text(encoding="utf-8")), False
        from ml_framework.plugins.monitoring.reference import load_reference

        from .detectors import build_bundle

        if progress:
            progress(f"building the reference of {version.ref}")
        reference = load_reference(project_dir, version, store, features=spec.features, path=settings.reference.path,
                                   max_rows=settings.reference.max_rows, seed=settings.reference.seed,
                                   predictions=spec.predictions, categorical=settings.categorical)
        try:
            meta = build_bundle(folder, reference, settings, model=version.model, version=version.label,
                                predictions=spec.predictions, progress=progress)
        except ValueError as exc:
            raise MonitorError(f"cannot build the detector for {version.ref}: {exc}") from exc
        return folder, meta, True

    def open_checker(self, project_dir: Path, spec, settings, version, store, progress=None):
        """A loaded detector bundle for ``version`` (built first if it does not exist yet)."""
        from .detectors import open_bundle

        folder = self.bundle_folder(project_dir, spec, settings, version)
        built = False
        if not (folder / "meta.json").is_file():
            folder, _, built = self.ensure_bundle(project_dir, spec, settings, version, store, progress)
        bundle = open_bundle(folder)
        bundle.built_now = built
        return bundle

    # -- contract ---------------------------------------------------------------------------------------------
    def read(self, request: ReadRequest) -> ReadResult:
        recorded = request.recorded
        outputs = dict(recorded.outputs or {})
        for info in (outputs.get("detectors") or {}).values():
            if not (Path(request.project_dir) / info["path"] / "meta.json").is_file():
                return ReadResult(exists=False)
        actual = self._served_labels(request.project_dir, recorded.spec)
        drift = {}
        if actual is not None and actual != list(outputs.get("versions") or []):
            drift["versions"] = (outputs.get("versions"), actual)
        return ReadResult(exists=True, outputs=outputs, drift=drift)

    @staticmethod
    def _served_labels(project_dir: Path, spec: Mapping[str, Any]) -> list[str] | None:
        from ml_framework.project import Project
        from ml_framework.plugins.models.registry import ModelRegistry

        from ml_framework.plugins.monitoring.reference import ReferenceError, served_versions

        project = Project.load(Path(project_dir))
        store = project.open_state()
        try:
            deployment = store.get(f"deployment.{spec.get('deployment')}")
            if deployment is None:
                return None
            try:
                return [v.label for v in served_versions(deployment, ModelRegistry.for_store(store))]
            except ReferenceError:
                return None
        finally:
            store.close()

    def apply(self, request: ApplyRequest, ctx: ApplyContext) -> ApplyResult:
        from ml_framework.project import Project
        from ml_framework.plugins.models.registry import ModelRegistry
        from ml_framework.plugins.monitoring.kinds import Monitor

        from ml_framework.plugins.monitoring.reference import served_versions

        spec = Monitor.model_validate(dict(request.resource.spec))
        settings = self.settings_of(request.resource.spec, request.resource.config)
        address = f"deployment.{spec.deployment}"
        project = Project.load(Path(ctx.project_dir))
        store = project.open_state()
        try:
            deployment = ctx.upstream.get(address) or store.get(address)
            if deployment is None:
                raise MonitorError(f"{address} is not applied yet", hint=f"ml apply --target {address}")
            versions = served_versions(deployment, ModelRegistry.for_store(store))
            detectors, messages = {}, []
            for version in versions:
                folder, meta, built = self.ensure_bundle(ctx.project_dir, spec, settings, version, store, ctx.progress)
                reference = meta.get("reference") or {}
                detectors[version.label] = {
                    "path": str(folder.relative_to(Path(ctx.project_dir))), "model": version.model,
                    "method": meta["method"], "columns": len(meta["columns"]),
                    "reference_rows": reference.get("rows"), "reference_total": reference.get("total"),
                    "sampled": bool(reference.get("sampled")),
                    "prediction_drift": any(c == "__prediction__" for c in meta["columns"])
                    or (Path(folder) / "prediction").is_dir(),
                }
                state = "built" if built else "reused"
                sample = (f", sampled from {reference.get('total'):,}" if reference.get("sampled") else "")
                messages.append(f"{version.ref}: {state} {meta['method']} detector on {reference.get('rows'):,} "
                                f"reference rows{sample}")
                for note in meta.get("notes", []):
                    ctx.progress(f"{version.ref}: {note}")
        finally:
            store.close()
        outputs = {"deployment": spec.deployment, "model": versions[0].model if versions else None,
                   "versions": [v.label for v in versions], "detectors": detectors}
        return ApplyResult(outputs=outputs, message="; ".join(messages))

    def delete(self, request: DeleteRequest, ctx: ApplyContext) -> None:
        name = request.recorded.spec.get("name") or request.recorded.address.split(".", 1)[1]
        shutil.rmtree(monitor_folder(ctx.project_dir, name), ignore_errors=True)
