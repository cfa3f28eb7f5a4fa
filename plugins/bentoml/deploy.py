"""One apply of a Deployment on the bentoml backend (see plugins/bentoml/provider.py for the steps):
the service process made to match the spec, then the resolved model version rolled out through
framework/rollout.py with :class:`ServiceRolloutIO` — control.json for traffic, the prediction log for
analysis data, the engine's checkpoints for progress."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any, Mapping

from ml_framework.contract import ApplyContext, ApplyRequest, ApplyResult
from ml_framework.errors import MLError

from .config import NO_RESTART
from .revisions import MAX_REVISIONS, feature_refs, next_revision, now, rewrite_service, version_ref

__all__ = ["DeploymentApply", "ServiceRolloutIO", "RolloutFailed"]


class RolloutFailed(MLError):
    """The rollout was rolled back (or paused): stable keeps serving."""


class DeploymentApply:
    """One apply of one deployment (see the module docstring for the steps)."""

    def __init__(self, provider, request: ApplyRequest, ctx: ApplyContext):
        self.provider = provider
        self.request = request
        self.ctx = ctx
        self._recorded: dict[str, Any] | None = None  # recorded resources, read on first use
        self.resource = request.resource
        self.spec = provider._spec(request.resource.spec)
        self.settings = provider._settings(request.resource.spec, request.resource.config)
        self.name = self.spec.name
        self.project_dir = Path(ctx.project_dir)
        self.folder = provider._folder(self.project_dir, self.name)
        self.prior = dict(request.prior.outputs or {}) if request.prior is not None else {}
        self.outputs: dict[str, Any] = {k: v for k, v in self.prior.items()}
        self.outputs.setdefault("revisions", [])
        self._releases: str | None = None  # the model whose production this deployment follows (set by _resolve)

    # -- configuration ---------------------------------------------------------------------------------------
    def _records(self) -> dict[str, Any]:
        """The recorded resources by address, read once per apply (the run's open state store; the
        project's own when the caller lent none)."""
        if self._recorded is None:
            if self.ctx.state is not None:
                self._recorded = {r.address: r for r in self.ctx.state.list_resources()}
            else:
                from ml_framework.project import Project

                store = Project.load(self.project_dir).open_state()
                try:
                    self._recorded = {r.address: r for r in store.list_resources()}
                finally:
                    store.close()
        return self._recorded

    def _entity_dtypes(self, target) -> dict[str, str]:
        """Join key -> dtype for input.entity_keys; checks they cover what the model's features need (or
        that those features may be sent raw). Fills ``self.feature_views`` (view -> join keys)."""
        keys = list(self.spec.input.entity_keys)
        self.feature_views: dict[str, list[str]] = {}
        if not keys:
            return {}
        dtypes = {k: "int64" for k in keys}
        records = self._records()
        join_of = {}
        for record in records.values():
            if record.kind == "Entity":
                join = (record.spec.get("join_keys") or [record.spec.get("name")])[0]
                join_of[record.spec.get("name")] = join
                if join in dtypes:
                    dtypes[join] = str(record.spec.get("dtype") or "int64")
        for record in records.values():
            if record.kind == "FeatureView":
                self.feature_views[record.spec["name"]] = [join_of.get(e, e) for e in record.spec.get("entities") or []]
        needed: list[str] = []
        for ref in feature_refs(target.bentoml_tag, self.project_dir):
            for join in self.feature_views.get(ref.partition(":")[0], []):
                if join not in needed:
                    needed.append(join)
        missing = [k for k in needed if k not in dtypes]
        if missing and not self.spec.input.raw_features:
            raise MLError(f"{target.ref}'s features are keyed by {', '.join(needed)}, but input.entity_keys lists "
                          f"{', '.join(keys)}", hint=f"add {', '.join(missing)} to input.entity_keys")
        if missing:
            self.ctx.progress(f"note: features keyed by {', '.join(missing)} are not fetched: requests send them "
                              "in features")
        return dtypes

    def _feature_access(self):
        """The feature-access seam (provided by the feature store's plugin), checked, when requests carry
        entity keys; None otherwise."""
        if not self.spec.input.entity_keys:
            return None
        from ml_framework.errors import PluginError

        try:
            access = self.ctx.services.get("feature_access")
        except PluginError as exc:
            raise MLError(f"input.entity_keys needs a feature store: {exc.message}",
                          hint="install/enable the feast plugin, or send raw features (input.raw_features)") from None
        access.check()
        return access

    def _feature_lookup(self) -> str:
        if self.settings.feature_lookup != "auto" or not self.spec.input.entity_keys:
            return self.settings.feature_lookup
        try:
            return "inline" if self._feature_access().inline_lookups else "thread"
        except MLError:
            return "thread"

    def _auth(self) -> dict[str, Any] | None:
        auth = self.spec.auth
        if auth is None:
            return None
        import os

        found = 0
        if auth.api_keys_env:
            found += len([k for k in (os.environ.get(auth.api_keys_env) or "").split(",") if k.strip()])
        path = None
        if auth.api_keys_file:
            path = (self.project_dir / auth.api_keys_file).resolve()
            if path.is_file():
                found += len([line for line in path.read_text(encoding="utf-8").splitlines()
                              if line.strip() and not line.lstrip().startswith("#")])
        if not found:
            where = " or ".join(filter(None, [auth.api_keys_env and f"${auth.api_keys_env}",
                                              auth.api_keys_file and str(path)]))
            raise MLError(f"auth: no API key found in {where}: the service would refuse every request",
                          hint="set the environment variable (comma-separated keys) or write the keys file, then apply")
        return {"env": auth.api_keys_env, "file": str(path) if path else None, "header": auth.header}

    def _config(self, target) -> dict[str, Any]:
        from ml_framework.plugins.serving.prediction_log import log_dir
        from ml_framework.spec.kinds import parse_duration

        batching = self.settings.batching.model_dump() if self.settings.batching else None
        return {"deployment": self.name, "project_dir": str(self.project_dir.resolve()),
                "service_dir": str(self.folder.resolve()), "route": "/predict",
                "input": {"entity_keys": self._entity_dtypes(target), "raw_features": bool(self.spec.input.raw_features),
                          "on_unknown_entity": self.spec.input.on_unknown_entity},
                "feature_access": self._feature_access() is not None,
                "max_request_bytes": self.settings.max_request_bytes, "batching": batching,
                "workers": self.settings.workers, "fast_path": self.settings.fast_path,
                "feature_lookup": self._feature_lookup(),
                "feature_rules": self._feature_rules(target),
                "log_predictions": self.settings.log_predictions,
                "explain": self.spec.explain.model_dump(),
                "decision_log": {"retention_s": parse_duration(self.spec.decision_log.retention),
                                 "max_bytes": self.spec.decision_log.max_mb * 1024 * 1024},
                "log_dir": str(log_dir(self.project_dir, self.name).resolve())}

    def _feature_rules(self, target) -> dict[str, dict[str, Any]]:
        """Feature name -> the per-value rules of its contract (``checks``), from the feature views the
        version was trained on: requests are held to the contract the training data was checked against."""
        from ml_framework.plugins.features.rules import value_rules

        refs = feature_refs(target.bentoml_tag, self.project_dir)
        if not refs:
            return {}
        records = self._records()
        rules: dict[str, dict[str, Any]] = {}
        for ref in refs:
            view, _, feature = ref.partition(":")
            record = records.get(f"featureview.{view}")
            features = (record.spec.get("features") or {}) if record is not None else {}
            for name, declared in features.items():
                if feature in ("*", name):
                    found = value_rules((declared or {}).get("checks"))
                    if found:
                        rules[name] = found
        return rules

    @staticmethod
    def _config_hash(config: Mapping[str, Any], settings) -> str:
        from .codegen import RUNTIME_VERSION

        baked = {k: v for k, v in settings.model_dump(mode="json").items() if k not in NO_RESTART}
        text = json.dumps({"config": config, "settings": baked, "runtime": RUNTIME_VERSION}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    # -- the steps --------------------------------------------------------------------------------------------
    def _resolve(self):
        from ml_framework.plugins.models.artifacts import model_exists
        from ml_framework.plugins.models.registry import registry_for

        registry = registry_for(self.ctx.services, self.project_dir)
        follows = self.spec.model if "@" not in self.spec.model and ":" not in self.spec.model else None
        registry.follow(self.ctx.address, follows)  # production moves only once this deployment rolls it out
        self._releases = follows
        if follows:
            self._retry_release(registry, follows)
        version = registry.release_target(self.spec.model)
        if version.status != "accepted":
            raise MLError(f"{self.spec.model} resolves to {version.ref}, which is {version.status}",
                          hint="deploy an accepted version (ml models list)")
        if not version.bentoml_tag or not model_exists(version.bentoml_tag, self.project_dir):
            raise MLError(f"{version.ref} has no artifact in the BentoML model store ({version.bentoml_tag})",
                          hint="retrain it with ml apply")
        return version

    def _retry_release(self, registry, model: str) -> None:
        """``ml apply --retry`` of this deployment: release the model's candidate again when its rollout was
        rolled back here; and heal a production alias that names a version this deployment rolled back
        (state from before releases existed) — production always names what serves."""
        skip = set(self.prior.get("skip") or [])
        stable = (self.prior.get("stable") or {}).get("version")
        aliases = registry.aliases(model)
        production = aliases.get("production")
        if production is not None and f"v{production}" in skip and stable and stable != f"v{production}":
            registry.restore_production(model, stable, self.ctx.address,
                                        f"v{production}'s rollout was rolled back here")
            self.ctx.progress(f"registry: {model}@production back to {stable} (v{production} was rolled back here)")
        if not getattr(self.request, "retry", False):
            return
        candidate = aliases.get("candidate")
        last = self.prior.get("last_rollout") or {}
        failed_here = f"v{candidate}" in skip or (last.get("version") == f"v{candidate}"
                                                   and last.get("outcome") in ("rolled_back", "abandoned", "aborted"))
        if candidate is not None and candidate != production and failed_here:
            registry.release(model, candidate, f"v{candidate} released again: ml apply --retry {self.ctx.address}")
            self.outputs["skip"] = sorted(skip - {f"v{candidate}"})
            self.ctx.progress(f"retrying the rollout of v{candidate} (--retry)")

    def _released(self, wanted: Mapping[str, Any], how: str) -> None:
        """Tell the registry what serves now: production follows a successful rollout of a released version."""
        if not self._releases:
            return
        from ml_framework.plugins.models.registry import registry_for

        registry = registry_for(self.ctx.services, self.project_dir)
        if registry.released(self._releases, wanted["version"], self.ctx.address, how):
            self.ctx.progress(f"registry: {self._releases}@production → {wanted['version']}")

    def _release_failed(self, wanted: Mapping[str, Any], why: str) -> None:
        if not self._releases:
            return
        from ml_framework.plugins.models.registry import registry_for

        registry_for(self.ctx.services, self.project_dir).release_failed(self._releases, wanted["version"],
                                                                         self.ctx.address, why)

    def _checkpoint(self) -> None:
        self.ctx.checkpoint(self.outputs)

    def _revision(self, target: Mapping[str, Any], strategy: str, outcome: str, detail: str = "") -> int:
        revisions = list(self.outputs.get("revisions") or [])
        number = next_revision(revisions)
        revisions.append({"revision": number, **{k: target[k] for k in ("version", "tag", "ref") if k in target},
                          "strategy": strategy, "outcome": outcome, "at": now(), "detail": detail})
        self.outputs["revisions"] = revisions[-MAX_REVISIONS:]
        return number

    def _set_revision_outcome(self, number: int, outcome: str, detail: str) -> None:
        for revision in self.outputs.get("revisions") or []:
            if revision.get("revision") == number:
                revision.update(outcome=outcome, detail=detail, at=now())

    def _serving(self, stable: Mapping[str, Any], revision: int | None = None) -> None:
        stable = {k: stable[k] for k in ("version", "tag", "ref") if k in stable}
        self.outputs.update(stable=stable, model=self.spec.model_name, model_version=stable["version"],
                            stable_version=stable["version"], versions=[stable["version"]])
        if revision is not None:
            self.outputs["revision"] = revision
        self.outputs.pop("candidate_version", None)

    def _start(self, stable: Mapping[str, Any], config: Mapping[str, Any], config_hash: str, *,
               listener: int | None = None) -> None:
        from .codegen import class_name, write_service_files
        from .control import traffic, write_control
        from .process import start_server

        self.folder.mkdir(parents=True, exist_ok=True)
        write_service_files(self.folder, deployment=self.name, settings=self.settings.model_dump(), config=config,
                            stable_tag=stable["tag"])
        generation = write_control(self.folder, {**traffic(stable), "guards": self._guards()})
        server = start_server(self.folder, class_name(self.name), host=self.settings.host, port=self.settings.port,
                              workers=self.settings.workers, generation=generation,
                              timeout=self.settings.startup_timeout_s, progress=self.ctx.progress,
                              project_dir=self.project_dir, listener=listener)
        self.outputs.pop("reuseport", None)
        self.outputs.update(url=server.url, host=server.host, port=server.port, pid=server.pid,
                            service_dir=str(self.folder), config_hash=config_hash, workers=self.settings.workers)

    def _guards(self) -> dict[str, Any]:
        """API keys and the rate limit: in control.json, so a change reaches the running workers at once."""
        rate = self.spec.rate_limit.model_dump() if self.spec.rate_limit else None
        return {"auth": self._auth(), "rate_limit": rate}

    def _reload_guards(self) -> None:
        """Hand changed guards to the running workers (a new control generation, acknowledged by each)."""
        from .control import read_control, wait_for_generation, write_control

        current = read_control(self.folder) or {}
        guards = self._guards()
        if current.get("guards") == guards:
            return
        document = {k: v for k, v in current.items() if k not in ("generation", "written_at")}
        generation = write_control(self.folder, {**document, "guards": guards})
        wait_for_generation(self.folder, generation, self.settings.workers, timeout=30,
                            server_pid=self.prior.get("pid"))
        self.ctx.progress("API keys / rate limit applied to the running service (no restart)")

    def _ensure_running(self, target) -> str:
        """Start, restore or restart the service as needed. Returns what happened (for the message)."""
        from .process import drain_and_stop, is_ready, is_running, stop_server, take_listener

        config = self._config(target)
        config_hash = self._config_hash(config, self.settings)
        pid = self.prior.get("pid")
        running = is_running(pid, self.folder) and bool(self.prior.get("url")) and is_ready(self.prior["url"])
        stable = self.prior.get("stable")
        from ml_framework.plugins.models.artifacts import model_exists

        if not running:
            if stable and not model_exists(stable.get("tag"), self.project_dir):
                stable = None  # what served is gone from the store: start on the target instead
            if pid:
                stop_server(pid, self.folder)  # a half-dead server (not ready): clear it first
            first = stable or version_ref(target)
            self._start(first, config, config_hash)
            if stable is None:
                number = self._revision(first, "initial", "deployed", "first deployment")
                self._serving(first, number)
                self._released(first, "first deployment")
                return f"started on {self.outputs['url']} serving {first['version']}"
            number = self._revision(first, "restore", "restored", "the service was not running: restarted")
            self._serving(first, number)
            self.outputs["rollout"] = None if not self.prior.get("rollout") else self.prior["rollout"]
            return f"restarted on {self.outputs['url']} (it was not running), serving {first['version']}"
        if config_hash == self.prior.get("config_hash"):
            self._reload_guards()
        if config_hash != self.prior.get("config_hash"):
            old_pid, old_port = pid, self.prior.get("port")
            listener = (take_listener(old_pid, old_port) if old_port == self.settings.port
                        and self.settings.host == self.prior.get("host") else None)
            if listener is not None:
                self.ctx.progress(f"starting the service with new settings on pid {old_pid}'s listening socket "
                                  f"(port {old_port}), then stopping the old process")
                self._start(stable, config, config_hash, listener=listener)
                drain_and_stop(old_pid, self.folder)
            elif old_port == self.settings.port:
                self.ctx.progress(f"restarting the service (pid {old_pid}) with new settings")
                stop_server(old_pid, self.folder)
                self._start(stable, config, config_hash)
            else:
                self.ctx.progress(f"starting the service on port {self.settings.port}, then stopping port {old_port}")
                self._start(stable, config, config_hash)
                stop_server(old_pid, self.folder)
            self._serving(stable)
            return f"restarted with new settings on {self.outputs['url']}"
        self._serving(stable)
        return "running"

    def take_over(self, old_name: str, old_address: str) -> dict[str, Any]:
        """A renamed deployment (``kind: Moved``): the service restarts under its new name on the old
        process's listening socket (connections queue, none is refused), serving the same version — no
        rollout, the revisions kept; its prediction log moves along; the old process drains and stops."""
        import shutil

        from ml_framework.plugins.models.registry import registry_for
        from ml_framework.plugins.serving.prediction_log import log_dir

        from .process import drain_and_stop, is_ready, is_running, stop_server, take_listener

        pending = self.prior.get("rollout") or {}
        if pending.get("phase") in ("running", "paused", "interrupted"):
            raise MLError(f"deployment {old_name} is in the middle of a rollout: finish it (ml apply) before "
                          "renaming it")
        old_folder = self.provider._folder(self.project_dir, old_name)
        stable = self.prior.get("stable")
        target = self._resolve()
        registry_for(self.ctx.services, self.project_dir).follow(old_address, None)
        self._write_about()
        config = self._config(target)
        config_hash = self._config_hash(config, self.settings)
        pid, port, host = self.prior.get("pid"), self.prior.get("port"), self.prior.get("host")
        running = is_running(pid, old_folder) and bool(self.prior.get("url")) and is_ready(self.prior["url"])
        if stable is None or not running:  # nothing serves under the old name
            if pid:
                stop_server(pid, old_folder)
            already = self._server_in_folder()
            if already is not None:  # renamed by an interrupted apply: that service stays
                self.outputs.update(already)
                self._serving(stable or version_ref(target))
                return self.outputs
            return self._renamed(old_folder, old_name, target if stable is None else stable, config, config_hash)
        listener = take_listener(pid, port) if port == self.settings.port and host == self.settings.host else None
        if listener is not None:
            self.ctx.progress(f"starting {self.name} on {old_name}'s listening socket (port {port}), then "
                              f"stopping {old_name} (pid {pid})")
            self._start(stable, config, config_hash, listener=listener)
            drain_and_stop(pid, old_folder)
        else:
            self.ctx.progress(f"restarting {old_name} (pid {pid}) as {self.name}")
            stop_server(pid, old_folder)
            self._start(stable, config, config_hash)
        self._serving(stable)
        old_logs, new_logs = log_dir(self.project_dir, old_name), log_dir(self.project_dir, self.name)
        if old_logs.is_dir():  # the log of what was served under the old name stays with the deployment
            new_logs.mkdir(parents=True, exist_ok=True)
            for item in old_logs.iterdir():
                item.rename(new_logs / item.name)
            shutil.rmtree(old_logs, ignore_errors=True)
        shutil.rmtree(old_folder, ignore_errors=True)
        return self.outputs

    def _server_in_folder(self) -> dict[str, Any] | None:
        """The ready server already running in this deployment's folder (its pid file), if any."""
        from .process import is_ready, is_running

        try:
            pid = int((self.folder / "server.pid").read_text().strip())
        except (OSError, ValueError):
            return None
        url = f"http://{self.settings.host}:{self.settings.port}"
        if not (is_running(pid, self.folder) and is_ready(url)):
            return None
        return {"pid": pid, "url": url, "host": self.settings.host, "port": self.settings.port,
                "service_dir": str(self.folder), "workers": self.settings.workers}

    def _renamed(self, old_folder, old_name, first, config, config_hash) -> dict[str, Any]:
        import shutil

        self._start(first, config, config_hash)
        self._serving(first)
        shutil.rmtree(old_folder, ignore_errors=True)
        return self.outputs

    def _write_about(self) -> None:
        """What the service's root page and /docs.json say of it beyond the contract (re-read on each
        request for them: a new description needs no restart)."""
        import os

        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / "about.json"
        tmp = path.with_name(f".about.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"description": self.spec.description or ""}), encoding="utf-8")
        os.replace(tmp, path)

    def run(self) -> ApplyResult:
        target = self._resolve()
        wanted = version_ref(target)
        self._write_about()
        what = self._ensure_running(target)
        self._checkpoint()
        message = [what]
        stable = self.outputs["stable"]
        pending = self.outputs.get("rollout")
        if pending and pending.get("phase") in ("running", "paused", "interrupted"):
            if pending.get("candidate", {}).get("tag") == wanted["tag"] and stable.get("tag") == pending["stable"].get("tag"):
                return self._finish(self._roll_out(wanted, resume=pending), message)
            self._drop_rollout(pending, f"superseded: the model now resolves to {wanted['version']}")
        self.outputs["rollout"] = None
        if wanted["tag"] == stable.get("tag"):
            self.outputs["skip"] = []
            self._released(wanted, "serving it")
            message.append(f"{stable['version']} serving (revision {self.outputs.get('revision')})")
            return self._finish(None, message)
        if getattr(self.request, "retry", False) and wanted["version"] in (self.outputs.get("skip") or []):
            self.outputs["skip"] = sorted(set(self.outputs["skip"]) - {wanted["version"]})  # retried on purpose
        if wanted["version"] in (self.outputs.get("skip") or []):
            self._release_failed(wanted, "rolled back earlier")
            message.append(f"{wanted['version']} is not rolled out again: it was rolled back "
                           f"(see ml history deployment/{self.name}); {stable['version']} keeps serving "
                           f"(retry it: ml apply --retry {self.ctx.address})")
            return self._finish(None, message)
        return self._finish(self._roll_out(wanted), message)

    def _finish(self, note: str | None, message: list[str]) -> ApplyResult:
        if note:
            message.append(note)
        self.outputs.pop("rollout", None)
        if self.settings.build:
            self._build(message)
        else:
            self.outputs.pop("bento_tag", None)
        return ApplyResult(outputs=self.outputs, message="; ".join(message))

    def _build(self, message: list[str]) -> None:
        """A Bento of what serves now, rebuilt only when the service's files changed."""
        from .process import build_bento

        digest = hashlib.sha256()
        for name in ("service.py", "config.json"):
            digest.update((self.folder / name).read_bytes())
        digest.update(json.dumps(self.outputs["stable"], sort_keys=True).encode())
        source = digest.hexdigest()[:16]
        if self.outputs.get("bento_tag") and self.outputs.get("bento_source") == source:
            return
        self.ctx.progress("building the Bento (bentoml build)")
        self.outputs.update(bento_tag=build_bento(self.folder, project_dir=self.project_dir), bento_source=source)
        message.append(f"built Bento {self.outputs['bento_tag']}")

    def _drop_rollout(self, pending: Mapping[str, Any], why: str) -> None:
        from .control import traffic, wait_for_generation, write_control

        stable = self.outputs["stable"]
        generation = write_control(self.folder, traffic(stable))
        wait_for_generation(self.folder, generation, self.settings.workers, timeout=30, server_pid=self.outputs["pid"])
        number = pending.get("revision")
        if number:
            self._set_revision_outcome(number, "abandoned", why)
        self.outputs["last_rollout"] = {"version": pending.get("candidate", {}).get("version"), "outcome": "abandoned",
                                        "reason": why, "at": now()}
        self.outputs["rollout"] = None
        self.ctx.progress(f"dropped the unfinished rollout of {pending.get('candidate', {}).get('version')}: {why}")

    def _rollout_settings(self):
        """The spec's rollout; when a monitor's retrain started this apply, with ``retrain_dry_run`` added
        to the checks that are reported but not enforced."""
        rollout = self.spec.rollout
        trigger = self.ctx.trigger or {}
        relaxed = sorted(set(rollout.analysis.retrain_dry_run) - set(rollout.analysis.dry_run))
        if trigger.get("action") != "retrain" or not relaxed:
            return rollout
        self.ctx.progress(f"started by monitor.{trigger.get('monitor')}'s retrain: {', '.join(relaxed)} reported, "
                          "not enforced (rollout.analysis.retrain_dry_run)")
        analysis = rollout.analysis.model_copy(update={"dry_run": list(rollout.analysis.dry_run) + relaxed})
        return rollout.model_copy(update={"analysis": analysis})

    def _roll_out(self, wanted: Mapping[str, Any], resume: Mapping[str, Any] | None = None) -> str:
        from ml_framework.plugins.serving.rollout import RolloutState, run_rollout

        rollout = self._rollout_settings()
        stable = dict(self.outputs["stable"])
        if resume is not None:
            state = RolloutState.from_dict(resume)
            number = int(resume.get("revision") or self._revision(wanted, rollout.strategy, "in_progress"))
            self.ctx.progress(f"resuming the {state.strategy} rollout of {wanted['version']} at step {state.step + 1}")
        else:
            state = RolloutState.new(rollout.strategy, stable, wanted)
            number = self._revision(wanted, rollout.strategy, "in_progress", f"from {stable['version']}")
        state_dict_extra = {"revision": number}
        io = ServiceRolloutIO(self, state_dict_extra)
        self.outputs["candidate_version"] = wanted["version"]
        self.outputs["versions"] = [stable["version"], wanted["version"]]
        try:
            from .revisions import analysis_context

            result = run_rollout(state, rollout, io, **analysis_context(stable.get("tag"), self.project_dir))
        except BaseException:  # Ctrl-C / a crash: stable takes all traffic back, the step resumes next apply
            state.phase = "interrupted"
            try:
                io.rollback(state)
            except Exception:
                pass  # the checkpoint below still says where the rollout stopped
            io.checkpoint(state)
            raise
        final = result.state
        summary = {"version": wanted["version"], "from": stable["version"], "strategy": final.strategy,
                   "outcome": final.phase, "reason": final.reason, "at": now(), "revision": number,
                   "steps": final.results[-6:]}
        self.outputs["last_rollout"] = summary
        self.outputs["rollout"] = None
        if final.phase == "promoted":
            self._set_revision_outcome(number, "promoted", f"{final.strategy} from {stable['version']}: passed")
            self._serving(wanted, number)
            self.outputs["skip"] = []
            rewrite_service(self.folder, self.resource.spec, wanted["tag"])
            self._released(wanted, f"{final.strategy} passed")
            return f"{wanted['version']} promoted ({final.strategy}, revision {number})"
        self._serving(stable)
        self.outputs["candidate_version"] = None
        self.outputs.pop("candidate_version", None)
        if final.phase == "paused":
            self.outputs["rollout"] = dict(final.to_dict(), revision=number)
            self.outputs["candidate_version"] = wanted["version"]
            self.outputs["versions"] = [stable["version"], wanted["version"]]
            self._set_revision_outcome(number, "paused", final.reason)
            self._checkpoint()
            raise RolloutFailed(f"rollout of {wanted['version']} paused: {final.reason}",
                                hint="run `ml apply` to resume it, or `ml rollback deployment/"
                                     f"{self.name}` to abort it")
        self._set_revision_outcome(number, "rolled_back", final.reason)
        self.outputs["skip"] = sorted(set(self.outputs.get("skip") or []) | {wanted["version"]})
        self._release_failed(wanted, final.reason)
        self._checkpoint()
        kept = (f"; {self._releases}@production stays {stable['version']}" if self._releases else "")
        raise RolloutFailed(f"rollout of {wanted['version']} rolled back: {final.reason}; {stable['version']} "
                            f"keeps serving{kept}",
                            hint=f"details: ml history deployment/{self.name}; retry on purpose with "
                                 f"ml apply --retry {self.ctx.address}")


class ServiceRolloutIO:
    """ml_framework.plugins.serving.rollout.RolloutIO on a running service: control.json for traffic, the prediction log for
    analysis data, the engine's checkpoint for progress."""

    def __init__(self, apply: "DeploymentApply", extra: Mapping[str, Any]):
        from .analysis import LogCursor

        self.apply = apply
        self.extra = dict(extra)
        self.cursor = LogCursor(apply.project_dir, apply.name, started_after=time.time() - 5)
        self.mirrored = False

    def _alive(self) -> bool:
        from .process import is_running

        return is_running(self.apply.outputs["pid"], self.apply.folder)

    def _write(self, document, state) -> int:
        from .control import wait_for_generation, write_control

        generation = write_control(self.apply.folder, document)
        wait_for_generation(self.apply.folder, generation, self.apply.settings.workers, timeout=60,
                            server_pid=self.apply.outputs["pid"], alive=self._alive)
        return generation

    def set_traffic(self, state, step) -> int:
        from .control import traffic

        self.mirrored = step.mode == "mirror"
        document = traffic(state.stable, state.candidate, mode=step.mode, weight=step.weight, rollout=state.id,
                           step=step.label, warmup=step.warmup)
        return self._write(document, state)

    def collect(self, state, marker, since):
        if not self._alive():  # the next apply restores the service and resumes this step
            raise MLError(f"the service (pid {self.apply.outputs['pid']}) stopped during the rollout")
        return self.cursor.collect(marker, since, mirrored=self.mirrored)

    def warm_up(self, state, requests: int) -> None:
        """Nothing to do here: every worker predicts `warmup` recent requests with the candidate when it
        loads it, and reports a failure as a load error (plugins/bentoml/runtime.py)."""

    def replay(self, state, step, requests: int):
        """Recorded inputs scored by stable and candidate in the service (see plugins/bentoml/replay.py)."""
        from .replay import replay_inputs, score_replay

        if not self._alive():
            raise MLError(f"the service (pid {self.apply.outputs['pid']}) stopped during the rollout")
        sources = list(self.apply.spec.rollout.replay.sources)
        records, source = replay_inputs(self.apply.project_dir, self.apply.name, state.candidate.get("tag"),
                                        requests, sources)
        if not records:
            return None
        stable, candidate, pairs = score_replay(self.apply.outputs["url"], self.apply.folder, records)
        return stable, candidate, pairs, source

    def rollback(self, state) -> None:
        from .control import traffic

        self._write(traffic(state.stable), state)

    def promote(self, state) -> None:
        from .control import traffic

        self._write(traffic(state.candidate), state)

    def checkpoint(self, state) -> None:
        self.apply.outputs["rollout"] = None if state.finished else dict(state.to_dict(), **self.extra)
        self.apply._checkpoint()

    def progress(self, message: str) -> None:
        self.apply.ctx.progress(message)

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    def now(self) -> float:
        return time.time()
