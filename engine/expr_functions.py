"""The functions a spec expression may call: the whitelist, and how each becomes a Polars expression.

A name not listed here is refused by engine/expr.py ("unknown function 'read_csv'"), so this table is
the whole of what an expression can do. Each builder reproduces what Polars SQL built for the same call
(tests/test_expr_oracle.py compares them); where Polars SQL needed a literal argument (a substr start to
take apart, a round's decimals, a quantile) so does the builder. No function makes a value larger than
its inputs: lpad, rpad and repeat are left out on purpose, and replace may not lengthen text.
"""

import dataclasses
import functools
from collections.abc import Callable

import polars as pl
from sqlglot import exp

from engine import expr_types
from engine.errors import ExprError


class Args:
    """The arguments of one call: compiled on demand, or read as the literals some functions require."""

    def __init__(self, name: str, nodes: list[exp.Expression], compile_node: Callable[[exp.Expression], pl.Expr]):
        self.name, self.nodes, self._compile = name, nodes, compile_node

    def __len__(self) -> int:
        return len(self.nodes)

    def expr(self, i: int) -> pl.Expr:
        return self._compile(self.nodes[i])

    def exprs(self) -> list[pl.Expr]:
        return [self._compile(node) for node in self.nodes]

    def compile(self, node: exp.Expression) -> pl.Expr:
        """Compile a node found inside an argument (the x of count(DISTINCT x))."""
        return self._compile(node)

    def integer(self, i: int, what: str) -> int | None:
        """A whole-number literal argument; None when the argument is an expression, refused when another literal."""
        found = expr_types.number(self.nodes[i])
        if found is None:
            if isinstance(_unparen(self.nodes[i]), exp.Literal):
                raise ExprError(f"{self.name}(): {what} must be a whole number")
            return None
        if found.computed and not found.decimal:
            return None  # literal arithmetic such as 1 + 1: Polars SQL treated it as an expression
        if found.decimal or isinstance(found.value, float):
            raise ExprError(f"{self.name}(): {what} must be a whole number")
        return found.value

    def required_integer(self, i: int, what: str) -> int:
        value = self.integer(i, what)
        if value is None:
            raise ExprError(f"{self.name}(): {what} must be a whole-number literal")
        return value

    def constant(self, i: int) -> bool:
        """Whether an argument reads no column (1, 'x', 1 + 1): Polars SQL aggregated such a value specially."""
        return not any(isinstance(node, exp.Column) for node in self.nodes[i].walk())

    def plain_integer(self, i: int) -> bool:
        """Whether an argument is an integer literal such as 1 or -1 (not 1 + 1)."""
        found = expr_types.number(self.nodes[i])
        return found is not None and not (found.decimal or found.computed or isinstance(found.value, float))

    def null(self, *indices: int) -> bool:
        """Whether one of these arguments is the literal NULL (Polars SQL then made the whole call null)."""
        return any(isinstance(_unparen(self.nodes[i]), exp.Null) for i in indices if i < len(self.nodes))

    def text(self, i: int) -> str | None:
        """A text literal argument, or None."""
        node = _unparen(self.nodes[i])
        return node.this if isinstance(node, exp.Literal) and node.is_string else None


def _unparen(node: exp.Expression) -> exp.Expression:
    while isinstance(node, exp.Paren):
        node = node.this
    return node


@dataclasses.dataclass(frozen=True)
class Function:
    """A whitelisted function: how it is called (for messages and docs), its arity and its builder."""

    usage: str
    min_args: int
    max_args: int
    build: Callable


# --- text -------------------------------------------------------------------------------------------------


def _lower(args: Args) -> pl.Expr:
    return args.expr(0).str.to_lowercase()


def _upper(args: Args) -> pl.Expr:
    return args.expr(0).str.to_uppercase()


def _length(args: Args) -> pl.Expr:
    return args.expr(0).str.len_chars()


def _trim(args: Args) -> pl.Expr:
    return args.expr(0).str.strip_chars(None)


def _ltrim(args: Args) -> pl.Expr:
    return args.expr(0).str.strip_chars_start(args.expr(1) if len(args) > 1 else None)


def _rtrim(args: Args) -> pl.Expr:
    return args.expr(0).str.strip_chars_end(args.expr(1) if len(args) > 1 else None)


def _substr(args: Args) -> pl.Expr:
    """SQL counts from 1, and a start before 1 eats into the length (substr('abc', 0, 2) is 'a')."""
    if args.null(1, 2):
        return pl.lit(None)
    text = args.expr(0)
    start = args.integer(1, "the start")
    length = None
    if len(args) > 2:
        if (literal_length := args.integer(2, "the length")) is not None and literal_length < 0:
            raise ExprError(f"{args.name}(): the length must not be negative")
        length = args.expr(2)
    if start is not None:
        if start >= 1:
            return text.str.slice(start - 1, length)
        return text if length is None else text.str.slice(0, (length + pl.lit(start - 1)).clip(lower_bound=0))
    offset = args.expr(1) - 1
    if length is None:
        return text.str.slice(offset, None)
    before = text.str.slice(0, (length + offset).clip(lower_bound=0))
    return pl.when(offset < 0).then(before).otherwise(text.str.slice(offset, length))


def _split_part(args: Args) -> pl.Expr:
    """The n-th part (from 1; negative counts from the end), '' past the last part, null for null text."""
    text, separator = args.expr(0), args.expr(1)
    n = args.integer(2, "the part number")
    if n is not None:
        index = pl.lit(None) if n == 0 else pl.lit(n - 1 if n > 0 else n)
    else:
        k = args.expr(2)
        index = pl.when(k > 0).then(k - 1).otherwise(pl.when(k == 0).then(None).otherwise(k))
    part = text.str.split(separator).list.get(index, null_on_oob=True).fill_null("")
    return pl.when(text.is_not_null()).then(part).otherwise(text)


def _replace(args: Args) -> pl.Expr:
    """Every occurrence of a text literal replaced by one no longer than it.

    A longer replacement is refused: replace(replace(s, 'a', 'aa'), 'a', 'aa') … doubles the text at each
    level, and sixty levels fit in an expression's bounds. So no whitelisted function makes text longer
    than its inputs together.
    """
    old, new = args.text(1), args.text(2)
    if not old or new is None:
        raise ExprError("replace(): what to replace and its replacement must be text literals, the first not empty")
    if len(new) > len(old):
        raise ExprError(f"replace(): the replacement {new!r} is longer than {old!r} (text may not grow)")
    return args.expr(0).str.replace_all(old, new, literal=True)


def _concat(args: Args) -> pl.Expr:
    return pl.concat_str(args.exprs(), separator="", ignore_nulls=True)


def _starts_with(args: Args) -> pl.Expr:
    return args.expr(0).str.starts_with(args.expr(1))


def _ends_with(args: Args) -> pl.Expr:
    return args.expr(0).str.ends_with(args.expr(1))


REGEX_FLAGS = "imsuxU"


def _regexp_like(args: Args) -> pl.Expr:
    """A regular expression (Rust's regex: no backtracking, so no pattern can take exponential time)."""
    if len(args) == 2:
        return args.expr(0).str.contains(args.expr(1))
    pattern, flags = args.text(1), args.text(2)
    if pattern is None or flags is None:
        raise ExprError("regexp_like(): with flags, the pattern and the flags must be text literals")
    if not flags or set(flags) - set(REGEX_FLAGS):
        raise ExprError(f"regexp_like(): flags are some of {REGEX_FLAGS!r}, got {flags!r}")
    return args.expr(0).str.contains(pl.lit(f"(?{flags}){pattern}"))


def _left(args: Args) -> pl.Expr:
    """The first n characters; a negative n drops the last -n."""
    if args.null(1):
        return pl.lit(None)
    text, n = args.expr(0), args.integer(1, "the length")
    drop_last = text.str.len_chars()
    if n is not None:
        if n == 0:
            return pl.lit("")
        return text.str.slice(0, n) if n > 0 else text.str.slice(0, (drop_last + n).clip(lower_bound=0))
    k = args.expr(1)
    return (
        pl.when(k >= 0)
        .then(text.str.slice(0, k.abs()))
        .otherwise(text.str.slice(0, (drop_last + k).clip(lower_bound=0)))
    )


def _right(args: Args) -> pl.Expr:
    """The last n characters; a negative n drops the first -n."""
    if args.null(1):
        return pl.lit(None)
    text, n = args.expr(0), args.integer(1, "the length")
    length = text.str.len_chars().cast(pl.Int32)
    if n is not None:
        if n == 0:
            return pl.lit("")
        return text.str.slice(length - n, None) if n > 0 else text.str.slice(-n, None)
    k = args.expr(1)
    return pl.when(k < 0).then(text.str.slice(k.abs(), None)).otherwise(text.str.slice(length - k, None))


# --- numbers ----------------------------------------------------------------------------------------------


def _abs(args: Args) -> pl.Expr:
    return args.expr(0).abs()


def _floor(args: Args) -> pl.Expr:
    return args.expr(0).floor()


def _ceil(args: Args) -> pl.Expr:
    return args.expr(0).ceil()


MAX_ROUND_DECIMALS = 38


def _round(args: Args) -> pl.Expr:
    decimals = args.required_integer(1, "the number of decimals") if len(args) > 1 else 0
    if not 0 <= decimals <= MAX_ROUND_DECIMALS:
        raise ExprError(f"round(): the number of decimals must be between 0 and {MAX_ROUND_DECIMALS}")
    return pl.pipe_with_dtype([args.expr(0)], expr_types.rounding(decimals))


# --- nulls, choices ---------------------------------------------------------------------------------------


def _coalesce(args: Args) -> pl.Expr:
    return pl.coalesce(args.exprs())


def _greatest(args: Args) -> pl.Expr:
    return pl.max_horizontal(args.exprs())


def _least(args: Args) -> pl.Expr:
    return pl.min_horizontal(args.exprs())


def _nullif(args: Args) -> pl.Expr:
    value = args.expr(0)
    return pl.when(value.eq(args.expr(1))).then(None).otherwise(value)


# --- time -------------------------------------------------------------------------------------------------


def _epoch(x: pl.Expr) -> pl.Expr:
    """Seconds since 1970 with their fraction, as Polars SQL computed them (whole seconds, then nanoseconds)."""
    return x.dt.timestamp("ns") // pl.lit(1_000_000_000, pl.Int64) + x.dt.nanosecond() / pl.lit(1e9, pl.Float64)


def _day_of_week(x: pl.Expr) -> pl.Expr:
    """0 (Sunday) to 6, as PostgreSQL's dow; isodow is Polars' 1 (Monday) to 7."""
    weekday = x.dt.weekday()
    return pl.when(weekday == 7).then(0).otherwise(weekday)


def _part(method: str) -> Callable[[pl.Expr], pl.Expr]:
    """A date part that is one Polars accessor, x.dt.METHOD()."""

    def part(x: pl.Expr) -> pl.Expr:
        return getattr(x.dt, method)()

    return part


DATE_PARTS: dict[str, Callable[[pl.Expr], pl.Expr]] = {
    "epoch": _epoch,
    "year": _part("year"),
    "quarter": _part("quarter"),
    "month": _part("month"),
    "week": _part("week"),
    "day": _part("day"),
    "doy": _part("ordinal_day"),
    "dow": _day_of_week,
    "isodow": _part("weekday"),
    "hour": _part("hour"),
    "minute": _part("minute"),
    "second": _part("second"),
}


def date_part(unit: str, x: pl.Expr) -> pl.Expr:
    """date_part('unit', x) and extract(unit FROM x)."""
    build = DATE_PARTS.get(unit.lower())
    if build is None:
        raise ExprError(f"unknown date part {unit.lower()!r} (known: {', '.join(DATE_PARTS)})")
    return build(x)


def _date_part(args: Args) -> pl.Expr:
    unit = args.text(0)
    if unit is None:
        raise ExprError("date_part(): the unit must be a text literal such as 'epoch'")
    return date_part(unit, args.expr(1))


FUNCTIONS: dict[str, Function] = {
    "lower": Function("lower(text)", 1, 1, _lower),
    "upper": Function("upper(text)", 1, 1, _upper),
    "length": Function("length(text)", 1, 1, _length),
    "trim": Function("trim(text)", 1, 1, _trim),
    "ltrim": Function("ltrim(text[, characters])", 1, 2, _ltrim),
    "rtrim": Function("rtrim(text[, characters])", 1, 2, _rtrim),
    "substr": Function("substr(text, start[, length])", 2, 3, _substr),
    "substring": Function("substring(text, start[, length])", 2, 3, _substr),
    "split_part": Function("split_part(text, separator, n)", 3, 3, _split_part),
    "replace": Function("replace(text, 'from', 'to')", 3, 3, _replace),
    "concat": Function("concat(value, ...)", 1, 100, _concat),
    "starts_with": Function("starts_with(text, prefix)", 2, 2, _starts_with),
    "ends_with": Function("ends_with(text, suffix)", 2, 2, _ends_with),
    "regexp_like": Function("regexp_like(text, pattern[, flags])", 2, 3, _regexp_like),
    "left": Function("left(text, n)", 2, 2, _left),
    "right": Function("right(text, n)", 2, 2, _right),
    "abs": Function("abs(x)", 1, 1, _abs),
    "round": Function("round(x[, decimals])", 1, 2, _round),
    "floor": Function("floor(x)", 1, 1, _floor),
    "ceil": Function("ceil(x)", 1, 1, _ceil),
    "coalesce": Function("coalesce(value, ...)", 1, 100, _coalesce),
    "greatest": Function("greatest(value, ...)", 1, 100, _greatest),
    "least": Function("least(value, ...)", 1, 100, _least),
    "nullif": Function("nullif(value, other)", 2, 2, _nullif),
    "date_part": Function("date_part('unit', timestamp)", 2, 2, _date_part),
}


# --- aggregates -------------------------------------------------------------------------------------------
# Each takes the FILTER (WHERE …) mask, or None: the rows it keeps are those the mask marks true.


def _kept(x: pl.Expr, keep: pl.Expr | None) -> pl.Expr:
    return x if keep is None else x.filter(keep)


def _rows(keep: pl.Expr | None) -> pl.Expr:
    """How many rows the aggregate sees: all of them, or those FILTER keeps."""
    return pl.len() if keep is None else keep.sum()


def _of_rows(args: Args, keep: pl.Expr | None, aggregate: Callable[[pl.Expr], pl.Expr]) -> pl.Expr:
    """aggregate(x) over the kept rows. Of a constant (min(1)), Polars SQL gave null when no row is kept."""
    if args.constant(0):
        return pl.when(_rows(keep) > 0).then(aggregate(args.expr(0))).otherwise(None)
    return aggregate(_kept(args.expr(0), keep))


def _min(args: Args, keep) -> pl.Expr:
    return _of_rows(args, keep, pl.Expr.min)


def _max(args: Args, keep) -> pl.Expr:
    return _of_rows(args, keep, pl.Expr.max)


def _sum(args: Args, keep) -> pl.Expr:
    """SQL's sum of no values is null, not 0; the sum of a constant is the constant times the rows."""
    if args.constant(0):
        value = args.expr(0).cast(pl.Int64) if args.plain_integer(0) else args.expr(0)
        total = (value.sum() * _rows(keep)).cast(pl.dtype_of(value.sum()))
        return pl.when((_rows(keep) > 0) & value.is_not_null()).then(total).otherwise(None)
    x = _kept(args.expr(0), keep)
    return pl.when(x.count() > 0).then(x.sum()).otherwise(None)


def _avg(args: Args, keep) -> pl.Expr:
    return _of_rows(args, keep, pl.Expr.mean)


def _first(args: Args, keep) -> pl.Expr:
    return _of_rows(args, keep, pl.Expr.first)


def _last(args: Args, keep) -> pl.Expr:
    return _of_rows(args, keep, pl.Expr.last)


def _median(args: Args, keep) -> pl.Expr:
    return _of_rows(args, keep, pl.Expr.median)


def _quantile_cont(args: Args, keep) -> pl.Expr:
    q = expr_types.number(args.nodes[1])
    if q is None or not 0 <= q.value <= 1:
        raise ExprError("quantile_cont(): the fraction must be a number literal between 0 and 1, such as 0.9")
    return _of_rows(args, keep, functools.partial(pl.Expr.quantile, quantile=float(q.value), interpolation="linear"))


def _count(args: Args, keep) -> pl.Expr:
    """count(*) counts rows, count(x) non-null values, count(DISTINCT x) distinct non-null values."""
    node = args.nodes[0]
    if isinstance(node, exp.Distinct):
        if len(node.expressions) != 1:
            raise ExprError("count(DISTINCT …) takes one expression")
        x = args.compile(node.expressions[0])
        if not any(isinstance(inner, exp.Column) for inner in node.walk()):  # count(DISTINCT 1)
            return pl.when(_rows(keep) > 0).then(x.drop_nulls().n_unique()).otherwise(0).cast(pl.Int64)
        return _kept(x, keep).drop_nulls().n_unique().cast(pl.Int64)
    if isinstance(node, exp.Star | exp.Literal | exp.Boolean):  # count(1) counts rows, as count(*)
        return _rows(keep).cast(pl.Int64)
    if args.constant(0):  # count(NULL) is 0
        return (args.expr(0).count() * _rows(keep)).cast(pl.Int64)
    return _kept(args.expr(0), keep).count().cast(pl.Int64)


AGGREGATES: dict[str, Function] = {
    "min": Function("min(x)", 1, 1, _min),
    "max": Function("max(x)", 1, 1, _max),
    "sum": Function("sum(x)", 1, 1, _sum),
    "avg": Function("avg(x)", 1, 1, _avg),
    "count": Function("count(*), count(x), count(DISTINCT x)", 1, 1, _count),
    "first": Function("first(x)", 1, 1, _first),
    "last": Function("last(x)", 1, 1, _last),
    "median": Function("median(x)", 1, 1, _median),
    "quantile_cont": Function("quantile_cont(x, fraction)", 2, 2, _quantile_cont),
}
