"""Capabilities of drift backends (declared by the monitoring plugin): what `ml monitor` asks of the
backend named in a Monitor's ``detector`` block."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Protocol

from ml_framework.contract import Capability

__all__ = ["DriftChecker", "ChecksDrift", "DRIFT_CHECKER"]


class DriftChecker(Protocol):
    """A loaded detector for one model version: ``check(window)`` returns a DriftResult
    (ml_framework.plugins.monitoring.results) for an encoded window of logged requests."""

    def check(self, window: Any) -> Any: ...


class ChecksDrift(Protocol):
    """Open (building it first when missing) the drift checker of a Monitor for one model version.
    ``spec``: the validated Monitor; ``settings``: the detector block's settings model; ``version``: the
    registry's ModelVersion; ``store``: the open state store."""

    def open_checker(self, project_dir: Path, spec: Any, settings: Any, version: Any, store: Any,
                     progress: Callable[[str], None] | None = None) -> DriftChecker: ...


DRIFT_CHECKER = Capability("drift_checker", ChecksDrift, "checks logged requests for drift (ml monitor)")
