"""Helpers for testing and benchmarking deployments (shipped like plugins/models/testing.py).

    from ml_framework.plugins.bentoml.testing import deployment_spec, free_port, LoadGenerator, stop_all_servers
    (root / "specs" / "deploy.yaml").write_text(deployment_spec(port=free_port(), rollout="{strategy: canary}"))
    with LoadGenerator(url, payloads, threads=4) as load:
        harness.apply()
    assert load.failed == 0

The load generator keeps one persistent HTTP/1.1 connection per thread (as a real client would) and
counts every answer that is not a 2xx, and every connection error, as a failed request.
"""

from __future__ import annotations

import http.client
import json
import random
import socket
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

__all__ = ["deployment_spec", "free_port", "LoadGenerator", "stop_all_servers", "raw_payloads", "post", "get_json"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def deployment_spec(name: str = "fraud-api", *, model: str = "fraud", port: int | None = None,
                    serving: str = "", rollout: str = "{strategy: recreate}", extra: str = "") -> str:
    port = port or free_port()
    return (f"kind: Deployment\nname: {name}\nmodel: {model}\n"
            f"serving: {{backend: bentoml, port: {port}{', ' + serving if serving else ''}}}\n"
            f"rollout: {rollout}\n{extra}")


def raw_payloads(count: int = 200, seed: int = 0) -> list[dict[str, Any]]:
    """Feature payloads for ml_framework.plugins.models.testing's model (amount_mean_7d, txn_count_7d, segment)."""
    rng = random.Random(seed)
    return [{"features": {"amount_mean_7d": round(rng.lognormvariate(3, 0.7), 2), "txn_count_7d": rng.randint(1, 14),
                          "segment": rng.choice(["retail", "business", "premium"])}} for _ in range(count)]


def get_json(url: str, *, timeout: float = 10.0) -> Any:
    """The JSON body of a GET (raises on a non-2xx status)."""
    import urllib.request

    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read())


def post(url: str, payload: Any, *, headers: Mapping[str, str] | None = None, timeout: float = 10.0,
         raw: bytes | None = None) -> tuple[int, dict | str, dict]:
    """(status, JSON body or text, headers) of one POST."""
    host, _, rest = url.partition("//")[2].partition("/")
    hostname, _, port = host.rpartition(":")
    conn = http.client.HTTPConnection(hostname, int(port), timeout=timeout)
    try:
        body = raw if raw is not None else json.dumps(payload).encode()
        conn.request("POST", "/" + rest, body=body, headers={"content-type": "application/json", **(headers or {})})
        response = conn.getresponse()
        data = response.read()
        try:
            parsed: dict | str = json.loads(data)
        except ValueError:
            parsed = data.decode(errors="replace")
        return response.status, parsed, {k.lower(): v for k, v in response.getheaders()}
    finally:
        conn.close()


class LoadGenerator:
    """Continuous client load from `threads` threads until stopped; tallies answers."""

    def __init__(self, url: str, payloads: Sequence[Mapping[str, Any]], *, threads: int = 4,
                 headers: Mapping[str, str] | None = None, path: str = "/predict", pause: float = 0.0):
        host = url.partition("//")[2]
        self.host, _, port = host.rpartition(":")
        self.port = int(port)
        self.path = path
        self.bodies = [json.dumps(p).encode() for p in payloads]
        self.headers = {"content-type": "application/json", **(headers or {})}
        self.threads = threads
        self.pause = pause
        self.ok = 0
        self.failed = 0
        self.statuses: Counter = Counter()
        self.versions: Counter = Counter()
        self.variants: Counter = Counter()
        self.errors: list[str] = []
        self.latencies: list[float] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._workers: list[threading.Thread] = []

    def _run(self, seed: int) -> None:
        rng = random.Random(seed)
        conn = None
        while not self._stop.is_set():
            body = self.bodies[rng.randrange(len(self.bodies))]
            started = time.perf_counter()
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(self.host, self.port, timeout=10)
                conn.request("POST", self.path, body=body, headers=self.headers)
                response = conn.getresponse()
                data = response.read()
                elapsed = time.perf_counter() - started
                with self._lock:
                    self.statuses[response.status] += 1
                    if 200 <= response.status < 300:
                        self.ok += 1
                        self.latencies.append(elapsed)
                        answer = json.loads(data)
                        self.versions[answer.get("model_version")] += 1
                        self.variants[answer.get("variant")] += 1
                    else:
                        self.failed += 1
                        if len(self.errors) < 20:
                            self.errors.append(f"{response.status}: {data[:200]!r}")
            except (OSError, http.client.HTTPException, ValueError) as exc:
                with self._lock:
                    self.failed += 1
                    if len(self.errors) < 20:
                        self.errors.append(f"{type(exc).__name__}: {exc}")
                if conn is not None:
                    conn.close()
                conn = None
            if self.pause:
                time.sleep(self.pause)
        if conn is not None:
            conn.close()

    def start(self) -> "LoadGenerator":
        for i in range(self.threads):
            thread = threading.Thread(target=self._run, args=(i,), name=f"load-{i}", daemon=True)
            thread.start()
            self._workers.append(thread)
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._workers:
            thread.join(timeout=15)

    def __enter__(self) -> "LoadGenerator":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def total(self) -> int:
        return self.ok + self.failed


def stop_all_servers(roots: Iterable[Path]) -> list[int]:
    """Stop every server a project's service folders name (test teardown, even after failures)."""
    from .process import stop_server

    stopped = []
    for root in roots:
        for pid_file in Path(root).glob(".ml/serving/*/server.pid"):
            try:
                pid = int(pid_file.read_text().strip())
            except (OSError, ValueError):
                continue
            if stop_server(pid, pid_file.parent):
                stopped.append(pid)
    return stopped
