"""Renaming a feature view in place (``kind: Moved``): the Feast view takes its new name, with its online
rows, and the Feast objects that name it (feature services, on-demand views) follow; nothing that reads
it is retrained.

Feast has no rename, so the view is applied under the new name, its online rows are loaded again from
its offline source up to the time they were last loaded (the same rows: what was online stays online,
nothing newer), the objects naming it are re-applied against it, and the old view is deleted — in that
order, so a run stopped anywhere is finished by the next one (each step is idempotent; the manifest,
written last, says whether the rename is done). An aggregated view's rows move with it (no recompute).

Model versions trained before the rename name the old view in their feature references: the manifest
keeps ``renamed_views`` (old -> new), and the online and offline lookups follow it
(:func:`follow_renames`), so a deployment serving such a version keeps answering.
"""

from __future__ import annotations

import os
from datetime import datetime, timezone
from typing import Any, Mapping, Sequence

__all__ = ["move_feature_view", "follow_renames", "follow", "renamed_views", "manifest_state"]

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def renamed_views(repo_dir) -> dict[str, str]:
    """old name -> current name of the views renamed in the repository at ``repo_dir`` (chains resolved)."""
    return manifest_state(repo_dir)[0]


def manifest_state(repo_dir) -> tuple[dict[str, str], tuple]:
    """(renamed views, a token that changes whenever ml rewrites the repository's manifest — after every
    change it makes to the registry: a long-lived FeatureStore refreshes its registry cache then)."""
    import json
    from pathlib import Path

    from .repo import MANIFEST_FILE

    path = Path(repo_dir) / MANIFEST_FILE
    try:
        stat = path.stat()
    except OSError:
        return {}, ()
    key = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
    cached = _CACHE.get(str(path))
    if cached is not None and cached[0] == key:
        return cached[1], key
    try:
        found = dict(json.loads(path.read_text()).get("renamed_views") or {})
    except (OSError, ValueError):
        found = {}
    _CACHE[str(path)] = (key, found)
    return found, key


_CACHE: dict[str, tuple[tuple, dict[str, str]]] = {}


def follow_renames(repo_dir, refs: Sequence[str]) -> list[str]:
    """``refs`` ("view:feature") with renamed views replaced by their current names."""
    renamed = renamed_views(repo_dir) if repo_dir is not None else {}
    return follow(renamed, refs)


def follow(renamed: Mapping[str, str], refs: Sequence[str]) -> list[str]:
    if not renamed:
        return list(refs)
    out = []
    for ref in refs:
        view, sep, feature = ref.partition(":")
        out.append(f"{renamed[view]}{sep}{feature}" if sep and view in renamed else ref)
    return out


def move_feature_view(backend, request, ctx) -> dict[str, Any]:
    from ml_framework.errors import ProviderError

    from ..features.kinds import InlineSource
    from . import compile as comp
    from .materialize import materialize_view
    from .objects import build_on_demand, build_service, build_view

    old = str(request.recorded.spec.get("name") or request.recorded.address.split(".", 1)[1])
    new = str(request.resource.spec.get("name") or request.resource.name)
    address = request.resource.address
    outputs = dict(request.recorded.outputs or {})
    with backend.repo.lock():
        manifest = backend.repo.read_manifest()
        views = manifest["feature_views"]
        if old not in views:
            if new in views:  # renamed by an apply that stopped before removing the old view
                with backend.feast(address, "remove the renamed feature view"):
                    _remove_old(backend, old, bool(outputs.get("aggregations")) or
                                not isinstance(request.recorded.spec.get("source"), str))
                return {**outputs, "feast_name": new}
            raise ProviderError(address, f"feature view {old!r} is not in the Feast repository: nothing to rename",
                                hint="plan again: a view that does not exist is created")
        definition = {**views[old], "name": new}
        if definition.get("inline_source"):
            spec = backend.spec("FeatureView", new, request.resource.spec)
            inline = definition["inline_source"]
            if spec.aggregations:  # its aggregated rows move with it
                from ml_framework.plugins.features.aggregates import output_path

                source_file, target = backend.project_dir / output_path(old), backend.project_dir / output_path(new)
                if source_file.is_file():
                    target.parent.mkdir(parents=True, exist_ok=True)
                    os.replace(source_file, target)
                source = InlineSource(path=output_path(new), timestamp_field=inline["timestamp_field"])
            else:
                source = spec.source
            inline = comp.source_def(source, comp.inline_source_name(new), project_dir=backend.project_dir,
                                     repo_dir=backend.repo.dir, address=address,
                                     description=inline.get("description"))
            definition.update(source=inline["name"], inline_source=inline)
        renamed = _renamed_manifest(manifest, old, new, definition)
        entities = {n: renamed["entities"][n] for n in definition["entities"]}
        source = definition.get("inline_source") or renamed["sources"][definition["source"]]
        with backend.feast(address, "rename the feature view") as store:
            view = build_view(definition, entities, source)
            objects: list[Any] = [view]
            feast_views = {new: view}
            for name, d in renamed["on_demand_feature_views"].items():
                if old in manifest["on_demand_feature_views"][name]["views"]:
                    odfv = build_on_demand(d, renamed)
                    objects.append(odfv)
                    feast_views[name] = odfv
            for name, d in renamed["feature_services"].items():
                if any(v == old for v, _ in manifest["feature_services"][name]["features"]):
                    lookup = {v: feast_views.get(v) or _registered_view(store, v) for v, _ in d["features"]}
                    objects.append(build_service(d, lookup))
            with backend.repo.infra_recorded_on_commit(store):
                store.apply(objects)
            until = outputs.get("materialized_until")
            if definition.get("online") and until:
                ctx.progress(f"loading {new}'s online rows again, up to {until} (as {old} held them)")
                materialize_view(store, new, EPOCH, datetime.fromisoformat(until))
            # recorded before the old view goes: lookups of the old name follow the rename from now on
            backend.repo.write_manifest(renamed)
            _remove_old(backend, old, bool(views[old].get("inline_source")))
    ctx.progress(f"renamed the Feast feature view {old} → {new}")
    result = {**outputs, "feast_name": new}
    if definition.get("inline_source"):
        result["source_path"] = definition["inline_source"]["path"]
    return result


def _renamed_manifest(manifest: Mapping[str, dict], old: str, new: str, definition: dict) -> dict[str, dict]:
    """The manifest once ``old`` is ``new``: the view, what names it, and the rename itself."""
    out = {section: dict(entries) for section, entries in manifest.items()}
    out["feature_views"].pop(old)
    out["feature_views"][new] = definition
    out["feature_services"] = {n: ({**s, "features": [[new if v == old else v, f] for v, f in s["features"]]}
                                   if any(v == old for v, _ in s["features"]) else s)
                               for n, s in out["feature_services"].items()}
    out["on_demand_feature_views"] = {n: ({**o, "views": [new if v == old else v for v in o["views"]]}
                                          if old in o["views"] else o)
                                      for n, o in out["on_demand_feature_views"].items()}
    renamed = {k: (new if v == old else v) for k, v in dict(out.get("renamed_views") or {}).items()}
    renamed[old] = new
    renamed.pop(new, None)  # renamed back: its own name again
    out["renamed_views"] = renamed
    return out


def _remove_old(backend, old: str, inline: bool) -> None:
    """The old view (and its online table, its inline source) out of Feast: idempotent."""
    from .handlers.view import remove_view

    store = backend.repo.store()
    store.registry.refresh(project=store.project)
    remove_view(backend, store, old, inline=inline)


def _registered(store, name: str):
    from .handlers.base import not_found

    try:
        return store.registry.get_feature_view(name, store.project, allow_cache=False)
    except Exception as exc:
        if not_found(exc):
            return None
        raise


def _registered_view(store, name: str):
    found = _registered(store, name)
    return found if found is not None else store.registry.get_on_demand_feature_view(name, store.project)
