"""The second example project (examples/clinic), as a user runs it, on the real backends: a regression
model, a torch MLP and a multiclass model with named classes, a service looked up by patient, batch
bands, a scipy-drift monitor — and a retrained regression model rolled out by shadow under live traffic,
its agreement judged on the label's scale (the fixed ±0.05 used to fail every regression shadow)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from ml_framework.plugins.bentoml.testing import LoadGenerator, free_port, post

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("clean_ml_env", "bentoml_home")]

REPO = Path(__file__).resolve().parents[2]
ML = str(Path(sys.executable).with_name("ml"))


def _ml(root: Path, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([ML, *args], cwd=root, env=dict(os.environ), capture_output=True, text=True, timeout=timeout)


def _bentoml_env(root: Path) -> dict[str, str]:
    from ml_framework.plugins.models.artifacts import bentoml_home

    return dict(os.environ, BENTOML_HOME=str(bentoml_home(root)), BENTOML_DO_NOT_TRACK="True")


def _bentoml(root: Path, *args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bentoml", *args], cwd=root, env=_bentoml_env(root), text=True, **kwargs)


def check_packaging(root: Path, url: str, patient: int, key: str) -> None:
    """`ml package`: the Bento answers as the running service does when served by BentoML from its store,
    and the manifests pass Kubernetes' schemas with the API keys referenced, never copied."""
    packaged = _ml(root, "package", "progression-api")
    assert packaged.returncode == 0, packaged.stdout + packaged.stderr
    tag = next(line.split()[1] for line in packaged.stdout.splitlines() if line.strip().startswith("Bento"))
    about = json.loads(_bentoml(root, "get", tag, "-o", "json", capture_output=True, check=True).stdout)
    served = json.loads(_ml(root, "state", "show", "deployment.progression-api").stdout)["outputs"]["stable"]["tag"]
    assert [m["tag"] for s in about["services"] for m in s["models"]] == [served]
    assert about["labels"]["ml.deployment"] == "progression-api"
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "bentoml", "serve", tag, "--port", str(port)], cwd=root,
                              env=_bentoml_env(root),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        from ml_framework.plugins.bentoml.process import is_ready

        deadline = time.monotonic() + 120
        while not is_ready(f"http://127.0.0.1:{port}") and server.poll() is None and time.monotonic() < deadline:
            time.sleep(0.3)  # a new process: nothing to await but its port
        request = {"entity_keys": {"patient_id": patient}}
        code, packed, _ = post(f"http://127.0.0.1:{port}/predict", request)
        assert code == 200, packed
        live = post(url + "/predict", request)[1]
        assert packed["prediction"] == pytest.approx(live["prediction"]) and packed["model_version"] == "v1"
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=60)

    band = _ml(root, "package", "band-api", "--namespace", "clinic", "--replicas", "3")
    assert band.returncode == 0, band.stdout + band.stderr
    manifest = root / "dist" / "band-api" / "k8s" / "band-api.yaml"
    checked = subprocess.run([str(Path(sys.executable).with_name("kubernetes-validate")), "--strict", str(manifest)],
                             capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    import yaml

    documents = {d["kind"]: d for d in yaml.safe_load_all(manifest.read_text())}
    assert set(documents) == {"Deployment", "Service", "HorizontalPodAutoscaler"}
    pod = documents["Deployment"]["spec"]["template"]["spec"]
    assert documents["Deployment"]["metadata"]["namespace"] == "clinic" and documents["Deployment"]["spec"]["replicas"] == 3
    assert pod["volumes"][0]["secret"]["secretName"] == "band-api-api-keys"
    assert pod["containers"][0]["readinessProbe"]["httpGet"]["path"] == "/readyz"
    bento = root / "dist" / "band-api" / "bento"
    everything = manifest.read_text() + "".join(p.read_text(errors="replace") for p in bento.rglob("*.json"))
    assert key not in everything  # keys travel by reference only
    control = json.loads((bento / "control.json").read_text())
    assert control["guards"]["auth"]["file"] == "/etc/ml/api-keys/keys"


def check_web_view(root: Path, tmp_path: Path) -> None:
    """`ml ui` in a real headless Chromium: every page renders this project's real data, and the graph is
    drawn (its colours are in the screenshot)."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "chromium is installed by scripts/setup-test.sh"
    port = free_port()
    server = subprocess.Popen([ML, "ui", "--port", str(port)], cwd=root, env=dict(os.environ),
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    base = f"http://127.0.0.1:{port}"

    def browse(path: str, *extra: str) -> subprocess.CompletedProcess:
        return subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr",
                               "--v=0", f"--user-data-dir={tmp_path / 'chromium'}", *extra, base + path],
                              capture_output=True, text=True, timeout=120)
    try:
        from ml_framework.plugins.bentoml.process import is_ready

        deadline = time.monotonic() + 60
        while not is_ready(base) and server.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)  # a new process: nothing to await but its port
        expected = {
            "/": ["Resource graph (11 resources)", "deployment.band-api (applied)", "model.progression_mlp",
                  "monitor.progression-drift"],
            "/plan": ["Plan:", "Changes", "deployment.progression-api"],
            "/history": ["apply", "succeeded"],
            "/models": ["band", "accuracy", "rmse &lt;= 75: passed", "production"],
            "/models/progression": ["progression v1", "Full lineage", "vitals:bmi", "model card"],
            # a regression model's card: its held-out figures with intervals, plotted; the monitor watching it
            "/models/progression/v1/card": ["Model card: progression v1", "95 % interval", "rmse (primary)",
                                            "Global importance", "monitor.progression-drift"],
            "/deployments": ["deployment.band-api", "healthy", "API keys", "blue_green"],
            "/features": ["featureview.vitals", "bmi", "float"],
            "/monitors": ["progression-drift", "progression-api"],
            "/monitors/progression-drift": ["progression-drift"],
            "/resource/model.band": ["model.band", "Outputs", "Runs that touched it"],
        }
        for path, texts in expected.items():
            page = browse(path, "--dump-dom")
            assert page.returncode == 0, page.stderr[-2000:]
            for text in texts:
                assert text in page.stdout, f"{path}: {text!r} not in\n{page.stdout[:3000]}"
            assert "This page failed" not in page.stdout and "Failed to load resource" not in page.stderr
        shot = tmp_path / "overview.png"
        assert browse("/", f"--screenshot={shot}", "--window-size=1400,1000").returncode == 0
        from PIL import Image

        colours = set(Image.open(shot).convert("RGB").getdata())
        assert {(253, 230, 138), (187, 247, 208), (219, 234, 254)} <= colours  # model, service and data boxes
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=30)


def test_the_clinic_example_applies_serves_scores_and_rolls_out_a_regression_model_by_shadow(tmp_path):
    root = tmp_path / "clinic"
    shutil.copytree(REPO / "examples" / "clinic", root, ignore=shutil.ignore_patterns("data", ".ml"))
    subprocess.run([sys.executable, str(root / "generate_data.py"), "--out", str(root / "data"), "--rows", "2000"],
                   check=True, capture_output=True, timeout=300)
    patients = sorted(pd.read_parquet(root / "data" / "visits.parquet")["patient_id"].unique().tolist())
    ports = [f"deployments.progression-api.serving.port={free_port()}", f"deployments.band-api.serving.port={free_port()}"]
    port = ports
    fast = ["+deployments.progression-api.rollout.interval=1s", "+deployments.progression-api.rollout.max_wait=60s",
            "+deployments.band-api.rollout.interval=1s", "deployments.band-api.rollout.max_wait=3s"]
    try:
        applied = _ml(root, "apply", "--auto-approve", *port, *fast)
        assert applied.returncode == 0, applied.stdout[-3000:] + applied.stderr[-2000:]
        assert _ml(root, "plan", "--detailed-exitcode", *port, *fast).returncode == 0

        # The band service: multiclass answers by name, behind the API key generate_data.py wrote.
        key = (root / "data" / "band-api.keys").read_text().splitlines()[-1]
        band_url = json.loads(_ml(root, "status", "--json").stdout)["deployment.band-api"]["url"]
        assert post(band_url + "/predict", {"entity_keys": {"patient_id": patients[0]}})[0] == 401
        code, body, _ = post(band_url + "/predict", {"entity_keys": {"patient_id": patients[0]}},
                             headers={"x-api-key": key})
        assert code == 200 and body["class"] in {"low", "medium", "high"} and set(body["probabilities"]) == {
            "low", "medium", "high"}
        assert post(band_url + "/predict", {"entity_keys": {"patient_id": patients[0]}},
                    headers={"x-api-key": key + "x"})[0] == 401

        status = json.loads(_ml(root, "status", "--json").stdout)["deployment.progression-api"]
        url = status["url"]
        code, body, _ = post(url + "/predict", {"entity_keys": {"patient_id": patients[0]}})
        assert code == 200 and isinstance(body["prediction"], float) and body["model_version"] == "v1"

        bands = pd.read_parquet(root / "data" / "predictions" / "bands.parquet")
        assert len(bands) == 2000 and set(bands["prediction"]) <= {"low", "medium", "high"}
        assert {"proba_low", "proba_medium", "proba_high"} <= set(bands.columns)
        assert _ml(root, "monitor", "run").returncode == 0  # scipy-drift, a fresh process

        # Outcomes observed later, per patient: joined to the prediction served for that patient (and its
        # version), not to whichever prediction is nearest in time.
        served = []
        for patient in patients[:40]:
            code, body, _ = post(url + "/predict", {"entity_keys": {"patient_id": patient}})
            assert code == 200
            served.append((patient, body["prediction"]))
        observed = pd.DataFrame({"patient_id": [p for p, _ in served],
                                 "observed_ts": pd.Timestamp.now(tz="UTC") + pd.Timedelta(seconds=1),
                                 "progression": [value + 10.0 for _, value in served]})  # off by 10 each
        observed.to_parquet(root / "data" / "observed.parquet", index=False)
        ran = _ml(root, "monitor", "run", "progression-drift", "--json", "--no-actions")
        result = json.loads(ran.stdout)
        result = result[0] if isinstance(result, list) else result
        performance = [v["performance"] for v in result["versions"] if v.get("performance")]
        assert performance and performance[0]["n"] >= 40 and performance[0]["matched_labels"] >= 40, ran.stdout[-3000:]
        rmse = next(m for m in performance[0]["metrics"] if m["metric"] == "rmse" and not m.get("slice"))
        assert abs(rmse["value"] - 10.0) < 1e-6  # each label credited to its own patient's served prediction

        check_packaging(root, url, patients[0], key)
        check_web_view(root, tmp_path)

        # A retrained regression model reaches users through a shadow rollout, analysed under live load.
        retrain = "models.progression.trainer.params.num_boost_round=320"  # a retrain that mostly agrees
        plan = _ml(root, "plan", *port, *fast, retrain)
        assert "agreement ≥ 80% (within ±" in plan.stdout and "validation RMSE" in plan.stdout, plan.stdout
        payloads = [{"entity_keys": {"patient_id": int(p)}} for p in patients]
        with LoadGenerator(url, payloads, threads=3) as load:
            rolled = _ml(root, "apply", "--auto-approve", *port, *fast, retrain, timeout=900)
        assert rolled.returncode == 0, rolled.stdout[-3000:] + rolled.stderr[-2000:]
        # Nothing failed during the rollout: answers or the example's rate limit (429), never a 5xx.
        assert set(load.statuses) <= {200, 429} and load.statuses[200] > 100, load.statuses
        for _ in range(20):  # the burst the load used up refills (429 says when)
            code, body, headers = post(url + "/predict", {"entity_keys": {"patient_id": patients[-1]}})
            if code != 429:
                break
            time.sleep(float(headers.get("retry-after") or headers.get("Retry-After") or 0.5))
        assert code == 200 and body["model_version"] == "v2"
    finally:
        _ml(root, "destroy", "--auto-approve", *port)
