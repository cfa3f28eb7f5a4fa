"""CSV sources: read a CSV file typed by its contract, check it, and keep the parquet copy Feast reads.

Feast's FileSource reads parquet only. A CSV source is read with pyarrow, each column the contract
declares typed by its declared dtype (timestamps parsed as timezone-aware and converted to UTC: a value
without a UTC offset is a contract failure, as naive parquet timestamps are; other columns keep the
types pyarrow infers), checked against its contract on that same table, and only then written as a
parquet copy into the feature repository's data folder (``data/ml_sources/<source>.parquet``), which
the Feast FileSource points at. A value that does not parse is reported like any other broken rule:
the spec field, the rule ("parses as int64"), how many rows, a few examples and the first line.

The copy carries the CSV's content key (fingerprint.py) and the declared types in its parquet metadata:
while both match, the CSV is not read again and the contract runs on the copy, which holds the same data.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path
from typing import Any, Mapping

from .contracts import MAX_EXAMPLES, Contract, Report, validate
from .errors import DataContractError, Failure

__all__ = ["declared_types", "types_digest", "read_csv", "copy_key", "is_current",
           "refresh_copy", "remove_copy"]

_KEY = b"ml.csv_content_key"
_TYPES = b"ml.csv_types"
# a time of day followed by a UTC offset, at the end of an ISO 8601 timestamp ("2025-01-02" has none)
_OFFSET = r"\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?\s*(?:[Zz]|[+-]\d{2}(?::?\d{2})?)$"
_INTEGER = r"^[+-]?\d+$"
_BOOLEANS = {"true", "false", "1", "0"}


def declared_types(contract: Contract) -> dict[str, str]:
    """{column: dtype} for every column the contract types; timestamps (by role or dtype) as "timestamp"."""
    out: dict[str, str] = {}
    for rule in contract.all_columns():
        dtype = "timestamp" if rule.role == "timestamp" else rule.dtype
        if dtype is not None:
            out.setdefault(rule.name, dtype)
    return out


def types_digest(types: Mapping[str, str]) -> str:
    return hashlib.sha256(json.dumps(dict(sorted(types.items()))).encode()).hexdigest()[:16]


def _arrow_type(dtype: str):
    import pyarrow as pa

    return {
        "int32": pa.int32(), "int64": pa.int64(), "float32": pa.float32(), "float64": pa.float64(),
        "string": pa.string(), "bool": pa.bool_(), "timestamp": pa.timestamp("ns", tz="UTC"),
    }[dtype]


# --- reading -----------------------------------------------------------------------------------------


def read_csv(path: Path, contract: Contract):
    """(table or None, failures, failed columns): the CSV typed by the contract's declared columns.

    Declared columns are read as text and converted one by one, so every column that does not convert
    is reported, not only the first (such a column stays text in the table; the contract skips it).
    None when the file cannot be read."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    path = Path(path)
    if not path.exists():
        return None, [Failure(contract.path_field, "file exists", detail=f"{path} does not exist")], set()
    if path.is_dir():
        return None, [Failure(contract.path_field, "a CSV file",
                              detail=f"{path} is a folder; CSV sources are single files")], set()
    types = declared_types(contract)
    try:
        table = pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(
            column_types={name: pa.string() for name in types}, strings_can_be_null=True))
    except Exception as exc:  # ArrowInvalid (parse errors), OSError, UnicodeDecodeError...
        return None, [Failure(contract.path_field, "readable CSV",
                              detail=f"cannot read {path}: {type(exc).__name__}: {exc}")], set()
    fields = {rule.name: rule.field for rule in contract.all_columns()}
    failures: list[Failure] = []
    failed: set[str] = set()
    for name, dtype in types.items():
        if name not in table.column_names or dtype == "string":
            continue  # a missing column is reported by the contract, with "did you mean"
        column, failure = _convert(table[name], name, dtype, fields[name])
        if failure is None:
            table = table.set_column(table.column_names.index(name), name, column)
        else:
            failures.append(failure)
            failed.add(name)
    return table, failures, failed


def _convert(column, name: str, dtype: str, field: str):
    """(converted column, None) or (None, Failure naming the rows that do not convert)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        return pc.cast(column, _arrow_type(dtype)), None
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    column = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    text = pc.utf8_trim_whitespace(column)
    if dtype == "timestamp":
        naive = pc.and_(pc.is_valid(text), pc.invert(pc.match_substring_regex(text, _OFFSET)))
        naive = pc.fill_null(naive, False)
        if pc.any(naive).as_py():
            return None, _failure(column, naive, field, "timezone-aware timestamps",
                                  f"column {name!r} holds timestamps without a UTC offset; write them with one, "
                                  "e.g. 2025-01-31T12:00:00Z or 2025-01-31 13:00:00+01:00")
    bad = _unparsable(column, dtype)
    return None, _failure(column, bad, field, f"parses as {dtype}", None)


def _unparsable(column, dtype: str):
    """A boolean mask of the values of a text column that do not convert to `dtype`."""
    import pyarrow as pa
    import pyarrow.compute as pc

    valid = pc.is_valid(column)
    text = pc.utf8_trim_whitespace(column)
    if dtype in ("int32", "int64") and column.null_count < len(column):
        shaped = pc.fill_null(pc.match_substring_regex(text, _INTEGER), True)
        if not pc.all(shaped).as_py():
            return pc.and_(valid, pc.invert(shaped))
    elif dtype == "bool":
        known = pc.fill_null(pc.is_in(pc.utf8_lower(text), value_set=pa.array(sorted(_BOOLEANS))), True)
        if not pc.all(known).as_py():
            return pc.and_(valid, pc.invert(known))
    # anything else (floats, timestamps, integers out of range): try the distinct values one by one
    target = _arrow_type(dtype)
    bad_values = []
    for value in pc.unique(column).to_pylist():
        if value is None:
            continue
        try:
            pc.cast(pa.array([value], pa.string()), target)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            bad_values.append(value)
    return pc.fill_null(pc.is_in(column, value_set=pa.array(bad_values, pa.string())), False)


def _failure(column, mask, field: str, rule: str, detail: str | None) -> Failure:
    import numpy as np
    import pyarrow.compute as pc

    rows = np.flatnonzero(mask.to_numpy(zero_copy_only=False))
    examples: list[Any] = []
    for value in pc.take(column, rows[:50]).to_pylist():
        if value not in examples:
            examples.append(value)
        if len(examples) == MAX_EXAMPLES:
            break
    where = f"first on line {int(rows[0]) + 2}" if len(rows) else None  # line 1 is the header
    return Failure(field, rule, count=int(len(rows)), examples=tuple(examples),
                   detail="; ".join(x for x in (detail, where) if x) or None)


# --- the parquet copy --------------------------------------------------------------------------------


def copy_key(copy: Path) -> tuple[str | None, str | None]:
    """(CSV content key, types digest) recorded in a copy's footer; (None, None) when there is no copy."""
    import pyarrow.parquet as pq

    try:
        metadata = pq.read_schema(copy).metadata or {}
    except Exception:  # missing, truncated or not parquet (OSError, ArrowInvalid): not current
        return None, None
    key, types = metadata.get(_KEY), metadata.get(_TYPES)
    return (key.decode() if key else None), (types.decode() if types else None)


def is_current(copy: Path, content_key: str, contract: Contract) -> bool:
    return copy_key(copy) == (content_key, types_digest(declared_types(contract)))


def refresh_copy(address: str, csv: Path, copy: Path, contract: Contract, content_key: str, *,
                 display: str, hint: str | None = None) -> Report:
    """Check the CSV's data against `contract` and make `copy` hold it; returns the contract Report.

    While the copy is current (same CSV content key, same declared types) the CSV is not read again:
    the contract runs on the copy. Otherwise the CSV is read, typed and checked, and the copy rewritten
    (atomically) only when every rule holds: on failure nothing is written."""
    if is_current(copy, content_key, contract):
        return validate(address, copy, contract, display=display, hint=hint)
    table, failures, failed = read_csv(csv, contract)
    if table is None:
        raise DataContractError(address, display, failures, hint=hint)
    report = validate(address, csv, contract, display=display, table=table, prior=failures, skip=failed,
                      hint=hint)
    _write(table, copy, content_key, types_digest(declared_types(contract)))
    return report


def _write(table, copy: Path, content_key: str, digest: str) -> None:
    import pyarrow.parquet as pq

    metadata = dict(table.schema.metadata or {})
    metadata.update({_KEY: content_key.encode(), _TYPES: digest.encode()})
    copy.parent.mkdir(parents=True, exist_ok=True)
    tmp = copy.with_name(f".{copy.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        pq.write_table(table.replace_schema_metadata(metadata), tmp, compression="snappy")
        tmp.replace(copy)
    finally:
        tmp.unlink(missing_ok=True)


def remove_copy(copy: Path) -> None:
    Path(copy).unlink(missing_ok=True)
