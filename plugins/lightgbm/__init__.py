"""The lightgbm backend: trains Model specs with LightGBM (registered as the `lightgbm` entry point).

Importing this package imports neither LightGBM nor pandas; they load when a model is trained.
"""

from .provider import LightGBMProvider

__all__ = ["LightGBMProvider"]
