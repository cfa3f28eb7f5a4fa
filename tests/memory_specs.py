"""The small project the engine's unit tests plan and apply with in-memory backends: a customer entity,
a transactions source, a feature view and (optionally) a model, each on a backend named here."""

from __future__ import annotations

from pathlib import Path

__all__ = ["feature_specs", "model_spec", "write_specs"]


def feature_specs(*, entity: str = "customer", backend: str = "memory", view_backend: str | None = None,
                  entity_description: str | None = None) -> str:
    described = f"description: {entity_description!r}\n" if entity_description else ""
    return (f"kind: Entity\nname: {entity}\n{described}backend: {backend}\n---\n"
            f"kind: Source\nname: txns\npath: data/t.parquet\ntimestamp_field: event_ts\nbackend: {backend}\n---\n"
            f"kind: FeatureView\nname: txn_stats\nentities: [{entity}]\nsource: txns\nbackend: {view_backend or backend}\n"
            "features:\n  amount_mean_7d: {dtype: float32}\n")


def model_spec(name: str = "fraud", *, leaves: int = 31, backend: str = "memory") -> str:
    return (f"kind: Model\nname: {name}\ntask: binary\nlabel: {{source: txns, column: is_fraud}}\n"
            f'features: ["txn_stats:*"]\ntrainer: {{backend: {backend}, params: {{num_leaves: {leaves}}}}}\n')


def write_specs(root: Path, text: str, name: str = "all.yaml") -> Path:
    """``text`` as ``root/specs/<name>``; returns ``root``."""
    (root / "specs").mkdir(parents=True, exist_ok=True)
    (root / "specs" / name).write_text(text)
    return root
