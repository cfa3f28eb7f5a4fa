"""Unit tests of the feast backend that need no Feast: import cost, compilation, code generation,
fingerprints, data contracts (pandas/pyarrow/pandera only), settings and spec kinds."""

from __future__ import annotations

import ast
import builtins
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from ml_framework.errors import PluginError, ProviderError
from ml_framework.plugins.features.kinds import Entity, FeatureService, FeatureStore, FeatureView, Source
from ml_framework.plugins.feast import compile as comp
from ml_framework.plugins.feast.codegen import render_module
from ml_framework.plugins.feast.fingerprint import MISSING, FingerprintCache
from ml_framework.plugins.feast.materialize import online_store_identity

ROOT = Path(__file__).resolve().parents[2]


# --- import cost and registration ------------------------------------------------------------------------


def test_importing_the_plugin_leaves_heavy_libraries_out():
    code = (
        "import sys; import ml_framework.plugins.feast as p; prov = p.FeastProvider(); prov.config_model('FeatureView');"
        "import ml_framework.plugins.feast.handlers, ml_framework.plugins.feast.contracts, ml_framework.plugins.feast.online, ml_framework.plugins.feast.training;"
        "heavy = [m for m in ('feast', 'pandas', 'pyarrow', 'pandera', 'numpy') if m in sys.modules];"
        "print(','.join(heavy) or 'none')"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "none"


def test_plugin_is_registered_through_the_entry_point():
    from ml_framework.contract import verify_provider
    from ml_framework.plugin_registry import PluginRegistry

    provider = PluginRegistry().get("feast")
    verify_provider(provider, "feast")
    assert set(provider.kinds) == {"FeatureStore", "Entity", "Source", "FeatureView", "FeatureService",
                                   "OnDemandFeatureView"}


def test_bad_project_settings_name_the_key(tmp_path):
    from ml_framework.plugins.feast import FeastProvider

    with pytest.raises(PluginError, match="backends.feast: repos?: Extra inputs"):
        FeastProvider().configure(tmp_path, {"repos": "x"})
    provider = FeastProvider()
    provider.configure(tmp_path, {"repo": "elsewhere/repo"})
    assert provider.backend(tmp_path).repo.dir == (tmp_path / "elsewhere" / "repo").resolve()


# --- spec kinds ------------------------------------------------------------------------------------------


def test_feature_store_rejects_passwords_in_specs():
    with pytest.raises(ValueError, match="password_env"):
        FeatureStore.model_validate({"kind": "FeatureStore", "name": "default",
                                     "online_store": {"type": "redis", "connection_string": "h:6379,password=x"}})
    store = FeatureStore.model_validate({"kind": "FeatureStore", "name": "default"})
    assert store.online_store.type == "sqlite"


def test_feature_view_references_store_and_inline_source():
    view = FeatureView.model_validate({
        "kind": "FeatureView", "name": "v", "entities": ["customer"], "store": "default",
        "source": {"path": "data/x.parquet", "timestamp_field": "ts"}, "features": {"a": {"dtype": "int64"}}})
    from ml_framework.plugin_registry import PluginRegistry

    assert PluginRegistry().kinds.references(view) == [("entities.0", "entity.customer"), ("store", "featurestore.default")]


# --- compile + codegen -----------------------------------------------------------------------------------


def _specs(tmp_path):
    entity = Entity.model_validate({"kind": "Entity", "name": "customer", "join_keys": ["customer_id"]})
    source = Source.model_validate({"kind": "Source", "name": "stats", "path": "data/stats.parquet",
                                    "timestamp_field": "event_ts"})
    view = FeatureView.model_validate({
        "kind": "FeatureView", "name": "stats", "entities": ["customer"], "source": "stats", "ttl": "7d",
        "features": {"amount": {"dtype": "float32", "description": "mean"}, "count": {"dtype": "int64"}}})
    e = comp.entity_def(entity)
    s = comp.source_def(source, "stats", project_dir=tmp_path, repo_dir=tmp_path / "feature_repo",
                        address="source.stats")
    v = comp.view_def(view, {"customer": e}, s, inline=False)
    return e, s, v


def test_view_definition_carries_keys_ttl_and_repo_relative_path(tmp_path):
    e, s, v = _specs(tmp_path)
    assert s["path"] == "../data/stats.parquet" and s["project_path"] == "data/stats.parquet"
    assert v["ttl_seconds"] == 7 * 86400
    assert v["schema"][0] == ["customer_id", "Int64", ""]
    assert [f[0] for f in v["schema"][1:]] == ["amount", "count"]


def test_csv_sources_point_feast_at_their_parquet_copy(tmp_path):
    source = Source.model_validate({"kind": "Source", "name": "raw", "path": "data/raw.csv", "timestamp_field": "ts"})
    d = comp.source_def(source, "raw", project_dir=tmp_path, repo_dir=tmp_path / "feature_repo", address="source.raw")
    assert d["format"] == "csv" and d["project_path"] == "data/raw.csv"
    assert d["path"] == "data/ml_sources/raw.parquet"  # relative to the feature repository, where Feast reads
    declared = Source.model_validate({"kind": "Source", "name": "raw", "path": "data/raw.txt", "format": "csv",
                                      "timestamp_field": "ts"})
    assert comp.source_def(declared, "raw", project_dir=tmp_path, repo_dir=tmp_path,
                           address="source.raw")["format"] == "csv"
    module = render_module({"sources": {"raw": d}})
    ast.parse(module)
    assert "# the parquet copy of data/raw.csv (CSV)" in module and "path='data/ml_sources/raw.parquet'" in module


def test_service_resolves_star_features_and_nested_services(tmp_path):
    _, _, v = _specs(tmp_path)
    inner = FeatureService.model_validate({"kind": "FeatureService", "name": "inner", "features": ["stats:count"]})
    inner_def = comp.service_def(inner, {"stats": v}, {}, address="featureservice.inner")
    outer = FeatureService.model_validate({"kind": "FeatureService", "name": "outer",
                                           "features": ["inner", "stats:amount"]})
    outer_def = comp.service_def(outer, {"stats": v}, {"inner": inner_def}, address="featureservice.outer")
    assert outer_def["features"] == [["stats", ["count", "amount"]]]
    star = FeatureService.model_validate({"kind": "FeatureService", "name": "s", "features": ["stats:*"]})
    assert comp.service_def(star, {"stats": v}, {}, address="featureservice.s")["features"] == [["stats", None]]


def test_service_with_unknown_feature_names_field_and_suggests(tmp_path):
    _, _, v = _specs(tmp_path)
    bad = FeatureService.model_validate({"kind": "FeatureService", "name": "s", "features": ["stats:amount", "stats:cont"]})
    with pytest.raises(ProviderError) as info:
        comp.service_def(bad, {"stats": v}, {}, address="featureservice.s")
    assert "featureservice.s: features.1: feature view 'stats' has no feature 'cont'" in str(info.value)
    assert "did you mean 'count'" in str(info.value)


def test_generated_module_is_deterministic_and_valid_python(tmp_path):
    e, s, v = _specs(tmp_path)
    service = {"name": "svc", "features": [["stats", ["amount"]]], "description": "", "tags": {"b": "2", "a": "1"},
               "owner": ""}
    one = render_module({"entities": {"customer": e}, "sources": {"stats": s}, "feature_views": {"stats": v},
                         "feature_services": {"svc": service}})
    two = render_module({"feature_services": {"svc": service}, "feature_views": {"stats": v},
                         "sources": {"stats": s}, "entities": {"customer": e}})
    assert one == two
    ast.parse(one)
    assert "ttl=timedelta(seconds=604800)" in one
    assert "view_stats[['amount']]" in one
    assert "tags={'a': '1', 'b': '2'}" in one


# --- fingerprints ----------------------------------------------------------------------------------------


def _write_parquet(path: Path, n: int, offset: float = 0.0) -> None:
    import numpy as np
    import pandas as pd

    ts = pd.date_range("2025-01-01", periods=n, freq="min", tz="UTC")
    pd.DataFrame({"customer_id": np.arange(n) % 50, "event_ts": ts,
                  "amount": np.arange(n, dtype="float64") + offset}).to_parquet(path)


def test_fingerprint_changes_with_data_and_skips_unchanged_files(tmp_path, monkeypatch):
    from ml_framework.plugins.feast import fingerprint

    path = tmp_path / "data.parquet"
    _write_parquet(path, 20_000)
    cache = FingerprintCache(tmp_path / ".ml")
    first = cache.key(path)
    assert cache.misses == 1

    opened = []
    real_open = builtins.open
    monkeypatch.setattr(fingerprint, "open", lambda *a, **k: opened.append(a[0]) or real_open(*a, **k),
                        raising=False)
    again = FingerprintCache(tmp_path / ".ml").key(path)  # a new process: the JSON cache on disk answers
    assert again == first and opened == []

    _write_parquet(path, 20_000, offset=1.0)  # same shape, different values
    changed = cache.key(path)
    assert changed != first and opened == [path]


def test_parquet_key_reads_only_the_footer(tmp_path, monkeypatch):
    from ml_framework.plugins.feast import fingerprint

    path = tmp_path / "big.parquet"
    _write_parquet(path, 200_000)
    read = []
    real_open = builtins.open

    class Counting:
        def __init__(self, fh):
            self.fh = fh

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.fh.close()

        def read(self, n=-1):
            data = self.fh.read(n)
            read.append(len(data))
            return data

        def seek(self, *a):
            return self.fh.seek(*a)

    monkeypatch.setattr(fingerprint, "open", lambda *a, **k: Counting(real_open(*a, **k)), raising=False)
    FingerprintCache(tmp_path / ".ml").key(path)
    assert sum(read) < path.stat().st_size / 20


def test_fingerprint_of_missing_file_and_of_other_formats(tmp_path):
    cache = FingerprintCache(tmp_path / ".ml")
    assert cache.key(tmp_path / "nope.parquet") == MISSING
    csv = tmp_path / "x.csv"
    csv.write_text("a,b\n1,2\n")
    key = cache.key(csv)
    csv.write_text("a,b\n1,3\n")
    assert cache.key(csv) != key


# --- data contracts --------------------------------------------------------------------------------------

NOW = datetime(2025, 6, 1, tzinfo=timezone.utc)


def _frame(n=200):
    import numpy as np
    import pandas as pd

    return pd.DataFrame({
        "customer_id": np.arange(n, dtype="int64"),
        "event_ts": pd.date_range("2025-05-01", periods=n, freq="h", tz="UTC"),
        "amount": np.linspace(1, 100, n),
        "count": np.arange(n, dtype="int64") % 7,
        "country": ["US", "GB"] * (n // 2),
    })


def _contract(**dataset):
    from ml_framework.plugins.features.kinds import ColumnChecks, DatasetChecks
    from ml_framework.plugins.feast.contracts import ColumnRule, Contract

    return Contract(
        path_field="source.path",
        timestamp=ColumnRule("event_ts", "source.timestamp_field", role="timestamp"),
        keys=(ColumnRule("customer_id", "entities.0", "int64", role="key"),),
        columns=(
            ColumnRule("amount", "features.amount", "float64", ColumnChecks(ge=0, le=1000)),
            ColumnRule("count", "features.count", "int64", ColumnChecks(between=(0, 10))),
            ColumnRule("country", "features.country", "string", ColumnChecks(isin=["US", "GB"], regex="[A-Z]{2}")),
        ),
        dataset=DatasetChecks(**dataset) if dataset else None,
    )


def _check(tmp_path, df, **dataset):
    from ml_framework.plugins.feast.contracts import validate

    path = tmp_path / "f.parquet"
    df.to_parquet(path)
    return validate("featureview.v", path, _contract(**dataset), display="data/f.parquet", now=NOW)


def _failure(tmp_path, df, **dataset) -> str:
    from ml_framework.plugins.feast.errors import DataContractError

    with pytest.raises(DataContractError) as info:
        _check(tmp_path, df, **dataset)
    message = str(info.value)
    assert message.startswith("featureview.v: data contract failed for data/f.parquet")
    return message


def test_good_data_passes_with_statistics(tmp_path):
    report = _check(tmp_path, _frame(), min_rows=10, max_age="30d")
    assert report.rows == 200 and report.max_ts.tzinfo is not None
    assert report.rows_between(datetime(2025, 5, 1, tzinfo=timezone.utc), datetime(2025, 5, 2, tzinfo=timezone.utc)) == 24


def test_every_value_failure_is_reported_at_once(tmp_path):
    df = _frame()
    df.loc[[3, 4, 5], "amount"] = -1.5
    df.loc[7, "count"] = 99
    df.loc[8, "country"] = "usa"
    df.loc[9, "amount"] = None
    message = _failure(tmp_path, df)
    assert "features.amount.checks.ge: >= 0 fails for 3 rows, e.g. -1.5" in message
    assert "features.count.checks.between: between 0 and 10 fails for 1 row, e.g. 99" in message
    assert "features.country.checks.isin" in message and "features.country.checks.regex" in message
    assert "features.amount.checks.nullable: not null fails for 1 row" in message
    assert "(5 problems)" in message


def test_null_entity_keys(tmp_path):
    df = _frame()
    df["customer_id"] = df["customer_id"].astype("Int64")
    df.loc[[1, 2], "customer_id"] = None
    assert "entities.0: entity key 'customer_id' has no nulls fails for 2 rows" in _failure(tmp_path, df)


def test_naive_timestamps(tmp_path):
    df = _frame()
    df["event_ts"] = df["event_ts"].dt.tz_localize(None)
    assert "source.timestamp_field: timezone-aware timestamps" in _failure(tmp_path, df)


def test_future_timestamps(tmp_path):
    df = _frame()
    df.loc[0, "event_ts"] = NOW + timedelta(days=3)
    message = _failure(tmp_path, df)
    assert "source.timestamp_field: not in the future fails for 1 row, e.g. '2025-06-04T00:00:00+00:00'" in message


def test_duplicate_entity_timestamp_rows(tmp_path):
    import pandas as pd

    df = _frame()
    df = pd.concat([df, df.iloc[[10]]], ignore_index=True)
    assert "entities.0: one row per customer_id + event_ts fails for 2 rows" in _failure(tmp_path, df)


def test_missing_or_renamed_column(tmp_path):
    df = _frame().rename(columns={"amount": "amount_usd"})
    message = _failure(tmp_path, df)
    assert "features.amount: column 'amount' present" in message and "did you mean 'amount_usd'" in message


def test_wrong_dtype(tmp_path):
    df = _frame()
    df["count"] = df["count"].astype(str)
    assert "features.count: dtype (expected int64, file has string)" in _failure(tmp_path, df)


def test_missing_and_unreadable_files(tmp_path):
    from ml_framework.plugins.feast.contracts import validate
    from ml_framework.plugins.feast.errors import DataContractError

    with pytest.raises(DataContractError, match=r"source\.path: file exists"):
        validate("featureview.v", tmp_path / "absent.parquet", _contract(), now=NOW)
    garbage = tmp_path / "garbage.parquet"
    garbage.write_bytes(b"not parquet at all")
    with pytest.raises(DataContractError, match=r"source\.path: readable parquet"):
        validate("featureview.v", garbage, _contract(), now=NOW)


def test_dataset_rules(tmp_path):
    message = _failure(tmp_path, _frame(), min_rows=1000, max_age="1d")
    assert "checks.min_rows: at least 1000 rows (the file has 200)" in message
    assert "checks.max_age: newest row at most 1d old" in message


def test_uniqueness_is_exact_on_sorted_and_unsorted_rows(tmp_path):
    import numpy as np
    import pyarrow as pa

    from ml_framework.plugins.feast.contracts import _surely_unique

    keys = np.array([1, 2, 1, 2, 3], dtype="int64")
    stamps = np.array([10, 10, 20, 20, 20], dtype="datetime64[us]")
    table = pa.table({"k": keys, "ts": pa.array(stamps, pa.timestamp("us", tz="UTC"))})
    assert _surely_unique(table, ["k", "ts"])  # sorted by time, then key
    assert _surely_unique(table.take([0, 2, 1, 3, 4]), ["k", "ts"])  # sorted by key, then time
    assert _surely_unique(table.take([4, 0, 3, 1, 2]), ["k", "ts"])  # unsorted: the hash check
    duplicated = table.take([0, 1, 1, 2, 3])  # sorted, but one row twice
    assert not _surely_unique(duplicated, ["k", "ts"])
    assert not _surely_unique(duplicated.take([4, 1, 0, 2, 3]), ["k", "ts"])


def test_duplicates_in_sorted_data_are_reported(tmp_path):
    import pandas as pd

    df = _frame()
    df = pd.concat([df.iloc[:11], df.iloc[[10]], df.iloc[11:]], ignore_index=True)  # still sorted by time
    assert "entities.0: one row per customer_id + event_ts fails for 2 rows" in _failure(tmp_path, df)


# --- CSV sources -----------------------------------------------------------------------------------------


def _csv_contract():
    from ml_framework.plugins.features.kinds import ColumnChecks
    from ml_framework.plugins.feast.contracts import ColumnRule, Contract

    return Contract(
        path_field="path",
        timestamp=ColumnRule("event_ts", "timestamp_field", role="timestamp"),
        columns=(
            ColumnRule("customer_id", "columns.customer_id", "int64"),
            ColumnRule("amount", "columns.amount", "float32", ColumnChecks(ge=0)),
            ColumnRule("flag", "columns.flag", "bool"),
            ColumnRule("country", "columns.country", "string", ColumnChecks(regex="[A-Z]{2}")),
        ),
    )


CSV_GOOD = """customer_id,event_ts,amount,flag,country,note
1,2025-01-01T10:00:00Z,1.5,true,US,a
2,2025-01-01 12:00:00+02:00,2,0,GB,
3,2025-01-02T00:00:00.250+00:00,3.25,False,DE,c
"""


def test_csv_is_typed_by_the_contract_and_timestamps_become_utc(tmp_path):
    import pyarrow as pa

    from ml_framework.plugins.feast.csvdata import read_csv

    path = tmp_path / "s.csv"
    path.write_text(CSV_GOOD)
    table, failures, failed = read_csv(path, _csv_contract())
    assert failures == [] and failed == set()
    types = {f.name: f.type for f in table.schema}
    assert types["customer_id"] == pa.int64() and types["amount"] == pa.float32() and types["flag"] == pa.bool_()
    assert types["event_ts"] == pa.timestamp("ns", tz="UTC") and types["note"] == pa.string()  # undeclared: inferred
    stamps = [t.isoformat() for t in table["event_ts"].to_pylist()]
    assert stamps == ["2025-01-01T10:00:00+00:00", "2025-01-01T10:00:00+00:00", "2025-01-02T00:00:00.250000+00:00"]
    assert table["note"].to_pylist() == ["a", None, "c"]


def test_malformed_csv_reports_every_column_and_line(tmp_path):
    from ml_framework.plugins.feast.csvdata import read_csv
    from ml_framework.plugins.feast.contracts import validate
    from ml_framework.plugins.feast.errors import DataContractError

    path = tmp_path / "s.csv"
    path.write_text("customer_id,event_ts,amount,flag\n"
                    "1,2025-01-01T10:00:00Z,1.5,true\n"
                    "x2,2025-01-01 12:00:00,abc,maybe\n"
                    "3,2025-01-02,-1,1\n")
    contract = _csv_contract()
    table, failures, failed = read_csv(path, contract)
    assert failed == {"customer_id", "event_ts", "amount", "flag"}
    with pytest.raises(DataContractError) as info:
        validate("source.s", path, contract, display="data/s.csv", table=table, prior=failures, skip=failed)
    message = str(info.value)
    assert message.startswith("source.s: data contract failed for data/s.csv (5 problems)")
    assert "columns.customer_id: parses as int64 fails for 1 row, e.g. 'x2' (first on line 3)" in message
    assert "timestamp_field: timezone-aware timestamps fails for 2 rows, e.g. '2025-01-01 12:00:00', '2025-01-02'" \
        in message
    assert "columns.amount: parses as float32 fails for 1 row, e.g. 'abc' (first on line 3)" in message
    assert "columns.flag: parses as bool fails for 1 row, e.g. 'maybe'" in message
    assert "columns.country: column 'country' present" in message  # missing, listed with the file's columns
    assert "the file has: customer_id, event_ts, amount, flag" in message


def test_csv_copy_is_written_only_for_good_data_and_reused_while_unchanged(tmp_path, monkeypatch):
    import pyarrow.parquet as pq

    from ml_framework.plugins.feast import csvdata
    from ml_framework.plugins.feast.errors import DataContractError

    csv, copy = tmp_path / "s.csv", tmp_path / "repo" / "data" / "ml_sources" / "s.parquet"
    csv.write_text(CSV_GOOD)
    contract = _csv_contract()
    report = csvdata.refresh_copy("source.s", csv, copy, contract, "key-1", display="data/s.csv")
    assert report.rows == 3 and csvdata.is_current(copy, "key-1", contract)
    assert pq.read_table(copy)["amount"].to_pylist() == [1.5, 2.0, 3.25]

    monkeypatch.setattr(csvdata, "read_csv", lambda *a: pytest.fail("an unchanged CSV was read again"))
    assert csvdata.refresh_copy("source.s", csv, copy, contract, "key-1", display="data/s.csv").rows == 3
    monkeypatch.undo()

    before = copy.read_bytes()
    csv.write_text(CSV_GOOD.replace("3.25", "-3"))
    with pytest.raises(DataContractError, match=r"columns\.amount\.checks\.ge: >= 0 fails for 1 row"):
        csvdata.refresh_copy("source.s", csv, copy, contract, "key-2", display="data/s.csv")
    assert copy.read_bytes() == before and not csvdata.is_current(copy, "key-2", contract)


# --- misc ------------------------------------------------------------------------------------------------


def test_online_store_identity_hides_passwords():
    assert online_store_identity({"type": "sqlite", "path": "data/o.db"}) == "sqlite:data/o.db"
    ident = online_store_identity({"type": "redis", "connection_string": "r:6379,db=2,password=${PW}"})
    assert ident == "redis:r:6379/2"


def test_good_data_takes_the_fast_path_without_pandera(tmp_path, monkeypatch):
    from ml_framework.plugins.feast import contracts

    monkeypatch.setattr(contracts, "_column_failures", lambda *a: pytest.fail("pandera ran on good data"))
    assert _check(tmp_path, _frame()).rows == 200


@pytest.mark.parametrize("rule, value, expected", [
    ("gt", {"gt": 1}, "features.amount.checks.gt: > 1 fails for 1 row, e.g. 1.0"),
    ("lt", {"lt": 100}, "features.amount.checks.lt: < 100 fails for 1 row, e.g. 100.0"),
    ("unique", {"unique": True}, "features.count.checks.unique: unique fails for"),
    ("isin", {"isin": [0, 1, 2]}, "features.count.checks.isin: isin [0, 1, 2] fails for"),
])
def test_each_rule_is_enforced(tmp_path, rule, value, expected):
    from ml_framework.plugins.features.kinds import ColumnChecks
    from ml_framework.plugins.feast.contracts import ColumnRule, Contract, validate
    from ml_framework.plugins.feast.errors import DataContractError

    column = "count" if rule in ("unique", "isin") else "amount"
    contract = Contract(path_field="path", timestamp=ColumnRule("event_ts", "timestamp_field", role="timestamp"),
                        columns=(ColumnRule(column, f"features.{column}", None, ColumnChecks(**value)),))
    path = tmp_path / "f.parquet"
    _frame().to_parquet(path)
    with pytest.raises(DataContractError) as info:
        validate("featureview.v", path, contract, now=NOW)
    assert expected in str(info.value)


def test_nulls_and_nans_pass_only_where_nullable(tmp_path):
    from ml_framework.plugins.features.kinds import ColumnChecks
    from ml_framework.plugins.feast.contracts import ColumnRule, Contract, validate
    from ml_framework.plugins.feast.errors import DataContractError

    df = _frame()
    df.loc[[1, 2], "amount"] = float("nan")
    path = tmp_path / "f.parquet"
    df.to_parquet(path)

    def contract(nullable):
        return Contract(path_field="path", timestamp=ColumnRule("event_ts", "timestamp_field", role="timestamp"),
                        columns=(ColumnRule("amount", "features.amount", "float64",
                                            ColumnChecks(nullable=nullable, ge=0)),))

    assert validate("featureview.v", path, contract(True), now=NOW).rows == 200
    with pytest.raises(DataContractError, match="features.amount.checks.nullable: not null fails for 2 rows"):
        validate("featureview.v", path, contract(False), now=NOW)


def test_plan_marks_entity_key_changes_as_replacement_and_explains_reloads():
    from ml_framework.contract import FieldChange, PlanRequest, RecordedResource, Resource
    from ml_framework.plugins.feast import FeastProvider

    def plan(kind, *paths):
        resource = Resource(address=f"{kind.lower()}.x", kind=kind, name="x", backend="feast", spec={})
        prior = RecordedResource(address=resource.address, kind=kind, backend="feast", spec={}, fingerprint="-")
        changes = tuple(FieldChange(path=p, before=1, after=2) for p in paths)
        return FeastProvider().plan(PlanRequest(resource, prior, changes))

    assert plan("Entity", "join_keys.0").replace_paths == ("join_keys.0",)
    assert plan("Entity", "description").replace_paths == ()
    assert plan("FeatureView", "ttl").reasons == ()
    assert plan("FeatureView", "features.amount.description", "features.amount.checks.ge").reasons == ()
    assert plan("FeatureView", "features.amount.dtype").reasons == ("the online store is reloaded from the whole source",)
    assert plan("FeatureView", "entities.0").replace_paths == ("entities.0",)
