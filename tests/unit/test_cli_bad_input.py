"""Bad input at the command line: one clear message naming file:line and field, exit 1, no traceback,
state untouched. Plus the CLI's everyday contract (exit codes, output formats, state/history commands).

Everything runs in-process through `ml_framework.testing.run_cli` with an in-memory provider named
`memory`; Click's runner mixes stderr into `result.output` (and keeps `result.stdout` apart).
"""

from __future__ import annotations

import json
import random
import re
import shutil
import sqlite3
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from ml_framework import __version__
from ml_framework.contract import ENTRY_POINT_GROUP
from ml_framework.state import STATE_FORMAT_VERSION, open_state
from ml_framework.testing import InMemoryProvider, run_cli

pytestmark = pytest.mark.usefixtures("clean_ml_env")

FEATURES = """\
kind: Entity
name: customer
backend: memory
join_keys: [customer_id]
---
kind: Source
name: txns
backend: memory
path: data/txns.csv
timestamp_field: ts
---
kind: FeatureView
name: customer_stats
backend: memory
entities: [customer]
source: txns
ttl: 7d
online: true
features:
  amount_mean_7d: {dtype: float32}
  txn_count_7d: {dtype: int64}
"""

MODELS = """\
kind: Model
name: fraud
task: binary
label: {source: txns, column: is_fraud}
features: ["customer_stats:*"]
trainer:
  backend: memory
  params: {num_leaves: 31}
---
kind: Deployment
name: fraud_api
model: fraud
serving: {backend: memory}
"""

PROD = """\
feature_views:
  customer_stats:
    ttl: 14d
"""

ADDRESSES = ["deployment.fraud_api", "entity.customer", "featureview.customer_stats", "model.fraud", "source.txns"]


def line_of(text: str, needle: str) -> int:
    """1-based line of the first line of `text` that contains `needle`."""
    for number, line in enumerate(text.splitlines(), 1):
        if needle in line:
            return number
    raise AssertionError(f"{needle!r} not in text")


class Proj:
    """A spec project on disk and the in-memory world its `memory` backend manages."""

    def __init__(self, root: Path):
        self.root = root
        self.memory = InMemoryProvider()

    def ml(self, *args: str):
        return run_cli(list(args), providers={"memory": self.memory}, cwd=self.root)

    def write(self, rel: str, text: str) -> str:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return text

    def edit(self, rel: str, old: str, new: str) -> str:
        text = (self.root / rel).read_text(encoding="utf-8")
        assert old in text, f"{old!r} not in {rel}"
        return self.write(rel, text.replace(old, new, 1))

    @property
    def db(self) -> Path:
        return self.root / ".ml" / "state.db"


@pytest.fixture
def proj(make_project) -> Proj:
    files = {"specs/features.yaml": FEATURES, "specs/models.yaml": MODELS, "specs/env/prod.yaml": PROD}
    return Proj(make_project(files))


@pytest.fixture
def applied(proj: Proj) -> Proj:
    """The project, applied once: state holds every resource."""
    result = proj.ml("apply", "--auto-approve")
    assert result.exit_code == 0, result.output
    return proj


def assert_clean_error(result, *expected: str) -> None:
    """Exit 1, exactly one error message containing every expected piece, and no traceback."""
    out = result.output
    assert result.exit_code == 1, out
    assert "Traceback" not in out, out
    assert out.count("Error:") == 1, out
    for piece in expected:
        assert piece in out, f"{piece!r} missing from:\n{out}"


def recorded(proj: Proj) -> list[str]:
    store = open_state("sqlite:///.ml/state.db", project_dir=proj.root)
    try:
        return sorted(r.address for r in store.list_resources())
    finally:
        store.close()


# -- spec errors: file:line, field, did-you-mean; validate/plan/apply all refuse; state untouched --------------------

def _yaml_syntax(p):
    text = p.edit("specs/features.yaml", "name: txns", "name: txns: oops")
    return [], [f"specs/features.yaml:{line_of(text, 'txns: oops')}", "YAML syntax error"]


def _yaml_duplicate_key(p):
    text = p.edit("specs/features.yaml", "ttl: 7d\n", "ttl: 7d\nttl: 3d\n")
    return [], [f"specs/features.yaml:{line_of(text, 'ttl: 3d')}", "ttl", "duplicate key 'ttl'"]


def _not_utf8(p):
    (p.root / "specs" / "latin1.yaml").write_bytes("name: caf\xe9\n".encode("latin-1"))
    return [], ["specs/latin1.yaml", "cannot read spec file", "utf-8"]


def _document_not_a_mapping(p):
    p.write("specs/list.yaml", "# a list, not a spec\n- kind: Entity\n- name: x\n")
    return [], ["specs/list.yaml:2", "must be a mapping with 'kind' and 'name'"]


def _missing_kind(p):
    text = p.edit("specs/features.yaml", "kind: Source\n", "")
    return [], [f"specs/features.yaml:{line_of(text, 'name: txns')}", "kind", "missing 'kind'"]


def _invalid_name(p):
    text = p.edit("specs/features.yaml", "name: customer_stats", "name: 7 day stats")
    return [], [f"specs/features.yaml:{line_of(text, '7 day stats')}", "name", "'7 day stats'"]


def _unknown_kind(p):
    text = p.edit("specs/features.yaml", "kind: Source", "kind: Sourc")
    return [], [f"specs/features.yaml:{line_of(text, 'kind: Sourc')}", "kind", "unknown kind 'Sourc'",
                "did you mean 'Source'?"]


def _misspelt_field(p):
    text = p.edit("specs/features.yaml", "join_keys:", "join_key:")
    return [], [f"specs/features.yaml:{line_of(text, 'join_key:')}", "join_key: unknown field",
                "did you mean 'join_keys'?"]


def _misspelt_nested_field(p):
    text = p.edit("specs/models.yaml", "column: is_fraud", "colum: is_fraud")
    return [], [f"specs/models.yaml:{line_of(text, 'colum: is_fraud')}", "label.colum", "unknown field",
                "did you mean 'column'?"]


def _wrong_type(p):
    text = p.edit("specs/features.yaml", "online: true", "online: maybe")
    return [], [f"specs/features.yaml:{line_of(text, 'online: maybe')}", "online", "valid boolean", "'maybe'"]


def _wrong_enum(p):
    text = p.edit("specs/features.yaml", "{dtype: int64}", "{dtype: int99}")
    return [], [f"specs/features.yaml:{line_of(text, 'int99')}", "features.txn_count_7d.dtype", "'int99'"]


def _bad_duration(p):
    text = p.edit("specs/features.yaml", "ttl: 7d", "ttl: 7days")
    return [], [f"specs/features.yaml:{line_of(text, 'ttl: 7days')}", "ttl", "'7days'"]


def _missing_required_field(p):
    text = p.edit("specs/features.yaml", "timestamp_field: ts\n", "")
    return [], [f"specs/features.yaml:{line_of(text, 'kind: Source')}", "timestamp_field", "required field is missing"]


def _missing_reference(p):
    text = p.edit("specs/features.yaml", "source: txns", "source: txn")
    return [], [f"specs/features.yaml:{line_of(text, 'source: txn')}", "source: refers to source.txn",
                "did you mean 'txns'?"]


def _missing_feature_view(p):
    text = p.edit("specs/models.yaml", "customer_stats:*", "customer_stat:*")
    return [], [f"specs/models.yaml:{line_of(text, 'customer_stat:*')}", "features.0",
                "featureview.customer_stat", "did you mean 'customer_stats'?"]


def _duplicate_name(p):
    p.write("specs/more.yaml", "# another customer\nkind: Entity\nname: customer\nbackend: memory\n")
    return [], ["specs/more.yaml:3", "name", "duplicate Entity name 'customer'",
                f"first defined at specs/features.yaml:{line_of(FEATURES, 'kind: Entity')}"]


def _unknown_backend(p):
    text = p.edit("specs/models.yaml", "  backend: memory", "  backend: memroy")
    return [], [f"specs/models.yaml:{line_of(text, 'backend: memroy')}", "trainer.backend",
                "no plugin provides backend 'memroy'", "did you mean 'memory'?"]


def _cycle(p):
    text = p.write("specs/services.yaml", "kind: FeatureService\nname: a\nbackend: memory\nfeatures: [b]\n---\n"
                                          "kind: FeatureService\nname: b\nbackend: memory\nfeatures: [a]\n")
    second = line_of(text, "name: b") - 1
    return [], ["dependency cycle", "featureservice.a", "featureservice.b", "specs/services.yaml:1",
                f"specs/services.yaml:{second}"]


def _malformed_override(p):
    return ["feature_views.customer_stats.ttl=[oops"], [
        "command line override 'feature_views.customer_stats.ttl=[oops'", "malformed override"]


def _override_missing_key(p):
    return ["feature_views.customer_stats.onlin=false"], [
        "command line override", "feature_views.customer_stats.onlin", "no such key to override",
        "did you mean 'online'?"]


def _override_delete_missing_key(p):
    return ["~models.fraud.trainer.params.depth"], [
        "command line override", "models.fraud.trainer.params.depth", "cannot delete a key that does not exist"]


def _override_add_existing_key(p):
    return ["+models.fraud.trainer.params.num_leaves=63"], [
        "models.fraud.trainer.params.num_leaves", "key already exists"]


def _override_wrong_type(p):
    return ["feature_views.customer_stats.online=maybe"], [
        "command line override 'feature_views.customer_stats.online=maybe'", "online", "valid boolean"]


def _unknown_env(p):
    return ["env=nope"], ["unknown environment 'nope'", "env", "available: prod"]


def _misspelt_env(p):
    return ["env=prd"], ["unknown environment 'prd'", "did you mean 'prod'?"]


def _overlay_unknown_resource(p):
    text = p.edit("specs/env/prod.yaml", "  customer_stats:", "  customer_stat:")
    return ["env=prod"], [f"specs/env/prod.yaml:{line_of(text, 'customer_stat:')}", "feature_views.customer_stat",
                          "did you mean 'customer_stats'?"]


def _project_file_unknown_setting(p):
    text = p.write("ml.yaml", "name: demo\nplugin:\n  disabled: []\n")
    return [], [f"ml.yaml:{line_of(text, 'plugin:')}", "plugin", "unknown setting", "did you mean 'plugins'?"]


def _project_file_syntax(p):
    p.write("ml.yaml", "name: demo\nplugins: {disabled: [x}\n")
    return [], ["ml.yaml:2", "YAML syntax error"]


SPEC_ERRORS = {f.__name__.lstrip("_"): f for f in (
    _yaml_syntax, _yaml_duplicate_key, _not_utf8, _document_not_a_mapping, _missing_kind, _invalid_name,
    _unknown_kind, _misspelt_field, _misspelt_nested_field, _wrong_type,
    _wrong_enum, _bad_duration, _missing_required_field, _missing_reference, _missing_feature_view,
    _duplicate_name, _unknown_backend, _cycle, _malformed_override, _override_missing_key,
    _override_delete_missing_key, _override_add_existing_key, _override_wrong_type, _unknown_env, _misspelt_env,
    _overlay_unknown_resource, _project_file_unknown_setting, _project_file_syntax,
)}


@pytest.mark.parametrize("case", SPEC_ERRORS, ids=list(SPEC_ERRORS))
def test_bad_spec_input_is_one_clear_error_and_state_is_untouched(applied: Proj, state_snapshot, case):
    before = state_snapshot(applied.root)
    args, expected = SPEC_ERRORS[case](applied)
    for command in (["validate"], ["plan"], ["plan", "--detailed-exitcode"], ["apply", "--auto-approve"]):
        result = applied.ml(*command, *args)
        assert_clean_error(result, *expected)
    assert state_snapshot(applied.root) == before
    assert applied.memory.count("apply") == len(ADDRESSES)  # only the first apply reached the backend


def test_spec_errors_in_a_fresh_project_create_no_state(proj: Proj):
    proj.edit("specs/features.yaml", "join_keys:", "join_key:")
    assert_clean_error(proj.ml("apply", "--auto-approve"), "join_key", "did you mean 'join_keys'?")
    assert not proj.db.exists()


def test_every_error_of_a_run_is_reported_at_once(proj: Proj):
    features = proj.edit("specs/features.yaml", "join_keys:", "join_key:")
    models = proj.edit("specs/models.yaml", "task: binary", "task: binry")
    result = proj.ml("validate")
    assert_clean_error(result, "2 errors in specs", f"specs/features.yaml:{line_of(features, 'join_key:')}",
                       f"specs/models.yaml:{line_of(models, 'task: binry')}", "task")


# -- plugins ---------------------------------------------------------------------------------------------------------

def test_plugin_that_fails_to_import_fails_only_its_own_resources(proj: Proj, fixtures_dir: Path):
    shutil.copy(fixtures_dir / "brokenplugin.py", proj.root / "brokenplugin.py")
    proj.write("ml.yaml", 'plugins:\n  local:\n    memory: "ml_framework.testing:InMemoryProvider"\n'
                          '    broken: "brokenplugin:provider"\n')
    proj.write("specs/merchant.yaml", "kind: Entity\nname: merchant\nbackend: broken\n")

    # Without `providers`, run_cli uses the project's own plugins (the local ones of ml.yaml included).
    validate = run_cli(["validate"], cwd=proj.root)
    assert validate.exit_code == 1, validate.output
    assert "entity.merchant" in validate.output and "plugin 'broken' failed to load" in validate.output
    assert "libbroken.so.1" in validate.output
    assert "Traceback" not in validate.output

    plan = run_cli(["plan", "--json"], cwd=proj.root)
    assert plan.exit_code == 1, plan.output
    data = json.loads(plan.stdout)
    assert sorted(c["address"] for c in data["changes"]) == ADDRESSES
    assert [e["address"] for e in data["errors"]] == ["entity.merchant"]
    assert "plugin 'broken'" in data["errors"][0]["message"]

    apply = run_cli(["apply", "--auto-approve"], cwd=proj.root)
    assert apply.exit_code == 1, apply.output
    assert "Traceback" not in apply.output
    assert "plugin 'broken'" in apply.output
    assert recorded(proj) == ADDRESSES  # everything else was applied


# -- state: corrupt, newer format, locked ----------------------------------------------------------------------------

def test_corrupt_state_file_is_refused_and_left_alone(proj: Proj):
    proj.db.parent.mkdir()
    garbage = random.Random(1234).randbytes(8192)
    proj.db.write_bytes(garbage)
    for command in (["plan"], ["apply", "--auto-approve"], ["state", "list"], ["state", "show", "entity.customer"],
                    ["history"], ["force-unlock", "x", "--force"]):
        result = proj.ml(*command)
        assert_clean_error(result, str(proj.db.resolve()), "not a valid ml state database")
    assert proj.db.read_bytes() == garbage
    assert proj.memory.count("apply") == 0


def test_state_of_a_newer_format_is_refused_and_left_alone(applied: Proj, state_snapshot):
    conn = sqlite3.connect(applied.db)
    conn.execute("UPDATE ml_meta SET format_version = format_version + 1")
    conn.commit()
    conn.close()
    before = state_snapshot(applied.root)
    applied.edit("specs/features.yaml", "ttl: 7d", "ttl: 3d")  # there would be something to apply
    for command in (["plan"], ["apply", "--auto-approve"], ["state", "list"], ["history"],
                    ["state", "rm", "entity.customer"]):
        assert_clean_error(applied.ml(*command), f"state format {STATE_FORMAT_VERSION + 1}",
                           f"only understands format {STATE_FORMAT_VERSION}", "upgrade")
    assert state_snapshot(applied.root) == before


def test_locked_state_names_the_holder_and_force_unlock_frees_it(applied: Proj, state_snapshot):
    other = open_state("sqlite:///.ml/state.db", project_dir=applied.root)
    try:
        lock = other.acquire_lock("apply")
        applied.edit("specs/features.yaml", "ttl: 7d", "ttl: 3d")
        before = state_snapshot(applied.root)
        for command in (["apply", "--auto-approve"], ["destroy", "--auto-approve"], ["state", "rm", "entity.customer"]):
            assert_clean_error(applied.ml(*command), "is locked by", lock.who, f"lock id {lock.id}",
                               f"ml force-unlock {lock.id}")
        assert state_snapshot(applied.root) == before
        # plan takes no lock: it still works and shows the pending change
        assert applied.ml("plan", "--detailed-exitcode").exit_code == 2

        assert_clean_error(applied.ml("force-unlock", lock.id), "pass --force")  # no TTY, no --force
        assert_clean_error(applied.ml("force-unlock", "not-the-id", "--force"), "different id", lock.id)
        assert other.current_lock() == lock

        unlocked = applied.ml("force-unlock", lock.id, "--force")
        assert unlocked.exit_code == 0, unlocked.output
        assert f"Unlocked {lock.id}" in unlocked.output
        assert other.current_lock() is None
    finally:
        other.close()
    done = applied.ml("apply", "--auto-approve")
    assert done.exit_code == 0, done.output
    assert "0 added, 3 changed" in done.output  # the view and what is downstream of it
    assert_clean_error(applied.ml("force-unlock", lock.id, "--force"), "not locked")


# -- saved plans: stale, foreign, unreadable -------------------------------------------------------------------------

def test_stale_saved_plan_is_refused_naming_the_serial(applied: Proj, state_snapshot):
    applied.edit("specs/features.yaml", "ttl: 7d", "ttl: 3d")
    saved = applied.ml("plan", "-out", "p.json")
    assert saved.exit_code == 0, saved.output
    made_at = json.loads((applied.root / "p.json").read_text())["state"]["serial"]
    assert applied.ml("apply", "--auto-approve").exit_code == 0  # someone else applies meanwhile
    before = state_snapshot(applied.root)
    now = before["ml_meta"][0][2]
    assert now > made_at
    result = applied.ml("apply", "p.json")
    assert_clean_error(result, "stale", f"serial was {made_at}", f"is {now} now", "ml plan -out")
    assert state_snapshot(applied.root) == before


def test_saved_plan_from_another_state_is_refused_naming_lineages(applied: Proj, make_project, state_snapshot):
    other = Proj(make_project({"specs/features.yaml": FEATURES, "specs/models.yaml": MODELS}, name="other"))
    assert other.ml("plan", "-out", "p.json").exit_code == 0
    foreign = json.loads((other.root / "p.json").read_text())["state"]["lineage"]
    before = state_snapshot(applied.root)
    mine = before["ml_meta"][0][1]
    result = applied.ml("apply", str(other.root / "p.json"))
    assert_clean_error(result, "another state", f"lineage {foreign}", f"this state is {mine}")
    assert state_snapshot(applied.root) == before


def test_saved_plan_whose_specs_changed_is_refused(applied: Proj, state_snapshot):
    applied.edit("specs/features.yaml", "ttl: 7d", "ttl: 3d")
    assert applied.ml("plan", "-out", "p.json").exit_code == 0
    applied.edit("specs/features.yaml", "ttl: 3d", "ttl: 1d")
    before = state_snapshot(applied.root)
    assert_clean_error(applied.ml("apply", "p.json"), "changed since the plan was saved",
                       "featureview.customer_stats")
    assert state_snapshot(applied.root) == before


@pytest.mark.parametrize("content", ["garbage{", "[1, 2]", '{"format_version": 99}', '{"format_version": 1}'])
def test_unreadable_saved_plan_is_refused(applied: Proj, state_snapshot, content):
    (applied.root / "p.json").write_text(content)
    before = state_snapshot(applied.root)
    assert_clean_error(applied.ml("apply", "p.json"), "plan p.json")
    assert state_snapshot(applied.root) == before


def test_missing_saved_plan_is_named_as_a_plan_file(applied: Proj):
    assert_clean_error(applied.ml("apply", "nope.json"), "nope.json", "cannot read plan file")


def test_saved_plan_applies_when_nothing_moved(applied: Proj):
    applied.edit("specs/features.yaml", "ttl: 7d", "ttl: 3d")
    assert applied.ml("plan", "-out", "p.json").exit_code == 0
    result = applied.ml("apply", "p.json")  # a saved plan is the approval: no prompt, no TTY needed
    assert result.exit_code == 0, result.output
    assert "0 added, 3 changed" in result.output
    assert applied.ml("plan", "--detailed-exitcode").exit_code == 0


# -- exit codes and confirmation -------------------------------------------------------------------------------------

def test_detailed_exitcode_is_0_without_changes_2_with_changes_1_on_error(proj: Proj):
    first = proj.ml("plan", "--detailed-exitcode")
    assert first.exit_code == 2, first.output
    assert proj.ml("plan").exit_code == 0  # without the flag, changes are not an error
    assert proj.ml("apply", "--auto-approve").exit_code == 0

    unchanged = proj.ml("plan", "--detailed-exitcode")
    assert unchanged.exit_code == 0, unchanged.output  # "No changes" must never be 2
    assert "No changes" in unchanged.output
    assert proj.ml("plan", "--detailed-exitcode", "--json").exit_code == 0

    proj.edit("specs/features.yaml", "ttl: 7d", "ttl: 3d")
    assert proj.ml("plan", "--detailed-exitcode").exit_code == 2
    proj.edit("specs/features.yaml", "ttl: 3d", "ttl: 3 days")
    assert_clean_error(proj.ml("plan", "--detailed-exitcode"), "ttl")


def test_apply_and_destroy_without_auto_approve_refuse_without_a_tty(applied: Proj, state_snapshot):
    applied.edit("specs/features.yaml", "ttl: 7d", "ttl: 3d")
    before = state_snapshot(applied.root)
    assert_clean_error(applied.ml("apply"), "stdin is not a terminal", "--auto-approve")
    assert_clean_error(applied.ml("destroy"), "stdin is not a terminal", "--auto-approve")
    assert state_snapshot(applied.root) == before  # lock released, nothing recorded
    assert applied.memory.count("apply") == len(ADDRESSES) and applied.memory.count("delete") == 0


def test_apply_with_nothing_to_do_needs_no_approval(applied: Proj):
    result = applied.ml("apply")
    assert result.exit_code == 0, result.output
    assert "No changes" in result.output


def test_a_failing_resource_stops_the_apply_before_anything_queued_starts(proj: Proj):
    proj.memory.fail_on = {"entity.customer", "source.txns"}  # both ready at once; only one may start
    result = proj.ml("apply", "--auto-approve", "--parallelism", "1")
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert proj.memory.count("apply") == 1, proj.memory.calls
    failed = proj.memory.calls[-1][1]
    assert f"simulated failure applying {failed}" in result.output
    assert "not started: apply stopped" in result.output
    assert recorded(proj) == []
    runs = json.loads(proj.ml("history", "--json").stdout)
    assert runs[0]["status"] == "failed"


# -- output formats --------------------------------------------------------------------------------------------------

def test_plan_json_parses_with_actions_per_change(applied: Proj):
    applied.edit("specs/features.yaml", "ttl: 7d", "ttl: 3d")
    for args in (["--json"], ["--format", "json"]):
        result = applied.ml("plan", *args)
        assert result.exit_code == 0, result.output
        data = json.loads(result.stdout)
        assert data["format_version"] == 1
        changes = {c["address"]: c for c in data["changes"]}
        assert set(changes) == set(ADDRESSES)
        for change in changes.values():
            assert isinstance(change["actions"], list) and change["actions"], change
        assert changes["featureview.customer_stats"]["actions"] == ["update"]
        assert changes["entity.customer"]["actions"] == ["no-op"]


def test_plan_markdown(applied: Proj):
    applied.edit("specs/features.yaml", "ttl: 7d", "ttl: 3d")
    result = applied.ml("plan", "--format", "markdown")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("### ")
    assert "featureview.customer_stats" in result.stdout and "|" in result.stdout
    assert_clean_error(applied.ml("plan", "--format", "html"), "--format", "'html'")


def test_graph_mermaid_and_dot(proj: Proj):
    mermaid = proj.ml("graph")
    assert mermaid.exit_code == 0, mermaid.output
    assert mermaid.output.lstrip().startswith(("graph", "flowchart"))
    assert "-->" in mermaid.output and "model.fraud" in mermaid.output
    assert proj.ml("graph", "--format", "mermaid").output == mermaid.output
    dot = proj.ml("graph", "--format", "dot")
    assert dot.exit_code == 0, dot.output
    assert dot.output.lstrip().startswith("digraph") and "->" in dot.output
    assert re.search(r'"model\.fraud"|model\.fraud', dot.output)
    assert_clean_error(proj.ml("graph", "--format", "png"), "--format", "'png'")
    proj.edit("specs/features.yaml", "source: txns", "source: txn")
    assert_clean_error(proj.ml("graph"), "source.txn", "did you mean 'txns'?")


def test_schema_is_json_with_every_kind(tmp_path: Path):
    result = run_cli(["schema"], cwd=tmp_path)
    assert result.exit_code == 0, result.output
    schema = json.loads(result.stdout)
    text = json.dumps(schema)
    for kind in ("Entity", "Source", "FeatureView", "FeatureService", "Model", "Deployment", "Monitor", "Moved", "Import"):
        assert f'"{kind}"' in text, kind
    import jsonschema

    jsonschema.validate({"kind": "Moved", "from": "model.fraud", "to": "model.fraud_lgbm"}, schema)
    jsonschema.validate({"kind": "Import", "to": "model.fraud", "id": "fraud:abc"}, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"kind": "Moved", "from": "model.fraud", "too": "model.x"}, schema)
    out = tmp_path / "schema.json"
    assert run_cli(["schema", "-o", str(out)], cwd=tmp_path).exit_code == 0
    assert json.loads(out.read_text()) == schema


# -- state and history commands --------------------------------------------------------------------------------------

def test_state_list_show_rm(applied: Proj):
    listed = applied.ml("state", "list")
    assert listed.exit_code == 0, listed.output
    for address in ADDRESSES:
        assert address in listed.output

    shown = applied.ml("state", "show", "model.fraud")
    assert shown.exit_code == 0, shown.output
    record = json.loads(shown.stdout)
    assert record["address"] == "model.fraud" and record["status"] == "applied"
    assert record["spec"]["trainer"]["params"] == {"num_leaves": 31}

    assert_clean_error(applied.ml("state", "show", "model.frau"), "model.frau is not in state",
                       "did you mean 'model.fraud'?")
    assert_clean_error(applied.ml("state", "rm", "model.frau"), "model.frau is not in state")

    removed = applied.ml("state", "rm", "deployment.fraud_api")
    assert removed.exit_code == 0, removed.output
    assert "deployment.fraud_api" not in applied.ml("state", "list").output
    assert applied.memory.count("delete") == 0  # forgetting deletes nothing
    plan = json.loads(applied.ml("plan", "--json").stdout)
    assert [c["address"] for c in plan["changes"] if c["action"] != "no-op"] == ["deployment.fraud_api"]


def test_history(applied: Proj):
    applied.ml("state", "rm", "deployment.fraud_api")
    table = applied.ml("history")
    assert table.exit_code == 0, table.output
    assert "apply" in table.output and "state rm" in table.output and "succeeded" in table.output

    runs = json.loads(applied.ml("history", "--json").stdout)
    assert [r["operation"] for r in runs] == ["state rm", "apply"]
    assert sorted(o["address"] for o in runs[1]["outcomes"]) == ADDRESSES
    assert all(o["outcome"] == "succeeded" for o in runs[1]["outcomes"])

    only = json.loads(applied.ml("history", "deployment.fraud_api", "--json").stdout)
    assert len(only) == 2
    assert json.loads(applied.ml("history", "entity.customer", "--json").stdout)[0]["operation"] == "apply"


def test_history_and_state_list_on_a_new_project(proj: Proj):
    assert proj.ml("history").exit_code == 0
    assert json.loads(proj.ml("history", "--json").stdout) == []
    assert "state serial 0" in proj.ml("state", "list").output


# -- init, version ---------------------------------------------------------------------------------------------------

def _feast_installed() -> bool:
    return any(ep.name == "feast" for ep in entry_points(group=ENTRY_POINT_GROUP))


def test_init_then_validate_and_plan(tmp_path: Path):
    project = tmp_path / "new"
    project.mkdir()
    result = run_cli(["init"], cwd=project)
    assert result.exit_code == 0, result.output
    for rel in ("ml.yaml", "specs/features.yaml", "specs/env/prod.yaml", ".gitignore", "data/customer_stats.csv",
                "feature_repo/feature_store.yaml"):
        assert (project / rel).is_file(), rel

    # The scaffold uses the feast backend; stand in for it with an in-memory provider of that name.
    stand_in = {"feast": InMemoryProvider("feast")}
    valid = run_cli(["validate"], cwd=project, providers=stand_in)
    assert valid.exit_code == 0, valid.output
    assert "specs are valid: 3 resources" in valid.output
    assert run_cli(["validate", "env=prod"], cwd=project, providers=stand_in).exit_code == 0
    plan = run_cli(["plan", "--detailed-exitcode"], cwd=project, providers=stand_in)
    assert plan.exit_code == 2, plan.output
    assert "3 to add" in plan.output

    real = run_cli(["validate"], cwd=project)  # with the plugins actually installed
    if _feast_installed():
        assert real.exit_code == 0, real.output
        # As generated, with its sample data and Feast repository: it applies, and then plans no change.
        applied = run_cli(["apply", "--auto-approve"], cwd=project)
        assert applied.exit_code == 0, applied.output
        assert run_cli(["plan", "--detailed-exitcode"], cwd=project).exit_code == 0
    else:
        assert_clean_error(real, "specs/features.yaml:", "backend", "no plugin provides backend 'feast'")

    again = run_cli(["init"], cwd=project)
    assert_clean_error(again, "already exists")


def test_init_into_a_new_directory(tmp_path: Path):
    result = run_cli(["init", "sub/dir"], cwd=tmp_path)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "sub" / "dir" / "ml.yaml").is_file()


def test_version(tmp_path: Path):
    result = run_cli(["--version"], cwd=tmp_path)
    assert result.exit_code == 0
    assert result.output.strip() == f"ml {__version__}"


def test_unknown_target_is_a_clean_error(applied: Proj):
    assert_clean_error(applied.ml("plan", "--target", "model.frau"), "--target model.frau", "no such resource",
                       "did you mean 'model.fraud'?")
    assert_clean_error(applied.ml("apply", "--auto-approve", "-t", "model.frau"), "did you mean 'model.fraud'?")


def test_unexpected_extra_argument_is_a_clean_error(proj: Proj):
    assert_clean_error(proj.ml("plan", "specs", "other"), "unexpected argument 'other'")


def test_missing_spec_directory_is_a_clean_error(tmp_path: Path):
    assert_clean_error(run_cli(["validate"], cwd=tmp_path, providers={}), "spec directory", "does not exist",
                       "ml init")


def test_a_missing_data_file_or_feast_configuration_is_a_plan_error_not_an_apply_failure(tmp_path: Path):
    project = tmp_path / "new"
    project.mkdir()
    assert run_cli(["init"], cwd=project).exit_code == 0
    (project / "data" / "customer_stats.csv").rename(project / "elsewhere.csv")
    plan = run_cli(["plan"], cwd=project)
    assert plan.exit_code == 1 and "Traceback" not in plan.output
    assert "source.customer_stats: data file data/customer_stats.csv does not exist" in plan.output
    assert "make data" in plan.output and "+ source.customer_stats" not in plan.output  # not planned as a change
    (project / "elsewhere.csv").rename(project / "data" / "customer_stats.csv")
    (project / "feature_repo" / "feature_store.yaml").unlink()
    plan = run_cli(["plan"], cwd=project)
    assert plan.exit_code == 1 and "Traceback" not in plan.output
    assert "the Feast repository" in plan.output and "has no feature_store.yaml" in plan.output
    assert "FileNotFoundError" not in plan.output
