"""The feast plugin's implementation of the features domain's feature-access seam
(ml_framework.plugins.features.access). Other plugins get it from the services, never from here."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

from ml_framework.plugins.features.access import OnlineFeatures

__all__ = ["FeastFeatureAccess", "feature_access"]


class FeastFeatureAccess:
    """Feature access through one Feast repository (its FeatureStore is built once per process)."""

    def __init__(self, repo: str | Path):
        self.repo = Path(repo)

    def training_frame(self, labels: Any, features: Sequence[str] | str, *, timestamp_field: str,
                       label_columns: Sequence[str], full_feature_names: bool = False) -> Any:
        from .training import build_training_frame

        return build_training_frame(self.repo, labels, features, timestamp_field=timestamp_field,
                                    label_columns=list(label_columns), full_feature_names=full_feature_names)

    def online_features(self, features: Sequence[str] | str, entity_rows: Sequence[Mapping[str, Any]]) -> OnlineFeatures:
        from .online import fetch_online_features

        return fetch_online_features(self.repo, features, entity_rows)

    def join_keys(self, view: str) -> list[str]:
        from .online import feature_store

        from .rename import renamed_views

        store = feature_store(self.repo)
        return list(store.get_feature_view(renamed_views(store.repo_path).get(view, view)).join_keys)

    def warm(self) -> None:
        from .online import feature_store

        feature_store(self.repo)

    def check(self) -> None:
        from ml_framework.errors import MLError

        if not (self.repo / "feature_store.yaml").is_file():
            raise MLError(f"online features need the Feast repository, but {self.repo / 'feature_store.yaml'} is missing",
                          hint="apply the feature specs first, or send raw features (input.raw_features)")

    @property
    def inline_lookups(self) -> bool:
        """SQLite (Feast's default online store) answers in microseconds from a local file."""
        import yaml

        try:
            data = yaml.safe_load((self.repo / "feature_store.yaml").read_text(encoding="utf-8")) or {}
        except (OSError, ValueError):
            return False
        store = data.get("online_store")
        kind = store.get("type") if isinstance(store, dict) else store
        return kind in (None, "sqlite")

    def describe(self) -> str:
        return f"Feast repository {self.repo}"


def feature_access(services) -> FeastFeatureAccess:
    """The service factory: the project's Feast repository (ml.yaml ``backends.feast.repo``)."""
    from .settings import FeastSettings

    registry = getattr(services, "registry", None)
    settings = dict((registry.backend_settings.get("feast") if registry is not None else None) or {})
    return FeastFeatureAccess(FeastSettings.model_validate(settings).repo_path(Path(services.project_dir)))
