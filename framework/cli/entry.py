"""The console script `ml`. Plain `ml` / `ml --help` is answered from the help cache when it is fresh
(help_cache.py); everything else builds the CLI (main.py)."""

from __future__ import annotations

import sys

__all__ = ["run"]


def run() -> None:
    from .help_cache import cached_help, is_help_request

    if is_help_request(sys.argv[1:]):
        text = cached_help()
        if text is not None:
            sys.stdout.write(text)
            sys.stdout.flush()
            return
    from .main import run as run_cli

    run_cli()
