"""Compatibility modules for the private internals of Feast and BentoML the built-in plugins rely on.

A support package for the built-in plugins, not a plugin: it registers nothing (no entry point, no
``Plugin`` object) and is imported only by the plugins' own modules.

The rule: every private Feast/BentoML internal is reached only through these modules —

* :mod:`.feast`    Feast (``FeatureStore._get_provider``, the provider's ``online_store``,
                   ``RedisOnlineStore._get_client``, ``_mmh3``, the ``registry.commit`` patch), tested
                   with ``feast`` :data:`.feast.TESTED_VERSION`;
* :mod:`.bentoml`  BentoML (``bentoml._internal``: ``CorkDispatcher``, ``BentoMLContainer``'s metrics
                   client, ``ModelStore``, ``ModelContext``; the private ``_model_store`` keyword of
                   ``bentoml.models.create``), tested with ``bentoml`` :data:`.bentoml.TESTED_VERSION`.

A private name is one the library does not document: a leading underscore (``_get_provider``), a
private package (``bentoml._internal``, ``_bentoml_impl``, ``_bentoml_sdk``), or an attribute assigned
on one of its objects (monkeypatching). Anything outside this package doing one of those fails
``tests/unit/test_compat.py``, which also pins the tested versions (``check_version``) and checks every
internal listed in each module's ``INTERNALS`` still exists with the parameters the wrappers pass. So an
upgrade of Feast or BentoML fails there, naming what to re-check, instead of deep inside an apply.

Each module imports its library lazily, inside the functions: importing it imports neither Feast nor
BentoML (nor pandas, numpy), so the plugins keep ``ml --help`` and ``ml validate`` light.
"""

from __future__ import annotations

import importlib.metadata
from typing import NamedTuple

__all__ = ["Internal", "installed_version", "version_mismatch"]


class Internal(NamedTuple):
    """One private object a compat module reaches, for the tests to check after an upgrade.

    ``target``: ``"module:Qualified.name"``. ``params``: the parameter names the wrapper passes (by
    keyword or position); ``None`` for an attribute whose existence alone is relied on. ``wrapper``:
    the compat function that uses it."""

    target: str
    params: tuple[str, ...] | None
    wrapper: str


def installed_version(distribution: str) -> str | None:
    """The installed version of a distribution (``importlib.metadata``: no import of the library)."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def version_mismatch(module: str, distribution: str, tested: str, recheck: str) -> str | None:
    """None when ``distribution`` is installed at ``tested``; else the message naming what to re-check."""
    installed = installed_version(distribution)
    if installed == tested:
        return None
    found = f"{installed} is installed" if installed else "it is not installed"
    return (f"{module} was tested with {distribution} {tested}, but {found}. Re-check {recheck}; "
            f"then run tests/unit/test_compat.py and the {distribution} integration tests, and set "
            f"TESTED_VERSION in {module} (and the pin in constraints.txt) to the new version.")
