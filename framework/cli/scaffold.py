"""`ml init`: a new project with a project file, one example spec and an environment overlay."""

from __future__ import annotations

from pathlib import Path

from ..errors import MLError

__all__ = ["scaffold"]

PROJECT_YAML = """\
# ml project file. Every key is optional.
name: {name}
specs: specs                         # where spec files live (any *.yaml below, except specs/env/)
state: sqlite:///.ml/state.db        # or postgresql+psycopg://user@host/db ; ML_STATE_URL overrides
plugins:
  disabled: []                       # backend names to switch off
backends:
  feast: {{repo: feature_repo}}
"""

EXAMPLE_SPEC = """\
# Specs: one YAML document per resource; several per file are fine.
# Editor completion: `ml schema -o .ml-schema.json` and point yaml-language-server at it.
kind: Entity
name: customer
description: A card holder.
join_keys: [customer_id]
---
kind: Source
name: customer_stats
path: data/customer_stats.parquet
timestamp_field: event_ts
---
kind: FeatureView
name: customer_stats
entities: [customer]
source: customer_stats
ttl: 7d
features:
  amount_mean_7d: {dtype: float32, checks: {ge: 0}}
  txn_count_7d: {dtype: int64, checks: {ge: 0}}
"""

PROD_OVERLAY = """\
# `ml plan env=prod` merges this over the specs, keyed by kind then name.
feature_views:
  customer_stats:
    ttl: 14d
"""

GITIGNORE = ".ml/\ndata/\n"


def scaffold(directory: Path) -> list[Path]:
    directory = Path(directory)
    files = {
        directory / "ml.yaml": PROJECT_YAML.format(name=directory.resolve().name),
        directory / "specs" / "features.yaml": EXAMPLE_SPEC,
        directory / "specs" / "env" / "prod.yaml": PROD_OVERLAY,
        directory / ".gitignore": GITIGNORE,
    }
    existing = [p for p in files if p.exists() and p.name != ".gitignore"]
    if existing:
        raise MLError(f"{existing[0]} already exists; `ml init` does not overwrite files")
    created = []
    for path, text in files.items():
        if path.exists():
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        created.append(path)
    return created
