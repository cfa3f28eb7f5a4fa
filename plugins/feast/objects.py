"""Build Feast SDK objects from definitions (see compile.py), and describe registry objects back as
comparable dicts for drift detection. Imports Feast: load lazily."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Mapping

from feast import Entity, FeatureService, FeatureView, Field, FileSource, ValueType
from feast import types as feast_types
from feast.data_format import ParquetFormat

__all__ = ["build_entity", "build_source", "build_view", "build_service", "build_on_demand", "describe_view",
           "describe_entity", "describe_source", "describe_service", "describe_on_demand"]


def build_entity(d: Mapping[str, Any]) -> Entity:
    return Entity(name=d["name"], join_keys=[d["join_key"]], value_type=ValueType[d["value_type"]],
                  description=d["description"], tags=dict(d["tags"]), owner=d["owner"])


def build_source(d: Mapping[str, Any]) -> FileSource:
    return FileSource(name=d["name"], path=d["path"], file_format=ParquetFormat(),
                      timestamp_field=d["timestamp_field"], created_timestamp_column=d["created_timestamp_column"],
                      description=d["description"], tags=dict(d["tags"]), owner=d["owner"])


def build_view(d: Mapping[str, Any], entities: Mapping[str, Mapping[str, Any]],
               source: Mapping[str, Any]) -> FeatureView:
    return FeatureView(
        name=d["name"],
        entities=[build_entity(entities[name]) for name in d["entities"]],
        ttl=timedelta(seconds=d["ttl_seconds"]),
        source=build_source(source),
        schema=[Field(name=n, dtype=getattr(feast_types, t), description=desc) for n, t, desc in d["schema"]],
        online=d["online"],
        description=d["description"],
        tags=dict(d["tags"]),
        owner=d["owner"],
    )


def build_service(d: Mapping[str, Any], views: Mapping[str, FeatureView]) -> FeatureService:
    features = []
    for view_name, names in d["features"]:
        view = views[view_name]
        features.append(view if names is None else view[list(names)])
    return FeatureService(name=d["name"], features=features, description=d["description"], tags=dict(d["tags"]),
                          owner=d["owner"])


def build_on_demand(d: Mapping[str, Any], manifest: Mapping[str, Mapping[str, Any]]):
    """A pandas-mode OnDemandFeatureView whose UDF calls ml's own computation (plugins/feast/on_demand.py)."""
    from feast import OnDemandFeatureView, RequestSource

    from .on_demand import make_udf

    views = manifest["feature_views"]
    sources = dict(manifest["sources"])
    inputs = []
    for name in d["views"]:
        view = views[name]
        source = view.get("inline_source") or sources[view["source"]]
        inputs.append(build_view(view, manifest["entities"], source))
    if d["request"]:
        inputs.append(RequestSource(name=f"{d['name']}_request",
                                    schema=[Field(name=n, dtype=getattr(feast_types, t)) for n, t in d["request"]]))
    udf, source_text = make_udf(d["computation"])
    return OnDemandFeatureView(
        name=d["name"], sources=inputs, udf=udf, udf_string=source_text, mode="pandas",
        schema=[Field(name=n, dtype=getattr(feast_types, t), description=desc) for n, t, desc in d["schema"]],
        description=d["description"], tags=dict(d["tags"]), owner=d["owner"])


# --- describing registry objects (read / drift) ---------------------------------------------------------


def describe_entity(entity: Entity) -> dict[str, Any]:
    return {"join_key": entity.join_key, "value_type": entity.value_type.name}


def describe_source(source) -> dict[str, Any]:
    return {"path": getattr(source, "path", None), "timestamp_field": source.timestamp_field,
            "created_timestamp_column": source.created_timestamp_column or ""}


def describe_view(view: FeatureView) -> dict[str, Any]:
    return {
        "entities": sorted(view.entities),
        "features": {f.name: str(f.dtype) for f in view.features},
        "ttl_seconds": int(view.ttl.total_seconds()) if view.ttl else 0,
        "online": bool(view.online),
        "source": view.batch_source.name if view.batch_source else None,
        "source_path": getattr(view.batch_source, "path", None),
    }


def describe_service(service: FeatureService) -> dict[str, Any]:
    out = []
    for projection in service.feature_view_projections:
        out.append([projection.name, sorted(f.name for f in projection.features)])
    return {"features": sorted(out)}


def describe_on_demand(view) -> dict[str, Any]:
    return {"features": {f.name: str(f.dtype) for f in view.features},
            "views": sorted(p.name for p in view.source_feature_view_projections.values()),
            "request": sorted(view.source_request_sources)}
