"""`BentoMLProvider`: the Deployment kind on BentoML — a real `bentoml serve` process per deployment,
and model versions rolled out inside it step by step, measured, and rolled back when worse.

apply, in order:

1. resolve the model reference in the registry (``fraud`` → production, ``fraud@candidate``,
   ``fraud:v3``) to a version and its BentoML tag;
2. make sure the service runs with the spec's settings: start it (or restore it, after it died, with
   the version that served), or restart it when settings baked into the process changed (a new port is
   started before the old one stops); wait for ``/readyz`` and every worker before going on;
3. if an earlier rollout was interrupted: resume it at its step (same candidate), or drop it;
4. if the resolved version is not the one serving: roll it out with the spec's strategy
   (framework/rollout.py), checkpointing progress in state after every decision. A failed analysis or a
   version that fails to load rolls back (stable never stopped serving) and fails the apply; the version
   is remembered and not retried until the reference resolves to another one (or ``ml rollback --to``).

Every change of what serves is a *revision* (``outputs.revisions``); ``ml rollback deployment/NAME
[--to N]`` switches back instantly (:meth:`BentoMLProvider.rollback`), ``ml history deployment/NAME``
lists them. BentoML is imported only by the service process, never by `ml` itself.
"""

from __future__ import annotations

import shutil
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

__all__ = ["BentoMLProvider"]


class BentoMLProvider(BaseProvider):
    name: ClassVar[str] = "bentoml"
    kinds: ClassVar[tuple[str, ...]] = ("Deployment",)
    capabilities: ClassVar[tuple[str, ...]] = ("configure", "status", "rollback", "preflight", "resource_use", "move")

    def __init__(self) -> None:
        self.project_dir: Path | None = None
        self.backend_settings: dict[str, Any] = {}

    def configure(self, project_dir: Path, settings: Mapping[str, Any]) -> None:
        self.project_dir = Path(project_dir)
        self.backend_settings = dict(settings or {})

    def config_model(self, kind: str):
        from .config import BentoMLSettings

        return BentoMLSettings if kind == "Deployment" else None

    # -- helpers -----------------------------------------------------------------------------------------------
    @staticmethod
    def _spec(spec: Mapping[str, Any]):
        from ml_framework.plugins.serving.kinds import Deployment

        return Deployment.model_validate(dict(spec))

    @staticmethod
    def _settings(spec: Mapping[str, Any], config=None):
        from .config import BentoMLSettings

        if isinstance(config, BentoMLSettings):
            return config
        return BentoMLSettings.model_validate({k: v for k, v in dict(spec.get("serving") or {}).items()
                                               if k != "backend"})

    @staticmethod
    def _folder(project_dir: Path, name: str) -> Path:
        from .codegen import service_dir

        return service_dir(project_dir, name)

    def fingerprint(self, request: FingerprintRequest) -> Mapping[str, str]:
        from .codegen import RUNTIME_VERSION

        return {"serving_runtime": RUNTIME_VERSION}

    def preflight(self, request: ApplyRequest, project_dir: Path) -> None:
        """Before the apply starts anything (models train first): the API keys a guarded service needs."""
        _check_api_keys(request.resource.spec.get("auth"), project_dir)

    # -- read (refresh) ------------------------------------------------------------------------------------------
    def read(self, request: ReadRequest) -> ReadResult:
        from .process import is_ready, is_running, orphan_workers

        recorded = request.recorded
        outputs = dict(recorded.outputs or {})
        folder = self._folder(request.project_dir, recorded.spec["name"])
        if not is_running(outputs.get("pid"), folder):
            orphans = orphan_workers(folder, outputs.get("pid"))
            if orphans:  # the server was killed but its workers still answer on the port: say what listens
                return ReadResult(exists=True, outputs=outputs, drift={"server": (
                    f"pid {outputs.get('pid')} serving",
                    f"pid {outputs.get('pid')} gone; its worker(s) {', '.join(map(str, sorted(orphans)))} still "
                    "answer without a supervisor (apply stops them and starts the service again)")})
            return ReadResult(exists=False)
        if not outputs.get("url") or not is_ready(outputs["url"]):
            return ReadResult(exists=False)
        drift: dict[str, tuple[Any, Any]] = {}
        serving = (outputs.get("stable") or {}).get("version")
        try:
            from ml_framework.plugins.models.registry import registry_for

            wanted = registry_for(request.services, request.project_dir).release_target(str(recorded.spec["model"])).label
        except MLError:
            wanted = serving  # the registry cannot say: apply will, with a clear error
        held = set(outputs.get("skip") or [])
        if serving and wanted != serving and wanted not in held and not outputs.get("rollout"):
            drift["model_version"] = (serving, wanted)
        return ReadResult(exists=True, outputs=outputs, drift=drift)

    def move(self, request, ctx):
        """A renamed deployment restarts under its new name on the old process's socket, serving the same
        version (no rollout; revisions and prediction log kept). Idempotent: once the old process and
        folder are gone, the service under the new name is left as it is."""
        import dataclasses

        from ml_framework.contract import ApplyRequest

        from .deploy import DeploymentApply

        old_name = str(request.recorded.spec.get("name") or request.recorded.address.split(".", 1)[1])
        prior = dataclasses.replace(request.recorded, address=request.resource.address)
        run = DeploymentApply(self, ApplyRequest(action="update", resource=request.resource, prior=prior), ctx)
        return run.take_over(old_name, request.recorded.address)

    def resource_use(self, resource):
        """A running service holds a core per worker."""
        from ml_framework.contract import ResourceUse

        workers = int(((resource.spec.get("serving") or {}).get("workers")) or 1)
        return ResourceUse(apply_cpus=1.0, running_cpus=float(workers))

    # -- plan ------------------------------------------------------------------------------------------------------
    def plan(self, request: PlanRequest) -> PlanResult:
        from ml_framework.plugins.serving.rollout import describe

        from .config import NO_RESTART, RELOAD_PATHS, RESTART_PATHS

        reasons: list[str] = []
        reload = sorted({c.path.split(".")[0] for c in request.changes if c.path.split(".")[0] in RELOAD_PATHS})
        if reload:
            reasons.append(f"{' and '.join(reload)} applied to the running service without a restart")
        restart = sorted({c.path for c in request.changes if c.path.split(".")[0] in RESTART_PATHS
                          and c.path not in {f"serving.{n}" for n in NO_RESTART}})
        if restart:
            port_moves = any(c.path == "serving.port" for c in request.changes)
            reasons.append(f"restarts the service ({', '.join(restart[:3])}"
                           + (f" and {len(restart) - 3} more" if len(restart) > 3 else "") + ")"
                           + ("; the new port starts before the old one stops" if port_moves else
                              "; the new process takes over the listening socket and the old one stops once the "
                              "new one is ready (connections wait, none is refused; where the OS cannot hand a "
                              "socket over, requests fail while it restarts)"))
        prior = dict(request.prior.outputs or {})
        pending = prior.get("rollout") or {}
        if pending.get("phase") in ("running", "paused", "interrupted"):
            reasons.append(f"the rollout of {(pending.get('candidate') or {}).get('version')} stopped at step "
                           f"{int(pending.get('step', 0)) + 1} ({pending.get('phase')}): applying resumes it")
        last = prior.get("last_rollout") or {}
        if request.retry and last.get("outcome") == "rolled_back":
            reasons.append(f"--retry: rolls {last.get('version')} out again (it was rolled back: "
                           f"{str(last.get('reason') or '')[:120]})")
        if request.prior.status != "applied" and last.get("outcome") == "rolled_back":
            reasons.append(f"the last rollout ({last.get('version')}) was rolled back: {last.get('reason', '')}; "
                           f"applying keeps {(prior.get('stable') or {}).get('version')} unless the model resolves "
                           "to another version")
        if any(c.path == "model" for c in request.changes) or not request.changes:  # the model may move
            from .revisions import analysis_context

            context = analysis_context((prior.get("stable") or {}).get("tag"), self.project_dir)
            rollout = request.resource.spec.get("rollout") or {}
            reasons.append(f"a new model version is rolled out by {describe(rollout, **context)}")
            from ml_framework.plugins.serving.rollout import expected_seconds

            waits = expected_seconds(rollout)
            return PlanResult(replace_paths=(), reasons=tuple(reasons), estimate_seconds=waits + 5.0 if waits else None)
        return PlanResult(replace_paths=(), reasons=tuple(reasons))

    # -- apply --------------------------------------------------------------------------------------------------------
    def apply(self, request: ApplyRequest, ctx: ApplyContext) -> ApplyResult:
        from .deploy import DeploymentApply

        return DeploymentApply(self, request, ctx).run()

    # -- delete -------------------------------------------------------------------------------------------------------
    def delete(self, request: DeleteRequest, ctx: ApplyContext) -> None:
        from .process import stop_server

        outputs = dict(request.recorded.outputs or {})
        folder = self._folder(ctx.project_dir, request.recorded.spec["name"])
        ctx.progress(f"stopping the service (pid {outputs.get('pid')})")
        stop_server(outputs.get("pid"), folder)
        pid_file = folder / "server.pid"
        if pid_file.is_file():  # a server started by an apply that crashed before recording it
            try:
                stop_server(int(pid_file.read_text().strip()), folder)
            except ValueError:
                pass
        shutil.rmtree(folder, ignore_errors=True)  # the prediction log stays: monitors read it
        try:  # production no longer waits for this deployment to roll versions out
            from ml_framework.plugins.models.registry import registry_for

            registry_for(ctx.services, ctx.project_dir).follow(request.recorded.address, None)
        except MLError:
            pass

    # -- extra operations used by `ml status` / `ml rollback` ---------------------------------------------------------
    def status(self, record, project_dir: Path) -> dict[str, Any]:
        """What runs for a recorded deployment: process, readiness, workers, traffic."""
        from .control import read_control, worker_statuses
        from .process import is_ready, is_running

        outputs = dict(record.outputs or {})
        folder = self._folder(project_dir, record.spec["name"])
        running = is_running(outputs.get("pid"), folder)
        control = read_control(folder) or {}
        workers = worker_statuses(folder, outputs.get("pid")) if running else []
        cost = None
        if running:
            from ml_framework.project import Project

            from .running_cost import service_cost

            try:
                pricing = Project.load(project_dir).pricing
            except Exception:  # noqa: BLE001 - the cost is worth showing with default prices
                pricing = None
            cost = service_cost(Path(project_dir), record.spec["name"], folder, outputs.get("pid"), pricing)
        return {"running": running, "ready": bool(running and outputs.get("url") and is_ready(outputs["url"])),
                "cost": cost,
                "url": outputs.get("url"), "pid": outputs.get("pid"), "workers": len(workers),
                "stable": (control.get("stable") or outputs.get("stable") or {}).get("version"),
                "candidate": (control.get("candidate") or {}).get("version"), "mode": control.get("mode"),
                "weight": control.get("weight"), "step": control.get("step"), "revision": outputs.get("revision"),
                "errors": {t: m for w in workers for t, m in (w.get("errors") or {}).items()}}

    def rollback(self, record, project_dir: Path, *, to: int | None = None, progress=None,
                 reason: str = "ml rollback") -> dict[str, Any]:
        """Switch instantly to revision `to` (default: the last one that served before the current one);
        returns the new outputs to record. Any rollout in progress is aborted."""
        from .control import LoadError, traffic, wait_for_generation, write_control
        from .process import is_running
        from .revisions import MAX_REVISIONS, next_revision, now, rewrite_service, rollback_target

        outputs = dict(record.outputs or {})
        folder = self._folder(project_dir, record.spec["name"])
        revisions = list(outputs.get("revisions") or [])
        current = outputs.get("stable") or {}
        target = rollback_target(revisions, current, to)
        if not is_running(outputs.get("pid"), folder):
            raise MLError(f"deployment {record.spec['name']} is not running", hint="run `ml apply` to start it")
        from ml_framework.plugins.models.artifacts import model_exists

        if not model_exists(target["tag"], project_dir):
            raise MLError(f"revision {target['revision']} served {target['tag']}, which is no longer in the "
                          "BentoML model store")
        settings = self._settings(record.spec)
        generation = write_control(folder, traffic(target))
        try:
            wait_for_generation(folder, generation, settings.workers, timeout=30, server_pid=outputs.get("pid"))
        except LoadError as exc:
            write_control(folder, traffic(current))
            raise MLError(f"cannot roll back: {exc.message}; {current.get('version')} keeps serving") from None
        if progress:
            progress(f"now serving {target['version']} (revision {target['revision']})")
        new = dict(outputs)
        stable = {k: target[k] for k in ("version", "tag", "ref") if k in target}
        number = next_revision(revisions)
        skip = set(outputs.get("skip") or [])
        if current.get("version") and current.get("version") != stable["version"]:
            skip.add(current["version"])  # the version rolled back from is not rolled out again by itself
        aborted = (outputs.get("rollout") or {}).get("candidate") or {}
        if aborted.get("version") and aborted.get("version") != stable["version"]:
            skip.add(aborted["version"])  # nor is the candidate of a rollout this aborts
        skip.discard(stable["version"])
        revisions.append({"revision": number, **stable, "strategy": "rollback", "outcome": "rollback", "at": now(),
                          "detail": f"{reason}: back to revision {target['revision']} from {current.get('version')}"})
        if outputs.get("rollout"):
            new["last_rollout"] = {"version": outputs["rollout"].get("candidate", {}).get("version"),
                                   "outcome": "aborted", "reason": reason, "at": now()}
        new.update(stable=stable, model_version=stable["version"], stable_version=stable["version"],
                   versions=[stable["version"]], revision=number, revisions=revisions[-MAX_REVISIONS:],
                   skip=sorted(skip), rollout=None)
        new.pop("candidate_version", None)
        rewrite_service(folder, record.spec, stable["tag"])
        model = str(record.spec.get("model") or "")
        if model and "@" not in model and ":" not in model and current.get("version") != stable["version"]:
            # The registry follows what serves: batch scoring and the next plan see the version users get.
            from ml_framework.plugins.models.registry import registry_for

            try:
                old = registry_for(None, project_dir).restore_production(model, stable["version"], record.address, reason)
                if progress and old != int(str(stable["version"]).lstrip("v")):
                    progress(f"registry: {model}@production → {stable['version']} (what users get now)")
            except MLError as exc:
                if progress:
                    progress(f"registry not updated: {exc.message}")
        return new


def _check_api_keys(auth: Mapping[str, Any] | None, project_dir: Path) -> None:
    """At plan, before anything trains: a deployment with auth needs at least one key where it says."""
    import os

    if not auth:
        return
    env, file = auth.get("api_keys_env"), auth.get("api_keys_file")
    if env and any(k.strip() for k in (os.environ.get(env) or "").split(",")):
        return
    path = (Path(project_dir) / file) if file else None
    if path is not None and path.is_file() and any(
            line.strip() and not line.lstrip().startswith("#") for line in path.read_text(encoding="utf-8").splitlines()):
        return
    where = " or ".join(filter(None, [env and f"${env}", file and str(file)]))
    raise MLError(f"auth: no API key in {where}: the service would refuse every request",
                  hint=(f"export {env}=KEY1,KEY2" if env else f"write one key per line to {file}") + ", then apply again")
