"""The dependency quarantine: private Feast and BentoML internals live in plugins/compat/ only.

* the installed Feast and BentoML are the versions the compat modules were tested with;
* every private object a compat module reaches (its ``INTERNALS``) still exists and takes the parameters
  the wrapper passes, and the Feast behaviours the wrappers rely on are still there;
* no module of plugins/ outside plugins/compat/ uses a private Feast/BentoML internal;
* importing a compat module imports neither library (nor pandas, numpy).

An upgrade of Feast or BentoML fails here, naming the compat module to re-check, rather than deep
inside an `ml apply`.
"""

from __future__ import annotations

import importlib
import inspect
import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ml_framework.plugins.compat import Internal
from ml_framework.plugins.compat import bentoml as compat_bentoml
from ml_framework.plugins.compat import feast as compat_feast

ROOT = Path(__file__).resolve().parents[2]
PLUGINS = ROOT / "plugins"
COMPAT = PLUGINS / "compat"
MODULES = {"feast": compat_feast, "bentoml": compat_bentoml}


def _source(module) -> str:
    return f"plugins/compat/{module.__name__.rpartition('.')[2]}.py"


# -- (a) the versions -------------------------------------------------------------------------------------
@pytest.mark.parametrize("module", MODULES.values(), ids=MODULES.keys())
def test_installed_version_is_the_tested_one(module):
    installed = module.installed()
    assert installed == module.TESTED_VERSION, (
        f"{module.DISTRIBUTION} {installed or '(not installed)'} is installed, but {module.__name__} "
        f"({_source(module)}) was tested with {module.DISTRIBUTION} {module.TESTED_VERSION}. Re-check every "
        f"wrapper in {_source(module)} and the objects in its INTERNALS against the new release (the other "
        f"tests of this file say which ones moved), run the {module.DISTRIBUTION} integration tests, then set "
        f"TESTED_VERSION there and the pin in constraints.txt.")
    module.check_version()  # no RuntimeError either


@pytest.mark.parametrize("module", MODULES.values(), ids=MODULES.keys())
def test_constraints_pin_the_tested_version(module):
    pins = dict(line.split("==", 1) for line in (ROOT / "constraints.txt").read_text().splitlines()
                if "==" in line and not line.lstrip().startswith("#"))
    pinned = pins.get(module.DISTRIBUTION, "").strip()
    assert pinned == module.TESTED_VERSION, (
        f"constraints.txt pins {module.DISTRIBUTION}=={pinned or '(nothing)'} but {module.__name__} "
        f"({_source(module)}) was tested with {module.TESTED_VERSION}: re-check that module, then make both agree")


@pytest.mark.parametrize("module", MODULES.values(), ids=MODULES.keys())
def test_check_version_names_module_versions_and_what_to_recheck(module, monkeypatch):
    monkeypatch.setattr(module, "TESTED_VERSION", "0.0.1")
    with pytest.raises(RuntimeError) as info:
        module.check_version()
    message = str(info.value)
    assert module.__name__ in message
    assert "0.0.1" in message and module.installed() in message
    assert f"{_source(module)}" in message and "INTERNALS" in message and "Re-check" in message


# -- (b) the wrapped internals ----------------------------------------------------------------------------
def _resolve(target: str):
    module_name, _, qualname = target.partition(":")
    obj = importlib.import_module(module_name)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


INTERNALS = [(name, internal) for name, module in MODULES.items() for internal in module.INTERNALS]


@pytest.mark.parametrize("library, internal", INTERNALS, ids=[i.target.rpartition(":")[2] for _, i in INTERNALS])
def test_wrapped_internal_still_exists_with_the_parameters_passed(library: str, internal: Internal):
    module = MODULES[library]
    where = (f"{module.__name__}.{internal.wrapper} ({_source(module)}) relies on {internal.target} "
             f"of {library} {module.TESTED_VERSION}; {library} {module.installed()} is installed")
    try:
        obj = _resolve(internal.target)
    except (ImportError, AttributeError) as exc:
        pytest.fail(f"{where}, where it is gone ({type(exc).__name__}: {exc}). Find its replacement and "
                    f"rewrite the wrapper and its INTERNALS entry.")
    assert hasattr(module, internal.wrapper), \
        f"INTERNALS names a wrapper {internal.wrapper} that {module.__name__} lacks"
    if internal.params is None:
        return
    signature = inspect.signature(obj)
    parameters = signature.parameters
    missing = [p for p in internal.params if p not in parameters]
    assert not missing, (f"{where}, where its signature is {signature}: no parameter {', '.join(missing)}. "
                         f"Rewrite the wrapper for the new signature and update its INTERNALS entry.")
    required = [name for name, p in parameters.items()
                if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
                and name not in internal.params]
    assert not required, (f"{where}, where its signature is {signature}: the wrapper does not pass the required "
                          f"{', '.join(required)}. Rewrite the wrapper and update its INTERNALS entry.")


def test_feast_apply_commits_the_registry_the_store_exposes():
    """recording_infra_on_commit patches `store.registry.commit`: FeatureStore.apply must commit through
    that same object, once, after its changes."""
    from feast import FeatureStore

    where = (f"{compat_feast.__name__}.recording_infra_on_commit ({_source(compat_feast)}) relies on it "
             f"(feast {compat_feast.installed()} installed, tested with {compat_feast.TESTED_VERSION})")
    assert "return self._registry" in inspect.getsource(FeatureStore.registry.fget), \
        f"FeatureStore.registry no longer returns self._registry; {where}"
    apply = inspect.getsource(FeatureStore.apply)
    assert apply.count("self._registry.commit()") == 1, \
        f"FeatureStore.apply no longer ends with one self._registry.commit(); {where}"


def test_feast_materialize_is_still_the_calls_we_mirror():
    """materialize.materialize_view makes the calls FeatureStore.materialize makes, minus the printing."""
    from feast import FeatureStore

    source = inspect.getsource(FeatureStore.materialize)
    for call in ("self._get_provider()", "materialize_single_feature_view(", "tqdm_builder=",
                 "self._registry.apply_materialization("):
        assert call in source, (
            f"FeatureStore.materialize no longer calls {call}: plugins/feast/materialize.py:materialize_view and "
            f"{compat_feast.__name__}.materialize_single_view ({_source(compat_feast)}) mirror it; re-check both")


def test_feast_local_provider_is_the_passthrough_provider():
    """The INTERNALS entries on PassthroughProvider are those of the provider `provider: local` builds."""
    from feast.infra.provider import PROVIDERS_CLASS_FOR_TYPE

    assert PROVIDERS_CLASS_FOR_TYPE["local"] == "feast.infra.passthrough_provider.PassthroughProvider", (
        f"Feast's local provider is now {PROVIDERS_CLASS_FOR_TYPE['local']}: re-check the PassthroughProvider "
        f"entries of INTERNALS in {_source(compat_feast)}")


def test_feast_field_status_not_found_is_the_value_online_hard_codes():
    from feast.protos.feast.serving.ServingService_pb2 import FieldStatus

    from ml_framework.plugins.feast import online

    hard_coded = getattr(online, "_NOT_FOUND", None)
    if hard_coded is None:
        pytest.skip("plugins/feast/online.py no longer hard-codes FieldStatus.NOT_FOUND")
    assert FieldStatus.NOT_FOUND == hard_coded, \
        "Feast's FieldStatus.NOT_FOUND changed: update _NOT_FOUND in plugins/feast/online.py"


def test_mmh3_hash_is_feasts_redis_field_name():
    import struct

    import mmh3

    expected = struct.pack("<Q", mmh3.hash("view:feature", signed=False))[:4]
    assert compat_feast.mmh3_hash("view:feature") == expected


def test_recording_infra_on_commit_patches_one_registry_and_restores_it():
    calls = []

    class Registry:
        def proto(self):
            return "proto"

        def update_infra(self, infra, project, commit=True):
            calls.append(("update_infra", infra, project, commit))

        def commit(self):
            calls.append(("commit",))

    class Provider:
        def plan_infra(self, config, desired_registry_proto):
            calls.append(("plan_infra", config, desired_registry_proto))
            return "infra"

    class Store:
        config, project, registry = "config", "proj", Registry()

        def _get_provider(self):
            return Provider()

    store, other = Store(), Registry()
    with compat_feast.recording_infra_on_commit(store):
        store.registry.commit()
        other.commit()
    assert calls == [("plan_infra", "config", "proto"), ("update_infra", "infra", "proj", False), ("commit",),
                     ("commit",)]
    assert "commit" not in vars(store.registry)  # the class's method again


# -- (c) nothing outside plugins/compat/ --------------------------------------------------------------------
_TARGETS = r"(registry|store|feature_store|online_store|online|client|container|BentoMLContainer)"
PRIVATE_PATTERNS = [(re.compile(pattern), what) for pattern, what in (
    (r"\._get_provider\b", "FeatureStore._get_provider"),
    (r"\._get_client\b", "an online store's _get_client"),
    (r"\b_mmh3\b", "feast.infra.online_stores.helpers._mmh3"),
    (r"\bbentoml\._internal\b", "bentoml._internal"),
    (r"\b_bentoml_(impl|sdk)\b", "BentoML's private packages _bentoml_impl/_bentoml_sdk"),
    (r"\b_model_store\s*=", "the private _model_store keyword of bentoml.models.create"),
    (r"(?<![\w.])(feast|bentoml)(\.\w+)*\._[A-Za-z]\w*", "a private name of feast/bentoml"),
    (r"^\s*from\s+(feast|bentoml)[\w.]*\s+import\s+.*\b_[A-Za-z]\w*", "a private name imported from feast/bentoml"),
    (r"\b(store|registry|online_store)\._[A-Za-z]\w*", "a private attribute of a Feast object"),
    (rf"\b{_TARGETS}\.\w+\s*=(?!=)", "an attribute assigned on a Feast/BentoML object (monkeypatch)"),
    (rf"\bdel\s+{_TARGETS}\.\w+", "an attribute deleted from a Feast/BentoML object (monkeypatch)"),
    (rf"\bsetattr\(\s*({_TARGETS}|feast|bentoml)\b", "setattr on a Feast/BentoML object (monkeypatch)"),
    (r"(?<![\w.])(feast|bentoml)(\.\w+)+\s*=(?!=)", "an attribute assigned on a Feast/BentoML module (monkeypatch)"),
)]


def _private_uses(text: str) -> list[tuple[int, str, str]]:
    """(line number, what it uses, the line) for each line of `text` using a private internal."""
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        what = [what for pattern, what in PRIVATE_PATTERNS if pattern.search(line)]
        if what:
            found.append((number, "; ".join(what), line.strip()))
    return found


@pytest.mark.parametrize("line", [
    "store._get_provider().materialize_single_feature_view(",
    "infra = store._get_provider().plan_infra(store.config, registry.proto())",
    "from feast.infra.online_stores.helpers import _mmh3",
    "client = online._get_client(store.config.online_store)",
    "registry.commit = commit_with_infra",
    "del registry.commit",
    "from bentoml._internal.marshal.dispatcher import CorkDispatcher",
    "from bentoml._internal.configuration.containers import BentoMLContainer",
    "import _bentoml_sdk",
    "_model_store=_store(),",
    "x = store._registry",
    "setattr(registry, 'commit', f)",
    "bentoml.models.create = fake",
])
def test_the_patterns_catch_the_known_private_uses(line):
    assert _private_uses(line), f"PRIVATE_PATTERNS miss {line!r}"


@pytest.mark.parametrize("line", [
    "self.spec = provider._spec(request.resource.spec)",  # our own provider
    "store.registry.get_feature_view(name, store.project, allow_cache=True)",
    "from feast import utils",
    "with bentoml.models.create(",
    "self._store = None",
    "if registry.commit == x:",
])
def test_the_patterns_allow_public_uses(line):
    assert not _private_uses(line), f"PRIVATE_PATTERNS flag the public use {line!r}"


def test_no_private_feast_or_bentoml_internal_outside_compat():
    offences = []
    for path in sorted(PLUGINS.rglob("*.py")):
        if COMPAT in path.parents:
            continue
        for number, what, line in _private_uses(path.read_text(encoding="utf-8")):
            offences.append(f"{path.relative_to(ROOT)}:{number}: {what}: {line}")
    assert not offences, (
        "private Feast/BentoML internals used outside plugins/compat/ — wrap each in plugins/compat/feast.py or "
        "plugins/compat/bentoml.py (a documented function, plus an INTERNALS entry) and call that instead:\n"
        + "\n".join(offences))


# -- (d) importing a compat module stays light ------------------------------------------------------------
HEAVY = ("feast", "bentoml", "_bentoml_impl", "_bentoml_sdk", "pandas", "numpy", "pyarrow", "dask", "redis", "mmh3")


def test_importing_the_compat_modules_imports_no_heavy_library(tmp_path):
    code = textwrap.dedent("""\
        import json, sys
        import ml_framework.plugins.compat.feast as f
        import ml_framework.plugins.compat.bentoml as b
        for module in (f, b):
            module.installed()
            try:
                module.check_version()
            except RuntimeError:
                pass
        first = sorted(sys.modules)
        import ml_framework.plugins.feast.repo, ml_framework.plugins.feast.materialize
        import ml_framework.plugins.models.artifacts
        print(json.dumps({"compat": first, "callers": sorted(sys.modules)}))
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    for label, modules in (("the compat modules", result["compat"]),
                           ("plugins/feast/repo.py, materialize.py, plugins/models/artifacts.py",
                            result["callers"])):
        heavy = sorted(m for m in modules if m.split(".")[0] in HEAVY)
        assert heavy == [], f"importing {label} imported {heavy}: import Feast/BentoML inside the functions"
