"""What a trainer backend's fit returns and the errors of a training run (shared by the provider and the
pipeline, so neither imports the other's module to get them)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from ml_framework.errors import MLError

__all__ = ["Trained", "TrainingError", "GateFailure", "TRAINING_DATA_INPUT", "MAX_SEGMENTS"]

TRAINING_DATA_INPUT = "training_data"
MAX_SEGMENTS = 50  # per slice column: the largest segments are evaluated


class TrainingError(MLError):
    """Training failed inside the library (wrapped with the model's address by the engine)."""


class GateFailure(MLError):
    """The new version failed a gate: it is recorded as rejected and nothing else changes."""

    prior_kept = True  # the model as recorded (its production version) still stands: dependents go ahead


@dataclass
class Trained:
    """What a backend's fit returns."""

    model: Any
    predict: Callable[[Any], Any]  # features frame -> probabilities / values
    params: dict[str, Any]  # the effective parameters (defaults filled in)
    seconds: float
    info: dict[str, Any] = field(default_factory=dict)  # e.g. best_iteration, device, epochs run
