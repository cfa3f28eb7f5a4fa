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

The contract hooks, the detector folders and ``open_checker`` are shared by every drift backend
(:class:`ml_framework.plugins.monitoring.backend.DriftBackend`); this class says how alibi-detect's
detectors are configured, built and opened.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from ml_framework.plugins.monitoring.backend import DriftBackend, MonitorError, monitor_folder

__all__ = ["AlibiDetectProvider", "MonitorError", "monitor_folder"]


class AlibiDetectProvider(DriftBackend):
    name: ClassVar[str] = "alibi-detect"
    kinds: ClassVar[tuple[str, ...]] = ("Monitor",)
    capabilities: ClassVar[tuple[str, ...]] = ("configure", "drift_checker")

    @property
    def version(self) -> str:
        from importlib.metadata import PackageNotFoundError, version

        try:
            return f"alibi-detect {version('alibi-detect')}"
        except PackageNotFoundError:
            return "alibi-detect (not installed)"

    def config_model(self, kind: str):
        from .config import AlibiDetectSettings

        return AlibiDetectSettings if kind == "Monitor" else None

    # -- the detectors ------------------------------------------------------------------------------------
    def bundle_key(self, settings, spec) -> str:
        from .detectors import bundle_key

        return bundle_key(settings.model_dump(), spec.features, spec.predictions)

    def build_bundle(self, folder: Path, reference, settings, *, model: str, version: str, predictions: bool,
                     progress=None) -> dict:
        from .detectors import build_bundle

        return build_bundle(folder, reference, settings, model=model, version=version, predictions=predictions,
                            progress=progress)

    def open_bundle(self, folder: Path):
        from .detectors import open_bundle

        return open_bundle(folder)
