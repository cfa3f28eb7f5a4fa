"""One import package for the distribution: the folders framework/ and plugins/ (the layout of the design
card) install as ``ml_framework`` and ``ml_framework.plugins``. Everything else is in pyproject.toml."""

from setuptools import find_packages, setup


def _mapped(folder: str, package: str) -> list[str]:
    return [package + name[len(folder):] for name in find_packages(include=[folder, folder + ".*"])]


setup(
    packages=_mapped("framework", "ml_framework") + _mapped("plugins", "ml_framework.plugins"),
    package_dir={"ml_framework": "framework", "ml_framework.plugins": "plugins"},
)
