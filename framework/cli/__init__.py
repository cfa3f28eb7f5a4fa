"""The `ml` command line."""
