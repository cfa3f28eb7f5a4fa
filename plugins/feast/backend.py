"""What every kind's handler shares for one project: settings, the Feast repository, the fingerprint
cache, and helpers to turn engine records back into typed specs. No Feast import here."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Mapping

from ml_framework.contract import ApplyContext
from ml_framework.errors import ProviderError
from ml_framework.plugins.features import kinds as feature_kinds

from .errors import feast_errors
from .fingerprint import FingerprintCache
from .repo import FeastRepo
from .settings import OPTIONS_BY_KIND, FeastSettings

__all__ = ["Backend"]


class Backend:
    def __init__(self, project_dir: Path, settings: FeastSettings):
        self.project_dir = Path(project_dir).resolve()
        self.settings = settings
        cache_dir = settings.cache_path(self.project_dir)
        self.repo = FeastRepo(settings.repo_path(self.project_dir), lock_dir=cache_dir)
        self.fingerprints = FingerprintCache(cache_dir)
        self.adopting: set[str] = set()  # addresses being adopted (kind: Import): their online rows are kept

    @contextmanager
    def keeping_online_rows(self, address: str):
        """While ``address`` is adopted, its apply does not materialize (what is online stays)."""
        self.adopting.add(address)
        try:
            yield
        finally:
            self.adopting.discard(address)

    # -- specs ---------------------------------------------------------------------------------------------
    @staticmethod
    def spec(kind: str, name: str, data: Mapping[str, Any]):
        """The typed spec of a resource from its canonical (JSON) form."""
        body = {k: v for k, v in dict(data).items() if k not in ("kind", "name")}
        return getattr(feature_kinds, kind).model_validate({"kind": kind, "name": name, **body})

    @staticmethod
    def options(kind: str, spec, config: Any = None):
        model = OPTIONS_BY_KIND.get(kind)
        if model is None:
            return None
        if isinstance(config, model):
            return config
        return model.model_validate(getattr(spec, "options", {}) or {})

    def data_path(self, path: str) -> Path:
        candidate = Path(path)
        return candidate if candidate.is_absolute() else self.project_dir / candidate

    # -- Feast ---------------------------------------------------------------------------------------------
    @contextmanager
    def feast(self, address: str, action: str) -> Iterator[Any]:
        """The FeatureStore, locked and with a fresh registry, Feast errors mapped to the address."""
        with self.repo.lock(), feast_errors(address, action):
            store = self.repo.store()
            store.registry.refresh(project=store.project)
            yield store

    def upstream_spec(self, ctx: ApplyContext | None, address: str):
        """A dependency's spec as recorded by the engine, or None."""
        if ctx is None:
            return None
        record = ctx.upstream.get(address)
        if record is None:
            return None
        kind = record.kind
        return self.spec(kind, address.partition(".")[2], record.spec)

    def missing(self, address: str, what: str, field: str) -> ProviderError:
        return ProviderError(address, f"{field}: {what} is not applied in Feast yet",
                             hint="apply it first (it is a dependency of this resource)")
