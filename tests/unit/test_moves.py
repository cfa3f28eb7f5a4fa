"""`kind: Moved`: renaming a resource without rebuilding it, as Terraform's `moved` blocks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ml_framework.errors import SpecErrors
from ml_framework.plan.model import CREATE, DELETE, NOOP, UPDATE
from ml_framework.testing import InMemoryProvider, MovableMemoryProvider, run_cli
from ml_framework.testing.harness import Harness
from memory_specs import feature_specs, model_spec, write_specs

def specs(root: Path, *, entity="customer", model="fraud", leaves=31, moves: str = "") -> Path:
    write_specs(root, feature_specs(entity=entity) + "---\n" + model_spec(model, leaves=leaves))
    moved = root / "specs" / "moved.yaml"
    if moves:
        moved.write_text(moves)
    elif moved.exists():
        moved.unlink()
    return root


def moved(source: str, target: str) -> str:
    return f"kind: Moved\nfrom: {source}\nto: {target}\n"


@pytest.fixture
def provider():
    return MovableMemoryProvider()


@pytest.fixture
def harness(tmp_path, provider):
    h = Harness(specs(tmp_path), {"memory": provider})
    assert h.apply().ok
    provider.calls.clear()
    yield h
    h.close()


def by_address(plan):
    return {c.address: c for c in plan.changes}


def test_a_renamed_model_is_moved_not_retrained(harness, provider, tmp_path):
    specs(tmp_path, model="fraud_v2", moves=moved("model.fraud", "model.fraud_v2"))
    plan = harness.plan()
    change = by_address(plan)["model.fraud_v2"]
    assert change.action == NOOP and change.moved_from == "model.fraud"
    assert "model.fraud" not in by_address(plan)  # not destroyed
    assert plan.summary()["move"] == 1 and plan.has_changes
    report = harness.apply(plan)
    assert report.ok
    assert [h for h, _ in provider.calls if h in ("apply", "delete", "move")] == ["move"]
    assert harness.store.get("model.fraud") is None
    assert harness.store.get("model.fraud_v2").outputs["id"] == "model.fraud_v2"
    assert not harness.plan().has_changes  # settled
    specs(tmp_path, model="fraud_v2")  # the Moved document may go once applied
    assert not harness.plan().has_changes


def test_dependents_follow_a_renamed_reference_without_rebuilding(harness, provider, tmp_path):
    specs(tmp_path, entity="client", moves=moved("entity.customer", "entity.client"))
    plan = harness.plan()
    changes = by_address(plan)
    assert changes["entity.client"].moved_from == "entity.customer"
    view = changes["featureview.txn_stats"]  # entities: [customer] -> [client]
    assert view.action == NOOP and "follows entity.customer → entity.client" in view.restate
    model = changes["model.fraud"]  # its input (the view's fingerprint) follows the rename: no retrain
    assert model.action == NOOP and model.restate and "entity.customer → entity.client" in model.restate
    assert harness.apply(plan).ok
    assert [h for h, _ in provider.calls if h in ("apply", "delete", "move")] == ["move"]
    assert harness.store.get("featureview.txn_stats").spec["entities"] == ["client"]
    assert not harness.plan().has_changes
    specs(tmp_path, entity="client")
    assert not harness.plan().has_changes


def test_a_rename_with_other_changes_moves_then_updates(harness, provider, tmp_path):
    specs(tmp_path, model="fraud_v2", leaves=63, moves=moved("model.fraud", "model.fraud_v2"))
    change = by_address(harness.plan())["model.fraud_v2"]
    assert change.action == UPDATE and change.moved_from == "model.fraud"
    assert change.reasons[0] == "moved from model.fraud (renamed in place first)"
    assert harness.apply().ok
    assert [h for h, _ in provider.calls if h in ("apply", "delete", "move")] == ["move", "apply"]
    assert harness.store.get("model.fraud_v2").spec["trainer"]["params"]["num_leaves"] == 63
    assert not harness.plan().has_changes


class _RenamesViewsOnly(MovableMemoryProvider):
    movable_kinds = ("FeatureView",)  # a backend that renames some of its kinds


@pytest.mark.parametrize("provider_type, why", [(InMemoryProvider, "cannot rename in place"),
                                                (_RenamesViewsOnly, "cannot rename a Model")])
def test_a_backend_that_cannot_rename_recreates_and_says_why(tmp_path, provider_type, why):
    h = Harness(specs(tmp_path), {"memory": provider_type()})
    try:
        assert h.apply().ok
        specs(tmp_path, model="fraud_v2", moves=moved("model.fraud", "model.fraud_v2"))
        changes = by_address(h.plan())
        assert changes["model.fraud_v2"].action == CREATE and changes["model.fraud"].action == DELETE
        assert f"the memory backend {why}" in changes["model.fraud_v2"].reasons[0]
    finally:
        h.close()


def test_an_interrupted_move_is_finished_by_the_next_apply(harness, provider, tmp_path):
    """Both records present (stopped after writing the new one): the old one is forgotten, nothing deleted."""
    import dataclasses

    specs(tmp_path, model="fraud_v2", moves=moved("model.fraud", "model.fraud_v2"))
    old = harness.store.get("model.fraud")
    lock = harness.store.acquire_lock("test")
    harness.store.put(dataclasses.replace(old, address="model.fraud_v2", spec={**old.spec, "name": "fraud_v2"}),
                      lock_id=lock.id)
    harness.store.release_lock(lock.id)
    plan = harness.plan()
    forget = by_address(plan)["model.fraud"]
    assert forget.action == NOOP and "already moved to model.fraud_v2" in forget.restate
    assert harness.apply(plan).ok
    assert harness.store.get("model.fraud") is None and "delete" not in [h for h, _ in provider.calls]


def test_moves_are_checked_with_file_and_line(tmp_path, provider):
    bad = (moved("model.fraud", "model.nope") + "---\n" + moved("model.fraud", "model.fraud") + "---\n"
           + moved("model.old", "featureview.txn_stats") + "---\nkind: Moved\nfrom: model.a\ntoo: model.b\n")
    specs(tmp_path, moves=bad)
    with pytest.raises(SpecErrors) as caught:
        Harness(tmp_path, {"memory": provider}).plan()
    message = str(caught.value)
    assert "specs/moved.yaml:15: too: unknown field of a Moved document" in message and "did you mean 'to'" in message
    assert "specs/moved.yaml:13: to: missing 'to': the new address" in message
    assert "specs/moved.yaml:11: to: a move keeps the kind: model.old cannot become featureview.txn_stats" in message
    specs(tmp_path, moves=moved("model.fraud", "model.nope") + "---\n" + moved("model.fraud", "model.fraud"))
    with pytest.raises(SpecErrors) as caught:
        Harness(tmp_path, {"memory": provider}).plan()
    message = str(caught.value)
    assert "specs/moved.yaml:1: to: model.nope is not in the specs" in message
    assert "specs/moved.yaml:5: from: model.fraud is still in the specs" in message
    assert "from: model.fraud is moved twice (first at specs/moved.yaml:1)" in message


def test_the_plan_shows_the_move_in_every_format(harness, tmp_path, provider):
    specs(tmp_path, model="fraud_v2", moves=moved("model.fraud", "model.fraud_v2"))
    text = run_cli(["plan"], providers={"memory": provider}, cwd=tmp_path).output
    assert " -> model.fraud_v2   moved from model.fraud" in text
    assert "Plan: 0 to add, 0 to change, 0 to replace, 0 to destroy, 1 to move." in text
    md = run_cli(["plan", "--format", "markdown"], providers={"memory": provider}, cwd=tmp_path).output
    assert "| `model.fraud_v2` | moved from `model.fraud` |" in md
    data = json.loads(run_cli(["plan", "--json"], providers={"memory": provider}, cwd=tmp_path).output)
    (change,) = [c for c in data["changes"] if c["address"] == "model.fraud_v2"]
    assert change["moved_from"] == "model.fraud" and data["summary"]["move"] == 1
    applied = run_cli(["apply", "--auto-approve"], providers={"memory": provider}, cwd=tmp_path)
    assert applied.exit_code == 0 and "Resources: 0 added, 0 changed, 0 replaced, 0 destroyed, 1 moved." in applied.output


# -- kind: Import ---------------------------------------------------------------------------------------------


class Adopting(InMemoryProvider):
    """Knows objects by id in ``existing``; adopts them into state."""

    capabilities = ("adopt",)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.existing = {"obj-7": {"id": "obj-7", "made": "elsewhere"}}

    def adoptable(self, request):
        from ml_framework.errors import MLError

        if request.id not in self.existing:
            raise MLError(f"no object {request.id}")
        return f"object {request.id}"

    def adopt(self, request, ctx):
        self._call("adopt", request.resource.address)
        self.world[request.resource.address] = dict(self.existing[request.id], spec_hash="adopted")
        return dict(self.existing[request.id])


def test_an_import_adopts_an_existing_object_instead_of_building_it(tmp_path):
    provider = Adopting()
    specs(tmp_path, moves="kind: Import\nto: model.fraud\nid: obj-7\n")
    h = Harness(tmp_path, {"memory": provider})
    try:
        plan = h.plan(refresh=False)
        change = by_address(plan)["model.fraud"]
        assert change.action == CREATE and change.imported == "obj-7"
        assert change.reasons == ("adopts object obj-7: nothing is built",)
        assert plan.summary()["import"] == 1
        text = run_cli(["plan", "--no-refresh"], providers={"memory": provider}, cwd=tmp_path).output
        assert " <= model.fraud" in text and "import obj-7" in text and "1 to import" in text
        assert h.apply(plan).ok
        assert ("adopt", "model.fraud") in provider.calls and ("apply", "model.fraud") not in provider.calls
        assert h.store.get("model.fraud").outputs == {"id": "obj-7", "made": "elsewhere"}
        assert not h.plan(refresh=False).has_changes  # recorded: the Import has nothing more to do
    finally:
        h.close()


def test_an_import_that_cannot_be_done_is_a_plan_error(tmp_path):
    specs(tmp_path, moves="kind: Import\nto: model.fraud\nid: obj-404\n")
    h = Harness(tmp_path, {"memory": Adopting()})
    try:
        plan = h.plan(refresh=False)
        assert [(e.address, e.message) for e in plan.errors] == [("model.fraud", "model.fraud: no object obj-404")]
    finally:
        h.close()
    h = Harness(tmp_path, {"memory": InMemoryProvider()})
    try:
        (error,) = h.plan(refresh=False).errors
        assert "the memory backend cannot adopt existing objects" in error.message
    finally:
        h.close()
    specs(tmp_path, moves="kind: Import\nto: model.fraud\nid: x\n---\nkind: Import\nto: model.fraud\n")
    with pytest.raises(SpecErrors) as caught:
        Harness(tmp_path, {"memory": Adopting()}).plan()
    assert "specs/moved.yaml:5: id: 'id' must name the existing object" in str(caught.value)
    specs(tmp_path, moves="kind: Import\nto: model.nope\nid: x\n---\nkind: Import\nto: model.fraud\nid: a\n"
                          "---\nkind: Import\nto: model.fraud\nid: b\n")
    with pytest.raises(SpecErrors) as caught:
        Harness(tmp_path, {"memory": Adopting()}).plan()
    assert "specs/moved.yaml:1: to: model.nope is not in the specs" in str(caught.value)
    assert "specs/moved.yaml:9: to: model.fraud is imported twice (first at specs/moved.yaml:5)" in str(caught.value)


def test_a_renamed_view_is_followed_through_feature_references(harness, provider, tmp_path):
    """A model listing `txn_stats:*` follows the view's rename to `txn_activity:*`: its record is rewritten,
    nothing is retrained."""
    text = (feature_specs() + "---\n" + model_spec()).replace("name: txn_stats", "name: txn_activity")
    write_specs(tmp_path, text.replace('"txn_stats:*"', '"txn_activity:*"'))
    (tmp_path / "specs" / "moved.yaml").write_text(moved("featureview.txn_stats", "featureview.txn_activity"))
    changes = by_address(harness.plan())
    assert changes["featureview.txn_activity"].moved_from == "featureview.txn_stats"
    assert changes["model.fraud"].action == NOOP and changes["model.fraud"].restate
    assert harness.apply().ok
    assert [h for h, _ in provider.calls if h in ("apply", "delete", "move")] == ["move"]
    assert not harness.plan().has_changes


def test_the_renaming_pattern_matches_references_not_lookalikes():
    from ml_framework.plan.planner import _renaming_pattern

    pattern = _renaming_pattern(("txn_stats",))
    rename = lambda text: pattern.sub("txn_activity", text)  # noqa: E731
    assert rename("txn_stats:*") == "txn_activity:*"
    assert rename("txn_stats.amount / 2") == "txn_activity.amount / 2"
    assert rename("my_txn_stats.amount") == "my_txn_stats.amount"  # another name that ends alike
    assert rename("x.txn_stats.amount") == "x.txn_stats.amount" and rename("txn_stats") == "txn_stats"
