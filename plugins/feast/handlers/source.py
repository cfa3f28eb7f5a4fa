"""Source: a parquet or CSV file registered as a Feast FileSource, checked against its column contracts.

A CSV source is converted (typed by its declared columns) to a parquet copy in the feature repository's
data folder when its content changes, and the FileSource points at the copy (csvdata.py)."""

from __future__ import annotations

from ml_framework.contract import ApplyResult, ReadResult

from .. import compile as comp
from ..contracts import ColumnRule, Contract
from .base import Handler, check_data, contract_hint, iso, not_found, remove_csv_copy

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
                        address=resource.address)
        return {"source_data": backend.fingerprints.key(backend.data_path(spec.path))}

    def apply(self, backend, request, ctx):
        from ..objects import build_source

        resource = request.resource
        spec = backend.spec(self.kind, resource.name, resource.spec)
        definition = comp.source_def(spec, spec.name, project_dir=backend.project_dir, repo_dir=backend.repo.dir,
                                     address=resource.address, options=backend.options(self.kind, spec,
                                                                                       resource.config))
        ctx.progress("checking the data contract" if definition["format"] != "csv" else
                     "checking the data contract (CSV, kept as a parquet copy for Feast)")
        report = check_data(backend, resource.address, definition, _source_contract(spec), owns_copy=True,
                            hint=contract_hint(resource))
        with backend.feast(resource.address, "apply the data source") as store:
            store.apply([build_source(definition)])
            self._remember(backend, spec.name, definition)
            project = store.project
        return ApplyResult(outputs={
            "feast_name": spec.name, "project": project, "path": definition["path"], "format": definition["format"],
            "rows": report.rows, "min_timestamp": iso(report.min_ts), "max_timestamp": iso(report.max_ts),
            "source_data": backend.fingerprints.key(backend.data_path(spec.path)),
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
            remove_csv_copy(backend, self._definition(backend, name, recorded.spec))

    @staticmethod
    def _definition(backend, name, data):
        spec = backend.spec("Source", name, data)
        return comp.source_def(spec, name, project_dir=backend.project_dir, repo_dir=backend.repo.dir,
                               address=f"source.{name}")

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
        definition = self._definition(backend, name, recorded.spec)
        expected = {"path": definition["path"], "timestamp_field": spec.timestamp_field,
                    "created_timestamp_column": spec.created_timestamp_field or ""}
        actual = describe_source(source)
        if definition["format"] == "csv":  # the parquet copy Feast reads must still be there
            expected["data_copy"] = "present"
            actual["data_copy"] = "present" if (backend.repo.dir / definition["path"]).is_file() else "missing"
        return ReadResult(exists=True, outputs=recorded.outputs, drift=self._drift(expected, actual))
