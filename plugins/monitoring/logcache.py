"""The prediction log as columns: what monitors, ground-truth joins and reports read.

The log (:mod:`ml_framework.plugins.serving.prediction_log`) is JSON lines in segment files. Monitors read overlapping
windows of it run after run, so each segment is parsed once into numpy columns and cached under
``.ml/monitor-cache/<deployment>/<segment>/`` (``.npy`` files, memory-mapped when read). A segment that grew since (the one being written)
has only its new complete lines parsed and appended; a segment that shrank or was rewritten is parsed
again; caches of segments the log dropped are removed. Parsing uses pyarrow's JSON reader (C++,
multi-threaded) and falls back to the standard library when a segment holds what pyarrow refuses
(torn lines after a crash, a feature that is a number in one row and text in another).

Columns: ``request_id``, ``model``, ``model_version``, ``variant`` (text), ``ts`` (int64 microseconds
since the epoch, :data:`NO_TS` when missing or unreadable), ``status`` (int64, 0 when missing),
``prediction`` (float64: the number, or for a list the largest value), ``prediction_class`` (int64: the
index of the largest value of a list, -1 for a number), ``f:<feature>`` (float64 with NaN when missing,
or for text values a :class:`Categories`: int32 codes into a vocabulary, -1 when missing) and
``e:<entity key>`` (text). Text features are dictionary-encoded once, when a segment is parsed, so a
window of a million rows maps to a monitor's categories with one small lookup per segment.

Only rows that were answered (status 0 or 2xx) and were not shadow traffic are kept by
:func:`read_log` unless asked otherwise: shadow rows repeat the stable rows' features.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

__all__ = ["MISSING", "NO_TS", "LogColumns", "read_log", "cache_dir", "category_text", "parse_ts"]

MISSING = "\x1e"  # a missing text value (numpy strips trailing NULs, so not "\0")
NO_TS = np.iinfo(np.int64).min
CACHE_VERSION = 3
TEXT = ("request_id", "model", "model_version", "variant")
CATEGORICAL_TEXT = ("model", "model_version", "variant")  # few distinct values: dictionary-encoded
_GUARD = threading.Lock()
_OPENED: "OrderedDict[str, _Opened]" = OrderedDict()  # segment cache folder -> its open maps (see _Segment)
_OPENED_KEPT = 512


def cache_dir(project_dir: Path, deployment: str) -> Path:
    return Path(project_dir) / ".ml" / "monitor-cache" / deployment


def category_text(value: Any) -> str:
    """One spelling per category value across JSON, parquet and pandas: 3, 3.0 -> "3"; True -> "True"."""
    if value is None:
        return MISSING
    if isinstance(value, bool) or isinstance(value, np.bool_):
        return "True" if value else "False"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        if math.isnan(value):
            return MISSING
        return str(int(value)) if float(value).is_integer() and abs(value) < 1e15 else repr(float(value))
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, default=str)


def parse_ts(values) -> np.ndarray:
    """ISO 8601 texts (or anything pandas reads as a time) -> int64 microseconds since the epoch, UTC."""
    import pandas as pd

    parsed = pd.to_datetime(pd.Series(values, dtype="object"), utc=True, errors="coerce", format="ISO8601")
    out = parsed.to_numpy(dtype="datetime64[us]", na_value=np.datetime64("NaT")).astype(np.int64)
    return out  # NaT is int64 min == NO_TS


@dataclass(frozen=True)
class Categories:
    """A dictionary-encoded text column: ``vocab[codes[i]]``, code -1 for a missing value."""

    codes: np.ndarray  # int32
    vocab: np.ndarray  # str

    def __len__(self) -> int:
        return len(self.codes)

    def __getitem__(self, index) -> "Categories":
        return Categories(self.codes[index], self.vocab)

    def text(self) -> np.ndarray:
        if not len(self.vocab):
            return np.full(len(self.codes), MISSING)
        return np.where(self.codes >= 0, self.vocab[np.maximum(self.codes, 0)], MISSING)


class Chunks:
    """A numeric column kept as its segments' (memory-mapped) arrays, joined only when someone needs one
    array: the window's matrix is filled straight from the segments (:meth:`copy_into`)."""

    def __init__(self, parts: list[np.ndarray]):
        self.parts = parts

    def __len__(self) -> int:
        return sum(len(p) for p in self.parts)

    def array(self) -> np.ndarray:
        return np.concatenate(self.parts) if len(self.parts) != 1 else np.asarray(self.parts[0])

    def copy_into(self, out: np.ndarray) -> None:
        start = 0
        for part in self.parts:
            out[start:start + len(part)] = part
            start += len(part)

    def __getitem__(self, index) -> "Chunks | np.ndarray":
        if isinstance(index, slice) and index.step in (None, 1):
            start, stop, _ = index.indices(len(self))
            parts, offset = [], 0
            for part in self.parts:
                lo, hi = max(start - offset, 0), min(stop - offset, len(part))
                if lo < hi:
                    parts.append(part[lo:hi])
                offset += len(part)
            return Chunks(parts)
        return self.array()[index]


@dataclass
class LogColumns:
    """Rows of the prediction log as named columns (all the same length), oldest first."""

    columns: dict[str, Any] = field(default_factory=dict)  # np.ndarray, Categories or Chunks
    n: int = 0
    segments: int = 0
    dropped_rows: int = 0  # unreadable lines and rows filtered out (errors, shadow)
    no_nan: frozenset = frozenset()  # numeric columns known to hold no NaN (so encoders skip the test)

    def _plain(self, name: str):
        column = self.columns.get(name)
        if isinstance(column, Chunks):
            column = self.columns[name] = column.array()
        return column

    def get(self, name: str) -> np.ndarray | None:
        column = self._plain(name)
        return column.text() if isinstance(column, Categories) else column

    def categories(self, name: str) -> "Categories | None":
        """A text column as codes + vocabulary (``model_version``, ``variant`` and text features are stored so)."""
        column = self._plain(name)
        if column is None or isinstance(column, Categories):
            return column
        return _categories(np.asarray(column, dtype=str))

    def feature(self, name: str):
        """A feature's values: float64 (NaN when missing), :class:`Categories`, or None if never logged."""
        return self._plain("f:" + name)

    def copy_feature(self, name: str, out: np.ndarray) -> bool:
        """Copy a numeric feature's values into ``out`` without building a joined array first."""
        column = self.columns.get("f:" + name)
        if isinstance(column, Chunks):
            column.copy_into(out)
            return True
        if isinstance(column, np.ndarray) and column.dtype.kind == "f":
            out[:] = column
            return True
        return False

    def features(self) -> list[str]:
        return [k[2:] for k in self.columns if k.startswith("f:")]

    def select(self, mask_or_index) -> "LogColumns":
        cols = {k: v[mask_or_index] for k, v in self.columns.items()}
        n = len(next(iter(cols.values()))) if cols else 0
        return LogColumns(cols, n, self.segments, self.dropped_rows, self.no_nan)  # rows of clean columns are clean

    def tail(self, count: int) -> "LogColumns":
        return self if self.n <= count else self.select(slice(self.n - count, self.n))


# -- parsing one segment ---------------------------------------------------------------------------------------
def _column(values: list) -> np.ndarray:
    types = {type(v) for v in values}
    if types <= {int, float, type(None)} and types != {type(None)}:
        try:
            return np.array(values, dtype=np.float64)
        except (TypeError, ValueError, OverflowError):
            pass
    if types == {type(None)}:
        return np.full(len(values), np.nan)
    return _categories(np.array([category_text(v) for v in values], dtype=str))


def _categories(text: np.ndarray) -> "Categories":
    vocab, codes = np.unique(text, return_inverse=True)
    codes = codes.astype(np.int32)
    missing = np.flatnonzero(vocab == MISSING)
    if len(missing):
        gone = int(missing[0])
        codes = np.where(codes == gone, -1, codes - (codes > gone)).astype(np.int32)
        vocab = np.delete(vocab, gone)
    return Categories(codes, vocab.astype(str))


def _prediction(values: list) -> tuple[np.ndarray, np.ndarray]:
    pred = np.full(len(values), np.nan)
    klass = np.full(len(values), -1, dtype=np.int64)
    for i, v in enumerate(values):
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            pred[i] = v
        elif isinstance(v, list) and v and all(isinstance(x, (int, float)) for x in v):
            j = int(np.argmax(v))
            klass[i], pred[i] = j, float(v[j])
    return pred, klass


def _status(values: list) -> np.ndarray:
    return np.array([v if isinstance(v, int) else 0 for v in values], dtype=np.int64)


def _parse_python(data: bytes) -> dict[str, np.ndarray]:
    records = []
    for line in data.split(b"\n"):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:  # a torn line from a crash
            continue
        if isinstance(record, dict):
            records.append(record)
    return _from_records(records)


def _from_records(records: list[dict]) -> dict[str, np.ndarray]:
    n = len(records)
    cols: dict[str, np.ndarray] = {}
    for name in TEXT:
        cols[name] = np.array([category_text(r.get(name)) for r in records], dtype=str).reshape(n)
        if name in CATEGORICAL_TEXT:
            cols[name] = _categories(cols[name])
    cols["ts"] = parse_ts([r.get("ts") for r in records]) if n else np.zeros(0, np.int64)
    cols["status"] = _status([r.get("status") for r in records])
    cols["prediction"], cols["prediction_class"] = _prediction([r.get("prediction") for r in records])
    for prefix, key in (("f:", "features"), ("e:", "entity_keys")):
        dicts = [r.get(key) if isinstance(r.get(key), dict) else {} for r in records]
        names = dict.fromkeys(k for d in dicts for k in d)
        for name in names:
            values = [d.get(name) for d in dicts]
            if prefix == "e:":
                cols[prefix + name] = np.array([category_text(v) for v in values], dtype=str).reshape(n)
            else:
                cols[prefix + name] = _column(values)
    return cols


def _parse_arrow(data: bytes) -> dict[str, np.ndarray] | None:
    """The fast path; None when pyarrow cannot read this block (the caller falls back)."""
    try:
        import pyarrow as pa
        import pyarrow.json as pj
    except ImportError:  # pragma: no cover - pyarrow ships with the backends
        return None
    try:
        table = pj.read_json(pa.BufferReader(data), read_options=pj.ReadOptions(block_size=1 << 24))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        return None
    n = table.num_rows
    names = set(table.column_names)
    cols: dict[str, np.ndarray] = {}
    for name in TEXT:
        cols[name] = _arrow_text(table.column(name), n) if name in names else np.full(n, MISSING)
        if name in CATEGORICAL_TEXT:
            cols[name] = _categories(cols[name])
    if "ts" in names:
        ts = table.column("ts")
        if pa.types.is_timestamp(ts.type):
            cols["ts"] = ts.cast(pa.timestamp("us", tz="UTC")).to_numpy().astype(np.int64)
        else:
            cols["ts"] = parse_ts(ts.to_pylist())
    else:
        cols["ts"] = np.full(n, NO_TS, dtype=np.int64)
    if "status" in names and pa.types.is_integer(table.column("status").type):
        cols["status"] = table.column("status").fill_null(0).to_numpy().astype(np.int64)
    else:
        cols["status"] = _status(table.column("status").to_pylist() if "status" in names else [None] * n)
    pred = table.column("prediction") if "prediction" in names else None
    if pred is not None and (pa.types.is_floating(pred.type) or pa.types.is_integer(pred.type)):
        cols["prediction"] = pred.cast(pa.float64()).fill_null(np.nan).to_numpy()
        cols["prediction_class"] = np.full(n, -1, dtype=np.int64)
    else:
        cols["prediction"], cols["prediction_class"] = _prediction(pred.to_pylist() if pred is not None else [None] * n)
    for prefix, key in (("f:", "features"), ("e:", "entity_keys")):
        if key not in names or not pa.types.is_struct(table.column(key).type):
            continue
        struct = table.column(key).combine_chunks()
        for index in range(struct.type.num_fields):
            child = struct.field(index)
            name = struct.type.field(index).name
            if struct.null_count:
                import pyarrow.compute as pc

                child = pc.if_else(struct.is_valid(), child, pa.nulls(n, child.type))
            cols[prefix + name] = _arrow_column(child, n, text=prefix == "e:")
    return cols


def _arrow_text(column, n: int) -> np.ndarray:
    import pyarrow as pa

    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        return np.array(column.fill_null(MISSING).to_numpy(zero_copy_only=False), dtype=str).reshape(n)
    return np.array([category_text(v) for v in column.to_pylist()], dtype=str).reshape(n)


def _arrow_column(child, n: int, *, text: bool) -> np.ndarray:
    import pyarrow as pa

    kind = child.type
    if not text and (pa.types.is_floating(kind) or pa.types.is_integer(kind)):
        return child.cast(pa.float64()).fill_null(np.nan).to_numpy(zero_copy_only=False)
    if pa.types.is_null(kind):
        return np.full(n, MISSING) if text else np.full(n, np.nan)
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        if text:
            return np.array(child.fill_null(MISSING).to_numpy(zero_copy_only=False), dtype=str).reshape(n)
        encoded = child.dictionary_encode()
        codes = encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int32)
        return Categories(codes, np.array(encoded.dictionary.to_pylist(), dtype=str).reshape(-1))
    values = np.array([category_text(v) for v in child.to_pylist()], dtype=str).reshape(n)
    return values if text else _categories(values)


def parse_block(data: bytes) -> dict[str, np.ndarray]:
    """Complete JSON lines -> columns."""
    if not data.strip():
        return _from_records([])
    return _parse_arrow(data) or _parse_python(data)


# -- the cache ------------------------------------------------------------------------------------------------
def _to_categories(column, length: int) -> "Categories":
    if isinstance(column, Categories):
        return column
    if column is None:
        return Categories(np.full(length, -1, dtype=np.int32), np.zeros(0, dtype=str))
    if column.dtype.kind == "f":
        uniq, inverse = np.unique(column, return_inverse=True)  # NaNs sort last, each its own entry
        text = np.array([category_text(float(u)) for u in uniq], dtype=str)
        return _categories(text[inverse] if len(uniq) else np.zeros(0, dtype=str))
    return _categories(column.astype(str))


def _concat_categories(pieces: list["Categories"]) -> "Categories":
    first = pieces[0] if pieces else None
    if first is not None and all(p.vocab is first.vocab or np.array_equal(p.vocab, first.vocab) for p in pieces[1:]):
        return Categories(np.concatenate([p.codes for p in pieces]), first.vocab)  # the usual case: one vocabulary
    vocab = np.unique(np.concatenate([p.vocab for p in pieces])) if pieces else np.zeros(0, dtype=str)
    codes = []
    for piece in pieces:
        # The piece's codes -> positions in the joined vocabulary; the extra last entry maps -1 to -1.
        remap = np.append(np.searchsorted(vocab, piece.vocab), -1).astype(np.int32)
        codes.append(remap[piece.codes])
    return Categories(np.concatenate(codes), vocab.astype(str))


def _concat(parts: list[dict[str, Any]], lengths: list[int], *, lazy: bool = False) -> dict[str, Any]:
    """Columns of several blocks one after the other; a column a block lacks is missing there.
    ``lazy``: numeric features become :class:`Chunks` (joined only if asked for)."""
    names = dict.fromkeys(k for part in parts for k in part)
    out: dict[str, Any] = {}
    for name in names:
        if len(parts) == 1:
            out[name] = parts[0][name]
            continue
        if lazy and name.startswith("f:") and all(isinstance(part.get(name), np.ndarray)
                                                  and part[name].dtype.kind == "f" for part in parts):
            out[name] = Chunks([part[name] for part in parts])
            continue
        if any(isinstance(part.get(name), Categories) for part in parts):
            out[name] = _concat_categories([_to_categories(part.get(name), n) for part, n in zip(parts, lengths)])
            continue
        text = any(name in part and part[name].dtype.kind == "U" for part in parts)
        pieces = []
        for part, length in zip(parts, lengths):
            column = part.get(name)
            if column is None:
                column = _missing(name, length, text)
            elif text and column.dtype.kind != "U":
                column = np.array([category_text(v) for v in column.tolist()], dtype=str).reshape(length)
            pieces.append(column)
        out[name] = np.concatenate(pieces)
    return out


def _missing(name: str, length: int, text: bool) -> np.ndarray:
    if name == "ts":
        return np.full(length, NO_TS, dtype=np.int64)
    if name == "status":
        return np.zeros(length, dtype=np.int64)
    if name == "prediction_class":
        return np.full(length, -1, dtype=np.int64)
    if text or name in TEXT or name.startswith("e:"):
        return np.full(length, MISSING)
    return np.full(length, np.nan)


def _rows(cols: Mapping[str, np.ndarray]) -> int:
    return len(cols["ts"]) if "ts" in cols else 0


class _Opened:
    """A segment cache's meta.json and its arrays, each memory-mapped on first use."""

    def __init__(self, folder: Path, meta: Mapping[str, Any], stamp: tuple):
        self.folder, self.meta, self.stamp = folder, meta, stamp
        self._memo: dict[Any, Any] = {}

    def no_nan(self) -> frozenset:
        """The float columns of this segment without a NaN (counted once per process)."""
        def count():
            floats = [(name, index) for name, kind, index in self.meta["columns"] if kind == "f"]
            holes = np.isnan(self.block("floats")).any(axis=0) if floats else None
            return frozenset(name for name, index in floats if not holes[index])

        return self.memo("no_nan", count)

    def memo(self, key, build):
        """What ``build()`` returns, once per key for this (unchanging) cache: the columns a monitor asks
        for and its usable-rows mask are the same run after run."""
        if key not in self._memo:
            self._memo[key] = build()
        return self._memo[key]

    def block(self, name: str) -> np.ndarray:
        # The map stays alive as the view's base; plain ndarray slices skip np.memmap's per-slice
        # bookkeeping (a window slices hundreds of times).
        return self.memo(("block", name), lambda: np.load(self.folder / f"{name}.npy", mmap_mode="r",
                                                          allow_pickle=False).view(np.ndarray))

    def vocab(self, name: str) -> np.ndarray:
        return self.memo(("vocab", name), lambda: np.array(self.meta["vocab"][name], dtype=str))


class _Segment:
    """One segment file and its cached columns: a folder of ``.npy`` files (memory-mapped on read) and a
    ``meta.json`` saying how many bytes of the segment they hold. The maps of an unchanged cache are
    kept per process (:data:`_OPENED`): a monitor that runs again (``ml monitor watch``) re-reads only
    the segment that grew."""

    def __init__(self, path: Path, cache: Path | None):
        self.path = path
        self.cache = cache / path.stem if cache is not None else None

    def _cached(self) -> dict | None:
        if self.cache is None:
            return None
        try:
            meta = json.loads((self.cache / "meta.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return meta if meta.get("version") == CACHE_VERSION else None

    def _opened(self) -> "_Opened | None":
        """The cache as memory maps: from this process's memo when meta.json is the same file as then."""
        if self.cache is None:
            return None
        try:
            stat = os.stat(self.cache / "meta.json")
        except OSError:
            return None
        key = str(self.cache)
        stamp = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        with _GUARD:
            found = _OPENED.get(key)
            if found is not None and found.stamp == stamp:
                _OPENED.move_to_end(key)
                return found
        meta = self._cached()
        if meta is None:
            return None
        opened = _Opened(self.cache, meta, stamp)
        with _GUARD:
            _OPENED[key] = opened
            while len(_OPENED) > _OPENED_KEPT:
                _OPENED.popitem(last=False)
        return opened

    def _unpack(self, opened: "_Opened", wanted) -> dict[str, Any]:
        out: dict[str, Any] = {}
        meta = opened.meta
        for name, kind, index in meta["columns"]:
            if not wanted(name):
                continue
            if kind == "f":
                out[name] = opened.block("floats")[:, index]
            elif kind == "i":
                out[name] = opened.block("ints")[:, index]
            elif kind == "c":
                out[name] = Categories(opened.block("codes")[:, index], opened.vocab(name))
            else:
                out[name] = opened.block(f"t{index}")
        return out

    def load(self, wanted, key=None) -> tuple[dict[str, Any], "_Opened | None"]:
        """The segment's columns (only those ``wanted(name)`` accepts, when cached and unchanged), and the
        open cache they came from (None when the segment was parsed now). ``key`` names ``wanted`` for
        the memo (None: not memoised)."""
        size = self.path.stat().st_size
        opened = self._opened()
        if opened is not None:
            meta = opened.meta
            try:
                if meta["bytes"] == size or (meta["bytes"] < size and not self._grown_tail(meta["bytes"], size)):
                    if key is None:
                        return self._unpack(opened, wanted), opened
                    return opened.memo(("columns", key), lambda: self._unpack(opened, wanted)), opened
                if meta["bytes"] < size:
                    old = self._unpack(opened, lambda name: True)
                    tail, parsed_to = self._parse(meta["bytes"])
                    cols = _concat([old, tail], [meta["rows"], _rows(tail)])
                    self._save(cols, parsed_to)
                    return {k: v for k, v in cols.items() if wanted(k)}, None
            except (OSError, ValueError):  # replaced or pruned by another process while we read: parse
                pass
        cols, parsed_to = self._parse(0)
        self._save(cols, parsed_to)
        return {k: v for k, v in cols.items() if wanted(k)}, None

    def _grown_tail(self, start: int, size: int) -> bool:
        """Whether the bytes after ``start`` hold a complete new line (a partial one is parsed later)."""
        with open(self.path, "rb") as handle:
            handle.seek(start)
            return b"\n" in handle.read(size - start)

    def _parse(self, start: int) -> tuple[dict[str, Any], int]:
        with open(self.path, "rb") as handle:
            handle.seek(start)
            data = handle.read()
        end = data.rfind(b"\n") + 1  # a line still being written is left for the next read
        return parse_block(data[:end]), start + end

    def _save(self, cols: Mapping[str, Any], parsed_to: int) -> None:
        """Numbers in one column-major matrix per type (one memory map each on read), text columns in
        files of their own (read only when asked for), vocabularies in meta.json."""
        if self.cache is None:
            return
        rows = _rows(cols)
        groups: dict[str, list] = {"f": [], "i": [], "c": [], "t": []}
        columns, vocab = [], {}
        for name, column in cols.items():
            if isinstance(column, Categories):
                kind, data = "c", column.codes
                vocab[name] = column.vocab.tolist()
            else:
                kind = {"f": "f", "i": "i", "u": "i"}.get(column.dtype.kind, "t")
                data = column
            columns.append([name, kind, len(groups[kind])])
            groups[kind].append(data)
        meta = {"version": CACHE_VERSION, "bytes": parsed_to, "rows": rows, "columns": columns, "vocab": vocab}
        tmp = self.cache.with_name(f".{self.cache.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        trash = tmp.with_suffix(".old")
        try:
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
            for kind, name, dtype in (("f", "floats", np.float64), ("i", "ints", np.int64), ("c", "codes", np.int32)):
                if groups[kind]:
                    matrix = np.empty((rows, len(groups[kind])), dtype=dtype, order="F")
                    for j, data in enumerate(groups[kind]):
                        matrix[:, j] = data
                    np.save(tmp / f"{name}.npy", matrix, allow_pickle=False)
            for j, data in enumerate(groups["t"]):
                np.save(tmp / f"t{j}.npy", np.asarray(data), allow_pickle=False)
            (tmp / "meta.json").write_text(json.dumps(meta), encoding="utf-8")  # written last: complete
            if self.cache.exists():
                os.replace(self.cache, trash)
            os.replace(tmp, self.cache)
        except OSError:  # a read-only project (or a concurrent writer) still works, only slower
            pass
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.rmtree(trash, ignore_errors=True)


def _segments(directory: Path) -> list[Path]:
    def key(path: Path):
        try:
            return (path.stat().st_mtime, path.name)
        except OSError:
            return (0.0, path.name)

    return sorted(directory.glob("*.jsonl"), key=key)


def _prune(cache: Path, segments: Iterable[Path]) -> None:
    live = {p.stem for p in segments}
    for stale in cache.iterdir():
        if not stale.name.startswith(".") and stale.name not in live:
            shutil.rmtree(stale, ignore_errors=True)
            _OPENED.pop(str(stale), None)


def _usable(cols: Mapping[str, np.ndarray], all_rows: bool) -> np.ndarray | None:
    if all_rows or not cols:
        return None
    status = cols.get("status")
    keep = (status == 0) | ((status >= 200) & (status < 300)) if status is not None else None
    variant = cols.get("variant")
    if variant is not None:
        if isinstance(variant, Categories):
            shadow = np.flatnonzero(variant.vocab == "shadow")
            not_shadow = variant.codes != (shadow[0] if len(shadow) else -2)
        else:
            not_shadow = variant != "shadow"
        keep = not_shadow if keep is None else keep & not_shadow
    return keep


def read_log(project_dir: Path, deployment: str, *, last: int | None = None, since_us: int | None = None,
             columns: Iterable[str] | None = None, use_cache: bool = True, all_rows: bool = False) -> LogColumns:
    """Rows of ``deployment``'s prediction log, oldest first: the newest ``last`` usable ones and/or those
    logged at or after ``since_us`` (microseconds since the epoch). ``columns``: names or ``f:``/``e:``
    prefixes to load (default: all). ``all_rows`` keeps errors and shadow traffic."""
    from ml_framework.plugins.serving.prediction_log import log_dir

    directory = log_dir(project_dir, deployment)
    if not directory.is_dir():
        return LogColumns()
    cache = cache_dir(project_dir, deployment) if use_cache else None
    wanted_names = set(columns) if columns is not None else None
    base = {"ts", "status", "variant"}

    def wanted(name: str) -> bool:
        if wanted_names is None or name in base:
            return True
        return name in wanted_names or name[:2] in wanted_names

    key = None if wanted_names is None else tuple(sorted(wanted_names))

    segments = _segments(directory)
    with _GUARD:
        if cache is not None and cache.is_dir():
            _prune(cache, segments)
    parts: list[dict[str, np.ndarray]] = []
    clean: list[frozenset] = []  # per part: float columns without NaN
    dropped, total = 0, 0
    since_s = since_us / 1e6 if since_us is not None else None
    for path in reversed(segments):  # newest first: "last N" stops early
        try:
            if since_s is not None and last is None and path.stat().st_mtime < since_s:
                break  # every record of an older file was written (so stamped) before `since`
            cols, opened = _Segment(path, cache).load(wanted, key)
        except FileNotFoundError:  # dropped by the writer's size cap while we read
            continue
        n = _rows(cols)
        if opened is not None and not all_rows:
            keep = opened.memo("usable", lambda: _usable(cols, False))
        else:
            keep = _usable(cols, all_rows)
        clean.append(opened.no_nan() if opened is not None else frozenset())
        if since_us is not None:
            recent = cols["ts"] >= since_us
            keep = recent if keep is None else keep & recent
        if keep is not None and not keep.all():
            dropped += int(n - keep.sum()) if since_us is None else int((~keep & (cols["ts"] >= since_us)).sum())
            cols = {k: v[keep] for k, v in cols.items()}
        parts.append(cols)
        total += _rows(cols)
        if last is not None and total >= last:
            break
    parts.reverse()
    merged = _concat(parts, [_rows(p) for p in parts], lazy=True) if parts else {}
    no_nan = frozenset.intersection(*clean) & merged.keys() if clean else frozenset()  # of the columns read
    out = LogColumns(merged, _rows(merged), segments=len(parts), dropped_rows=dropped, no_nan=frozenset(no_nan))
    return out.tail(last) if last is not None else out
