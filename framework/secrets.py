"""Values that must never be shown: keys that look like secrets, masked in state, plans and errors."""

from __future__ import annotations

import functools
import re
from typing import Any

__all__ = ["SENSITIVE_KEY", "MASK", "is_sensitive", "mask_secrets"]

# Keys whose literal values are secrets: masked in state and plan output, still part of the hash.
SENSITIVE_KEY = re.compile(r"(password|passwd|secret|token|api[_-]?key|credential|private[_-]?key)s?$", re.I)
MASK = "(sensitive value)"


@functools.lru_cache(maxsize=8192)
def is_sensitive(key: str) -> bool:
    return SENSITIVE_KEY.search(key) is not None


def mask_secrets(value: Any) -> Any:
    """A copy with the values of sensitive-looking keys replaced, at any depth."""
    if isinstance(value, dict):
        return {k: (MASK if is_sensitive(str(k)) and v not in (None, "") and not isinstance(v, (dict, list))
                    else mask_secrets(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [mask_secrets(v) for v in value]
    return value
