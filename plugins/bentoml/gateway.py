"""The ASGI side of a deployment's service: :class:`Gateway`, a middleware in front of BentoML's app that
guards the prediction route (401/429/413) and, with ``fast_path``, answers ``POST /predict`` itself —
skipping BentoML's generic request parsing, still inside BentoML's metrics, tracing and timeout
middleware; and :func:`api_predict`, the body of the generated ``@bentoml.api`` method (the route used
with ``fast_path: false``). ``/docs.json`` and the root page describe the deployment's real contract
(:mod:`.openapi`); ``/livez`` and ``/readyz`` stay BentoML's own; ``/metrics`` is BentoML's followed by the
gauges of the monitors watching the deployment (:mod:`.monitor_gauges`).
"""

from __future__ import annotations

import asyncio
from typing import Any, Mapping

from .monitor_gauges import MonitorGauges, append_gauges
from .runtime import RequestError, _dumps, current

__all__ = ["Gateway", "api_predict"]

_JSON = [(b"content-type", b"application/json")]
_CLOSE = [(b"connection", b"close")]


async def _respond(send, status: int, body: dict, headers: list | None = None) -> None:
    data = _dumps(body)
    await send({"type": "http.response.start", "status": status,
                "headers": _JSON + [(b"content-length", str(len(data)).encode())] + (headers or [])})
    await send({"type": "http.response.body", "body": data})


async def _read_body(receive, limit: int) -> bytes:
    chunks = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ConnectionResetError("client disconnected")
        chunk = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > limit:
                raise RequestError(413, f"payload is over the limit of {limit} bytes")
            chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


class Gateway:
    """ASGI middleware in front of the BentoML app: guards the prediction route (401/429/413) and, with
    ``fast_path``, answers ``POST <route>`` itself. Everything else goes to BentoML untouched."""

    def __init__(self, app, config: Mapping[str, Any]):
        self.app = app
        self.route = str(config.get("route") or "/predict")
        self.fast = bool(config.get("fast_path", True))
        self.status_path = "/ml/status"
        self.replay_path = "/ml/replay"
        self.gauges = MonitorGauges(config)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            if scope["type"] == "lifespan":
                runtime = current()
                if runtime is not None and runtime.loop is None:
                    runtime.loop = asyncio.get_running_loop()
            return await self.app(scope, receive, send)
        path = scope["path"]
        if path == self.route and scope["method"] == "POST":
            runtime = current()
            if runtime is None:
                return await _respond(send, 503, {"error": "the service is starting"})
            if runtime.loop is None:
                runtime.loop = asyncio.get_running_loop()
            headers = dict(scope["headers"])
            try:
                runtime.guard(headers, scope.get("client"))
                body = await _read_body(receive, runtime.max_bytes)
                if not self.fast:  # BentoML's own API route, given the body read (and size-checked) here
                    return await self.app(scope, _replay(body), send)
                rid = headers.get(b"x-request-id")
                answer = await runtime.handle(runtime.parse(body), rid.decode("latin-1") if rid else None)
            except RequestError as exc:
                return await _respond(send, exc.status, exc.body, exc.headers + (_CLOSE if runtime.draining else []))
            except ConnectionResetError:
                return None
            # Draining (the next process of this service accepts from the same socket): the client reconnects
            # after this answer, to the next process, instead of finding its connection closed later.
            return await _respond(send, 200, answer, _CLOSE if runtime.draining else None)
        if path == "/metrics" and scope["method"] == "GET":
            return await self._metrics(scope, receive, send)
        if scope["method"] == "GET" and path in ("/docs.json", "/"):
            return await self._describe(path, send)
        if path == self.replay_path and scope["method"] == "POST":
            return await self._replay(scope, receive, send)
        if path == self.status_path and scope["method"] == "GET":
            runtime = current()
            return await _respond(send, 200 if runtime else 503, runtime.status() if runtime else {"ready": False})
        return await self.app(scope, receive, send)

    async def _describe(self, path: str, send):
        """The OpenAPI document and the root page, generated from the contract this service enforces
        (BentoML's generic ones describe an untyped body)."""
        from .openapi import index_page, openapi_document

        runtime = current()
        if runtime is None or runtime.route is None:
            return await _respond(send, 503, {"error": "the service is starting"})
        contract = runtime.contract()
        if path == "/docs.json":
            return await _respond(send, 200, openapi_document(contract))
        data = index_page(contract).encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/html; charset=utf-8"),
                                (b"content-length", str(len(data)).encode())]})
        await send({"type": "http.response.body", "body": data})

    async def _replay(self, scope, receive, send):
        """Recorded inputs scored by stable and candidate (rollout analysis without live traffic): only
        for `ml apply`, which holds the token; 404 for everyone else, as if the route did not exist."""
        runtime = current()
        if runtime is None or not runtime.replay_allowed(dict(scope["headers"])):
            return await _respond(send, 404, {"error": "not found"})
        try:
            body = await _read_body(receive, 64 * 1024 * 1024)
            answer = await runtime.replay(runtime.parse(body))
        except RequestError as exc:
            return await _respond(send, exc.status, exc.body, exc.headers)
        except ConnectionResetError:
            return None
        return await _respond(send, 200, answer)

    async def _metrics(self, scope, receive, send):
        """BentoML's ``/metrics`` with the gauges of this deployment's monitors appended."""
        start: dict[str, Any] = {}
        chunks: list[bytes] = []

        async def capture(message):
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self.app(scope, receive, capture)
        body = b"".join(chunks)
        status = int(start.get("status", 500))
        if status == 200:
            body = append_gauges(body, await self.gauges.text())
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
        await send({"type": "http.response.start", "status": status,
                    "headers": headers + [(b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


def _replay(body: bytes):
    """A receive() that hands the app a body already read."""
    sent = False

    async def receive():
        nonlocal sent
        if sent:
            await asyncio.sleep(3600)  # nothing more will come: the app only waits for a disconnect
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive


async def api_predict(payload: Mapping[str, Any]):
    """The BentoML API method's body (``fast_path: false``): the same handling, as a Starlette response."""
    from starlette.responses import Response

    runtime = current()
    try:
        if runtime is None:
            raise RequestError(503, "the service is starting")
        body = await runtime.handle({k: v for k, v in payload.items() if v is not None})
        status, headers = 200, []
    except RequestError as exc:
        body, status, headers = exc.body, exc.status, exc.headers
    return Response(_dumps(body), status_code=status, media_type="application/json",
                    headers={k.decode(): v.decode() for k, v in headers})
