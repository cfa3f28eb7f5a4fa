"""OnDemandFeatureView: a Feast on-demand feature view whose transformation is ml's own computation of the
derived features (plugins/features/derived.py), registered so the `feast` CLI and SDK see it."""

from __future__ import annotations

from ml_framework.contract import ApplyResult, ReadResult

from .. import compile as comp
from .base import Handler

__all__ = ["OnDemandViewHandler"]


class OnDemandViewHandler(Handler):
    kind, section = "OnDemandFeatureView", "on_demand_feature_views"

    def fingerprint(self, backend, resource):
        """The source of each Python function its features call: editing one changes the view (and retrains
        what reads it). A missing file or function is an error here, at plan time."""
        from ml_framework.plugins.features.derived import DerivedFeatureError, function_source

        spec = backend.spec(self.kind, resource.name, resource.spec)
        digests = []
        for name, feature in spec.features.items():
            if feature.function:
                try:
                    digests.append(function_source(feature.function, backend.project_dir, spec.name, name)["digest"])
                except DerivedFeatureError as exc:
                    from ml_framework.errors import ProviderError

                    raise ProviderError(resource.address, f"features.{name}.function: {exc.message}") from None
        return {"transform_source": ",".join(digests)} if digests else {}

    def apply(self, backend, request, ctx):
        from ml_framework.errors import ProviderError
        from ml_framework.plugins.features.derived import definition

        from ..objects import build_on_demand

        resource = request.resource
        spec = backend.spec(self.kind, resource.name, resource.spec)
        upstream = {address: record.spec for address, record in ctx.upstream.items()}
        missing = [v for v in spec.views if f"featureview.{v}" not in upstream]
        if missing:
            raise ProviderError(resource.address, f"views: {', '.join(missing)} not applied yet")
        computation = definition(spec, upstream, backend.project_dir)
        manifest = backend.repo.read_manifest()
        d = comp.on_demand_def(spec, computation, manifest["feature_views"], address=resource.address,
                               options=backend.options(self.kind, spec, resource.config))
        import warnings

        with backend.feast(resource.address, "apply the on-demand feature view") as store:
            with backend.repo.infra_recorded_on_commit(store), warnings.catch_warnings():
                # Feast calls every on-demand view "experimental" at apply; ml's computation is its own
                warnings.filterwarnings("ignore", message="On demand feature view is an experimental feature")
                store.apply([build_on_demand(d, manifest)])
            self._remember(backend, spec.name, d)
            project = store.project
        return ApplyResult(outputs={"feast_name": spec.name, "project": project, "features": sorted(spec.features),
                                    "views": list(spec.views), "request": sorted(spec.request)},
                           message=f"{len(spec.features)} derived feature(s) from {', '.join(spec.views) or 'the request'}")

    def delete(self, backend, recorded, ctx):
        name = recorded.address.partition(".")[2]
        with backend.feast(recorded.address, "delete the on-demand feature view") as store:
            view = self._registered(store.registry.get_on_demand_feature_view, name, store.project)
            if view is not None:
                store.apply([], objects_to_delete=[view], partial=False)
            backend.repo.record_infra()
            self._remember(backend, name, None)

    def read(self, backend, recorded):
        from ..objects import describe_on_demand

        name = recorded.address.partition(".")[2]
        spec = backend.spec(self.kind, name, recorded.spec)
        with backend.feast(recorded.address, "read the on-demand feature view") as store:
            view = self._registered(store.registry.get_on_demand_feature_view, name, store.project)
        if view is None:
            return ReadResult(exists=False)
        actual = describe_on_demand(view)
        expected = {"features": {n: comp.FEAST_DTYPES[f.dtype] for n, f in spec.features.items()},
                    "views": sorted(spec.views), "request": sorted([f"{name}_request"] if spec.request else [])}
        return ReadResult(exists=True, outputs=recorded.outputs, drift=self._drift(expected, actual))
