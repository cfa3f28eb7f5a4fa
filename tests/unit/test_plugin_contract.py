"""What a plugin author meets when a declaration is wrong: one clear error naming the plugin and what
to fix — at registration, never as a traceback at apply."""

from __future__ import annotations

from typing import ClassVar, Literal

import pytest
from pydantic import Field

from ml_framework.contract import BaseProvider, Capability, Command, Kind, Plugin, verify_provider
from ml_framework.errors import PluginError
from ml_framework.plugin_registry import PluginRegistry
from ml_framework.spec.kinds import SpecBase
from ml_framework.testing import registry_with, run_cli


class Widget(SpecBase):
    kind: Literal["Widget"]
    size: int = Field(default=1, ge=1)
    part: str | None = None
    backend: str = "widgets"


class Gadget(SpecBase):
    kind: Literal["Gadget"]
    backend: str = "widgets"


def _registry(*plugins: Plugin) -> PluginRegistry:
    return registry_with({}, plugins=plugins, installed_kinds=False)


def test_two_plugins_claiming_one_kind_or_plural_are_named_both():
    a = Plugin("a", kinds=(Kind("Widget", plural="widgets", schema=Widget),))
    b = Plugin("b", kinds=(Kind("Widget", plural="others", schema=Widget),))
    with pytest.raises(PluginError, match=r"plugins 'a' and 'b' both contribute kind 'Widget'"):
        _registry(a, b).kinds
    c = Plugin("c", kinds=(Kind("Gadget", plural="widgets", schema=Gadget),))
    with pytest.raises(PluginError, match=r"plugins 'a' and 'c' both contribute plural 'widgets'"):
        _registry(a, c).kinds


def test_a_schema_that_does_not_fit_its_kind_is_refused_naming_plugin_and_kind():
    wrong = _registry(Plugin("w", kinds=(Kind("Gizmo", plural="gizmos", schema=Widget),))).kinds
    with pytest.raises(PluginError, match=r"plugin 'w', kind Gizmo: the schema's kind field must be Literal\['Gizmo'\]"):
        wrong.schema("Gizmo")
    missing = _registry(Plugin("m", kinds=(Kind("Widget", plural="widgets", schema="no_such_module:Widget"),))).kinds
    with pytest.raises(PluginError, match=r"plugin 'm': cannot import the schema of kind Widget"):
        missing.schema("Widget")
    bad_ref = _registry(Plugin("r", kinds=(Kind("Widget", plural="widgets", schema=Widget, references={"nope": "Gadget"}),))).kinds
    with pytest.raises(PluginError, match=r"reference field 'nope' is not a field of Widget"):
        bad_ref.schema("Widget")


def test_declared_references_become_edges():
    kinds = _registry(Plugin("w", kinds=(Kind("Widget", plural="widgets", schema=Widget, references={"part": "Gadget"}),
                                         Kind("Gadget", plural="gadgets", schema=Gadget)))).kinds
    spec = kinds.schema("Widget").model_validate({"kind": "Widget", "name": "w1", "part": "g1"})
    assert kinds.references(spec) == [("part", "gadget.g1")]


class Rollbacker(BaseProvider):
    name: ClassVar[str] = "widgets"
    kinds: ClassVar[tuple[str, ...]] = ("Widget",)

    def rollback(self, record, project_dir, *, to=None, progress=None, reason=""):
        return {}


def test_capabilities_are_checked_at_registration():
    registry = _registry(Plugin("w", kinds=(Kind("Widget", plural="widgets", schema=Widget),)))
    with pytest.raises(PluginError, match=r"plugin 'widgets' defines rollback\(\) but does not declare the capability 'rollback'"):
        registry.register("widgets", Rollbacker())

    class Declared(Rollbacker):
        capabilities = ("rollback",)

    registry.register("widgets", Declared())
    assert registry.capable("widgets", "rollback") is not None and registry.capable("widgets", "status") is None

    class Short(BaseProvider):
        name, kinds, capabilities = "widgets", ("Widget",), ("rollback",)

        def rollback(self, record, project_dir):
            return {}

    with pytest.raises(PluginError, match=r"rollback\(\) of capability 'rollback' lacks parameter\(s\) to, progress, reason"):
        verify_provider(Short(), "widgets", capabilities=registry.capabilities)

    class Unknown(BaseProvider):
        name, kinds, capabilities = "widgets", ("Widget",), ("rolback",)

    with pytest.raises(PluginError, match=r"unknown capability 'rolback'") as info:
        verify_provider(Unknown(), "widgets", capabilities=registry.capabilities)
    assert "rollback" in (info.value.hint or "")

    class Versioned(BaseProvider):  # `version` forgot its @property: `ml plugins` could not print it
        name, kinds = "widgets", ("Widget",)

        def version(self):
            return "1.0"

    with pytest.raises(PluginError, match=r"'version' must be text") as info:
        verify_provider(Versioned(), "widgets", capabilities=registry.capabilities)
    assert "@property" in (info.value.hint or "")


def test_a_plugin_may_declare_a_capability_of_its_own():
    from typing import Protocol

    class Exports(Protocol):
        def export(self, record, path) -> None: ...

    plugin = Plugin("w", kinds=(Kind("Widget", plural="widgets", schema=Widget),),
                    capabilities=(Capability("export", Exports),))

    class Exporter(BaseProvider):
        name, kinds, capabilities = "widgets", ("Widget",), ("export",)

        def export(self, record, path):
            pass

    registry = _registry(plugin)
    registry.register("widgets", Exporter())
    assert registry.capable("widgets", "export") is not None


def test_a_provider_for_a_kind_no_plugin_contributes_is_refused():
    registry = _registry(Plugin("w", kinds=(Kind("Widget", plural="widgets", schema=Widget),)))

    class Stray(BaseProvider):
        name, kinds = "stray", ("Widgte",)

    with pytest.raises(PluginError, match=r"plugin 'stray' handles kind 'Widgte', which no installed plugin contributes") as info:
        registry.register("stray", Stray())
    assert "Widget" in (info.value.hint or "")


def test_a_command_that_cannot_load_explains_itself_and_ml_still_works(tmp_path):
    broken = Plugin("w", commands=(Command("widgets", "no_such_module:app", "Widgets."),))
    listed = run_cli(["--help"], providers={}, plugins=[broken], cwd=tmp_path)
    assert listed.exit_code == 0 and "widgets" in listed.output and "Widgets." in listed.output
    ran = run_cli(["widgets"], providers={}, plugins=[broken], cwd=tmp_path)
    assert ran.exit_code == 1
    assert "plugin 'w' contributes `ml widgets` (no_such_module:app) but it cannot be loaded" in ran.output
    assert "Traceback" not in ran.output
    assert run_cli(["--version"], providers={}, plugins=[broken], cwd=tmp_path).exit_code == 0


def test_specs_of_a_kind_whose_plugin_failed_to_load_say_so(tmp_path, monkeypatch):
    (tmp_path / "specs").mkdir()
    (tmp_path / "specs" / "w.yaml").write_text("kind: Widget\nname: w1\n")
    (tmp_path / "widgetplugin.py").write_text('raise ImportError("libwidget.so: cannot open shared object file")\n')
    (tmp_path / "ml.yaml").write_text('plugins:\n  local: {widgets: "widgetplugin:plugin"}\n')
    result = run_cli(["validate"], cwd=tmp_path)
    assert result.exit_code == 1
    assert "specs/w.yaml:1: kind: unknown kind 'Widget'" in result.output
    assert "plugins that failed to load" in result.output and "libwidget.so" in result.output
