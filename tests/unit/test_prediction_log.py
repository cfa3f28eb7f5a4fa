"""The prediction log: durable writes, bounded size and age, newest-N and since reads."""

from ml_framework.plugins.serving.prediction_log import PredictionLogWriter, log_dir, read_predictions


def test_records_round_trip_oldest_first(tmp_path):
    writer = PredictionLogWriter(log_dir(tmp_path, "api"))
    for i in range(50):
        writer.write({"request_id": str(i), "ts": f"2026-01-01T00:00:{i:02d}+00:00", "prediction": i / 100})
    writer.close()
    records = read_predictions(tmp_path, "api")
    assert [r["request_id"] for r in records] == [str(i) for i in range(50)]
    assert [r["request_id"] for r in read_predictions(tmp_path, "api", last=3)] == ["47", "48", "49"]
    assert len(read_predictions(tmp_path, "api", since="2026-01-01T00:00:40+00:00")) == 10


def test_size_is_capped_by_dropping_oldest_segments(tmp_path):
    writer = PredictionLogWriter(log_dir(tmp_path, "api"), segment_bytes=2_000, total_bytes=10_000)
    for i in range(2_000):
        writer.write({"request_id": str(i), "pad": "x" * 50})
    writer.close()
    files = list(log_dir(tmp_path, "api").glob("*.jsonl"))
    assert sum(f.stat().st_size for f in files) <= 10_000 + 2_100
    records = read_predictions(tmp_path, "api")
    assert records[-1]["request_id"] == "1999" and len(records) < 2_000


def test_every_record_is_written_before_write_returns(tmp_path):
    """No queue: what write() returned for is in the file (a kill -9 right after loses nothing)."""
    writer = PredictionLogWriter(log_dir(tmp_path, "api"))
    for i in range(2_000):
        writer.write({"i": i})
        if i in (0, 999, 1_999):
            assert read_predictions(tmp_path, "api", last=1)[0]["i"] == i  # before close()
    writer.close()
    assert [r["i"] for r in read_predictions(tmp_path, "api")] == list(range(2_000)) and writer.dropped == 0


def test_segments_past_the_retention_are_dropped(tmp_path):
    import os
    import time

    directory = log_dir(tmp_path, "api")
    writer = PredictionLogWriter(directory, segment_bytes=200)
    for i in range(20):
        writer.write({"request_id": str(i), "pad": "x" * 50})
    writer.close()
    old = sorted(directory.glob("*.jsonl"))
    for path in old[:-2]:
        os.utime(path, (time.time() - 10 * 86400, time.time() - 10 * 86400))
    kept = PredictionLogWriter(directory, retention_s=7 * 86400)
    kept.close()
    assert sorted(directory.glob("*.jsonl")) == old[-2:]


def test_missing_deployment_reads_empty(tmp_path):
    assert read_predictions(tmp_path, "nothing") == []
