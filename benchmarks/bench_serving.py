"""Serving: our generated BentoML service versus a hand-written minimal BentoML service and a plain FastAPI
app, with the same LightGBM model and the same payload, measured side by side in one run on loopback.

    .venv/bin/python benchmarks/bench_serving.py [--duration 8] [--rounds 2] [--quick] [--skip-feast] [--alone]
    .venv/bin/python benchmarks/bench_serving.py --only dissect   # where a minimal BentoML service's time goes

What runs (one process each, one worker each, all on 127.0.0.1):

  ours      the service `ml apply` generates for a Deployment (raw features, no auth, no rate limit):
            request validation, routing, prediction log, per-version metrics, BentoML's own middleware
  ours-api  the same with `serving.fast_path: false`: POST /predict through BentoML's API machinery
  minimal   a hand-written BentoML 1.4 service: `@bentoml.service`, the model as `BentoModel`, one
            `@bentoml.api def predict(self, features: dict) -> dict` building the same numpy row
  fastapi   a FastAPI app on uvicorn with the same predict function: the ceiling

Load: wrk (if installed: `apt-get install -y wrk`) or a Python HTTP/1.1 keep-alive client otherwise,
at 1 and 16 connections; rounds alternate between the servers so drift on a shared machine hits all.
Reported per server: req/s, p50 and p99 latency (best round by throughput); then the ratios
ours / minimal (targets: throughput >= 1.0, p50 <= 1.1). With --alone, each server is also measured
alone (the others stopped with SIGSTOP) and alone with its supervisor process stopped, against plain
FastAPI (targets: throughput >= 1.0x, p99 <= 3x).

--only dissect: the minimal BentoML service with tracing, the sync thread-pool hop and the cyclic GC
taken away one at a time, each alone, next to plain FastAPI.

Also measured:
  * Feast: the example project's features in Feast (SQLite online store); one deployment answering the
    same requests by entity keys (features fetched online) and by raw feature values: the added p50.
  * on-demand features (--only on-demand): two deployments on Feast, one model reading the inputs of an
    on-demand view and one reading its two derived features too: the p50 the per-request computation adds;
  * adaptive batching (serving.batching) on vs off at 16 and 64 connections;
  * failed requests during canary weight changes under load: control.json rewritten N times (load the
    candidate, 5% -> 25% -> 50% -> 100% -> 0% ...) while 8 client threads send requests (target 0).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

WRK = shutil.which("wrk")


# --- load generation ------------------------------------------------------------------------------------------


def wrk_script(bodies: list[str], path: Path) -> Path:
    lines = ["wrk.method = 'POST'", "wrk.headers['Content-Type'] = 'application/json'", "local bodies = {"]
    lines += ["  " + json.dumps(b) + "," for b in bodies]  # JSON strings are valid Lua strings here
    lines += ["}", "local i = 0", "request = function()", "  i = i + 1",
              "  return wrk.format(nil, nil, nil, bodies[(i % #bodies) + 1])", "end"]
    path.write_text("\n".join(lines))
    return path


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def run_wrk(url: str, script: Path, connections: int, duration: float) -> dict:
    proc = subprocess.run([WRK, "-t1", f"-c{connections}", f"-d{duration:g}s", "--latency", "-s", str(script), url],
                          capture_output=True, text=True, timeout=duration + 60)
    out = proc.stdout
    found = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if found is None:
        raise RuntimeError(f"wrk failed: {out}{proc.stderr}")
    rps = float(found.group(1))
    p50 = _ms(re.search(r"\s50%\s+(\S+)", out).group(1))
    p99 = _ms(re.search(r"\s99%\s+(\S+)", out).group(1))
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    non2xx = int(m.group(1)) if (m := re.search(r"Non-2xx or 3xx responses: (\d+)", out)) else 0
    errors = sum(int(x) for x in m.groups()) if (m := re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)) else 0
    return {"rps": rps, "p50": p50, "p99": p99, "failed": non2xx + errors, "requests": requests}


def run_python(url: str, bodies: list[str], connections: int, duration: float) -> dict:
    import http.client

    host, port = url.partition("//")[2].split("/")[0].split(":")
    path = "/" + url.partition("//")[2].partition("/")[2]
    latencies: list[float] = []
    failed = [0]
    lock = threading.Lock()
    stop = time.perf_counter() + duration

    def client(seed):
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        i = seed
        mine = []
        while time.perf_counter() < stop:
            body = bodies[i % len(bodies)].encode()
            i += 1
            t = time.perf_counter()
            try:
                conn.request("POST", path, body=body, headers={"content-type": "application/json"})
                response = conn.getresponse()
                response.read()
                if response.status != 200:
                    with lock:
                        failed[0] += 1
                    continue
            except Exception:
                with lock:
                    failed[0] += 1
                conn = http.client.HTTPConnection(host, int(port), timeout=10)
                continue
            mine.append(time.perf_counter() - t)
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    latencies.sort()
    q = lambda f: latencies[min(len(latencies) - 1, int(f * len(latencies)))] * 1000  # noqa: E731
    return {"rps": len(latencies) / duration, "p50": q(0.5), "p99": q(0.99), "failed": failed[0],
            "requests": len(latencies) + failed[0]}


def _tree(pid: int) -> list[int]:
    """pid and its descendants (a BentoML server's workers run in sessions of their own, as children)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    out, stack = [], [pid]
    while stack:
        current = stack.pop()
        out.append(current)
        stack.extend(children.get(current, ()))
    return out


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU of a process tree so far (Linux)."""
    if not pid or not Path("/proc").is_dir():
        return 0.0
    total = 0
    for p in _tree(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            continue
    return total / os.sysconf("SC_CLK_TCK")


def measure(url: str, bodies: list[str], connections: int, duration: float, workdir: Path,
            pid: int | None = None) -> dict:
    """One load run; with the server's pid also its CPU time per request (robust to a busy machine)."""
    before = cpu_seconds(pid)
    if WRK:
        result = run_wrk(url, wrk_script(bodies, workdir / f"load-{abs(hash(tuple(bodies))) % 10**8}.lua"),
                         connections, duration)
    else:
        result = run_python(url, bodies, connections, duration)
    if pid:
        result["cpu_us"] = (cpu_seconds(pid) - before) / max(1, result["requests"]) * 1e6
    return result


# --- servers ---------------------------------------------------------------------------------------------------------

MINIMAL = '''\
from typing import Any

import bentoml
import numpy as np

FEATURES = {features!r}
CATEGORIES = {categories!r}


@bentoml.service{service_args}
class Minimal:
    model_ref = bentoml.models.BentoModel({tag!r})

    def __init__(self) -> None:
        self.booster = bentoml.lightgbm.load_model(self.model_ref){init_extra}

    @bentoml.api
    {def_kw} predict(self, features: dict[str, Any]) -> dict:
        row = [CATEGORIES[name].get(features.get(name), np.nan) if name in CATEGORIES
               else float(features.get(name, np.nan)) for name in FEATURES]
        return {{"prediction": float(self.booster.predict(np.asarray([row], dtype=np.float64))[0])}}
'''

FASTAPI = '''\
from typing import Any

import lightgbm as lgb
import numpy as np
from fastapi import FastAPI
from pydantic import BaseModel

FEATURES = {features!r}
CATEGORIES = {categories!r}
booster = lgb.Booster(model_file={model_file!r})
app = FastAPI()


class Request(BaseModel):
    features: dict[str, Any]


@app.post("/predict")
def predict(request: Request) -> dict:
    features = request.features
    row = [CATEGORIES[name].get(features.get(name), np.nan) if name in CATEGORIES
           else float(features.get(name, np.nan)) for name in FEATURES]
    return {{"prediction": float(booster.predict(np.asarray([row], dtype=np.float64))[0])}}
'''


def wait_ready(url: str, timeout: float = 90.0, path: str = "/readyz") -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + path, timeout=1) as response:
                if response.status in (200, 404, 405):
                    return
        except urllib.error.HTTPError as exc:
            if exc.code in (404, 405):
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not become ready")


class Process:
    def __init__(self, command: list[str], cwd: Path, url: str, ready_path: str = "/readyz"):
        from ml_framework.plugins.bentoml.process import _environment

        self.log = open(cwd / "server.log", "ab")
        self.proc = subprocess.Popen(command, cwd=cwd, env=_environment(), stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        self.url = url
        wait_ready(url, path=ready_path)

    def stop(self) -> None:
        import signal

        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.log.close()


# --- setup -----------------------------------------------------------------------------------------------------------


def deploy(root: Path, harness, name: str, serving: str = "", extra: str = "", rollout: str = "{strategy: recreate}"):
    from ml_framework.plugins.bentoml.testing import deployment_spec, free_port

    (root / "specs" / f"deploy-{name}.yaml").write_text(
        deployment_spec(name, port=free_port(), serving=serving, rollout=rollout, extra=extra))
    report = harness.apply()
    assert report.ok, [o for o in report.outcomes if o.outcome != "succeeded"]
    return harness.store.get(f"deployment.{name}").outputs["url"]


def model_schema(tag: str) -> dict:
    from ml_framework.plugins.models.artifacts import artifact_dir

    schema = json.loads((artifact_dir(tag) / "ml_model.json").read_text())
    return {"features": schema["features"],
            "categories": {c: {v: float(i) for i, v in enumerate(values)}
                           for c, values in (schema.get("categorical") or {}).items()},
            "model_file": str(artifact_dir(tag) / "saved_model.ubj")}


def table(rows: list[tuple], headers: tuple) -> str:
    widths = [max(len(str(r[i])) for r in rows + [headers]) for i in range(len(headers))]
    line = lambda r: "  ".join(str(v).ljust(w) for v, w in zip(r, widths))  # noqa: E731
    return "\n".join([line(headers), line(tuple("-" * w for w in widths))] + [line(r) for r in rows])


def served(harness, name: str) -> tuple[str, int]:
    outputs = harness.store.get(f"deployment.{name}").outputs
    return outputs["url"] + "/predict", outputs["pid"]


def best_of(runs: list[dict]) -> dict:
    """The best round by throughput; CPU per request as the median of the rounds (it varies less)."""
    best = dict(max(runs, key=lambda r: r["rps"]))
    cpu = [r["cpu_us"] for r in runs if "cpu_us" in r]
    if cpu:
        best["cpu_us"] = statistics.median(cpu)
    return best


@contextlib.contextmanager
def paused(servers: dict, measured: str, condition: str):
    """Stop (SIGSTOP) what must not run while ``measured`` is measured under ``condition``: "alone" stops
    every other server's process tree; "alone, supervisor stopped" also stops the measured server's root
    process when it has children (BentoML's supervisor: the workers go on answering without it).
    Everything is continued (SIGCONT) afterwards."""
    stopped: list[int] = []
    if condition != "side by side":
        for name, (_, pid) in servers.items():
            if name != measured:
                stopped += _tree(pid)
        if condition.endswith("supervisor stopped"):
            root = servers[measured][1]
            if len(_tree(root)) > 1:
                stopped.append(root)
    for pid in stopped:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        for pid in stopped:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)


def print_conditions(results: dict, servers: dict, conditions: list[str]) -> None:
    rows = []
    for name in servers:
        for cond in conditions:
            for c in (1, 16):
                b = best_of(results[(name, cond)][c])
                rows.append((name, cond, c, f"{b['rps']:.0f}", f"{b['p50']:.2f}", f"{b['p99']:.2f}"))
    print("\n== each server side by side, alone (the others stopped), and alone with its supervisor stopped ==")
    print(table(rows, ("server", "condition", "conns", "req/s", "p50 ms", "p99 ms")))
    for cond in conditions:
        for c in (1, 16):
            ours, ceiling = best_of(results[("ours", cond)][c]), best_of(results[("fastapi", cond)][c])
            print(f"{cond:>26}, {c:>2} conn: ours/fastapi throughput x{ours['rps'] / ceiling['rps']:.2f} "
                  f"(target >= 1.0), p99 x{ours['p99'] / ceiling['p99']:.2f} (target <= 3)")


#: --dissect: the minimal BentoML service, one change at a time, to find where its latency tail comes from
MINIMAL_VARIANTS = {
    "minimal": {},
    "untraced": {"untraced": True},
    "untraced+async": {"untraced": True, "async": True},
    "untraced+async+gc frozen": {"untraced": True, "async": True, "gc_freeze": True},
    "traced+async+gc frozen": {"async": True, "gc_freeze": True},
}


def minimal_service(tag: str, schema: dict, untraced: bool = False, gc_freeze: bool = False, **kw) -> str:
    service_args = ('(tracing={"excluded_urls": ["^[a-z]+://[^/]*/predict$"]})' if untraced else "")
    init_extra = "\n        import gc\n        gc.collect()\n        gc.freeze()" if gc_freeze else ""
    return MINIMAL.format(tag=tag, features=schema["features"], categories=schema["categories"],
                          service_args=service_args, init_extra=init_extra,
                          def_kw="async def" if kw.get("async") else "def")


def start_minimal(folder: Path, tag: str, schema: dict, **options) -> tuple[Process, str]:
    """The minimal BentoML service (a variant of it: see MINIMAL_VARIANTS) served from ``folder``."""
    from ml_framework.plugins.bentoml.testing import free_port

    folder.mkdir()
    (folder / "service.py").write_text(minimal_service(tag, schema, **options))
    port = free_port()
    proc = Process([sys.executable, "-m", "bentoml", "serve", "service:Minimal", "--host", "127.0.0.1",
                    "--port", str(port), "--working-dir", str(folder)], folder, f"http://127.0.0.1:{port}")
    return proc, f"http://127.0.0.1:{port}/predict"


def start_fastapi(folder: Path, schema: dict) -> tuple[Process, str]:
    """The plain FastAPI app on uvicorn served from ``folder``: the ceiling."""
    from ml_framework.plugins.bentoml.testing import free_port

    folder.mkdir()
    (folder / "app.py").write_text(FASTAPI.format(features=schema["features"], categories=schema["categories"],
                                                  model_file=schema["model_file"]))
    port = free_port()
    proc = Process([sys.executable, "-m", "uvicorn", "app:app", "--host", "127.0.0.1", "--port", str(port),
                    "--log-level", "warning"], folder, f"http://127.0.0.1:{port}", ready_path="/docs")
    return proc, f"http://127.0.0.1:{port}/predict"


def bench_dissect(args, work: Path, tag: str) -> None:
    """The minimal BentoML service with tracing, the sync thread-pool hop and the cyclic GC taken away one
    at a time, each measured alone (the others stopped), next to plain FastAPI."""
    from ml_framework.plugins.bentoml.testing import raw_payloads

    bodies = [json.dumps(p) for p in raw_payloads(64, seed=1)]
    schema = model_schema(tag)
    servers, procs = {}, []
    try:
        for i, (name, options) in enumerate(MINIMAL_VARIANTS.items()):
            proc, url = start_minimal(work / f"dissect-{i}", tag, schema, **options)
            procs.append(proc)
            servers[name] = (url, proc.proc.pid)
        proc, url = start_fastapi(work / "dissect-fastapi", schema)
        procs.append(proc)
        servers["fastapi"] = (url, proc.proc.pid)
        for url, _ in servers.values():
            measure(url, bodies, 4, 1.0, work)
        results: dict = {name: {1: [], 16: []} for name in servers}
        for _ in range(args.rounds):
            for connections in (1, 16):
                for name, (url, pid) in servers.items():
                    with paused(servers, name, "alone"):
                        results[name][connections].append(measure(url, bodies, connections, args.duration, work, pid))
        rows = []
        for name in servers:
            for c in (1, 16):
                b = best_of(results[name][c])
                rows.append((name, c, f"{b['rps']:.0f}", f"{b['p50']:.2f}", f"{b['p99']:.2f}", f"{b.get('cpu_us', 0):.0f}"))
        print("\n== where a minimal BentoML service's time goes (each alone; best of %d rounds, %gs each) =="
              % (args.rounds, args.duration))
        print(table(rows, ("server", "conns", "req/s", "p50 ms", "p99 ms", "CPU us/req")))
    finally:
        for proc in procs:
            proc.stop()


def bench_servers(args, work: Path, harness, root: Path, tag: str) -> dict:
    from ml_framework.plugins.bentoml.testing import raw_payloads

    bodies = [json.dumps(p) for p in raw_payloads(64, seed=1)]
    schema = model_schema(tag)
    deploy(root, harness, "ours")
    deploy(root, harness, "ours-api", serving="fast_path: false")
    servers = {"ours": served(harness, "ours"), "ours-api": served(harness, "ours-api")}
    procs = []
    for name, (proc, url) in (("minimal", start_minimal(work / "minimal", tag, schema)),
                              ("fastapi", start_fastapi(work / "fastapi", schema))):
        procs.append(proc)
        servers[name] = (url, proc.proc.pid)
    try:
        for name, (url, _) in servers.items():  # warm up
            measure(url, bodies, 4, 1.0, work)
        conditions = ["side by side"] + (["alone", "alone, supervisor stopped"] if args.alone else [])
        results: dict = {(name, cond): {1: [], 16: []} for name in servers for cond in conditions}
        for _ in range(args.rounds):
            for connections in (1, 16):
                for cond in conditions:
                    for name, (url, pid) in servers.items():
                        with paused(servers, name, cond):
                            results[(name, cond)][connections].append(
                                measure(url, bodies, connections, args.duration, work, pid))
        if args.alone:
            print_conditions(results, servers, conditions)
        best = {name: {c: best_of(runs) for c, runs in results[(name, "side by side")].items()} for name in servers}
        rows = []
        for name in servers:
            for c in (1, 16):
                b = best[name][c]
                rows.append((name, c, f"{b['rps']:.0f}", f"{b['p50']:.2f}", f"{b['p99']:.2f}",
                             f"{b.get('cpu_us', 0):.0f}", b["failed"]))
        print("\n== servers (best of %d rounds, %gs each, %s; CPU: server process tree, per request) =="
              % (args.rounds, args.duration, "wrk" if WRK else "python client"))
        print(table(rows, ("server", "conns", "req/s", "p50 ms", "p99 ms", "CPU us/req", "failed")))
        print()
        ratios = {}
        for c in (1, 16):
            ours, minimal, ceiling = best["ours"][c], best["minimal"][c], best["fastapi"][c]
            ratios[c] = (ours["rps"] / minimal["rps"], ours["p50"] / minimal["p50"])
            capacity = minimal.get("cpu_us", 0) / max(1e-9, ours.get("cpu_us", 0))
            print(f"{c:>2} conn: ours/minimal throughput x{ratios[c][0]:.2f} (target >= 1.0), "
                  f"p50 x{ratios[c][1]:.2f} (target <= 1.1), CPU per request minimal/ours x{capacity:.2f}; "
                  f"ours/fastapi throughput x{ours['rps'] / ceiling['rps']:.2f}; "
                  f"ours-api/minimal throughput x{best['ours-api'][c]['rps'] / minimal['rps']:.2f}")
        return {"best": best, "ratios": ratios}
    finally:
        for proc in procs:
            proc.stop()


def bench_batching(args, work: Path, harness, root: Path) -> None:
    from ml_framework.plugins.bentoml.testing import raw_payloads

    bodies = [json.dumps(p) for p in raw_payloads(64, seed=2)]
    deploy(root, harness, "nobatch")
    deploy(root, harness, "batch", serving="batching: {max_batch_size: 64, max_latency_ms: 5}")
    servers = {"batching off": served(harness, "nobatch"), "batching on": served(harness, "batch")}
    for url, _ in servers.values():
        measure(url, bodies, 4, 1.0, work)
    runs: dict = {(name, c): [] for name in servers for c in (16, 64)}
    for _ in range(args.rounds):
        for connections in (16, 64):
            for name, (url, pid) in servers.items():
                runs[(name, connections)].append(measure(url, bodies, connections, args.duration, work, pid))
    rows = []
    for (name, connections), results in runs.items():
        r = best_of(results)
        rows.append((name, connections, f"{r['rps']:.0f}", f"{r['p50']:.2f}", f"{r['p99']:.2f}",
                     f"{r.get('cpu_us', 0):.0f}", r["failed"]))
    print("\n== adaptive batching (BentoML's CORK dispatcher in front of the model) ==")
    print(table(rows, ("service", "conns", "req/s", "p50 ms", "p99 ms", "CPU us/req", "failed")))


def bench_weight_changes(args, harness, root: Path) -> None:
    from ml_framework.plugins.models.registry import ModelRegistry
    from ml_framework.plugins.bentoml.control import traffic, wait_for_generation, write_control
    from ml_framework.plugins.bentoml.testing import LoadGenerator, raw_payloads
    from ml_framework.plugins.models.testing import model_spec

    (root / "specs" / "models.yaml").write_text(model_spec(gates=(), params={"num_leaves": 7, "num_boost_round": 30}))
    assert harness.apply(targets=["model.fraud"]).ok
    registry = ModelRegistry.for_project(root)
    v1, v2 = registry.get("fraud", 1), registry.get("fraud", 2)
    stable = {"tag": v1.bentoml_tag, "version": v1.label}
    candidate = {"tag": v2.bentoml_tag, "version": v2.label}
    record = harness.store.get("deployment.ours")
    folder, pid = root / ".ml" / "serving" / "ours", record.outputs["pid"]
    weights = [5, 25, 50, 100, 0] * max(1, args.changes // 5)
    started = time.perf_counter()
    with LoadGenerator(record.outputs["url"], raw_payloads(100, seed=3), threads=8) as load:
        time.sleep(0.5)
        for weight in weights:
            document = traffic(stable, candidate, mode="weight", weight=weight) if weight else traffic(stable)
            wait_for_generation(folder, write_control(folder, document), 1, timeout=30, server_pid=pid)
            time.sleep(0.1)
        time.sleep(0.3)
    elapsed = time.perf_counter() - started
    print("\n== canary weight changes under load ==")
    print(f"{len(weights)} weight changes (candidate loaded and unloaded {len(weights) // 5} times) in {elapsed:.1f}s "
          f"under 8 client threads: {load.total} requests, {load.failed} failed (target 0); "
          f"answered by {dict(load.versions)}")
    if load.errors:
        print("  errors:", load.errors[:5])


def bench_feast(args, work: Path) -> None:
    """The example project's features in Feast; one deployment, two kinds of requests."""
    from ml_framework.testing.harness import Harness
    from ml_framework.plugins.bentoml import BentoMLProvider
    from ml_framework.plugins.feast import FeastProvider
    from ml_framework.plugins.lightgbm import LightGBMProvider

    root = work / "feast"
    shutil.copytree(ROOT / "specs" / "features", root / "specs" / "features")
    (root / "feature_repo").mkdir(parents=True)
    shutil.copy(ROOT / "feature_repo" / "feature_store.yaml", root / "feature_repo" / "feature_store.yaml")
    (root / "specs" / "models.yaml").write_text(textwrap.dedent("""\
        kind: Model
        name: fraud
        task: binary
        label: {source: fraud_labels, column: is_fraud}
        features: [fraud_detection, "customer_profile:home_country"]
        trainer: {backend: lightgbm, params: {num_leaves: 15, num_boost_round: 40}}
        """))
    subprocess.run([sys.executable, str(ROOT / "scripts" / "generate_data.py"), "--out", str(root / "data"),
                    "--rows", "4000", "--end", "2024-07-01"], check=True, capture_output=True)
    harness = Harness(root, {"feast": FeastProvider(), "lightgbm": LightGBMProvider(), "bentoml": BentoMLProvider()})
    try:
        entity = "input: {entity_keys: [customer_id, merchant_id], raw_features: true}\n"
        urls = {"thread": deploy(root, harness, "feast-thread", serving="feature_lookup: thread", extra=entity)
                + "/predict",
                "inline": deploy(root, harness, "feast-inline", serving="feature_lookup: inline", extra=entity)
                + "/predict"}
        import pandas as pd

        from ml_framework.plugins.feast.online import fetch_online_features
        from ml_framework.plugins.models.artifacts import artifact_dir

        tag = harness.store.get("deployment.feast-thread").outputs["stable"]["tag"]
        refs = json.loads((artifact_dir(tag) / "ml_model.json").read_text())["feature_refs"]
        # the transaction's own view is keyed by transaction_id (sent raw); its derived view is computed per
        # request from inputs fetched by key (which a request without keys sends instead)
        online = [r for r in refs if not r.startswith(("transaction_features:", "transaction_context:"))]
        online += [r for r in ("customer_spend:amount_mean_90d", "merchant_profile:category",
                               "merchant_profile:country") if r not in online]
        customers = pd.read_parquet(root / "data" / "customer_profile.parquet")["customer_id"].unique()[:64]
        merchants = pd.read_parquet(root / "data" / "merchant_stats.parquet")["merchant_id"].unique()
        keys = [{"customer_id": int(c), "merchant_id": int(merchants[i % len(merchants)])} for i, c in enumerate(customers)]
        txns = pd.read_parquet(root / "data" / "transactions.parquet").head(len(keys))
        facts = [{"amount": float(row["amount"]), "event_ts": row["event_ts"].isoformat()} for _, row in txns.iterrows()]
        fetched = [fetch_online_features(root / "feature_repo", online, [k]).rows()[0] for k in keys]
        t = time.perf_counter()
        for k in keys * 3:
            fetch_online_features(root / "feature_repo", online, [k])
        in_process = (time.perf_counter() - t) / (len(keys) * 3) * 1000
        entity_bodies = [json.dumps({"entity_keys": k, "features": x}) for k, x in zip(keys, facts)]
        raw_bodies = [json.dumps({"features": {**{n: v for n, v in f.items() if n not in k}, **x}})
                      for k, f, x in zip(keys, fetched, facts)]
        rows = []
        for mode, url in urls.items():
            measure(url, entity_bodies, 2, 1.0, work)
            for connections in (1, 16):
                for label, bodies in (("raw features", raw_bodies), ("entity keys", entity_bodies)):
                    r = max((measure(url, bodies, connections, args.duration, work) for _ in range(args.rounds)),
                            key=lambda x: x["rps"])
                    rows.append((mode, label, connections, f"{r['rps']:.0f}", f"{r['p50']:.2f}", f"{r['p99']:.2f}",
                                 r["failed"]))
        views = sorted({r.partition(":")[0] for r in online})
        print(f"\n== Feast online lookup (SQLite online store, {len(views)} feature views, {len(online)} features "
              f"fetched per request; the transaction's own features sent in both kinds of request) ==")
        print(table(rows, ("lookup", "request", "conns", "req/s", "p50 ms", "p99 ms", "failed")))
        by = {(r[0], r[1], r[2]): float(r[4]) for r in rows}
        for mode in urls:
            print(f"added p50 at 1 connection ({mode}): {by[(mode, 'entity keys', 1)] - by[(mode, 'raw features', 1)]:.2f} ms "
                  f"(fetch_online_features in-process: {in_process:.2f} ms per call)")
    finally:
        harness.destroy()
        harness.close()


def bench_on_demand(args, work: Path) -> None:
    """The same requests to a model without and with on-demand features: what computing them per request adds."""
    from ml_framework.testing.harness import Harness
    from ml_framework.plugins.bentoml import BentoMLProvider
    from ml_framework.plugins.feast import FeastProvider
    from ml_framework.plugins.lightgbm import LightGBMProvider

    root = work / "on-demand"
    shutil.copytree(ROOT / "specs" / "features", root / "specs" / "features")
    (root / "feature_repo").mkdir(parents=True)
    shutil.copy(ROOT / "feature_repo" / "feature_store.yaml", root / "feature_repo" / "feature_store.yaml")
    inputs = '["customer_profile:home_country", "customer_txn_stats:amount_mean_7d", "transaction_features:amount"]'
    (root / "specs" / "models.yaml").write_text(textwrap.dedent(f"""\
        kind: Model
        name: plain
        task: binary
        label: {{source: fraud_labels, column: is_fraud}}
        features: {inputs}
        trainer: {{backend: lightgbm, params: {{num_leaves: 15, num_boost_round: 40}}}}
        ---
        kind: Model
        name: derived
        task: binary
        label: {{source: fraud_labels, column: is_fraud}}
        features: {inputs[:-1]}, "spend_ratios:*"]
        trainer: {{backend: lightgbm, params: {{num_leaves: 15, num_boost_round: 40}}}}
        ---
        kind: OnDemandFeatureView
        name: spend_ratios
        views: [transaction_features, customer_txn_stats]
        features:
          amount_vs_mean_7d: {{dtype: float64, expr: "transaction_features.amount / customer_txn_stats.amount_mean_7d"}}
          log_amount: {{dtype: float64, expr: "log1p(clip(transaction_features.amount, 0, None))"}}
        """))
    subprocess.run([sys.executable, str(ROOT / "scripts" / "generate_data.py"), "--out", str(root / "data"),
                    "--rows", "4000", "--end", "2024-07-01"], check=True, capture_output=True)
    harness = Harness(root, {"feast": FeastProvider(), "lightgbm": LightGBMProvider(), "bentoml": BentoMLProvider()})
    try:
        from ml_framework.plugins.bentoml.testing import deployment_spec, free_port

        entity = "input: {entity_keys: [customer_id], raw_features: true}\n"
        for name in ("plain", "derived"):
            (root / "specs" / f"deploy-{name}.yaml").write_text(
                deployment_spec(f"{name}-api", model=name, port=free_port(), extra=entity))
        report = harness.apply()
        assert report.ok, [o for o in report.outcomes if o.outcome != "succeeded"]
        urls = {name: harness.store.get(f"deployment.{name}-api").outputs["url"] + "/predict"
                for name in ("plain", "derived")}
        import pandas as pd

        customers = pd.read_parquet(root / "data" / "customer_txn_stats.parquet")["customer_id"].unique()[:64]
        amounts = pd.read_parquet(root / "data" / "transactions.parquet")["amount"].head(len(customers))
        bodies = [json.dumps({"entity_keys": {"customer_id": int(c)}, "features": {"amount": float(a)}})
                  for c, a in zip(customers, amounts)]
        rows = []
        for name, url in urls.items():
            measure(url, bodies, 2, 1.0, work)
        for connections in (1, 16):
            for name, url in urls.items():
                r = max((measure(url, bodies, connections, args.duration, work) for _ in range(args.rounds)),
                        key=lambda x: x["rps"])
                rows.append((name, connections, f"{r['rps']:.0f}", f"{r['p50']:.2f}", f"{r['p99']:.2f}", r["failed"]))
        print("\n== on-demand features: the same requests (entity key + the amount), a model without and with "
              "two derived features ==")
        print(table(rows, ("model", "conns", "req/s", "p50 ms", "p99 ms", "failed")))
        by = {(r[0], r[1]): float(r[3]) for r in rows}
        print(f"added p50 at 1 connection: {by[('derived', 1)] - by[('plain', 1)]:.3f} ms")
    finally:
        harness.destroy()
        harness.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per measurement")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--changes", type=int, default=40, help="canary weight changes under load")
    parser.add_argument("--quick", action="store_true", help="3s measurements, 1 round")
    parser.add_argument("--skip-feast", action="store_true")
    parser.add_argument("--alone", action="store_true", help="servers: also measure each server alone (the "
                        "others stopped with SIGSTOP) and alone with its supervisor process stopped")
    parser.add_argument("--only", choices=["servers", "dissect", "batching", "weights", "feast", "on-demand"],
                        action="append")
    args = parser.parse_args()
    if args.quick:
        args.duration, args.rounds, args.changes = 3.0, 1, 20
    only = set(args.only or ["servers", "batching", "weights", "feast", "on-demand"])
    if args.skip_feast:
        only.discard("feast")
    work = Path(tempfile.mkdtemp(prefix="ml-bench-serving-"))
    os.environ["BENTOML_HOME"] = str(work / "bentoml")
    os.environ["BENTOML_DO_NOT_TRACK"] = "True"
    os.environ.pop("ML_STATE_URL", None)
    print(f"bench_serving: {os.cpu_count()} CPUs, load by {'wrk' if WRK else 'a Python client (install wrk)'}, "
          f"work dir {work}")
    from ml_framework.testing.harness import Harness
    from ml_framework.plugins.bentoml import BentoMLProvider
    from ml_framework.plugins.bentoml.testing import stop_all_servers
    from ml_framework.plugins.lightgbm import LightGBMProvider
    from ml_framework.plugins.models.testing import feature_providers, write_project

    root = write_project(work / "proj", rows=3000, gates=())
    harness = Harness(root, {**feature_providers(), "lightgbm": LightGBMProvider(), "bentoml": BentoMLProvider()})
    try:
        assert harness.apply().ok
        tag = harness.store.get("model.fraud").outputs["bentoml_tag"]
        if "servers" in only:
            bench_servers(args, work, harness, root, tag)
        if "dissect" in only:
            bench_dissect(args, work, tag)
        if "batching" in only:
            bench_batching(args, work, harness, root)
        if "weights" in only:
            if harness.store.get("deployment.ours") is None:
                deploy(root, harness, "ours")
            bench_weight_changes(args, harness, root)
        if "feast" in only:
            bench_feast(args, work)
        if "on-demand" in only:
            bench_on_demand(args, work)
    finally:
        harness.destroy()
        harness.close()
        stop_all_servers([root, work / "feast", work / "on-demand"])
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
