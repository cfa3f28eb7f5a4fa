"""The alibi-detect backend: drift monitors (registered as the ``alibi-detect`` entry point).

Importing this package imports neither alibi-detect, torch, numpy nor pandas: they load when a detector
is built or run. Modules:
  provider   AlibiDetectProvider: the contract hooks for the Monitor kind; builds/loads detectors
  config     the `detector` block's settings (pydantic only)
  detectors  build, save (save_detector), load (load_detector) and run the detectors of one version

alibi-detect is licensed BSL 1.1 since 0.11.5: it is one plugin among possible others. The runner
(plugins/monitoring) only needs a provider with ``open_checker`` returning an object with ``check``.
"""

from .provider import AlibiDetectProvider

__all__ = ["AlibiDetectProvider"]
