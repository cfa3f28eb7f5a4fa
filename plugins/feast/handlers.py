"""One handler per spec kind: apply, delete, read (and fingerprint where data is involved).

The provider dispatches on the kind (no isinstance ladders); each handler compiles its spec into a
definition (compile.py), checks data contracts before touching Feast (contracts.py), applies the Feast
object under the repository lock and rewrites the generated repository files (repo.py).
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from typing import Any, Mapping

from framework.contract import ApplyContext, ApplyRequest, ApplyResult, ReadResult, RecordedResource, Resource
from framework.errors import ProviderError

from . import compile as comp
from .backend import Backend
from .contracts import ColumnRule, Contract, validate
from .materialize import online_store_identity
from .repo import DEFAULT_ONLINE_STORE

__all__ = ["HANDLERS"]


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(timezone.utc).isoformat(timespec="seconds") if value else None


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _not_found(exc: Exception) -> bool:
    from feast.errors import DataSourceNotFoundException, FeastObjectNotFoundException

    return isinstance(exc, (FeastObjectNotFoundException, DataSourceNotFoundException))


class Handler:
    kind = ""
    section = ""  # manifest section

    def fingerprint(self, backend: Backend, resource: Resource) -> Mapping[str, str]:
        return {}

    def apply(self, backend: Backend, request: ApplyRequest, ctx: ApplyContext) -> ApplyResult:
        raise NotImplementedError

    def delete(self, backend: Backend, recorded: RecordedResource, ctx: ApplyContext) -> None:
        raise NotImplementedError

    def read(self, backend: Backend, recorded: RecordedResource) -> ReadResult:
        raise NotImplementedError

    # -- shared steps -------------------------------------------------------------------------------------
    def _remember(self, backend: Backend, name: str, definition: dict | None) -> None:
        """Record (or forget) the applied definition and regenerate the repository module. Under lock."""
        manifest = backend.repo.read_manifest()
        if definition is None:
            manifest[self.section].pop(name, None)
        else:
            manifest[self.section][name] = definition
        backend.repo.write_manifest(manifest)

    @staticmethod
    def _drift(expected: Mapping[str, Any], actual: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
        return {key: (expected[key], actual.get(key)) for key in expected if expected[key] != actual.get(key)}


# --- FeatureStore -----------------------------------------------------------------------------------------


def _online_store_block(spec) -> dict[str, Any]:
    store = spec.online_store
    if store.type == "sqlite":
        return {"type": "sqlite", "path": store.path}
    connection = store.connection_string
    if store.password_env:  # Feast expands ${VAR} when it loads feature_store.yaml: no secret on disk
        connection += f",password=${{{store.password_env}}}"
    block: dict[str, Any] = {"type": "redis", "connection_string": connection}
    if store.key_ttl_seconds:
        block["key_ttl_seconds"] = store.key_ttl_seconds
    return block


def _ping_redis(address: str, block: Mapping[str, Any]) -> None:
    import os

    import redis

    parts = [p.strip() for p in str(block["connection_string"]).split(",")]
    host, _, port = parts[0].partition(":")
    kwargs: dict[str, Any] = {"host": host or "localhost", "port": int(port or 6379), "socket_timeout": 3,
                              "socket_connect_timeout": 3}
    for part in parts[1:]:
        key, _, value = part.partition("=")
        if key == "db":
            kwargs["db"] = int(value)
        elif key == "ssl":
            kwargs["ssl"] = value.lower() == "true"
        elif key == "password":
            kwargs["password"] = os.path.expandvars(value)
    try:
        redis.Redis(**kwargs).ping()
    except Exception as exc:  # connection refused, auth, timeout
        raise ProviderError(address, f"online_store: cannot reach Redis at {parts[0]}: {type(exc).__name__}: {exc}",
                            hint="start Redis or fix online_store.connection_string") from exc


class FeatureStoreHandler(Handler):
    kind, section = "FeatureStore", "feature_stores"

    def apply(self, backend, request, ctx):
        resource = request.resource
        spec = backend.spec(self.kind, resource.name, resource.spec)
        block = _online_store_block(spec)
        if block["type"] == "redis":
            ctx.progress("checking Redis")
            _ping_redis(resource.address, block)
        with backend.repo.lock():
            changed = backend.repo.write_online_store(block, owner=resource.address)
            self._remember(backend, spec.name, block)
        return ApplyResult(outputs={"online_store": online_store_identity(block), "project": backend.repo.project(),
                                    "config_file": str(backend.repo.config_file.relative_to(backend.project_dir))
                                    if backend.repo.config_file.is_relative_to(backend.project_dir)
                                    else str(backend.repo.config_file)},
                           message="online store configured" if changed else "online store unchanged")

    def delete(self, backend, recorded, ctx):
        with backend.repo.lock():
            backend.repo.write_online_store(dict(DEFAULT_ONLINE_STORE), owner="default")
            self._remember(backend, recorded.address.partition(".")[2], None)

    def read(self, backend, recorded):
        name = recorded.address.partition(".")[2]
        if name not in backend.repo.read_manifest()["feature_stores"]:
            return ReadResult(exists=False)
        spec = backend.spec(self.kind, name, recorded.spec)
        expected = online_store_identity(_online_store_block(spec))
        actual = online_store_identity(backend.repo.online_store_config())
        drift = {} if expected == actual else {"online_store": (expected, actual)}
        return ReadResult(exists=True, outputs=recorded.outputs, drift=drift)


# --- Entity -----------------------------------------------------------------------------------------------


class EntityHandler(Handler):
    kind, section = "Entity", "entities"

    def apply(self, backend, request, ctx):
        from .objects import build_entity

        resource = request.resource
        spec = backend.spec(self.kind, resource.name, resource.spec)
        definition = comp.entity_def(spec, backend.options(self.kind, spec, resource.config))
        with backend.feast(resource.address, "apply the entity") as store:
            store.apply([build_entity(definition)])
            self._remember(backend, spec.name, definition)
            project = store.project
        return ApplyResult(outputs={"feast_name": spec.name, "project": project, "join_key": definition["join_key"],
                                    "value_type": definition["value_type"]})

    def delete(self, backend, recorded, ctx):
        name = recorded.address.partition(".")[2]
        with backend.feast(recorded.address, "delete the entity") as store:
            try:
                store.registry.delete_entity(name, store.project, commit=True)
            except Exception as exc:
                if not _not_found(exc):
                    raise
            self._remember(backend, name, None)

    def read(self, backend, recorded):
        from .objects import describe_entity

        name = recorded.address.partition(".")[2]
        spec = backend.spec(self.kind, name, recorded.spec)
        with backend.feast(recorded.address, "read the entity") as store:
            try:
                entity = store.registry.get_entity(name, store.project, allow_cache=True)
            except Exception as exc:
                if _not_found(exc):
                    return ReadResult(exists=False)
                raise
        expected = {"join_key": spec.join_key, "value_type": comp.ENTITY_VALUE_TYPES[spec.dtype]}
        return ReadResult(exists=True, outputs=recorded.outputs, drift=self._drift(expected, describe_entity(entity)))


# --- Source -----------------------------------------------------------------------------------------------


def _source_contract(spec) -> Contract:
    return Contract(
        path_field="path",
        timestamp=ColumnRule(spec.timestamp_field, "timestamp_field", role="timestamp"),
        created_timestamp=(ColumnRule(spec.created_timestamp_field, "created_timestamp_field", role="timestamp")
                           if spec.created_timestamp_field else None),
        columns=tuple(ColumnRule(name, f"columns.{name}", col.dtype, col.checks) for name, col in spec.columns.items()
                      if name not in (spec.timestamp_field, spec.created_timestamp_field)),
        dataset=spec.checks,
    )


class SourceHandler(Handler):
    kind, section = "Source", "sources"

    def fingerprint(self, backend, resource):
        spec = backend.spec(self.kind, resource.name, resource.spec)
        comp.source_def(spec, spec.name, project_dir=backend.project_dir, repo_dir=backend.repo.dir,
                        address=resource.address)  # raises early for unsupported formats
        return {"source_data": backend.fingerprints.key(backend.data_path(spec.path))}

    def apply(self, backend, request, ctx):
        from .objects import build_source

        resource = request.resource
        spec = backend.spec(self.kind, resource.name, resource.spec)
        definition = comp.source_def(spec, spec.name, project_dir=backend.project_dir, repo_dir=backend.repo.dir,
                                     address=resource.address, options=backend.options(self.kind, spec,
                                                                                       resource.config))
        ctx.progress("checking the data contract")
        path = backend.data_path(spec.path)
        report = validate(resource.address, path, _source_contract(spec), display=spec.path)
        with backend.feast(resource.address, "apply the data source") as store:
            store.apply([build_source(definition)])
            self._remember(backend, spec.name, definition)
            project = store.project
        return ApplyResult(outputs={
            "feast_name": spec.name, "project": project, "path": definition["path"], "rows": report.rows,
            "min_timestamp": _iso(report.min_ts), "max_timestamp": _iso(report.max_ts),
            "source_data": backend.fingerprints.key(path),
        })

    def delete(self, backend, recorded, ctx):
        name = recorded.address.partition(".")[2]
        with backend.feast(recorded.address, "delete the data source") as store:
            try:
                store.registry.delete_data_source(name, store.project, commit=True)
            except Exception as exc:
                if not _not_found(exc):
                    raise
            self._remember(backend, name, None)

    def read(self, backend, recorded):
        from .objects import describe_source

        name = recorded.address.partition(".")[2]
        spec = backend.spec(self.kind, name, recorded.spec)
        with backend.feast(recorded.address, "read the data source") as store:
            try:
                source = store.registry.get_data_source(name, store.project, allow_cache=True)
            except Exception as exc:
                if _not_found(exc):
                    return ReadResult(exists=False)
                raise
        expected = {"path": comp.feast_path(spec.path, backend.project_dir, backend.repo.dir),
                    "timestamp_field": spec.timestamp_field,
                    "created_timestamp_column": spec.created_timestamp_field or ""}
        return ReadResult(exists=True, outputs=recorded.outputs, drift=self._drift(expected, describe_source(source)))


# --- FeatureView ------------------------------------------------------------------------------------------


class FeatureViewHandler(Handler):
    kind, section = "FeatureView", "feature_views"

    def fingerprint(self, backend, resource):
        spec = backend.spec(self.kind, resource.name, resource.spec)
        if isinstance(spec.source, str):
            return {}  # the Source resource carries the data fingerprint upstream
        comp.source_def(spec.source, comp.inline_source_name(spec.name), project_dir=backend.project_dir,
                        repo_dir=backend.repo.dir, address=resource.address)
        return {"source_data": backend.fingerprints.key(backend.data_path(spec.source.path))}

    # -- dependencies --------------------------------------------------------------------------------------
    def _entities(self, backend, spec, address, ctx, manifest) -> dict[str, dict]:
        out = {}
        for i, name in enumerate(spec.entities):
            upstream = backend.upstream_spec(ctx, f"entity.{name}")
            if upstream is not None:
                out[name] = comp.entity_def(upstream, backend.options("Entity", upstream))
            elif name in manifest["entities"]:
                out[name] = manifest["entities"][name]
            else:
                raise backend.missing(address, f"entity {name!r}", f"entities.{i}")
        return out

    def _source(self, backend, spec, address, ctx, manifest) -> tuple[dict, bool]:
        if not isinstance(spec.source, str):
            return comp.source_def(spec.source, comp.inline_source_name(spec.name), project_dir=backend.project_dir,
                                   repo_dir=backend.repo.dir, address=address,
                                   description=f"inline source of feature view {spec.name}"), True
        upstream = backend.upstream_spec(ctx, f"source.{spec.source}")
        if upstream is not None:
            return comp.source_def(upstream, upstream.name, project_dir=backend.project_dir, repo_dir=backend.repo.dir,
                                   address=address, options=backend.options("Source", upstream)), False
        if spec.source in manifest["sources"]:
            return manifest["sources"][spec.source], False
        raise backend.missing(address, f"source {spec.source!r}", "source")

    @staticmethod
    def _contract(spec, source: dict, entities: dict[str, dict], inline: bool) -> Contract:
        ts_field = "source.timestamp_field" if inline else f"source ({source['name']}).timestamp_field"
        keys = tuple(ColumnRule(entities[name]["join_key"], f"entities.{i}", entities[name]["dtype"], role="key")
                     for i, name in enumerate(spec.entities))
        created = source["created_timestamp_column"]
        return Contract(
            path_field="source.path" if inline else f"source ({source['name']}).path",
            timestamp=ColumnRule(source["timestamp_field"], ts_field, role="timestamp"),
            created_timestamp=ColumnRule(created, ts_field.replace("timestamp_field", "created_timestamp_field"),
                                         role="timestamp") if created else None,
            keys=keys,
            columns=tuple(ColumnRule(name, f"features.{name}", f.dtype, f.checks) for name, f in spec.features.items()),
            dataset=spec.checks,
        )

    # -- hooks ---------------------------------------------------------------------------------------------
    def apply(self, backend, request, ctx):
        from .objects import build_view

        resource = request.resource
        spec = backend.spec(self.kind, resource.name, resource.spec)
        options = backend.options(self.kind, spec, resource.config)
        manifest = backend.repo.read_manifest()
        entities = self._entities(backend, spec, resource.address, ctx, manifest)
        source, inline = self._source(backend, spec, resource.address, ctx, manifest)
        definition = comp.view_def(spec, entities, source, inline=inline, options=options)

        ctx.progress("checking the data contract")
        path = backend.data_path(source["project_path"])
        report = validate(resource.address, path, self._contract(spec, source, entities, inline),
                          display=source["project_path"])

        with backend.feast(resource.address, "apply the feature view") as store:
            store.apply([build_view(definition, entities, source)])
            backend.repo.record_infra(refresh=False)
            self._remember(backend, spec.name, definition)
            outputs: dict[str, Any] = {
                "feast_name": spec.name, "project": store.project, "online": spec.online, "rows": report.rows,
                "schema_digest": _digest([definition["schema"], definition["entities"]]),
                "source_path": source["path"], "source_data": backend.fingerprints.key(path),
                "max_timestamp": _iso(report.max_ts),
            }
            ctx.checkpoint(outputs)
            if spec.online and backend.settings.materialize:
                online_store = online_store_identity(backend.repo.online_store_config())
                outputs.update(self._materialize(store, request, ctx, options, outputs, online_store, report))
        return ApplyResult(outputs=outputs)

    def _materialize(self, store, request, ctx, options, outputs, online_store, report) -> dict[str, Any]:
        from .errors import feast_errors
        from .materialize import materialize_view

        prior = dict(request.prior.outputs) if request.prior else {}
        reasons = [why for why, hit in (
            ("first load", not prior.get("materialized_until")),
            ("replaced", request.action == "replace"),
            ("materialization: full", options is not None and options.materialization == "full"),
            ("online store changed", prior.get("online_store") != online_store),
            ("schema changed", prior.get("schema_digest") != outputs["schema_digest"]),
            ("source changed", prior.get("source_path") != outputs["source_path"]),
        ) if hit]
        end = _now()
        if reasons:
            start = report.min_ts
        else:
            start = datetime.fromisoformat(prior["materialized_until"])
        base = {"online_store": online_store}
        if start is None or start >= end:  # no rows at all, or nothing new
            return {**base, "materialized_until": prior.get("materialized_until") or _iso(end),
                    "rows_materialized": 0, "entities_written": 0}
        in_window = report.rows_between(start, end)
        ctx.progress(f"materializing {in_window} rows ({'full: ' + ', '.join(reasons) if reasons else 'incremental'})")

        def progress(done: int, total: int) -> None:
            ctx.progress(f"writing online rows {done}/{total}", done / total if total else None)

        with feast_errors(request.resource.address, "materialize the feature view"):
            written = materialize_view(store, request.resource.name, start, end, progress)
        return {**base, "materialized_from": _iso(start), "materialized_until": _iso(end),
                "materialization": "full" if reasons else "incremental",
                "rows_materialized": in_window, "entities_written": written}

    def delete(self, backend, recorded, ctx):
        name = recorded.address.partition(".")[2]
        inline = not isinstance(recorded.spec.get("source"), str)
        with backend.feast(recorded.address, "delete the feature view") as store:
            try:
                view = store.registry.get_feature_view(name, store.project, allow_cache=True)
            except Exception as exc:
                if not _not_found(exc):
                    raise
                view = None
            if view is not None:
                # partial=False: remove from the registry and tear down its online-store table
                store.apply([], objects_to_delete=[view], partial=False)
                if store.config.online_store.type in ("redis", "feast.infra.online_stores.redis.RedisOnlineStore"):
                    from .materialize import purge_redis_view

                    purge_redis_view(store, view)
            if inline:
                try:
                    store.registry.delete_data_source(comp.inline_source_name(name), store.project, commit=True)
                except Exception as exc:
                    if not _not_found(exc):
                        raise
            backend.repo.record_infra()
            self._remember(backend, name, None)

    def read(self, backend, recorded):
        from .objects import describe_view

        name = recorded.address.partition(".")[2]
        spec = backend.spec(self.kind, name, recorded.spec)
        with backend.feast(recorded.address, "read the feature view") as store:
            try:
                view = store.registry.get_feature_view(name, store.project, allow_cache=True)
            except Exception as exc:
                if _not_found(exc):
                    return ReadResult(exists=False)
                raise
        actual = describe_view(view)
        expected = {
            "entities": sorted(spec.entities),
            "features": {n: comp.FEAST_DTYPES[f.dtype] for n, f in spec.features.items()},
            "ttl_seconds": comp.parse_duration(spec.ttl) if spec.ttl else 0,
            "online": spec.online,
            "source": spec.source if isinstance(spec.source, str) else comp.inline_source_name(name),
        }
        return ReadResult(exists=True, outputs=recorded.outputs, drift=self._drift(expected, actual))


# --- FeatureService ---------------------------------------------------------------------------------------


class FeatureServiceHandler(Handler):
    kind, section = "FeatureService", "feature_services"

    def apply(self, backend, request, ctx):
        from .objects import build_service

        resource = request.resource
        spec = backend.spec(self.kind, resource.name, resource.spec)
        manifest = backend.repo.read_manifest()
        definition = comp.service_def(spec, manifest["feature_views"], manifest["feature_services"],
                                      address=resource.address, options=backend.options(self.kind, spec,
                                                                                          resource.config))
        with backend.feast(resource.address, "apply the feature service") as store:
            views = {v: store.registry.get_feature_view(v, store.project, allow_cache=True)
                     for v, _ in definition["features"]}
            store.apply([build_service(definition, views)])
            self._remember(backend, spec.name, definition)
            project = store.project
        return ApplyResult(outputs={"feast_name": spec.name, "project": project,
                                    "features": sum(len(f) if f is not None else
                                                    len(manifest["feature_views"][v]["schema"]) -
                                                    len(manifest["feature_views"][v]["join_keys"])
                                                    for v, f in definition["features"])})

    def delete(self, backend, recorded, ctx):
        name = recorded.address.partition(".")[2]
        with backend.feast(recorded.address, "delete the feature service") as store:
            try:
                store.registry.delete_feature_service(name, store.project, commit=True)
            except Exception as exc:
                if not _not_found(exc):
                    raise
            self._remember(backend, name, None)

    def read(self, backend, recorded):
        from .objects import describe_service

        name = recorded.address.partition(".")[2]
        with backend.feast(recorded.address, "read the feature service") as store:
            try:
                service = store.registry.get_feature_service(name, store.project, allow_cache=True)
            except Exception as exc:
                if _not_found(exc):
                    return ReadResult(exists=False)
                raise
        definition = backend.repo.read_manifest()["feature_services"].get(name)
        if definition is None:
            return ReadResult(exists=True, outputs=recorded.outputs)
        views = backend.repo.read_manifest()["feature_views"]
        expected = sorted([v, sorted(f) if f is not None else sorted(
            s[0] for s in views.get(v, {}).get("schema", []) if s[0] not in views.get(v, {}).get("join_keys", []))]
            for v, f in definition["features"])
        return ReadResult(exists=True, outputs=recorded.outputs,
                          drift=self._drift({"features": expected}, describe_service(service)))


HANDLERS: dict[str, Handler] = {h.kind: h for h in (FeatureStoreHandler(), EntityHandler(), SourceHandler(),
                                                     FeatureViewHandler(), FeatureServiceHandler())}
