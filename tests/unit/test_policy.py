"""Policy checks: rules in the project's policies/ folder, evaluated at validate, plan and apply."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ml_framework.errors import SpecErrors
from ml_framework.plan.model import CREATE, DELETE, NOOP, Change, Plan
from ml_framework.policy import evaluate, load_rules
from ml_framework.testing import InMemoryProvider, run_cli
from memory_specs import feature_specs, model_spec, write_specs


SPECS = feature_specs() + "---\n" + model_spec()

RULES = """\
policies:
  - name: fraud-gated
    description: The fraud model has at least two gates.
    level: soft-mandatory
    kinds: [Model]
    require: "length(spec.label.column) > `0` && spec.trainer.params.num_leaves <= `31`"
    message: keep num_leaves at 31 or below
  - name: sources-have-time
    level: hard-mandatory
    kinds: [Source]
    require: "spec.timestamp_field == 'event_ts'"
  - name: described
    level: advisory
    kinds: [Model, Source]
    require: spec.description
"""


def write_project(root: Path, text: str = SPECS) -> Path:
    return write_specs(root, text)


def write_rules(root: Path, text: str = RULES, name: str = "rules.yaml") -> Path:
    (root / "policies").mkdir(exist_ok=True)
    path = root / "policies" / name
    path.write_text(text)
    return path


def _rules(tmp_path, text, kinds=("Model", "Source", "Deployment")):
    write_rules(tmp_path, text)
    return load_rules(tmp_path / "policies", tmp_path, list(kinds))


def test_mistakes_in_rules_name_their_file_line_and_field(tmp_path):
    text = """\
policies:
  - name: a
    level: hard-mandatroy
    require: spec.x
  - name: b
    level: advisory
    requires: spec.x
  - name: c
    level: advisory
    kinds: [Deploymnet]
    require: "spec.promote == 'auto"
  - name: d
    level: advisory
    require: spec.y
  - name: d
    level: advisory
    require: spec.z
"""
    with pytest.raises(SpecErrors) as caught:
        _rules(tmp_path, text)
    message = str(caught.value)
    assert "policies/rules.yaml:3: policies[0].level: level must be one of" in message
    assert "did you mean 'hard-mandatory'?" in message
    assert "policies/rules.yaml:7: policies[1].requires: unknown field" in message and "'require'" in message
    assert "policies/rules.yaml:5: policies[1].require: every rule needs 'require'" in message
    assert "policies/rules.yaml:10: policies[2].kinds: unknown kind 'Deploymnet'" in message
    assert "did you mean 'Deployment'?" in message
    assert ("policies/rules.yaml:11: policies[2].require: not a valid JMESPath expression: Unclosed ' delimiter "
            "at character 17 of \"spec.promote == 'auto\"") in message
    assert "policies/rules.yaml:15: name: duplicate policy name 'd' (first at policies/rules.yaml:12)" in message


def test_a_file_without_a_policies_list_is_refused(tmp_path):
    with pytest.raises(SpecErrors, match=r"policies/rules.yaml:1: rules: a policy file holds one key"):
        _rules(tmp_path, "rules:\n  - name: a\n")


def test_no_folder_means_no_rules(tmp_path):
    assert load_rules(tmp_path / "policies", tmp_path, []) == ()


def _change(address, action=CREATE, **spec):
    kind = address.split(".")[0]
    return Change(address=address, kind=kind, backend="memory", action=action,
                  after=None if action == DELETE else {"name": address.split(".")[1], **spec},
                  before={"name": address.split(".")[1], **spec} if action == DELETE else None)


def test_rules_look_only_at_their_kinds_actions_and_environments(tmp_path):
    rules = _rules(tmp_path, """\
policies:
  - name: prod-manual
    level: hard-mandatory
    kinds: [Model]
    envs: [prod]
    require: "spec.trainer.promote == 'manual'"
  - name: no-deletes
    level: advisory
    actions: [delete]
    require: "`false`"
  - name: bentoml-auth
    level: soft-mandatory
    kinds: [deployment]
    where: "spec.serving.backend == 'bentoml'"
    require: spec.auth
""")
    changes = [_change("model.a", trainer={"promote": "auto"}), _change("model.b", trainer={"promote": "manual"}),
               _change("deployment.x", serving={"backend": "bentoml"}), _change("deployment.y", serving={"backend": "other"}),
               _change("source.gone", action=DELETE), _change("model.same", action=NOOP, trainer={})]
    dev = {c.name: c for c in evaluate(rules, changes, env=None)}
    assert dev["prod-manual"].checked == 0 and dev["prod-manual"].outcome == "passed"
    assert dev["no-deletes"].failures == (("source.gone", "requires `false`"),)
    assert dev["bentoml-auth"].checked == 1 and [a for a, _ in dev["bentoml-auth"].failures] == ["deployment.x"]
    prod = {c.name: c for c in evaluate(rules, changes, env="prod")}
    assert prod["prod-manual"].checked == 3  # no-ops are checked too: the rule holds for what stays
    assert sorted(a for a, _ in prod["prod-manual"].failures) == ["model.a", "model.same"]
    assert prod["prod-manual"].blocking and not prod["no-deletes"].blocking  # advisory never blocks


def test_a_rule_that_cannot_be_evaluated_fails_with_why(tmp_path):
    rules = _rules(tmp_path, "policies:\n  - {name: n, level: advisory, require: 'length(spec.size) > `1`'}\n")
    (check,) = evaluate(rules, [_change("model.a", size=5)], env=None)
    assert check.outcome == "failed" and "could not be evaluated" in check.failures[0][1]


def test_an_override_passes_only_a_failing_soft_rule_and_names_who(tmp_path):
    rules = _rules(tmp_path, """\
policies:
  - {name: soft, level: soft-mandatory, require: spec.ok}
  - {name: fine, level: soft-mandatory, require: spec.name}
""")
    checks = {c.name: c for c in evaluate(rules, [_change("model.a")], env=None, overrides=["soft", "fine"],
                                          actor="alice")}
    assert checks["soft"].outcome == "overridden" and checks["soft"].overridden_by == "alice"
    assert not checks["soft"].blocking
    assert checks["fine"].outcome == "passed" and checks["fine"].overridden_by is None


def test_policy_checks_survive_the_json_round_trip(tmp_path):
    rules = _rules(tmp_path, "policies:\n  - {name: soft, level: soft-mandatory, require: spec.ok}\n")
    checks = evaluate(rules, [_change("model.a")], env=None, overrides=["soft"], actor="bob")
    plan = Plan(plan_id="p", created_at="t", ml_version="0", lineage="l", serial=0, changes=(_change("model.a"),),
                policy_checks=checks)
    data = json.loads(json.dumps(plan.to_dict()))
    assert data["policy_checks"][0]["outcome"] == "overridden"
    assert Plan.from_dict(data) == plan


# -- through the CLI ------------------------------------------------------------------------------------------


@pytest.fixture
def project(tmp_path):
    root = write_project(tmp_path)
    write_rules(root)
    return root


def test_validate_reports_every_rule_and_exits_3_on_a_mandatory_failure(project):
    provider = InMemoryProvider()
    ok = run_cli(["validate"], providers={"memory": provider}, cwd=project)
    assert ok.exit_code == 0, ok.output
    assert "Policy checks: 1 failed, 2 passed" in ok.output  # the advisory rule: no description anywhere
    assert "✗ described (advisory) — 2 of 2 failed" in ok.output
    bad = run_cli(["validate", "models.fraud.trainer.params.num_leaves=63"], providers={"memory": provider}, cwd=project)
    assert bad.exit_code == 3
    assert "model.fraud: keep num_leaves at 31 or below" in bad.output
    assert "mandatory policy failed: fraud-gated (soft-mandatory, 1 resource)" in bad.output
    assert "--override-policy fraud-gated" in bad.output


def test_a_failing_mandatory_rule_blocks_apply_before_anything_runs(project):
    provider = InMemoryProvider()
    plan = run_cli(["plan", "sources.txns.timestamp_field=ts"], providers={"memory": provider}, cwd=project)
    assert plan.exit_code == 3, plan.output
    assert "✗ sources-have-time (hard-mandatory) — 1 of 1 failed" in plan.output
    assert "source.txns: requires spec.timestamp_field == 'event_ts'" in plan.output
    md = run_cli(["plan", "--format", "markdown", "sources.txns.timestamp_field=ts"], providers={"memory": provider},
                 cwd=project)
    assert md.output.startswith("### 🛑 Plan:")
    assert "#### 🛑 Policy checks: 1 mandatory failed — apply is blocked" in md.output
    assert "| ❌ | `sources-have-time` | hard-mandatory | 1 | 1 failed |" in md.output
    as_json = json.loads(run_cli(["plan", "--json", "sources.txns.timestamp_field=ts"], providers={"memory": provider},
                                 cwd=project).output)
    assert {c["name"]: c["outcome"] for c in as_json["policy_checks"]}["sources-have-time"] == "failed"

    refused = run_cli(["apply", "--auto-approve", "sources.txns.timestamp_field=ts"], providers={"memory": provider},
                      cwd=project)
    assert refused.exit_code == 3 and "mandatory policy failed: sources-have-time" in refused.output
    assert not [c for c in provider.calls if c[0] == "apply"]
    hard = run_cli(["apply", "--auto-approve", "--override-policy", "sources-have-time",
                    "sources.txns.timestamp_field=ts"], providers={"memory": provider}, cwd=project)
    assert hard.exit_code == 3 and "a hard-mandatory policy cannot be overridden" in hard.output
    assert not [c for c in provider.calls if c[0] == "apply"]


def test_an_overridden_soft_rule_lets_apply_go_on_and_history_says_who(project, monkeypatch):
    provider = InMemoryProvider()
    monkeypatch.setenv("ML_ACTOR", "carol@example.com")
    args = ["models.fraud.trainer.params.num_leaves=63"]
    refused = run_cli(["apply", "--auto-approve", *args], providers={"memory": provider}, cwd=project)
    assert refused.exit_code == 3
    passed = run_cli(["apply", "--auto-approve", "--override-policy", "fraud-gated", *args],
                     providers={"memory": provider}, cwd=project)
    assert passed.exit_code == 0, passed.output
    assert "! fraud-gated (soft-mandatory) — 1 of 1 failed; overridden by carol@example.com" in passed.output
    history = json.loads(run_cli(["history", "--json"], providers={"memory": provider}, cwd=project).output)
    assert history[0]["details"]["actor"] == "carol@example.com"
    assert history[0]["details"]["policy_overrides"] == [
        {"policy": "fraud-gated", "by": "carol@example.com", "failures": ["model.fraud"]}]
    table = run_cli(["history"], providers={"memory": provider}, cwd=project).output
    assert "policy overridden: fraud-gated by carol@example.com" in table


def test_a_saved_plan_keeps_its_override_and_meets_the_policies_in_force_at_apply(project, monkeypatch, tmp_path):
    provider = InMemoryProvider()
    saved = tmp_path / "plan.json"
    monkeypatch.setenv("ML_ACTOR", "dave")
    args = ["models.fraud.trainer.params.num_leaves=63"]
    made = run_cli(["plan", "--override-policy", "fraud-gated", "--out", str(saved), *args],
                   providers={"memory": provider}, cwd=project)
    assert made.exit_code == 0, made.output
    monkeypatch.setenv("ML_ACTOR", "the-merge-bot")
    # A rule added after the plan was reviewed still applies to it.
    write_rules(project, "policies:\n  - {name: no-model-changes, level: hard-mandatory, kinds: [Model], "
                "actions: [create, update, replace], require: '`false`'}\n", name="late.yaml")
    late = run_cli(["apply", str(saved)], providers={"memory": provider}, cwd=project)
    assert late.exit_code == 3 and "no-model-changes" in late.output
    (project / "policies" / "late.yaml").unlink()
    applied = run_cli(["apply", str(saved)], providers={"memory": provider}, cwd=project)
    assert applied.exit_code == 0, applied.output
    history = json.loads(run_cli(["history", "--json"], providers={"memory": provider}, cwd=project).output)
    assert history[0]["details"]["actor"] == "the-merge-bot"
    assert history[0]["details"]["policy_overrides"][0]["by"] == "dave"  # who overrode it at review


def test_rules_folder_can_be_moved_in_ml_yaml(tmp_path):
    root = write_project(tmp_path)
    (root / "ml.yaml").write_text("policies: ci/rules\n")
    (root / "ci" / "rules").mkdir(parents=True)
    (root / "ci" / "rules" / "r.yaml").write_text("policies:\n  - {name: never, level: hard-mandatory, require: '`false`'}\n")
    result = run_cli(["validate"], providers={"memory": InMemoryProvider()}, cwd=root)
    assert result.exit_code == 3 and "ci/rules/r.yaml:2" in result.output


def test_when_every_rule_passes_the_plan_says_so_in_one_line(tmp_path):
    root = write_project(tmp_path)
    write_rules(root, "policies:\n  - {name: has-name, level: hard-mandatory, require: spec.name}\n"
                      "  - {name: has-kind, level: advisory, require: kind}\n")
    result = run_cli(["plan"], providers={"memory": InMemoryProvider()}, cwd=root)
    assert result.exit_code == 0
    assert "Policy checks: 2 passed (has-name, has-kind)\n" in result.output and "✓" not in result.output


def test_history_records_the_git_commit_of_the_specs(project, monkeypatch):
    import subprocess

    env = {"GIT_AUTHOR_NAME": "a", "GIT_AUTHOR_EMAIL": "a@x", "GIT_COMMITTER_NAME": "a", "GIT_COMMITTER_EMAIL": "a@x"}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    subprocess.run(["git", "init", "-q"], cwd=project, check=True)
    subprocess.run(["git", "add", "-A"], cwd=project, check=True)
    subprocess.run(["git", "commit", "-qm", "specs"], cwd=project, check=True)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=project, capture_output=True, text=True).stdout.strip()
    provider = InMemoryProvider()
    assert run_cli(["apply", "--auto-approve"], providers={"memory": provider}, cwd=project).exit_code == 0
    history = json.loads(run_cli(["history", "--json"], providers={"memory": provider}, cwd=project).output)
    assert history[0]["details"]["git"] == {"commit": head, "dirty": False}
    (project / "specs" / "all.yaml").write_text(SPECS.replace("num_leaves: 31", "num_leaves: 15"))
    assert run_cli(["apply", "--auto-approve"], providers={"memory": provider}, cwd=project).exit_code == 0
    table = run_cli(["history"], providers={"memory": provider}, cwd=project).output
    assert f"commit {head[:10]} (uncommitted changes)" in table
