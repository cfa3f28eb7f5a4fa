"""The prediction log as columns (plugins/monitoring/logcache): parsing, the per-segment cache, windows,
and what a monitor does with odd rows (missing features, mixed types, torn lines, errors, shadow traffic)."""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from ml_framework.plugins.serving.prediction_log import PredictionLogWriter, log_dir
from ml_framework.plugins.monitoring.logcache import MISSING, NO_TS, Categories, cache_dir, read_log


def write(root, records, deployment="api", **kwargs):
    writer = PredictionLogWriter(log_dir(root, deployment), **kwargs)
    for record in records:
        writer.write(record)
    writer.close()


def record(i, **extra):
    base = {"request_id": f"r{i}", "ts": (datetime(2026, 1, 1, tzinfo=timezone.utc) + timedelta(seconds=i)).isoformat(),
            "deployment": "api", "model": "fraud", "model_version": "v1", "variant": "stable",
            "entity_keys": {"customer_id": i % 7}, "features": {"x": float(i), "seg": "ab"[i % 2]},
            "prediction": i / 100, "latency_ms": 1.0, "status": 200}
    base.update(extra)
    return base


def test_columns_round_trip_with_types(tmp_path):
    write(tmp_path, [record(i) for i in range(10)])
    log = read_log(tmp_path, "api")
    assert log.n == 10
    assert log.get("request_id").tolist() == [f"r{i}" for i in range(10)]
    assert log.feature("x").tolist() == [float(i) for i in range(10)]
    seg = log.feature("seg")
    assert isinstance(seg, Categories) and seg.text().tolist() == ["a", "b"] * 5
    assert log.get("e:customer_id").tolist() == [str(i % 7) for i in range(10)]
    assert log.get("ts")[1] - log.get("ts")[0] == 1_000_000
    assert log.get("prediction")[3] == pytest.approx(0.03)


def test_last_n_and_since(tmp_path):
    write(tmp_path, [record(i) for i in range(100)])
    assert read_log(tmp_path, "api", last=5).get("request_id").tolist() == [f"r{i}" for i in range(95, 100)]
    since = int((datetime(2026, 1, 1, tzinfo=timezone.utc) + timedelta(seconds=90)).timestamp() * 1e6)
    assert read_log(tmp_path, "api", since_us=since).n == 10
    assert read_log(tmp_path, "api", since_us=since, last=3).n == 3


def test_errors_and_shadow_rows_are_not_part_of_the_window(tmp_path):
    rows = [record(0), record(1, status=500), record(2, variant="shadow"), record(3, variant="candidate"),
            {k: v for k, v in record(4).items() if k != "status"}]
    write(tmp_path, rows)
    log = read_log(tmp_path, "api")
    assert log.get("request_id").tolist() == ["r0", "r3", "r4"]
    assert read_log(tmp_path, "api", all_rows=True).n == 5


def test_cache_is_reused_and_grown_segments_parse_only_their_tail(tmp_path, monkeypatch):
    directory = log_dir(tmp_path, "api")
    directory.mkdir(parents=True)
    segment = directory / "20260101-000000-1-1.jsonl"
    segment.write_text("".join(json.dumps(record(i)) + "\n" for i in range(50)))
    assert read_log(tmp_path, "api").n == 50
    cached = cache_dir(tmp_path, "api") / segment.stem
    assert (cached / "meta.json").is_file()

    from ml_framework.plugins.monitoring import logcache

    parsed = []
    real = logcache.parse_block
    monkeypatch.setattr(logcache, "parse_block", lambda data: parsed.append(len(data)) or real(data))
    assert read_log(tmp_path, "api").n == 50 and parsed == []  # unchanged: straight from the cache
    with open(segment, "a") as handle:
        handle.write("".join(json.dumps(record(i)) + "\n" for i in range(50, 60)))
        handle.write('{"request_id": "half-written')  # a line still being written
    log = read_log(tmp_path, "api")
    assert log.n == 60 and log.get("request_id")[-1] == "r59"
    assert len(parsed) == 1 and parsed[0] < segment.stat().st_size / 4  # only the new lines
    assert log.feature("seg").text().tolist()[-2:] == ["a", "b"]


def test_torn_lines_and_mixed_types_fall_back_and_keep_every_good_row(tmp_path):
    directory = log_dir(tmp_path, "api")
    directory.mkdir(parents=True)
    lines = [json.dumps(record(0)), '{"request_id": "torn", "features": {"x"', json.dumps(record(2)),
             json.dumps(record(3, features={"x": "7.5", "seg": 1})), json.dumps(record(4, features={"seg": True}))]
    (directory / "seg.jsonl").write_text("\n".join(lines) + "\n")
    log = read_log(tmp_path, "api", use_cache=False)
    assert log.get("request_id").tolist() == ["r0", "r2", "r3", "r4"]
    x = log.feature("x")  # a number in some rows, text in one: kept as text, parsed back by the schema
    assert isinstance(x, Categories)
    assert x.text().tolist() == ["0", "2", "7.5", MISSING]
    assert log.feature("seg").text().tolist() == ["a", "a", "1", "True"]


def test_segments_merge_across_types_and_missing_columns(tmp_path):
    directory = log_dir(tmp_path, "api")
    directory.mkdir(parents=True)
    (directory / "a.jsonl").write_text(json.dumps(record(0, features={"x": 1.0})) + "\n")
    time.sleep(0.01)
    (directory / "b.jsonl").write_text(json.dumps(record(1, features={"x": 2.0, "seg": "z"})) + "\n")
    log = read_log(tmp_path, "api")
    assert log.feature("x").tolist() == [1.0, 2.0]
    assert log.feature("seg").text().tolist() == [MISSING, "z"]


def test_dropped_segments_lose_their_cache_and_missing_log_is_empty(tmp_path):
    assert read_log(tmp_path, "nothing").n == 0
    write(tmp_path, [record(i, pad="x" * 200) for i in range(300)], segment_bytes=5_000, total_bytes=20_000)
    log = read_log(tmp_path, "api")
    assert 0 < log.n < 300
    live = {p.stem for p in log_dir(tmp_path, "api").glob("*.jsonl")}
    assert {p.name for p in cache_dir(tmp_path, "api").iterdir()} == live


def test_bad_timestamps_and_list_predictions(tmp_path):
    write(tmp_path, [record(0, ts="not a time", prediction=[0.1, 0.7, 0.2]), record(1, ts=None)])
    log = read_log(tmp_path, "api")
    assert (log.get("ts") == NO_TS).all()
    assert log.get("prediction_class").tolist() == [1, -1]
    assert log.get("prediction")[0] == pytest.approx(0.7) and np.isclose(log.get("prediction")[1], 0.01)


def test_columns_known_to_hold_no_nan_follow_the_segments_as_they_change(tmp_path):
    from ml_framework.plugins.monitoring.schema import FeatureSchema, Schema, encode_window

    directory = log_dir(tmp_path, "api")
    directory.mkdir(parents=True)
    (directory / "a.jsonl").write_text("".join(
        json.dumps(record(i, features={"x": float(i), "y": None if i == 3 else 1.0})) + "\n" for i in range(6)))
    time.sleep(0.01)
    b = directory / "b.jsonl"
    b.write_text("".join(json.dumps(record(i, features={"x": float(i), "y": 2.0})) + "\n" for i in range(6, 9)))
    schema = Schema([FeatureSchema(name="x", kind="numeric"), FeatureSchema(name="y", kind="numeric")])
    for parsed_now in (True, False):  # parsed (nothing known yet), then from the cache
        log = read_log(tmp_path, "api", columns=["f:"])
        assert log.no_nan == (frozenset() if parsed_now else {"f:x"})
        assert encode_window(log, schema).missing == {"y": 1}
    assert "f:y" in read_log(tmp_path, "api", last=3, columns=["f:"]).no_nan  # only segment b: clean
    with open(b, "a") as handle:  # the newest segment grows a row without x
        handle.write(json.dumps(record(9, features={"y": 2.0})) + "\n")
    log = read_log(tmp_path, "api", columns=["f:"])
    assert "f:x" not in log.no_nan
    assert encode_window(log, schema).missing == {"x": 1, "y": 1}
