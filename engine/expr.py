"""Spec expressions: a small SQL dialect, parsed by sqlglot and compiled by the engine into Polars expressions.

Spec text never reaches an SQL engine (Polars' SQL layer ran read_csv('/etc/passwd') while merely compiling
one). An expression is bounded (length, nodes, nesting, without recursion), then every node must be of a
whitelisted kind and every function a known one, or it is refused with a one-line ExprError naming it.
Each construct becomes one native Polars operation, so dtypes follow Polars' rules (docs/specs.md).
"""

import datetime as dt
import difflib
import functools
import inspect
import operator
import re
import sys
from contextvars import ContextVar

import polars as pl
from sqlglot import exp, parser
from sqlglot.dialects.dialect import Dialect
from sqlglot.tokens import TokenType

from engine.errors import ExprError, escaped
from engine.temporal import from_text, unreadable

MAX_CHARS = 10_000  # characters of one expression
MAX_NODES = 500  # nodes of its syntax tree (a + b is five: the sum, two columns, two names)
MAX_DEPTH = 64  # levels of nesting: parentheses, calls, and one per operator of a chain such as a + b + c
NESTED_TOO_DEEPLY = f"nested too deeply (more than {MAX_DEPTH} levels)"
# sqlglot's parser recurses some 25 calls per level of nesting, more than Python's default limit allows for
# MAX_DEPTH levels. Python 3.11+ runs such calls without using the C stack, so a higher limit cannot crash
# the interpreter; deeper text still ends in a RecursionError, which is a refusal.
PARSER_RECURSION = 10_000
# The schema of the frame an expression is compiled for: integer arithmetic is checked where it is known.
_SCHEMA: ContextVar[tuple | None] = ContextVar("schema", default=None)


# --- parsing and bounds -----------------------------------------------------------------------------------


class _SpecSQL(Dialect):
    """sqlglot's standard SQL in which every call `name(…)` stays a plain call (exp.Anonymous), not one of
    sqlglot's own function nodes (ReadCSV…): so this module alone decides what a name means."""

    class Parser(parser.Parser):
        FUNCTIONS = {}
        FUNCTION_PARSERS = {name: parser.Parser.FUNCTION_PARSERS[name] for name in ("CAST", "EXTRACT")}
        NO_PAREN_FUNCTION_PARSERS = {"CASE": parser.Parser.NO_PAREN_FUNCTION_PARSERS["CASE"]}


_DIALECT = _SpecSQL()


def _check_tokens(text: str, tokens) -> None:
    """Refuse comments (text two parsers read differently is how a filter is slipped past), a second
    statement and deep parentheses. Only white space may stand between tokens: nothing dropped hides."""
    position, depth = 0, 0
    for token in [*tokens, None]:
        gap = text[position : None if token is None else token.start]
        if gap.strip():
            raise ExprError("comments are not allowed" if "--" in gap or "/*" in gap else "not a valid SQL expression")
        if token is None:
            return
        position = token.end + 1
        if token.token_type == TokenType.SEMICOLON:
            raise ExprError("only one expression is allowed (no ';')")
        depth += {TokenType.L_PAREN: 1, TokenType.R_PAREN: -1}.get(token.token_type, 0)
        if depth > MAX_DEPTH:
            raise ExprError(NESTED_TOO_DEEPLY)


def _parse(text: str) -> exp.Expression:
    """The syntax tree of one expression, or ExprError: never a crash, whatever the text."""
    if len(text) > MAX_CHARS:
        raise ExprError(f"too long: {len(text):,} characters (at most {MAX_CHARS:,})")
    saved = sys.getrecursionlimit()
    sys.setrecursionlimit(max(saved, PARSER_RECURSION))
    try:
        tokens = _DIALECT.tokenize(text)
        _check_tokens(text, tokens)
        trees = _DIALECT.parser().parse(tokens, text)
    except ExprError:
        raise
    except RecursionError:
        raise ExprError(NESTED_TOO_DEEPLY) from None
    except Exception:  # TokenError, ParseError, or a sqlglot bug on hostile input: a refusal either way
        raise ExprError("not a valid SQL expression") from None
    finally:
        sys.setrecursionlimit(saved)
    if len(trees) != 1 or trees[0] is None:
        raise ExprError("not a valid SQL expression")
    return trees[0]


# What a refused node is called in the message; the first match wins, so subclasses come first.
REFUSED = (
    (exp.Exists, "a subquery (EXISTS (SELECT …))"),
    (exp.SetOperation, "a set operation (UNION, INTERSECT, EXCEPT)"),
    ((exp.Subquery, exp.Query), "a subquery (SELECT …)"),
    (exp.Window, "a window function (… OVER …)"),
    (exp.Alias, "an alias (… AS name, or a name after a value)"),
    (exp.Dot, "a method call or field access (x.f(…))"),
)


def _describe(node: exp.Expression) -> str:
    return next((name for kind, name in REFUSED if isinstance(node, kind)), f"the SQL construct {type(node).__name__}")


def _check_tree(tree: exp.Expression) -> None:
    """Bound the tree, then refuse the first construct (in reading order) outside the whitelist; both walks
    use a stack, so a tree too deep for Python's recursion is refused, not crashed on."""
    count, deepest, stack = 0, 0, [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        count, deepest = count + 1, max(deepest, depth)
        stack.extend((child, depth + 1) for child in node.iter_expressions())
    if count > MAX_NODES:
        raise ExprError(f"too large: {count:,} nodes (at most {MAX_NODES:,})")
    if deepest > MAX_DEPTH:
        raise ExprError(NESTED_TOO_DEEPLY)
    for node in tree.dfs():  # sqlglot's walk in reading order, with a stack too
        if type(node) not in ALLOWED:
            raise ExprError(f"{_describe(node)} is not allowed in a spec expression")
        if isinstance(node, exp.Anonymous) and node.name.lower() not in KNOWN_FUNCTIONS:
            raise ExprError(f"unknown function '{node.name}'{did_you_mean(node.name.lower(), KNOWN_FUNCTIONS)}")


# --- compiling: one builder per kind of node --------------------------------------------------------------


MISPLACED = {exp.Star: "'*' is only allowed in count(*)", exp.Distinct: "DISTINCT is only allowed in count(DISTINCT x)"}


def _compile(node: exp.Expression) -> pl.Expr:
    if type(node) not in BUILDERS:  # a part of a construct (a type, a WHEN, DISTINCT) where a value should be
        raise ExprError(MISPLACED.get(type(node), f"{_describe(node)} is not allowed here"))
    return BUILDERS[type(node)](node)


def _column(node: exp.Column) -> pl.Expr:
    """'name', or 'alias.name' for a column of a joined table (quoted identifiers are taken as they are)."""
    if node.args.get("db") or node.args.get("catalog"):
        raise ExprError(f"a name has at most one dot (alias.column): '{'.'.join(p.name for p in node.parts)}'")
    name = _name(node)
    if "*" in name or (name.startswith("^") and name.endswith("$")):  # pl.col reads these as patterns (or t.*)
        raise ExprError(f"the column name {name!r} would stand for several columns")
    return pl.col(name)


def _name(node: exp.Column) -> str:
    """A column as the frames name it: `name`, or `alias.name` for a joined table's."""
    return f"{node.table}.{node.name}" if node.table else node.name


def _literal(node: exp.Literal) -> pl.Expr:
    """Text as written; digits a 64-bit integer, any other number (1.5, 1e3, 2**64) a float. Polars types
    both by the other operand, so `vcpus * 2` stays Int64 and `ratio * 1.5` keeps the ratio's float type."""
    if node.is_string:
        return pl.lit(node.this)
    digits = node.this.lstrip("0") or "0"  # int() refuses 4,300 digits and more, leading zeros too
    return pl.lit(int(digits) if digits.isdigit() and len(digits) <= 19 and int(digits) < 2**63 else float(node.this))


def _binary(operation, node: exp.Binary) -> pl.Expr:
    return operation(_compile(node.this), _compile(node.expression))


def _compared(operation, node: exp.Binary) -> pl.Expr:
    """A comparison; text compared with a timestamp is read as one (_text_as_times)."""
    return operation(*_text_as_times([_compile(node.this), _compile(node.expression)]))


def _ordered(operation, node: exp.Binary) -> pl.Expr:
    """<, <=, >, >=: a comparison; text compared with text by time where both read as one (time_first)."""
    return _order_compared(operation, _compile(node.this), _compile(node.expression))


def _order_compared(operation, left: pl.Expr, right: pl.Expr) -> pl.Expr:
    left, right = _text_as_times([left, right])
    if not (_dtype(left) == _dtype(right) == pl.String):
        return operation(left, right)
    times = [from_text(left), from_text(right)]
    return (
        pl.when(times[0].is_not_null() & times[1].is_not_null())
        .then(operation(*times))
        .otherwise(operation(left, right))
    )


def _checked(operation, node: exp.Expression, *children: exp.Expression) -> pl.Expr:
    """`operation` of the compiled children (+, -, * or sum) and, where it is integer arithmetic, a check that
    stops the run with a data error naming the operation where it wrapped around. Polars' integer arithmetic
    wraps silently (an Int32 memory_mb * 1048576 is 0 at 4 GiB, a UInt32 3 - 5 is 4294967294). A wrapped
    result is a multiple of 2^bits off the true one, at least half of it; the same operation in floats is off
    by rounding only. The check reads the children unchecked, each checking itself: a check per level that
    read the checked children would double the expression at every level."""
    result = operation(*(_compile(child) for child in children))
    dtype = _integer_type(result)
    if dtype is None:
        return result
    token = _SCHEMA.set(None)
    try:
        values = [_compile(child) for child in children]
    finally:
        _SCHEMA.reset(token)
    floats = operation(*(value.cast(pl.Float64) for value in values))
    wrapped = (operation(*values).cast(pl.Float64) - floats).abs() > floats.abs() * 1e-6
    wider = "double" if dtype in (pl.Int64, pl.UInt64) else "bigint or double"
    text = str(node)  # sqlglot writes the operation as SQL text, for the message only
    text = text if len(text) <= 80 else text[:77] + "…"  # it may be quoted several times
    message = f"{dtype} overflow in {text}: cast an operand to {wider} first"
    return pl.when(wrapped).then(_stop(wrapped, message, dtype)).otherwise(result)


def _stop(where: pl.Expr, message: str, dtype: pl.DataType) -> pl.Expr:
    """Null of `dtype`, and the run stopped with `message` where `where` holds: Polars has no way to raise
    from a plan, so the message is cast strictly to a type it cannot be (`stopped` reads it back)."""
    return pl.when(where).then(pl.lit(STOP + message)).cast(dtype, strict=True)


STOP = "stop: "  # what the message of a _stop starts with, so that no other failed cast reads as one


def stopped(exc: BaseException) -> str | None:
    """The message of the _stop that failed a collect, without Polars' wording around it; None if it was none."""
    found = re.search(r'\["' + STOP + r'((?:[^"\\]|\\.)*)"', str(exc))  # the first value, as Rust quotes it
    return re.sub(r"\\(.)", r"\1", found[1]) if found else None


def _dtype(expr: pl.Expr) -> pl.DataType | None:
    """The dtype of `expr` on the frame being compiled for; None if not known (no schema, or a type error,
    which is named where the expression is used)."""
    schema = _SCHEMA.get()
    if schema is None:
        return None
    try:
        return pl.LazyFrame(schema=dict(schema)).select(expr.alias("v")).collect_schema()["v"]
    except (pl.exceptions.PolarsError, pl.exceptions.PanicException):
        return None


def _integer_type(expr: pl.Expr) -> pl.DataType | None:
    """The integer dtype of `expr` on the frame being compiled for; None if not an integer, or not known."""
    dtype = _dtype(expr)
    return dtype if dtype is not None and dtype.is_integer() else None


def _text_as_times(values: list[pl.Expr]) -> list[pl.Expr]:
    """Text among timestamps (least, greatest, coalesce, a comparison, BETWEEN) read as timestamps, in the ISO forms the raw reader
    takes: a dump converted through CSV holds its times as text, and `least(l.end_date, l.deleted_at)`
    must mean the same on it."""
    dtypes = [_dtype(v) for v in values]
    if not any(isinstance(t, pl.Datetime) for t in dtypes):
        return values
    return [_time_of_text(v) if t == pl.String else v for v, t in zip(values, dtypes, strict=True)]


def _text_extreme(values: list[pl.Expr], *, least: bool) -> pl.Expr:
    """least/greatest of texts: the text first (last) in time where each value is null or reads as a time
    (least(l.end_date, l.deleted_at) on a dump converted through CSV), else the first (last) in text order."""
    times = [from_text(v) for v in values]
    best, when = values[0], times[0]
    for value, time in zip(values[1:], times[1:], strict=True):
        take = time.is_not_null() & (when.is_null() | (time < when if least else time > when))
        best, when = pl.when(take).then(value).otherwise(best), pl.when(take).then(time).otherwise(when)
    readable = pl.all_horizontal(v.is_null() | t.is_not_null() for v, t in zip(values, times, strict=True))
    return pl.when(readable).then(best).otherwise(FUNCTIONS["least" if least else "greatest"](*values))


def time_first(value: pl.Expr, dtype: pl.DataType | None) -> list[pl.Expr]:
    """The keys that put a value in order (an order_by key, min, max): text by the time it reads as, then by
    the text. Text sorts '2024-01-31T08:00' after '2024-01-31 09:00', so a dump converted through CSV by two
    writers would order its times wrong, silently; text that is no time keeps its own order."""
    return [from_text(value), value] if dtype == pl.String else [value]


def _time_of_text(text: pl.Expr) -> pl.Expr:
    """Text read as a timestamp in the ISO forms, MySQL's zero date as null; any other text stops the run,
    since inside an expression there is no row to reject and a null would pass silently (least(end,
    resource_type))."""
    names = ", ".join(text.meta.root_names()) or "a text value"
    message = f"{names} holds text that is no timestamp (an ISO form such as 2024-01-31 08:00:00)"
    return pl.when(_stop(unreadable(text), message, pl.Int8).is_null()).then(from_text(text))


def _is(node: exp.Is) -> pl.Expr:
    if not isinstance(node.expression, exp.Null):
        raise ExprError("only IS NULL and IS NOT NULL are allowed (compare with = TRUE instead)")
    return _compile(node.this).is_null()


def _in(node: exp.In) -> pl.Expr:
    """x IN (a, b) is x = a OR x = b: true if one matches, else null if x or an item is null, else false."""
    if not node.expressions:
        raise ExprError("IN takes a list of values: x IN (a, b)")
    value = _compile(node.this)
    return functools.reduce(operator.or_, [value == _compile(item) for item in node.expressions])


def _between(node: exp.Between) -> pl.Expr:
    if node.args.get("symmetric"):
        raise ExprError("BETWEEN SYMMETRIC is not allowed")
    value, low, high = (_compile(node.args[k]) for k in ("this", "low", "high"))
    return _order_compared(operator.ge, value, low) & _order_compared(operator.le, value, high)


RUST_REGEX_META = frozenset("\\.+*?()|[]{}^$#&-~")  # what Rust's regex::escape escapes


def _like(node: exp.Like | exp.ILike) -> pl.Expr:
    """LIKE as an anchored regular expression: % is any text, _ one character, every other one literal."""
    pattern = node.expression
    if not (isinstance(pattern, exp.Literal) and pattern.is_string):
        raise ExprError("the pattern of LIKE must be a text literal, such as 'compute_%'")
    regex = "".join({"%": ".*", "_": "."}.get(c, f"\\{c}" if c in RUST_REGEX_META else c) for c in pattern.this)
    flags = "(?is)" if isinstance(node, exp.ILike) else "(?s)"  # . matches a newline too; ILIKE ignores case
    matched = _compile(node.this).str.contains(f"{flags}^{regex}$")
    return matched.not_() if node.args.get("negate") else matched


def _case(node: exp.Case) -> pl.Expr:
    """Searched (CASE WHEN c THEN v …) or simple (CASE x WHEN a THEN v …); no ELSE means null."""
    result = _compile(node.args["default"]) if node.args.get("default") else pl.lit(None)
    for branch in reversed(node.args["ifs"]):
        condition = _compile(node.this) == _compile(branch.this) if node.this else _compile(branch.this)
        result = pl.when(condition).then(_compile(branch.args["true"])).otherwise(result)
    return result


# Types a cast may name (and the other spellings sqlglot reads as them: integer, string, numeric, real, …).
CAST_TYPES = {
    exp.DataType.Type.INT: pl.Int32,
    exp.DataType.Type.BIGINT: pl.Int64,
    exp.DataType.Type.SMALLINT: pl.Int16,
    exp.DataType.Type.DOUBLE: pl.Float64,
    exp.DataType.Type.FLOAT: pl.Float64,
    exp.DataType.Type.DECIMAL: pl.Decimal,
    exp.DataType.Type.TEXT: pl.String,
    exp.DataType.Type.VARCHAR: pl.String,
    exp.DataType.Type.BOOLEAN: pl.Boolean,
    exp.DataType.Type.DATE: pl.Date,
    exp.DataType.Type.TIMESTAMP: pl.Datetime("us"),
    exp.DataType.Type.DATETIME: pl.Datetime("us"),
}
CAST_NAMES = [kind.name.lower() for kind in CAST_TYPES]


def cast_dtype(node: exp.DataType) -> pl.DataType:
    """The Polars dtype of a whitelisted SQL type; only decimal takes parameters, (precision[, scale])."""
    dtype, name = CAST_TYPES.get(node.this), node.this.name.lower()
    if dtype is None:
        raise ExprError(f"the type {name!r} is not allowed in a cast (allowed: {', '.join(CAST_NAMES)})")
    numbers = [int(p.this.this) for p in node.expressions if isinstance(p.this, exp.Literal) and p.this.is_int]
    if len(numbers) != len(node.expressions) or len(numbers) > (2 if dtype is pl.Decimal else 0):
        raise ExprError(f"the type {name!r}: only decimal takes parameters, whole numbers: decimal(precision, scale)")
    if dtype is not pl.Decimal:
        return dtype
    precision, scale = [*numbers, 0][:2] if numbers else [38, 0]
    if not 1 <= precision <= 38 or not 0 <= scale <= precision:
        raise ExprError(f"numeric({precision}, {scale}): the precision is 1 to 38 and the scale 0 to the precision")
    return pl.Decimal(precision, scale)


def _cast(node: exp.Cast) -> pl.Expr:
    """CAST(x AS type) and x::type, strict; Polars casts no text to a date, but a text literal is read
    as one here (DATE '2024-01-01')."""
    if node.args.get("format"):
        raise ExprError("CAST … FORMAT is not allowed")
    dtype, value = cast_dtype(node.to), node.this
    if dtype in (pl.Date, pl.Datetime) and isinstance(value, exp.Literal) and value.is_string:
        try:
            return pl.lit(dt.datetime.fromisoformat(value.this), dtype=dtype)
        except ValueError:
            raise ExprError(f"'{value.this}' is not a valid {node.to.this.name.lower()}") from None
    compiled = _compile(value)
    if dtype in (pl.Date, pl.Datetime) and _dtype(compiled) == pl.String:  # a text column: its ISO forms
        return _time_of_text(compiled).cast(dtype)
    return compiled.cast(dtype, strict=True)


DATE_PARTS = ["epoch", "year", "quarter", "month", "week", "day", "doy", "dow", "isodow", "hour", "minute", "second"]


def date_part(unit: str, x: pl.Expr) -> pl.Expr:
    """date_part('unit', x) and extract(unit FROM x): epoch in seconds as a float, the calendar units
    Polars' dt accessors (doy is ordinal_day, isodow weekday: 1 to 7; dow 0 to 6 from Sunday)."""
    unit = unit.lower()
    if unit not in DATE_PARTS:
        raise ExprError(f"unknown date part {unit!r} (known: {', '.join(DATE_PARTS)})")
    x = _time_of_text(x) if _dtype(x) == pl.String else x  # a text time, read as the raw reader reads one
    if unit == "epoch":  # whole seconds, then the nanoseconds: exact wherever the time is
        return x.dt.timestamp("ns") // 1_000_000_000 + x.dt.nanosecond() / 1e9
    if unit == "dow":
        return x.dt.weekday() % 7
    return getattr(x.dt, {"doy": "ordinal_day", "isodow": "weekday"}.get(unit, unit))()


# --- functions and aggregates -----------------------------------------------------------------------------


def _constant(value: pl.Expr, kind: type, what: str):
    """The value of a literal argument, for a function that needs it while compiling (round's decimals)."""
    constant = pl.select(value).item() if value.meta.is_literal() else None
    if not isinstance(constant, kind):
        raise ExprError(what)
    return constant


def _split_part(text: pl.Expr, separator: pl.Expr, n: pl.Expr) -> pl.Expr:
    """The n-th part, counted from 1 (from the end when n is negative); null beyond the last part."""
    index = pl.when(n > 0).then(n - 1).otherwise(pl.when(n < 0).then(n))
    return text.str.split(separator).list.get(index, null_on_oob=True)


def _replace(text: pl.Expr, old: pl.Expr, new: pl.Expr) -> pl.Expr:
    """Every occurrence of a text literal by one no longer than it: replace(replace(s, 'a', 'aa'), 'a', 'aa')
    … would double the text sixty times within the bounds (lpad, rpad and repeat are left out for that)."""
    what = "replace(): what to replace and its replacement must be text literals, the first not empty"
    old, new = _constant(old, str, what), _constant(new, str, what)
    if not old:
        raise ExprError(what)
    if len(new) > len(old):
        raise ExprError(f"replace(): the replacement {new!r} is longer than {old!r} (text may not grow)")
    return text.str.replace_all(old, new, literal=True)


def _round(x: pl.Expr, decimals: pl.Expr | None = None) -> pl.Expr:
    """Polars' round (half to even); it needs the decimals while planning, so they are a literal."""
    what = "round(): the number of decimals must be a whole-number literal from 0 to 38"
    places = 0 if decimals is None else _constant(decimals, int, what)
    if not 0 <= places <= 38:
        raise ExprError(what)
    return x.round(places)


# Each function is called with its arguments compiled: its parameters say how many it takes.
FUNCTIONS = {
    "lower": lambda text: text.str.to_lowercase(),
    "upper": lambda text: text.str.to_uppercase(),
    "length": lambda text: text.str.len_chars(),
    "trim": lambda text: text.str.strip_chars(),
    "ltrim": lambda text, characters=None: text.str.strip_chars_start(characters),
    "rtrim": lambda text, characters=None: text.str.strip_chars_end(characters),
    "substr": lambda text, start, length=None: text.str.slice((start - 1).clip(0), length),  # from 1
    "substring": lambda text, start, length=None: text.str.slice((start - 1).clip(0), length),
    "split_part": _split_part,
    "replace": _replace,
    "concat": lambda value, *more: pl.concat_str([value, *more], ignore_nulls=True),
    "starts_with": lambda text, prefix: text.str.starts_with(prefix),
    "ends_with": lambda text, suffix: text.str.ends_with(suffix),
    "regexp_like": lambda text, pattern: text.str.contains(pattern),  # Rust's regex: linear time
    "left": lambda text, n: text.str.head(n),  # a negative n drops the last -n characters
    "right": lambda text, n: text.str.tail(n),  # a negative n drops the first -n
    "abs": lambda x: x.abs(),
    "round": _round,
    "floor": lambda x: x.floor(),
    "ceil": lambda x: x.ceil(),
    "coalesce": lambda value, *more: pl.coalesce(value, *more),
    "greatest": lambda value, *more: pl.max_horizontal(value, *more),  # nulls skipped
    "least": lambda value, *more: pl.min_horizontal(value, *more),
    "nullif": lambda value, other: pl.when(value == other).then(None).otherwise(value),
    "date_part": lambda unit, x: date_part(_constant(unit, str, "date_part(): the unit must be a text literal"), x),
}
# Each aggregate is called with its first argument narrowed to the rows its FILTER (WHERE …) keeps.
AGGREGATES = {
    "min": lambda x: x.min(),
    "max": lambda x: x.max(),
    "sum": lambda x: x.sum(),
    "avg": lambda x: x.mean(),
    "count": lambda x: x.count().cast(pl.Int64),
    "first": lambda x: x.first(),
    "last": lambda x: x.last(),
    "median": lambda x: x.median(),
    "quantile_cont": lambda x, fraction: x.quantile(fraction, interpolation="linear"),
}
KNOWN_FUNCTIONS = FUNCTIONS.keys() | AGGREGATES.keys()


def _arguments(name: str, function, nodes: list[exp.Expression]) -> list[pl.Expr]:
    """The compiled arguments of a call, refused when `function` does not take that many."""
    try:
        inspect.signature(function).bind(*nodes)
    except TypeError as exc:  # "missing a required argument: 'start'", "too many positional arguments"
        raise ExprError(f"{name}(): {exc}") from None
    return [_compile(node) for node in nodes]


def _call(node: exp.Anonymous, keep: pl.Expr | None = None) -> pl.Expr:
    """A function, or an aggregate of the rows where `keep` (its FILTER) is true. count(*) counts rows,
    count(DISTINCT x) distinct non-null values; counts are Int64."""
    name, nodes = node.name.lower(), node.expressions
    if name in ("least", "greatest", "coalesce"):
        values = _arguments(name, FUNCTIONS[name], nodes)
        if name != "coalesce" and all(_dtype(v) == pl.String for v in values):
            return _text_extreme(values, least=name == "least")
        return FUNCTIONS[name](*_text_as_times(values))
    if name in FUNCTIONS:
        return FUNCTIONS[name](*_arguments(name, FUNCTIONS[name], nodes))
    if name == "count" and len(nodes) == 1 and isinstance(nodes[0], exp.Star):
        return (pl.len() if keep is None else keep.sum()).cast(pl.Int64)
    if name == "sum" and len(nodes) == 1:  # a sum of integers wraps around as + does
        return _checked(lambda x: (x if keep is None else x.filter(keep)).sum(), node, nodes[0])
    distinct = name == "count" and len(nodes) == 1 and isinstance(nodes[0], exp.Distinct)
    x, *rest = _arguments(name, AGGREGATES[name], nodes[0].expressions if distinct else nodes)
    x = x if keep is None else x.filter(keep)
    if name in ("min", "max") and _dtype(x) == pl.String:  # the text that is first in time (time_first)
        return x.sort_by(time_first(x, pl.String), descending=name == "max", nulls_last=True).first()
    return x.drop_nulls().n_unique().cast(pl.Int64) if distinct else AGGREGATES[name](x, *rest)


def _filter(node: exp.Filter) -> pl.Expr:
    """max(x) FILTER (WHERE c): the aggregate of the rows where c is true (null counts as false)."""
    if not (isinstance(node.this, exp.Anonymous) and node.this.name.lower() in AGGREGATES):
        raise ExprError("FILTER (WHERE …) follows an aggregate such as max(x)")
    return _call(node.this, keep=_compile(node.expression.this).fill_null(False))


BUILDERS = {
    exp.Column: _column,
    exp.Literal: _literal,
    exp.Null: lambda node: pl.lit(None),
    exp.Boolean: lambda node: pl.lit(node.this),
    exp.Paren: lambda node: _compile(node.this),
    exp.Neg: lambda node: _checked(operator.neg, node, node.this),
    exp.Add: lambda node: _checked(operator.add, node, node.this, node.expression),
    exp.Sub: lambda node: _checked(operator.sub, node, node.this, node.expression),
    exp.Mul: lambda node: _checked(operator.mul, node, node.this, node.expression),
    exp.Div: functools.partial(_binary, operator.truediv),  # true division: 7 / 2 is 3.5
    exp.Mod: functools.partial(_binary, operator.mod),  # Polars' %: the sign of the divisor
    exp.DPipe: lambda node: pl.concat_str([_compile(node.this), _compile(node.expression)]),  # null if one is
    exp.EQ: functools.partial(_compared, operator.eq),
    exp.NEQ: functools.partial(_compared, operator.ne),
    exp.LT: functools.partial(_ordered, operator.lt),
    exp.LTE: functools.partial(_ordered, operator.le),
    exp.GT: functools.partial(_ordered, operator.gt),
    exp.GTE: functools.partial(_ordered, operator.ge),
    exp.And: functools.partial(_binary, operator.and_),  # three-valued, as Polars' & and |
    exp.Or: functools.partial(_binary, operator.or_),
    exp.Not: lambda node: _compile(node.this).not_(),
    exp.Is: _is,
    exp.In: _in,
    exp.Between: _between,
    exp.Like: _like,
    exp.ILike: _like,
    exp.Case: _case,
    exp.Cast: _cast,
    exp.Extract: lambda node: date_part(node.this.name, _compile(node.expression)),
    exp.Anonymous: _call,
    exp.Filter: _filter,
}
# The whitelist: the nodes that compile to a value, and the parts of constructs (a CAST's type, a WHEN).
PARTS = {exp.Identifier, exp.DataType, exp.DataTypeParam, exp.Var, exp.If, exp.Where, exp.Distinct, exp.Star}
ALLOWED = BUILDERS.keys() | PARTS


# --- public API -------------------------------------------------------------------------------------------


def compile_expr(sql: str | int | float | bool, schema: pl.Schema | None = None) -> pl.Expr:
    """Compile one spec expression; numbers and booleans are constants. Raises ExprError (one line). With the
    `schema` of the frame it runs on, integer arithmetic is checked for overflow and text is put in time
    order (time_first)."""
    if isinstance(sql, bool | int | float):
        return pl.lit(sql)
    if not isinstance(sql, str):
        raise ExprError(f"expected an SQL expression, got {type(sql).__name__}")
    return _compiled(sql, tuple(schema.items()) if schema is not None else None)


@functools.lru_cache(maxsize=4096)
def _compiled(text: str, schema: tuple | None) -> pl.Expr:
    """Parsed, checked, then compiled (cached: specs ask for the same text many times)."""
    tree = _parse(text)
    _check_tree(tree)
    token = _SCHEMA.set(schema)
    try:
        return _compile(tree)
    finally:
        _SCHEMA.reset(token)


def columns_of(sql: str | int | float | bool) -> set[str]:
    """The columns an expression reads ('alias.column' for a joined one); refuses what compile_expr does."""
    return set(compile_expr(sql).meta.root_names())


def _is_aggregate(node: exp.Expression) -> bool:
    """An aggregate call, or the FILTER around one (its WHERE reads the group's rows too)."""
    return isinstance(node, exp.Filter) or (isinstance(node, exp.Anonymous) and node.name.lower() in AGGREGATES)


def _in_aggregate(node: exp.Expression) -> bool:
    """Whether an aggregate encloses the node (the FILTER of the aggregate the node is does not)."""
    while (parent := node.parent) is not None:
        if _is_aggregate(parent) and not (isinstance(parent, exp.Filter) and parent.this is node):
            return True
        node = parent
    return False


def misplaced(sql: str | int | float | bool, *, grouped: bool) -> str | None:
    """Why an expression does not fit where it stands, or None. A row-wise field (a column, a resource, a
    scope) holds no aggregate: sum(x) there is one value for the whole table, broadcast to every row. In a
    group's aggregate every column is read inside an aggregate, and aggregates do not nest: a bare column
    there is a list of the group's values, not one value. The text must be valid (compile_expr)."""
    if not isinstance(sql, str):
        return None
    tree = _parse(sql)
    for node in tree.dfs():
        if not grouped and _is_aggregate(node):
            name = (node.this if isinstance(node, exp.Filter) else node).name.lower()
            return f"{name}() is an aggregate, and this field is computed row by row; aggregates belong in a lookup's or report's `aggregate` (with `group_by`)"
        if grouped and _is_aggregate(node) and not isinstance(node, exp.Filter) and _in_aggregate(node):
            return f"{node.name.lower()}() is inside another aggregate; aggregates do not nest"
        if grouped and isinstance(node, exp.Column) and not _in_aggregate(node):
            return f"'{_name(node)}' is read outside an aggregate, and a group has many rows: take one value with min, max, first, last, …"
    return None


def did_you_mean(name: str, known) -> str:
    """' (did you mean 'x'?)' when a close match exists, else ''."""
    close = difflib.get_close_matches(str(name), sorted(map(str, known)), n=1)
    return f" (did you mean '{escaped(close[0], 80)}'?)" if close else ""
