"""One handler per spec kind: apply, delete, read (and fingerprint where data is involved).

The provider dispatches on the kind (no isinstance ladders); each handler compiles its spec into a
definition (compile.py), checks data contracts before touching Feast (contracts.py), applies the Feast
object under the repository lock and rewrites the generated repository files (repo.py).
"""

from __future__ import annotations

from .base import Handler
from .entity import EntityHandler
from .on_demand import OnDemandViewHandler
from .service import FeatureServiceHandler
from .source import SourceHandler
from .store import FeatureStoreHandler
from .view import FeatureViewHandler

__all__ = ["HANDLERS", "Handler", "FeatureStoreHandler", "EntityHandler", "SourceHandler", "FeatureViewHandler",
           "FeatureServiceHandler", "OnDemandViewHandler"]

HANDLERS: dict[str, Handler] = {h.kind: h for h in (FeatureStoreHandler(), EntityHandler(), SourceHandler(),
                                                     FeatureViewHandler(), FeatureServiceHandler(),
                                                     OnDemandViewHandler())}
