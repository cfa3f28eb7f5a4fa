"""The batch backend end to end, in-process: a small LightGBM model trained in the fixture project
(ml_framework.plugins.models.testing), then BatchPrediction specs planned and applied through the Harness (real SQLite
state, BentoML store in a temporary BENTOML_HOME): outputs, no-op plans, changed input/model version,
delete, bad input (previous output left intact) and the provider contract suite."""

from __future__ import annotations

from pathlib import Path

import pytest

from ml_framework.plugins.models.registry import ModelRegistry
from ml_framework.testing import run_cli
from ml_framework.testing.contract import ProviderContract
from ml_framework.testing.harness import Harness
from ml_framework.plugins.batch.testing import ADDRESS, batch_providers, batch_spec, write_batch
from ml_framework.plugins.models.testing import write_data, write_project

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("clean_ml_env", "bentoml_home")]


def providers():
    return batch_providers()


@pytest.fixture
def project(tmp_path):
    root = write_project(tmp_path / "proj", rows=2000)
    write_batch(root, batch_spec())
    return root


@pytest.fixture
def harness(project):
    h = Harness(project, providers())
    yield h
    h.close()


def outcome(report, address=ADDRESS):
    return next(o for o in report.outcomes if o.address == address)


def read_output(root: Path, rel: str = "out/scores.parquet"):
    import pandas as pd

    return pd.read_parquet(root / rel)


def training_frame(harness, root: Path):
    """The point-in-time frame training builds for the label rows (ml_framework.plugins.models.data)."""
    from ml_framework.plugins.models.data import load_frame, resolve_inputs

    def lookup(address):
        record = harness.store.get(address)
        return (dict(record.spec), record.backend) if record else None

    data = resolve_inputs(harness.store.get("model.fraud").spec, lookup)
    return load_frame(data, root, route="parquet").df


def predictor_of(root: Path, ref: str = "fraud"):
    from ml_framework.plugins.models.predictor import load_predictor

    return load_predictor(ModelRegistry.for_project(root).resolve(ref).bentoml_tag)


# -- apply, no-op, outputs ----------------------------------------------------------------------------------
def test_apply_scores_with_the_production_version_through_the_training_join_then_nothing_to_do(harness, project):
    import numpy as np

    report = harness.apply()
    assert report.ok, report.outcomes
    outputs = harness.store.get(ADDRESS).outputs
    assert outputs["rows"] == 2000 and outputs["chunks"] == 3  # 700 + 700 + 600
    assert outputs["model_ref"] == "fraud:v1" and outputs["model_version"] == "v1"
    assert outputs["mode"] == "lookup" and outputs["route"] == "parquet"
    assert outputs["output_path"] == "out/scores.parquet" and outputs["table"] is None
    assert outputs["duration_seconds"] > 0
    assert set(outputs["data"]["files"]) == {"data/labels.parquet", "data/customer_daily.parquet"}
    assert harness.store.get(ADDRESS).depends_on == ("model.fraud", "source.labels")

    scored = read_output(project)
    assert list(scored.columns) == ["customer_id", "event_ts", "channel", "is_fraud", "prediction", "model_version"]
    assert len(scored) == 2000 and (scored["model_version"] == "fraud:v1").all()
    import pandas as pd

    labels = pd.read_parquet(project / "data" / "labels.parquet")
    assert (scored["customer_id"].to_numpy() == labels["customer_id"].to_numpy()).all()  # input order kept
    # No training/serving skew: the same rows scored on the frame training builds give the same scores.
    frame = training_frame(harness, project)
    expected = predictor_of(project).predict(frame)
    assert np.array_equal(scored["prediction"].to_numpy(), np.asarray(expected))
    assert 0.0 < scored["prediction"].min() and scored["prediction"].max() < 1.0

    plan = harness.plan()
    assert not plan.has_changes and not plan.errors, [(c.address, c.reasons) for c in plan.pending()]
    again = harness.apply()
    assert again.ok and again.outcomes == []
    assert not list((project / "out").glob(".*.tmp")), "no temporary file is left behind"


def test_changed_input_data_is_named_in_the_plan_and_rescored(harness, project):
    import pandas as pd

    labels = pd.read_parquet(project / "data" / "labels.parquet")
    labels.iloc[:500].to_parquet(project / "data" / "to_score.parquet", index=False)
    write_batch(project, batch_spec(input="{path: data/to_score.parquet, timestamp_field: event_ts}"))
    assert harness.apply().ok
    assert harness.store.get(ADDRESS).outputs["rows"] == 500

    labels.iloc[:800].to_parquet(project / "data" / "to_score.parquet", index=False)
    (change,) = harness.plan().pending()
    assert change.address == ADDRESS and change.action == "update"
    assert "input data changed" in change.reasons
    assert any(r.startswith("estimate from the previous run:") for r in change.reasons)
    assert harness.apply().ok
    assert len(read_output(project)) == 800 and harness.store.get(ADDRESS).outputs["rows"] == 800
    assert not harness.plan().has_changes


def test_changed_feature_data_retrains_and_rescores_then_the_plan_is_empty(tmp_path):
    root = write_project(tmp_path / "p", rows=2000, gates=("auc >= 0.6",))
    write_batch(root, batch_spec())
    h = Harness(root, providers())
    try:
        assert h.apply().ok
        write_data(root, rows=2100)
        plan = h.plan()
        changes = {c.address: c for c in plan.pending()}
        assert set(changes) == {"model.fraud", ADDRESS}
        assert any(r.startswith("upstream model.fraud changed") for r in changes[ADDRESS].reasons)
        assert h.apply().ok
        outputs = h.store.get(ADDRESS).outputs
        assert outputs["model_ref"] == "fraud:v2" and outputs["rows"] == 2100
        assert not h.plan().has_changes, "the model retrained in the same run: nothing left to do"
    finally:
        h.close()


def test_a_promotion_or_rollback_outside_the_specs_shows_as_a_model_version_change(harness, project):
    assert harness.apply().ok
    override = ["models.fraud.trainer.params.num_leaves=7"]
    assert harness.apply(overrides=override).ok
    assert harness.store.get(ADDRESS).outputs["model_ref"] == "fraud:v2"
    assert not harness.plan(overrides=override).has_changes

    ModelRegistry.for_project(project).rollback("fraud")
    (change,) = harness.plan(overrides=override).pending()
    assert change.address == ADDRESS and "model version changed" in change.reasons
    assert "fraud now resolves to fraud:v1; the current output was scored with fraud:v2" in change.reasons
    assert harness.apply(overrides=override).ok
    assert harness.store.get(ADDRESS).outputs["model_ref"] == "fraud:v1"
    assert (read_output(project)["model_version"] == "fraud:v1").all()
    assert not harness.plan(overrides=override).has_changes

    ModelRegistry.for_project(project).promote("fraud", 2)  # forward again: the same version as before
    (change,) = harness.plan(overrides=override).pending()
    assert "model version changed" in change.reasons


def test_pinned_version_and_alias_references(harness, project):
    assert harness.apply().ok
    assert harness.apply(overrides=["models.fraud.trainer.params.num_leaves=7"]).ok  # v2 is production
    override = ["models.fraud.trainer.params.num_leaves=7", "batch_predictions.fraud-scores.model=fraud:v1"]
    assert harness.apply(overrides=override).ok
    assert harness.store.get(ADDRESS).outputs["model_ref"] == "fraud:v1"
    override[1] = "batch_predictions.fraud-scores.model=fraud@previous"
    assert harness.apply(overrides=override).ok
    assert harness.store.get(ADDRESS).outputs["model_ref"] == "fraud:v1"
    assert not harness.plan(overrides=override).has_changes


def test_raw_feature_columns_and_csv_input(harness, project):
    import numpy as np

    assert harness.apply().ok
    frame = training_frame(harness, project)
    features = ["amount_mean_7d", "segment", "txn_count_7d"]
    raw = frame[["customer_id"] + features].iloc[:300].reset_index(drop=True)
    raw.to_csv(project / "data" / "raw.csv", index=False)
    write_batch(project, batch_spec(input="{path: data/raw.csv}", output="{path: out/raw.parquet, "
                                    "columns: [customer_id], prediction_column: fraud_probability}"))
    report = harness.apply()
    assert report.ok, report.outcomes
    outputs = harness.store.get(ADDRESS).outputs
    assert outputs["mode"] == "raw" and outputs["rows"] == 300
    assert not (project / "out" / "scores.parquet").exists(), "the previous output went with the old path"
    scored = read_output(project, "out/raw.parquet")
    assert list(scored.columns) == ["customer_id", "fraud_probability", "model_version"]
    expected = predictor_of(project).predict(frame.iloc[:300])
    assert np.allclose(scored["fraud_probability"].to_numpy(), np.asarray(expected))
    assert not harness.plan().has_changes


def test_destroy_removes_the_output(harness, project):
    assert harness.apply().ok
    assert (project / "out" / "scores.parquet").exists()
    plan = harness.plan(destroy=True, targets=[ADDRESS])
    assert [(c.address, c.action) for c in plan.pending()] == [(ADDRESS, "delete")]
    assert harness.apply(destroy=True, targets=[ADDRESS]).ok
    assert not (project / "out" / "scores.parquet").exists()
    assert harness.store.get(ADDRESS) is None and harness.store.get("model.fraud") is not None
    (change,) = harness.plan().pending()
    assert change.address == ADDRESS and change.action == "create"


def test_an_output_removed_or_modified_outside_ml_is_planned_again(harness, project):
    assert harness.apply().ok
    out = project / "out" / "scores.parquet"
    read_output(project).iloc[:10].to_parquet(out)
    plan = harness.plan()
    (change,) = plan.pending()
    assert change.action == "update" and "restore output changed outside ml" in change.reasons
    assert harness.apply().ok and len(read_output(project)) == 2000
    out.unlink()
    (change,) = harness.plan().pending()
    assert change.action == "create"
    assert harness.apply().ok and out.exists()


# -- bad input ------------------------------------------------------------------------------------------------
def _unchanged(harness, project, before_bytes, before_outputs):
    assert (project / "out" / "scores.parquet").read_bytes() == before_bytes, "the previous output was touched"
    assert harness.store.get(ADDRESS).outputs == before_outputs
    assert not list((project / "out").glob(".*.tmp"))


@pytest.mark.parametrize("override, message", [
    ("+batch_predictions.fraud-scores.input.features=raw",
     "the input (source.labels) lacks the model's feature columns 'amount_mean_7d', 'segment', 'txn_count_7d'"),
    ("batch_predictions.fraud-scores.model=fraud@previous", "fraud has no previous version yet"),
    ("batch_predictions.fraud-scores.model=fraud:v9", "fraud has no version v9"),
    ("+batch_predictions.fraud-scores.input.timestamp_field=label_ts",
     "the input (source.labels) lacks the timestamp column 'label_ts'"),
    ("+batch_predictions.fraud-scores.output.columns=[customer_id,chanel]",
     "output.columns names 'chanel', which is not a column of the input (source.labels)"),
    ("+batch_predictions.fraud-scores.output.prediction_column=channel",
     "the input column 'channel' would be overwritten by the predictions"),
    ("+batch_predictions.fraud-scores.output.postgres={url_env: ML_TEST_NO_SUCH_URL, table: scores}",
     "the environment variable ML_TEST_NO_SUCH_URL is not set"),
])
def test_bad_input_fails_with_the_address_and_leaves_the_previous_output(harness, project, override, message):
    assert harness.apply().ok
    before = ((project / "out" / "scores.parquet").read_bytes(), harness.store.get(ADDRESS).outputs)
    report = harness.apply(overrides=[override])
    error = outcome(report).error
    assert error.startswith(f"{ADDRESS}: ") and message in error, error
    _unchanged(harness, project, *before)


def test_missing_entity_keys_and_a_missing_input_file(harness, project):
    import pandas as pd

    assert harness.apply().ok
    before = ((project / "out" / "scores.parquet").read_bytes(), harness.store.get(ADDRESS).outputs)
    labels = pd.read_parquet(project / "data" / "labels.parquet")
    labels.drop(columns=["customer_id"]).to_parquet(project / "data" / "nokeys.parquet")
    write_batch(project, batch_spec(input="{path: data/nokeys.parquet, timestamp_field: event_ts}"))
    error = outcome(harness.apply()).error
    assert "the input (input.path) lacks the entity key column(s) 'customer_id'" in error, error
    _unchanged(harness, project, *before)

    write_batch(project, batch_spec(input="{path: data/nowhere.parquet}"))
    plan = harness.plan()
    (issue,) = plan.errors
    assert issue.address == ADDRESS and "input file data/nowhere.parquet does not exist" in issue.message
    assert harness.apply().outcomes == []  # nothing to apply: the plan could not be made
    _unchanged(harness, project, *before)

    write_batch(project, batch_spec())
    (project / "data" / "labels.parquet").rename(project / "data" / "labels.moved")
    errors = {e.address: e.message for e in harness.plan().errors}
    # the model that reads the same file as its labels says so first; the batch waits on it
    assert "data file data/labels.parquet does not exist" in errors["model.fraud"], errors
    assert "model.fraud cannot be planned" in errors[ADDRESS]
    _unchanged(harness, project, *before)


def test_spec_errors_point_at_the_yaml(project):
    write_batch(project, batch_spec(name="b", model="fraud@prod") + "---\n"
                + batch_spec(name="c", output="{path: o.parquet, postgres: {url: 'postgresql://u:pw@h/db', table: t}}")
                + "---\n" + batch_spec(name="d", options="{chunk_rows: 0}"))
    result = run_cli(["validate"], providers=providers(), cwd=project)
    assert result.exit_code == 1
    out = result.output
    assert "specs/batch.yaml:3: model: Value error, unknown alias 'prod'" in out
    assert "do not write database URLs or passwords into specs ('url')" in out and "pw@" not in out
    assert "specs/batch.yaml:20: options.chunk_rows: Input should be greater than or equal to 1" in out

    write_batch(project, batch_spec(model="frad"))
    result = run_cli(["validate"], providers=providers(), cwd=project)
    assert result.exit_code == 1
    assert "refers to model.frad, which no spec defines" in result.output
    assert "did you mean 'fraud'" in result.output


# -- the CLI ------------------------------------------------------------------------------------------------
def test_cli_plan_and_apply(project):
    same = providers()  # the in-memory feature backend keeps its world between the two commands
    result = run_cli(["apply", "--auto-approve"], providers=same, cwd=project)
    assert result.exit_code == 0, result.output
    assert "batchprediction.fraud-scores" in result.output
    (project / "data" / "labels.parquet").touch()  # same content: the cached key is recomputed, no change
    result = run_cli(["plan", "--detailed-exitcode"], providers=same, cwd=project)
    assert result.exit_code == 0, result.output


# -- the contract suite --------------------------------------------------------------------------------------
class TestBatchContract(ProviderContract):
    @pytest.fixture
    def contract_project(self, tmp_path):
        root = write_project(tmp_path / "contract", rows=1500)
        write_batch(root, batch_spec())
        return root

    @pytest.fixture
    def contract_providers(self):
        return providers()
