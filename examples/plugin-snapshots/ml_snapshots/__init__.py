"""An example third-party plugin for `ml`: versioned copies of data files.

A ``DataSnapshot`` spec names a data file of the project (or a ``Source`` spec, whose ``path`` it reads);
``ml apply`` copies the file into ``.ml/snapshots/<name>/`` under its content hash, keeps the newest
``keep`` copies and records the hash in state, so a change of the data is a planned change and every
version of the file can be found again. ``ml snapshots list|show`` reads them back.

Importing this module imports no more than the ml contract: the schema, provider and command are named
as ``"module:attr"`` strings and imported only when used.
"""

from ml_framework.contract import Command, Kind, Plugin

__all__ = ["plugin"]

plugin = Plugin(
    name="snapshots",
    version="0.1.0",
    description="DataSnapshot: content-addressed copies of data files; `ml snapshots`.",
    kinds=(
        Kind("DataSnapshot", plural="data_snapshots", schema="ml_snapshots.kinds:DataSnapshot",
             default_backend="files", references={"source": "Source"}),
    ),
    backends={"files": "ml_snapshots.provider:FilesProvider"},
    commands=(Command("snapshots", "ml_snapshots.cli:app", "Versioned copies of data files: list, show."),),
)
