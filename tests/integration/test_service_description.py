"""What a running deployment says about itself, checked by the tools a user would point at it:

* Schemathesis (an OpenAPI fuzzer) with all its checks against ``/docs.json`` of a real service — one
  whose requests carry entity keys looked up in Feast, raw-only features and feature contracts (the
  example's feature specs), and one with API keys and a rate limit over raw features — reports no failure:
  every schema-valid request is answered as documented, every invalid one is rejected with a documented
  4xx, and no 5xx;
* the root page, opened in headless Chromium, shows the deployment's description, model, version and
  contract, and loads nothing from outside the service.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ml_framework.plugins.bentoml import BentoMLProvider
from ml_framework.plugins.bentoml.testing import deployment_spec, free_port, get_json, stop_all_servers
from ml_framework.plugins.lightgbm import LightGBMProvider
from ml_framework.plugins.models.testing import feature_providers, write_project
from ml_framework.testing.harness import Harness
from feast_example import fraud_model, write_example

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("clean_ml_env")]


def schemathesis(url: str, tmp_path: Path, *headers: str) -> subprocess.CompletedProcess:
    command = [str(Path(sys.executable).with_name("schemathesis")), "run", f"{url}/docs.json", "--url", url,
               "--checks", "all", "--max-examples", "60", "--seed", "7", "--generation-deterministic",
               "--report", "junit", "--report-dir", str(tmp_path / "report")]
    for header in headers:
        command += ["-H", header]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=tmp_path)


def assert_clean(result: subprocess.CompletedProcess) -> None:
    output = result.stdout + result.stderr
    assert result.returncode == 0 and "No issues found" in output, output[-6000:]


@pytest.fixture(scope="module")
def feast_service(tmp_path_factory, module_bentoml_home):
    pytest.importorskip("ml_framework.plugins.feast.online")
    from ml_framework.plugins.feast import FeastProvider

    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("ML_STATE_URL", raising=False)
        root = write_example(tmp_path_factory.mktemp("described") / "example", rows=3000, specs={
            "models.yaml": fraud_model(rounds=30),
            "deploy.yaml": deployment_spec(
                port=free_port(), extra="description: Fraud scores for card transactions.\n"
                                        "input: {entity_keys: [customer_id, merchant_id], raw_features: true}\n")})
        harness = Harness(root, {"feast": FeastProvider(), "lightgbm": LightGBMProvider(), "bentoml": BentoMLProvider()})
        try:
            assert harness.apply().ok
            yield harness.store.get("deployment.fraud-api").outputs["url"], root
        finally:
            harness.destroy()
            harness.close()
            stop_all_servers([root])


def test_the_openapi_document_is_the_contract_the_service_enforces(feast_service):
    url, _ = feast_service
    document = get_json(url + "/docs.json")
    request = document["components"]["schemas"]["Request"]
    with_keys = request["anyOf"][0]
    assert with_keys["required"] == ["entity_keys", "features"]  # the transaction's facts come raw
    assert with_keys["properties"]["entity_keys"]["properties"]["customer_id"]["type"] == "integer"
    features = with_keys["properties"]["features"]
    assert "amount" in features["required"] and "home_country" not in features.get("required", [])
    assert "event_ts" in features["required"]  # a request field of the on-demand view transaction_context
    assert features["properties"]["event_ts"] == {"type": ["string", "null"], "format": "date-time"}
    assert "merchant_category" not in features["properties"]  # derived by the service: never sent
    assert features["properties"]["home_country"]["pattern"] == "^(?:[A-Z]{2})$"  # checks: {regex: ...}
    assert features["properties"]["age"]["minimum"] == 18  # optional: overrides the stored value
    assert features["properties"]["amount"]["exclusiveMinimum"] == 0  # checks: {gt: 0}
    statuses = set(document["paths"]["/predict"]["post"]["responses"])
    assert statuses == {"200", "400", "404", "413", "422", "500", "503"}
    assert document["info"]["description"] == "Fraud scores for card transactions."


def test_schemathesis_with_all_checks_finds_nothing_on_a_service_with_entity_keys_and_contracts(feast_service, tmp_path):
    url, _ = feast_service
    assert_clean(schemathesis(url, tmp_path))


def test_schemathesis_with_all_checks_finds_nothing_on_a_guarded_service(tmp_path, bentoml_home, monkeypatch):
    monkeypatch.setenv("DESCRIBED_KEYS", "k-123")
    root = write_project(tmp_path / "proj", rows=600, gates=())
    (root / "specs" / "deploy.yaml").write_text(deployment_spec(
        port=free_port(), extra="auth: {api_keys_env: DESCRIBED_KEYS}\n"
                                "rate_limit: {requests_per_second: 2000, burst: 2000}\n"))
    harness = Harness(root, {**feature_providers(), "lightgbm": LightGBMProvider(), "bentoml": BentoMLProvider()})
    try:
        assert harness.apply().ok
        url = harness.store.get("deployment.fraud-api").outputs["url"]
        document = get_json(url + "/docs.json")
        assert document["components"]["securitySchemes"]["apiKey"]["name"] == "x-api-key"
        assert {"401", "429"} <= set(document["paths"]["/predict"]["post"]["responses"])
        assert_clean(schemathesis(url, tmp_path, "x-api-key: k-123"))
    finally:
        harness.destroy()
        harness.close()
        stop_all_servers([root])


def test_the_root_page_in_chromium_describes_the_deployment_and_loads_nothing_from_outside(feast_service, tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "chromium is installed by scripts/setup-test.sh"
    url, _ = feast_service
    result = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr",
                             "--v=0", f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", url + "/"],
                            capture_output=True, text=True, timeout=120)
    dom = result.stdout
    assert "Fraud scores for card transactions." in dom and "serving <b>v1</b>" in dom, dom[:2000]
    assert "features.event_ts" in dom and "timestamp (ISO 8601)" in dom, dom
    assert "between 18.0 and 120.0" in dom and "entity_keys.customer_id" in dom, dom
    assert "BentoML" not in dom and "http://" not in dom.replace("http://HOST", "")
    assert "Failed to load resource" not in result.stderr and "ERR_" not in result.stderr, result.stderr[-3000:]
