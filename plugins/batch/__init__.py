"""The batch backend: BatchPrediction specs score a data set with one model version and write the
predictions to parquet (and, when configured, to a PostgreSQL table).

Registered as the ``batch`` entry point of the ``ml.providers`` group. Importing this package is cheap:
pandas, pyarrow, LightGBM and psycopg are imported only when a BatchPrediction is applied.

Modules, one job each:
  provider  BatchProvider: the contract hooks (fingerprint = resolved model version + input data keys)
  config    the ``options`` block's settings model (chunk size, compression)
  inputs    the input file, read in bounded chunks; the model's features for each chunk (raw columns,
            or a point-in-time lookup through the same join its training used)
  sinks     the outputs: a parquet file written to a temporary file then renamed, a PostgreSQL table
            replaced in one transaction
  scoring   one apply: resolve the version, stream chunks through the predictor into the sinks
"""

from .provider import BatchProvider

__all__ = ["BatchProvider"]
