"""The closed monitoring loop as tests drive it, shared by every drift backend's loop tests
(tests/integration/test_monitor_loop.py: alibi-detect, test_monitor_scipy.py: scipy-drift).

    loop = make_loop(tmp_path, backend="scipy-drift")   # LightGBM trained, deployment and monitor applied
    loop.traffic(1000, seed=2, shift={"txn_count_7d": 0.8})
    result, data = run_json(loop)                       # `ml monitor run --json`, in-process

Not a test module (no ``test_`` prefix): pytest collects nothing here. The BentoML home comes from the
``bentoml_home`` fixture of tests/conftest.py.
"""

from __future__ import annotations

import json
from pathlib import Path

from ml_framework.plugins.alibi_detect import AlibiDetectProvider
from ml_framework.plugins.lightgbm import LightGBMProvider
from ml_framework.plugins.models.predictor import load_predictor
from ml_framework.plugins.models.registry import ModelRegistry
from ml_framework.plugins.models.testing import feature_providers, write_project
from ml_framework.plugins.monitoring.reference import load_reference
from ml_framework.plugins.monitoring.testing import monitor_specs, serving_provider, traffic_frame, write_traffic
from ml_framework.plugins.scipy_drift import ScipyDriftProvider
from ml_framework.testing import run_cli
from ml_framework.testing.harness import Harness

__all__ = ["FEATURES", "DRIFT_BACKENDS", "providers", "detector", "on_backend", "Loop", "make_loop",
           "run_json"]

FEATURES = ["amount_mean_7d", "txn_count_7d", "segment"]
DRIFT_BACKENDS = {"alibi-detect": AlibiDetectProvider, "scipy-drift": ScipyDriftProvider}


def providers(serving=None, backend: str = "alibi-detect"):
    """The loop's providers: features, LightGBM, the in-memory serving stand-in and one drift backend."""
    return {**feature_providers(), "lightgbm": LightGBMProvider(), "serving": serving or serving_provider(),
            backend: DRIFT_BACKENDS[backend]()}


def detector(backend: str = "alibi-detect", **settings) -> str:
    """The ``detector`` block of :func:`monitor_specs`'s default, on ``backend`` (``tabular``: both backends'
    KS / chi-squared per feature)."""
    fields = {"method": "tabular", "p_val": 0.05, **settings}
    return "{backend: " + backend + "".join(f", {k}: {v}" for k, v in fields.items()) + "}"


def on_backend(specs: str, backend: str) -> str:
    """The same specs with every ``detector.backend`` changed to ``backend`` (and nothing else)."""
    return specs.replace("{backend: alibi-detect", "{backend: " + backend)


class Loop:
    def __init__(self, root: Path, provider_map):
        self.root = root
        self.providers = provider_map
        self.harness = Harness(root, provider_map)

    def apply(self):
        report = self.harness.apply()
        assert report.ok, [(o.address, o.error) for o in report.outcomes if o.error]
        return report

    def ml(self, *args):
        return run_cli(list(args), providers=self.providers, cwd=self.root)

    @property
    def registry(self):
        return ModelRegistry.for_project(self.root)

    def reference(self, label="v1"):
        version = self.registry.get("fraud", label)
        return load_reference(self.root, version, self.harness.store, predictions=False).frame, version

    def traffic(self, n, *, label="v1", seed=0, **kwargs):
        frame, version = self.reference(label)
        rows = traffic_frame(frame, n, seed=seed, **{k: kwargs.pop(k) for k in ("shift", "scale", "replace") if k in kwargs})
        predict = load_predictor(version.bentoml_tag).predict
        return write_traffic(self.root, "fraud-api", rows, version=label, predict=predict, features=FEATURES,
                             seed=seed, **kwargs), rows

    def close(self):
        self.harness.close()


def make_loop(tmp_path, *, specs: str | None = None, serving=None, backend: str = "alibi-detect", **model_args) -> Loop:
    """A project trained and applied with a monitor on ``backend`` (``specs`` replace the default monitor
    specs; their detector blocks name the backend)."""
    root = write_project(tmp_path / "proj", rows=2000, **model_args)
    (root / "specs" / "monitor.yaml").write_text(specs or monitor_specs(detector=detector(backend)))
    loop = Loop(root, providers(serving, backend))
    loop.apply()
    return loop


def run_json(loop, *args):
    result = loop.ml("monitor", "run", "--json", *args)
    return result, json.loads(result.stdout)
