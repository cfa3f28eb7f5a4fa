"""`python -m ml_framework` is `ml` (what `ml ci` runs its steps with: the same interpreter, no PATH lookup)."""

if __name__ == "__main__":
    from .cli.entry import run

    run()
