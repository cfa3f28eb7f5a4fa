"""Monitor results as time series, in the state database (SQLite file or PostgreSQL), next to the state.

Tables (SQLAlchemy Core, created on first use, like the model registry's):

* ``ml_monitor_runs`` — one row per `ml monitor run` of one monitor: when, status, window, actions, notes.
* ``ml_monitor_checks`` — one row per run and model version: drift status, window rows, method, threshold,
  performance status, the reference used, and the aggregated histograms of the window (JSON, small).
* ``ml_monitor_features`` — one row per run, version and feature: p-value, distance, drift yes/no, rows
  with a value, missing rows, values never seen in the reference.
* ``ml_monitor_metrics`` — one row per run, version, metric and slice segment: value, the version's
  validation value, rows, decayed yes/no.
* ``ml_monitor_actions`` — every action taken (alert, retrain, rollback) and its outcome: the audit trail,
  and what the cooldown of retrain/rollback reads.

Nothing here stores logged rows: every figure is an aggregate.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import asdict
from datetime import datetime, timezone
from typing import Any

from ml_framework.errors import MLError
from ml_framework.state.side_tables import SideTables

from .results import RunResult

__all__ = ["MonitorStore", "MonitorStoreError"]

class MonitorStoreError(MLError):
    """The monitor tables cannot be read or written."""


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str, allow_nan=False) if value is not None else "null"


def _finite(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if value == value and value not in (float("inf"), float("-inf")) else None


def _tables(schema: str | None):
    import sqlalchemy as sa

    md = sa.MetaData(schema=schema)
    text, integer, real = sa.Text, sa.Integer, sa.Float
    runs = sa.Table(
        "ml_monitor_runs", md,
        sa.Column("run_id", sa.String(36), primary_key=True),
        sa.Column("monitor", sa.String(255), nullable=False, index=True),
        sa.Column("deployment", text, nullable=False),
        sa.Column("at", sa.String(40), nullable=False, index=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("window", text, nullable=False),
        sa.Column("actions", text, nullable=False),
        sa.Column("notes", text, nullable=False),
        sa.Column("error", text),
        sa.Column("duration_s", real),
    )
    checks = sa.Table(
        "ml_monitor_checks", md,
        sa.Column("seq", integer, primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.String(36), nullable=False, index=True),
        sa.Column("monitor", sa.String(255), nullable=False, index=True),
        sa.Column("at", sa.String(40), nullable=False),
        sa.Column("model", text, nullable=False),
        sa.Column("model_version", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("drift_status", sa.String(16), nullable=False),
        sa.Column("rows", integer, nullable=False),
        sa.Column("min_samples", integer, nullable=False),
        sa.Column("method", text, nullable=False),
        sa.Column("threshold", real),
        sa.Column("p_val", real),
        sa.Column("distance", real),
        sa.Column("perf_status", sa.String(16)),
        sa.Column("labelled", integer),
        sa.Column("reference", text, nullable=False),
        sa.Column("details", text, nullable=False),
    )
    features = sa.Table(
        "ml_monitor_features", md,
        sa.Column("seq", integer, primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.String(36), nullable=False, index=True),
        sa.Column("monitor", sa.String(255), nullable=False, index=True),
        sa.Column("at", sa.String(40), nullable=False),
        sa.Column("model_version", sa.String(32), nullable=False),
        sa.Column("feature", text, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("test", sa.String(16), nullable=False),
        sa.Column("p_val", real),
        sa.Column("distance", real),
        sa.Column("drift", integer),
        sa.Column("rows", integer, nullable=False),
        sa.Column("missing", integer, nullable=False),
        sa.Column("unseen", text, nullable=False),
    )
    metrics = sa.Table(
        "ml_monitor_metrics", md,
        sa.Column("seq", integer, primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.String(36), nullable=False, index=True),
        sa.Column("monitor", sa.String(255), nullable=False, index=True),
        sa.Column("at", sa.String(40), nullable=False),
        sa.Column("model_version", sa.String(32), nullable=False),
        sa.Column("metric", sa.String(32), nullable=False),
        sa.Column("slice", text, nullable=False),
        sa.Column("segment", text, nullable=False),
        sa.Column("value", real),
        sa.Column("baseline", real),
        sa.Column("rows", integer, nullable=False),
        sa.Column("decayed", integer, nullable=False),
    )
    actions = sa.Table(
        "ml_monitor_actions", md,
        sa.Column("seq", integer, primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.String(36), nullable=False),
        sa.Column("monitor", sa.String(255), nullable=False, index=True),
        sa.Column("at", sa.String(40), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("detail", text, nullable=False),
    )
    return md, {"runs": runs, "checks": checks, "features": features, "metrics": metrics, "actions": actions}


def _relaxed_sync(dbapi_connection, _record) -> None:
    """Monitor results are a time series that the next run extends: in WAL mode, ``synchronous=NORMAL``
    keeps the database consistent after any crash and skips an fsync per run (a power cut may lose the
    newest runs, never corrupt them). Only this module's connections are affected, not the state's."""
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA synchronous = NORMAL")
    finally:
        cursor.close()


class MonitorStore(SideTables):
    """The monitor tables in the database at ``url`` (a SQLAlchemy URL, as the state store uses)."""

    error = MonitorStoreError
    what = "the monitor tables"
    sqlite_connect_listeners = (_relaxed_sync,)

    def _define_tables(self, schema: str | None):
        md, self.t = _tables(schema)
        return md

    # -- writing ----------------------------------------------------------------------------------------
    def record(self, result: RunResult) -> str:
        """Store one run (all its versions, features, metrics and actions) in one transaction."""
        import sqlalchemy as sa

        run_id = result.run_id or str(uuid.uuid4())
        result.run_id = run_id
        t, at = self.t, result.at
        checks, features, metrics = [], [], []
        for v in result.versions:
            d, p = v.drift, v.performance
            details = {"notes": d.notes, "histograms": d.histograms, "histogram_rows": d.histogram_rows,
                       "performance_notes": p.notes if p else [], "unmatched_labels": p.unmatched_labels if p else None}
            checks.append(dict(run_id=run_id, monitor=result.monitor, at=at, model=v.model,
                               model_version=v.model_version, status=v.status, drift_status=d.status, rows=d.n,
                               min_samples=d.min_samples, method=d.method, threshold=_finite(d.threshold),
                               p_val=_finite(d.p_val), distance=_finite(d.distance),
                               perf_status=p.status if p else None, labelled=p.n if p else None,
                               reference=_dumps(v.reference), details=_dumps(details)))
            for f in d.features:
                features.append(dict(run_id=run_id, monitor=result.monitor, at=at, model_version=v.model_version,
                                     feature=f.name, kind=f.kind, test=f.test, p_val=_finite(f.p_val),
                                     distance=_finite(f.distance), drift=None if f.drift is None else int(f.drift),
                                     rows=f.n, missing=f.missing, unseen=_dumps(f.unseen)))
            for m in (p.metrics if p else []):
                metrics.append(dict(run_id=run_id, monitor=result.monitor, at=at, model_version=v.model_version,
                                    metric=m.metric, slice=m.slice, segment=m.segment, value=_finite(m.value),
                                    baseline=_finite(m.baseline), rows=m.n, decayed=int(m.decayed)))
        version = result.versions[0].model_version if result.versions else ""
        for f in result.skew or ():  # one row per feature checked for live skew (test "skew")
            features.append(dict(run_id=run_id, monitor=result.monitor, at=at, model_version=version,
                                 feature=f.feature, kind="derived" if f.kind.startswith("transformation") else "online",
                                 test="skew", p_val=None,
                                 distance=_finite(f.max_difference), drift=int(f.mismatches > 0), rows=f.checked,
                                 missing=f.mismatches, unseen=_dumps(f.example)))
        with self._tx(write=True) as conn:
            conn.execute(sa.insert(t["runs"]).values(
                run_id=run_id, monitor=result.monitor, deployment=result.deployment, at=at, status=result.status,
                window=_dumps(result.window), actions=_dumps([asdict(a) for a in result.actions]),
                notes=_dumps(result.notes), error=result.error, duration_s=result.duration_s))
            for table, rows in (("checks", checks), ("features", features), ("metrics", metrics)):
                if rows:
                    conn.execute(sa.insert(t[table]), rows)
        return run_id

    def record_action(self, run_id: str, monitor: str, action: str, outcome: str, detail: str) -> None:
        import sqlalchemy as sa

        with self._tx(write=True) as conn:
            conn.execute(sa.insert(self.t["actions"]).values(
                run_id=run_id, monitor=monitor, at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                action=action, outcome=outcome, detail=detail))

    def finish_run(self, run_id: str, result: RunResult) -> None:
        """Update a stored run with the actions it took and its final notes."""
        import sqlalchemy as sa

        t = self.t["runs"]
        with self._tx(write=True) as conn:
            conn.execute(sa.update(t).where(t.c.run_id == run_id).values(
                actions=_dumps([asdict(a) for a in result.actions]), notes=_dumps(result.notes),
                duration_s=result.duration_s, status=result.status))

    # -- reading ----------------------------------------------------------------------------------------
    def last_action(self, monitor: str, action: str, *, outcomes=("succeeded",)) -> str | None:
        """When ``action`` last ran for ``monitor`` with one of these outcomes (ISO time), or None."""
        import sqlalchemy as sa

        a = self.t["actions"]
        query = (sa.select(a.c.at).where(a.c.monitor == monitor, a.c.action == action, a.c.outcome.in_(outcomes))
                 .order_by(a.c.seq.desc()).limit(1))
        with self._tx() as conn:
            return conn.execute(query).scalar()

    def runs(self, monitor: str | None = None, *, limit: int = 50) -> list[dict[str, Any]]:
        """The newest runs (newest first) with their checks."""
        import sqlalchemy as sa

        r, c = self.t["runs"], self.t["checks"]
        query = sa.select(r).order_by(r.c.at.desc(), r.c.run_id).limit(limit)
        if monitor is not None:
            query = query.where(r.c.monitor == monitor)
        with self._tx() as conn:
            runs = [dict(row._mapping) for row in conn.execute(query)]
            ids = [run["run_id"] for run in runs]
            by_run: dict[str, list[dict]] = {}
            if ids:
                for row in conn.execute(sa.select(c).where(c.c.run_id.in_(ids)).order_by(c.c.seq)):
                    by_run.setdefault(row.run_id, []).append(_decode(dict(row._mapping), ("reference", "details")))
        for run in runs:
            _decode(run, ("window", "actions", "notes"))
            run["checks"] = by_run.get(run["run_id"], [])
        return runs

    def drifted(self, run_ids: list[str]) -> dict[str, list[str]]:
        """run id -> the features that drifted in that run."""
        import sqlalchemy as sa

        f = self.t["features"]
        out: dict[str, list[str]] = {}
        if not run_ids:
            return out
        query = sa.select(f.c.run_id, f.c.feature).where(f.c.run_id.in_(run_ids), f.c.drift == 1, f.c.test != "skew").order_by(f.c.seq)
        with self._tx() as conn:
            for run_id, feature in conn.execute(query):
                out.setdefault(run_id, []).append(feature)
        return out

    def monitors(self) -> list[str]:
        import sqlalchemy as sa

        r = self.t["runs"]
        with self._tx() as conn:
            return [row[0] for row in conn.execute(sa.select(r.c.monitor).distinct().order_by(r.c.monitor))]

    def series(self, table: str, monitor: str, *, since: str | None = None, limit: int = 5000) -> list[dict[str, Any]]:
        """Rows of ``features`` / ``metrics`` / ``checks`` for ``monitor``, oldest first (the newest ``limit``)."""
        import sqlalchemy as sa

        t = self.t[table]
        query = sa.select(t).where(t.c.monitor == monitor).order_by(t.c.seq.desc()).limit(limit)
        if since is not None:
            query = query.where(t.c.at >= since)
        with self._tx() as conn:
            rows = [dict(row._mapping) for row in conn.execute(query)]
        rows.reverse()
        decode = {"features": ("unseen",), "checks": ("reference", "details")}.get(table, ())
        return [_decode(row, decode) for row in rows]

    def latest(self, monitor: str) -> dict[str, Any] | None:
        """The newest run of ``monitor`` with its checks, features and metrics."""
        import sqlalchemy as sa

        runs = self.runs(monitor, limit=1)
        if not runs:
            return None
        run = runs[0]
        f, m = self.t["features"], self.t["metrics"]
        with self._tx() as conn:
            run["features"] = [_decode(dict(row._mapping), ("unseen",))
                               for row in conn.execute(sa.select(f).where(f.c.run_id == run["run_id"]).order_by(f.c.seq))]
            run["metrics"] = [dict(row._mapping)
                              for row in conn.execute(sa.select(m).where(m.c.run_id == run["run_id"]).order_by(m.c.seq))]
        return run


def _decode(row: dict, keys) -> dict:
    for key in keys:
        if isinstance(row.get(key), str):
            row[key] = json.loads(row[key])
    return row
