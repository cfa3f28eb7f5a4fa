"""`BatchProvider`: the BatchPrediction kind's provider (backend name ``batch``).

Change detection, cheapest first, and said in words in the plan:

* the spec (engine) and the upstream Model / Source fingerprints (engine: "upstream model.fraud changed");
* ``model_version``: the version the reference resolves to now, against the version the current output
  was scored with — so a promotion or rollback done with ``ml models promote|rollback`` (which changes
  no spec) still shows as "model version changed";
* ``input_data``: content keys of the input file and of the feature files a lookup joins (stat-cached,
  parquet keyed by its footer), against those recorded by the last apply: "input data changed".

Both extra inputs appear only once something differed from what the last apply recorded, and then stay
(as the trainer's ``training_data`` does), so the plan right after an apply is empty even when the model
was retrained in the same run. Refresh checks that the output file (and table) still exist and that the
file is the one written.
"""

from __future__ import annotations

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

__all__ = ["BatchProvider", "MODEL_INPUT", "DATA_INPUT"]

MODEL_INPUT = "model_version"
DATA_INPUT = "input_data"
_NONE = "(none)"


class BatchProvider(BaseProvider):
    name: ClassVar[str] = "batch"
    kinds: ClassVar[tuple[str, ...]] = ("BatchPrediction",)
    capabilities: ClassVar[tuple[str, ...]] = ("configure",)

    def __init__(self) -> None:
        self.project_dir: Path | None = None
        self.backend_settings: dict[str, Any] = {}

    def configure(self, project_dir: Path, settings: Mapping[str, Any]) -> None:
        self.project_dir = Path(project_dir)
        self.backend_settings = dict(settings or {})

    # -- settings ------------------------------------------------------------------------------------------
    def config_model(self, kind: str):
        from .config import BatchSettings

        return BatchSettings if kind == "BatchPrediction" else None

    def settings(self, resource):
        from .config import BatchSettings

        if isinstance(resource.config, BatchSettings):
            return resource.config
        return BatchSettings.model_validate(dict(resource.spec.get("options") or {}))

    # -- fingerprint -------------------------------------------------------------------------------------------
    def fingerprint(self, request: FingerprintRequest) -> Mapping[str, str]:
        from ml_framework.plugins.batch.kinds import BatchPrediction

        spec = BatchPrediction.model_validate(dict(request.resource.spec))
        if spec.input.path:
            from .inputs import input_file, require_file

            require_file(input_file(spec, lambda address: None), request.project_dir)
        prior = request.prior
        if prior is None:
            return {}
        out: dict[str, str] = {}
        out.update(self._model_input(spec.model, prior, request.project_dir, request.services))
        out.update(self._data_input(prior, request.project_dir))
        return out

    def _resolved(self, ref: str, project_dir: Path, services=None) -> str:
        from ml_framework.plugins.models.registry import registry_for

        try:
            return registry_for(services, project_dir).resolve(ref).ref
        except MLError:
            return _NONE  # apply says why, with the address

    def _model_input(self, ref: str, prior, project_dir: Path, services=None) -> dict[str, str]:
        applied = (prior.outputs or {}).get("model_ref")
        now = self._resolved(ref, project_dir, services)
        if now == applied:
            kept = (prior.inputs or {}).get(MODEL_INPUT)
            return {MODEL_INPUT: kept} if kept is not None else {}
        return {MODEL_INPUT: f"{applied} → {now}"}

    def _data_input(self, prior, project_dir: Path) -> dict[str, str]:
        from ml_framework.plugins.models.fingerprint import MISSING, DataKeys, combine

        from .inputs import BatchInputError

        outputs = prior.outputs or {}
        data = dict(outputs.get("data") or {})
        files = list((data.get("files") or {}).keys())
        if not files:
            return {}
        keys = DataKeys(project_dir).keys(files)
        source = outputs.get("input_path")
        if source in keys and keys[source] == MISSING:
            raise BatchInputError(f"input file {source} does not exist",
                                  hint="generate or copy the data first; the previous output is left as it was")
        now = combine(keys)
        if DATA_INPUT in (prior.inputs or {}) or now != data.get("digest"):
            return {DATA_INPUT: now}
        return {}

    # -- read ------------------------------------------------------------------------------------------------------
    def read(self, request: ReadRequest) -> ReadResult:
        from ml_framework.plugins.models.fingerprint import DataKeys

        outputs = dict(request.recorded.outputs or {})
        written = outputs.get("output_path")
        if not written:
            return ReadResult(exists=True, outputs=outputs)
        keys = DataKeys(request.project_dir)
        path = Path(written) if Path(written).is_absolute() else Path(request.project_dir) / written
        if not path.is_file():
            return ReadResult(exists=False)
        if outputs.get("table") and outputs.get("url_env"):
            from .sinks import table_exists

            if table_exists(outputs["url_env"], outputs["table"]) is False:  # None: cannot ask, trust state
                return ReadResult(exists=False)
        drift = {}
        recorded = outputs.get("output_key")
        if recorded and keys.key(written) != recorded:
            drift["output"] = ("as written by ml", "modified outside ml")
        return ReadResult(exists=True, outputs=outputs, drift=drift)

    # -- plan ---------------------------------------------------------------------------------------------------------
    def plan(self, request: PlanRequest) -> PlanResult:
        prior = dict(request.prior.outputs or {})
        spec = request.resource.spec
        reasons: list[str] = []
        applied = prior.get("model_ref")
        now = self._resolved(str(spec.get("model")), self.project_dir) if self.project_dir else None
        if applied and now and now != applied:
            reasons.append(f"{spec.get('model')} now resolves to {now if now != _NONE else 'no version'}; "
                           f"the current output was scored with {applied}")
        old = prior.get("output_path")
        new = (spec.get("output") or {}).get("path")
        if old and new and old != new:
            reasons.append(f"the previous output {old} is removed once {new} is written")
        table = prior.get("table")
        new_table = ((spec.get("output") or {}).get("postgres") or {}).get("table")
        if table and table != new_table:
            reasons.append(f"the previous table {table} is dropped once the new output is written")
        estimate = prior.get("duration_seconds")
        if estimate is not None:
            reasons.append(f"estimate from the previous run: {float(estimate):.1f}s for {prior.get('rows', '?')} rows")
        return PlanResult(replace_paths=(), reasons=tuple(reasons),
                          estimate_seconds=float(estimate) if estimate is not None else None)

    # -- apply / delete -------------------------------------------------------------------------------------------
    def apply(self, request: ApplyRequest, ctx: ApplyContext) -> ApplyResult:
        from .scoring import run_batch

        return run_batch(self, request, ctx)

    def delete(self, request: DeleteRequest, ctx: ApplyContext) -> None:
        from .sinks import drop_table

        outputs = dict(request.recorded.outputs or {})
        if outputs.get("table") and outputs.get("url_env"):
            ctx.progress(f"dropping table {outputs['table']}")
            drop_table(outputs["url_env"], outputs["table"])
        written = outputs.get("output_path")
        if written:
            path = Path(written) if Path(written).is_absolute() else Path(ctx.project_dir) / written
            ctx.progress(f"removing {written}")
            path.unlink(missing_ok=True)
