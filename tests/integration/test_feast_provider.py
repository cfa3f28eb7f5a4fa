"""The feast backend against real Feast: registry, `feast` CLI, SQLite and Redis online stores.

One module-scoped project (a small generated data set, the example specs, a Feast project name of its
own) is applied once by calling the provider's hooks directly; tests then change it one step at a time.
"""

from __future__ import annotations

import copy
import hashlib
import importlib.util
import shutil
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from ml_framework.contract import (
    ApplyContext,
    ApplyRequest,
    DeleteRequest,
    FingerprintRequest,
    ReadRequest,
    RecordedResource,
    Resource,
)
from ml_framework.errors import ProviderError
from ml_framework.spec.compose import compose
from ml_framework.spec.validate import validate_specs
from ml_framework.plugins.feast import FeastProvider
from ml_framework.plugins.feast.errors import DataContractError

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
FEAST = str(Path(sys.executable).with_name("feast"))
ORDER = ("FeatureStore", "Entity", "Source", "FeatureView", "OnDemandFeatureView", "FeatureService")
FEATURE_SECTIONS = ("feature_stores", "entities", "sources", "feature_views", "feature_services")
END = "2025-06-01"
# the plain views' features of the example's feature service (its on-demand view is computed by a Model)
PLAIN_REFS = ["customer_txn_stats:amount_mean_7d", "customer_txn_stats:amount_max_7d", "customer_txn_stats:txn_count_7d",
              "customer_txn_stats:txn_count_1d", "merchant_stats:fraud_rate_30d", "merchant_stats:txn_count_30d",
              "customer_profile:age", "customer_profile:credit_limit",
              "customer_profile:account_age_days", "customer_spend:txn_count_1h", "transaction_features:amount"]


def _generator():
    spec = importlib.util.spec_from_file_location("generate_data", ROOT / "scripts" / "generate_data.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def make_project(root: Path, rows: int = 3000) -> str:
    """A project folder: generated data, the example specs, a Feast repo with a unique project name."""
    import yaml

    gen = _generator()
    gen.write(root / "data", gen.default_params(rows, END))
    # the feature specs of the example project, and the feature sections of its env overlays
    shutil.copytree(ROOT / "specs" / "features", root / "specs" / "features")
    (root / "specs" / "env").mkdir()
    for overlay in (ROOT / "specs" / "env").glob("*.yaml"):
        data = yaml.safe_load(overlay.read_text()) or {}
        kept = {k: v for k, v in data.items() if k in FEATURE_SECTIONS}
        (root / "specs" / "env" / overlay.name).write_text(yaml.safe_dump(kept))
    (root / "feature_repo").mkdir()
    project = f"mlt_{uuid.uuid4().hex[:10]}"
    text = (ROOT / "feature_repo" / "feature_store.yaml").read_text().replace("project: ml_example",
                                                                               f"project: {project}")
    (root / "feature_repo" / "feature_store.yaml").write_text(text)
    return project


def load_specs(root: Path, env: str | None = None) -> dict[str, tuple[str, str, dict]]:
    valid = validate_specs(compose(root / "specs", env=env))
    specs = {v.spec.address: (v.spec.kind, v.spec.name, v.spec.model_dump(mode="json")) for v in valid}
    return dict(sorted(specs.items(), key=lambda item: (ORDER.index(item[1][0]), item[0])))


@dataclass
class World:
    root: Path
    project: str
    provider: FeastProvider
    specs: dict[str, tuple[str, str, dict]]
    records: dict[str, RecordedResource] = field(default_factory=dict)

    @property
    def repo(self) -> Path:
        return self.root / "feature_repo"

    def ctx(self, address: str) -> ApplyContext:
        return ApplyContext(address=address, project_dir=self.root, upstream=dict(self.records))

    def apply(self, address: str, spec: dict | None = None, *, kind: str | None = None):
        kind_, name, base = self.specs.get(address, (kind, address.partition(".")[2], None))
        spec = spec if spec is not None else base
        prior = self.records.get(address)
        resource = Resource(address=address, kind=kind_, name=name, backend="feast", spec=spec)
        result = self.provider.apply(ApplyRequest("update" if prior else "create", resource, prior),
                                     self.ctx(address))
        self.records[address] = RecordedResource(address=address, kind=kind_, backend="feast", spec=spec,
                                                 fingerprint="-", outputs=dict(result.outputs))
        return result

    def delete(self, address: str) -> None:
        self.provider.delete(DeleteRequest(self.records.pop(address)), self.ctx(address))

    def read(self, address: str):
        return self.provider.read(ReadRequest(self.records[address], self.root))

    def fingerprint(self, address: str) -> dict:
        kind, name, spec = self.specs[address]
        resource = Resource(address=address, kind=kind, name=name, backend="feast", spec=spec)
        return dict(self.provider.fingerprint(FingerprintRequest(resource, self.root)))

    def store(self):
        """A fresh FeatureStore, as another process would see the repository."""
        from ml_framework.plugins.feast.repo import new_feature_store

        return new_feature_store(self.repo)

    def spec(self, address: str) -> dict:
        return copy.deepcopy(self.specs[address][2])


def feast_cli(repo: Path, *args: str) -> str:
    out = subprocess.run([FEAST, "-c", str(repo), *args], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else "absent"


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> World:
    root = tmp_path_factory.mktemp("feast_project")
    project = make_project(root)
    provider = FeastProvider()
    provider.configure(root, {})
    w = World(root=root, project=project, provider=provider, specs=load_specs(root))
    for address in w.specs:
        w.apply(address)
    return w


# --- create / update / delete ----------------------------------------------------------------------------


def test_apply_registers_every_object(world):
    store = world.store()
    assert sorted(v.name for v in store.list_feature_views()) == ["customer_profile", "customer_spend",
                                                                   "customer_txn_stats", "merchant_profile",
                                                                   "merchant_stats", "transaction_features"]
    assert [v.name for v in store.list_on_demand_feature_views()] == ["transaction_context"]
    assert {e.name for e in store.list_entities()} >= {"customer", "merchant", "transaction"}
    assert [s.name for s in store.list_feature_services()] == ["fraud_detection"]
    assert {d.name for d in store.list_data_sources()} >= {"transactions", "fraud_labels", "customer_txn_stats"}
    outputs = world.records["featureview.customer_txn_stats"].outputs
    assert outputs["project"] == world.project and outputs["materialization"] == "full"
    assert outputs["rows"] == outputs["rows_materialized"] > 0
    assert 0 < outputs["entities_written"] <= 60


def test_feast_cli_agrees_and_plan_is_clean(world):
    listed = feast_cli(world.repo, "feature-views", "list")
    for name in ("customer_profile", "customer_txn_stats", "merchant_stats"):
        assert name in listed
    plan = feast_cli(world.repo, "plan")
    assert "No changes to registry" in plan and "No changes to infrastructure" in plan


def test_materialized_rows_are_served_online(world):
    import pandas as pd

    from ml_framework.plugins.feast.online import fetch_online_features

    data = pd.read_parquet(world.root / "data" / "customer_txn_stats.parquet")
    latest = data.sort_values("event_ts").groupby("customer_id").tail(1).set_index("customer_id")
    ids = [int(i) for i in latest.index[:5]]
    result = fetch_online_features(world.repo, ["customer_txn_stats:amount_mean_7d", "customer_txn_stats:txn_count_7d"],
                                   [{"customer_id": i} for i in ids] + [{"customer_id": 999_999}])
    assert result.features["txn_count_7d"][:5] == [int(latest.loc[i, "txn_count_7d"]) for i in ids]
    assert result.features["amount_mean_7d"][:5] == pytest.approx([float(latest.loc[i, "amount_mean_7d"]) for i in ids])
    assert result.missing == [{"customer_id": 999_999}]
    assert result.not_found == {"amount_mean_7d": [5], "txn_count_7d": [5]}


def test_missing_entities_through_a_feature_service(world):
    from ml_framework.plugins.feast.online import fetch_online_features

    known = world.store().get_online_features(["customer_profile:age"], [{"customer_id": 1000}]).to_dict()
    assert known["age"][0] is not None
    result = fetch_online_features(world.repo, "fraud_detection",
                                   [{"customer_id": 1000, "merchant_id": 50000},
                                    {"customer_id": 424242, "merchant_id": 50000},
                                    {"customer_id": 424242, "merchant_id": 777}])
    assert result.missing == [{"customer_id": 424242, "merchant_id": 777}]
    assert result.not_found["age"] == [1, 2] and result.not_found["fraud_rate_30d"] == [2]
    assert not result.complete


def test_views_the_online_store_cannot_answer_are_reported_not_found(world):
    """fraud_detection mixes customer/merchant features with those of the transaction being scored (an
    offline view keyed by transaction_id, whose values come with the request): a lookup by customer and
    merchant still answers, reporting the transaction's features as not found."""
    from ml_framework.plugins.feast.online import fetch_online_features

    from feast.errors import RequestDataNotFoundInEntityRowsException

    # what Feast itself does: the on-demand view wants its request field, the offline view its join key
    with pytest.raises((KeyError, RequestDataNotFoundInEntityRowsException), match="Missing join key|event_ts"):
        world.store().get_online_features(world.store().get_feature_service("fraud_detection"),
                                          [{"customer_id": 1000, "merchant_id": 50000}])
    result = fetch_online_features(world.store(), "fraud_detection", [{"customer_id": 1000, "merchant_id": 50000},
                                                                      {"customer_id": 424242, "merchant_id": 777}])
    assert result.features["customer_id"] == [1000, 424242] and result.features["age"][0] is not None
    assert result.features["amount"] == [None, None] and result.not_found["amount"] == [0, 1]
    # derived from a request field the rows lack: not found either (the service computes them per request)
    assert result.features["hour_of_day"] == [None, None] and result.not_found["hour_of_day"] == [0, 1]
    assert result.missing == [{"customer_id": 424242, "merchant_id": 777}]
    assert world.records["featureview.transaction_features"].outputs["online"] is False
    keyed = fetch_online_features(world.store(), ["transaction_features:amount", "customer_profile:age"],
                                  [{"customer_id": 1000, "transaction_id": 1}])  # keyed, but not online
    assert keyed.features["amount"] == [None] and keyed.not_found == {"amount": [0]}
    assert keyed.features["age"][0] is not None and keyed.missing == []


def test_update_is_reflected_in_registry_and_generated_module(world):
    spec = world.spec("featureview.customer_txn_stats")
    spec["ttl"] = "14d"
    before = world.records["featureview.customer_txn_stats"].outputs
    result = world.apply("featureview.customer_txn_stats", spec)
    assert world.store().get_feature_view("customer_txn_stats").ttl == timedelta(days=14)
    assert "ttl=timedelta(seconds=1209600)" in (world.repo / "ml_generated.py").read_text()
    # nothing but the ttl changed: only rows newer than the last materialization are loaded
    assert result.outputs["materialization"] == "incremental"
    assert result.outputs["materialized_from"] == before["materialized_until"]
    assert world.read("featureview.customer_txn_stats").drift == {}


def test_changed_source_data_is_reloaded_and_served(world):
    import pandas as pd

    from ml_framework.plugins.feast.online import fetch_online_features

    path = world.root / "data" / "customer_profile.parquet"
    original = path.read_bytes()
    try:
        df = pd.read_parquet(path)
        latest = df[df["customer_id"] == 1000]["event_ts"].idxmax()
        df.loc[latest, "credit_limit"] = 123_456.0  # a corrected historical row, older than the last load
        df.to_parquet(path, index=False)
        world.apply("source.customer_profile")
        result = world.apply("featureview.customer_profile")
        assert result.outputs["materialization"] == "full"
        assert result.outputs["materialization_reason"] == "source data changed"
        served = fetch_online_features(world.repo, ["customer_profile:credit_limit"], [{"customer_id": 1000}])
        assert served.features["credit_limit"] == [123_456.0]
    finally:
        path.write_bytes(original)
        world.apply("source.customer_profile")
        world.apply("featureview.customer_profile")


def test_create_then_delete_is_reflected_in_registry_and_cli(world):
    spec = world.spec("featureview.merchant_stats")
    spec["source"] = {"path": "data/merchant_stats.parquet", "timestamp_field": "event_ts"}
    spec["features"] = {"txn_count_30d": spec["features"]["txn_count_30d"]}
    world.apply("featureview.merchant_volume", spec, kind="FeatureView")
    store = world.store()
    assert store.get_feature_view("merchant_volume").batch_source.name == "merchant_volume__source"
    assert "merchant_volume" in feast_cli(world.repo, "feature-views", "list")

    world.delete("featureview.merchant_volume")
    store = world.store()
    assert "merchant_volume" not in [v.name for v in store.list_feature_views()]
    assert "merchant_volume__source" not in [d.name for d in store.list_data_sources()]
    assert "merchant_volume" not in (world.repo / "ml_generated.py").read_text()
    assert "merchant_volume" not in feast_cli(world.repo, "feature-views", "list")
    world.delete("featureview.merchant_volume") if "featureview.merchant_volume" in world.records else None


def test_delete_of_something_already_gone_succeeds(world):
    spec = world.spec("entity.merchant")
    world.apply("entity.ghost", {**spec, "join_keys": ["ghost_id"]}, kind="Entity")
    world.store().registry.delete_entity("ghost", world.project)
    world.delete("entity.ghost")  # must not raise


# --- drift -----------------------------------------------------------------------------------------------


def test_out_of_band_delete_and_edit_show_as_drift(world):
    assert world.read("featureview.merchant_stats").exists
    other = world.store()
    view = other.get_feature_view("merchant_stats")
    view.ttl = timedelta(days=99)
    other.apply([view])
    drift = world.read("featureview.merchant_stats").drift
    assert drift == {"ttl_seconds": (2 * 86400, 99 * 86400)}

    other.registry.delete_feature_view("merchant_stats", world.project)
    assert world.read("featureview.merchant_stats").exists is False
    assert world.read("featureservice.fraud_detection").exists  # untouched neighbours still read fine

    world.apply("featureview.merchant_stats")  # the engine's answer to drift: apply again
    assert world.read("featureview.merchant_stats").exists and not world.read("featureview.merchant_stats").drift


# --- fingerprints ----------------------------------------------------------------------------------------


def test_source_data_change_changes_fingerprint_and_unchanged_is_not_reread(world, monkeypatch):
    from ml_framework.plugins.feast import fingerprint as fp

    first = world.fingerprint("source.customer_profile")
    calls = []
    real = fp.content_key
    monkeypatch.setattr(fp, "content_key", lambda *a: calls.append(a[0]) or real(*a))
    assert world.fingerprint("source.customer_profile") == first and calls == []

    import pandas as pd

    path = world.root / "data" / "customer_profile.parquet"
    original = path.read_bytes()
    try:
        df = pd.read_parquet(path)
        df.loc[0, "credit_limit"] += 100
        df.to_parquet(path, index=False)
        changed = world.fingerprint("source.customer_profile")
        assert changed["source_data"] != first["source_data"] and calls == [path]
    finally:
        path.write_bytes(original)


# --- data contracts leave Feast untouched -----------------------------------------------------------------


def _bad(df, case: str):
    import pandas as pd

    if case == "null_keys":
        df["customer_id"] = df["customer_id"].astype("Int64")
        df.loc[[0, 5], "customer_id"] = None
    elif case == "naive_timestamps":
        df["event_ts"] = df["event_ts"].dt.tz_localize(None)
    elif case == "future_timestamps":
        df.loc[0, "event_ts"] = pd.Timestamp.now(tz="UTC") + pd.Timedelta(days=2)
    elif case == "duplicates":
        df = pd.concat([df, df.iloc[[0, 1]]], ignore_index=True)
    elif case == "renamed_column":
        df = df.rename(columns={"amount_mean_7d": "amount_avg_7d"})
    elif case == "wrong_dtype":
        df["txn_count_7d"] = df["txn_count_7d"].astype(str)
    elif case == "value_checks":
        df.loc[[0, 1, 2], "amount_mean_7d"] = -5.0
        df.loc[3, "txn_count_7d"] = 0
    return df


BAD_CASES = {
    "null_keys": "entities.0: entity key 'customer_id' has no nulls fails for 2 rows",
    "naive_timestamps": "source.timestamp_field: timezone-aware timestamps",
    "future_timestamps": "source.timestamp_field: not in the future fails for 1 row",
    "duplicates": "entities.0: one row per customer_id + event_ts fails for 4 rows",
    "renamed_column": "features.amount_mean_7d: column 'amount_mean_7d' present (did you mean 'amount_avg_7d'?",
    "wrong_dtype": "features.txn_count_7d: dtype (expected int64, file has string)",
    "value_checks": "features.amount_mean_7d.checks.ge: >= 0 fails for 3 rows, e.g. -5.0",
    "missing_file": "source.path: file exists",
    "unreadable_file": "source.path: readable parquet",
}


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_data_names_spec_and_field_and_changes_nothing(world, case):
    import pandas as pd

    path = world.root / "data" / f"bad_{case}.parquet"
    if case == "unreadable_file":
        path.write_bytes(b"PAR1 truncated garbage")
    elif case != "missing_file":
        _bad(pd.read_parquet(world.root / "data" / "customer_txn_stats.parquet"), case).to_parquet(path)
    spec = world.spec("featureview.customer_txn_stats")
    spec["source"] = {"path": f"data/bad_{case}.parquet", "timestamp_field": "event_ts"}
    registry, online = world.repo / "data" / "registry.db", world.repo / "data" / "online_store.db"
    before = (digest(registry), digest(online), digest(world.repo / "ml_generated.py"))
    with pytest.raises(DataContractError) as info:
        world.apply("featureview.bad_view", spec, kind="FeatureView")
    message = str(info.value)
    assert message.startswith("featureview.bad_view: data contract failed for data/bad_")
    assert BAD_CASES[case] in message
    assert (digest(registry), digest(online), digest(world.repo / "ml_generated.py")) == before
    assert "bad_view" not in [v.name for v in world.store().list_feature_views()]


def test_bad_data_for_an_existing_view_keeps_registry_and_online_values(world):
    import pandas as pd

    from ml_framework.plugins.feast.online import fetch_online_features

    path = world.root / "data" / "customer_profile.parquet"
    original = path.read_bytes()
    registry = world.repo / "data" / "registry.db"
    before_online = fetch_online_features(world.repo, ["customer_profile:age"], [{"customer_id": 1000}]).features
    before_registry = digest(registry)
    try:
        df = pd.read_parquet(path)
        df.loc[df.index[-1], "age"] = 7  # breaks `between: [18, 120]`
        df.to_parquet(path, index=False)
        with pytest.raises(DataContractError, match=r"(?s)featureview\.customer_profile: .*features\.age\.checks\.between"):
            world.apply("featureview.customer_profile")
        assert digest(registry) == before_registry
        assert fetch_online_features(world.repo, ["customer_profile:age"], [{"customer_id": 1000}]).features == before_online
    finally:
        path.write_bytes(original)


def test_bad_source_data_names_the_source_column_and_changes_nothing(world):
    import pandas as pd

    path = world.root / "data" / "transactions.parquet"
    original = path.read_bytes()
    registry = world.repo / "data" / "registry.db"
    before = digest(registry)
    try:
        df = pd.read_parquet(path)
        df.loc[[0, 1], "amount"] = -3.0
        df.loc[2, "channel"] = "atm"
        df.to_parquet(path, index=False)
        with pytest.raises(DataContractError) as info:
            world.apply("source.transactions")
        message = str(info.value)
        assert message.startswith("source.transactions: data contract failed for data/transactions.parquet (2 problems)")
        assert "columns.amount.checks.gt: > 0 fails for 2 rows, e.g. -3.0" in message
        assert "columns.channel.checks.isin: isin ['online', 'pos'] fails for 1 row, e.g. 'atm'" in message
        assert digest(registry) == before
    finally:
        path.write_bytes(original)


def test_feast_errors_are_wrapped_with_the_address(world):
    spec = world.spec("featureservice.fraud_detection")
    spec["features"] = ["customer_txn_stats:amount_mean_7d"]
    from ml_framework.plugins.feast import repo as repo_module

    original = repo_module.FeastRepo.store

    def broken(self):
        store = original(self)

        class Wrapper:
            def __getattr__(self, name):
                return getattr(store, name)

            def apply(self, *a, **k):
                raise RuntimeError("registry is read-only")

        return Wrapper()

    repo_module.FeastRepo.store = broken
    try:
        with pytest.raises(ProviderError) as info:
            world.apply("featureservice.narrow", spec, kind="FeatureService")
    finally:
        repo_module.FeastRepo.store = original
    assert str(info.value) == ("featureservice.narrow: Feast failed to apply the feature service: "
                               "RuntimeError: registry is read-only")
    assert info.value.__cause__ is not None


# --- training frames -------------------------------------------------------------------------------------


def test_point_in_time_join_never_leaks_future_values(world):
    import pandas as pd

    from ml_framework.plugins.feast.training import build_training_frame

    t0 = datetime(2025, 3, 1, 12, tzinfo=timezone.utc)
    probe = pd.DataFrame({
        "customer_id": [1, 1, 1, 2],
        "event_ts": [t0, t0 + timedelta(hours=2), t0 + timedelta(hours=4), t0],
        "score": [1.0, 2.0, 3.0, 10.0],
    })
    probe.to_parquet(world.root / "data" / "probe.parquet")
    world.apply("featureview.probe", {
        "kind": "FeatureView", "name": "probe", "entities": ["customer"], "ttl": "1d", "online": False,
        "source": {"path": "data/probe.parquet", "timestamp_field": "event_ts"},
        "features": {"score": {"dtype": "float64"}}}, kind="FeatureView")
    labels = pd.DataFrame({
        "customer_id": [1, 1, 1, 1, 2, 2],
        "event_ts": [t0 - timedelta(minutes=1), t0 + timedelta(hours=1), t0 + timedelta(hours=2),
                     t0 + timedelta(hours=3, minutes=59), t0 + timedelta(days=2), t0 + timedelta(hours=1)],
        "label_ts": [t0 + timedelta(days=9)] * 6,  # a second timestamp column must not confuse the join
        "is_fraud": [0, 1, 0, 1, 0, 0],
    })
    frame = build_training_frame(world.repo, labels, ["probe:score"])
    assert list(frame.columns) == ["customer_id", "event_ts", "is_fraud", "score"]
    scores = frame["score"].tolist()
    # before any value: null; then the newest value at or before each label's event time, never a later one;
    # outside the 1d ttl: null (and the row is kept, unlike Feast's local retrieval)
    assert scores[0] != scores[0] and scores[1:4] == [1.0, 2.0, 2.0]
    assert scores[4] != scores[4] and scores[5] == 10.0
    assert frame["is_fraud"].tolist() == [0, 1, 0, 1, 0, 0]


def test_training_frame_from_the_feature_service_keeps_every_label(world):
    import pandas as pd

    from ml_framework.plugins.feast.training import build_training_frame

    labels = pd.read_parquet(world.root / "data" / "fraud_labels.parquet").head(400)
    with pytest.raises(ValueError, match="on-demand view.*transaction_context"):  # computed by a Model, not here
        build_training_frame(world.repo, labels, "fraud_detection")
    frame = build_training_frame(world.repo, labels, PLAIN_REFS)
    assert len(frame) == len(labels)
    assert frame["customer_id"].tolist() == labels["customer_id"].tolist()
    assert {"amount_mean_7d", "fraud_rate_30d", "account_age_days"} <= set(frame.columns)
    assert frame["amount_mean_7d"].notna().mean() > 0.5


def test_training_frames_built_in_parallel_threads_do_not_deadlock(world, monkeypatch):
    """Two models training at once build their frames in two threads: Feast's dask retrievals are
    serialized (dask-expr's shared cached-property locks can deadlock two concurrent graph builds)."""
    import threading

    import pandas as pd

    from ml_framework.plugins.feast import materialize
    from ml_framework.plugins.feast.training import build_training_frame

    store = world.store()
    real = store.get_historical_features
    held = []
    monkeypatch.setattr(store, "get_historical_features",
                        lambda *a, **k: held.append(materialize.OFFLINE_READS.locked()) or real(*a, **k))
    labels = pd.read_parquet(world.root / "data" / "fraud_labels.parquet")
    frames, errors = {}, []

    def build(name, rows):
        try:
            frames[name] = build_training_frame(store, rows, PLAIN_REFS)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=build, args=(i, labels.iloc[i::2].reset_index(drop=True)), daemon=True)
               for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=180)
    assert not any(t.is_alive() for t in threads), "training frame retrievals deadlocked"
    assert not errors and len(frames[0]) + len(frames[1]) == len(labels)
    assert held and all(held)
    assert frames[0]["amount"].notna().all()  # the transaction's own features join to its label


# --- CSV sources -------------------------------------------------------------------------------------------

CSV_SOURCE = {
    "kind": "Source", "name": "stats_csv", "path": "data/stats.csv", "timestamp_field": "event_ts",
    "columns": {"customer_id": {"dtype": "int64"},
                "amount_mean_7d": {"dtype": "float32", "checks": {"ge": 0}},
                "txn_count_7d": {"dtype": "int64", "checks": {"ge": 1}}},
}
CSV_VIEW = {
    "kind": "FeatureView", "name": "stats_csv", "entities": ["customer"], "source": "stats_csv", "ttl": "7d",
    "features": {"amount_mean_7d": {"dtype": "float32"}, "txn_count_7d": {"dtype": "int64"}},
}


def _csv_frame(world):
    import pandas as pd

    return pd.read_parquet(world.root / "data" / "customer_txn_stats.parquet")  # event_ts written with +00:00


def _fingerprint(world, address: str, spec: dict) -> dict:
    kind, _, name = address.partition(".")
    resource = Resource(address=address, kind=spec["kind"], name=name, backend="feast", spec=spec)
    return dict(world.provider.fingerprint(FingerprintRequest(resource, world.root)))


@pytest.fixture
def csv_view(world):
    """A CSV-backed Source and FeatureView applied to the world; removed afterwards."""
    df = _csv_frame(world)
    df.to_csv(world.root / "data" / "stats.csv", index=False)
    world.apply("source.stats_csv", copy.deepcopy(CSV_SOURCE), kind="Source")
    world.apply("featureview.stats_csv", copy.deepcopy(CSV_VIEW), kind="FeatureView")
    yield df
    for address in ("featureview.stats_csv", "source.stats_csv"):
        if address in world.records:
            world.delete(address)
    (world.root / "data" / "stats.csv").unlink(missing_ok=True)


def test_csv_source_applies_materializes_and_serves(world, csv_view):
    from ml_framework.plugins.feast.online import fetch_online_features

    df = csv_view
    source = world.records["source.stats_csv"].outputs
    assert source["format"] == "csv" and source["path"] == "data/ml_sources/stats_csv.parquet"
    assert source["rows"] == len(df)
    copy_file = world.repo / "data" / "ml_sources" / "stats_csv.parquet"
    assert copy_file.is_file()
    store = world.store()
    assert store.get_data_source("stats_csv").path == "data/ml_sources/stats_csv.parquet"
    view = world.records["featureview.stats_csv"].outputs
    assert view["rows_materialized"] == len(df) and view["entities_written"] > 0

    latest = df.sort_values("event_ts").groupby("customer_id").tail(1).set_index("customer_id")
    ids = [int(i) for i in latest.index[:4]]
    served = fetch_online_features(world.store(), ["stats_csv:amount_mean_7d", "stats_csv:txn_count_7d"],
                                   [{"customer_id": i} for i in ids])
    assert served.features["txn_count_7d"] == [int(latest.loc[i, "txn_count_7d"]) for i in ids]
    assert served.features["amount_mean_7d"] == pytest.approx([float(latest.loc[i, "amount_mean_7d"]) for i in ids])
    assert world.read("source.stats_csv").drift == {} and world.read("featureview.stats_csv").drift == {}
    generated = (world.repo / "ml_generated.py").read_text()
    assert "# the parquet copy of data/stats.csv (CSV)" in generated
    plan = feast_cli(world.repo, "plan")
    assert "No changes to registry" in plan and "No changes to infrastructure" in plan

    copy_file.unlink()  # the copy Feast reads is gone: drift, and applying again restores it
    assert world.read("source.stats_csv").drift == {"data_copy": ("present", "missing")}
    world.apply("source.stats_csv", copy.deepcopy(CSV_SOURCE), kind="Source")
    assert copy_file.is_file() and world.read("source.stats_csv").drift == {}


def test_changed_csv_is_source_data_changed_and_reloaded(world, csv_view, monkeypatch):
    from ml_framework.plugins.feast import csvdata
    from ml_framework.plugins.feast import fingerprint as fp
    from ml_framework.plugins.feast.online import fetch_online_features

    first = _fingerprint(world, "source.stats_csv", CSV_SOURCE)
    assert first["source_data"] == world.records["source.stats_csv"].outputs["source_data"]
    calls = []
    real = fp.content_key
    monkeypatch.setattr(fp, "content_key", lambda *a: calls.append(a[0]) or real(*a))
    assert _fingerprint(world, "source.stats_csv", CSV_SOURCE) == first and calls == []  # stat cache: not read
    reads = []
    real_read = csvdata.read_csv
    monkeypatch.setattr(csvdata, "read_csv", lambda *a: reads.append(a[0]) or real_read(*a))
    world.apply("source.stats_csv", copy.deepcopy(CSV_SOURCE), kind="Source")
    assert reads == []  # unchanged CSV: the parquet copy is current, the CSV is not converted again

    df = csv_view.copy()
    row = df[df["customer_id"] == 1000]["event_ts"].idxmax()
    df.loc[row, "txn_count_7d"] = 4321  # a corrected row, older than the last load
    df.to_csv(world.root / "data" / "stats.csv", index=False)
    changed = _fingerprint(world, "source.stats_csv", CSV_SOURCE)
    assert changed["source_data"] != first["source_data"]
    world.apply("source.stats_csv", copy.deepcopy(CSV_SOURCE), kind="Source")
    assert len(reads) == 1
    result = world.apply("featureview.stats_csv", copy.deepcopy(CSV_VIEW), kind="FeatureView")
    assert result.outputs["materialization"] == "full"
    assert result.outputs["materialization_reason"] == "source data changed"
    served = fetch_online_features(world.store(), ["stats_csv:txn_count_7d"], [{"customer_id": 1000}])
    assert served.features["txn_count_7d"] == [4321]


def test_malformed_csv_names_spec_and_column_and_changes_nothing(world, csv_view):
    from ml_framework.plugins.feast.online import fetch_online_features

    df = csv_view.drop(columns=["txn_count_7d"])
    df["amount_mean_7d"] = df["amount_mean_7d"].astype(str)
    df.loc[5, "amount_mean_7d"] = "12,5"
    df.to_csv(world.root / "data" / "stats.csv", index=False)
    copy_file = world.repo / "data" / "ml_sources" / "stats_csv.parquet"
    registry, online = world.repo / "data" / "registry.db", world.repo / "data" / "online_store.db"
    before = (digest(registry), digest(online), digest(copy_file), digest(world.repo / "ml_generated.py"))
    served = fetch_online_features(world.store(), ["stats_csv:txn_count_7d"], [{"customer_id": 1000}]).features
    with pytest.raises(DataContractError) as info:
        world.apply("source.stats_csv", copy.deepcopy(CSV_SOURCE), kind="Source")
    message = str(info.value)
    assert message.startswith("source.stats_csv: data contract failed for data/stats.csv (2 problems); "
                              "nothing was changed in Feast")
    assert "columns.amount_mean_7d: parses as float32 fails for 1 row, e.g. '12,5' (first on line 7)" in message
    assert "columns.txn_count_7d: column 'txn_count_7d' present (did you mean 'txn_count_1d'?" in message
    assert (digest(registry), digest(online), digest(copy_file), digest(world.repo / "ml_generated.py")) == before
    assert fetch_online_features(world.store(), ["stats_csv:txn_count_7d"], [{"customer_id": 1000}]).features == served

    naive = csv_view.copy()
    naive["event_ts"] = naive["event_ts"].dt.tz_localize(None)
    naive.to_csv(world.root / "data" / "stats.csv", index=False)
    with pytest.raises(DataContractError, match=r"timestamp_field: timezone-aware timestamps fails for \d+ rows"):
        world.apply("source.stats_csv", copy.deepcopy(CSV_SOURCE), kind="Source")
    assert digest(copy_file) == before[2]


def test_undeclared_csv_column_types_are_inferred_and_the_error_says_so(world, csv_view):
    spec = copy.deepcopy(CSV_VIEW)
    spec["features"] = {"txn_count_1d": {"dtype": "float64"}}  # whole numbers in the CSV: inferred as int64
    with pytest.raises(DataContractError) as info:
        world.apply("featureview.stats_csv_wide", spec, kind="FeatureView")
    message = str(info.value)
    assert "features.txn_count_1d: dtype (expected float64, file has int64)" in message
    assert "declare it under columns of source.stats_csv" in message
    assert "stats_csv_wide" not in [v.name for v in world.store().list_feature_views()]


def test_inline_csv_source_of_a_view(world):
    from ml_framework.plugins.feast.online import fetch_online_features

    df = _csv_frame(world)
    df.to_csv(world.root / "data" / "inline.csv", index=False)
    spec = copy.deepcopy(CSV_VIEW)
    spec["source"] = {"path": "data/inline.csv", "timestamp_field": "event_ts"}
    copy_file = world.repo / "data" / "ml_sources" / "inline_csv__source.parquet"
    try:
        result = world.apply("featureview.inline_csv", spec, kind="FeatureView")
        assert result.outputs["source_path"] == "data/ml_sources/inline_csv__source.parquet" and copy_file.is_file()
        import pyarrow.parquet as pq

        assert str(pq.read_schema(copy_file).field("amount_mean_7d").type) == "float"  # typed by the view
        served = fetch_online_features(world.store(), ["inline_csv:txn_count_7d"], [{"customer_id": 1000}])
        assert served.features["txn_count_7d"][0] is not None
    finally:
        if "featureview.inline_csv" in world.records:
            world.delete("featureview.inline_csv")
    assert not copy_file.exists()
    assert "inline_csv__source" not in [d.name for d in world.store().list_data_sources()]


# --- Redis online store -----------------------------------------------------------------------------------


def _redis():
    import redis

    client = redis.Redis(host="127.0.0.1", port=6379, socket_connect_timeout=2)
    try:
        client.ping()
    except Exception:
        pytest.skip("no Redis on 127.0.0.1:6379")
    return client


def test_redis_online_store_selected_by_env_overlay(tmp_path):
    client = _redis()
    project = make_project(tmp_path, rows=1500)
    provider = FeastProvider()
    provider.configure(tmp_path, {})
    specs = load_specs(tmp_path, env="redis")
    w = World(root=tmp_path, project=project, provider=provider, specs=specs)
    pattern = f"*{project}".encode()
    try:
        for address in ("featurestore.default", "entity.customer", "source.customer_txn_stats",
                        "featureview.customer_txn_stats"):
            w.apply(address)
        assert w.records["featurestore.default"].outputs["online_store"] == "redis:127.0.0.1:6379/0"
        outputs = w.records["featureview.customer_txn_stats"].outputs
        assert outputs["online_store"] == "redis:127.0.0.1:6379/0"
        keys = list(client.scan_iter(pattern))
        assert len(keys) == outputs["entities_written"] > 0

        from ml_framework.plugins.feast.online import fetch_online_features

        result = fetch_online_features(w.store(), ["customer_txn_stats:txn_count_7d"],
                                       [{"customer_id": 1000}, {"customer_id": -1}])
        assert result.features["txn_count_7d"][0] is not None and result.missing == [{"customer_id": -1}]

        # Lookups read Redis directly: exactly what Feast's own get_online_features answers
        import pandas as pd

        from ml_framework.plugins.feast.online import _plan, feature_store

        store = feature_store(w.store())
        refs = [f"customer_txn_stats:{f.name}" for f in store.get_feature_view("customer_txn_stats").features]
        known = [int(k) for k in pd.read_parquet(tmp_path / "data" / "customer_txn_stats.parquet")["customer_id"]
                 .unique()[:20]]
        for rows in ([{"customer_id": known[0]}], [{"customer_id": k} for k in known],
                     [{"customer_id": known[1]}, {"customer_id": -5}, {"customer_id": known[2]}]):
            ours = fetch_online_features(w.store(), refs, rows)
            theirs = store.get_online_features(features=refs, entity_rows=rows).to_dict()
            assert {n: ours.features[n] for n in theirs} == theirs
        assert _plan(store, refs, [{"customer_id": 1}])[2].__class__.__name__ == "RedisReader"
        assert "type: redis" in (w.repo / "feature_store.yaml").read_text()

        w.delete("featureview.customer_txn_stats")  # tears the view's rows out of Redis
        assert list(client.scan_iter(pattern)) == []
    finally:
        stale = list(client.scan_iter(pattern))
        if stale:
            client.delete(*stale)


def test_unreachable_redis_is_reported_before_anything_changes(tmp_path):
    make_project(tmp_path, rows=500)
    provider = FeastProvider()
    provider.configure(tmp_path, {})
    w = World(root=tmp_path, project="-", provider=provider, specs=load_specs(tmp_path))
    before = (tmp_path / "feature_repo" / "feature_store.yaml").read_text()
    spec = w.spec("featurestore.default")
    spec["online_store"] = {"type": "redis", "connection_string": "127.0.0.1:1", "password_env": None,
                            "key_ttl_seconds": None}
    with pytest.raises(ProviderError, match=r"featurestore\.default: online_store: cannot reach Redis at 127\.0\.0\.1:1"):
        w.apply("featurestore.default", spec)
    assert (tmp_path / "feature_repo" / "feature_store.yaml").read_text() == before


def test_a_feast_object_is_adopted_as_it_is_and_a_different_one_refused(world):
    """`kind: Import` through the feast backend: the registry's object is checked against the spec at plan
    time and recorded at apply, its online rows kept (not reloaded)."""
    from ml_framework.contract import AdoptRequest
    from ml_framework.errors import MLError

    address = "featureview.merchant_stats"
    kind, name, spec = world.specs[address]
    resource = Resource(address=address, kind=kind, name=name, backend="feast", spec=spec)
    said = world.provider.adoptable(AdoptRequest(resource, name, world.root))
    assert "the Feast FeatureView 'merchant_stats'" in said
    before = world.store().get_online_features(features=["merchant_stats:fraud_rate_30d"],
                                               entity_rows=[{"merchant_id": 50000}]).to_dict()
    assert before["fraud_rate_30d"][0] is not None
    outputs = world.provider.adopt(AdoptRequest(resource, name, world.root), world.ctx(address))
    assert outputs["adopted"] == name and "rows_materialized" not in outputs
    assert world.store().get_online_features(features=["merchant_stats:fraud_rate_30d"],
                                             entity_rows=[{"merchant_id": 50000}]).to_dict() == before

    retyped = world.spec(address)
    feature = next(iter(retyped["features"]))
    retyped["features"][feature]["dtype"] = "string"
    other = Resource(address=address, kind=kind, name=name, backend="feast", spec=retyped)
    with pytest.raises(MLError, match="differs from the spec"):
        world.provider.adoptable(AdoptRequest(other, name, world.root))
    with pytest.raises(MLError, match="no FeatureView named 'nope'"):
        world.provider.adoptable(AdoptRequest(Resource(address="featureview.nope", kind=kind, name="nope",
                                                       backend="feast", spec={**spec, "name": "nope"}), "nope",
                                              world.root))
    with pytest.raises(MLError, match="id must be 'merchant_stats'"):
        world.provider.adoptable(AdoptRequest(resource, "other_name", world.root))


def test_an_on_demand_view_is_a_feast_on_demand_view_computed_by_ml(world):
    """The feast CLI lists it; Feast's own online retrieval runs ml's computation (the same function the
    training and serving paths use), so Feast and ml give the same values; delete removes it."""
    from ml_framework.plugins.features.derived import compute, definition
    from ml_framework.plugins.features.kinds import OnDemandFeatureView

    address = "ondemandfeatureview.spend_ratios"
    typed = OnDemandFeatureView.model_validate({
        "kind": "OnDemandFeatureView", "name": "spend_ratios", "request": {"amount": "float64"},
        "views": ["customer_txn_stats"],
        "features": {"amount_vs_mean_7d": {"expr": "amount / customer_txn_stats.amount_mean_7d", "dtype": "float64"},
                     "big": {"expr": "amount > 3 * customer_txn_stats.amount_max_7d", "dtype": "int64", "fill": 0}}})
    result = world.apply(address, typed.model_dump(mode="json"), kind="OnDemandFeatureView")
    assert result.outputs["features"] == ["amount_vs_mean_7d", "big"]
    assert "spend_ratios" in feast_cli(world.repo, "on-demand-feature-views", "list")
    assert "No changes to registry" in feast_cli(world.repo, "plan")  # the generated module agrees

    online = world.store().get_online_features(
        features=["spend_ratios:amount_vs_mean_7d", "spend_ratios:big", "customer_txn_stats:amount_mean_7d",
                  "customer_txn_stats:amount_max_7d"],
        entity_rows=[{"customer_id": 1000, "amount": 50.0}, {"customer_id": 1001, "amount": 5000.0}]).to_dict()
    ours = compute({"amount": [50.0, 5000.0],
                    "customer_txn_stats.amount_mean_7d": online["amount_mean_7d"],
                    "customer_txn_stats.amount_max_7d": online["amount_max_7d"]},
                   definition(typed, {"featureview.customer_txn_stats": world.specs["featureview.customer_txn_stats"][2]}))
    assert online["amount_vs_mean_7d"] == pytest.approx(ours["amount_vs_mean_7d"].tolist())
    assert online["amount_vs_mean_7d"][0] == pytest.approx(50.0 / online["amount_mean_7d"][0])
    assert [int(v) for v in online["big"]] == [int(v) for v in ours["big"].tolist()]
    assert world.read(address).exists and not world.read(address).drift

    world.delete(address)
    assert "spend_ratios" not in feast_cli(world.repo, "on-demand-feature-views", "list")


def test_windowed_aggregations_are_computed_served_and_refreshed_incrementally(world, tmp_path):
    """A view of aggregations over the transactions source: each value over the window ending at its event
    (checked by brute force), served online, listed by the feast CLI; new events extend the rows without
    recomputing the old ones; a changed old event recomputes everything."""
    import pandas as pd

    from ml_framework.plugins.features.aggregates import output_path
    from ml_framework.plugins.features.kinds import FeatureView

    address = "featureview.customer_spend"
    spec = FeatureView.model_validate({
        "kind": "FeatureView", "name": "customer_spend", "entities": ["customer"], "source": "transactions",
        "ttl": "30d", "aggregations": {
            "amount_sum_7d": {"function": "sum", "column": "amount", "window": "7d"},
            "txn_count_1d": {"function": "count", "window": "1d"},
            "amount_max_30d": {"function": "max", "column": "amount", "window": "30d"}}}).model_dump(mode="json")
    result = world.apply(address, spec, kind="FeatureView")
    rows_file = world.root / output_path("customer_spend")
    rows = pd.read_parquet(rows_file)
    events = pd.read_parquet(world.root / "data" / "transactions.parquet")
    assert result.outputs["aggregated_rows"] == len(rows) == len(events.drop_duplicates(["customer_id", "event_ts"]))
    assert "customer_spend" in feast_cli(world.repo, "feature-views", "list")
    for _, row in rows.sample(40, random_state=3).iterrows():
        mine = events[events["customer_id"] == row["customer_id"]]
        ts = pd.Timestamp(row["event_ts"])
        week = mine[(mine["event_ts"] > ts - pd.Timedelta("7D")) & (mine["event_ts"] <= ts)]
        day = mine[(mine["event_ts"] > ts - pd.Timedelta("1D")) & (mine["event_ts"] <= ts)]
        assert row["amount_sum_7d"] == pytest.approx(week["amount"].sum()) and row["txn_count_1d"] == len(day)
    customer = int(rows["customer_id"].iloc[0])
    latest = rows[rows["customer_id"] == customer].sort_values("event_ts").iloc[-1]
    online = world.store().get_online_features(features=["customer_spend:amount_sum_7d"],
                                               entity_rows=[{"customer_id": customer}]).to_dict()
    assert online["amount_sum_7d"][0] == pytest.approx(latest["amount_sum_7d"])

    # New events, all later: only their rows are computed.
    path = world.root / "data" / "transactions.parquet"
    original = events.copy()
    later = events.sort_values("event_ts").tail(5).copy()
    later["event_ts"] = later["event_ts"] + pd.Timedelta("2D")
    later["transaction_id"] = later["transaction_id"] + 10_000_000
    pd.concat([events, later], ignore_index=True).to_parquet(path, index=False)
    try:
        again = world.apply(address, spec, kind="FeatureView").outputs
        assert again["aggregated_recomputed"] == len(later.drop_duplicates(["customer_id", "event_ts"]))
        assert again["aggregated_rows"] == result.outputs["aggregated_rows"] + again["aggregated_recomputed"]
        extended = pd.read_parquet(rows_file)
        one = later.iloc[0]
        mine = pd.concat([events, later])
        mine = mine[mine["customer_id"] == one["customer_id"]]
        week = mine[(mine["event_ts"] > one["event_ts"] - pd.Timedelta("7D")) & (mine["event_ts"] <= one["event_ts"])]
        found = extended[(extended["customer_id"] == one["customer_id"]) & (extended["event_ts"] == one["event_ts"])]
        assert found["amount_sum_7d"].iloc[0] == pytest.approx(week["amount"].sum())

        # An apply killed after writing the rows but before state recorded them: the next one does not
        # keep them twice (the recorded outputs still say where the last finished apply stopped).
        world.records[address] = world.records[address].__class__(**{**world.records[address].__dict__,
                                                                     "outputs": dict(result.outputs)})
        redo = world.apply(address, spec, kind="FeatureView").outputs
        assert redo["aggregated_rows"] == again["aggregated_rows"]
        redone = pd.read_parquet(rows_file)
        assert not redone.duplicated(["customer_id", "event_ts"]).any()

        changed = pd.concat([events, later], ignore_index=True)
        changed.loc[0, "amount"] = changed.loc[0, "amount"] + 1000.0  # an old event corrected: all again
        changed.to_parquet(path, index=False)
        full = world.apply(address, spec, kind="FeatureView").outputs
        assert full["aggregated_recomputed"] == full["aggregated_rows"]
    finally:
        original.to_parquet(path, index=False)
        world.delete(address)
    assert not rows_file.exists()
