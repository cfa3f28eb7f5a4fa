"""`ml`: declarative plan/apply for machine-learning features, models, deployments and monitors.

The core imports no heavy library; backends live in plugins and load only when used.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
