"""Errors of the feast backend: every message starts with the resource address."""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator

from ml_framework.errors import MLError, ProviderError

__all__ = ["Failure", "DataContractError", "FeastBackendError", "feast_errors"]


@dataclass(frozen=True)
class Failure:
    """One broken rule of a data contract."""

    field: str  # the spec field that declares the rule, e.g. "features.amount_mean_7d.checks.ge"
    rule: str  # "ge 0", "dtype", "column missing", "not nullable", ...
    count: int | None = None  # failing rows, when the rule is checked row by row
    examples: tuple[Any, ...] = ()
    detail: str | None = None

    def describe(self) -> str:
        text = f"{self.field}: {self.rule}"
        if self.count is not None:
            text += f" fails for {self.count} row{'s' if self.count != 1 else ''}"
        if self.examples:
            text += ", e.g. " + ", ".join(_show(v) for v in self.examples)
        if self.detail:
            text += f" ({self.detail})"
        return text


def _show(value: Any) -> str:
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 40 else text[:37] + "..."


class DataContractError(ProviderError):
    """The data behind a Source or FeatureView breaks its contract; nothing in Feast was changed."""

    def __init__(self, address: str, data: str, failures: list[Failure], *, hint: str | None = None):
        self.failures = list(failures)
        self.data = data
        count = len(self.failures)
        lines = "\n".join(f"  - {f.describe()}" for f in self.failures)
        super().__init__(
            address,
            f"data contract failed for {data} ({count} problem{'s' if count != 1 else ''}); "
            f"nothing was changed in Feast:\n{lines}",
            hint=hint,
        )


class FeastBackendError(ProviderError):
    """Feast itself failed; the original exception is chained."""


@contextmanager
def feast_errors(address: str, action: str) -> Iterator[None]:
    """Map any non-ml exception raised by Feast to a ProviderError naming the resource and the action."""
    try:
        yield
    except MLError:
        raise
    except Exception as exc:  # Feast raises many unrelated types; keep the original chained
        message = " ".join(str(exc).split())  # one line: Feast's messages wrap (a list of Field(...) reprs)
        raise FeastBackendError(address, f"Feast failed to {action}: {type(exc).__name__}: {message}"[:2000]) from exc
