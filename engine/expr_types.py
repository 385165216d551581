"""How Polars SQL typed numbers and arithmetic, reproduced for the engine's own compiler (engine/expr.py).

The engine used to hand spec expressions to Polars SQL; it now compiles them itself, and every output
must stay the same, dtypes included. Two kinds of rule make that work:

* Literals, decided from their text. `1` is a dynamic integer (it takes the type of the other operand),
  `1e3` a dynamic float, `1.5` a Decimal whose precision and scale are its digits (Decimal(2, 1)), and so
  is an integer beyond Int64. Literal arithmetic (+ - *) in which a decimal takes part is folded exactly,
  as Polars SQL folded it (`0.1 + 0.2` is the Decimal 0.3, not a float).
* Operations whose result depends on the operands' dtypes, which a spec expression does not know when it
  is compiled: Polars SQL chose them when the plan was typed, and pl.pipe_with_dtype lets the engine do the
  same. The functions below receive the resolved (expression, dtype) pairs and return what Polars SQL
  built: a decimal literal meeting a float takes the float's width (f32 * 1.5 is Float32) and meeting text
  is compared as text; products and quotients involving decimals keep SQL's scales (s1 + s2, and the
  dividend's scale + 6); % keeps the sign of the dividend (SQL's remainder, not Python's modulo);
  round() rounds decimals half away from zero and floats half to even.

tests/test_expr_oracle.py checks every rule against pl.sql_expr on frames of the common dtypes.
"""

import dataclasses
import decimal
import functools
from collections.abc import Sequence
from decimal import Decimal

import numpy as np
import polars as pl
from sqlglot import exp

from engine.errors import ExprError

MAX_DECIMAL_DIGITS = 38  # Polars' Decimal is 128-bit
INT64_MAX = 2**63 - 1
_EXACT = decimal.Context(prec=2 * MAX_DECIMAL_DIGITS + 2)  # + - * of two 38-digit values stay exact


@dataclasses.dataclass(frozen=True)
class Number:
    """A numeric literal, or arithmetic between literals, with its exact value."""

    value: int | float | Decimal
    decimal: bool = False  # Polars SQL typed it Decimal (a '.' in its spelling, or beyond Int64)
    point: bool = False  # some literal in it is spelled with a '.': Polars SQL folded only such arithmetic
    computed: bool = False  # the result of + - * between literals


def _spelled(text: str) -> Number:
    """The number a literal's spelling stands for, typed as Polars SQL typed it."""
    if "e" in text.lower():
        return Number(float(text))
    if "." in text:
        return Number(Decimal(text), decimal=True, point=True)
    value = int(text)
    return Number(Decimal(value), decimal=True) if value > INT64_MAX else Number(value)


_FOLDED = {exp.Add: _EXACT.add, exp.Sub: _EXACT.subtract, exp.Mul: _EXACT.multiply}


def number(node: exp.Expression) -> Number | None:
    """The number `node` spells (literals, parentheses, unary minus, + - * between them), else None."""
    if isinstance(node, exp.Paren):
        return number(node.this)
    if isinstance(node, exp.Literal):
        return None if node.is_string else _spelled(node.this)
    if isinstance(node, exp.Neg):
        inner = number(node.this)
        return None if inner is None else dataclasses.replace(inner, value=-inner.value)
    fold = _FOLDED.get(type(node))
    if fold is None:
        return None
    left, right = number(node.this), number(node.expression)
    if left is None or right is None or isinstance(left.value, float) or isinstance(right.value, float):
        return None
    value = fold(Decimal(left.value), Decimal(right.value))
    is_decimal = left.decimal or right.decimal
    point = left.point or right.point
    return Number(value if is_decimal else int(value), decimal=is_decimal, point=point, computed=True)


def is_decimal_literal(node: exp.Expression) -> bool:
    """Whether Polars SQL saw a Decimal literal here: it then chose the operation by the other side's dtype."""
    found = number(node)
    return found is not None and found.decimal


def decimal_type(value: Decimal) -> pl.Decimal:
    """Decimal(precision, scale) of a literal: its significant digits and its decimals, as Polars SQL typed it."""
    sign, digits, exponent = value.as_tuple()
    scale = max(0, -exponent)
    significant = len("".join(map(str, digits)).lstrip("0"))
    precision = max(significant, scale, 1)
    if precision > MAX_DECIMAL_DIGITS:
        raise ExprError(f"the number {value} has more than {MAX_DECIMAL_DIGITS} digits (use an exponent: 1.5e40)")
    return pl.Decimal(precision, scale)


def literal(found: Number) -> pl.Expr:
    """The Polars literal of a number: dynamic int or float, or a Decimal of its own precision and scale."""
    if found.decimal:
        return pl.lit(found.value, dtype=decimal_type(found.value))
    return pl.lit(found.value)


# --- rules applied when the plan is typed ---------------------------------------------------------------


def _scale(dtype: pl.DataType) -> int:
    return dtype.scale if dtype.is_decimal() else 0


def _adapt_literals(
    inputs, literal: tuple[bool, bool], text: bool
) -> tuple[pl.Expr, pl.DataType, pl.Expr, pl.DataType]:
    """A decimal literal takes the dtype of a float operand (and, compared with text, of text), as Polars SQL cast it."""
    (a, da), (b, db) = inputs

    def adapts_to(dtype: pl.DataType) -> bool:
        return dtype.is_float() or (text and dtype == pl.String)

    if literal[0] and adapts_to(db):
        a, da = a.cast(db), db
    if literal[1] and adapts_to(da):
        b, db = b.cast(da), da
    return a, da, b, db


def _is_number(dtype: pl.DataType) -> bool:
    return dtype.is_integer() or dtype.is_float() or dtype.is_decimal()


def _fmod(series: Sequence[pl.Series]) -> pl.Series:
    """C's fmod (exact, with the sign of the dividend): Polars' float % is a floored modulo, and inexact."""
    a, b = series
    missing = (a.is_null() | b.is_null()).to_numpy()
    with np.errstate(invalid="ignore", divide="ignore"):  # x % 0.0 is NaN, as in Polars SQL, without a warning
        values = np.fmod(a.to_numpy(), b.to_numpy())
    return pl.Series(a.name, np.ma.masked_array(values, mask=np.broadcast_to(missing, values.shape)), dtype=a.dtype)


def _remainder(inputs) -> pl.Expr:
    """SQL's a % b has the sign of a; Polars' % has the sign of b (Python's modulo).

    `inputs` are (a % b, a, b): Polars resolves the dtype of a % b, literals' flexibility included.
    """
    (_, result), (a, da), (b, db) = inputs
    if not (_is_number(da) and _is_number(db)):
        return a % b  # booleans and nulls: Polars SQL left them to Polars
    if result.is_float():
        return pl.map_batches([a.cast(result), b.cast(result)], _fmod, return_dtype=result, is_elementwise=True)
    modulo = a % b  # exact for integers and decimals: shift by b where the signs differ
    return pl.when((modulo != 0) & ((modulo < 0) != (a < 0))).then(modulo - b).otherwise(modulo)


def _decimal(scale: int) -> pl.Decimal:
    return pl.Decimal(MAX_DECIMAL_DIGITS, min(MAX_DECIMAL_DIGITS, scale))


def _arithmetic(inputs, *, op: str, literal: tuple[bool, bool]) -> pl.Expr:
    a, da, b, db = _adapt_literals(inputs, literal, text=False)
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op == "*":
        if da.is_decimal() and db.is_decimal():  # SQL keeps every decimal of the product
            a = a.cast(_decimal(da.scale + db.scale))
        return a * b
    if op == "/":
        exact = _is_number(da) and _is_number(db) and not (da.is_float() or db.is_float())
        if exact and (da.is_decimal() or db.is_decimal()):  # SQL gives the quotient six more decimals than the dividend
            a = a.cast(_decimal(_scale(da) + 6))
        return a / b
    return pl.pipe_with_dtype([a % b, a, b], _remainder)


def arithmetic(op: str, literal: tuple[bool, bool]):
    """The plan-time builder of `left op right` for pl.pipe_with_dtype; `literal` flags decimal literals."""
    return functools.partial(_arithmetic, op=op, literal=literal)


_COMPARE = {
    "=": pl.Expr.eq,
    "<": pl.Expr.lt,
    "<=": pl.Expr.le,
    ">": pl.Expr.gt,
    ">=": pl.Expr.ge,
}


def _comparison(inputs, *, op: str, literal: tuple[bool, bool]) -> pl.Expr:
    a, _, b, _ = _adapt_literals(inputs, literal, text=True)
    if op == "<>":
        return a.eq(b).not_()
    return _COMPARE[op](a, b)


def comparison(op: str, literal: tuple[bool, bool]):
    """The plan-time builder of a comparison with a decimal literal, for pl.pipe_with_dtype."""
    return functools.partial(_comparison, op=op, literal=literal)


def _round(inputs, *, decimals: int) -> pl.Expr:
    ((x, dtype),) = inputs
    if dtype.is_decimal():
        if decimals >= dtype.scale:
            return x
        # one more digit before the point, for 9.5 -> 10
        widened = pl.Decimal(min(MAX_DECIMAL_DIGITS, dtype.precision + 1), dtype.scale)
        return x.round(decimals, mode="half_away_from_zero").cast(widened)
    if dtype.is_integer():
        return x
    return x.round(decimals)


def rounding(decimals: int):
    """The plan-time builder of round(x, decimals), for pl.pipe_with_dtype."""
    return functools.partial(_round, decimals=decimals)


def _kind(dtype: pl.DataType) -> str | None:
    """What values of `dtype` can be compared with, for x IN (…); None for a null."""
    if dtype == pl.Null:
        return None
    if _is_number(dtype):
        return "number"
    if dtype == pl.Date or isinstance(dtype, pl.Datetime):
        return "time"
    return str(dtype)


def _checked_in(inputs, *, matches: pl.Expr) -> pl.Expr:
    """x IN (constants): Polars SQL refused constants x cannot be compared with (a date IN (1, 2))."""
    (_, value), *items = inputs
    for _, item in items:
        if None not in (_kind(value), _kind(item)) and _kind(value) != _kind(item):
            raise pl.exceptions.InvalidOperationError(f"'IN' cannot check for {value} values among {item} values")
    return matches


def in_constants(value: pl.Expr, items: list[pl.Expr], matches: pl.Expr) -> pl.Expr:
    """`matches` (x = a OR x = b …), once the plan has checked that x and the constants compare."""
    return pl.pipe_with_dtype([value, *items], functools.partial(_checked_in, matches=matches))
