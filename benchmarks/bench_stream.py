"""Streaming throughput and latency, ours beside a plain nats-py loop, in one run (NATS JetStream at
127.0.0.1:4222):

* ours: a StreamDeployment of a LightGBM model (one worker: the HTTP serving runtime, the decision log,
  publish-then-ack);
* the floor: a plain ``nats-py`` pull-consumer loop scoring the same model with the raw booster, publishing
  each prediction with the same message id and acking after the publish is stored (the same guarantees,
  nothing else).

Both consume the same N messages published ahead (throughput: messages per second once the first is
scored), then a paced run measures end-to-end latency (publish → prediction stored) p50/p99.

    .venv/bin/python benchmarks/bench_stream.py [--messages 20000] [--paced 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

URL = "nats://127.0.0.1:4222"


async def publish(subject: str, bodies: list[bytes], *, pace: float | None = None) -> None:
    import nats

    nc = await nats.connect(URL)
    js = nc.jetstream()
    for i, body in enumerate(bodies):
        await js.publish(subject, body, headers={"Nats-Msg-Id": f"{subject}-{i}"})
        if pace:
            await asyncio.sleep(pace)
    await nc.close()


async def wait_count(stream: str, subject: str, count: int, timeout: float = 600.0) -> float:
    """Seconds until ``stream`` holds ``count`` messages of ``subject``."""
    import nats

    nc = await nats.connect(URL)
    js = nc.jetstream()
    started = time.perf_counter()
    while True:
        info = await js.stream_info(stream, subjects_filter=subject)
        found = (info.state.subjects or {}).get(subject, 0)
        if found >= count:
            break
        if time.perf_counter() - started > timeout:
            raise TimeoutError(f"{found} of {count}")
        await asyncio.sleep(0.02)
    await nc.close()
    return time.perf_counter() - started


async def stored_times(stream: str, subject: str, key) -> dict[str, float]:
    """id -> the time the server stored the message (``key(msg)`` names its id)."""
    import nats

    nc = await nats.connect(URL)
    js = nc.jetstream()
    info = await js.stream_info(stream)
    out = {}
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        msg = await js.get_msg(stream, seq)
        if msg.subject == subject and msg.time is not None:
            found = key(msg)
            if found:
                out[found] = msg.time.timestamp()
    await nc.close()
    return out


async def plain_loop(model_file: str, features: list[str], categories: dict, in_stream: str, subject: str,
                     out_subject: str, total: int) -> float:
    """The floor: fetch, score with the booster, publish with the message id, ack."""
    import lightgbm as lgb
    import nats
    import numpy as np
    from nats.js.errors import FetchTimeoutError

    from nats.js.api import StreamConfig

    booster = lgb.Booster(model_file=model_file)
    nc = await nats.connect(URL)
    js = nc.jetstream()
    out_stream = f"{in_stream}_PLAIN"  # its outputs stored with a duplicate window, as ours are
    await js.add_stream(StreamConfig(name=out_stream, subjects=[out_subject], duplicate_window=600.0))
    sub = await js.pull_subscribe(subject, durable=f"plain_{uuid.uuid4().hex[:6]}", stream=in_stream)
    done = 0
    first = None
    while done < total:
        try:
            messages = await sub.fetch(64, timeout=0.05)
        except (FetchTimeoutError, asyncio.TimeoutError):
            continue

        async def one(msg):
            payload = json.loads(msg.data)
            values = payload["features"]
            row = [categories[n].get(values.get(n), np.nan) if n in categories else float(values.get(n, np.nan))
                   for n in features]
            p = float(booster.predict(np.asarray([row], dtype=np.float64), num_threads=1)[0])
            await js.publish(out_subject, json.dumps({"prediction": p}).encode(),
                             headers={"Nats-Msg-Id": msg.headers.get("Nats-Msg-Id") if msg.headers else None})
            await msg.ack()

        await asyncio.gather(*(one(m) for m in messages))
        if first is None:
            first = time.perf_counter()
            first_count = len(messages)
        done += len(messages)
    elapsed = time.perf_counter() - first
    await js.delete_stream(out_stream)
    await nc.close()
    return (done - first_count) / elapsed  # from the first batch scored to the last, as ours is measured


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--paced", type=int, default=1000, help="messages of the latency run (500 per second)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ml-bench-stream-"))
    os.environ["BENTOML_HOME"] = str(work / "bentoml")
    os.environ.pop("ML_STATE_URL", None)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_serving import model_schema

    from ml_framework.plugins.bentoml.testing import raw_payloads
    from ml_framework.plugins.lightgbm import LightGBMProvider
    from ml_framework.plugins.models.artifacts import artifact_dir
    from ml_framework.plugins.models.testing import feature_providers, write_project
    from ml_framework.plugins.nats import NatsProvider
    from ml_framework.testing.harness import Harness

    name = f"bench-{uuid.uuid4().hex[:6]}"
    subject = f"mlbench.{name}"
    root = write_project(work / "proj", rows=3000, gates=())
    (root / "specs" / "stream.yaml").write_text(
        f"kind: StreamDeployment\nname: {name}\nmodel: fraud\ninput: {{subject: {subject}.in}}\n"
        f"output: {{subject: {subject}.out}}\ndead_letter: {{subject: {subject}.dead}}\n"
        "consumer: {batch: 64, max_wait_ms: 20}\n")
    harness = Harness(root, {**feature_providers(), "lightgbm": LightGBMProvider(), "nats": NatsProvider()})
    base = name.upper().replace("-", "_")
    in_stream, out_stream = f"ML_{base}_IN", f"ML_{base}_OUT"
    payloads = raw_payloads(200)
    try:
        assert harness.apply().ok
        tag = harness.store.get(f"streamdeployment.{name}").outputs["tag"]
        schema = model_schema(tag)
        bodies = [json.dumps(payloads[i % len(payloads)]).encode() for i in range(args.messages)]
        # ours: stop the workers, publish everything, start them, time until all predictions are stored
        outputs = harness.store.get(f"streamdeployment.{name}").outputs
        NatsProvider._stop(outputs["pids"])
        asyncio.run(publish(f"{subject}.in", bodies))
        assert harness.apply().ok  # restarts the stopped worker
        asyncio.run(wait_count(out_stream, f"{subject}.out", args.messages))
        stored = sorted(asyncio.run(stored_times(out_stream, f"{subject}.out",
                                                 lambda m: json.loads(m.data).get("message_id"))).values())
        ours = (len(stored) - 1) / (stored[-1] - stored[0])  # from the first prediction stored to the last
        # the floor, on the same messages (its own consumer from the start of the stream)
        model_file = str(artifact_dir(tag, root) / "saved_model.ubj")
        plain = asyncio.run(plain_loop(model_file, schema["features"], schema["categories"], in_stream,
                                       f"{subject}.in", f"{subject}.plain", args.messages))
        print(f"\n== {args.messages:,} messages published ahead, one consumer each (2 cores) ==")
        print(f"ml StreamDeployment: {ours:,.0f} msg/s")
        print(f"plain nats-py loop:  {plain:,.0f} msg/s")
        print(f"ratio ml/plain: {ours / plain:.2f} (target >= 0.9)")
        # latency: paced publishing (500 per second), publish → prediction stored, from the server's own times
        paced = [(f"paced-{i}", json.dumps(payloads[i % len(payloads)]).encode()) for i in range(args.paced)]

        async def paced_run():
            import nats

            nc = await nats.connect(URL)
            js = nc.jetstream()
            for mid, body in paced:
                await js.publish(f"{subject}.in", body, headers={"Nats-Msg-Id": mid})
                await asyncio.sleep(0.002)
            await nc.close()

        asyncio.run(paced_run())
        asyncio.run(wait_count(out_stream, f"{subject}.out", args.messages + args.paced))
        sent = asyncio.run(stored_times(in_stream, f"{subject}.in", lambda m: (m.headers or {}).get("Nats-Msg-Id")))
        done = asyncio.run(stored_times(out_stream, f"{subject}.out", lambda m: json.loads(m.data).get("message_id")))
        lat = sorted((done[k] - sent[k]) * 1000 for k in done if k.startswith("paced-") and k in sent)
        print(f"\n== end to end, {len(lat)} messages at 500/s: publish → prediction stored ==")
        print(f"p50 {statistics.median(lat):.2f} ms, p99 {lat[max(0, int(len(lat) * 0.99) - 1)]:.2f} ms")
    finally:
        harness.destroy()
        harness.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
