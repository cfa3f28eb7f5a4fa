"""Plan reasons for a Model: what changed, in the words a reviewer looks for (params, features, data)."""

from __future__ import annotations

from typing import Iterable

__all__ = ["explain_changes"]

_GROUPS = (
    ("trainer.params.", "params"),
    ("features", "features"),
    ("label", "label"),
    ("split", "split"),
    ("task", "task"),
    ("trainer.", "trainer settings"),
    ("metrics", "metrics"),
    ("gates", "gates"),
    ("slices", "slices"),
)


def _group(path: str) -> str:
    for prefix, name in _GROUPS:
        if path.startswith(prefix) if prefix.endswith(".") else (path == prefix or path.startswith(prefix + ".")):
            return name
    return "spec"


def _short(value) -> str:
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 40 else text[:37] + "..."


def explain_changes(changes: Iterable) -> list[str]:
    """'retrain: params changed (num_leaves 31 → 63)', 'features changed (+ a, - b)'."""
    groups: dict[str, list] = {}
    for change in changes:
        groups.setdefault(_group(change.path), []).append(change)
    reasons = []
    for name, items in groups.items():
        if name == "params":
            detail = ", ".join(f"{c.path.rsplit('.', 1)[-1]} {_short(c.before)} → {_short(c.after)}" for c in items[:4])
        elif name == "features" and len(items) == 1 and isinstance(items[0].before, list) \
                and isinstance(items[0].after, list):
            added = [f for f in items[0].after if f not in items[0].before]
            removed = [f for f in items[0].before if f not in items[0].after]
            detail = ", ".join([f"+ {f}" for f in added] + [f"- {f}" for f in removed]) or "reordered"
        else:
            detail = ", ".join(c.path for c in items[:4])
        reasons.append(f"retrain: {name} changed ({detail})")
    return reasons
