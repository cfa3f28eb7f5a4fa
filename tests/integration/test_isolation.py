"""Two copies of one project on one machine (a copy made with its `.ml/` folder, as people do to
experiment), on the real parts: each has its own BentoML model store and its own Prometheus folder, so
each service's `/metrics` counts only its own requests, and destroying the copy leaves the original's
models and service untouched."""

from __future__ import annotations

import re
import shutil
import urllib.request

import pytest

from ml_framework.plugins.bentoml import BentoMLProvider
from ml_framework.plugins.bentoml.testing import deployment_spec, free_port, post, raw_payloads, stop_all_servers
from ml_framework.plugins.lightgbm import LightGBMProvider
from ml_framework.plugins.models.artifacts import bentoml_home, model_exists, store_is_shared
from ml_framework.plugins.models.testing import feature_providers, write_project
from ml_framework.testing.harness import Harness

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("clean_ml_env")]
COUNT = r'ml_predictions_total\{deployment="fraud-api",model_version="v1",status="200",variant="stable"\} (\S+)'


def providers():
    return {**feature_providers(), "lightgbm": LightGBMProvider(), "bentoml": BentoMLProvider()}


def served(url: str) -> float:
    with urllib.request.urlopen(url + "/metrics", timeout=10) as response:
        found = re.search(COUNT, response.read().decode())
    return float(found.group(1)) if found else 0.0


def test_two_copies_have_separate_models_and_metrics_and_destroying_one_spares_the_other(tmp_path, monkeypatch):
    monkeypatch.delenv("BENTOML_HOME", raising=False)  # the default: each project has its own store
    original = write_project(tmp_path / "original", rows=800, gates=())
    (original / "specs" / "deploy.yaml").write_text(deployment_spec(port=free_port()))
    copy = tmp_path / "copy"
    first = Harness(original, providers())
    second = None
    try:
        assert first.apply().ok
        tag = first.store.get("model.fraud").outputs["bentoml_tag"]
        assert bentoml_home(original) == (original / ".ml" / "bentoml").resolve() and not store_is_shared(original)
        assert model_exists(tag, original) and tag.startswith("fraud:")  # its own store: no namespace needed

        shutil.copytree(original, copy, symlinks=True)
        (copy / "specs" / "deploy.yaml").write_text(deployment_spec(port=free_port()))
        second = Harness(copy, providers())
        assert second.apply().ok  # the copy starts its own service from its own store
        url_a = first.store.get("deployment.fraud-api").outputs["url"]
        url_b = second.store.get("deployment.fraud-api").outputs["url"]
        assert url_a != url_b and model_exists(tag, copy)

        payloads = raw_payloads(30)
        for payload in payloads:
            assert post(url_a + "/predict", payload)[0] == 200
        for payload in payloads[:5]:
            assert post(url_b + "/predict", payload)[0] == 200
        assert (served(url_a), served(url_b)) == (30.0, 5.0)  # each /metrics describes only itself

        assert second.destroy().ok
        assert model_exists(tag, original)  # the original's models are its own
        assert post(url_a + "/predict", payloads[0])[0] == 200 and served(url_a) == 31.0
        assert not first.plan().has_changes
    finally:
        if second is not None:
            second.close()
        stop_all_servers([copy])
        try:
            first.destroy()
        finally:
            first.close()
            stop_all_servers([original])
