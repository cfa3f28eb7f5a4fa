"""The provider contract suite (ml_framework.testing.contract) against the bentoml backend, with real
`bentoml serve` processes: apply then plan is empty, a second apply is a no-op, destroy removes (the
process is gone: read says so), an interrupted apply loses nothing recorded."""

from __future__ import annotations

import pytest

from ml_framework.testing.contract import ProviderContract
from ml_framework.plugins.bentoml import BentoMLProvider
from ml_framework.plugins.bentoml.testing import deployment_spec, free_port, stop_all_servers
from ml_framework.plugins.lightgbm import LightGBMProvider
from ml_framework.plugins.models.testing import feature_providers, write_project

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("clean_ml_env")]


class TestBentoMLProviderContract(ProviderContract):
    @pytest.fixture
    def contract_project(self, tmp_path, bentoml_home):
        root = write_project(tmp_path / "proj", rows=600, gates=())
        (root / "specs" / "deploy.yaml").write_text(deployment_spec(port=free_port()))
        yield root
        stop_all_servers([root])

    @pytest.fixture
    def contract_providers(self):
        return {**feature_providers(), "lightgbm": LightGBMProvider(), "bentoml": BentoMLProvider()}
