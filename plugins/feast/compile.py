"""Compile validated specs into Feast *definitions*: plain, JSON-compatible dicts.

A definition holds exactly the arguments of one Feast object. Both the Feast objects applied to the
registry (``objects.py``) and the generated Python module of the feature repository (``codegen.py``)
are built from the same definitions, so `feast plan` on the repository agrees with what `ml apply`
registered. Pure functions: no Feast import, no I/O.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

from ml_framework.errors import ProviderError
from ml_framework.plugins.features.kinds import Entity, FeatureService, FeatureView, InlineSource, Source
from ml_framework.spec.kinds import parse_duration

__all__ = [
    "FEAST_DTYPES",
    "entity_def",
    "source_def",
    "inline_source_name",
    "view_def",
    "service_def",
    "on_demand_def",
    "feast_path",
    "source_format",
    "csv_copy_path",
    "CSV_COPY_DIR",
]

# Our dtype names -> names in feast.types
FEAST_DTYPES = {
    "int32": "Int32",
    "int64": "Int64",
    "float32": "Float32",
    "float64": "Float64",
    "string": "String",
    "bool": "Bool",
    "timestamp": "UnixTimestamp",
}
ENTITY_VALUE_TYPES = {"int64": "INT64", "string": "STRING"}
CSV_COPY_DIR = "data/ml_sources"  # parquet copies of CSV sources, inside the feature repository


def _meta(spec, options) -> dict[str, Any]:
    return {
        "description": spec.description or "",
        "tags": dict(sorted((getattr(options, "tags", None) or {}).items())),
        "owner": getattr(options, "owner", "") or "",
    }


def entity_def(spec: Entity, options=None) -> dict[str, Any]:
    return {
        "name": spec.name,
        "join_key": spec.join_key,
        "dtype": spec.dtype,
        "value_type": ENTITY_VALUE_TYPES[spec.dtype],
        **_meta(spec, options),
    }


def feast_path(path: str, project_dir: Path, repo_dir: Path) -> str:
    """A source path as Feast stores it: relative to the feature repository (Feast resolves relative
    paths against the repo), so the repository works from any clone. Absolute paths and URIs stay."""
    if "://" in path or os.path.isabs(path):
        return path
    return Path(os.path.relpath(Path(project_dir) / path, repo_dir)).as_posix()


def source_format(spec: Source | InlineSource) -> str:
    """"parquet" or "csv": as declared, else from the file suffix."""
    return spec.format or ("csv" if spec.path.lower().endswith(".csv") else "parquet")


def csv_copy_path(name: str) -> str:
    """The parquet copy Feast reads for CSV source `name`, relative to the feature repository (csvdata.py)."""
    return f"{CSV_COPY_DIR}/{name}.parquet"


def source_def(spec: Source | InlineSource, name: str, *, project_dir: Path, repo_dir: Path, address: str,
               options=None, description: str | None = None) -> dict[str, Any]:
    """A FileSource definition. A CSV source points Feast at its parquet copy in the repository's data
    folder (Feast reads parquet only); `project_path` keeps the file the spec names."""
    meta = _meta(spec, options) if isinstance(spec, Source) else {"description": description or "", "tags": {},
                                                                  "owner": ""}
    fmt = source_format(spec)
    return {
        "name": name,
        "path": csv_copy_path(name) if fmt == "csv" else feast_path(spec.path, project_dir, repo_dir),
        "project_path": spec.path,  # as written in the spec, relative to the project directory
        "format": fmt,
        "timestamp_field": spec.timestamp_field,
        "created_timestamp_column": spec.created_timestamp_field or "",
        **meta,
    }


def inline_source_name(view: str) -> str:
    return f"{view}__source"


def view_def(spec: FeatureView, entities: Mapping[str, dict], source: dict, *, inline: bool,
             options=None) -> dict[str, Any]:
    """`entities`: entity definitions by name (all of spec.entities); `source`: the source definition."""
    keys = []
    for name in spec.entities:
        entity = entities[name]
        keys.append([entity["join_key"], FEAST_DTYPES[entity["dtype"]], ""])
    fields = [[name, FEAST_DTYPES[f.dtype], f.description or ""] for name, f in spec.features.items()]
    return {
        "name": spec.name,
        "entities": list(spec.entities),
        "join_keys": [k[0] for k in keys],
        "source": source["name"],
        "inline_source": source if inline else None,
        "ttl_seconds": parse_duration(spec.ttl) if spec.ttl else 0,
        "online": spec.online,
        "schema": keys + fields,
        **_meta(spec, options),
    }


def service_def(spec: FeatureService, views: Mapping[str, dict], services: Mapping[str, dict],
                *, address: str, options=None, on_demand: Mapping[str, dict] | None = None) -> dict[str, Any]:
    """Resolve 'view:feature', 'view:*' and other services' names into (view, [features]) projections."""
    projections: dict[str, list[str] | None] = {}
    views = {**(on_demand or {}), **views}  # an on-demand view's definition has a schema and no join keys

    def add(view: str, feature: str | None, where: str) -> None:
        if view not in views:
            raise ProviderError(address, f"{where}: feature view {view!r} is not applied in Feast")
        known = [f[0] for f in views[view]["schema"] if f[0] not in views[view].get("join_keys", ())]
        if feature is None:
            projections[view] = None
            return
        if feature not in known:
            from ml_framework.errors import did_you_mean

            raise ProviderError(address, f"{where}: feature view {view!r} has no feature {feature!r}",
                                hint=did_you_mean(feature, known) or f"it has: {', '.join(known)}")
        current = projections.setdefault(view, [])
        if current is not None and feature not in current:
            current.append(feature)

    for i, ref in enumerate(spec.features):
        where = f"features.{i}"
        view, sep, feature = ref.partition(":")
        if sep:
            add(view, None if feature == "*" else feature, where)
            continue
        other = services.get(ref)
        if other is None:
            raise ProviderError(address, f"{where}: feature service {ref!r} is not applied in Feast")
        for other_view, other_features in other["features"]:
            if other_features is None:
                add(other_view, None, where)
            else:
                for name in other_features:
                    add(other_view, name, where)
    return {
        "name": spec.name,
        "features": [[view, feats] for view, feats in projections.items()],
        **_meta(spec, options),
    }


def on_demand_def(spec, view: Mapping[str, Any], views: Mapping[str, dict], *, address: str,
                  options=None) -> dict[str, Any]:
    """An OnDemandFeatureView: ``view``, its computation (features.derived.definition); ``views``: the
    applied feature-view definitions it reads (by name)."""
    for name in spec.views:
        if name not in views:
            raise ProviderError(address, f"views: feature view {name!r} is not applied in Feast")
    return {
        "name": spec.name,
        "views": list(spec.views),
        "request": [[n, FEAST_DTYPES[t]] for n, t in spec.request.items()],
        # no descriptions: Feast 0.49 checks the declared fields against those it infers by running the
        # transformation, descriptions included, and inferred ones have none (they stay in ml's specs)
        "schema": [[n, FEAST_DTYPES[f.dtype], ""] for n, f in spec.features.items()],
        "computation": dict(view),
        **_meta(spec, options),
    }
