"""The prediction log: non-blocking writes, bounded size, newest-N and since reads."""

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


def test_full_queue_drops_instead_of_blocking(tmp_path):
    writer = PredictionLogWriter(log_dir(tmp_path, "api"), queue_size=1)
    for i in range(10_000):
        writer.write({"i": i})
    writer.close()
    assert writer.dropped > 0
    assert len(read_predictions(tmp_path, "api")) == 10_000 - writer.dropped


def test_missing_deployment_reads_empty(tmp_path):
    assert read_predictions(tmp_path, "nothing") == []
