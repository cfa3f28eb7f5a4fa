"""One exception hierarchy for everything `ml` reports to a user.

Every error carries a message a person can act on; the CLI prints it (never a traceback) and exits 1.
Third-party exceptions are mapped at the boundary with the resource address and chained with `from`.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "Location",
    "MLError",
    "SpecError",
    "SpecErrors",
    "GraphError",
    "StateError",
    "LockedError",
    "ApplyRefused",
    "PlanError",
    "PluginError",
    "ProviderError",
    "did_you_mean",
]


@dataclass(frozen=True)
class Location:
    """Where a value came from: a YAML file and line, or a command-line override."""

    file: str
    line: int | None = None

    def __str__(self) -> str:
        return f"{self.file}:{self.line}" if self.line else self.file


class MLError(Exception):
    """Base of every error `ml` reports. `str()` is the whole user-facing message."""

    exit_code = 1
    # Raised by a provider's apply: True when the failed change left the resource exactly as recorded
    # (e.g. a retrained model rejected by its gates: production stays). Its dependents then go ahead
    # against the recorded resource instead of being skipped, so restoring what serves never waits on a
    # rejected candidate. The run still fails.
    prior_kept = False

    def __init__(self, message: str, *, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n  hint: {self.hint}"


class SpecError(MLError):
    """A spec file is malformed or invalid. Names the file, line and field."""

    def __init__(
        self,
        message: str,
        *,
        location: Location | None = None,
        field: str | None = None,
        hint: str | None = None,
    ):
        self.location = location
        self.field = field
        prefix = f"{location}: " if location else ""
        where = f"{field}: " if field else ""
        super().__init__(f"{prefix}{where}{message}", hint=hint)


class SpecErrors(MLError):
    """Several spec errors at once, so one run shows everything to fix."""

    def __init__(self, errors: list[SpecError]):
        self.errors = errors
        count = f"{len(errors)} error{'s' if len(errors) != 1 else ''} in specs"
        lines = (f"  {str(e).replace(chr(10), chr(10) + '    ')}" for e in errors)  # hints under their error
        super().__init__(count + ":\n" + "\n".join(lines))


class GraphError(MLError):
    """Broken references or cycles between specs."""


class StateError(MLError):
    """The state store cannot be read or written (corrupt, newer format, unreachable)."""


class LockedError(StateError):
    """Another run holds the state lock."""


class PlanError(MLError):
    """A saved plan cannot be applied (stale, foreign, unreadable)."""


class PluginError(MLError):
    """A plugin is missing, disabled, fails to import or breaks the provider contract."""


class ProviderError(MLError):
    """A provider failed while working on one resource; the message starts with its address."""

    def __init__(self, address: str, message: str, *, hint: str | None = None):
        self.address = address
        super().__init__(f"{address}: {message}", hint=hint)


def did_you_mean(name: str, candidates) -> str | None:
    """A 'did you mean' hint for a misspelt name, or None when nothing is close."""
    import difflib

    close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}?" if close else None


class ApplyRefused(MLError):
    """An apply stopped before any change started (a provider's preflight check failed)."""
