"""Renderers and graph export: they read a Plan (never change it) and must say the right things."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from ml_framework.errors import PlanError
from ml_framework.graph_export import node_ids, to_dot, to_mermaid
from ml_framework.plan.model import (
    CREATE,
    DELETE,
    NOOP,
    PLAN_FORMAT_VERSION,
    REPLACE,
    UPDATE,
    Change,
    Drift,
    FieldDiff,
    Plan,
    PlanIssue,
)
from ml_framework.plan.render_json import load_plan_json, render_json
from ml_framework.plan.render_markdown import md_code, md_escape, render_markdown
from ml_framework.plan.render_text import format_duration, format_value, render_summary, render_text

ANSI = re.compile(r"\x1b\[")


def make_plan(changes=(), **kw) -> Plan:
    base = dict(plan_id="plan-1", created_at="2024-05-01T12:00:00+00:00", ml_version="0.1.0",
                lineage="lin-abc", serial=7, changes=tuple(changes))
    base.update(kw)
    return Plan(**base)


def full_plan(**kw) -> Plan:
    changes = (
        Change("featureview.txn_stats", "featureview", "feast", CREATE, reasons=("new resource",),
               after={"entities": ["user"], "ttl": "1d"}, fingerprint="fp-fv", estimate_seconds=130),
        Change("model.fraud", "model", "lightgbm", REPLACE,
               reasons=("because upstream featureview.txn_stats changed", "source data changed"),
               fields=(FieldDiff("trainer.params.num_leaves", 31, 63, forces_replacement=True),
                       FieldDiff("description", "old", "new")),
               before={"trainer": {"params": {"num_leaves": 31}}}, after={"trainer": {"params": {"num_leaves": 63}}},
               fingerprint="fp-model", depends_on=("featureview.txn_stats",),
               inputs={"featureview.txn_stats": "fp-fv"}),
        Change("deployment.fraud-api", "deployment", "bentoml", UPDATE,
               fields=(FieldDiff("replicas", 1, 2),), depends_on=("model.fraud",)),
        Change("deployment.old", "deployment", "bentoml", DELETE, before={"replicas": 1}),
        Change("monitor.drift", "monitor", "alibi", NOOP, fingerprint="fp-mon", depends_on=("deployment.fraud-api",)),
    )
    return make_plan(changes, **kw)


def lines(text: str) -> list[str]:
    return [line.rstrip() for line in text.splitlines()]


# --- text -------------------------------------------------------------------------------------------


def test_creates_show_their_attributes_flattened_without_empty_defaults():
    """As Terraform does: a new resource's attributes, nested fields as dotted paths, aligned, long values
    shortened; what the address already says (kind, name) and empty defaults ({} / []) left out."""
    change = Change("model.fraud", "model", "lightgbm", CREATE, reasons=("new resource",),
                    after={"kind": "Model", "name": "fraud", "labels": {}, "task": "binary",
                           "trainer": {"backend": "lightgbm", "params": {"num_leaves": 31}}, "gates": [],
                           "description": "x" * 300})
    out = lines(render_text(make_plan([change]), color=False))
    i = out.index("      # new resource")
    assert out[i + 1:i + 5] == [
        "      + task                      = \"binary\"",
        "      + trainer.backend           = \"lightgbm\"",
        "      + trainer.params.num_leaves = 31",
        "      + description               = \"" + "x" * 82 + "…",  # fits the 120 columns, not wrapped
    ]
    assert max(len(l) for l in out) <= 120
    assert not any("labels" in l or "gates" in l or "kind" in l for l in out)


def test_text_change_lines_symbols_and_summary():
    out = render_text(full_plan(), color=False)
    assert not ANSI.search(out)
    ls = lines(out)
    assert re.search(r"^  \+ featureview\.txn_stats +create", out, re.M)
    assert re.search(r"^-/\+ model\.fraud +replace$", out, re.M)
    assert re.search(r"^  ~ deployment\.fraud-api +update$", out, re.M)
    assert re.search(r"^  - deployment\.old +delete$", out, re.M)
    # reasons and fields sit under their change, forcing fields marked
    i = next(i for i, l in enumerate(ls) if l.startswith("-/+ model.fraud"))
    block = "\n".join(ls[i:i + 5])
    assert "because upstream featureview.txn_stats changed" in block
    assert "source data changed" in block
    assert "      trainer.params.num_leaves: 31 → 63   # forces replacement" in ls
    assert "      description: \"old\" → \"new\"" in ls  # no forcing marker on this one
    assert "      replicas: 1 → 2" in ls
    assert ls[-1] == "Plan: 1 to add, 1 to change, 1 to replace, 1 to destroy."
    assert render_summary(full_plan()) == ls[-1]


def test_text_legend_lists_only_symbols_used():
    plan = make_plan([Change("model.a", "model", "x", CREATE)])
    out = render_text(plan, color=False)
    legend_at = out.index("Resource actions are indicated with the following symbols:")
    assert legend_at < out.index("model.a")
    assert "  + create" in out
    assert "-/+" not in out and "update in-place" not in out and "  - destroy" not in out
    assert render_summary(plan) == "Plan: 1 to add, 0 to change, 0 to replace, 0 to destroy."


def test_text_noop_hidden_unless_asked():
    out = render_text(full_plan(), color=False)
    assert "monitor.drift" not in out
    assert "1 unchanged resource not shown" in out
    shown = render_text(full_plan(), color=False, show_noop=True)
    assert re.search(r"^  = monitor\.drift +no-op$", shown, re.M)


def test_text_color_has_ansi_and_same_words():
    colored = render_text(full_plan(), color=True)
    assert ANSI.search(colored)
    assert re.sub(r"\x1b\[[0-9;]*m", "", colored) == render_text(full_plan(), color=False)


def test_text_no_changes_message():
    plan = make_plan([Change("model.a", "model", "x", NOOP, fingerprint="f")])
    out = render_text(plan, color=False)
    assert out.strip() == "No changes. Your infrastructure matches the specs."
    assert not plan.has_changes
    empty = make_plan()
    assert render_summary(empty) == "No changes. Your infrastructure matches the specs."


def test_text_destroy_wording():
    plan = make_plan([Change("model.a", "model", "x", DELETE), Change("featureview.b", "featureview", "x", DELETE)],
                     operation="destroy")
    out = render_text(plan, color=False)
    assert "ml will destroy the following resources:" in out
    assert lines(out)[-1] == "Plan: 0 to add, 0 to change, 0 to replace, 2 to destroy."
    assert render_summary(make_plan(operation="destroy")) == "No changes. No objects need to be destroyed."


def test_text_drift_section_comes_before_changes():
    plan = full_plan(drift=(
        Drift("deployment.fraud-api", "deployment", True, (("replicas", 2, 5),)),
        Drift("model.gone", "model", False),
    ))
    out = render_text(plan, color=False)
    assert "Objects have changed outside of ml" in out
    assert out.index("Objects have changed outside of ml") < out.index("Resource actions are indicated")
    assert re.search(r"^  ~ deployment\.fraud-api +has changed$", out, re.M)
    assert "      replicas: 2 → 5" in lines(out)
    assert re.search(r"^  - model\.gone +has been deleted$", out, re.M)
    # no drift, no section
    assert "outside of ml" not in render_text(full_plan(), color=False)


def test_text_drift_shown_even_without_changes():
    plan = make_plan(drift=(Drift("model.gone", "model", False),))
    out = render_text(plan, color=False)
    assert "Objects have changed outside of ml" in out
    assert lines(out)[-1] == "No changes. Your infrastructure matches the specs."


def test_text_errors_section():
    plan = full_plan(errors=(PlanIssue("model.broken", "plugin 'acme' failed to import: No module named acme"),))
    out = render_text(plan, color=False)
    assert "Errors" in lines(out)
    assert "  model.broken: plugin 'acme' failed to import: No module named acme" in lines(out)
    only_errors = make_plan(errors=(PlanIssue("model.broken", "boom"),))
    assert "could not be planned" in render_summary(only_errors)
    assert "matches the specs" not in render_text(only_errors, color=False)


def test_text_estimates_and_compact_values():
    out = render_text(full_plan(), color=False)
    assert re.search(r"featureview\.txn_stats +create +~ 2m 10s", out)
    assert format_duration(130) == "2m 10s"
    assert format_duration(45) == "45s"
    assert format_duration(3720) == "1h 2m"
    assert format_duration(0.2) == "<1s"
    assert format_duration(None) is None
    assert format_value({"a": [1, 2]}) == '{"a": [1, 2]}'
    assert format_value(None) == "null"
    long = format_value(list(range(200)))
    assert len(long) == 60 and long.endswith("…")


def test_text_values_with_markup_are_literal():
    plan = make_plan([Change("model.a", "model", "x", UPDATE, fields=(FieldDiff("tag", "[bold]x[/bold]", ":smile:"),))])
    out = render_text(plan, color=False)
    assert '      tag: "[bold]x[/bold]" → ":smile:"' in lines(out)


def test_text_width_is_respected():
    out = render_text(full_plan(), color=False, width=60)
    assert max(len(l) for l in out.splitlines()) <= 60


def test_renderers_do_not_change_the_plan():
    plan = full_plan(drift=(Drift("model.gone", "model", False),))
    before = plan.to_dict()
    render_text(plan), render_json(plan), render_markdown(plan)
    to_mermaid(plan.changes), to_dot(plan.changes)
    assert plan.to_dict() == before


# --- json -------------------------------------------------------------------------------------------


def test_json_round_trip():
    plan = full_plan(drift=(Drift("deployment.fraud-api", "deployment", True, (("replicas", 2, [5]),)),),
                     errors=(PlanIssue("model.x", "boom"),), env="prod", overrides=("model.fraud.epochs=3",),
                     targets=("model.fraud",), spec_dir="specs")
    text = render_json(plan)
    assert Plan.from_dict(json.loads(text)) == plan
    assert load_plan_json(text) == plan


def test_json_key_order_is_to_dict_order_not_sorted():
    plan = full_plan()
    data = json.loads(render_json(plan))
    assert list(data) == list(plan.to_dict())
    assert list(data)[0] == "format_version" and data["format_version"] == PLAN_FORMAT_VERSION
    assert list(data["changes"][0])[:4] == ["address", "kind", "backend", "action"]
    assert data["changes"][1]["actions"] == ["delete", "create"]
    assert data["summary"] == {"create": 1, "update": 1, "replace": 1, "delete": 1, "no-op": 1, "move": 0, "import": 0}
    assert "\n" not in render_json(plan, indent=None)


def test_json_odd_values_use_str():
    from pathlib import PurePosixPath

    plan = make_plan([Change("model.a", "model", "x", CREATE, after={"path": PurePosixPath("/data/x")})])
    assert json.loads(render_json(plan))["changes"][0]["after"] == {"path": "/data/x"}


@pytest.mark.parametrize("text, words", [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "expected a JSON object"),
    ('{"plan_id": "x"}', "format_version"),
    ('{"format_version": "1"}', "invalid format_version"),
])
def test_load_plan_json_rejects_bad_input(text, words):
    with pytest.raises(PlanError, match=words):
        load_plan_json(text)


def test_load_plan_json_rejects_newer_format():
    data = full_plan().to_dict()
    data["format_version"] = PLAN_FORMAT_VERSION + 1
    with pytest.raises(PlanError, match="newer") as info:
        load_plan_json(json.dumps(data), source="plan.json")
    assert "plan.json" in str(info.value) and info.value.hint


def test_load_plan_json_missing_key_and_bad_action():
    data = full_plan().to_dict()
    del data["state"]
    with pytest.raises(PlanError, match="missing key 'state'"):
        load_plan_json(json.dumps(data))
    data = full_plan().to_dict()
    data["changes"][0]["action"] = "explode"
    with pytest.raises(PlanError, match="unknown action 'explode'"):
        load_plan_json(json.dumps(data))


# --- markdown ---------------------------------------------------------------------------------------


def test_markdown_table_and_details():
    md = render_markdown(full_plan())
    first = md.splitlines()[0]
    assert first.startswith("### ") and "Plan: 1 to add, 1 to change, 1 to replace, 1 to destroy." in first
    assert "| | Resource | Action | Why |" in md
    row = next(l for l in md.splitlines() if "`model.fraud`" in l and l.startswith("|"))
    assert "replace" in row and "-/+" in row and "source data changed" in row
    assert "monitor.drift" not in md  # no-op hidden
    # resources with field changes, and the created one's attributes
    assert md.count("<details>") == 3 and md.count("</details>") == 3
    assert "<code>featureview.txn_stats</code> — create (2 attributes)" in md
    assert "| `entities` | `[\"user\"]` |" in md and "| `ttl` | `\"1d\"` |" in md
    force_row = next(l for l in md.splitlines() if "trainer.params.num_leaves" in l)
    assert "`31`" in force_row and "`63`" in force_row and "forces replacement" in force_row
    desc_row = next(l for l in md.splitlines() if "`description`" in l)
    assert "forces replacement" not in desc_row


def test_markdown_escapes_pipes_and_backticks():
    plan = make_plan([Change("model.a", "model", "x", UPDATE, reasons=("why | not `this`",),
                             fields=(FieldDiff("cmd", "a|b", "run `x`"),))])
    md = render_markdown(plan)
    row = next(l for l in md.splitlines() if l.startswith("|") and "model.a" in l)
    assert r"why \| not \`this\`" in row
    # every table row keeps exactly its column count (5 unescaped pipes for 4 columns)
    for l in md.splitlines():
        if l.startswith("|"):
            assert len(re.findall(r"(?<!\\)\|", l)) == 5, l
    assert md_code("run `x`") == "`` run `x` ``"
    assert md_code("a|b") == r"`a\|b`"
    assert md_code("`x`") == "`` `x` ``"
    assert md_escape("a|b`c") == r"a\|b\`c"


def test_markdown_drift_errors_and_no_changes():
    plan = make_plan(drift=(Drift("model.gone", "model", False),
                            Drift("deployment.d", "deployment", True, (("replicas", 1, 3),))),
                     errors=(PlanIssue("model.bad", "plugin failed"),))
    md = render_markdown(plan)
    assert "Objects have changed outside of ml" in md
    assert "`model.gone` has been deleted" in md
    assert "`replicas`: `1` → `3`" in md
    assert "Errors" in md and "- `model.bad`: plugin failed" in md
    ok = render_markdown(make_plan())
    assert "No changes. Your infrastructure matches the specs." in ok.splitlines()[0]
    assert "| Resource |" not in ok


# --- graph export ------------------------------------------------------------------------------------

STYLES = {"featureview": "data", "model": "model", "deployment": "service", "monitor": "watch"}
NODES = [
    ("model.fraud-v2", "model", ["featureview.txn-stats"]),
    ("featureview.txn-stats", "featureview", []),
    ("deployment.fraud-api", "deployment", ["model.fraud-v2"]),
    ("monitor.drift", "monitor", ["deployment.fraud-api"]),
]


def test_mermaid_ids_labels_edges():
    out = to_mermaid(NODES)
    assert out.startswith("flowchart LR\n")
    assert '"model.fraud-v2"' in out and '"featureview.txn-stats"' in out
    assert "featureview_txn_stats --> model_fraud_v2" in out
    assert "model_fraud_v2 --> deployment_fraud_api" in out
    assert "deployment_fraud_api --> monitor_drift" in out
    assert "model_fraud_v2 --> featureview_txn_stats" not in out
    # ids are sanitised: nothing but [A-Za-z0-9_] before the shape/label or around arrows
    for l in out.splitlines()[1:]:
        if "-->" in l:
            a, b = l.strip().split(" --> ")
            assert re.fullmatch(r"\w+", a) and re.fullmatch(r"\w+", b)
    assert re.search(r"classDef kind_model ", out) and "class model_fraud_v2 kind_model" in out
    assert to_mermaid(list(reversed(NODES))) == out  # deterministic regardless of input order
    styled = to_mermaid(NODES, styles=STYLES)  # shapes and colours come from the role a kind declares
    assert 'featureview_txn_stats[("featureview.txn-stats")]' in styled and "fill:#dbeafe" in styled
    assert 'featureview_txn_stats[("' not in out  # no role declared: a plain box


def test_dot_ids_labels_edges_and_clusters():
    out = to_dot(NODES)
    assert out.startswith('digraph "ml" {') and out.rstrip().endswith("}")
    assert 'model_fraud_v2 [label="model.fraud-v2"' in out
    assert "featureview_txn_stats -> model_fraud_v2;" in out
    assert "deployment_fraud_api -> monitor_drift;" in out
    assert 'subgraph "cluster_model"' in out
    assert to_dot(list(reversed(NODES))) == out
    assert "shape=cylinder" in to_dot(NODES, styles=STYLES) and "shape=cylinder" not in out


def test_graph_accepts_changes_and_marks_missing_deps():
    plan = full_plan()
    out = to_mermaid(plan.changes)
    assert "featureview_txn_stats --> model_fraud" in out
    dot = to_dot([("model.m", "model", ["featureview.nowhere"])])
    assert 'featureview_nowhere [label="featureview.nowhere"' in dot and "featureview_nowhere -> model_m;" in dot


def test_node_ids_unique_and_safe():
    ids = node_ids(["a.b", "a-b", "a_b", "1.x", "end"])
    assert len(set(ids.values())) == 5
    assert all(re.fullmatch(r"[A-Za-z_]\w*", v) for v in ids.values())
    assert ids["end"] != "end" and not ids["1.x"][0].isdigit()


def test_model_import_stays_cheap():
    code = "import sys, ml_framework.plan.model; print('rich' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
