"""The scipy-drift backend: drift monitors on SciPy's two-sample tests (registered as the ``scipy-drift``
entry point), free of alibi-detect (BSL 1.1 since 0.11.5) and of torch.

Importing this package imports neither numpy, scipy nor pandas: they load when a detector is built or run.
Modules:
  provider   ScipyDriftProvider: the contract hooks for the Monitor kind (shared with every drift backend)
  config     the `detector` block's settings (pydantic only); the same field names as alibi-detect's
  detectors  build, save and run the tests of one model version (numpy, scipy.stats)

A Monitor moves between backends by changing ``detector.backend`` alone: ``method: tabular`` (alibi-detect's
name) is this backend's ``auto``, the same Kolmogorov-Smirnov / chi-squared tests with the same correction.
"""

from .provider import ScipyDriftProvider

__all__ = ["ScipyDriftProvider"]
