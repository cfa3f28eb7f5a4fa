"""Derived features as expressions: a small, safe language, checked before anything runs and evaluated
the same way for a training frame (columns of thousands of rows) and a request (columns of one row).

Syntax is Python's expression syntax, restricted to what a feature needs (parsed with ``ast``, never
``eval``)::

    amount / customer_txn_stats.amount_mean_7d          # a request field over an online feature
    log1p(clip(amount, 0, None))
    hour(event_ts)                                       # 0-23, UTC
    1 if merchant_category in ['jewelry', 'electronics'] else 0
    coalesce(txn_count_7d, 0) >= 10

Names are the inputs (request fields, ``view.feature`` for features of a view); literals are numbers,
strings, booleans, ``None`` and lists of literals (for ``in`` and ``bucket``). Operators: ``+ - * / //
% **``, comparisons (chained too), ``in`` / ``not in``, ``and or not``, ``a if cond else b``. The
functions are listed in ``FUNCTIONS``. Values have one of four types — number, bool, string, timestamp —
checked at ``ml validate`` with the name, position and did-you-mean of each mistake.

Nulls and arithmetic, declared: arithmetic with a null gives null; a comparison (or ``in``) with a null is
false, as a SQL filter treats it; division (or modulo) by zero gives null, never an infinity or an error;
``log`` of a non-positive number and ``sqrt`` of a negative one give null; a null timestamp has null
parts. ``coalesce(x, v)`` and ``isnull(x)`` deal with nulls explicitly.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from ml_framework.errors import MLError, did_you_mean

__all__ = ["ExpressionError", "Expression", "compile_expression", "FUNCTIONS", "TYPES", "dtype_type"]

NUMBER, BOOL, STRING, TIMESTAMP, NULL = "number", "bool", "string", "timestamp", "null"
TYPES = (NUMBER, BOOL, STRING, TIMESTAMP)
_DTYPE_TYPES = {"float32": NUMBER, "float64": NUMBER, "int32": NUMBER, "int64": NUMBER, "bool": BOOL,
                "string": STRING, "timestamp": TIMESTAMP, "unix_timestamp": TIMESTAMP}


def dtype_type(dtype: str) -> str:
    """The expression type of a feature dtype (float32 -> number, ...)."""
    try:
        return _DTYPE_TYPES[dtype]
    except KeyError:
        raise ExpressionError(f"unknown dtype {dtype!r}", hint=did_you_mean(dtype, _DTYPE_TYPES)) from None


class ExpressionError(MLError):
    """An expression that cannot be compiled: the message names the problem and where in the text."""


@dataclass(frozen=True)
class _Function:
    args: tuple[tuple[str, ...], ...]  # accepted types per argument (NULL accepted everywhere)
    result: str  # a type, or "arg0" (the first argument's type)
    apply: Callable[..., Any]
    optional: int = 0  # trailing arguments that may be left out


def _np():
    import numpy as np

    return np


def _pd():
    import pandas as pd

    return pd


def _float(values):
    np = _np()
    return np.asarray(values, dtype="float64")


def _safe_log(x):
    np = _np()
    x = _float(x)
    with np.errstate(all="ignore"):
        return np.where(x > 0, np.log(np.where(x > 0, x, 1.0)), np.nan)


def _safe_log1p(x):
    np = _np()
    x = _float(x)
    with np.errstate(all="ignore"):
        return np.where(x > -1, np.log1p(np.where(x > -1, x, 0.0)), np.nan)


def _safe_sqrt(x):
    np = _np()
    x = _float(x)
    with np.errstate(all="ignore"):
        return np.where(x >= 0, np.sqrt(np.where(x >= 0, x, 0.0)), np.nan)


def _clip(x, lo=None, hi=None):
    np = _np()
    x = _float(x)
    lo = None if lo is None else _float(lo)
    hi = None if hi is None else _float(hi)
    return np.clip(x, lo, hi) if (lo is not None or hi is not None) else x


def _timestamps(values):
    pd = _pd()
    return pd.to_datetime(pd.Series(values), utc=True, errors="coerce")


def _part(name):
    def apply(ts):
        parts = getattr(_timestamps(ts).dt, name)
        return _float(parts.astype("float64"))
    return apply


def _seconds_between(a, b):
    return _float((_timestamps(b) - _timestamps(a)).dt.total_seconds())


def _coalesce(x, default):
    pd = _pd()
    x = pd.Series(_as_array(x)) if not isinstance(x, pd.Series) else x
    return x.where(~pd.isna(x), other=_scalar_or_array(default, len(x))).to_numpy()


def _isnull(x):
    pd = _pd()
    return pd.isna(pd.Series(_as_array(x))).to_numpy()


def _bucket(x, edges):
    np = _np()
    x = _float(x)
    out = np.digitize(x, np.asarray(edges, dtype="float64")).astype("float64")
    out[np.isnan(x)] = np.nan
    return out


def _round(x, digits=0):
    np = _np()
    return np.round(_float(x), int(digits))


def _minimum(a, b):
    np = _np()
    return np.minimum(_float(a), _float(b))


def _maximum(a, b):
    np = _np()
    return np.maximum(_float(a), _float(b))


def _abs(x):
    return _np().abs(_float(x))


def _exp(x):
    np = _np()
    with np.errstate(all="ignore"):
        return np.exp(_float(x))


_NUM = (NUMBER, BOOL)
_ANY = (NUMBER, BOOL, STRING, TIMESTAMP)
FUNCTIONS: dict[str, _Function] = {
    "log": _Function(((NUMBER,),), NUMBER, _safe_log),
    "log1p": _Function(((NUMBER,),), NUMBER, _safe_log1p),
    "exp": _Function(((NUMBER,),), NUMBER, _exp),
    "sqrt": _Function(((NUMBER,),), NUMBER, _safe_sqrt),
    "abs": _Function((_NUM,), NUMBER, _abs),
    "clip": _Function(((NUMBER,), (NUMBER,), (NUMBER,)), NUMBER, _clip, optional=2),
    "min": _Function((_NUM, _NUM), NUMBER, _minimum),
    "max": _Function((_NUM, _NUM), NUMBER, _maximum),
    "round": _Function(((NUMBER,), (NUMBER,)), NUMBER, _round, optional=1),
    "bucket": _Function(((NUMBER,), ("list",)), NUMBER, _bucket),
    "coalesce": _Function((_ANY, _ANY), "arg0", _coalesce),
    "isnull": _Function((_ANY,), BOOL, _isnull),
    "hour": _Function(((TIMESTAMP,),), NUMBER, _part("hour")),
    "dayofweek": _Function(((TIMESTAMP,),), NUMBER, _part("dayofweek")),
    "day": _Function(((TIMESTAMP,),), NUMBER, _part("day")),
    "month": _Function(((TIMESTAMP,),), NUMBER, _part("month")),
    "seconds_between": _Function(((TIMESTAMP,), (TIMESTAMP,)), NUMBER, _seconds_between),
}


def _as_array(value):
    np = _np()
    if hasattr(value, "to_numpy"):
        return value.to_numpy()
    return np.asarray(value)


def _scalar_or_array(value, length: int):
    np = _np()
    if np.ndim(value) == 0:
        return value
    return _as_array(value)


@dataclass(frozen=True)
class Expression:
    """A compiled expression: ``inputs`` it reads, its result ``type``, and ``evaluate(columns)``."""

    text: str
    inputs: tuple[str, ...]
    type: str
    _tree: ast.AST

    def evaluate(self, columns: Mapping[str, Any], length: int | None = None):
        """The values for each row: ``columns`` maps every input to a sequence (a pandas Series, a numpy
        array or a list) of the same length. Returns a numpy array of that length."""
        np = _np()
        if length is None:
            length = len(next(iter(columns.values()))) if columns else 1
        with np.errstate(all="ignore"):
            value = _Evaluator(columns).visit(self._tree.body)
        value = _as_array(value)
        if value.ndim == 0:  # a constant expression: the same value on every row
            scalar = value.item()
            value = np.full(length, scalar, dtype=object if isinstance(scalar, str) else "float64")
        return value


class _Checker(ast.NodeVisitor):
    """Types every node; collects the inputs; refuses anything outside the language."""

    def __init__(self, text: str, inputs: Mapping[str, str]):
        self.text, self.inputs, self.used = text, inputs, []

    def fail(self, node: ast.AST, message: str, hint: str | None = None):
        column = getattr(node, "col_offset", 0) + 1
        raise ExpressionError(f"{message} (at character {column} of {self.text!r})", hint=hint)

    def generic_visit(self, node):
        self.fail(node, f"{type(node).__name__.lower()} is not part of the expression language",
                  "use arithmetic, comparisons, `and/or/not`, `x if c else y` and the listed functions")

    def _name(self, node) -> str | None:
        if isinstance(node, ast.Name):
            return node.id
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            return f"{node.value.id}.{node.attr}"
        return None

    def _input(self, node) -> str:
        name = self._name(node)
        if name is None:
            self.fail(node, "only `field` or `view.feature` names can be read")
        if name not in self.inputs:
            self.fail(node, f"unknown name {name!r}", did_you_mean(name, self.inputs)
                      or f"inputs: {', '.join(sorted(self.inputs)) or 'none'}")
        if name not in self.used:
            self.used.append(name)
        return self.inputs[name]

    visit_Name = visit_Attribute = _input

    def visit_Constant(self, node):
        value = node.value
        if value is None:
            return NULL
        if isinstance(value, bool):
            return BOOL
        if isinstance(value, (int, float)):
            return NUMBER
        if isinstance(value, str):
            return STRING
        self.fail(node, f"literal {value!r} is not supported")

    def visit_List(self, node):
        for item in node.elts:
            if not isinstance(item, ast.Constant) or isinstance(item.value, (list, dict)):
                self.fail(item, "a list holds literals only")
        return "list"

    visit_Tuple = visit_List

    def visit_BinOp(self, node):
        left, right = self.visit(node.left), self.visit(node.right)
        allowed = (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.FloorDiv, ast.Mod, ast.Pow)
        if not isinstance(node.op, allowed):
            self.fail(node, f"operator {type(node.op).__name__} is not supported")
        if isinstance(node.op, ast.Add) and left == right == STRING:
            return STRING
        for side, kind in ((node.left, left), (node.right, right)):
            if kind not in (NUMBER, BOOL, NULL):
                self.fail(side, f"arithmetic needs numbers, got a {kind}")
        return NUMBER

    def visit_UnaryOp(self, node):
        kind = self.visit(node.operand)
        if isinstance(node.op, ast.Not):
            return BOOL
        if isinstance(node.op, (ast.USub, ast.UAdd)) and kind in (NUMBER, BOOL, NULL):
            return NUMBER
        self.fail(node, f"{type(node.op).__name__} cannot apply to a {kind}")

    def visit_BoolOp(self, node):
        for value in node.values:
            self.visit(value)
        return BOOL

    def visit_Compare(self, node):
        kinds = [self.visit(node.left)] + [self.visit(c) for c in node.comparators]
        for op, (left, right) in zip(node.ops, zip(kinds, kinds[1:])):
            if isinstance(op, (ast.In, ast.NotIn)):
                if right != "list":
                    self.fail(node, "`in` needs a list of literals on its right, e.g. x in ['a', 'b']")
                continue
            if not isinstance(op, (ast.Eq, ast.NotEq, ast.Lt, ast.LtE, ast.Gt, ast.GtE)):
                self.fail(node, f"comparison {type(op).__name__} is not supported")
            comparable = {left, right} - {NULL}
            if len(comparable) > 1 and comparable != {NUMBER, BOOL}:
                self.fail(node, f"cannot compare a {left} with a {right}")
        return BOOL

    def visit_IfExp(self, node):
        self.visit(node.test)
        body, other = self.visit(node.body), self.visit(node.orelse)
        if NULL in (body, other):
            return other if body == NULL else body
        if body != other and {body, other} != {NUMBER, BOOL}:
            self.fail(node, f"both branches must have one type, got a {body} and a {other}")
        return NUMBER if {body, other} == {NUMBER, BOOL} else body

    def visit_Call(self, node):
        if not isinstance(node.func, ast.Name) or node.keywords:
            self.fail(node, "call functions by name with positional arguments, e.g. clip(amount, 0, 100)")
        spec = FUNCTIONS.get(node.func.id)
        if spec is None:
            self.fail(node, f"unknown function {node.func.id!r}", did_you_mean(node.func.id, FUNCTIONS)
                      or f"functions: {', '.join(sorted(FUNCTIONS))}")
        least, most = len(spec.args) - spec.optional, len(spec.args)
        if not least <= len(node.args) <= most:
            wanted = str(most) if least == most else f"{least} to {most}"
            self.fail(node, f"{node.func.id}() takes {wanted} arguments, got {len(node.args)}")
        kinds = []
        for position, (arg, accepted) in enumerate(zip(node.args, spec.args), start=1):
            kind = self.visit(arg)
            kinds.append(kind)
            if kind != NULL and kind not in accepted:
                self.fail(arg, f"argument {position} of {node.func.id}() must be a {' or '.join(accepted)}, got a {kind}")
        return kinds[0] if spec.result == "arg0" else spec.result


class _Evaluator(ast.NodeVisitor):
    """Evaluates a checked tree over columns, vectorized (numpy / pandas)."""

    def __init__(self, columns: Mapping[str, Any]):
        self.columns = columns

    def _read(self, node):
        name = node.id if isinstance(node, ast.Name) else f"{node.value.id}.{node.attr}"
        values = self.columns[name]
        return values.to_numpy() if hasattr(values, "to_numpy") else _np().asarray(values)

    visit_Name = visit_Attribute = _read

    def visit_Constant(self, node):
        return node.value

    def visit_List(self, node):
        return [item.value for item in node.elts]

    visit_Tuple = visit_List

    @staticmethod
    def _numbers(value):
        np = _np()
        if value is None:
            return np.nan
        array = np.asarray(value)
        if array.dtype == object:
            return _pd().to_numeric(_pd().Series(array.ravel()), errors="coerce").to_numpy(dtype="float64").reshape(array.shape)
        return array.astype("float64")

    def visit_BinOp(self, node):
        np = _np()
        left, right = self.visit(node.left), self.visit(node.right)
        if isinstance(node.op, ast.Add) and (isinstance(left, str) or _is_text(left)):
            return _pd().Series(_as_array(left)).astype("string").add(_pd().Series(_as_array(right)).astype("string")).to_numpy(dtype=object) \
                if np.ndim(left) or np.ndim(right) else left + right
        a, b = self._numbers(left), self._numbers(right)
        op = node.op
        if isinstance(op, ast.Add):
            return a + b
        if isinstance(op, ast.Sub):
            return a - b
        if isinstance(op, ast.Mult):
            return a * b
        if isinstance(op, ast.Pow):
            return np.power(a, b)
        zero = np.asarray(b) == 0
        safe = np.where(zero, 1.0, b)
        if isinstance(op, ast.Div):
            out = a / safe
        elif isinstance(op, ast.FloorDiv):
            out = np.floor_divide(a, safe)
        else:
            out = np.mod(a, safe)
        return np.where(zero, np.nan, out)  # declared: division by zero gives null

    def visit_UnaryOp(self, node):
        value = self.visit(node.operand)
        if isinstance(node.op, ast.Not):
            return ~self._truth(value)
        number = self._numbers(value)
        return -number if isinstance(node.op, ast.USub) else number

    def _truth(self, value):
        np = _np()
        array = np.asarray(value)
        if array.dtype == object:
            return _pd().Series(array.ravel()).fillna(False).astype(bool).to_numpy().reshape(array.shape)
        if array.dtype.kind == "f":
            return np.nan_to_num(array, nan=0.0) != 0
        return array.astype(bool)

    def visit_BoolOp(self, node):
        values = [self._truth(self.visit(v)) for v in node.values]
        out = values[0]
        for value in values[1:]:
            out = (out & value) if isinstance(node.op, ast.And) else (out | value)
        return out

    def _compare(self, op, left, right):
        np, pd = _np(), _pd()
        if isinstance(op, (ast.In, ast.NotIn)):
            found = pd.Series(_as_array(left).ravel() if np.ndim(left) else [left]).isin(right).to_numpy()
            return ~found if isinstance(op, ast.NotIn) else found
        text = isinstance(left, str) or isinstance(right, str) or _is_text(left) or _is_text(right)
        if text:
            a = pd.Series(_as_array(left).ravel() if np.ndim(left) else [left], dtype=object)
            b = right if not np.ndim(right) else pd.Series(_as_array(right).ravel(), dtype=object)
        else:
            a, b = self._numbers(left), self._numbers(right)
        result = {ast.Eq: lambda: a == b, ast.NotEq: lambda: a != b, ast.Lt: lambda: a < b,
                  ast.LtE: lambda: a <= b, ast.Gt: lambda: a > b, ast.GtE: lambda: a >= b}[type(op)]()
        return np.asarray(result, dtype=bool)

    def visit_Compare(self, node):
        np = _np()
        values = [self.visit(node.left)] + [self.visit(c) for c in node.comparators]
        out = None
        for op, left, right in zip(node.ops, values, values[1:]):
            part = self._compare(op, left, right)
            out = part if out is None else (out & part)
        return out if out is not None else np.asarray(True)

    def visit_IfExp(self, node):
        np = _np()
        test = self._truth(self.visit(node.test))
        body, other = self.visit(node.body), self.visit(node.orelse)
        if _is_text(body) or _is_text(other) or isinstance(body, str) or isinstance(other, str):
            return np.where(test, np.asarray(body, dtype=object), np.asarray(other, dtype=object))
        return np.where(test, self._numbers(body), self._numbers(other))

    def visit_Call(self, node):
        args = [self.visit(a) for a in node.args]
        return FUNCTIONS[node.func.id].apply(*args)


def _is_text(value) -> bool:
    np = _np()
    array = np.asarray(value) if not isinstance(value, str) else None
    if array is None:
        return True
    if array.dtype.kind in ("U", "S"):
        return True
    if array.dtype == object and array.size:
        first = next((v for v in array.ravel() if v is not None and v == v), None)
        return isinstance(first, str)
    return False


def compile_expression(text: str, inputs: Mapping[str, str]) -> Expression:
    """Parse and type-check ``text`` against ``inputs`` (name -> type: number, bool, string, timestamp).
    Raises ExpressionError naming the first problem and its position."""
    if not isinstance(text, str) or not text.strip():
        raise ExpressionError("an expression is a non-empty string")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        raise ExpressionError(f"not a valid expression: {exc.msg} (at character {exc.offset or 0} of "
                              f"{text.strip()!r})") from None
    checker = _Checker(text.strip(), inputs)
    kind = checker.visit(tree.body)
    if kind in ("list", NULL):
        raise ExpressionError(f"{text.strip()!r} gives no value per row (a {kind})")
    return Expression(text=text.strip(), inputs=tuple(checker.used), type=kind, _tree=tree)
