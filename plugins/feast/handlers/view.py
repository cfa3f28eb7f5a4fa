"""FeatureView: contract check, registry apply, generated files, then materialization."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ml_framework.contract import ApplyResult, ReadResult

from .. import compile as comp
from ..contracts import ColumnRule, Contract
from ..materialize import online_store_identity
from .base import Handler, check_data, contract_hint, digest, iso, not_found, now, remove_csv_copy

__all__ = ["FeatureViewHandler", "remove_view"]


def remove_view(backend, store, name: str, *, inline: bool) -> None:
    """Take the Feast view ``name`` out of the registry with its online rows (and its inline source):
    idempotent. Under the repository lock."""
    view = Handler._registered(store.registry.get_feature_view, name, store.project)
    if view is not None:
        # partial=False: remove from the registry and tear down its online-store table
        store.apply([], objects_to_delete=[view], partial=False)
        if store.config.online_store.type in ("redis", "feast.infra.online_stores.redis.RedisOnlineStore"):
            from ..materialize import purge_redis_view

            purge_redis_view(store, view)
    if inline:
        try:
            store.registry.delete_data_source(comp.inline_source_name(name), store.project, commit=True)
        except Exception as exc:
            if not not_found(exc):
                raise
    backend.repo.record_infra()


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
        from ..objects import build_view

        resource = request.resource
        spec = backend.spec(self.kind, resource.name, resource.spec)
        options = backend.options(self.kind, spec, resource.config)
        manifest = backend.repo.read_manifest()
        entities = self._entities(backend, spec, resource.address, ctx, manifest)
        source, inline = self._source(backend, spec, resource.address, ctx, manifest)
        aggregated = None
        if spec.aggregations:  # computed from the source's events; the view serves the aggregated rows
            source, aggregated = self._aggregate(backend, spec, source, entities, request, ctx)
            inline = True
        definition = comp.view_def(spec, entities, source, inline=inline, options=options)

        ctx.progress("checking the data contract")
        path = backend.data_path(source["project_path"])
        report = check_data(backend, resource.address, source, self._contract(spec, source, entities, inline),
                            owns_copy=inline, hint=contract_hint(resource))

        with backend.feast(resource.address, "apply the feature view") as store:
            with backend.repo.infra_recorded_on_commit(store):  # so `feast plan` is clean, in one registry write
                store.apply([build_view(definition, entities, source)])
            self._remember(backend, spec.name, definition)
            outputs: dict[str, Any] = {
                "feast_name": spec.name, "project": store.project, "online": spec.online, "rows": report.rows,
                # names and dtypes only: a feature's description never forces a reload
                "schema_digest": digest([[f[0], f[1]] for f in definition["schema"]] + definition["entities"]),
                "source_path": source["path"], "source_data": backend.fingerprints.key(path),
                "max_timestamp": iso(report.max_ts),
                **(aggregated or {}),
            }
            ctx.checkpoint(outputs)
            if spec.online and backend.settings.materialize and resource.address not in backend.adopting:
                online_store = online_store_identity(store.config.online_store.model_dump())
                outputs.update(self._materialize(store, request, ctx, options, outputs, online_store, report))
        return ApplyResult(outputs=outputs)

    def _aggregate(self, backend, spec, source: dict, entities: dict, request, ctx) -> tuple[dict, dict]:
        """Write the view's aggregated rows (plugins/features/aggregates.py) and return the source definition
        that serves them, with what to record: incremental when the source only gained newer events."""
        import os

        import pandas as pd

        from ml_framework.plugins.features import aggregates

        keys = [entities[name]["join_key"] for name in spec.entities]
        timestamp = source["timestamp_field"]
        columns = sorted({a.column for a in spec.aggregations.values() if a.column} - set(keys))
        events = aggregates.read_events(backend.data_path(source["project_path"]), source.get("format") or "parquet",
                                        keys + [timestamp] + columns)
        output = backend.project_dir / aggregates.output_path(spec.name)
        plan = {n: a.model_dump() for n, a in spec.aggregations.items()}
        prior = dict(request.prior.outputs or {}) if request.prior else {}
        previous = None
        until = prior.get("aggregated_until")
        times = pd.to_datetime(events[timestamp], utc=True)
        if (until and output.is_file() and prior.get("aggregations") == plan
                and aggregates.events_digest(events, timestamp, until) == prior.get("aggregated_digest")):
            previous = pd.read_parquet(output)  # only newer events arrived: extend, do not recompute
            # rows an interrupted apply wrote past what state recorded are computed again, not kept twice
            previous = previous[pd.to_datetime(previous[timestamp], utc=True) <= pd.Timestamp(until)]
        ctx.progress(f"aggregating {len(events)} events ({'new events only' if previous is not None else 'all'})")
        rows, recomputed = aggregates.refresh(events, previous, keys, timestamp, plan)
        for name, aggregation in spec.aggregations.items():
            if aggregation.feature_dtype == "int64":
                rows[name] = pd.to_numeric(rows[name], errors="coerce").round().astype("Int64")
            elif aggregation.feature_dtype == "string":
                rows[name] = rows[name].astype("string")
            else:
                rows[name] = pd.to_numeric(rows[name], errors="coerce").astype(aggregation.feature_dtype)
        output.parent.mkdir(parents=True, exist_ok=True)
        tmp = output.with_name(f".{output.name}.{os.getpid()}.tmp")
        rows.to_parquet(tmp, index=False)
        os.replace(tmp, output)
        from ml_framework.plugins.features.kinds import InlineSource

        served = comp.source_def(InlineSource(path=aggregates.output_path(spec.name), timestamp_field=timestamp),
                                 comp.inline_source_name(spec.name), project_dir=backend.project_dir,
                                 repo_dir=backend.repo.dir, address=request.resource.address,
                                 description=f"aggregations of feature view {spec.name} over {source['name']}")
        newest = times.max()
        return served, {"aggregations": plan, "aggregated_rows": int(len(rows)), "aggregated_recomputed": int(recomputed),
                        # full precision: the digest covers exactly the events up to this time
                        "aggregated_until": newest.isoformat() if pd.notna(newest) else None,
                        "aggregated_digest": aggregates.events_digest(events, timestamp, newest) if pd.notna(newest)
                        else None,
                        "aggregated_from": source["name"]}

    def _materialize(self, store, request, ctx, options, outputs, online_store, report) -> dict[str, Any]:
        from ..errors import feast_errors
        from ..materialize import materialize_view

        prior = dict(request.prior.outputs) if request.prior else {}
        # Full reload when what is online may no longer match the source; otherwise only rows newer than
        # the last load (Feast's incremental semantics). A changed file is reloaded in full: rows may
        # have been corrected or arrived late, before the last load's end (the file offline store reads
        # the whole file either way; online writes stay one row per entity).
        reasons = ["first load"] if not prior.get("materialized_until") else [why for why, hit in (
            ("replaced", request.action == "replace"),
            ("materialization: full", options is not None and options.materialization == "full"),
            ("online store changed", prior.get("online_store") != online_store),
            ("schema changed", prior.get("schema_digest") != outputs["schema_digest"]),
            ("source changed", prior.get("source_path") != outputs["source_path"]),
            ("source data changed", prior.get("source_data") != outputs["source_data"]),
        ) if hit]
        end = now()
        start = report.min_ts if reasons else datetime.fromisoformat(prior["materialized_until"])
        base = {"online_store": online_store, "materialization": "full" if reasons else "incremental",
                "materialization_reason": ", ".join(reasons) or "new rows only"}
        if start is None or start >= end:  # no rows at all
            return {**base, "materialized_until": prior.get("materialized_until") or iso(end),
                    "rows_materialized": 0, "entities_written": 0}
        in_window = report.rows_between(start, end)
        ctx.progress(f"materializing {in_window} rows ({base['materialization']}: {base['materialization_reason']})")

        def progress(done: int, total: int) -> None:
            ctx.progress(f"writing online rows {done}/{total}", done / total if total else None)

        with feast_errors(request.resource.address, "materialize the feature view"):
            written = materialize_view(store, request.resource.name, start, end, progress)
        return {**base, "materialized_from": iso(start), "materialized_until": iso(end),
                "rows_materialized": in_window, "entities_written": written}

    def delete(self, backend, recorded, ctx):
        name = recorded.address.partition(".")[2]
        aggregated = bool(recorded.spec.get("aggregations"))
        inline = not isinstance(recorded.spec.get("source"), str) or aggregated
        with backend.feast(recorded.address, "delete the feature view") as store:
            remove_view(backend, store, name, inline=inline)
            self._remember(backend, name, None)
            if aggregated:  # the aggregated rows it served
                from ml_framework.plugins.features.aggregates import output_path

                (backend.project_dir / output_path(name)).unlink(missing_ok=True)
            elif inline:
                spec = backend.spec(self.kind, name, recorded.spec)
                remove_csv_copy(backend, comp.source_def(spec.source, comp.inline_source_name(name),
                                                         project_dir=backend.project_dir, repo_dir=backend.repo.dir,
                                                         address=recorded.address))

    def read(self, backend, recorded):
        from ..objects import describe_view

        name = recorded.address.partition(".")[2]
        spec = backend.spec(self.kind, name, recorded.spec)
        with backend.feast(recorded.address, "read the feature view") as store:
            view = self._registered(store.registry.get_feature_view, name, store.project)
        if view is None:
            return ReadResult(exists=False)
        actual = describe_view(view)
        expected = {
            "entities": sorted(spec.entities),
            "features": {n: comp.FEAST_DTYPES[f.dtype] for n, f in spec.features.items()},
            "ttl_seconds": comp.parse_duration(spec.ttl) if spec.ttl else 0,
            "online": spec.online,
            "source": (spec.source if isinstance(spec.source, str) and not spec.aggregations
                       else comp.inline_source_name(name)),
        }
        return ReadResult(exists=True, outputs=recorded.outputs, drift=self._drift(expected, actual))
