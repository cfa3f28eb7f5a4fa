"""The model-artifact seam: how a saved version of each flavour is loaded back for prediction.

A trainer plugin owns its flavour: it saves the artifact (``ml_model.json`` plus its files) and provides
the loader as the service ``model_flavor.<flavour>`` (``Plugin(services={"model_flavor.torch": ...})``).
Serving, batch scoring and monitoring load any flavour through :func:`flavor_loader`, never by importing
the trainer's modules.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Callable, Mapping, Protocol

__all__ = ["ModelFlavor", "flavor_loader", "SERVICE_PREFIX"]

SERVICE_PREFIX = "model_flavor."


class ModelFlavor(Protocol):
    """Loads the artifact in ``folder`` (its ``ml_model.json`` already read into ``schema``) and returns
    ``predict(frame) -> numpy array`` on a pandas DataFrame holding ``schema["features"]``: P(label == 1)
    (binary), class probabilities (multiclass) or values (regression)."""

    def load(self, folder: Path, schema: Mapping[str, Any]) -> Callable[[Any], Any]: ...

    def load_rows(self, folder: Path, schema: Mapping[str, Any]) -> tuple[Callable[[Mapping[str, Any]], Any],
                                                                        Callable[[Any], Any]] | None:
        """A serving fast path, or None: ``(encode, predict_batch)`` — ``encode(values: dict) -> row`` and
        ``predict_batch(rows) -> numpy array`` of the same numbers :meth:`load` gives, without pandas."""


_LOADERS: dict[str, ModelFlavor] = {}
_GUARD = threading.Lock()


def flavor_loader(flavor: str, services=None) -> ModelFlavor:
    """The loader of ``flavor`` from ``services`` (or the installed plugins' services, found once)."""
    with _GUARD:
        found = _LOADERS.get(flavor)
        if found is not None and services is None:
            return found
        if services is None:
            from ml_framework.plugin_registry import PluginRegistry

            services = PluginRegistry().services()
        name = SERVICE_PREFIX + flavor
        if name not in services.names():
            known = [n[len(SERVICE_PREFIX):] for n in services.names() if n.startswith(SERVICE_PREFIX)]
            raise ValueError(f"unknown model flavor {flavor!r}: no installed plugin provides {name!r}"
                             + (f" (flavors: {', '.join(known)})" if known else ""))
        found = services.get(name)
        _LOADERS[flavor] = found
        return found
