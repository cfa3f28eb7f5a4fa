"""Replayed inputs for a rollout step whose live traffic stayed short (``on_inconclusive: replay``).

The inputs come from the deployment's prediction log (its recent successful requests, with the feature
values they were answered with) and then from the candidate's held-out validation rows (the reference
saved with the version). The running service scores each with stable and candidate side by side
(``POST /ml/replay``, allowed only with the token `ml` keeps beside the service) and nothing is logged
as a prediction. The answers become the two samples and the agreement pairs a shadow step would give.
"""

from __future__ import annotations

import http.client
import json
import os
import secrets
from pathlib import Path
from typing import Any, Mapping, Sequence

from ml_framework.errors import MLError
from ml_framework.plugins.serving.rollout import REPLAY_SOURCES, Sample

__all__ = ["ensure_token", "replay_inputs", "score_replay"]

TOKEN_FILE = "replay.token"
_CHUNK = 100  # records per request: the service interleaves live requests between chunks


def ensure_token(folder: Path) -> str:
    """The service's replay token, written once (mode 0600) beside control.json."""
    path = Path(folder) / TOKEN_FILE
    try:
        token = path.read_text().strip()
        if token:
            return token
    except OSError:
        pass
    token = secrets.token_hex(16)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(token)
    return token


def _from_log(project_dir: Path, deployment: str, count: int) -> list[dict[str, Any]]:
    from ml_framework.plugins.serving.prediction_log import read_predictions

    out = []
    for record in reversed(read_predictions(project_dir, deployment, last=max(count * 4, 200))):
        if record.get("status") == 200 and record.get("variant") in ("stable", "candidate") and record.get("features"):
            out.append({"features": record["features"], "entity_keys": record.get("entity_keys") or None})
            if len(out) >= count:
                break
    return out


def _from_validation(tag: str, project_dir: Path, count: int) -> list[dict[str, Any]]:
    """Rows of the version's held-out validation split (its saved reference; all of it for a version saved
    before the split was recorded), a seeded sample of ``count``."""
    from ml_framework.plugins.models.artifacts import artifact_dir
    from ml_framework.plugins.models.training_reference import PREDICTION_COLUMN, load_saved_reference

    try:
        loaded = load_saved_reference(artifact_dir(tag, project_dir))
    except Exception:
        return []
    if loaded is None:
        return []
    frame, info = loaded
    frame = frame.drop(columns=[PREDICTION_COLUMN], errors="ignore")
    start = int(info.get("valid_from") or 0)
    if 0 < start < len(frame):
        frame = frame.iloc[start:]
    if len(frame) > count:
        frame = frame.sample(n=count, random_state=int(info.get("seed") or 0))
    rows = json.loads(frame.to_json(orient="records", date_format="iso"))
    return [{"features": row} for row in rows]


def replay_inputs(project_dir: Path, deployment: str, candidate_tag: str, count: int,
                  sources: Sequence[str] = REPLAY_SOURCES) -> tuple[list[dict[str, Any]], str]:
    """Up to ``count`` inputs from ``sources`` in order, and a description of where they came from."""
    records: list[dict[str, Any]] = []
    used: list[str] = []
    for source in sources:
        need = count - len(records)
        if need <= 0:
            break
        found = (_from_log(project_dir, deployment, need) if source == "prediction_log"
                 else _from_validation(candidate_tag, project_dir, need))
        if found:
            records.extend(found)
            used.append(f"{len(found)} {'logged requests' if source == 'prediction_log' else 'validation rows'}")
    return records, " + ".join(used)


def _post(url: str, token: str, body: bytes, timeout: float) -> dict:
    host, _, _ = url.partition("//")[2].partition("/")
    hostname, _, port = host.rpartition(":")
    conn = http.client.HTTPConnection(hostname, int(port), timeout=timeout)
    try:
        conn.request("POST", "/ml/replay", body=body,
                     headers={"content-type": "application/json", "x-ml-replay": token})
        response = conn.getresponse()
        data = response.read()
    finally:
        conn.close()
    try:
        parsed = json.loads(data)
    except ValueError:
        parsed = {"error": data.decode(errors="replace")[:200]}
    if response.status != 200:
        raise MLError(f"the service refused the replay ({response.status}): {parsed.get('error')}")
    return parsed


def score_replay(url: str, folder: Path, records: Sequence[Mapping[str, Any]], *,
                 timeout: float = 60.0) -> tuple[Sample, Sample, list]:
    """(stable, candidate, agreement pairs) of ``records`` scored by the running service."""
    from .analysis import _pair_value

    token = ensure_token(folder)
    stable, candidate, pairs = Sample(), Sample(), []
    for start in range(0, len(records), _CHUNK):
        chunk = list(records[start:start + _CHUNK])
        answer = _post(url, token, json.dumps({"records": chunk}).encode(), timeout)
        for item in answer.get("results") or []:
            if "skipped" in item:
                continue
            stable.add(status=int(item.get("stable_status") or 500), latency_ms=item.get("stable_ms"),
                       prediction=item.get("stable"))
            candidate.add(status=int(item.get("candidate_status") or 500), latency_ms=item.get("candidate_ms"),
                          prediction=item.get("candidate"))
            a, b = _pair_value(item.get("stable")), _pair_value(item.get("candidate"))
            if a is not None and b is not None:
                pairs.append((a, b))
    return stable, candidate, pairs
