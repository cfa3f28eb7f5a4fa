"""The provider side every drift backend of the Monitor kind shares: :class:`DriftBackend`.

Apply builds the detector of every model version the monitored deployment serves, from that version's
reference data (its training frame, see :mod:`ml_framework.plugins.monitoring.reference`), under
``.ml/monitors/<monitor>/<model>/<version>-<key>/`` and records them in state (outputs ``detectors``). A
version whose detector folder already exists with the same settings is not built again. ``open_checker``
(the ``drift_checker`` capability) opens the folder for `ml monitor`; a version that appears in the log
without a detector (promoted since the last apply) is built then.

Read reports drift when the deployment now serves other versions than those recorded (e.g. after
``ml models promote``), so the next plan updates the monitor; a detector folder deleted by hand makes the
monitor planned for creation again. Delete removes the monitor's folder.

A backend subclasses :class:`DriftBackend` (name, ``config_model``) and says what its folder depends on
(``bundle_key``), how it is built (``build_bundle``) and opened (``open_bundle``). Importing this module
imports nothing heavy.
"""

from __future__ import annotations

import contextlib

import shutil
from pathlib import Path
from typing import Any, ClassVar, Mapping

from ml_framework.contract import (ApplyContext, ApplyRequest, ApplyResult, BaseProvider, DeleteRequest, FingerprintRequest,
                                   ReadRequest, ReadResult)
from ml_framework.errors import MLError

__all__ = ["DriftBackend", "MonitorError", "monitor_folder"]


class MonitorError(MLError):
    """A monitor cannot be built or run as specified."""


def monitor_folder(project_dir: Path, monitor: str) -> Path:
    return Path(project_dir) / ".ml" / "monitors" / monitor


class DriftBackend(BaseProvider):
    """The Monitor kind's contract hooks and detector folders; subclasses provide the detectors."""

    kinds: ClassVar[tuple[str, ...]] = ("Monitor",)
    capabilities: ClassVar[tuple[str, ...]] = ("configure", "drift_checker")

    def __init__(self) -> None:
        self.project_dir: Path | None = None
        self.backend_settings: dict[str, Any] = {}

    def configure(self, project_dir: Path, settings: Mapping[str, Any]) -> None:
        self.project_dir = Path(project_dir)
        self.backend_settings = dict(settings or {})

    # -- what a backend provides ---------------------------------------------------------------------------
    def bundle_key(self, settings, spec) -> str:  # pragma: no cover - abstract
        """A short hash of what the detector depends on (settings, watched features, predictions)."""
        raise NotImplementedError

    def build_bundle(self, folder: Path, reference, settings, *, model: str, version: str, predictions: bool,
                     progress=None) -> dict:  # pragma: no cover - abstract
        """Build the detector of ``reference`` into ``folder``; returns the meta written to its meta.json.
        A ValueError says the settings cannot work on this reference (reported as a MonitorError)."""
        raise NotImplementedError

    def open_bundle(self, folder: Path):  # pragma: no cover - abstract
        """The checker of a built folder (``check(window, *, min_samples)``, ``meta``)."""
        raise NotImplementedError

    # -- helpers ----------------------------------------------------------------------------------------------
    def settings_of(self, resource_spec: Mapping[str, Any], config=None):
        """The validated settings of a Monitor's ``detector`` block (``config`` when it already is)."""
        model = self.config_model("Monitor")
        if isinstance(config, model):
            return config
        block = {k: v for k, v in dict(resource_spec.get("detector") or {}).items() if k != "backend"}
        return model.model_validate(block)

    def bundle_folder(self, project_dir: Path, spec, settings, version) -> Path:
        key = self.bundle_key(settings, spec)
        return monitor_folder(project_dir, spec.name) / version.model / f"{version.label}-{key}"

    def ensure_bundle(self, project_dir: Path, spec, settings, version, store, progress=None) -> tuple[Path, dict, bool]:
        """The detector folder of ``version`` for this monitor: (folder, meta, built now)."""
        import json

        folder = self.bundle_folder(project_dir, spec, settings, version)
        meta_file = folder / "meta.json"
        if meta_file.is_file():
            return folder, json.loads(meta_file.read_text(encoding="utf-8")), False
        from .reference import load_reference

        if progress:
            progress(f"building the reference of {version.ref}")
        reference = load_reference(project_dir, version, store, features=spec.features, path=settings.reference.path,
                                   max_rows=settings.reference.max_rows, seed=settings.reference.seed,
                                   predictions=spec.predictions, categorical=settings.categorical)
        try:
            meta = self.build_bundle(folder, reference, settings, model=version.model, version=version.label,
                                     predictions=spec.predictions, progress=progress)
        except ValueError as exc:
            raise MonitorError(f"cannot build the detector for {version.ref}: {exc}") from exc
        return folder, meta, True

    def open_checker(self, project_dir: Path, spec, settings, version, store, progress=None):
        """The loaded detector folder of ``version`` (built first if it does not exist yet)."""
        folder = self.bundle_folder(project_dir, spec, settings, version)
        built = False
        if not (folder / "meta.json").is_file():
            folder, _, built = self.ensure_bundle(project_dir, spec, settings, version, store, progress)
        bundle = self.open_bundle(folder)
        bundle.built_now = built
        return bundle

    # -- contract ---------------------------------------------------------------------------------------------
    def fingerprint(self, request: FingerprintRequest) -> Mapping[str, str]:
        """At plan: a ground-truth file that exists has the columns the spec names, and its entity keys are
        the watched deployment's."""
        gt_spec = request.resource.spec.get("ground_truth")
        if gt_spec:
            from .ground_truth import check_label_file
            from .kinds import GroundTruth

            deployment = request.upstream.get(f"deployment.{request.resource.spec.get('deployment')}")
            keys = None
            if deployment is not None:
                keys = list((deployment.get("input") or {}).get("entity_keys") or [])
            check_label_file(request.project_dir, GroundTruth.model_validate(gt_spec), keys)
        return {}

    def read(self, request: ReadRequest) -> ReadResult:
        recorded = request.recorded
        outputs = dict(recorded.outputs or {})
        for info in (outputs.get("detectors") or {}).values():
            if not (Path(request.project_dir) / info["path"] / "meta.json").is_file():
                return ReadResult(exists=False)
        actual = self._served_labels(request.project_dir, recorded.spec, request.services)
        drift = {}
        if actual is not None and actual != list(outputs.get("versions") or []):
            drift["versions"] = (outputs.get("versions"), actual)
        return ReadResult(exists=True, outputs=outputs, drift=drift)

    @staticmethod
    def _served_labels(project_dir: Path, spec: Mapping[str, Any], services=None) -> list[str] | None:
        from ml_framework.plugins.models.registry import ModelRegistry

        from .reference import ReferenceError, served_versions

        with _run_state(getattr(services, "state", None), project_dir) as store:
            deployment = store.get(f"deployment.{spec.get('deployment')}")
            if deployment is None:
                return None
            try:
                return [v.label for v in served_versions(deployment, ModelRegistry.for_store(store))]
            except ReferenceError:
                return None

    def apply(self, request: ApplyRequest, ctx: ApplyContext) -> ApplyResult:
        from ml_framework.plugins.models.registry import ModelRegistry

        from .kinds import Monitor
        from .reference import served_versions

        spec = Monitor.model_validate(dict(request.resource.spec))
        settings = self.settings_of(request.resource.spec, request.resource.config)
        address = f"deployment.{spec.deployment}"
        with _run_state(ctx.state, ctx.project_dir) as store:
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
        outputs = {"deployment": spec.deployment, "model": versions[0].model if versions else None,
                   "versions": [v.label for v in versions], "detectors": detectors}
        return ApplyResult(outputs=outputs, message="; ".join(messages))

    def delete(self, request: DeleteRequest, ctx: ApplyContext) -> None:
        name = request.recorded.spec.get("name") or request.recorded.address.split(".", 1)[1]
        shutil.rmtree(monitor_folder(ctx.project_dir, name), ignore_errors=True)


@contextlib.contextmanager
def _run_state(state, project_dir: Path):
    """The run's open state store when the engine lent one, else the project's own, opened here and
    closed after (a caller outside the engine, e.g. a test or script)."""
    if state is not None:
        yield state
        return
    from ml_framework.project import Project

    store = Project.load(Path(project_dir)).open_state()
    try:
        yield store
    finally:
        store.close()
