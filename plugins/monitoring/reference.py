"""The reference a monitor compares traffic with: the training frame of the deployed model version.

Every version trained since references were saved carries its own (:mod:`ml_framework.plugins.models.training_reference`:
a seeded sample of its training frame, up to 100k rows, with its predictions on those rows), so the
reference is what the version learned from even when the data files changed since. A reference larger
than ``max_rows`` is sampled again (seeded), and the sample size is recorded and reported.

A version without a saved reference (trained by an older release) gets its frame rebuilt the way the
trainer built it (:mod:`ml_framework.plugins.models.data`: the same recorded specs, the same point-in-time join, the
same route), from the version's lineage, and a note says so; when the data files changed since it was
trained (their content keys differ from the lineage), the rebuilt reference is the data as it is now,
and a note says that too. ``path`` replaces the training frame with a file of the user's choosing.

Predictions on the reference (for prediction drift) are the saved ones, or for a rebuilt reference come
from the version's own artifact (:func:`ml_framework.plugins.models.predictor.load_predictor`); without an
artifact, prediction drift is off and a note says why.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ml_framework.errors import MLError, did_you_mean

from ml_framework.plugins.models.training_reference import PREDICTION_COLUMN  # a light module: pandas loads on use

__all__ = ["Reference", "ReferenceError", "load_reference", "served_versions", "version_features", "version_classes"]


class ReferenceError(MLError):
    """The reference data of a model version cannot be built."""


@dataclass
class Reference:
    frame: Any  # pandas.DataFrame with the feature columns
    features: list[str]
    task: str
    categorical: list[str] = field(default_factory=list)
    predictions: Any = None  # numpy array: numbers (binary, regression) or class ids (multiclass)
    prediction_kind: str = "numeric"
    rows: int = 0
    total: int = 0
    sampled: bool = False
    source: str = "training"
    notes: list[str] = field(default_factory=list)

    def info(self) -> dict[str, Any]:
        return {"rows": self.rows, "total": self.total, "sampled": self.sampled, "source": self.source,
                "notes": list(self.notes)}


def _artifact_schema(version, project_dir=None) -> dict | None:
    if not version.bentoml_tag:
        return None
    from ml_framework.plugins.models.artifacts import artifact_dir

    path = artifact_dir(version.bentoml_tag, project_dir) / "ml_model.json"
    if not path.is_file():
        return None
    import json

    return json.loads(path.read_text(encoding="utf-8"))


def version_classes(version, project_dir=None) -> list | None:
    """A multiclass version's class values in index order (its artifact's ``classes``), or None."""
    schema = _artifact_schema(version, project_dir)
    classes = (schema or {}).get("classes")
    return list(classes) if classes else None


def version_features(version, model_spec, project_dir=None) -> tuple[list[str], list[str]]:
    """(feature columns, categorical columns) of a version: from its artifact (in the store of the project
    at ``project_dir``), else its model spec."""
    schema = _artifact_schema(version, project_dir)
    if schema is not None:
        return list(schema.get("features") or []), list((schema.get("categorical") or {}).keys())
    trainer = (version.lineage or {}).get("trainer") or {}
    return [], list(trainer.get("categorical") or [])


def served_versions(deployment_record, registry) -> list:
    """The model versions a deployment serves: its recorded outputs' versions (stable, candidate), else its
    model reference resolved in the registry (``fraud`` -> production, ``fraud@candidate``, ``fraud:v3``)."""
    from ml_framework.plugins.models.registry import RegistryError, parse_version

    spec = dict(deployment_record.spec)
    ref = str(spec.get("model", ""))
    model = ref.replace("@", ":").split(":", 1)[0]
    outputs = dict(deployment_record.outputs or {})
    labels: list[str] = []
    values = [outputs.get(k) for k in ("model_version", "version", "stable_version", "candidate_version")]
    for value in values + list(outputs.get("versions") or []):
        try:
            labels.append(f"v{parse_version(value)}")
        except (RegistryError, TypeError):  # not a version label: ignored
            continue
    found = []
    for label in dict.fromkeys(labels):
        version = registry.get(model, label)
        if version is not None:
            found.append(version)
    if found:
        return found
    try:
        return [registry.resolve(ref)]
    except RegistryError as exc:
        raise ReferenceError(f"deployment {deployment_record.spec.get('name')} serves {ref!r}: {exc.message}",
                             hint=exc.hint) from exc


def _state_lookup(store):
    def lookup(address: str):
        record = store.get(address)
        return (dict(record.spec), record.backend) if record is not None else None

    return lookup


def _sample(frame, max_rows: int, seed: int):
    if len(frame) <= max_rows:
        return frame, False
    return frame.sample(n=max_rows, random_state=seed).sort_index(kind="mergesort"), True


def _training_frame(project_dir: Path, version, store, max_rows: int, seed: int) -> tuple[Any, int, bool, list[str], dict]:
    from ml_framework.plugins.models import data as data_mod
    from ml_framework.plugins.models.fingerprint import DataKeys, combine

    record = store.get(version.address)
    if record is None:
        raise ReferenceError(f"{version.address} is not recorded in state: its training data cannot be found",
                             hint="apply the model first (ml apply), or give detector.reference.path")
    spec = dict(record.spec)
    data = data_mod.resolve_inputs(spec, _state_lookup(store), project_dir)
    lineage = version.lineage or {}
    notes = []
    trained_on = (lineage.get("data") or {}).get("files") or {}
    now = DataKeys(project_dir).keys(data.files())
    if trained_on and combine(now) != combine(trained_on):
        notes.append(f"the training data changed since {version.label} was trained: the reference is rebuilt "
                     "from the data as it is now")
    route = (lineage.get("data") or {}).get("route") or "parquet"
    if route == "parquet":
        # Sample the labelled rows before the point-in-time join, so a huge frame is never built whole.
        labels, _ = data_mod.label_frame(data, project_dir, ())
        total = len(labels)
        labels, sampled = _sample(labels, max_rows, seed)
        frame = data_mod.join_files(data, labels.reset_index(drop=True), project_dir)
    else:
        from ml_framework.project import Project

        # The feature-access seam of the project's plugins (the trainer used the same one).
        features = Project.load(Path(project_dir)).registry().services(state=store).get("feature_access")
        full = data_mod.load_frame(data, project_dir, route=route, features=features).df
        total = len(full)
        frame, sampled = _sample(full, max_rows, seed)
    return frame.reset_index(drop=True), total, sampled, notes, spec


def _file_frame(project_dir: Path, path: str, max_rows: int, seed: int):
    import pandas as pd

    full_path = Path(path) if Path(path).is_absolute() else Path(project_dir) / path
    if not full_path.exists():
        raise ReferenceError(f"reference file {path} does not exist")
    if full_path.suffix == ".csv":
        frame = pd.read_csv(full_path)
    elif full_path.suffix in (".jsonl", ".json"):
        frame = pd.read_json(full_path, lines=full_path.suffix == ".jsonl")
    else:
        frame = pd.read_parquet(full_path)
    total = len(frame)
    frame, sampled = _sample(frame, max_rows, seed)
    return frame.reset_index(drop=True), total, sampled


def load_reference(project_dir: Path, version, store, *, features: list[str] | None = None, path: str | None = None,
                   max_rows: int = 50_000, seed: int = 0, predictions: bool = True,
                   categorical: list[str] | None = None) -> Reference:
    """The reference of ``version`` (a :class:`ml_framework.plugins.models.registry.ModelVersion`). ``store``: the open state
    store (recorded specs). ``features``: the monitor's features (default: the version's)."""
    import numpy as np

    project_dir = Path(project_dir)
    record = store.get(version.address)
    model_spec = dict(record.spec) if record is not None else {}
    task = str(model_spec.get("task") or "binary")
    artifact_features, artifact_categorical = version_features(version, model_spec, project_dir)
    notes: list[str] = []
    saved, not_saved = (None, None) if path else _saved(version, features or artifact_features, max_rows, seed, project_dir)
    if path:
        frame, total, sampled = _file_frame(project_dir, path, max_rows, seed)
        source = path
    elif saved is not None:
        frame, total, sampled, saved_preds, saved_kind = saved
        source = f"training frame of {version.ref} (saved at training)"
    else:
        frame, total, sampled, notes, _ = _training_frame(project_dir, version, store, max_rows, seed)
        if not_saved:
            notes.append(not_saved)
        source = f"training frame of {version.ref}"
    model_features = artifact_features or [c for c in frame.columns if c != PREDICTION_COLUMN]
    wanted = list(features) if features else list(model_features)
    missing = [f for f in wanted if f not in frame.columns]
    if missing:
        raise ReferenceError(f"the reference ({source}) has no column {missing[0]!r}",
                             hint=did_you_mean(missing[0], list(frame.columns)) or
                             f"its columns: {', '.join(map(str, frame.columns))}")
    preds, kind = None, "numeric"
    if predictions and saved is not None:
        preds, kind = saved_preds, saved_kind
    elif predictions:
        preds, kind, note = _predict(version, frame, artifact_features, task, project_dir)
        if note:
            notes.append(note)
    if sampled:
        notes.append(f"the reference has {total:,} rows: a seeded sample of {len(frame):,} is used (reference.max_rows)")
    return Reference(frame=frame[wanted], features=wanted, task=task,
                     categorical=sorted(set(artifact_categorical) | set(categorical or [])), predictions=preds,
                     prediction_kind=kind, rows=len(frame), total=total, sampled=sampled, source=source,
                     notes=notes)


def _saved(version, features: list[str], max_rows: int, seed: int, project_dir=None):
    """The reference saved with the version's artifact (:mod:`ml_framework.plugins.models.training_reference`),
    sampled to ``max_rows``: ((frame, total, sampled, predictions, prediction kind), None), or
    (None, why) when there is none to use (then the training frame is rebuilt and ``why`` noted)."""
    if not version.bentoml_tag:
        return None, None
    from ml_framework.plugins.models.artifacts import artifact_dir, model_exists
    from ml_framework.plugins.models.training_reference import load_saved_reference

    found = load_saved_reference(artifact_dir(version.bentoml_tag, project_dir), features or None)
    rebuilt = "its reference was rebuilt from the data"
    if found is None:
        if not model_exists(version.bentoml_tag, project_dir):
            return None, None  # the artifact is gone: said where prediction drift is turned off
        return None, f"{version.ref} was trained before references were saved with models: {rebuilt}"
    frame, info = found
    lacking = [f for f in features or () if f not in frame.columns]
    if lacking or PREDICTION_COLUMN not in frame.columns:
        what = f"no column {lacking[0]!r}" if lacking else "no predictions"
        return None, f"the reference saved with {version.ref} has {what}: {rebuilt}"
    total = int(info.get("total") or len(frame))
    frame, sampled = _sample(frame, max_rows, seed)
    sampled = sampled or bool(info.get("sampled"))  # saved as a sample of a larger training frame
    frame = frame.reset_index(drop=True)
    preds = frame.pop(PREDICTION_COLUMN).to_numpy()
    kind = str(info.get("prediction_kind") or ("categorical" if preds.dtype.kind in "iu" else "numeric"))
    return (frame, total, sampled, preds, kind), None


def _predict(version, frame, features: list[str], task: str, project_dir=None):
    """Predictions of the version on the reference rows: (values, kind, note)."""
    import numpy as np

    if not version.bentoml_tag or not features:
        return None, "numeric", f"{version.ref} has no model artifact to score the reference: prediction drift is off"
    from ml_framework.plugins.models.artifacts import model_exists

    if not model_exists(version.bentoml_tag, project_dir):
        return None, "numeric", f"the artifact of {version.ref} ({version.bentoml_tag}) is gone: prediction drift is off"
    from ml_framework.plugins.models.predictor import load_predictor

    missing = [f for f in features if f not in frame.columns]
    if missing:
        return None, "numeric", f"the reference lacks {missing[0]!r}, which {version.ref} needs: prediction drift is off"
    try:
        scores = np.asarray(load_predictor(version.bentoml_tag, project_dir).predict(frame[features]))
    except Exception as exc:  # the model could not score: drift on features still works
        return None, "numeric", f"{version.ref} could not score the reference ({type(exc).__name__}: {exc}): prediction drift is off"
    if scores.ndim == 2:
        return scores.argmax(axis=1), "categorical", None
    return scores.astype(np.float64), "numeric", None
