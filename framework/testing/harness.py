"""Drive the engine in-process: load specs, plan, apply, destroy against a real SQLite state store."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Mapping

from ..apply import ApplyReport, apply_plan
from ..operations import load_specs, make_plan, resources_for
from ..plan.model import Plan
from ..project import Project
from . import registry_with

__all__ = ["Harness"]


class Harness:
    """One project directory, its state store and a registry of the given providers."""

    def __init__(self, project_dir: Path, providers: Mapping[str, Any], *, state_url: str | None = None,
                 spec_dir: Path | None = None, plugins: Iterable[Any] = ()):
        """``plugins``: Plugin declarations to add to the installed ones (a plugin under test)."""
        self.project = Project.load(Path(project_dir), spec_dir=spec_dir)
        if state_url:
            self.project.state_url = state_url
        self.registry = registry_with(providers, project_dir=self.project.root, plugins=plugins)
        self.store = self.project.open_state()

    def plan(self, *, env: str | None = None, overrides: Iterable[str] = (), targets: Iterable[str] = (),
             refresh: bool = True, destroy: bool = False, retry: Iterable[str] = ()) -> Plan:
        loaded = load_specs(self.project, self.registry, env=env, overrides=overrides)
        return make_plan(self.project, self.registry, self.store, loaded, targets=targets, refresh=refresh,
                         destroy=destroy, retry=retry)

    def apply(self, plan: Plan | None = None, *, keep_going: bool = False, parallelism: int = 4,
              **plan_args) -> ApplyReport:
        lock = self.store.acquire_lock("apply")
        try:
            loaded = load_specs(self.project, self.registry, env=plan_args.get("env"),
                                overrides=plan_args.get("overrides", ()))
            plan = plan or make_plan(self.project, self.registry, self.store, loaded, **{
                k: v for k, v in plan_args.items() if k in ("targets", "refresh", "destroy", "retry")})
            return apply_plan(plan, resources_for(plan, loaded), self.store, self.registry, lock_id=lock.id,
                              project_dir=self.project.root, parallelism=parallelism, keep_going=keep_going)
        finally:
            self.store.release_lock(lock.id)

    def destroy(self) -> ApplyReport:
        return self.apply(destroy=True)

    def close(self) -> None:
        self.store.close()
