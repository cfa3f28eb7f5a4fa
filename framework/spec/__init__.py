"""Spec language: load YAML, compose overlays and overrides, validate."""
