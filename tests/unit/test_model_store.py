"""Where a project's models live: its own BentoML home by default; a shared store only on purpose, with
model names namespaced by project and deletes limited to the project's own namespace."""

from __future__ import annotations

import os
from pathlib import Path

from ml_framework.plugins.bentoml.process import deployment_home
from ml_framework.plugins.models.artifacts import bento_name, bentoml_home, delete_models, namespace, store_is_shared


def test_default_is_the_projects_own_store(tmp_path, monkeypatch):
    monkeypatch.delenv("BENTOML_HOME", raising=False)
    project = tmp_path / "proj"
    project.mkdir()
    assert bentoml_home(project) == (project / ".ml" / "bentoml").resolve()
    assert not store_is_shared(project) and namespace(project) == "" and bento_name("Fraud", project) == "fraud"


def test_bentoml_home_in_the_environment_is_a_shared_store_with_namespaced_names(tmp_path, monkeypatch):
    monkeypatch.setenv("BENTOML_HOME", str(tmp_path / "shared"))
    a, b = tmp_path / "a" / "proj", tmp_path / "b" / "proj"  # two copies: same folder name, other paths
    a.mkdir(parents=True)
    b.mkdir(parents=True)
    assert bentoml_home(a) == bentoml_home(b) == (tmp_path / "shared").resolve()
    assert store_is_shared(a) and bento_name("fraud", a).startswith("proj-") and bento_name("fraud", a).endswith(".fraud")
    assert bento_name("fraud", a) != bento_name("fraud", b)


def test_ml_yaml_names_the_store_relative_to_the_project(tmp_path, monkeypatch):
    monkeypatch.setenv("STORES", str(tmp_path / "stores"))
    project = tmp_path / "proj"
    project.mkdir()
    (project / "ml.yaml").write_text("backends:\n  bentoml: {home: ../team-store}\n")
    assert bentoml_home(project) == (tmp_path / "team-store").resolve() and store_is_shared(project)
    (project / "ml.yaml").write_text("backends:\n  bentoml: {home: '${STORES}/x'}\n")
    assert bentoml_home(project) == (tmp_path / "stores" / "x").resolve()
    (project / "ml.yaml").write_text("backends:\n  bentoml: {home: .ml/models-here}\n")
    assert not store_is_shared(project)


def test_a_project_deletes_only_its_own_namespace_in_a_shared_store(tmp_path, monkeypatch):
    monkeypatch.setenv("BENTOML_HOME", str(tmp_path / "shared"))
    original, copy = tmp_path / "original", tmp_path / "copy"
    original.mkdir()
    copy.mkdir()
    theirs = f"{bento_name('fraud', original)}:v1abc"
    mine = f"{bento_name('fraud', copy)}:v1def"
    for tag in (theirs, mine):
        folder = tmp_path / "shared" / "models" / tag.split(":")[0] / tag.split(":")[1]
        folder.mkdir(parents=True)
        (folder / "model.yaml").write_text("name: x\n")
    # The copy's state recorded the original's tag too (it was copied with .ml/): destroying the copy
    # must not delete what the original serves.
    assert delete_models([theirs, mine], copy) == [mine]
    assert (tmp_path / "shared" / "models" / theirs.split(":")[0]).exists()


def test_each_deployment_gets_its_own_home_linking_the_projects_models(tmp_path):
    store = tmp_path / "store"
    home = deployment_home(tmp_path / "svc", store)
    assert home == tmp_path / "svc" / "bentoml"
    assert (home / "models").is_symlink() and Path(os.readlink(home / "models")) == store / "models"
    (home / "models").unlink()
    (home / "models").mkdir()  # a folder where the link belongs (e.g. copied without symlinks): repaired
    assert deployment_home(tmp_path / "svc", store) == home and (home / "models").is_symlink()
