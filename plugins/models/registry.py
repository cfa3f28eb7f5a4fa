"""The model registry: every trained version of every Model, its lineage, and the aliases that point at them.

Kept in the same database as the state store (SQLite file or PostgreSQL), in its own tables, created on
first use with SQLAlchemy Core:

* ``ml_model_versions`` — one row per (model, version): status, backend, BentoML tag, metrics, gate
  results and lineage (JSON). Versions are numbered 1, 2, 3... per model and shown as ``v3``.
* ``ml_model_aliases`` — (model, alias) -> version. ``candidate``: the newest version that passed its
  gates; ``production``: what deployments follow; ``previous``: the production before the current one.
* ``ml_model_events`` — every alias move (who, when, from, to, why), so a rollback leaves a trail.
* ``ml_model_followers`` — which resources serve a model's production version (e.g.
  ``deployment.fraud-api``): while a model has followers, ``production`` moves only when a follower has
  rolled the version out (see *Releases* below).

Releases: an accepted version of a model that deployments follow does not become ``production`` at once.
It becomes ``release`` (and ``candidate``); followers resolve the model to it and roll it out; the first
successful rollout moves ``production`` (:meth:`ModelRegistry.released`), a rolled-back one drops the
``release`` alias and leaves ``production`` where it was (:meth:`ModelRegistry.release_failed`). So
``production`` always names a version that serves, and batch scoring follows what was actually promoted.

Statuses: ``accepted`` (passed its gates), ``rejected`` (failed a gate; never aliased), ``deleted``
(its model was destroyed; the row stays for the audit trail, the artifact is gone).

Moving an alias is how promotion and rollback work: :meth:`ModelRegistry.promote` points
``production`` at a version and ``previous`` at the old production; :meth:`ModelRegistry.rollback`
swaps them back. Deployments resolve references with :meth:`ModelRegistry.resolve`: ``fraud``
(production), ``fraud@candidate``, ``fraud:v3``.

Importing this module imports nothing heavy; SQLAlchemy is loaded when a registry is opened.
"""

from __future__ import annotations

import getpass
import json
import socket
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping

from ml_framework.errors import MLError, did_you_mean
from ml_framework.state.side_tables import SideTables

__all__ = [
    "ALIASES",
    "RELEASE",
    "ACCEPTED",
    "REJECTED",
    "DELETED",
    "ModelVersion",
    "AliasEvent",
    "ModelRegistry",
    "RegistryError",
    "parse_version",
]

ALIASES = ("candidate", "production", "previous")
RELEASE = "release"  # set by the registry, never by a person: the version being rolled out
_ORDER = ALIASES + (RELEASE,)
ACCEPTED, REJECTED, DELETED = "accepted", "rejected", "deleted"
class RegistryError(MLError):
    """A registry lookup or change that cannot be done (unknown model/version, rejected version...)."""


@dataclass(frozen=True)
class ModelVersion:
    model: str
    version: int
    status: str
    created: str
    backend: str
    address: str
    bentoml_tag: str | None = None
    primary_metric: str | None = None
    metrics: Mapping[str, Any] = field(default_factory=dict)
    gates: list[Mapping[str, Any]] = field(default_factory=list)
    lineage: Mapping[str, Any] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        return f"v{self.version}"

    @property
    def ref(self) -> str:
        return f"{self.model}:v{self.version}"


@dataclass(frozen=True)
class AliasEvent:
    model: str
    alias: str
    from_version: int | None
    to_version: int | None
    at: str
    who: str
    reason: str


def parse_version(text: str | int) -> int:
    """'v3', '3' or 3 -> 3."""
    value = str(text).strip()
    digits = value[1:] if value[:1] in ("v", "V") else value
    if not digits.isdigit() or int(digits) < 1:
        raise RegistryError(f"not a model version: {text!r}", hint="versions look like v3 (or 3)")
    return int(digits)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _who() -> str:
    try:
        user = getpass.getuser()
    except Exception:  # containers without a passwd entry
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def _tables(schema: str | None):
    import sqlalchemy as sa

    md = sa.MetaData(schema=schema)
    text = sa.Text
    versions = sa.Table(
        "ml_model_versions", md,
        sa.Column("model", sa.String(255), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created", sa.String(40), nullable=False),
        sa.Column("backend", text, nullable=False),
        sa.Column("address", text, nullable=False),
        sa.Column("bentoml_tag", text),
        sa.Column("primary_metric", text),
        sa.Column("metrics", text, nullable=False),
        sa.Column("gates", text, nullable=False),
        sa.Column("lineage", text, nullable=False),
    )
    aliases = sa.Table(
        "ml_model_aliases", md,
        sa.Column("model", sa.String(255), primary_key=True),
        sa.Column("alias", sa.String(64), primary_key=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("updated", sa.String(40), nullable=False),
    )
    events = sa.Table(
        "ml_model_events", md,
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("model", sa.String(255), nullable=False, index=True),
        sa.Column("alias", sa.String(64), nullable=False),
        sa.Column("from_version", sa.Integer),
        sa.Column("to_version", sa.Integer),
        sa.Column("at", sa.String(40), nullable=False),
        sa.Column("who", text, nullable=False),
        sa.Column("reason", text, nullable=False),
    )
    followers = sa.Table(
        "ml_model_followers", md,
        sa.Column("follower", sa.String(255), primary_key=True),
        sa.Column("model", sa.String(255), nullable=False, index=True),
        sa.Column("since", sa.String(40), nullable=False),
    )
    return md, versions, aliases, events, followers


class ModelRegistry(SideTables):
    """Versions and aliases in the state database at ``url`` (a SQLAlchemy URL as the state store uses)."""

    error = RegistryError
    what = "the model registry"

    def _define_tables(self, schema: str | None):
        md, self._versions, self._aliases, self._events, self._followers = _tables(schema)
        return md

    # -- opening ----------------------------------------------------------------------------------------
    @classmethod
    def for_project(cls, project_dir: Path) -> "ModelRegistry":
        """The registry of the project at ``project_dir`` (its ``ml.yaml`` state URL or ``$ML_STATE_URL``)."""
        from ml_framework.project import Project

        project = Project.load(Path(project_dir))
        store = project.open_state()
        try:
            return cls._cached(store.url)
        finally:
            store.close()

    def _row(self, row, aliases: Mapping[int, list[str]]) -> ModelVersion:
        return ModelVersion(
            model=row.model, version=row.version, status=row.status, created=row.created, backend=row.backend,
            address=row.address, bentoml_tag=row.bentoml_tag, primary_metric=row.primary_metric,
            metrics=json.loads(row.metrics), gates=json.loads(row.gates), lineage=json.loads(row.lineage),
            aliases=tuple(sorted(aliases.get(row.version, ()), key=_ORDER.index)))

    def _alias_map(self, conn, model: str) -> dict[str, int]:
        import sqlalchemy as sa

        a = self._aliases
        return {r.alias: r.version for r in conn.execute(sa.select(a).where(a.c.model == model))}

    def _move(self, conn, model: str, alias: str, version: int | None, reason: str) -> None:
        import sqlalchemy as sa

        a = self._aliases
        current = self._alias_map(conn, model).get(alias)
        if current == version:
            return
        conn.execute(sa.delete(a).where(a.c.model == model, a.c.alias == alias))
        if version is not None:
            conn.execute(sa.insert(a).values(model=model, alias=alias, version=version, updated=_now()))
        conn.execute(sa.insert(self._events).values(model=model, alias=alias, from_version=current,
                                                    to_version=version, at=_now(), who=_who(), reason=reason))

    # -- writing ----------------------------------------------------------------------------------------
    def record_version(self, *, model: str, backend: str, address: str, status: str, metrics: Mapping[str, Any],
                       gates: list[Mapping[str, Any]], lineage: Mapping[str, Any], bentoml_tag: str | None = None,
                       primary_metric: str | None = None, promote: bool = False,
                       version: int | None = None, move_aliases: bool = True) -> ModelVersion:
        """Record a new version and move aliases: an accepted version becomes ``candidate``, and with
        ``promote`` also ``production`` (the old production becomes ``previous``). ``version``: the
        number reserved with :meth:`next_version` (default: the next one). ``move_aliases=False``
        records it without touching any alias (sweep candidates: the best one is aliased afterwards)."""
        import sqlalchemy as sa

        v = self._versions
        with self._tx(write=True) as conn:
            number = version or self._next(conn, model)
            conn.execute(sa.insert(v).values(
                model=model, version=number, status=status, created=_now(), backend=backend, address=address,
                bentoml_tag=bentoml_tag, primary_metric=primary_metric, metrics=_dumps(metrics),
                gates=_dumps(gates), lineage=_dumps(lineage)))
            if status == ACCEPTED and move_aliases:
                self._move(conn, model, "candidate", number, f"v{number} passed its gates")
                if promote:
                    self._release_or_promote(conn, model, number, f"v{number} passed its gates (promote: auto)")
        found = self.get(model, number)
        assert found is not None
        return found

    def _next(self, conn, model: str) -> int:
        import sqlalchemy as sa

        v = self._versions
        return (conn.execute(sa.select(sa.func.max(v.c.version)).where(v.c.model == model)).scalar() or 0) + 1

    def next_version(self, model: str) -> int:
        """The number the next recorded version of ``model`` gets (numbers are never reused)."""
        with self._tx() as conn:
            return self._next(conn, model)

    def _promote(self, conn, model: str, version: int, reason: str) -> int | None:
        current = self._alias_map(conn, model).get("production")
        if current == version:
            return current
        if current is not None:
            self._move(conn, model, "previous", current, f"replaced in production by v{version}")
        self._move(conn, model, "production", version, reason)
        return current

    def _release_or_promote(self, conn, model: str, version: int, reason: str) -> list[str]:
        """Production at once when nothing serves the model; else ``release`` for its followers to roll
        out (production moves when one succeeds). Returns the followers (empty: promoted)."""
        followers = self._follower_list(conn, model)
        if not followers:
            self._promote(conn, model, version, reason)
            return []
        if self._alias_map(conn, model).get("production") == version:
            self._move(conn, model, RELEASE, None, f"v{version} is production already")
            return []
        self._move(conn, model, RELEASE, version,
                   f"{reason}; production moves when {' or '.join(followers)} has rolled it out")
        return followers

    def promote(self, model: str, version: int | str, *, alias: str = "production", reason: str | None = None,
                now: bool = False) -> tuple[int | None, ModelVersion]:
        """Point ``alias`` (default ``production``) at an accepted version. Returns (old version, new).

        ``production`` of a model that deployments follow is *released*: the version becomes ``release``,
        the next apply rolls it out, and production moves when that succeeds (``now=True``: at once)."""
        number = parse_version(version)
        if alias not in ALIASES:
            raise RegistryError(f"unknown alias {alias!r}", hint=did_you_mean(alias, ALIASES) or f"aliases: {', '.join(ALIASES)}")
        target = self._require(model, number)
        if target.status != ACCEPTED:
            detail = "it failed its gates" if target.status == REJECTED else "its artifact was deleted"
            raise RegistryError(f"{target.ref} is {target.status} and cannot be promoted: {detail}")
        with self._tx(write=True) as conn:
            if alias == "production" and not now:
                old = self._alias_map(conn, model).get("production")
                self._release_or_promote(conn, model, number, reason or f"promoted v{number}")
            elif alias == "production":
                old = self._promote(conn, model, number, reason or f"promoted v{number}")
                self._move(conn, model, RELEASE, None, f"v{number} promoted at once")
            else:
                old = self._alias_map(conn, model).get(alias)
                self._move(conn, model, alias, number, reason or f"{alias} set to v{number}")
        return old, self._require(model, number)

    def rollback(self, model: str, *, reason: str | None = None) -> tuple[int, ModelVersion]:
        """Production goes back to ``previous``; the version rolled back from becomes ``previous``."""
        self.require_model(model)
        with self._tx(write=True) as conn:
            aliases = self._alias_map(conn, model)
            previous, current = aliases.get("previous"), aliases.get("production")
            if previous is None:
                raise RegistryError(f"{model} has no previous version to roll back to",
                                    hint=f"promote a version explicitly: ml models promote {model} vN")
            self._move(conn, model, "production", previous, reason or f"rollback from v{current}")
            self._move(conn, model, RELEASE, None, f"rolled back to v{previous}")
            if current is not None:
                self._move(conn, model, "previous", current, f"rolled back from v{current}")
        return current, self._require(model, previous)

    def delete_model(self, model: str, *, reason: str = "model destroyed") -> list[ModelVersion]:
        """Mark every live version deleted and drop the aliases. Returns the versions that were live."""
        import sqlalchemy as sa

        live = [mv for mv in self.versions(model) if mv.status != DELETED]
        v = self._versions
        with self._tx(write=True) as conn:
            for alias in list(self._alias_map(conn, model)):
                self._move(conn, model, alias, None, reason)
            conn.execute(sa.update(v).where(v.c.model == model, v.c.status != DELETED).values(status=DELETED))
        return live

    def rename_model(self, old: str, new: str, *, address: str, reason: str) -> int:
        """Move every version, alias, event and follower of ``old`` to ``new`` in one transaction (a
        ``kind: Moved`` rename: history kept, nothing retrained). Idempotent: nothing under ``old`` (renamed
        already) does nothing. Returns how many versions moved. Refuses when ``new`` already has versions."""
        import sqlalchemy as sa

        v, a, e, f = self._versions, self._aliases, self._events, self._followers
        with self._tx(write=True) as conn:
            count = conn.execute(sa.select(sa.func.count()).select_from(v).where(v.c.model == old)).scalar_one()
            if not count:
                return 0
            taken = conn.execute(sa.select(sa.func.count()).select_from(v).where(v.c.model == new)).scalar_one()
            if taken:
                raise RegistryError(f"cannot rename model {old!r} to {new!r}: the registry already has "
                                    f"{taken} version(s) of {new!r}")
            conn.execute(sa.update(v).where(v.c.model == old).values(model=new, address=address))
            conn.execute(sa.update(a).where(a.c.model == old).values(model=new))
            conn.execute(sa.update(e).where(e.c.model == old).values(model=new))
            conn.execute(sa.update(f).where(f.c.model == old).values(model=new))
            conn.execute(sa.insert(e).values(model=new, alias="name", from_version=None, to_version=None, at=_now(),
                                             who=_who(), reason=reason))
        return int(count)

    # -- releases: production follows what serves -------------------------------------------------------
    def _follower_list(self, conn, model: str) -> list[str]:
        import sqlalchemy as sa

        f = self._followers
        return [r.follower for r in conn.execute(sa.select(f.c.follower).where(f.c.model == model)
                                                 .order_by(f.c.follower))]

    def followers(self, model: str) -> list[str]:
        """The resources serving ``model``'s production version (e.g. ``deployment.fraud-api``)."""
        with self._tx() as conn:
            return self._follower_list(conn, model)

    def follow(self, follower: str, model: str | None) -> None:
        """``follower`` now serves ``model``'s production version (None: no model's: pinned, or gone)."""
        import sqlalchemy as sa

        f = self._followers
        with self._tx(write=True) as conn:
            row = conn.execute(sa.select(f.c.model).where(f.c.follower == follower)).first()
            if row is not None and row.model == model:
                return
            conn.execute(sa.delete(f).where(f.c.follower == follower))
            if model is not None:
                conn.execute(sa.insert(f).values(follower=follower, model=model, since=_now()))

    def release_target(self, ref: str) -> ModelVersion:
        """What a follower of ``ref`` should serve: the version being released, else :meth:`resolve`."""
        if "@" not in ref and ":" not in ref:
            with self._tx() as conn:
                names = self._alias_map(conn, ref)
                number = names.get(RELEASE)
                if number is not None:
                    found = self._version(conn, ref, number, names)
                    if found is not None and found.status == ACCEPTED:
                        return found
        return self.resolve(ref)

    def released(self, model: str, version: int | str, follower: str, how: str) -> bool:
        """``follower`` rolled ``version`` out: it becomes production (once). True when production moved."""
        number = parse_version(version)
        with self._tx(write=True) as conn:
            names = self._alias_map(conn, model)
            if names.get(RELEASE) == number:
                self._move(conn, model, RELEASE, None, f"released by {follower}")
            if names.get("production") == number:
                return False
            self._promote(conn, model, number, f"v{number} released by {follower} ({how})")
            return True

    def release_failed(self, model: str, version: int | str, follower: str, why: str) -> None:
        """``follower``'s rollout of ``version`` was rolled back: the release ends; production stays; the
        version stays ``candidate`` (it passed its gates) and can be released again on purpose."""
        number = parse_version(version)
        with self._tx(write=True) as conn:
            names = self._alias_map(conn, model)
            if names.get(RELEASE) == number:
                self._move(conn, model, RELEASE, None, f"rollout by {follower} rolled back: {why}")

    def restore_production(self, model: str, version: int | str, follower: str, why: str) -> int | None:
        """Point production back at ``version`` — what ``follower`` actually serves — when it names a
        version that never served there (state written before releases existed). Returns the old one."""
        number = parse_version(version)
        with self._tx(write=True) as conn:
            current = self._alias_map(conn, model).get("production")
            if current == number:
                return current
            self._move(conn, model, "production", number, f"back to v{number}, which {follower} serves: {why}")
            return current

    def release(self, model: str, version: int | str, reason: str) -> list[str]:
        """Release an accepted version again (a retried rollout). Returns the followers."""
        number = parse_version(version)
        target = self._require(model, number)
        if target.status != ACCEPTED:
            raise RegistryError(f"{target.ref} is {target.status} and cannot be released")
        with self._tx(write=True) as conn:
            return self._release_or_promote(conn, model, number, reason)

    # -- reading ----------------------------------------------------------------------------------------
    def models(self) -> list[str]:
        import sqlalchemy as sa

        v = self._versions
        with self._tx() as conn:
            return [r[0] for r in conn.execute(sa.select(v.c.model).distinct().order_by(v.c.model))]

    def versions(self, model: str | None = None, *, include_deleted: bool = True) -> list[ModelVersion]:
        import sqlalchemy as sa

        v = self._versions
        query = sa.select(v).order_by(v.c.model, v.c.version)
        if model is not None:
            query = query.where(v.c.model == model)
        if not include_deleted:
            query = query.where(v.c.status != DELETED)
        with self._tx() as conn:
            rows = conn.execute(query).all()
            aliases: dict[str, dict[int, list[str]]] = {}
            for name in {r.model for r in rows}:
                for alias, number in self._alias_map(conn, name).items():
                    aliases.setdefault(name, {}).setdefault(number, []).append(alias)
            return [self._row(r, aliases.get(r.model, {})) for r in rows]

    def get(self, model: str, version: int | str) -> ModelVersion | None:
        import sqlalchemy as sa

        number = parse_version(version)
        with self._tx() as conn:
            return self._version(conn, model, number, self._alias_map(conn, model))

    def _version(self, conn, model: str, number: int, alias_map: Mapping[str, int]) -> ModelVersion | None:
        import sqlalchemy as sa

        v = self._versions
        row = conn.execute(sa.select(v).where(v.c.model == model, v.c.version == number)).first()
        if row is None:
            return None
        aliases: dict[int, list[str]] = {}
        for alias, n in alias_map.items():
            aliases.setdefault(n, []).append(alias)
        return self._row(row, aliases)

    def aliases(self, model: str) -> dict[str, int]:
        with self._tx() as conn:
            return self._alias_map(conn, model)

    def alias(self, model: str, alias: str) -> ModelVersion | None:
        with self._tx() as conn:  # one transaction: monitors resolve the served version on every run
            names = self._alias_map(conn, model)
            number = names.get(alias)
            return self._version(conn, model, number, names) if number is not None else None

    def resolve(self, ref: str) -> ModelVersion:
        """``fraud`` (its production version), ``fraud@candidate``, ``fraud:v3`` -> the version."""
        if "@" in ref:
            model, alias = ref.split("@", 1)
            found = self.alias(model, alias) if alias in ALIASES else None
            if found is not None:
                return found
            self.require_model(model)  # the errors, in the order a person fixes them: model, then alias
            if alias not in ALIASES:
                raise RegistryError(f"unknown alias {alias!r} in {ref!r}",
                                    hint=did_you_mean(alias, ALIASES) or f"aliases: {', '.join(ALIASES)}")
            if found is None:
                raise RegistryError(f"{model} has no {alias} version yet",
                                    hint="apply the model (ml apply) or promote a version (ml models promote)")
            return found
        if ":" in ref:
            model, version = ref.split(":", 1)
            self.require_model(model)
            return self._require(model, parse_version(version))
        return self.resolve(f"{ref}@production")

    def events(self, model: str, *, limit: int = 20) -> list[AliasEvent]:
        import sqlalchemy as sa

        e = self._events
        query = sa.select(e).where(e.c.model == model).order_by(e.c.seq.desc()).limit(limit)
        with self._tx() as conn:
            return [AliasEvent(r.model, r.alias, r.from_version, r.to_version, r.at, r.who, r.reason)
                    for r in conn.execute(query)]

    def require_model(self, model: str) -> None:
        """Raise RegistryError (with a did-you-mean hint) unless ``model`` has versions."""
        known = self.models()
        if model not in known:
            hint = did_you_mean(model, known) or (f"known models: {', '.join(known)}" if known else
                                                  "no model has been trained yet: run ml apply")
            raise RegistryError(f"no model named {model!r} in the registry", hint=hint)

    def _require(self, model: str, number: int) -> ModelVersion:
        found = self.get(model, number)
        if found is None:
            self.require_model(model)
            labels = [mv.label for mv in self.versions(model)]
            raise RegistryError(f"{model} has no version v{number}", hint=f"versions: {', '.join(labels)}")
        return found

    def __repr__(self) -> str:
        return f"ModelRegistry({self.url!r})"


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def registry_service(services) -> "ModelRegistry":
    """The ``model_registry`` service (declared by the models plugin): the registry beside the run's open
    state store, so providers never reopen the project to find it."""
    if getattr(services, "state", None) is not None:
        return ModelRegistry.for_store(services.state)
    return ModelRegistry.for_project(Path(services.project_dir))


def registry_for(services, project_dir: Path) -> "ModelRegistry":
    """The model registry from ``services`` when the engine lent them, else the project's (tests, scripts)."""
    if services is not None and "model_registry" in services.names():
        return services.get("model_registry")
    return ModelRegistry.for_project(Path(project_dir))
