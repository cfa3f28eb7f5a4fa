"""Shared trainer code for the Model kind (used by the lightgbm and torch backends).

Modules, one job each (nothing heavy is imported by this package itself):
  provider   TrainerProvider: the contract hooks every trainer backend shares
  pipeline   one training run: data -> split -> fit -> evaluate -> gates -> registry
  config     settings every trainer accepts (promote, data, categorical, slice_min_rows)
  data       which files/columns a Model uses, and the point-in-time join (Feast or parquet)
  prepare    label checks, the split, categorical encoding
  metrics    metric table and numpy implementations
  gates      gate grammar and evaluation (production comparisons, slices)
  checks     spec checks run at plan time (metric names, gates)
  explain    plan reasons (params / features / data changed)
  artifacts  BentoML model store (BENTOML_HOME)
  fingerprint content keys of the training data files
  lineage    git commit of the specs, library versions
  predictor  load a saved version back as a predict function (for serving and batch scoring)
"""

__all__: list[str] = []
