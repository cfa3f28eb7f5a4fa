"""Entity: a Feast entity with one join key."""

from __future__ import annotations

from ml_framework.contract import ApplyResult, ReadResult

from .. import compile as comp
from .base import Handler, not_found

__all__ = ["EntityHandler"]


class EntityHandler(Handler):
    kind, section = "Entity", "entities"

    def apply(self, backend, request, ctx):
        from ..objects import build_entity

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
                if not not_found(exc):
                    raise
            self._remember(backend, name, None)

    def read(self, backend, recorded):
        from ..objects import describe_entity

        name = recorded.address.partition(".")[2]
        spec = backend.spec(self.kind, name, recorded.spec)
        with backend.feast(recorded.address, "read the entity") as store:
            try:
                entity = store.registry.get_entity(name, store.project, allow_cache=True)
            except Exception as exc:
                if not_found(exc):
                    return ReadResult(exists=False)
                raise
        expected = {"join_key": spec.join_key, "value_type": comp.ENTITY_VALUE_TYPES[spec.dtype]}
        return ReadResult(exists=True, outputs=recorded.outputs, drift=self._drift(expected, describe_entity(entity)))
