"""Mistakes `ml validate` catches from the specs alone, before anything trains or deploys — each with the
file, line and field: metrics and gates that do not fit the task, a slice listed twice, deployment entity
keys that are not join keys of the model's entities, two deployments on one port."""

from __future__ import annotations

import textwrap

from ml_framework.testing import InMemoryProvider, run_cli

SPECS = """\
kind: Entity
name: patient
join_keys: [patient_id]
backend: memory
---
kind: Source
name: visits
path: data/visits.parquet
timestamp_field: ts
backend: memory
---
kind: FeatureView
name: vitals
entities: [patient]
source: visits
backend: memory
features:
  heart_rate: {dtype: float32}
---
kind: Model
name: stay
task: regression
label: {source: visits, column: days}
features: ["vitals:*"]
metrics: [rmse, auc]
gates: ["rmse <= 2", "accuracy >= 0.8"]
slices: [ward, ward]
trainer: {backend: memory}
---
kind: Deployment
name: stay-api
model: stay
serving: {backend: bentoml, port: 3100}
input: {entity_keys: [patient_idd]}
---
kind: Deployment
name: stay-shadow
model: stay
serving: {backend: bentoml, port: 3100}
"""


def providers():
    return {"memory": InMemoryProvider(), "bentoml": InMemoryProvider("bentoml", kinds=("Deployment",))}


def line_of(text: str, needle: str, occurrence: int = 1) -> int:
    lines = [i for i, line in enumerate(text.splitlines(), 1) if needle in line]
    return lines[occurrence - 1]


def test_validate_names_each_cross_field_mistake_with_file_line_and_field(tmp_path):
    (tmp_path / "specs").mkdir()
    (tmp_path / "specs" / "all.yaml").write_text(SPECS)
    result = run_cli(["validate"], providers=providers(), cwd=tmp_path)
    assert result.exit_code == 1
    out = result.output
    assert "Traceback" not in out
    assert f"specs/all.yaml:{line_of(SPECS, 'metrics:')}: metrics.1: metric 'auc' is not defined for a regression model" in out
    assert f"specs/all.yaml:{line_of(SPECS, 'gates:')}: gates.1: gate 'accuracy >= 0.8'" in out
    assert f"slices.1: slice column 'ward' is listed twice" in out
    assert (f"specs/all.yaml:{line_of(SPECS, 'entity_keys')}: input.entity_keys.0: 'patient_idd' is not a join key "
            "of the entities behind model stay's features") in out
    assert "did you mean 'patient_id'?" in out
    assert (f"specs/all.yaml:{line_of(SPECS, 'port: 3100', 2)}: serving.port: port 3100 on 127.0.0.1 is already taken "
            "by deployment.stay-api") in out


def test_a_correct_project_passes_the_same_checks(tmp_path):
    fixed = (SPECS.replace("metrics: [rmse, auc]", "metrics: [rmse]").replace('"accuracy >= 0.8"', '"mae <= 3"')
             .replace("slices: [ward, ward]", "slices: [ward]").replace("patient_idd", "patient_id")
             .replace("port: 3100}\n", "port: 3101}\n", 1))
    fixed = fixed[::-1].replace("0013 :trop", "2013 :trop", 1)[::-1]  # the second deployment: its own port
    (tmp_path / "specs").mkdir()
    (tmp_path / "specs" / "all.yaml").write_text(textwrap.dedent(fixed))
    result = run_cli(["validate"], providers=providers(), cwd=tmp_path)
    assert result.exit_code == 0, result.output

