"""The example monitor (specs/monitors/fraud-drift.yaml) on the example project's Feast features: the model
trains through Feast's point-in-time join and saves its reference (a sample of that frame), the monitor
builds its detector from it, and synthetic traffic drawn from it is checked (no drift), then shifted
(drift named)."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("ml_framework.plugins.feast.training")

from ml_framework.testing import run_cli  # noqa: E402
from ml_framework.plugins.scipy_drift import ScipyDriftProvider  # noqa: E402
from ml_framework.plugins.lightgbm import LightGBMProvider  # noqa: E402
from feast_example import fraud_model, write_example  # noqa: E402
from ml_framework.plugins.monitoring.testing import serving_provider, traffic_frame, write_traffic  # noqa: E402

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("clean_ml_env")]


MODEL = fraud_model(gates=["auc >= 0.5"]) + """\
---
kind: Deployment
name: fraud-api
model: fraud
serving: {backend: serving}
"""


@pytest.fixture
def example(tmp_path, bentoml_home):
    return write_example(tmp_path / "example", also=["monitors"], specs={"models.yaml": MODEL})


def test_the_example_monitor_on_feast_features(example):
    from ml_framework.plugins.models.registry import ModelRegistry
    from ml_framework.plugins.feast import FeastProvider
    from ml_framework.plugins.monitoring.reference import load_reference
    from ml_framework.plugins.models.predictor import load_predictor

    providers = {"feast": FeastProvider(), "lightgbm": LightGBMProvider(), "serving": serving_provider(),
                 "scipy-drift": ScipyDriftProvider()}

    def ml(*args):
        return run_cli(list(args), providers=providers, cwd=example)

    applied = ml("apply", "--auto-approve")
    assert applied.exit_code == 0, applied.output
    state = json.loads(ml("state", "show", "monitor.fraud-drift").stdout)
    detector = state["outputs"]["detectors"]["v1"]
    assert detector["method"] == "auto" and detector["prediction_drift"] and detector["reference_rows"] > 1000
    assert ml("plan", "--detailed-exitcode").exit_code == 0

    from ml_framework.project import Project

    project = Project.load(example)
    store = project.open_state()
    try:
        version = ModelRegistry.for_store(store).resolve("fraud")
        reference = load_reference(example, version, store, predictions=False).frame
    finally:
        store.close()
    features = list(reference.columns)
    predict = load_predictor(version.bentoml_tag).predict
    calm = traffic_frame(reference, 2000, seed=1)
    write_traffic(example, "fraud-api", calm, version="v1", predict=predict, features=features, entity_keys=())
    result = ml("monitor", "run", "--json")
    assert result.exit_code == 0, result.output
    found = json.loads(result.stdout)[0]["versions"][0]
    assert found["drift"]["status"] == "ok" and found["drift"]["n"] == 2000
    assert found["performance"]["status"] == "inconclusive"  # no chargebacks file yet

    numeric = next(f for f in features if str(reference[f].dtype).startswith("float"))
    moved = traffic_frame(reference, 2000, seed=2, shift={numeric: 1.0})
    write_traffic(example, "fraud-api", moved, version="v1", predict=predict, features=features, entity_keys=())
    drift = ml("monitor", "run")
    assert drift.exit_code == 3, drift.output
    assert f"features={numeric}(p=" in drift.output
