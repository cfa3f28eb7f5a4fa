"""Source: a parquet file registered as a Feast FileSource, checked against its column contracts."""

from __future__ import annotations

from framework.contract import ApplyResult, ReadResult

from .. import compile as comp
from ..contracts import ColumnRule, Contract, validate
from .base import Handler, iso, not_found

__all__ = ["SourceHandler"]


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
        from ..objects import build_source

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
            "min_timestamp": iso(report.min_ts), "max_timestamp": iso(report.max_ts),
            "source_data": backend.fingerprints.key(path),
        })

    def delete(self, backend, recorded, ctx):
        name = recorded.address.partition(".")[2]
        with backend.feast(recorded.address, "delete the data source") as store:
            try:
                store.registry.delete_data_source(name, store.project, commit=True)
            except Exception as exc:
                if not not_found(exc):
                    raise
            self._remember(backend, name, None)

    def read(self, backend, recorded):
        from ..objects import describe_source

        name = recorded.address.partition(".")[2]
        spec = backend.spec(self.kind, name, recorded.spec)
        with backend.feast(recorded.address, "read the data source") as store:
            try:
                source = store.registry.get_data_source(name, store.project, allow_cache=True)
            except Exception as exc:
                if not_found(exc):
                    return ReadResult(exists=False)
                raise
        expected = {"path": comp.feast_path(spec.path, backend.project_dir, backend.repo.dir),
                    "timestamp_field": spec.timestamp_field,
                    "created_timestamp_column": spec.created_timestamp_field or ""}
        return ReadResult(exists=True, outputs=recorded.outputs, drift=self._drift(expected, describe_source(source)))
