"""`NatsProvider`: the StreamDeployment kind's backend (name ``nats``).

Apply: resolve the model version (its production alias, or the reference given); create on the NATS
server what is missing — the input stream, the output stream (with a duplicate window: a prediction per
message id), the durable pull consumer — and record what ml created; write the worker folder
(``.ml/streams/NAME/``: the runtime's config and ``control.json``, the serving runtime's control document)
and start ``consumer.workers`` worker processes (worker.py), each in its own session. A changed version or
config restarts them; the consumer keeps its place, so nothing is skipped or scored twice (a message in
flight at the restart is redelivered and its output deduplicated).

Refresh: workers not running → planned again ("not running") and restarted. Destroy: SIGTERM (the
workers finish and ack what they hold), then the consumer and the streams ml created are deleted — what
was on the server before stays. Status (``ml status``): the consumer's lag (pending) and unacked
messages, and each worker's counts.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, ClassVar, Mapping

from ml_framework.contract import (
    ApplyContext,
    ApplyRequest,
    ApplyResult,
    BaseProvider,
    DeleteRequest,
    FingerprintRequest,
    PlanRequest,
    PlanResult,
    ReadRequest,
    ReadResult,
)
from ml_framework.errors import MLError

__all__ = ["NatsProvider"]

_DUPLICATE_WINDOW_S = 600.0  # a redelivery within 10 minutes publishes no second prediction


def _folder(project_dir: Path, name: str) -> Path:
    return Path(project_dir) / ".ml" / "streams" / name


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(int(pid), 0)
    except (ProcessLookupError, PermissionError):
        return False
    try:  # a zombie (exited, not reaped) is not alive
        with open(f"/proc/{int(pid)}/stat", encoding="utf-8") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def _run(coro):
    import asyncio

    return asyncio.run(coro)


class NatsProvider(BaseProvider):
    name: ClassVar[str] = "nats"
    kinds: ClassVar[tuple[str, ...]] = ("StreamDeployment",)
    capabilities: ClassVar[tuple[str, ...]] = ("status",)

    @property
    def version(self) -> str:
        from importlib.metadata import PackageNotFoundError, version

        try:
            return f"nats-py {version('nats-py')}"
        except PackageNotFoundError:  # pragma: no cover
            return "nats-py (not installed)"

    @staticmethod
    def _spec(resource_spec: Mapping[str, Any]):
        from .kinds import StreamDeployment

        return StreamDeployment.model_validate(dict(resource_spec))

    # -- plan ----------------------------------------------------------------------------------------------
    def fingerprint(self, request: FingerprintRequest) -> Mapping[str, str]:
        """The version the model reference resolves to now: a promotion or rollback restarts the workers."""
        from ml_framework.plugins.models.registry import registry_for

        spec = self._spec(request.resource.spec)
        try:
            version = registry_for(request.services, request.project_dir).resolve(spec.model)
        except MLError:
            return {}
        return {"serves": version.ref}

    def plan(self, request: PlanRequest) -> PlanResult:
        spec = self._spec(request.resource.spec)
        return PlanResult(reasons=(f"consumes {spec.input.subject} with {spec.consumer.workers} worker(s), publishes to "
                                   f"{spec.output.subject} (dead letters: {spec.dead_letter.subject})",))

    # -- apply ---------------------------------------------------------------------------------------------
    def apply(self, request: ApplyRequest, ctx: ApplyContext) -> ApplyResult:
        from ml_framework.plugins.models.registry import registry_for

        spec = self._spec(request.resource.spec)
        project_dir = Path(ctx.project_dir)
        version = registry_for(ctx.services, project_dir).resolve(spec.model)
        if version.status != "accepted" or not version.bentoml_tag:
            raise MLError(f"{spec.model} resolves to {version.ref} ({version.status}), which cannot be served",
                          hint="deploy an accepted version (ml models list)")
        prior = dict(request.prior.outputs or {}) if request.prior else {}
        ctx.progress(f"preparing streams and the durable consumer on {spec.url}")
        created = _run(self._ensure_server_objects(spec, set(prior.get("created_streams") or ())))
        folder = _folder(project_dir, spec.name)
        config = self._config(spec, project_dir, folder, version, ctx)
        config_text = json.dumps(config, indent=2, sort_keys=True)
        running = [p for p in prior.get("pids") or [] if _alive(p)]
        changed = (not (folder / "config.json").is_file() or (folder / "config.json").read_text() != config_text
                   or prior.get("serves") != version.ref or len(running) != spec.consumer.workers)
        if changed:
            self._stop(running, ctx)
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "config.json").write_text(config_text, encoding="utf-8")
            from ml_framework.plugins.bentoml.control import traffic, write_control

            write_control(folder, traffic({"tag": version.bentoml_tag, "version": version.label}))
            running = [self._start(folder, project_dir) for _ in range(spec.consumer.workers)]
            self._wait_ready(folder, running, ctx)
        outputs = {"serves": version.ref, "tag": version.bentoml_tag, "pids": running, "folder": str(folder),
                   "created_streams": sorted(created), "durable": config["stream"]["durable"],
                   "input_stream": config["stream"]["input_stream"], "output_stream": config["stream"]["output_stream"],
                   "url": spec.url}
        verb = "restarted" if changed and prior else ("started" if changed else "kept")
        return ApplyResult(outputs=outputs, message=f"{verb} {len(running)} worker(s) serving {version.ref} on "
                                                    f"{spec.input.subject} → {spec.output.subject}")

    async def _ensure_server_objects(self, spec, created: set[str]) -> set[str]:
        import nats
        from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, StreamConfig
        from nats.js.errors import NotFoundError

        from ml_framework.spec.kinds import parse_duration

        try:
            nc = await nats.connect(spec.url, connect_timeout=5, max_reconnect_attempts=0)
        except Exception as exc:  # noqa: BLE001 - unreachable, refused...
            raise MLError(f"cannot reach NATS at {spec.url}: {type(exc).__name__}: {exc}",
                          hint="start nats-server with JetStream (-js), or set url: in the spec") from None
        try:
            js = nc.jetstream()
            in_stream, out_stream, dead_stream = spec.stream_names()
            wanted = {in_stream: [spec.input.subject]}
            if spec.output.stream is None:
                wanted[out_stream] = [spec.output.subject]
            if spec.dead_letter.stream is None:
                wanted.setdefault(dead_stream, [])
                if spec.dead_letter.subject not in wanted[dead_stream]:
                    wanted[dead_stream].append(spec.dead_letter.subject)
            for stream, subjects in wanted.items():
                try:
                    info = await js.stream_info(stream)
                    missing = [s for s in subjects if s not in (info.config.subjects or [])]
                    if missing and stream in created:  # ours: take the subjects it lacks
                        await js.update_stream(StreamConfig(name=stream, subjects=list(info.config.subjects or []) + missing,
                                                            duplicate_window=info.config.duplicate_window))
                    elif missing:
                        raise MLError(f"stream {stream} exists on {spec.url} but does not capture {', '.join(missing)}",
                                      hint="name another stream, or add the subject to it")
                except NotFoundError:
                    if stream == spec.input.stream or stream in (spec.output.stream, spec.dead_letter.stream):
                        raise MLError(f"stream {stream} (named in the spec) does not exist on {spec.url}",
                                      hint="create it, or leave stream: out and ml creates one") from None
                    await js.add_stream(StreamConfig(name=stream, subjects=subjects,
                                                     duplicate_window=_DUPLICATE_WINDOW_S))
                    created.add(stream)
            durable = spec.consumer.durable or f"ml_{spec.name.replace('-', '_')}"
            config = ConsumerConfig(durable_name=durable, ack_policy=AckPolicy.EXPLICIT,
                                    deliver_policy=DeliverPolicy.ALL, filter_subject=spec.input.subject,
                                    ack_wait=float(parse_duration(spec.consumer.ack_wait)),
                                    max_deliver=spec.consumer.max_deliver,
                                    max_ack_pending=spec.consumer.batch * spec.consumer.workers * 4)
            try:
                await js.consumer_info(in_stream, durable)
            except NotFoundError:
                await js.add_consumer(in_stream, config)
            return created
        finally:
            await nc.close()

    def _config(self, spec, project_dir: Path, folder: Path, version, ctx) -> dict[str, Any]:
        from ml_framework.plugins.serving.prediction_log import log_dir
        from ml_framework.spec.kinds import parse_duration

        in_stream, out_stream, dead_stream = spec.stream_names()
        entity_keys = self._entity_dtypes(spec, ctx)
        return {
            "runtime": {
                "deployment": spec.name, "project_dir": str(project_dir.resolve()), "service_dir": str(folder.resolve()),
                "route": "stream", "input": {"entity_keys": entity_keys, "raw_features": spec.input.raw_features,
                                             "on_unknown_entity": spec.input.on_unknown_entity},
                "feature_access": bool(entity_keys), "feature_lookup": "thread", "feature_rules": {},
                "log_predictions": True, "log_dir": str(log_dir(project_dir, spec.name).resolve()),
                "explain": {"on_request": True, "always": False, "top_k": 5},
                "decision_log": {"retention_s": parse_duration("90d"), "max_bytes": 512 * 1024 * 1024},
                "workers": spec.consumer.workers,
            },
            "stream": {"url": spec.url, "input_subject": spec.input.subject, "input_stream": in_stream,
                       "output_subject": spec.output.subject, "output_stream": out_stream,
                       "dead_letter_subject": spec.dead_letter.subject, "dead_letter_stream": dead_stream,
                       "durable": spec.consumer.durable or f"ml_{spec.name.replace('-', '_')}",
                       "batch": spec.consumer.batch, "max_wait_ms": spec.consumer.max_wait_ms,
                       "max_deliver": spec.consumer.max_deliver},
        }

    @staticmethod
    def _entity_dtypes(spec, ctx) -> dict[str, str]:
        keys = list(spec.input.entity_keys)
        if not keys:
            return {}
        dtypes = {k: "int64" for k in keys}
        records = ctx.state.list_resources() if getattr(ctx, "state", None) is not None else []
        for record in records:
            if record.kind == "Entity":
                join = (record.spec.get("join_keys") or [record.spec.get("name")])[0]
                if join in dtypes:
                    dtypes[join] = str(record.spec.get("dtype") or "int64")
        return dtypes

    @staticmethod
    def _start(folder: Path, project_dir: Path) -> int:
        from ml_framework.plugins.models.artifacts import bentoml_home

        env = dict(os.environ, BENTOML_HOME=str(bentoml_home(project_dir)), BENTOML_DO_NOT_TRACK="True")
        log = open(folder / "worker.log", "ab")
        try:
            process = subprocess.Popen([sys.executable, "-m", "ml_framework.plugins.nats.worker", str(folder)],
                                       stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                       start_new_session=True, cwd=str(project_dir))
        finally:
            log.close()
        return process.pid

    @staticmethod
    def _wait_ready(folder: Path, pids: list[int], ctx, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        pending = set(pids)
        while pending and time.monotonic() < deadline:
            for pid in list(pending):
                path = folder / "status" / f"worker-{pid}.json"
                if path.is_file():
                    pending.discard(pid)
                elif not _alive(pid):
                    tail = (folder / "worker.log").read_text(errors="replace")[-2000:]
                    raise MLError(f"stream worker {pid} exited while starting:\n{tail}")
            time.sleep(0.1)  # a new process: nothing to await but its status file
        if pending:
            raise MLError(f"stream workers {sorted(pending)} did not become ready in {timeout:.0f}s",
                          hint=f"see {folder / 'worker.log'}")
        ctx.progress(f"{len(pids)} worker(s) consuming")

    @staticmethod
    def _stop(pids, ctx=None, timeout: float = 30.0) -> None:
        """SIGTERM (drain: finish and ack what they hold), then SIGKILL after ``timeout``."""
        live = [p for p in pids if _alive(p)]
        for pid in live:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + timeout
        while any(_alive(p) for p in live) and time.monotonic() < deadline:
            time.sleep(0.05)
        for pid in live:
            if _alive(pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        if live and ctx is not None:
            ctx.progress(f"stopped {len(live)} worker(s)")

    # -- read / delete / status ----------------------------------------------------------------------------
    def read(self, request: ReadRequest) -> ReadResult:
        outputs = dict(request.recorded.outputs or {})
        pids = outputs.get("pids") or []
        if not pids or not all(_alive(p) for p in pids):
            return ReadResult(exists=False)
        return ReadResult(exists=True, outputs=outputs)

    def delete(self, request: DeleteRequest, ctx: ApplyContext) -> None:
        import shutil

        outputs = dict(request.recorded.outputs or {})
        self._stop(outputs.get("pids") or [], ctx)
        if outputs.get("url"):
            _run(self._remove_server_objects(outputs))
        shutil.rmtree(_folder(Path(ctx.project_dir), request.recorded.spec["name"]), ignore_errors=True)

    @staticmethod
    async def _remove_server_objects(outputs: Mapping[str, Any]) -> None:
        import nats
        from nats.js.errors import NotFoundError

        try:
            nc = await nats.connect(outputs["url"], connect_timeout=5, max_reconnect_attempts=0)
        except Exception as exc:  # noqa: BLE001
            raise MLError(f"cannot reach NATS at {outputs['url']} to remove the consumer and streams ml created: "
                          f"{type(exc).__name__}: {exc}", hint="start it and destroy again") from None
        try:
            js = nc.jetstream()
            created = set(outputs.get("created_streams") or ())
            if outputs.get("input_stream") not in created and outputs.get("durable"):
                try:
                    await js.delete_consumer(outputs["input_stream"], outputs["durable"])
                except NotFoundError:
                    pass
            for stream in sorted(created):  # deleting a stream deletes its consumers
                try:
                    await js.delete_stream(stream)
                except NotFoundError:
                    pass
        finally:
            await nc.close()

    def status(self, record, project_dir: Path) -> dict[str, Any]:
        outputs = dict(record.outputs or {})
        folder = _folder(Path(project_dir), record.spec["name"])
        workers = []
        for pid in outputs.get("pids") or []:
            path = folder / "status" / f"worker-{pid}.json"
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                data = {"pid": pid}
            data["alive"] = _alive(pid)
            workers.append(data)
        lag = unacked = None
        try:
            lag, unacked = _run(self._consumer_counts(outputs))
        except Exception:  # noqa: BLE001 - the server is away: the workers' own counts still show
            pass
        running = bool(workers) and all(w["alive"] for w in workers)
        return {"running": running, "ready": running and all(w.get("ready") for w in workers),
                "workers": len(workers), "stable": (outputs.get("serves") or "").split(":")[-1] or None,
                "lag": lag, "unacked": unacked, "processed": sum(w.get("processed", 0) for w in workers),
                "dead_lettered": sum(w.get("dead_lettered", 0) for w in workers),
                "errors": {}, "stream_errors": sum(w.get("errors", 0) for w in workers),
                "rate_per_s": round(sum(w.get("rate_per_s", 0.0) for w in workers), 3),
                "url": outputs.get("url"), "pid": (outputs.get("pids") or [None])[0]}

    @staticmethod
    async def _consumer_counts(outputs: Mapping[str, Any]) -> tuple[int, int]:
        import nats

        nc = await nats.connect(outputs["url"], connect_timeout=3, max_reconnect_attempts=0)
        try:
            info = await nc.jetstream().consumer_info(outputs["input_stream"], outputs["durable"])
            return int(info.num_pending), int(info.num_ack_pending)
        finally:
            await nc.close()
