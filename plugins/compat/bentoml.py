"""The private BentoML internals the built-in plugins use, wrapped; tested with BentoML :data:`TESTED_VERSION`.

Nothing here imports BentoML at module level: each function imports what it needs when called.

* :func:`cork_dispatcher`  ``bentoml._internal.marshal.dispatcher.CorkDispatcher`` (adaptive batching)
* :func:`metrics_client`   ``bentoml._internal.configuration.containers.BentoMLContainer.metrics_client``
* :func:`model_store`      ``bentoml._internal.models.model.ModelStore`` (a store at a path of our choosing:
                           BentoML caches its home at first use)
* :func:`model_context`    ``bentoml._internal.models.model.ModelContext``
* :func:`create_model`     ``bentoml.models.create`` with its private ``_model_store`` keyword
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

from . import Internal, installed_version, version_mismatch

__all__ = ["TESTED_VERSION", "DISTRIBUTION", "INTERNALS", "check_version", "installed", "cork_dispatcher",
           "metrics_client", "model_store", "model_context", "create_model"]

TESTED_VERSION = "1.4.39"
DISTRIBUTION = "bentoml"

_DISPATCHER = "bentoml._internal.marshal.dispatcher:CorkDispatcher"
_MODEL = "bentoml._internal.models.model"

#: Every private object reached below, with the parameters the wrappers pass (see tests/unit/test_compat.py).
INTERNALS: tuple[Internal, ...] = (
    Internal(_DISPATCHER + ".__init__",
             ("self", "max_latency_in_ms", "max_batch_size", "fallback", "get_batch_size"), "cork_dispatcher"),
    Internal(_DISPATCHER + ".__call__", ("self", "callback"), "cork_dispatcher"),
    Internal("bentoml._internal.configuration.containers:BentoMLContainer.metrics_client.get", (), "metrics_client"),
    Internal("bentoml._internal.server.metrics.prometheus:PrometheusClient.Counter", None, "metrics_client"),
    Internal("bentoml._internal.server.metrics.prometheus:PrometheusClient.Histogram", None, "metrics_client"),
    Internal(_MODEL + ":ModelStore", ("base_path",), "model_store"),
    Internal(_MODEL + ":ModelStore.delete", ("self", "tag"), "model_store"),
    Internal(_MODEL + ":ModelContext", ("framework_name", "framework_versions"), "model_context"),
    Internal("bentoml.models:create",
             ("name", "_model_store", "module", "api_version", "signatures", "labels", "metadata", "context"),
             "create_model"),
)

_RECHECK = ("every wrapper in plugins/compat/bentoml.py against the new BentoML (the objects in its INTERNALS: "
            "CorkDispatcher, BentoMLContainer.metrics_client, ModelStore, ModelContext, the _model_store "
            "keyword of bentoml.models.create)")


def installed() -> str | None:
    """The installed BentoML version (None: not installed); BentoML itself is not imported."""
    return installed_version(DISTRIBUTION)


def check_version() -> None:
    """Raise RuntimeError, naming this module, both versions and what to re-check, unless the installed
    BentoML is :data:`TESTED_VERSION`."""
    message = version_mismatch(__name__, DISTRIBUTION, TESTED_VERSION, _RECHECK)
    if message:
        raise RuntimeError(message)


def cork_dispatcher(*, max_latency_in_ms: float, max_batch_size: int, fallback: Callable[[], Any],
                    get_batch_size: Callable[[Any], int]) -> Any:
    """BentoML's adaptive batching dispatcher (CORK). Call it with ``async batch(items) -> results``; it
    returns ``async call(item) -> result``. ``fallback()`` is called for a request over the latency
    budget (raise from it to handle that request another way). Create it inside a running event loop."""
    from bentoml._internal.marshal.dispatcher import CorkDispatcher

    return CorkDispatcher(max_latency_in_ms=max_latency_in_ms, max_batch_size=max_batch_size,
                          fallback=fallback, get_batch_size=get_batch_size)


def metrics_client() -> Any:
    """BentoML's process-wide Prometheus client (multiprocess-safe): ``.Counter(...)``, ``.Histogram(...)``
    with prometheus_client's arguments, exposed on the service's ``/metrics``."""
    from bentoml._internal.configuration.containers import BentoMLContainer

    return BentoMLContainer.metrics_client.get()


def model_store(path: str) -> Any:
    """A BentoML model store rooted at ``path`` (the folder must exist): ``.delete(tag)``, and where
    :func:`create_model` saves."""
    from bentoml._internal.models.model import ModelStore

    return ModelStore(path)


def model_context(framework_name: str, framework_versions: Mapping[str, str]) -> Any:
    """The ``context`` of a new model: the training framework and its versions (BentoML adds its own
    and Python's)."""
    from bentoml._internal.models.model import ModelContext

    return ModelContext(framework_name=framework_name, framework_versions=dict(framework_versions))


def create_model(name: str, *, store: Any, **options: Any) -> Any:
    """``bentoml.models.create(name, **options)`` saving into ``store`` (:func:`model_store`) rather than
    the store of BentoML's cached home: a context manager yielding the new model."""
    import bentoml

    return bentoml.models.create(name, _model_store=store, **options)
