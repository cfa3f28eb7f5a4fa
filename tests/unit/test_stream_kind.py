"""The StreamDeployment kind: what `ml validate` says about a stream spec, before any server is asked."""

from __future__ import annotations

import pytest

from ml_framework.testing import run_cli


def _write(root, body: str):
    (root / "specs").mkdir(parents=True, exist_ok=True)
    (root / "specs" / "stream.yaml").write_text(
        "kind: Model\nname: fraud\ntask: binary\nlabel: {source: t, column: y}\nfeatures: [\"v:*\"]\n"
        "trainer: {backend: lightgbm}\n---\n" + body)
    return root


@pytest.mark.parametrize("body, field, message", [
    ("kind: StreamDeployment\nname: s\nmodel: fraud\ninput: {subject: tx.*}\noutput: {subject: out}\n"
     "dead_letter: {subject: dead}\n", "input.subject", "should match pattern"),
    ("kind: StreamDeployment\nname: s\nmodel: fraud\ninput: {subject: tx}\noutput: {subject: out}\n"
     "dead_letter: {subject: dead}\nurl: http://localhost:4222\n", "url", "should match pattern"),
    ("kind: StreamDeployment\nname: s\nmodel: fraud\ninput: {subject: tx}\noutput: {subject: out}\n",
     "dead_letter", "required field is missing"),
    ("kind: StreamDeployment\nname: s\nmodel: fraud\ninput: {subject: tx}\noutput: {subject: out}\n"
     "dead_letter: {subject: dead}\nconsumer: {batch: 0}\n", "consumer.batch", "greater than or equal to 1"),
])
def test_a_bad_stream_spec_is_named_at_validate(tmp_path, body, field, message):
    result = run_cli(["validate"], cwd=_write(tmp_path, body))
    assert result.exit_code == 1 and field in result.output and message in result.output, result.output
    assert "stream.yaml" in result.output


def test_stream_names_default_to_ones_ml_creates():
    from ml_framework.plugins.nats.kinds import StreamDeployment

    spec = StreamDeployment.model_validate({"kind": "StreamDeployment", "name": "fraud-stream", "model": "fraud",
                                            "input": {"subject": "tx.new"}, "output": {"subject": "scores"},
                                            "dead_letter": {"subject": "dead"}})
    assert spec.stream_names() == ("ML_FRAUD_STREAM_IN", "ML_FRAUD_STREAM_OUT", "ML_FRAUD_STREAM_OUT")
    assert spec.references() == [("model", "model.fraud")]
