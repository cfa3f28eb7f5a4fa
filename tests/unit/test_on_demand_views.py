"""On-demand feature views in the specs: expressions checked at `ml validate` with file, line and field;
models refer to their features like any view's."""

from __future__ import annotations

from ml_framework.testing import InMemoryProvider, run_cli
from memory_specs import feature_specs, write_specs

VIEW = """\
kind: OnDemandFeatureView
name: ratios
backend: memory
request: {amount: float64, event_ts: timestamp}
views: [txn_stats]
features:
  amount_vs_mean: {dtype: float64, expr: "amount / txn_stats.amount_mean_7d"}
  hour: {dtype: int64, expr: "hour(event_ts)", fill: 0}
  big: {dtype: bool, expr: "amount > 1000"}
"""
MODEL = """\
kind: Model
name: fraud
task: binary
label: {source: txns, column: is_fraud}
features: ["txn_stats:*", "ratios:amount_vs_mean", "ratios:hour"]
trainer: {backend: memory}
"""


def project(tmp_path, view: str = VIEW):
    return write_specs(tmp_path, feature_specs() + "---\n" + view + "---\n" + MODEL)


def test_a_valid_view_validates_and_models_depend_on_it(tmp_path):
    root = project(tmp_path)
    result = run_cli(["validate"], providers={"memory": InMemoryProvider()}, cwd=root)
    assert result.exit_code == 0, result.output
    assert "1 OnDemandFeatureView" in result.output
    graph = run_cli(["graph"], providers={"memory": InMemoryProvider()}, cwd=root).output
    assert "featureview_txn_stats --> ondemandfeatureview_ratios" in graph
    assert "ondemandfeatureview_ratios --> model_fraud" in graph


def test_expression_mistakes_name_file_line_and_field(tmp_path):
    broken = (VIEW.replace('"amount / txn_stats.amount_mean_7d"', '"amount / txn_stats.amount_mean_7"')
              .replace('"hour(event_ts)"', '"hour(amount)"').replace('"amount > 1000"', '"amount * 2"'))
    root = project(tmp_path, broken)
    result = run_cli(["validate"], providers={"memory": InMemoryProvider()}, cwd=root)
    assert result.exit_code == 1
    out = " ".join(result.output.split())
    assert "features.amount_vs_mean.expr: unknown name 'txn_stats.amount_mean_7'" in out
    assert "did you mean 'txn_stats.amount_mean_7d'" in out
    assert "features.hour.expr: argument 1 of hour() must be a timestamp, got a number" in out
    assert "features.big.dtype: the expression gives a number, which dtype bool cannot hold" in out
    import re

    assert re.search(r"specs/all\.yaml:\d+: features\.amount_vs_mean\.expr", out)  # each on its own line


def test_a_reference_to_no_view_names_both_kinds(tmp_path):
    root = write_specs(tmp_path, feature_specs() + "---\n" + MODEL.replace("ratios:hour", "ratio:hour"))
    result = run_cli(["validate"], providers={"memory": InMemoryProvider()}, cwd=root)
    assert result.exit_code == 1
    assert "refers to featureview.ratio (or ondemandfeatureview.ratio), which no spec defines" in result.output
