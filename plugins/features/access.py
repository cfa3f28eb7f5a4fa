"""The feature-access seam: what other plugins (training, batch scoring, serving, monitoring) ask of the
feature store, whichever backend implements it.

    access = ctx.services.get(FEATURE_ACCESS)          # during apply (or registry.services().get(...))
    frame = access.training_frame(labels, ["txn_stats:amount_mean_7d"], timestamp_field="event_ts",
                                  label_columns=["is_fraud"])
    found = access.online_features(["txn_stats:amount_mean_7d"], [{"customer_id": 42}])

The feast plugin provides it (``Plugin(services={"feature_access": ...})``). Consumers import this module
(public names of the features domain) and never a backend's modules.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Protocol, Sequence

__all__ = ["FEATURE_ACCESS", "FeatureAccess", "OnlineFeatures"]

FEATURE_ACCESS = "feature_access"  # the service name


@dataclass(frozen=True)
class OnlineFeatures:
    """Column-wise values (as Feast's ``OnlineResponse.to_dict()``), plus what was not found."""

    features: dict[str, list[Any]]
    missing: list[dict[str, Any]] = field(default_factory=list)  # entity rows unknown to every requested view
    not_found: dict[str, list[int]] = field(default_factory=dict)  # feature -> indexes of rows without a value

    @property
    def complete(self) -> bool:
        return not self.not_found

    def rows(self) -> list[dict[str, Any]]:
        names = list(self.features)
        count = len(self.features[names[0]]) if names else 0
        return [{name: self.features[name][i] for name in names} for i in range(count)]


class FeatureAccess(Protocol):
    """Point-in-time training frames and online lookups. ``features``: ``"view:feature"`` references or
    the name of a feature service."""

    def training_frame(self, labels: Any, features: Sequence[str] | str, *, timestamp_field: str,
                       label_columns: Sequence[str], full_feature_names: bool = False) -> Any:
        """A pandas DataFrame: join keys, ``timestamp_field``, ``label_columns`` and the features, one row per
        label row, in the order of ``labels``, each feature as of the label's time (no leakage)."""

    def online_features(self, features: Sequence[str] | str, entity_rows: Sequence[Mapping[str, Any]]) -> OnlineFeatures:
        """The latest values for ``entity_rows`` from the online store, with unknown entities reported."""

    def join_keys(self, view: str) -> list[str]:
        """The join keys of a feature view."""

    def warm(self) -> None:
        """Prepare for low-latency lookups (a serving process calls it at start-up)."""

    def check(self) -> None:
        """Raise an MLError (with a hint) when online lookups cannot work yet, e.g. nothing is applied."""

    @property
    def inline_lookups(self) -> bool:
        """True when a lookup is a fast local read (an event loop may call it inline, not in a thread)."""

    def describe(self) -> str:
        """Where the features come from, for messages (e.g. "Feast repository feature_repo")."""
