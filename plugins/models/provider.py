"""`TrainerProvider`: the Model kind's provider, shared by the LightGBM and PyTorch backends.

One apply of a Model trains one new version:

1. resolve the data (label source, features) from the recorded upstream specs and build the
   point-in-time training frame (``trainer.data``: Feast or the parquet files directly);
2. check the labels, split (by time or at random with the seed), train (the backend's ``fit``);
3. evaluate the held-out split (and each slice), check the gates against absolute thresholds and the
   current ``production`` version;
4. passed: save to BentoML's model store, record the version with its lineage, move ``candidate``
   (and ``production``, unless ``trainer.promote: manual``); failed: record the version as
   ``rejected`` with the failing gates and raise — nothing else changes, production stays.

Any failure before step 4 leaves the registry, the model store and state as they were. Subclasses
implement :meth:`fit` (train and return a :class:`Trained`) and :meth:`save_artifact`.
"""

from __future__ import annotations

import threading
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

__all__ = ["TrainerProvider", "Trained", "TrainingError", "GateFailure", "TRAINING_DATA_INPUT"]

from .trained import MAX_SEGMENTS, TRAINING_DATA_INPUT, GateFailure, Trained, TrainingError  # noqa: F401 - re-exported


class TrainerProvider(BaseProvider):
    kinds: ClassVar[tuple[str, ...]] = ("Model",)
    capabilities: ClassVar[tuple[str, ...]] = ("configure", "train_candidate", "resource_use", "move", "adopt")
    flavor: ClassVar[str] = ""  # "lightgbm", "torch"
    library: ClassVar[str] = ""  # distribution name recorded in lineage
    module: ClassVar[str] = ""  # BentoML module name saved with the model

    def __init__(self) -> None:
        self.project_dir: Path | None = None
        self.backend_settings: dict[str, Any] = {}
        self._guard = threading.Lock()

    @property
    def version(self) -> str:
        from .lineage import _version

        return f"{self.library} {_version(self.library) or '(not installed)'}"

    def configure(self, project_dir: Path, settings: Mapping[str, Any]) -> None:
        self.project_dir = Path(project_dir)
        self.backend_settings = dict(settings or {})

    # -- hooks for subclasses ------------------------------------------------------------------------
    def settings_model(self):  # pragma: no cover - abstract
        raise NotImplementedError

    def fit(self, prepared, spec, settings, ctx: ApplyContext) -> Trained:  # pragma: no cover - abstract
        raise NotImplementedError

    def save_artifact(self, name: str, trained: Trained, prepared, spec, *, labels, metadata,
                      project_dir=None) -> tuple[str, int]:  # pragma: no cover
        raise NotImplementedError

    def wrap_library_error(self, exc: Exception) -> bool:
        """Whether ``exc`` is the library's own error (reported as a training failure)."""
        return True

    # -- contract ----------------------------------------------------------------------------------------
    def config_model(self, kind: str):
        return self.settings_model() if kind == "Model" else None

    def _settings(self, resource):
        model = self.settings_model()
        if isinstance(resource.config, model):
            return resource.config
        trainer = {k: v for k, v in dict(resource.spec.get("trainer") or {}).items() if k != "backend"}
        return model.model_validate(trainer)

    def fingerprint(self, request: FingerprintRequest) -> Mapping[str, str]:
        from ml_framework.plugins.models.kinds import Model

        from .checks import check_model_spec
        from .fingerprint import DataKeys, combine

        spec = Model.model_validate(dict(request.resource.spec))
        check_model_spec(spec)
        if request.upstream:  # at plan, before anything trains: the label file has what the spec names
            from .data import check_label_source, resolve_inputs

            check_label_source(resolve_inputs(request.resource.spec, request.upstream.get, request.project_dir),
                               request.project_dir,
                               list(spec.slices or []))
        prior = request.prior
        if prior is None:
            return {}
        data = dict((prior.outputs or {}).get("data") or {})
        files = data.get("files") or {}
        if not files:
            return {}
        now = combine(DataKeys(request.project_dir).keys(files))
        if TRAINING_DATA_INPUT in (prior.inputs or {}) or now != data.get("digest"):
            return {TRAINING_DATA_INPUT: now}
        return {}

    def read(self, request: ReadRequest) -> ReadResult:
        from ml_framework.plugins.models.registry import DELETED, parse_version, registry_for

        from .artifacts import model_exists

        recorded = request.recorded
        outputs = dict(recorded.outputs or {})
        version = outputs.get("version")
        if not version:
            return ReadResult(exists=True, outputs=outputs)
        registry = registry_for(request.services, request.project_dir)
        found = registry.get(recorded.spec["name"], parse_version(version))
        if found is None or found.status == DELETED:
            return ReadResult(exists=False)
        if outputs.get("bentoml_tag") and not model_exists(outputs["bentoml_tag"], request.project_dir):
            return ReadResult(exists=False)
        return ReadResult(exists=True, outputs=outputs)

    def move(self, request, ctx):
        """A renamed Model (``kind: Moved``): its registry entries — versions, aliases, history, the services
        following it — move to the new name; the artifacts stay where they are (each version records its
        model-store tag), so nothing is retrained and serving is untouched."""
        from ml_framework.plugins.models.registry import registry_for

        old = str(request.recorded.spec.get("name") or request.recorded.address.split(".", 1)[1])
        new = str(request.resource.spec.get("name") or request.resource.name)
        registry = registry_for(ctx.services, ctx.project_dir)
        moved = registry.rename_model(old, new, address=request.resource.address,
                                      reason=f"renamed from {old} (kind: Moved)")
        ctx.progress(f"renamed {old} → {new} in the registry ({moved} version{'s' if moved != 1 else ''})"
                     if moved else f"the registry already holds {new}")
        return dict(request.recorded.outputs or {})

    # -- kind: Import ------------------------------------------------------------------------------------
    def _adoptee(self, request) -> tuple[dict, Any]:
        """The store model an Import names (model.yaml) and the registry version already holding it."""
        import yaml

        from ml_framework.errors import MLError
        from ml_framework.plugins.models.registry import registry_for

        from .artifacts import artifact_dir, model_exists

        tag, name = request.id, str(request.resource.spec.get("name"))
        if ":" not in tag:
            raise MLError(f"id {tag!r}: expected a BentoML model tag such as {name}:abc123 (`bentoml models list`)")
        if not model_exists(tag, request.project_dir):
            raise MLError(f"no model {tag} in the project's BentoML store ({artifact_dir(tag, request.project_dir).parent.parent})")
        info = yaml.safe_load((artifact_dir(tag, request.project_dir) / "model.yaml").read_text(encoding="utf-8")) or {}
        metadata = info.get("metadata") or {}
        if info.get("module") != self.module or metadata.get("flavor") not in (None, self.name):
            raise MLError(f"{tag} was saved by {info.get('module')}, not by ml's {self.name} backend "
                          f"({self.module}): it cannot be served as this model")
        if not metadata.get("features"):
            raise MLError(f"{tag} has no feature list in its metadata: it was not saved by ml, which needs it to serve")
        task = request.resource.spec.get("task")
        if metadata.get("task") and task and metadata["task"] != task:
            raise MLError(f"{tag} is a {metadata['task']} model; the spec says task: {task}")
        registry = registry_for(request.services, request.project_dir)
        known = next((v for v in registry.versions(name) if v.bentoml_tag == tag), None)
        return {"info": info, "metadata": metadata}, (registry, known)

    def adoptable(self, request) -> str:
        found, (registry, known) = self._adoptee(request)
        metrics = ", ".join(f"{k} {v:.4g}" for k, v in (found["metadata"].get("metrics") or {}).items()
                            if isinstance(v, (int, float)))
        where = (f"registry {known.label}" if known is not None
                 else f"recorded as v{registry.next_version(str(request.resource.spec.get('name')))}")
        return (f"{request.id} from the BentoML store ({self.name}, {found['metadata'].get('task')}, "
                f"{len(found['metadata'].get('features') or [])} features{', ' + metrics if metrics else ''}; {where})")

    def adopt(self, request, ctx):
        """Record the store model as a version (or reuse the registry's), aliases as a trained one's would
        move; the artifact is not touched."""
        from ml_framework.plugins.models.registry import ACCEPTED

        found, (registry, known) = self._adoptee(request)
        metadata = found["metadata"]
        name = str(request.resource.spec.get("name"))
        settings = (request.resource.spec.get("trainer") or {})
        if known is None:
            metrics = {k: v for k, v in (metadata.get("metrics") or {}).items() if isinstance(v, (int, float))}
            known = registry.record_version(
                model=name, backend=self.name, address=request.resource.address, status=ACCEPTED, metrics=metrics,
                gates=[], bentoml_tag=request.id, primary_metric=next(iter(metrics), None),
                lineage={"adopted": request.id, "adopted_from": "BentoML model store",
                         "feature_refs": metadata.get("feature_refs") or [],
                         "saved": str(found["info"].get("creation_time") or "")},
                promote=settings.get("promote", "auto") == "auto")
            ctx.progress(f"recorded {request.id} as {known.label}")
        return {"version": known.label, "bentoml_tag": request.id, "metrics": dict(known.metrics or {}),
                "primary_metric": known.primary_metric, "adopted": request.id, "promoted": "production" in known.aliases}

    def resource_use(self, resource):
        """Training keeps the cores its threads ask for busy (all of them by default); nothing keeps running."""
        import os

        from ml_framework.contract import ResourceUse

        params = ((resource.spec.get("trainer") or {}).get("params") or {})
        threads = params.get("num_threads")
        cores = float(threads) if isinstance(threads, int) and threads > 0 else float(os.cpu_count() or 1)
        return ResourceUse(apply_cpus=cores)

    def plan(self, request: PlanRequest) -> PlanResult:
        from .explain import explain_changes

        reasons = explain_changes(request.changes)
        prior = request.prior.outputs or {}
        estimate = prior.get("apply_seconds")
        if estimate is not None:
            reasons.append(f"estimate from the previous training run ({prior.get('version', '?')}: "
                           f"{float(estimate):.1f}s on {(prior.get('rows') or {}).get('total', '?')} rows)")
        reasons.extend(self._versions_note(request))
        return PlanResult(replace_paths=(), reasons=tuple(reasons), hold=self._already_rejected(request),
                          estimate_seconds=float(estimate) if estimate is not None else None)

    @staticmethod
    def _versions_note(request: PlanRequest) -> list[str]:
        """Which version this apply trains and what serves as production now (e.g. "trains v3; production
        is v2"), when the registry is at hand."""
        if request.services is None or "model_registry" not in request.services.names():
            return []
        from ml_framework.errors import MLError

        try:
            registry = request.services.get("model_registry")
            name = request.resource.spec["name"]
            number, production = registry.next_version(name), registry.alias(name, "production")
        except MLError:
            return []
        followers = registry.followers(name) if production else []
        rollout = f" and {' or '.join(followers)} has rolled it out" if followers else ""
        notes = [f"trains v{number}; production is {production.label if production else 'not set yet'}"
                 + (f" until v{number} passes its gates{rollout}" if production else "")]
        gates = [str(g) for g in request.resource.spec.get("gates") or []]
        if gates:
            against = ""
            if production is not None and any("production." in g for g in gates):
                values = ", ".join(f"{k} {v:.4g}" for k, v in (production.metrics or {}).items()
                                   if isinstance(v, (int, float)) and any(f"production.{k}" in g for g in gates))
                against = f" (production {production.label}: {values})" if values else ""
            notes.append("decided by its gates: " + "; ".join(gates) + against)
        shares = ((production.lineage or {}).get("importance") or {}).get("mean_abs_contribution") if production else None
        if shares:
            total = sum(shares.values()) or 1.0
            top = sorted(shares.items(), key=lambda kv: -kv[1])[:3]
            notes.append(f"importance now ({production.label}): " + ", ".join(f"{n} {v / total:.0%}" for n, v in top)
                         + f"; the apply says which features moved most in v{number}")
        return notes

    @staticmethod
    def _already_rejected(request: PlanRequest) -> str | None:
        """Why not to train again: the newest version was rejected after training on exactly these planned
        inputs against the same production version (its gates would judge the same way)."""
        if request.retry or not request.fingerprint or request.services is None \
                or "model_registry" not in request.services.names():
            return None
        from ml_framework.errors import MLError

        from .registry import REJECTED

        try:
            registry = request.services.get("model_registry")
            name = request.resource.spec["name"]
            versions = registry.versions(name, include_deleted=False)
            production = registry.alias(name, "production")
        except MLError:
            return None
        newest = versions[-1] if versions else None
        planned = ((newest.lineage or {}).get("planned") or {}) if newest is not None else {}
        if newest is None or newest.status != REJECTED or planned.get("fingerprint") != request.fingerprint:
            return None
        if planned.get("production") != (production.label if production else None):
            return None
        failed = [g.get("gate") for g in (newest.gates or []) if g.get("status") in ("failed", "inconclusive")]
        return (f"{newest.label} was trained on these same inputs and rejected"
                + (f" by {', '.join(repr(g) for g in failed)}" if failed else "")
                + ": training again would repeat it; change the inputs, or retry on purpose")

    def delete(self, request: DeleteRequest, ctx: ApplyContext) -> None:
        from ml_framework.plugins.models.registry import DELETED, registry_for

        from .artifacts import delete_models

        name = request.recorded.spec["name"]
        registry = registry_for(ctx.services, ctx.project_dir)
        live = [mv for mv in registry.versions(name) if mv.status != DELETED]
        ctx.progress(f"deleting {len(live)} version(s) from the BentoML model store")
        delete_models((mv.bentoml_tag for mv in live), ctx.project_dir)
        registry.delete_model(name, reason=f"{request.recorded.address} destroyed")

    def apply(self, request: ApplyRequest, ctx: ApplyContext) -> ApplyResult:
        from .pipeline import run_training

        return run_training(self, request, ctx)

    def train_candidate(self, request: ApplyRequest, ctx: ApplyContext, sweep: Mapping[str, Any]):
        """Train and record one sweep candidate (no alias moves, gates recorded, not raised).
        Returns its ModelVersion. Used by `ml models sweep`; not part of the provider contract."""
        from .pipeline import run_training

        return run_training(self, request, ctx, sweep=sweep)
