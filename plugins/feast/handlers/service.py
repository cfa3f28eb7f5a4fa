"""FeatureService: projections of applied feature views."""

from __future__ import annotations

from ml_framework.contract import ApplyResult, ReadResult

from .. import compile as comp
from .base import Handler, not_found

__all__ = ["FeatureServiceHandler"]


class FeatureServiceHandler(Handler):
    kind, section = "FeatureService", "feature_services"

    def apply(self, backend, request, ctx):
        from ..objects import build_service

        resource = request.resource
        spec = backend.spec(self.kind, resource.name, resource.spec)
        manifest = backend.repo.read_manifest()
        on_demand = manifest.get("on_demand_feature_views") or {}
        definition = comp.service_def(spec, manifest["feature_views"], manifest["feature_services"],
                                      address=resource.address, options=backend.options(self.kind, spec,
                                                                                          resource.config),
                                      on_demand=on_demand)
        with backend.feast(resource.address, "apply the feature service") as store:
            views = {v: (store.registry.get_on_demand_feature_view if v in on_demand and v not in
                         manifest["feature_views"] else store.registry.get_feature_view)(v, store.project,
                                                                                           allow_cache=True)
                     for v, _ in definition["features"]}
            store.apply([build_service(definition, views)])
            _answerable_online(store, [views[v] for v, _ in definition["features"]])
            self._remember(backend, spec.name, definition)
            project = store.project
        return ApplyResult(outputs={"feast_name": spec.name, "project": project,
                                    "features": sum(len(f) if f is not None else _feature_count({**on_demand,
                                                    **manifest["feature_views"]}[v]) for v, f in definition["features"])})

    def delete(self, backend, recorded, ctx):
        name = recorded.address.partition(".")[2]
        with backend.feast(recorded.address, "delete the feature service") as store:
            try:
                store.registry.delete_feature_service(name, store.project, commit=True)
            except Exception as exc:
                if not not_found(exc):
                    raise
            self._remember(backend, name, None)

    def read(self, backend, recorded):
        from ..objects import describe_service

        name = recorded.address.partition(".")[2]
        with backend.feast(recorded.address, "read the feature service") as store:
            try:
                service = store.registry.get_feature_service(name, store.project, allow_cache=True)
            except Exception as exc:
                if not_found(exc):
                    return ReadResult(exists=False)
                raise
        definition = backend.repo.read_manifest()["feature_services"].get(name)
        if definition is None:
            return ReadResult(exists=True, outputs=recorded.outputs)
        manifest = backend.repo.read_manifest()
        views = {**(manifest.get("on_demand_feature_views") or {}), **manifest["feature_views"]}
        expected = sorted([v, sorted(f) if f is not None else sorted(
            s[0] for s in views.get(v, {}).get("schema", []) if s[0] not in views.get(v, {}).get("join_keys", []))]
            for v, f in definition["features"])
        return ReadResult(exists=True, outputs=recorded.outputs,
                          drift=self._drift({"features": expected}, describe_service(service)))


def _feature_count(definition) -> int:
    return len(definition["schema"]) - len(definition.get("join_keys", ()))


def _answerable_online(store, views) -> None:
    """Feast's own SDK reads every view of a feature service from the online store, offline-only ones
    (``online: false``, e.g. facts of the event being scored) included, and fails on their missing tables
    (SQLite: "no such table"). Their (empty) tables are created so ``get_online_features(features=service)``
    answers, with those features missing — their values come with the request."""
    offline = [v for v in views if not getattr(v, "online", True) and hasattr(v, "entities")]
    if offline:
        from ml_framework.plugins.compat.feast import create_online_tables

        create_online_tables(store, offline)
