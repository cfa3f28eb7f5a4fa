"""Streaming deployments against the real NATS server (JetStream, 127.0.0.1:4222): a model scoring the
messages of a subject through the same runtime as HTTP, dead letters with their reason, kill -9 of the
worker mid-stream with every message scored once (redelivery, deduplicated output), status, destroy."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
import uuid

import pytest

pytest.importorskip("nats")

from ml_framework.plugins.bentoml.testing import raw_payloads  # noqa: E402
from ml_framework.plugins.lightgbm import LightGBMProvider  # noqa: E402
from ml_framework.plugins.models.testing import feature_providers, write_project  # noqa: E402
from ml_framework.plugins.nats import NatsProvider  # noqa: E402
from ml_framework.testing import run_cli  # noqa: E402
from ml_framework.testing.harness import Harness  # noqa: E402

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("clean_ml_env", "bentoml_home")]
URL = "nats://127.0.0.1:4222"


def providers():
    return {**feature_providers(), "lightgbm": LightGBMProvider(), "nats": NatsProvider()}


def spec(name: str, subject: str) -> str:
    return (f"kind: StreamDeployment\nname: {name}\nmodel: fraud\n"
            f"input: {{subject: {subject}.in}}\noutput: {{subject: {subject}.out}}\n"
            f"dead_letter: {{subject: {subject}.dead}}\nconsumer: {{batch: 32, max_wait_ms: 20, ack_wait: 2s}}\n")


async def _publish(subject: str, bodies: list[tuple[str, bytes]]) -> None:
    import nats

    nc = await nats.connect(URL)
    js = nc.jetstream()
    for mid, body in bodies:
        await js.publish(subject, body, headers={"Nats-Msg-Id": mid})
    await nc.close()


async def _messages(stream: str, subject: str) -> list[dict]:
    import nats

    nc = await nats.connect(URL)
    js = nc.jetstream()
    info = await js.stream_info(stream)
    out = []
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        try:
            msg = await js.get_msg(stream, seq)
        except Exception:  # noqa: BLE001 - a deleted sequence
            continue
        if msg.subject == subject:
            out.append(json.loads(msg.data))
    await nc.close()
    return out


async def _count(stream: str) -> int:
    import nats

    nc = await nats.connect(URL)
    info = await nc.jetstream().stream_info(stream)
    await nc.close()
    return int(info.state.messages)


async def _exists(stream: str) -> bool:
    import nats
    from nats.js.errors import NotFoundError

    nc = await nats.connect(URL)
    try:
        await nc.jetstream().stream_info(stream)
        return True
    except NotFoundError:
        return False
    finally:
        await nc.close()


def wait_for(condition, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_a_stream_deployment_scores_dead_letters_survives_kill_9_and_cleans_up(tmp_path):
    name = f"stream-{uuid.uuid4().hex[:8]}"
    subject = f"mltest.{name}"
    root = write_project(tmp_path / "proj", rows=1500, gates=())
    (root / "specs" / "stream.yaml").write_text(spec(name, subject))
    harness = Harness(root, providers())
    in_stream, out_stream = f"ML_{name.upper().replace('-', '_')}_IN", f"ML_{name.upper().replace('-', '_')}_OUT"
    try:
        report = harness.apply()
        assert report.ok, [o for o in report.outcomes if o.outcome != "succeeded"]
        outputs = harness.store.get(f"streamdeployment.{name}").outputs
        assert sorted(outputs["created_streams"]) == sorted([in_stream, out_stream])

        payloads = raw_payloads(150)
        good = [(f"m-{i}", json.dumps(p).encode()) for i, p in enumerate(payloads)]
        bad = [("bad-json", b"{not json"), ("bad-type", json.dumps({"features": {"amount_mean_7d": "x"}}).encode()),
               ("bad-shape", b"[1, 2]")]
        asyncio.run(_publish(f"{subject}.in", good + bad))
        wait_for(lambda: asyncio.run(_count(out_stream)) >= 153)
        scored = {m["message_id"]: m for m in asyncio.run(_messages(out_stream, f"{subject}.out"))}
        dead = {m["message_id"]: m for m in asyncio.run(_messages(out_stream, f"{subject}.dead"))}
        assert set(scored) == {mid for mid, _ in good} and set(dead) == {"bad-json", "bad-type", "bad-shape"}
        assert dead["bad-json"]["reason"] == "malformed message" and dead["bad-type"]["reason"] == "invalid request"
        assert dead["bad-type"]["detail"][0]["loc"] == ["features", "amount_mean_7d"]

        from ml_framework.plugins.models.predictor import load_predictor

        import pandas as pd

        predictor = load_predictor(outputs["tag"])
        expected = predictor.predict(pd.DataFrame([p["features"] for p in payloads[:20]]))
        for i in range(20):
            assert scored[f"m-{i}"]["prediction"] == pytest.approx(float(expected[i]), abs=1e-12)
            assert scored[f"m-{i}"]["model_version"] == "v1"
        from ml_framework.plugins.serving.prediction_log import read_predictions

        logged = {r["request_id"] for r in read_predictions(root, name) if r.get("status") == 200}
        assert {mid for mid, _ in good} <= logged  # the decision log, as for HTTP

        # kill -9 mid-stream: nothing lost, nothing scored twice
        more = [(f"k-{i}", json.dumps(p).encode()) for i, p in enumerate(raw_payloads(400, seed=1))]
        asyncio.run(_publish(f"{subject}.in", more))
        wait_for(lambda: asyncio.run(_count(out_stream)) >= 153 + 60, timeout=60)
        for pid in outputs["pids"]:
            os.kill(pid, signal.SIGKILL)
        plan = harness.plan()
        change = next(c for c in plan.pending() if c.address == f"streamdeployment.{name}")
        assert change.action == "create"  # refresh found it not running
        assert harness.apply().ok
        wait_for(lambda: asyncio.run(_count(out_stream)) >= 153 + 400, timeout=120)
        time.sleep(1.0)  # anything duplicated would land now
        final = asyncio.run(_messages(out_stream, f"{subject}.out"))
        ids = [m["message_id"] for m in final]
        assert len(ids) == len(set(ids)) == 150 + 400  # each message scored once

        def settled():  # the messages the killed worker held come back after ack_wait: deduplicated, acked
            status = run_cli(["status", "--json"], providers=providers(), cwd=root)
            found = json.loads(status.output)[f"streamdeployment.{name}"]
            assert found["running"] and found["workers"] == 1, found
            return found["lag"] == 0 and found["unacked"] == 0

        wait_for(settled, timeout=60)
        final = asyncio.run(_messages(out_stream, f"{subject}.out"))
        assert len(final) == len({m["message_id"] for m in final}) == 150 + 400  # still once each

        assert harness.destroy().ok
        assert not asyncio.run(_exists(in_stream)) and not asyncio.run(_exists(out_stream))
    finally:
        harness.destroy()
        harness.close()
