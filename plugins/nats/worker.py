"""A stream deployment's worker process: ``python -m ml_framework.plugins.nats.worker FOLDER``.

It serves the deployment's model through the same runtime as an HTTP deployment (the bentoml plugin's
``Runtime``: request contract, online lookup, derived features, canary routing by ``control.json``, the
decision log), fed by a durable JetStream pull consumer:

* fetch at most ``batch`` messages (back-pressure: nothing is read ahead of what is being scored);
* score each; publish the prediction to the output subject with the input message's id as its
  ``Nats-Msg-Id`` (JetStream's duplicate window drops a second publish of a redelivered message), wait for
  the publish to be stored, then ack — at-least-once, never a prediction for an unacked message lost;
* a message that breaks the contract (bad JSON, a 4xx of the runtime) goes to the dead-letter subject with
  the reason and is acked (terminated): never retried; a failure of ours (5xx) is retried (nak with a delay)
  up to ``max_deliver`` deliveries, then dead-lettered;
* SIGTERM drains: no new fetch, what is in flight is finished and acked, then the process exits.

Its status (processed, dead-lettered, errors, rate) is written to ``FOLDER/status/worker-PID.json``.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

__all__ = ["main", "message_id"]


try:  # orjson: several times the standard library's speed on every message
    import orjson

    def _loads(data: bytes):
        return orjson.loads(data)

    def _dumps(value) -> bytes:
        return orjson.dumps(value, default=str)
except ImportError:  # pragma: no cover
    def _loads(data: bytes):
        return json.loads(data)

    def _dumps(value) -> bytes:
        return json.dumps(value, default=str).encode()


def message_id(msg) -> str:
    """The id a message's prediction is published and logged under: the publisher's ``Nats-Msg-Id`` when
    it set one, else the stream and sequence (stable across redeliveries)."""
    headers = getattr(msg, "headers", None) or {}
    given = headers.get("Nats-Msg-Id")
    if given:
        return str(given)
    meta = msg.metadata
    return f"{meta.stream}:{meta.sequence.stream}"


class Worker:
    def __init__(self, folder: Path):
        self.folder = folder
        self.config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        self.stream = self.config["stream"]
        self.stopping = asyncio.Event()
        self.counts = {"processed": 0, "dead_lettered": 0, "retried": 0, "errors": 0}
        self.started = time.time()
        self.last_error: str | None = None

    def status_path(self) -> Path:
        return self.folder / "status" / f"worker-{os.getpid()}.json"

    def write_status(self, ready: bool = True) -> None:
        path = self.status_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        elapsed = max(time.time() - self.started, 1e-6)
        data = {"pid": os.getpid(), "ready": ready, "at": time.time(), "started": self.started, **self.counts,
                "rate_per_s": round(self.counts["processed"] / elapsed, 3), "last_error": self.last_error}
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data), encoding="utf-8")
        os.replace(tmp, path)

    async def run(self) -> None:
        import nats
        from nats.js.errors import FetchTimeoutError

        from ml_framework.plugins.bentoml.runtime import Runtime

        runtime = Runtime(self.config["runtime"])
        runtime.start()
        self.runtime = runtime
        s = self.stream
        nc = await nats.connect(s["url"], name=f"ml-{self.config['runtime']['deployment']}-{os.getpid()}",
                                max_reconnect_attempts=-1)
        self.js = nc.jetstream()
        sub = await self.js.pull_subscribe(s["input_subject"], durable=s["durable"], stream=s["input_stream"])
        self.write_status()
        last_status = time.monotonic()
        while not self.stopping.is_set():
            try:
                messages = await sub.fetch(s["batch"], timeout=s["max_wait_ms"] / 1000.0)
            except (FetchTimeoutError, asyncio.TimeoutError):
                messages = []
            except Exception as exc:  # noqa: BLE001 - the server went away: reconnects, then fetches again
                self.last_error = f"fetch: {type(exc).__name__}: {exc}"
                await asyncio.sleep(0.5)
                continue
            if messages:
                await asyncio.gather(*(self.handle(m) for m in messages))
            if time.monotonic() - last_status > 1.0:
                self.write_status()
                last_status = time.monotonic()
        self.write_status(ready=False)
        await nc.drain()

    async def handle(self, msg) -> None:
        from ml_framework.plugins.bentoml.runtime import RequestError

        s = self.stream
        rid = message_id(msg)
        try:
            payload = _loads(msg.data)
            if not isinstance(payload, dict):
                raise ValueError("a message is a JSON object (entity_keys, features)")
        except (ValueError, UnicodeDecodeError) as exc:  # orjson.JSONDecodeError is a ValueError
            await self.dead_letter(msg, rid, "malformed message", str(exc))
            return
        payload.pop("request_id", None)
        try:
            answer = await self.runtime.handle({**payload, "request_id": rid})
        except RequestError as exc:
            if exc.status < 500:  # the message breaks the contract: retrying cannot help
                await self.dead_letter(msg, rid, exc.body.get("error", "invalid message"), exc.body.get("detail"))
                return
            await self.retry(msg, rid, f"{exc.status} {exc.body.get('error')}")
            return
        except Exception as exc:  # noqa: BLE001 - ours, not the message's: retried, then dead-lettered
            await self.retry(msg, rid, f"{type(exc).__name__}: {exc}")
            return
        body = _dumps({**answer, "message_id": rid})
        try:
            await self.js.publish(s["output_subject"], body, headers={"Nats-Msg-Id": f"{rid}"}, stream=s["output_stream"])
            await msg.ack()
        except Exception as exc:  # noqa: BLE001 - not stored or not acked: redelivered, deduplicated then
            self.counts["errors"] += 1
            self.last_error = f"publish: {type(exc).__name__}: {exc}"
            return
        self.counts["processed"] += 1

    async def retry(self, msg, rid: str, why: str) -> None:
        self.counts["errors"] += 1
        self.last_error = why
        if msg.metadata.num_delivered >= self.stream["max_deliver"]:
            await self.dead_letter(msg, rid, "failed on every delivery", why)
            return
        self.counts["retried"] += 1
        await msg.nak(delay=min(2.0 ** msg.metadata.num_delivered * 0.1, 5.0))

    async def dead_letter(self, msg, rid: str, reason: str, detail: Any) -> None:
        s = self.stream
        try:
            original = msg.data.decode("utf-8")
        except UnicodeDecodeError:
            original = msg.data.hex()
        body = json.dumps({"message_id": rid, "reason": reason, "detail": detail, "subject": msg.subject,
                           "deliveries": msg.metadata.num_delivered, "message": original}, default=str).encode()
        try:
            await self.js.publish(s["dead_letter_subject"], body, headers={"Nats-Msg-Id": f"dead:{rid}"},
                                  stream=s["dead_letter_stream"])
            await msg.term()  # never delivered again
        except Exception as exc:  # noqa: BLE001 - redelivered, dead-lettered again (deduplicated)
            self.counts["errors"] += 1
            self.last_error = f"dead letter: {type(exc).__name__}: {exc}"
            return
        self.counts["dead_lettered"] += 1


def main(argv: list[str] | None = None) -> int:
    folder = Path((argv or sys.argv[1:])[0]).resolve()
    worker = Worker(folder)

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, worker.stopping.set)
        await worker.run()

    asyncio.run(serve())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
