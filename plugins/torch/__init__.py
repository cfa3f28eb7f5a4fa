"""The torch backend: trains Model specs as a tabular MLP with PyTorch (registered as the `torch` entry point).

Importing this package imports neither torch nor pandas; they load when a model is trained.
"""

from .provider import TorchProvider

__all__ = ["TorchProvider"]
