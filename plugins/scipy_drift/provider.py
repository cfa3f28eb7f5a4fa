"""`ScipyDriftProvider`: the Monitor kind on SciPy's two-sample tests.

The contract behaves as every drift backend's (:class:`ml_framework.plugins.monitoring.backend.DriftBackend`):
apply builds the detector of every model version the monitored deployment serves, from that version's
saved reference, under ``.ml/monitors/<monitor>/<model>/<version>-<key>/`` and records them in state
(outputs ``detectors``), reusing a folder built with the same settings; read reports a folder deleted by
hand (gone) and a deployment now serving other versions (drift); delete removes the monitor's folder;
``open_checker`` (the ``drift_checker`` capability) opens a folder for `ml monitor`, building it first
for a version promoted since the last apply. What a folder holds: :mod:`.detectors`.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from ml_framework.plugins.monitoring.backend import DriftBackend, MonitorError, monitor_folder

__all__ = ["ScipyDriftProvider", "MonitorError", "monitor_folder"]


class ScipyDriftProvider(DriftBackend):
    name: ClassVar[str] = "scipy-drift"
    kinds: ClassVar[tuple[str, ...]] = ("Monitor",)
    capabilities: ClassVar[tuple[str, ...]] = ("configure", "drift_checker")

    @property
    def version(self) -> str:
        from importlib.metadata import PackageNotFoundError, version

        try:
            return f"scipy {version('scipy')}"
        except PackageNotFoundError:
            return "scipy (not installed)"

    def config_model(self, kind: str):
        from .config import ScipyDriftSettings

        return ScipyDriftSettings if kind == "Monitor" else None

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
