"""Run the plugin's tests from a checkout without installing it (`pip install -e .` works too)."""

import sys
from pathlib import Path

_PACKAGE_ROOT = str(Path(__file__).resolve().parents[1])
if _PACKAGE_ROOT not in sys.path:
    sys.path.append(_PACKAGE_ROOT)
