"""Data contracts: check a source file against the rules declared next to each column in the specs.

Schema-level rules (file readable, columns present, dtypes, time zones) are checked on the parquet
schema (or on the arrow table of a CSV source, already read and typed by csvdata.py); row-level rules
run on the needed columns only, read once: entity keys (no nulls, no duplicate
key+timestamp rows), timestamps (no nulls, not in the future), column checks compiled to a pandera
schema validated lazily (every failure collected: column, rule, failing rows, examples), and dataset
rules (min_rows, max_age of the newest timestamp). Every failure names the spec field that declares it.

pandera's own YAML/serialization is deliberately not used (custom checks do not survive it,
unionai-oss/pandera#733): schemas are built from our specs each time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from ml_framework.errors import did_you_mean
from ml_framework.plugins.features.kinds import ColumnChecks, DatasetChecks
from ml_framework.spec.kinds import parse_duration

from .errors import DataContractError, Failure

__all__ = ["ColumnRule", "Contract", "Report", "validate", "FUTURE_TOLERANCE"]

FUTURE_TOLERANCE = timedelta(minutes=5)  # clock skew allowed before a timestamp counts as "in the future"
MAX_EXAMPLES = 3


@dataclass(frozen=True)
class ColumnRule:
    name: str  # column in the file
    field: str  # spec field declaring it, e.g. "features.amount_mean_7d"
    dtype: str | None = None  # one of kinds.Dtype, or None for "any"
    checks: ColumnChecks | None = None
    role: str = "value"  # "value" | "key" | "timestamp"


@dataclass(frozen=True)
class Contract:
    path_field: str  # the spec field naming the file ("path", "source.path", "source")
    timestamp: ColumnRule
    columns: tuple[ColumnRule, ...] = ()
    keys: tuple[ColumnRule, ...] = ()  # entity join keys: no nulls, unique together with the timestamp
    created_timestamp: ColumnRule | None = None
    dataset: DatasetChecks | None = None
    dataset_field: str = "checks"

    def all_columns(self) -> list[ColumnRule]:
        extra = [self.created_timestamp] if self.created_timestamp else []
        return list(self.keys) + [self.timestamp] + extra + list(self.columns)


@dataclass
class Report:
    rows: int
    min_ts: datetime | None
    max_ts: datetime | None
    timestamps: Any = field(default=None, repr=False)  # numpy datetime64 (UTC) of every row, for statistics

    def rows_between(self, start: datetime, end: datetime) -> int:
        """Rows with start <= timestamp < end (what a materialization of [start, end) reads)."""
        import numpy as np

        if self.timestamps is None or not len(self.timestamps):
            return 0
        if start <= self.min_ts and end > self.max_ts:  # the whole file (timestamps are never null here)
            return len(self.timestamps)
        unit = np.datetime_data(self.timestamps.dtype)[0]

        def point(moment: datetime):
            return np.datetime64(moment.astimezone(timezone.utc).replace(tzinfo=None), unit)

        return int(((self.timestamps >= point(start)) & (self.timestamps < point(end))).sum())


# --- schema-level ------------------------------------------------------------------------------------

_INTS = {"int8", "int16", "int32", "int64", "uint8", "uint16", "uint32"}
_COMPATIBLE = {
    "int32": {"int8", "int16", "int32", "uint8", "uint16"},
    "int64": _INTS,
    "float32": {"halffloat", "float", "double"},
    "float64": {"halffloat", "float", "double"},
    "string": {"string", "large_string"},
    "bool": {"bool"},
}


def _arrow_kind(arrow_type) -> str:
    import pyarrow as pa

    if pa.types.is_dictionary(arrow_type):
        return _arrow_kind(arrow_type.value_type)
    if pa.types.is_timestamp(arrow_type):
        return "timestamp"
    return str(arrow_type)


def _dtype_failure(rule: ColumnRule, arrow_type) -> Failure | None:
    import pyarrow as pa

    if rule.role == "timestamp" or rule.dtype == "timestamp":
        if not pa.types.is_timestamp(arrow_type):
            return Failure(rule.field, "dtype", detail=f"expected a timestamp column, file has {arrow_type}")
        if arrow_type.tz is None:
            return Failure(rule.field, "timezone-aware timestamps",
                           detail=f"column {rule.name!r} holds naive timestamps ({arrow_type}); write them as UTC")
        return None
    if rule.dtype is None:
        return None
    if _arrow_kind(arrow_type) not in _COMPATIBLE[rule.dtype]:
        return Failure(rule.field, "dtype", detail=f"expected {rule.dtype}, file has {arrow_type}")
    return None


def _open(path: Path, contract: Contract):
    """(the opened parquet file or folder data set, its schema, failures): opened once, read once."""
    import pyarrow.parquet as pq

    if not path.exists():
        return None, None, [Failure(contract.path_field, "file exists", detail=f"{path} does not exist")]
    try:
        if path.is_dir():
            import pyarrow.dataset as ds

            dataset = ds.dataset(path, format="parquet")
            return dataset, dataset.schema, []
        parquet = pq.ParquetFile(path)
        return parquet, parquet.schema_arrow, []
    except Exception as exc:  # pyarrow raises ArrowInvalid, OSError, ...
        return None, None, [Failure(contract.path_field, "readable parquet",
                                    detail=f"cannot read {path}: {type(exc).__name__}: {exc}")]


# --- row-level ---------------------------------------------------------------------------------------


def _examples(values) -> tuple[Any, ...]:
    out = []
    for value in values:
        value = value.item() if hasattr(value, "item") else value
        if hasattr(value, "isoformat"):
            value = value.isoformat()
        if value not in out:
            out.append(value)
        if len(out) == MAX_EXAMPLES:
            break
    return tuple(out)


def _timestamp_failures(df, contract: Contract, now: datetime) -> list[Failure]:
    failures = []
    for rule in [contract.timestamp] + ([contract.created_timestamp] if contract.created_timestamp else []):
        if rule.name not in df:
            continue
        ts = df[rule.name]
        nulls = int(ts.isna().sum())
        if nulls:
            failures.append(Failure(rule.field, "no null timestamps", count=nulls))
        future = ts > now + FUTURE_TOLERANCE
        if future.any():
            failures.append(Failure(rule.field, "not in the future", count=int(future.sum()),
                                    examples=_examples(ts[future].sort_values(ascending=False).head(10)),
                                    detail=f"now is {now.isoformat(timespec='seconds')}"))
    return failures


def _key_failures(df, contract: Contract) -> list[Failure]:
    failures = []
    keys = [k for k in contract.keys if k.name in df]
    for key in keys:
        nulls = int(df[key.name].isna().sum())
        if nulls:
            failures.append(Failure(key.field, f"entity key {key.name!r} has no nulls", count=nulls))
    if keys and contract.timestamp.name in df:
        columns = [k.name for k in keys] + [contract.timestamp.name]
        dup = df.duplicated(columns, keep=False)
        if dup.any():
            sample = df.loc[dup, columns].head(20)
            examples = _examples(tuple(row) if len(columns) > 1 else row[0]
                                 for row in sample.itertuples(index=False, name=None))
            failures.append(Failure(
                keys[0].field, f"one row per {' + '.join(columns)}", count=int(dup.sum()),
                examples=tuple(str(e) for e in examples), detail="duplicate entity+timestamp rows"))
    return failures


def _surely_unique(table, columns: list[str]) -> bool:
    """No two rows share the integer keys and the timestamp.

    Exact and O(n) when the rows are sorted (by time then keys, or by keys then time, as data files
    usually are): strictly increasing rows are all distinct. Otherwise the columns are mixed into one
    int64 (equal rows mix to equal numbers): all distinct means surely unique; a repeat means "maybe"
    (False), and pandas decides."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa

    arrays = []
    for name in columns:
        column = table[name]
        if column.null_count or not (pa.types.is_integer(column.type) or pa.types.is_timestamp(column.type)):
            return False
        values = column.to_numpy()
        arrays.append(values.view("int64") if values.dtype.kind == "M" else values.astype("int64", copy=False))
    if len(arrays[0]) < 2:
        return True
    timestamp_first = [arrays[-1]] + arrays[:-1]  # `columns` ends with the timestamp
    if _strictly_increasing(timestamp_first, np) or _strictly_increasing(arrays, np):
        return True
    mixed = None
    for values in arrays:
        with np.errstate(over="ignore"):
            mixed = values.copy() if mixed is None else mixed * np.int64(2_654_435_761) + values
    return not pd.Series(mixed, copy=False).duplicated().any()


def _strictly_increasing(arrays, np) -> bool:
    """Are the rows (tuples across `arrays`) in strictly increasing lexicographic order?"""
    first = arrays[0]
    step = first[1:] >= first[:-1]
    if not step.all():  # the cheap answer for unsorted data
        return False
    greater = first[1:] > first[:-1]
    equal = ~greater
    for values in arrays[1:]:
        if not equal.any():
            break
        later, earlier = values[1:], values[:-1]
        greater |= equal & (later > earlier)
        equal &= later == earlier
    return bool(greater.all())


_RULES = ("ge", "le", "gt", "lt", "between", "isin", "regex")


def _pandera_checks(checks: ColumnChecks | None) -> list:
    import pandera.pandas as pa

    if checks is None:
        return []
    out = []

    def add(rule: str, label: str, check_factory):
        out.append(check_factory(error=f"{rule}|{label}"))

    if checks.ge is not None:
        add("ge", f">= {checks.ge:g}", lambda **kw: pa.Check.ge(checks.ge, **kw))
    if checks.gt is not None:
        add("gt", f"> {checks.gt:g}", lambda **kw: pa.Check.gt(checks.gt, **kw))
    if checks.le is not None:
        add("le", f"<= {checks.le:g}", lambda **kw: pa.Check.le(checks.le, **kw))
    if checks.lt is not None:
        add("lt", f"< {checks.lt:g}", lambda **kw: pa.Check.lt(checks.lt, **kw))
    if checks.between is not None:
        lo, hi = checks.between
        add("between", f"between {lo:g} and {hi:g}", lambda **kw: pa.Check.in_range(lo, hi, **kw))
    if checks.isin is not None:
        add("isin", f"isin {list(checks.isin)!r}", lambda **kw: pa.Check.isin(list(checks.isin), **kw))
    if checks.regex is not None:
        add("regex", f"matches {checks.regex!r}",
            lambda **kw: pa.Check.str_matches(f"^(?:{checks.regex})$", **kw))
    return out


def _column_failures(df, rules: list[ColumnRule]) -> list[Failure]:
    checked = [r for r in rules if r.name in df and r.role == "value"]
    if not checked:
        return []
    import pandera.pandas as pa

    schema = pa.DataFrameSchema(
        {r.name: pa.Column(nullable=bool(r.checks and r.checks.nullable),
                           unique=bool(r.checks and r.checks.unique),
                           checks=_pandera_checks(r.checks), coerce=False)
         for r in checked},
        strict=False, coerce=False,
    )
    try:
        schema.validate(df[[r.name for r in checked]], lazy=True)
        return []
    except pa.errors.SchemaErrors as exc:
        cases = exc.failure_cases
    by_name = {r.name: r for r in checked}
    failures = []
    for (column, check), group in cases.groupby(["column", "check"], sort=False, dropna=False):
        rule = by_name.get(column)
        if rule is None:
            continue
        check = str(check)
        if check == "not_nullable":
            key, label, examples = "nullable", "not null", ()
        elif check == "field_uniqueness":
            key, label = "unique", "unique"
            examples = _examples(group["failure_case"])
        elif "|" in check:
            key, label = check.split("|", 1)
            examples = _examples(group["failure_case"])
        else:
            key, label, examples = "", check, _examples(group["failure_case"])
        path = f"{rule.field}.checks.{key}" if key else rule.field
        failures.append(Failure(path, label, count=int(group["index"].nunique(dropna=False)), examples=examples))
    return failures


def _dataset_failures(report: Report, contract: Contract, now: datetime) -> list[Failure]:
    checks, failures = contract.dataset, list[Failure]()
    if checks is None:
        return failures
    if checks.min_rows is not None and report.rows < checks.min_rows:
        failures.append(Failure(f"{contract.dataset_field}.min_rows", f"at least {checks.min_rows} rows",
                                detail=f"the file has {report.rows}"))
    if checks.max_age is not None:
        limit = timedelta(seconds=parse_duration(checks.max_age))
        if report.max_ts is None:
            failures.append(Failure(f"{contract.dataset_field}.max_age", f"newest row at most {checks.max_age} old",
                                    detail="the file has no timestamps"))
        elif now - report.max_ts > limit:
            age = now - report.max_ts
            failures.append(Failure(f"{contract.dataset_field}.max_age", f"newest row at most {checks.max_age} old",
                                    detail=f"newest {contract.timestamp.name} is {report.max_ts.isoformat()}, "
                                           f"{age.days}d {age.seconds // 3600}h old"))
    return failures


# --- entry point -----------------------------------------------------------------------------------


def validate(address: str, path: Path, contract: Contract, *, display: str | None = None,
             now: datetime | None = None, table=None, prior: tuple[Failure, ...] | list[Failure] = (),
             skip: frozenset[str] | set[str] = frozenset(), hint: str | None = None) -> Report:
    """Check `path` against `contract`; raise DataContractError listing every failure, or return a Report.

    `table`: the data already read into arrow (a CSV source converted by csvdata.py): checked instead of
    reading `path`. `prior`: failures found while reading it (values that do not parse), reported with
    the others; `skip`: their columns, not checked again. `hint`: shown under a failure report."""
    now = now or datetime.now(timezone.utc)
    display = display or str(path)
    failures = list(prior)
    if table is None:
        opened, schema, problems = _open(Path(path), contract)
        failures += problems
        if schema is None:
            raise DataContractError(address, display, failures, hint=hint)
    else:
        opened, schema = None, table.schema
    present = []
    wanted = {rule.name for rule in contract.all_columns()}
    unclaimed = [name for name in schema.names if name not in wanted]  # candidates for a renamed column
    for rule in contract.all_columns():
        if rule.name in skip:
            continue
        if rule.name not in schema.names:
            suggestion = did_you_mean(rule.name, unclaimed)
            failures.append(Failure(rule.field, f"column {rule.name!r} present",
                                    detail=(suggestion.rstrip("?") + "? " if suggestion else "") +
                                    f"the file has: {', '.join(schema.names)}"))
            continue
        failure = _dtype_failure(rule, schema.field(rule.name).type)
        if failure:
            failures.append(failure)
            if failure.rule == "dtype":
                continue
        present.append(rule.name)
    columns = list(dict.fromkeys(present))
    table = table.select(columns) if table is not None else _read_columns(opened, columns)
    report = _report(table, contract)
    failures += _dataset_failures(report, contract, now)
    if not failures and _surely_passes(table, contract, now, report):
        return report  # the fast path: every rule holds, decided on arrow columns without pandas
    df = table.to_pandas()
    if report.min_ts is not None:
        failures += _timestamp_failures(df, contract, now)
    failures += _key_failures(df, contract)
    failures += _column_failures(df, [rule for rule in contract.columns if rule.name not in skip])
    if failures:
        raise DataContractError(address, display, failures, hint=hint)
    return report


def _read_columns(opened, columns: list[str]):
    """Only the needed columns of the file (or folder) opened by `_open`."""
    import pyarrow.parquet as pq

    if isinstance(opened, pq.ParquetFile):
        return opened.read(columns=columns)
    return opened.to_table(columns=columns)


def _report(table, contract: Contract) -> Report:
    import pyarrow as pa
    import pyarrow.compute as pc

    report = Report(rows=table.num_rows, min_ts=None, max_ts=None)
    name = contract.timestamp.name
    if name in table.column_names and table.num_rows:
        column = table[name]
        if pa.types.is_timestamp(column.type) and column.type.tz is not None:
            bounds = pc.min_max(column)
            report.min_ts, report.max_ts = _as_datetime(bounds["min"]), _as_datetime(bounds["max"])
            report.timestamps = column.to_numpy()
    return report


def _as_datetime(scalar) -> datetime | None:
    value = scalar.as_py()
    if value is None:
        return None
    if hasattr(value, "to_pydatetime"):  # pandas Timestamp, for nanosecond columns
        value = value.to_pydatetime()
    return value.astimezone(timezone.utc)


# --- the fast path -----------------------------------------------------------------------------------


def _surely_passes(table, contract: Contract, now: datetime, report: Report | None = None) -> bool:
    """True when every row-level rule certainly holds, decided with pyarrow.compute on the arrow columns.

    Conservative: whatever it cannot decide (regex rules, NaNs, odd types) answers False, and the full
    pandera validation runs — which is also what reports failures, with counts and examples."""
    import pyarrow as pa
    import pyarrow.compute as pc

    names = set(table.column_names)
    stamps = [contract.timestamp] + ([contract.created_timestamp] if contract.created_timestamp else [])
    for rule in stamps + list(contract.keys) + list(contract.columns):
        if rule.name not in names:
            return False
    for rule in stamps:
        column = table[rule.name]
        if column.null_count:
            return False
        if rule is contract.timestamp and report is not None and report.timestamps is not None:
            newest = report.max_ts  # already computed on this column
        else:
            newest = _as_datetime(pc.max(column)) if len(column) else None
        if newest is not None and newest > now + FUTURE_TOLERANCE:
            return False
    if any(table[k.name].null_count for k in contract.keys):
        return False
    if contract.keys and not _surely_unique(table, [k.name for k in contract.keys] + [contract.timestamp.name]):
        return False
    try:
        return all(_column_surely_passes(table[rule.name], rule.checks, pa, pc) for rule in contract.columns
                   if rule.role == "value")
    except (pa.ArrowException, TypeError, ValueError):
        return False


def _numpy_extremes(column, pa) -> tuple[Any, Any] | None:
    """(min, max) of a numeric column without nulls as Python numbers, in one numpy pass each over the
    arrow buffer (NaN when the column holds a NaN); None when that does not apply."""
    if not (pa.types.is_integer(column.type) or pa.types.is_floating(column.type)):
        return None
    if column.null_count or column.num_chunks != 1 or not len(column):
        return None
    values = column.chunk(0).to_numpy(zero_copy_only=False)
    return values.min().item(), values.max().item()


def _column_surely_passes(column, checks: ColumnChecks | None, pa, pc) -> bool:
    extremes = _numpy_extremes(column, pa)
    if pa.types.is_floating(column.type):  # pandera counts NaN as null; let it decide
        if extremes is not None:
            if extremes[0] != extremes[0] or extremes[1] != extremes[1]:
                return False
        elif pc.any(pc.is_nan(column)).as_py():
            return False
    if column.null_count and not (checks and checks.nullable):
        return False
    if checks is None:
        return True
    if checks.regex is not None:
        # Python's re on the distinct values (pyarrow's RE2 differs), as pandera's str_matches does
        if not pa.types.is_string(column.type) and not pa.types.is_large_string(column.type):
            return False
        distinct = pc.unique(column)
        if len(distinct) > 10_000:
            return False
        pattern = re.compile(f"^(?:{checks.regex})$")
        if not all(v is None or pattern.match(v) for v in distinct.to_pylist()):
            return False
    bounds = [checks.ge, checks.gt, checks.le, checks.lt, checks.between]
    if any(b is not None for b in bounds):
        if not (pa.types.is_integer(column.type) or pa.types.is_floating(column.type)):
            return False
        if extremes is None:
            found = pc.min_max(column)
            extremes = found["min"].as_py(), found["max"].as_py()
        low, high = extremes
        if low is not None and not (
                (checks.ge is None or low >= checks.ge) and (checks.gt is None or low > checks.gt)
                and (checks.le is None or high <= checks.le) and (checks.lt is None or high < checks.lt)
                and (checks.between is None or (low >= checks.between[0] and high <= checks.between[1]))):
            return False
    if checks.isin is not None:
        allowed = pa.array(list(checks.isin), type=column.type)
        if not pc.all(pc.is_in(column, value_set=allowed)).as_py():
            return False
    if checks.unique and pc.count_distinct(column, mode="only_valid").as_py() != len(column) - column.null_count:
        return False
    return True
