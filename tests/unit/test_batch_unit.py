"""The batch backend's parts: the BatchPrediction spec, chunked reading, the output layout, PostgreSQL type
mapping and URL handling, and the change detection of the model version and the input data."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from pydantic import ValidationError

from ml_framework.contract import FingerprintRequest, RecordedResource, Resource
from ml_framework.plugin_registry import PluginRegistry
from ml_framework.plugins.batch.kinds import BatchPrediction
from ml_framework.plugins.batch.provider import DATA_INPUT, MODEL_INPUT, BatchProvider

ROOT = Path(__file__).resolve().parents[2]


def spec(**fields) -> dict:
    base = {"kind": "BatchPrediction", "name": "scores", "model": "fraud", "input": {"source": "transactions"},
            "output": {"path": "out/scores.parquet"}}
    base.update(fields)
    return base


# -- the spec ---------------------------------------------------------------------------------------------
def test_kind_is_registered_with_its_plural_and_references():
    kinds = PluginRegistry().kinds
    assert kinds.schema("BatchPrediction") is BatchPrediction and kinds.plural("BatchPrediction") == "batch_predictions"
    assert kinds.owner("BatchPrediction") == "batch"
    parsed = BatchPrediction.model_validate(spec(model="fraud@candidate"))
    assert parsed.address == "batchprediction.scores" and parsed.backend_name() == "batch"
    assert parsed.references() == [("model", "model.fraud"), ("input.source", "source.transactions")]
    pinned = BatchPrediction.model_validate(spec(model="fraud:v3", input={"path": "x.csv"}))
    assert pinned.model_name == "fraud" and pinned.references() == [("model", "model.fraud")]


@pytest.mark.parametrize("fields, message", [
    ({"model": "fraud@prod"}, "unknown alias 'prod'"),
    ({"model": "fraud:latest"}, "a pinned version looks like fraud:v3"),
    ({"model": "9fraud"}, "expected a model name"),
    ({"input": {"source": "a", "path": "b.parquet"}}, "name exactly one of source"),
    ({"input": {}}, "name exactly one of source"),
    ({"input": {"path": "a.parquet", "features": "magic"}}, "'auto', 'lookup' or 'raw'"),
    ({"output": {}}, "Field required"),
    ({"output": {"path": "o.parquet", "postgres": {"url_env": "1BAD", "table": "t"}}}, "String should match"),
    ({"output": {"path": "o.parquet", "postgres": {"url_env": "PG", "table": "a.b.c"}}}, "String should match"),
    ({"output": {"path": "o.parquet", "postgres": {"url_env": "PG", "table": "t; drop"}}}, "String should match"),
    ({"output": {"path": "o.parquet", "prediction_column": "a b"}}, "String should match"),
    ({"surprise": 1}, "Extra inputs are not permitted"),
])
def test_bad_specs_are_refused(fields, message):
    with pytest.raises(ValidationError, match=message):
        BatchPrediction.model_validate(spec(**fields))


def test_a_database_url_in_the_spec_is_refused_without_echoing_it():
    data = spec(output={"path": "o.parquet", "postgres": {"dsn": "postgresql://u:hunter2@db/x", "table": "t"}})
    with pytest.raises(ValidationError) as caught:
        BatchPrediction.model_validate(data)
    text = str(caught.value) + json.dumps(caught.value.errors(include_url=False), default=str)
    assert "do not write database URLs or passwords into specs ('dsn')" in text
    assert "hunter2" not in text


# -- reading in chunks -------------------------------------------------------------------------------------------
def test_read_chunks_gives_exact_chunk_sizes_across_row_groups_and_csv_blocks(tmp_path):
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    from ml_framework.plugins.batch.inputs import read_chunks

    frame = pd.DataFrame({"id": range(1000), "x": [i * 0.5 for i in range(1000)], "s": ["a"] * 1000})
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), tmp_path / "in.parquet", row_group_size=130)
    sizes = [t.num_rows for t in read_chunks(tmp_path / "in.parquet", "parquet", ["id", "x"], 300)]
    assert sizes == [300, 300, 300, 100]
    ids = [v for t in read_chunks(tmp_path / "in.parquet", "parquet", ["id"], 300) for v in t.column("id").to_pylist()]
    assert ids == list(range(1000))
    frame.to_csv(tmp_path / "in.csv", index=False)
    chunks = list(read_chunks(tmp_path / "in.csv", "csv", ["id", "s"], 450))
    assert [t.num_rows for t in chunks] == [450, 450, 100] and chunks[0].column_names == ["id", "s"]
    assert list(read_chunks(tmp_path / "in.parquet", "parquet", ["id"], 5000))[0].num_rows == 1000


def test_an_unreadable_input_is_reported(tmp_path):
    from ml_framework.plugins.batch.inputs import BatchInputError, file_schema

    (tmp_path / "bad.parquet").write_text("not parquet")
    with pytest.raises(BatchInputError, match="cannot read the input file bad.parquet as parquet"):
        file_schema(tmp_path / "bad.parquet", "parquet")


# -- the output layout ------------------------------------------------------------------------------------------
def _predictor(task="binary", features=("a", "b"), classes=None):
    return SimpleNamespace(task=task, features=list(features), schema={"classes": classes})


def test_multiclass_layout_has_the_class_and_one_probability_per_class():
    import numpy as np
    import pyarrow as pa

    from ml_framework.plugins.batch.inputs import FeatureSource
    from ml_framework.plugins.batch.scoring import _layout

    schema = pa.schema([("id", pa.int64()), ("a", pa.float64()), ("b", pa.float64())])
    parsed = BatchPrediction.model_validate(spec(input={"path": "x.parquet"}))
    features = FeatureSource(mode="raw", features=["a", "b"], needed=["a", "b"])
    layout = _layout(parsed, schema, _predictor("multiclass", classes=[3, 5, 9]), SimpleNamespace(owner="input.path"),
                     features)
    assert layout.schema.names == ["id", "prediction", "proba_3", "proba_5", "proba_9", "model_version"]
    chunk = pa.table({"id": [1, 2], "a": [0.0, 1.0], "b": [1.0, 0.0]})
    table = layout.table(chunk, np.array([[0.1, 0.7, 0.2], [0.8, 0.1, 0.1]]), "m:v2")
    assert table.column("prediction").to_pylist() == [5, 3]
    assert table.column("proba_9").to_pylist() == [0.2, 0.1]
    assert table.column("model_version").to_pylist() == ["m:v2", "m:v2"]


# -- PostgreSQL helpers ---------------------------------------------------------------------------------------------
def test_pg_types_and_urls(monkeypatch):
    import pyarrow as pa

    from ml_framework.plugins.batch.sinks import BatchOutputError, pg_type, postgres_url

    assert pg_type(pa.int64()) == "bigint" and pg_type(pa.float32()) == "real"
    assert pg_type(pa.timestamp("ns", tz="UTC")) == "timestamp with time zone"
    assert pg_type(pa.timestamp("us")) == "timestamp without time zone"
    assert pg_type(pa.dictionary(pa.int32(), pa.string())) == "text" and pg_type(pa.bool_()) == "boolean"
    assert pg_type(pa.list_(pa.int64())) == "text"
    monkeypatch.setenv("ML_TEST_PG", "postgresql+psycopg://u@h:5432/db")
    assert postgres_url("ML_TEST_PG") == "postgresql://u@h:5432/db"
    monkeypatch.delenv("ML_TEST_PG")
    with pytest.raises(BatchOutputError, match="the environment variable ML_TEST_PG is not set"):
        postgres_url("ML_TEST_PG")


# -- change detection ---------------------------------------------------------------------------------------------
def _request(tmp_path, prior_outputs=None, prior_inputs=None, model="fraud"):
    body = spec(model=model)
    resource = Resource(address="batchprediction.scores", kind="BatchPrediction", name="scores", backend="batch",
                        spec=body)
    prior = None
    if prior_outputs is not None:
        prior = RecordedResource(address=resource.address, kind=resource.kind, backend="batch", spec=body,
                                 fingerprint="f", inputs=prior_inputs or {}, outputs=prior_outputs)
    return FingerprintRequest(resource, tmp_path, prior)


@pytest.fixture
def provider(monkeypatch, tmp_path):
    found = {"ref": "fraud:v1"}
    p = BatchProvider()
    p.configure(tmp_path, {})
    monkeypatch.setattr(p, "_resolved", lambda ref, project_dir, services=None: found["ref"])
    p.registry_answer = found
    return p


def test_model_version_input_appears_when_the_resolved_version_moves_and_stays(provider, tmp_path):
    assert provider.fingerprint(_request(tmp_path)) == {}  # nothing applied yet: the create covers it
    applied = {"model_ref": "fraud:v1"}
    assert provider.fingerprint(_request(tmp_path, applied)) == {}
    provider.registry_answer["ref"] = "fraud:v2"  # promoted outside the specs
    moved = provider.fingerprint(_request(tmp_path, applied))
    assert moved == {MODEL_INPUT: "fraud:v1 → fraud:v2"}
    # applied with v2: the recorded input stays, so the next plan is empty...
    after = {"model_ref": "fraud:v2"}
    assert provider.fingerprint(_request(tmp_path, after, moved)) == moved
    # ...and a rollback to v1 (the version in the recorded input's text) is still a change
    provider.registry_answer["ref"] = "fraud:v1"
    assert provider.fingerprint(_request(tmp_path, after, moved)) == {MODEL_INPUT: "fraud:v2 → fraud:v1"}


def test_input_data_input_follows_the_recorded_files(provider, tmp_path):
    from ml_framework.plugins.batch.inputs import BatchInputError
    from ml_framework.plugins.models.fingerprint import DataKeys, combine

    (tmp_path / "in.csv").write_text("a\n1\n")
    keys = DataKeys(tmp_path).keys(["in.csv"])
    outputs = {"model_ref": "fraud:v1", "input_path": "in.csv", "data": {"files": keys, "digest": combine(keys)}}
    assert provider.fingerprint(_request(tmp_path, outputs)) == {}
    (tmp_path / "in.csv").write_text("a\n1\n2\n")
    changed = provider.fingerprint(_request(tmp_path, outputs))
    assert set(changed) == {DATA_INPUT} and changed[DATA_INPUT] != combine(keys)
    (tmp_path / "in.csv").unlink()
    with pytest.raises(BatchInputError, match="input file in.csv does not exist"):
        provider.fingerprint(_request(tmp_path, outputs))


# -- registration and import hygiene -----------------------------------------------------------------------------------
def test_registered_as_an_entry_point():
    from ml_framework.plugin_registry import PluginRegistry

    provider = PluginRegistry(project_dir=ROOT).get("batch")
    assert isinstance(provider, BatchProvider) and provider.kinds == ("BatchPrediction",)
    assert provider.config_model("BatchPrediction").model_validate({}).chunk_rows == 100_000


def test_importing_the_plugin_imports_no_heavy_library():
    code = ("import json, sys, ml_framework.plugins.batch, ml_framework.plugins.batch.config; "
            "print(json.dumps([m for m in ('pandas', 'pyarrow', 'lightgbm', 'psycopg', 'bentoml') if m in sys.modules]))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == []
