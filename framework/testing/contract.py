"""The provider contract suite, importable by plugin authors (like dvc/testing/remote_tests.py).

    from ml_framework.testing.contract import ProviderContract

    class TestMyProvider(ProviderContract):
        @pytest.fixture
        def contract_project(self, tmp_path):      # a project directory with specs/ using your backend
            ...
        @pytest.fixture
        def contract_providers(self):              # backend name -> provider object (yours + any it needs)
            return {"mybackend": MyProvider()}

Every provider must pass: it registers (hooks, kinds, declared capabilities); apply then plan is empty;
a second apply calls no provider's apply; destroy removes everything (read says it is gone); an apply
interrupted half way keeps what it recorded and the next plan shows only what is left; a provider
declaring ``status`` reports ``running`` and ``ready`` for each resource it applied.

A plugin that contributes kinds (not installed while its tests run) hands its declaration to the suite
with the ``contract_plugins`` fixture.
"""

from __future__ import annotations

from typing import Mapping

import pytest

from ..plan.model import NOOP
from .harness import Harness

__all__ = ["ProviderContract", "CountingProvider"]


class CountingProvider:
    """Wraps a provider, counting apply/delete calls; can interrupt after `interrupt_after` applies."""

    def __init__(self, inner, interrupt_after: int | None = None):
        self._inner = inner
        self.applies = 0
        self.deletes = 0
        self.interrupt_after = interrupt_after

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def apply(self, request, ctx):
        if self.interrupt_after is not None and self.applies >= self.interrupt_after:
            raise KeyboardInterrupt
        result = self._inner.apply(request, ctx)
        self.applies += 1
        return result

    def delete(self, request, ctx):
        self.deletes += 1
        return self._inner.delete(request, ctx)


class ProviderContract:
    """Subclass and provide the `contract_project` and `contract_providers` fixtures (and
    `contract_plugins` for a plugin's own Plugin declarations)."""

    @pytest.fixture
    def contract_plugins(self):
        return []

    @pytest.fixture
    def counted(self, contract_providers):
        return {name: CountingProvider(p) for name, p in contract_providers.items()}

    @pytest.fixture
    def harness(self, contract_project, counted, contract_plugins):
        harness = Harness(contract_project, counted, plugins=contract_plugins)
        yield harness
        harness.close()

    def test_providers_pass_registration(self, contract_project, contract_providers, contract_plugins):
        from ..contract import verify_provider
        from . import registry_with

        registry = registry_with({}, project_dir=contract_project, plugins=contract_plugins)
        for name, provider in contract_providers.items():
            verify_provider(provider, name, capabilities=registry.capabilities, known_kinds=registry.kinds.names())

    def test_status_reports_each_applied_resource(self, harness, contract_providers):
        assert harness.apply().ok
        for record in harness.store.list_resources():
            provider = contract_providers.get(record.backend)
            if provider is None or "status" not in (getattr(provider, "capabilities", ()) or ()):
                continue
            info = provider.status(record, harness.project.root)
            assert isinstance(info, Mapping) and {"running", "ready"} <= set(info), \
                f"{record.address}: status() must report running and ready, got {info!r}"

    def test_apply_then_plan_is_empty(self, harness):
        report = harness.apply()
        assert report.ok, report.outcomes
        plan = harness.plan()
        assert not plan.has_changes, [(c.address, c.action, c.reasons) for c in plan.pending()]
        assert not plan.drift and not plan.errors

    def test_second_apply_calls_no_apply(self, harness, counted):
        assert harness.apply().ok
        before = {n: p.applies for n, p in counted.items()}
        report = harness.apply()
        assert report.ok and report.outcomes == []
        assert {n: p.applies for n, p in counted.items()} == before

    def test_destroy_removes_everything(self, harness, counted):
        assert harness.apply().ok
        recorded = harness.store.list_resources()
        assert recorded, "the contract project must define at least one resource"
        assert harness.destroy().ok
        assert harness.store.list_resources() == []
        from ..contract import ReadRequest

        for record in recorded:
            result = harness.registry.get(record.backend).read(ReadRequest(record, harness.project.root))
            assert not result.exists, f"{record.address} still exists after destroy"

    def test_interrupted_apply_loses_nothing_recorded(self, contract_project, contract_providers, contract_plugins):
        counted = {name: CountingProvider(p, interrupt_after=1) for name, p in contract_providers.items()}
        harness = Harness(contract_project, counted, plugins=contract_plugins)
        try:
            total = len(harness.plan().pending())
            report = harness.apply(parallelism=1)
            done = {o.address for o in report.outcomes if o.outcome == "succeeded"}
            assert report.interrupted or not report.ok
            recorded = {r.address for r in harness.store.list_resources()}
            assert done <= recorded
            for provider in counted.values():
                provider.interrupt_after = None
            plan = harness.plan()
            pending = {c.address for c in plan.pending()}
            assert not (pending & done), "resources applied before the interrupt are planned again"
            assert len(pending) == total - len(done)
            assert all(c.action == NOOP for c in plan.changes if c.address in done)
            assert harness.apply().ok
            assert not harness.plan().has_changes
        finally:
            harness.close()
