"""What runs inside a deployment's `bentoml serve` workers (imported by the generated service.py).

Per worker, one :class:`Runtime`:

* loads the model versions named in ``control.json`` from the BentoML model store (stable, and a
  candidate during a rollout) and routes each request: stable only, a random ``weight``% to the
  candidate (canary), a sticky ``split``% per entity key (a/b), or stable answering while the candidate
  predicts a mirrored copy (shadow, blue/green preview). A candidate that fails answers with stable's
  prediction instead (its error is logged and counts against it in the analysis);
* watches ``control.json`` from a background thread: `ml` rewrites it (atomically) to change weights or
  versions, the worker loads what is new off the request path, swaps its routing table in one assignment
  and acknowledges in ``status/<pid>.json`` — weights change without a restart and without failing a
  request;
* validates requests (422 naming each field), fetches online features for entity keys
  (the feature-access service of the project's plugins; unknown entity: 404, or missing features with ``on_unknown_entity: missing``),
  predicts (optionally through BentoML's adaptive batching dispatcher), and logs every request to the
  prediction log without blocking (plugins/serving/prediction_log.py);
* checks API keys (401) and the rate limit (429) for the gateway (plugins/bentoml/gateway.py: the ASGI
  middleware that serves ``POST /predict``; the guards themselves are in plugins/bentoml/guards.py).

Metrics: ``ml_predictions_total{deployment, model_version, variant, status}``,
``ml_prediction_latency_seconds{deployment, model_version, variant}`` and
``ml_rejected_requests_total{deployment, reason}`` next to BentoML's, on ``/metrics``.
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
import gc
import json
import logging
import os
import random
import threading
import time
import uuid
import zlib
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping

from ml_framework.plugins.features.rules import violation

__all__ = ["load_config", "start", "current", "Runtime", "Route", "RequestError"]

logger = logging.getLogger("ml.serving")
_RUNTIME: "Runtime | None" = None
_POLL_S = 0.1


def load_config(service_file: str | Path) -> dict[str, Any]:
    """config.json beside the service; its relative paths (a packaged Bento's) resolved against that folder."""
    folder = Path(service_file).resolve().parent
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    for key in ("service_dir", "project_dir", "log_dir"):
        value = config.get(key)
        if value and not Path(value).is_absolute():
            config[key] = str(folder / value)
    return config


def current() -> "Runtime | None":
    return _RUNTIME


def start(config: Mapping[str, Any]) -> "Runtime":
    """Build this worker's runtime (called from the service's __init__, once per worker)."""
    global _RUNTIME
    runtime = Runtime(config)
    runtime.start()
    _RUNTIME = runtime
    return runtime


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat()


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), default=str).encode()


class RequestError(Exception):
    """A request the service answers with a 4xx/5xx and a JSON body."""

    def __init__(self, status: int, error: str, detail: Any = None, headers: list | None = None):
        super().__init__(error)
        self.status = status
        self.body = {"error": error, **({"detail": detail} if detail is not None else {})}
        self.headers = headers or []


# --- routing table ------------------------------------------------------------------------------------


class Route:
    """One immutable snapshot of what serves: swapped whole when control.json changes."""

    __slots__ = ("generation", "rollout", "step", "mode", "weight", "stable", "candidate", "candidate_error")

    def __init__(self, generation, rollout, step, mode, weight, stable, candidate, candidate_error=None):
        self.generation = generation
        self.rollout = rollout
        self.step = step
        self.mode = mode  # single | weight | split | mirror
        self.weight = weight
        self.stable = stable
        self.candidate = candidate
        self.candidate_error = candidate_error

    def pick(self, entity_keys: Mapping[str, Any] | None, request_id: str):
        """(answering model, variant, mirrored model or None)."""
        candidate = self.candidate
        if candidate is None or self.mode == "single":
            return self.stable, "stable", None
        if self.mode == "mirror":
            return self.stable, "stable", candidate
        if self.mode == "split":
            key = json.dumps(entity_keys, sort_keys=True) if entity_keys else request_id
            chosen = zlib.crc32(key.encode()) % 10_000 < self.weight * 100
        else:
            chosen = random.random() * 100 < self.weight
        return (candidate, "candidate", None) if chosen else (self.stable, "stable", None)


# --- the runtime -------------------------------------------------------------------------------------------


_SERVICES: dict[str, Any] = {}


def project_services(config: Mapping[str, Any]):
    """The services of the project's plugins (seams: feature access, monitor gauges), once per process."""
    project_dir = str(config.get("project_dir") or "")
    if project_dir not in _SERVICES:
        from ml_framework.project import Project

        _SERVICES[project_dir] = Project.load(Path(project_dir) if project_dir else None).registry().services()
    return _SERVICES[project_dir]


# Who sent the request being handled (set by guard(), read by _log()): the API key's digest prefix.
CALLER: contextvars.ContextVar[str | None] = contextvars.ContextVar("ml_caller", default=None)


class Runtime:
    def __init__(self, config: Mapping[str, Any]):
        self.config = dict(config)
        self.deployment = str(config["deployment"])
        self.service_dir = Path(config["service_dir"])
        self.control_path = self.service_dir / "control.json"
        self.status_dir = self.service_dir / "status"
        inp = config.get("input") or {}
        self.entity_keys: dict[str, str] = dict(inp.get("entity_keys") or {})
        self.raw_features = bool(inp.get("raw_features", True))
        self.on_unknown_entity = inp.get("on_unknown_entity") or "reject"
        self.uses_features = bool(config.get("feature_access"))  # entity keys are looked up in the feature store
        self.features = None  # the feature-access service, built on first use (tests may set a fake)
        self.lookup_inline = config.get("feature_lookup") == "inline"
        self.feature_rules: dict[str, dict[str, Any]] = dict(config.get("feature_rules") or {})  # contracts
        self.feature_views: dict[str, list[str] | None] = {}  # view -> join keys, read from the store when needed
        self._splits: dict[str, tuple[list[str], list[str]]] = {}
        self.max_bytes = int(config.get("max_request_bytes") or 65_536)
        explain = config.get("explain") or {}
        self.explain_on_request = bool(explain.get("on_request", True))
        self.explain_always = bool(explain.get("always", False))
        self.explain_top_k = int(explain.get("top_k") or 5)

        # API keys and the rate limit come with control.json ("guards", changed without a restart); a
        # config.json of an older ml still carries them.
        self._guards: dict[str, Any] | None = None
        self._set_guards({"auth": config.get("auth"), "rate_limit": config.get("rate_limit")})
        self.batching = config.get("batching") if (config.get("batching") or {}).get("enabled") else None
        self.route: Route | None = None
        self.ready = False
        self._models: dict[str, Any] = {}
        self._dispatchers: dict[str, Any] = {}
        self._control_stamp: tuple | None = None
        self._stop = threading.Event()
        self._writer = None
        self._metrics = _Metrics(self.deployment, enabled=False)  # real ones from start(), in the worker
        self._recent: collections.deque = collections.deque(maxlen=32)  # feature values, for warm-ups
        self.served = 0
        self.loop = None  # the worker's event loop, seen on the first request (draining closes its servers)
        self._drained = False

    # -- lifecycle --------------------------------------------------------------------------------------
    def start(self) -> None:
        self.status_dir.mkdir(parents=True, exist_ok=True)
        if self.config.get("log_predictions", True):
            from ml_framework.plugins.serving.prediction_log import PredictionLogWriter

            retention = self.config.get("decision_log") or {}
            self._writer = PredictionLogWriter(Path(self.config["log_dir"]), retention_s=retention.get("retention_s"),
                                               total_bytes=int(retention.get("max_bytes") or 512 * 1024 * 1024))
        self._metrics = _Metrics(self.deployment)
        try:
            self.loop = asyncio.get_running_loop()
        except RuntimeError:
            pass  # seen on the first request instead
        if self.entity_keys and self.uses_features:
            self.feature_access().warm()  # e.g. build Feast's FeatureStore now, not on the first request
        control = self._read_control()
        if control is None:
            raise RuntimeError(f"{self.control_path} is missing: the service was not set up by `ml apply`")
        self._apply_control(control, initial=True)
        self.ready = True
        threading.Thread(target=self._watch, name="ml-control", daemon=True).start()
        # Everything loaded so far (BentoML, pydantic, OpenTelemetry, the models) lives as long as the
        # worker: keep it out of the cyclic GC, whose full collections over it paused requests for tens
        # of milliseconds (the p99 at one connection).
        gc.collect()
        gc.freeze()

    def close(self) -> None:
        self._stop.set()
        if self._writer is not None:
            self._writer.close()
        try:
            (self.status_dir / f"{os.getppid()}-{os.getpid()}.json").unlink(missing_ok=True)
        except OSError:
            pass

    # -- control ------------------------------------------------------------------------------------------
    def _read_control(self) -> dict | None:
        try:
            stat = self.control_path.stat()
        except FileNotFoundError:
            return None
        stamp = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
        if stamp == self._control_stamp:
            return None
        try:
            data = json.loads(self.control_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None  # mid-write by a foreign tool: try again on the next poll
        self._control_stamp = stamp
        return data

    def _load(self, ref: Mapping[str, Any]):
        tag = ref["tag"]
        model = self._models.get(tag)
        if model is None:
            from .predictor import load_serving_model

            model = load_serving_model(_model_folder(tag), tag)
            model.version = ref.get("version") or model.version
            self._models[tag] = model
        return model

    def _set_guards(self, guards: Mapping[str, Any]) -> None:
        from .guards import ApiKeys, RateLimiter

        guards = {"auth": guards.get("auth"), "rate_limit": guards.get("rate_limit")}
        if guards == self._guards:
            return
        self.keys = ApiKeys(guards["auth"]) if guards["auth"] else None
        self.limiter = (RateLimiter(guards["rate_limit"], self.config.get("workers") or 1)
                        if guards["rate_limit"] else None)
        self._guards = guards

    def _apply_control(self, control: Mapping[str, Any], initial: bool = False) -> None:
        generation = int(control.get("generation", 0))
        if self.route is not None and generation == self.route.generation:
            return
        if "guards" in control:
            self._set_guards(control["guards"] or {})
        errors: dict[str, str] = {}
        try:
            stable = self._load(control["stable"])
        except Exception as exc:
            if initial:
                raise RuntimeError(f"cannot load the stable model {control['stable'].get('tag')}: {exc}") from exc
            errors[control["stable"]["tag"]] = f"{type(exc).__name__}: {exc}"
            self._write_status(generation, errors)
            return
        candidate, candidate_error = None, None
        if control.get("candidate"):
            try:
                candidate = self._load(control["candidate"])
                self._warm_up(candidate, int(control.get("warmup") or 0))
            except Exception as exc:  # stable keeps serving; ml reads the error and stops the rollout
                candidate, candidate_error = None, f"{type(exc).__name__}: {exc}"
                errors[control["candidate"]["tag"]] = candidate_error
        if self.entity_keys:  # which features are fetched and which come raw: decided off the request path
            for model in (stable, candidate):
                if model is not None:
                    self._split(model)
        self.route = Route(generation, control.get("rollout"), control.get("step"), control.get("mode") or "single",
                           float(control.get("weight") or 0.0), stable, candidate, candidate_error)
        keep = {stable.tag} | ({candidate.tag} if candidate else set())
        for tag in [t for t in self._models if t not in keep]:
            self._models.pop(tag, None)
            batcher = self._dispatchers.pop(tag, None)
            if batcher is not None:  # its queued requests are predicted one by one, none fails
                batcher.loop.call_soon_threadsafe(batcher.dispatcher.shutdown)
        self._write_status(generation, errors)

    def _warm_up(self, model, count: int) -> None:
        """Predict with a newly loaded version before it takes traffic: recent requests (or one row of
        missing values); a failure or a non-finite answer keeps it out of traffic."""
        rows = list(self._recent) or [{}]
        for i in range(max(1, count)):
            answer = model.predict(rows[i % len(rows)])
            values = answer if isinstance(answer, list) else [answer]
            if not all(isinstance(v, float) and v == v and abs(v) != float("inf") for v in values):
                raise ValueError(f"warm-up prediction is not a finite number: {answer!r}")

    def _write_status(self, generation: int, errors: Mapping[str, str]) -> None:
        route = self.route
        data = {"pid": os.getpid(), "ppid": os.getppid(), "generation": generation, "errors": dict(errors), "at": time.time(),
                "serving_generation": route.generation if route else None,
                "loaded": sorted(self._models), "ready": self.ready or route is not None}
        path = self.status_dir / f"{os.getppid()}-{os.getpid()}.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data), encoding="utf-8")
        os.replace(tmp, path)

    @property
    def draining(self) -> bool:
        return self._drained

    def _drain_requested(self) -> bool:
        return (self.service_dir / f"drain-{os.getppid()}").exists()

    def _drain(self) -> None:
        """Stop accepting connections (the next process of this service accepts them from the same socket)
        while the requests already accepted are answered; `ml` stops this process after."""
        loop = self.loop
        if loop is None:
            logger.warning("ml: draining: no event loop seen yet")
            self._drained = True
            return
        gc.unfreeze()  # the server objects were frozen with the rest at start: get_objects() skips those
        try:
            found = [o for o in gc.get_objects() if type(o).__name__ == "Server"
                     and type(o).__module__.startswith("uvicorn") and hasattr(o, "servers")]
        finally:
            gc.freeze()
        servers = [server for o in found for server in (o.servers or [])]  # asyncio or uvloop listeners
        for server in servers:
            loop.call_soon_threadsafe(server.close)
        self._drained = True
        logger.info("ml: draining: no longer accepting on %d listener(s)", len(servers))

    def _watch(self) -> None:
        beats = 0
        while not self._stop.wait(_POLL_S):
            if not self._drained and self._drain_requested():
                try:
                    self._drain()
                except Exception:
                    logger.exception("ml: draining failed")
                    self._drained = True
            try:
                control = self._read_control()
                if control is not None:
                    self._apply_control(control)
                beats += 1
                if self.keys is not None and beats % 10 == 0:
                    self.keys.reload_file()
            except Exception:  # never let the watcher die: the next poll tries again
                logger.exception("ml: applying control.json failed")

    # -- guards (headers only: before the body is read) ---------------------------------------------------
    def guard(self, headers: Mapping[bytes, bytes], client: Any) -> str | None:
        """Refuse what the guards refuse (401, 429, 413); returns who calls: ``key:`` and the first 12 hex
        digits of the API key's SHA-256 (never the key), or None without API keys."""
        key_digest = None
        if self.keys is not None:
            key_digest = self.keys.check(headers)
            if key_digest is None:
                self._metrics.rejected("unauthorized")
                missing = self.keys.header not in headers and b"authorization" not in headers
                raise RequestError(401, "missing API key" if missing else "invalid API key",
                                   f"send it in the {self.keys.header.decode()} header (or Authorization: Bearer)",
                                   headers=[(b"www-authenticate", b"ApiKey")])
        if self.limiter is not None:
            per = self.limiter.per
            key = key_digest if per == "api_key" else (client[0] if per == "client" and client else None)
            wait = self.limiter.allow(key)
            if wait > 0:
                self._metrics.rejected("rate_limited")
                retry = max(1, int(wait + 0.999))
                raise RequestError(429, "rate limit exceeded", f"retry after {retry}s",
                                   headers=[(b"retry-after", str(retry).encode())])
        length = headers.get(b"content-length")
        if length is not None:
            try:
                size = int(length)
            except ValueError:
                raise RequestError(400, "invalid Content-Length header") from None
            if size > self.max_bytes:
                self._metrics.rejected("too_large")
                raise RequestError(413, f"payload of {size} bytes is over the limit of {self.max_bytes} bytes")
        caller = f"key:{key_digest.hex()[:12]}" if key_digest is not None else None
        CALLER.set(caller)  # the request's task: handle() logs it, on either route to it
        return caller

    # -- requests -----------------------------------------------------------------------------------------
    def parse(self, body: bytes) -> dict:
        try:
            payload = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            self._metrics.rejected("malformed_json")
            raise RequestError(400, "malformed JSON", str(exc)) from None
        if not isinstance(payload, dict):
            self._metrics.rejected("invalid")
            raise RequestError(422, "invalid request", [{"loc": [], "msg": "the body must be a JSON object"}])
        return payload

    def validate(self, payload: Mapping[str, Any], route: Route) -> tuple[dict | None, dict, str | None]:
        """(entity keys or None, raw feature values, request id) — or a 422 listing every problem."""
        errors: list[dict[str, Any]] = []
        allowed = {"entity_keys", "features", "request_id", "explain"}
        for name in payload:
            if name not in allowed:
                errors.append({"loc": [name], "msg": f"unknown field (expected {', '.join(sorted(allowed))})"})
        request_id = payload.get("request_id")
        if request_id is not None and (isinstance(request_id, bool) or not isinstance(request_id, (str, int))):
            errors.append({"loc": ["request_id"], "msg": "expected text or an integer"})
        explain = payload.get("explain")
        if explain is not None and not isinstance(explain, bool):
            errors.append({"loc": ["explain"], "msg": "expected true or false"})
        elif explain and not self.explain_on_request:
            errors.append({"loc": ["explain"], "msg": "this deployment gives no explanations on request "
                                                      "(explain.on_request: false)"})
        elif explain and not route.stable.explains:
            errors.append({"loc": ["explain"], "msg": f"the {route.stable.flavor} flavour of {route.stable.model}:"
                                                      f"{route.stable.version} gives no explanations"})
        keys = payload.get("entity_keys")
        features = payload.get("features")
        if keys is not None:
            if not self.entity_keys:
                errors.append({"loc": ["entity_keys"], "msg": "this deployment takes no entity keys; send features"})
            elif not isinstance(keys, dict):
                errors.append({"loc": ["entity_keys"], "msg": "expected an object of join keys"})
            else:
                for name, dtype in self.entity_keys.items():
                    if name not in keys:
                        errors.append({"loc": ["entity_keys", name], "msg": "field required"})
                        continue
                    value = keys[name]
                    if dtype.startswith("int"):
                        if isinstance(value, float) and value.is_integer():
                            value = keys[name] = int(value)  # JSON Schema's integer includes 3.0
                        if isinstance(value, bool) or not isinstance(value, int):
                            errors.append({"loc": ["entity_keys", name], "msg": "expected an integer"})
                        elif not -(2**63) <= value < 2**63:
                            errors.append({"loc": ["entity_keys", name], "msg": "out of range (a 64-bit integer)"})
                    elif not isinstance(value, str):
                        errors.append({"loc": ["entity_keys", name], "msg": "expected text"})
                for name in keys:
                    if name not in self.entity_keys:
                        errors.append({"loc": ["entity_keys", name],
                                       "msg": f"unknown entity key (expected {', '.join(self.entity_keys)})"})
        if features is not None:
            if not self.raw_features:
                errors.append({"loc": ["features"], "msg": "this deployment does not accept feature values; send entity_keys"})
            elif not isinstance(features, dict):
                errors.append({"loc": ["features"], "msg": "expected an object of feature values"})
            else:
                kinds = _input_kinds(route.stable)
                if route.candidate is not None:
                    kinds = {**_input_kinds(route.candidate), **kinds}
                derived = {c: d["name"] for m in (route.stable, route.candidate) if m is not None
                           for d in getattr(m, "derived", None) or () for _, c in d["features"]}
                for name, value in features.items():
                    if name in derived:
                        errors.append({"loc": ["features", name], "msg": f"computed by the service (on-demand view "
                                                                         f"{derived[name]}): do not send it"})
                        continue
                    kind = kinds.get(name)
                    if kind is None:
                        errors.append({"loc": ["features", name], "msg": "unknown feature"})
                        continue
                    problem = kind.accepts(value) or violation(self.feature_rules.get(name), value)
                    if problem:
                        errors.append({"loc": ["features", name], "msg": problem})
        if isinstance(keys, dict) and not errors:
            given = features if isinstance(features, dict) else {}
            request_fields = _request_fields(route.stable)
            for name in self._raw_only(route.stable):
                if name not in given:
                    why = (f"a request field of on-demand view {request_fields[name]}" if name in request_fields
                           else "its feature view is not keyed by the entity keys: send its value")
                    errors.append({"loc": ["features", name], "msg": f"field required ({why})"})
        if keys is None:
            if not self.raw_features:
                errors.append({"loc": ["entity_keys"], "msg": "field required"})
            elif features is None:
                need = "entity_keys or features" if self.entity_keys else "features"
                errors.append({"loc": [need.split(" ")[0]], "msg": f"field required ({need})"})
            elif isinstance(features, dict):
                for name in _required_raw(route.stable):
                    if name not in features:
                        errors.append({"loc": ["features", name], "msg": "field required"})
        if errors:
            self._metrics.rejected("invalid")
            raise RequestError(422, "invalid request", errors)
        return (keys if isinstance(keys, dict) else None), (features if isinstance(features, dict) else {}), \
            (str(request_id) if request_id is not None else None)

    def _split(self, model) -> tuple[list[str], list[str]]:
        """(refs fetched online by the declared entity keys, features that must come in the request): a
        feature view keyed by anything else (e.g. a transaction id, new at scoring time) is sent raw."""
        found = self._splits.get(model.tag)
        if found is None:
            declared = set(self.entity_keys)
            fetched, raw = [], []
            derived_views = {d["name"] for d in getattr(model, "derived", None) or ()}
            input_refs, request_fields, _ = model.derived_inputs() if derived_views else ([], [], {})
            refs = [r for r in model.feature_refs if r.partition(":")[0] not in derived_views] + \
                [r for r in input_refs if r not in model.feature_refs]
            for ref in refs:
                view, _, name = ref.partition(":")
                keys = self._view_keys(view)
                if keys is None or set(keys) <= declared:
                    fetched.append(ref)
                elif name not in raw:
                    raw.append(name)
            raw += [f for f in request_fields if f not in raw]  # what only the caller knows
            found = self._splits[model.tag] = (fetched, raw)
        return found

    def feature_access(self):
        """The project's feature-access service (the seam the feature store's plugin provides)."""
        if self.features is None:
            self.features = project_services(self.config).get("feature_access")
        return self.features

    def _view_keys(self, view: str) -> list[str] | None:
        """A feature view's join keys, from the feature store (read once per view), else None."""
        if view not in self.feature_views:
            keys = None
            if self.uses_features:
                try:
                    keys = self.feature_access().join_keys(view)
                except Exception:  # not a stored view (or the registry is unreadable): fetch as declared
                    keys = None
            self.feature_views[view] = keys
        return self.feature_views[view]

    def _raw_only(self, model) -> list[str]:
        return self._split(model)[1] if self.entity_keys else []

    async def fetch(self, keys: Mapping[str, Any], route: Route, given: Mapping[str, Any]) -> dict[str, Any]:
        refs = [r for r in self._split(route.stable)[0] if r.partition(":")[2] not in given]
        if route.candidate is not None:
            refs += [r for r in self._split(route.candidate)[0] if r not in refs and r.partition(":")[2] not in given]
        if not refs:
            return {}
        if not self.uses_features:
            raise RequestError(503, "no feature store is configured for this deployment")
        try:
            lookup = self.feature_access().online_features
            if self.lookup_inline:
                found = lookup(refs, [dict(keys)])
            else:
                found = await asyncio.get_running_loop().run_in_executor(None, lookup, refs, [dict(keys)])
        except Exception as exc:
            logger.exception("ml: online feature lookup failed")
            raise RequestError(503, "feature store unavailable", f"{type(exc).__name__}: {exc}") from None
        if found.missing and self.on_unknown_entity == "reject":
            raise RequestError(404, "unknown entity", {"entity_keys": dict(keys),
                                                       "msg": "the online store holds no features for these keys"})
        values = {name: column[0] for name, column in found.features.items() if name not in keys}
        return values

    async def _predict(self, model, item) -> tuple[Any, float | None]:
        """(prediction, the CPU milliseconds it took on this thread — the cost of a prediction, logged as
        ``cpu_ms``; None through the batching dispatcher, where a batch shares it)."""
        if self.batching is None:
            started = time.thread_time()
            answer = model.predict_batch([item])[0]
            return answer, (time.thread_time() - started) * 1000.0
        dispatcher = self._dispatchers.get(model.tag)
        if dispatcher is None:
            dispatcher = self._dispatchers[model.tag] = _Batcher(model, self.batching)
        return await dispatcher.predict(item), None

    async def handle(self, payload: Mapping[str, Any], header_request_id: str | None = None) -> dict:
        """Answer one validated-on-the-way request: the response body (raises RequestError)."""
        started = time.perf_counter()
        route = self.route
        if route is None:
            raise RequestError(503, "the service is starting")
        try:
            keys, raw, request_id = self.validate(payload, route)
        except RequestError as exc:
            rid = payload.get("request_id")
            self._log(route, None, None, str(rid) if isinstance(rid, (str, int)) else header_request_id or uuid.uuid4().hex,
                      None, None, None, started, exc.status, error=exc.body["error"])
            raise
        request_id = request_id or header_request_id or uuid.uuid4().hex
        values = dict(raw)
        status = 200
        try:
            if keys is not None:
                fetched = await self.fetch(keys, route, raw)
                values = {**fetched, **raw}
            model, variant, mirror = route.pick(keys, request_id)
            if _computed(model):
                values = _with_derived(model, values)
            try:
                prediction, cpu_ms = await self._predict(model, model.encode(values))
            except Exception as exc:
                if variant != "candidate":
                    raise
                self._log(route, model, "candidate", request_id, keys, values, None, started, 500,
                          error=f"{type(exc).__name__}: {exc}")
                model, variant = route.stable, "stable"  # the user still gets an answer: stable's
                prediction, cpu_ms = await self._predict(model, model.encode(values))
        except RequestError as exc:
            status = exc.status
            self._log(route, route.stable, None, request_id, keys, values, None, started, status, error=exc.body["error"])
            raise
        except Exception as exc:
            logger.exception("ml: prediction failed")
            self._log(route, route.stable, "stable", request_id, keys, values, None, started, 500,
                      error=f"{type(exc).__name__}: {exc}")
            raise RequestError(500, "prediction failed", {"request_id": request_id}) from None
        explanation = None
        if (self.explain_always or payload.get("explain") is True) and model.explains:
            try:
                explanation = model.explain(model.encode(values), values, prediction, self.explain_top_k)
            except Exception as exc:  # an explanation is never worth losing the prediction for
                logger.warning("ml: explanation failed: %s", exc)
                explanation = {"error": f"{type(exc).__name__}: {exc}"}
        extra: dict[str, Any] = {}
        if cpu_ms is not None:
            extra["cpu_ms"] = round(cpu_ms, 4)
        if explanation is not None:
            extra["explanation"] = explanation
        self._log(route, model, variant, request_id, keys, values, prediction, started, status, **extra)
        self._recent.append(values)
        if mirror is not None:
            asyncio.get_running_loop().call_soon(self._shadow, route, mirror, request_id, keys, values, prediction)
        answer = {"prediction": prediction, "model": model.model, "model_version": model.version, "variant": variant,
                  "request_id": request_id}
        classes = getattr(model, "classes", None)
        if classes and isinstance(prediction, list) and len(prediction) == len(classes):
            # Multiclass: the most likely class by name, and each named class's probability.
            answer["class"] = classes[max(range(len(prediction)), key=prediction.__getitem__)]
            answer["probabilities"] = {str(name): p for name, p in zip(classes, prediction)}
        if explanation is not None:
            answer["explanation"] = explanation
        return answer

    # -- what the service says about itself --------------------------------------------------------------
    def contract(self):
        """The contract this worker enforces now (stable and candidate), for /docs.json and the root page."""
        from .openapi import ServiceContract

        route = self.route
        models = [m for m in ((route.stable, route.candidate) if route else ()) if m is not None]
        features: dict[str, dict[str, Any]] = {}
        raw_only: list[str] = []
        for model in models:
            computed = _computed(model)
            kinds = _input_kinds(model)
            for name in [f for f in model.features if f not in computed] + [n for n in kinds if n not in model.features]:
                kind = kinds.get(name)
                features.setdefault(name, {"kind": kind.kind if kind else "number",
                                           "categories": list(kind.categories) if kind else []})
            for name in self._raw_only(model):
                if name not in raw_only:
                    raw_only.append(name)
        first = models[0] if models else None
        try:
            about = json.loads((self.service_dir / "about.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            about = {}
        return ServiceContract(
            deployment=self.deployment, description=str(about.get("description") or ""),
            route=str(self.config.get("route") or "/predict"), model=first.model if first else "",
            versions=[m.version for m in models], task=first.task if first else "binary",
            entity_keys=dict(self.entity_keys), raw_features=self.raw_features, raw_only=raw_only,
            features=features, rules=dict(self.feature_rules), classes=first.classes if first else None,
            auth_header=self.keys.header.decode() if self.keys is not None else None,
            rate_limited=self.limiter is not None, max_bytes=self.max_bytes,
            rejects_unknown_entities=self.on_unknown_entity == "reject",
            explains=bool(first and first.explains and self.explain_on_request),
            explains_always=bool(first and first.explains and self.explain_always))

    # -- replayed inputs (rollouts without enough live traffic) -----------------------------------------
    def replay_allowed(self, headers: Mapping[bytes, bytes]) -> bool:
        """Replays come from `ml apply` on this machine: it proves it with the token it wrote beside the
        service (``replay.token``, readable by the project's owner only)."""
        import hmac

        sent = headers.get(b"x-ml-replay")
        try:
            token = (self.service_dir / "replay.token").read_bytes().strip()
        except OSError:
            return False
        return bool(sent and token) and hmac.compare_digest(sent, token)

    async def replay(self, payload: Mapping[str, Any]) -> dict:
        """Score recorded inputs (``records``: [{"features": {...}, "entity_keys": {...}}]) with stable and
        candidate, side by side; nothing is logged as a prediction (no caller got these answers)."""
        route = self.route
        if route is None or route.candidate is None:
            raise RequestError(409, "no candidate is loaded: replays judge a rollout step")
        records = payload.get("records")
        if not isinstance(records, list):
            raise RequestError(422, "invalid request", [{"loc": ["records"], "msg": "expected a list"}])
        results = []
        for record in records:
            values = dict((record or {}).get("features") or {})
            keys = (record or {}).get("entity_keys") or None
            item: dict[str, Any] = {}
            try:
                if keys and self.uses_features and self.entity_keys:
                    fetched = await self.fetch(keys, route, values)
                    values = {**fetched, **values}
            except RequestError as exc:  # e.g. an entity since removed from the store: skip the record
                results.append({"skipped": exc.body.get("error")})
                continue
            for variant, model in (("stable", route.stable), ("candidate", route.candidate)):
                started = time.perf_counter()
                try:
                    item[variant] = model.predict_batch([model.encode(values)])[0]
                    item[f"{variant}_status"] = 200
                except Exception as exc:
                    item[f"{variant}_status"] = 500
                    item[f"{variant}_error"] = f"{type(exc).__name__}: {exc}"
                item[f"{variant}_ms"] = round((time.perf_counter() - started) * 1000.0, 3)
            results.append(item)
            await asyncio.sleep(0)  # live requests interleave with a long replay
        return {"generation": route.generation, "stable": route.stable.version,
                "candidate": route.candidate.version, "results": results}

    def _shadow(self, route, model, request_id, keys, values, stable_prediction) -> None:
        started = time.perf_counter()
        cpu = time.thread_time()
        try:
            prediction = model.predict_batch([model.encode(values)])[0]
        except Exception as exc:
            self._log(route, model, "shadow", request_id, keys, values, None, started, 500,
                      error=f"{type(exc).__name__}: {exc}")
            return
        self._log(route, model, "shadow", request_id, keys, values, prediction, started, 200,
                  stable_prediction=stable_prediction, cpu_ms=round((time.thread_time() - cpu) * 1000.0, 4))

    def _log(self, route, model, variant, request_id, keys, values, prediction, started, status, **extra) -> None:
        latency = (time.perf_counter() - started) * 1000.0
        self.served += 1
        version = model.version if model is not None else None
        self._metrics.observe(version, variant, status, latency)
        if self._writer is None:
            return
        record = {"request_id": request_id, "ts": _now_iso(), "deployment": self.deployment,
                  "model": model.model if model is not None else None, "model_version": version,
                  "variant": variant, "entity_keys": keys or {}, "features": values, "prediction": prediction,
                  "latency_ms": round(latency, 3), "status": status, "generation": route.generation}
        caller = CALLER.get()
        if caller is not None:
            record["caller"] = caller
        if route.rollout:
            record["rollout"] = route.rollout
        if extra:
            record.update(extra)
        self._writer.write(record)

    def status(self) -> dict:
        route = self.route
        return {"deployment": self.deployment, "pid": os.getpid(), "ready": self.ready, "served": self.served,
                "generation": route.generation if route else None, "mode": route.mode if route else None,
                "weight": route.weight if route else None,
                "stable": {"version": route.stable.version, "tag": route.stable.tag} if route else None,
                "candidate": ({"version": route.candidate.version, "tag": route.candidate.tag}
                              if route and route.candidate else None),
                "candidate_error": route.candidate_error if route else None}


def _model_folder(tag: str) -> Path:
    import bentoml

    return Path(bentoml.models.get(tag).path)


class _Batcher:
    """BentoML's adaptive batching dispatcher (CORK) in front of one model version. A request the
    dispatcher gives up on (over its latency budget) is predicted on its own instead of failing."""

    def __init__(self, model, settings: Mapping[str, Any]):
        from ml_framework.plugins.compat.bentoml import cork_dispatcher

        self.model = model
        self.loop = asyncio.get_running_loop()

        def overloaded():
            raise _GiveUp()

        self.dispatcher = cork_dispatcher(max_latency_in_ms=float(settings.get("max_latency_ms", 5.0)),
                                          max_batch_size=int(settings.get("max_batch_size", 64)),
                                          fallback=overloaded, get_batch_size=lambda item: 1)

        async def batch(items):
            return model.predict_batch(list(items))

        self.call = self.dispatcher(batch)

    async def predict(self, item) -> Any:
        try:
            return await self.call(item)
        except _GiveUp:
            return self.model.predict_batch([item])[0]


class _GiveUp(Exception):
    pass


class _Metrics:
    """Prometheus counters/histograms through BentoML's metrics client (multiprocess-safe)."""

    def __init__(self, deployment: str, enabled: bool = True):
        self.deployment = deployment
        self._children: dict[tuple, tuple] = {}
        self._rejected: dict[str, Any] = {}
        self.total = self.latency = self.rejects = None
        if not enabled:
            return
        try:
            from ml_framework.plugins.compat.bentoml import metrics_client

            client = metrics_client()
            self.total = client.Counter(name="ml_predictions_total", documentation="Predictions answered, by model version",
                                        labelnames=["deployment", "model_version", "variant", "status"])
            self.latency = client.Histogram(
                name="ml_prediction_latency_seconds", documentation="Time to answer a prediction request",
                labelnames=["deployment", "model_version", "variant"],
                buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, float("inf")))
            self.rejects = client.Counter(name="ml_rejected_requests_total", documentation="Requests refused before predicting",
                                          labelnames=["deployment", "reason"])
        except Exception:  # metrics are never worth failing a request for
            logger.exception("ml: metrics unavailable")
            self.total = self.latency = self.rejects = None

    def observe(self, version, variant, status, latency_ms) -> None:
        if self.total is None:
            return
        key = (version, variant, status)
        children = self._children.get(key)
        if children is None:
            children = self._children[key] = (
                self.total.labels(self.deployment, version or "-", variant or "-", str(status)),
                self.latency.labels(self.deployment, version or "-", variant or "-"))
        children[0].inc()
        children[1].observe(latency_ms / 1000.0)

    def rejected(self, reason: str) -> None:
        if self.rejects is None:
            return
        child = self._rejected.get(reason)
        if child is None:
            child = self._rejected[reason] = self.rejects.labels(self.deployment, reason)
        child.inc()


def _computed(model) -> set[str]:
    """The features of ``model`` computed here (on-demand views'), none for a model without them."""
    return {column for d in getattr(model, "derived", None) or () for _, column in d["features"]}


def _request_fields(model) -> dict[str, str]:
    """Request fields of the on-demand views ``model`` reads -> the view's name."""
    out: dict[str, str] = {}
    for d in getattr(model, "derived", None) or ():
        for name in d["computation"]["inputs"]:
            if "." not in name:
                out.setdefault(name, d["name"])
    return out


def _input_kinds(model) -> dict[str, Any]:
    """What a request may send for ``model``: its features, less the derived ones (computed here), plus the
    inputs of the derived ones (request fields, raw view features)."""
    computed = _computed(model)
    kinds = {n: k for n, k in model.kinds.items() if n not in computed}
    if computed:
        from .predictor import CATEGORY, NUMBER, TIMESTAMP, FeatureKind

        for name, kind in model.derived_inputs()[2].items():
            kinds.setdefault(name, FeatureKind(name, NUMBER if kind in ("number", "bool") else
                                               TIMESTAMP if kind == "timestamp" else CATEGORY))
    return kinds


def _required_raw(model) -> list[str]:
    """The features a request without entity keys must carry."""
    computed = _computed(model)
    names = [f for f in model.features if f not in computed]
    if computed:
        names += [n for n in model.derived_inputs()[2] if n not in names]
    return names


def _with_derived(model, values: Mapping[str, Any]) -> dict[str, Any]:
    """The derived features, computed as the training frame computed them; a failure names the feature
    (a 500: the inputs passed validation, so it is the transformation that failed)."""
    from ml_framework.plugins.features.derived import DerivedFeatureError

    try:
        return model.with_derived(values)
    except DerivedFeatureError as exc:
        raise RequestError(500, "derived feature failed", {"feature": exc.feature, "msg": exc.message}) from None
