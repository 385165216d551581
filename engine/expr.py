"""Spec expressions: a small, documented subset of SQL, parsed by sqlglot and compiled by the engine itself
into Polars expressions (docs/specs.md, "Expressions"). Nothing is evaluated as Python.

Spec text never reaches an SQL engine. Polars' SQL layer, which compiled expressions before, ran table
functions such as read_csv('/etc/passwd') or read_csv('http://…') while merely compiling one, and a
10,000-term sum crashed it. Here an expression is first bounded (its length, its number of nodes and its
nesting, checked without recursion), then every node must be of a whitelisted kind and every function a
known one: anything else is refused with a one-line ExprError naming it, before any Polars expression
exists.

`alias.column` names a column of a joined table, stored in the frame under the literal name
"alias.column"; an unqualified name is a column of the source table or a derived column.

A compiled expression means what Polars SQL made of the same text, dtypes included: engine/expr_types.py
holds the rules that depend on types, engine/expr_functions.py the functions, and tests/test_expr_oracle.py
compares all of them with pl.sql_expr.
"""

import contextlib
import datetime as dt
import difflib
import functools
import re
import sys

import polars as pl
from sqlglot import exp, parser
from sqlglot.dialects.dialect import Dialect
from sqlglot.tokens import TokenType

from engine import expr_types
from engine.errors import ExprError
from engine.expr_functions import AGGREGATES, FUNCTIONS, Args, date_part

__all__ = ["MAX_CHARS", "MAX_DEPTH", "MAX_NODES", "ExprError", "columns_of", "compile_expr", "did_you_mean"]

MAX_CHARS = 10_000  # characters of one expression
MAX_NODES = 500  # nodes of its syntax tree (a + b is five: the sum, two columns, two names)
MAX_DEPTH = 64  # levels of nesting: parentheses, calls, and one per operator of a chain such as a + b + c


# --- parsing ----------------------------------------------------------------------------------------------


def _unary_plus(self: parser.Parser) -> exp.Expression:
    """+x is 0 + x, as Polars SQL read it (so +'a' is an error and +TRUE the integer 1), and +2 is 2;
    sqlglot would drop the +."""
    operand = self._parse_unary()
    if isinstance(operand, exp.Literal) and operand.is_number:
        return operand
    return exp.Add(this=exp.Literal.number(0), expression=operand)


class _SpecSQL(Dialect):
    """sqlglot's standard SQL, in which every call `name(…)` stays a plain call (exp.Anonymous).

    sqlglot normally maps function names onto its own node classes (substr becomes Substring, and read_csv
    ReadCSV in some dialects); keeping calls as written lets this module alone decide what a name means and
    refuse every other. Only CAST and EXTRACT keep their special syntax.
    """

    class Parser(parser.Parser):
        FUNCTIONS = {}
        FUNCTION_PARSERS = {name: parser.Parser.FUNCTION_PARSERS[name] for name in ("CAST", "EXTRACT")}
        NO_PAREN_FUNCTION_PARSERS = {"CASE": parser.Parser.NO_PAREN_FUNCTION_PARSERS["CASE"]}  # IF(…) is a call
        UNARY_PARSERS = {**parser.Parser.UNARY_PARSERS, TokenType.PLUS: _unary_plus}

        def _parse_types(self, *args, **kwargs):
            """Remember how a type was spelled: sqlglot maps both `real` (Float32) and `float` (Float64) to FLOAT."""
            start = self._index
            node = super()._parse_types(*args, **kwargs)
            if isinstance(node, exp.DataType):
                words = []
                for token in self._tokens[start : self._index]:
                    if token.token_type in (TokenType.L_PAREN, TokenType.L_BRACKET, TokenType.LT):
                        break
                    words.append(token.text)
                node.meta["spelling"] = " ".join(" ".join(words).lower().split())
            return node


_DIALECT = _SpecSQL()
NESTED_TOO_DEEPLY = f"nested too deeply (more than {MAX_DEPTH} levels)"


def _check_tokens(text: str, tokens) -> None:
    """Refuse what is not one bare expression: comments, a second statement, parentheses nested too deeply.

    Comments are refused rather than skipped: text that two SQL parsers read differently is how a filter
    is slipped past. Between two tokens only white space may stand, so nothing the tokenizer dropped hides
    in the expression.
    """
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


# sqlglot's parser is recursive, some 25 calls for each level of parentheses or calls: MAX_DEPTH levels need
# more than Python's default limit of 1,000. Python 3.11+ runs such calls without using the C stack, so a
# higher limit while parsing cannot crash the interpreter; deeper text still ends in a RecursionError, refused.
PARSER_RECURSION = 10_000


@contextlib.contextmanager
def _recursion_limit(limit: int):
    saved = sys.getrecursionlimit()
    sys.setrecursionlimit(max(saved, limit))
    try:
        yield
    finally:
        sys.setrecursionlimit(saved)


def _parse(text: str) -> exp.Expression:
    """The syntax tree of one expression, or ExprError. Never a crash, whatever the text."""
    if len(text) > MAX_CHARS:
        raise ExprError(f"too long: {len(text):,} characters (at most {MAX_CHARS:,})")
    try:
        tokens = _DIALECT.tokenize(text)
    except Exception:  # sqlglot's TokenError, or anything else it raises on text it cannot read
        raise ExprError("not a valid SQL expression") from None
    _check_tokens(text, tokens)
    try:
        with _recursion_limit(PARSER_RECURSION):
            trees = _DIALECT.parser().parse(tokens, text)
    except RecursionError:
        raise ExprError(NESTED_TOO_DEEPLY) from None
    except Exception:  # ParseError, or a sqlglot bug on hostile input: a refusal either way
        raise ExprError("not a valid SQL expression") from None
    if len(trees) != 1 or trees[0] is None:
        raise ExprError("not a valid SQL expression")
    return trees[0]


# --- what an expression may contain -----------------------------------------------------------------------

ALLOWED = (
    exp.Column,
    exp.Identifier,
    exp.Literal,
    exp.Null,
    exp.Boolean,
    exp.Paren,
    exp.Neg,
    exp.Add,
    exp.Sub,
    exp.Mul,
    exp.Div,
    exp.Mod,
    exp.DPipe,
    exp.EQ,
    exp.NEQ,
    exp.LT,
    exp.LTE,
    exp.GT,
    exp.GTE,
    exp.And,
    exp.Or,
    exp.Not,
    exp.Is,
    exp.In,
    exp.Between,
    exp.Like,
    exp.ILike,
    exp.Case,
    exp.If,
    exp.Cast,
    exp.DataType,
    exp.DataTypeParam,
    exp.Extract,
    exp.Var,
    exp.Anonymous,
    exp.Filter,
    exp.Where,
    exp.Distinct,
    exp.Star,
)

# What a refused node is called in the message; the first match wins, so subclasses come first.
REFUSED = (
    (exp.Subquery, "a subquery (SELECT …)"),
    (exp.Exists, "a subquery (EXISTS (SELECT …))"),
    ((exp.Union, exp.Intersect, exp.Except), "a set operation (UNION, INTERSECT, EXCEPT)"),
    (exp.Query, "a subquery (SELECT …)"),
    (exp.Window, "a window function (… OVER …)"),
    (exp.Alias, "an alias (… AS name, or a name after a value)"),
    (exp.Placeholder, "a query parameter"),
    (exp.Parameter, "a query parameter"),
    (exp.Interval, "an interval"),
    (exp.Bracket, "a subscript ([…])"),
    (exp.Dot, "a method call or field access (x.f(…))"),
    (exp.Escape, "LIKE … ESCAPE"),
    (exp.Array, "an array"),
    (exp.Tuple, "a row value (a, b)"),
    (exp.Struct, "a struct value"),
    (exp.Order, "ORDER BY"),
)


KNOWN_FUNCTIONS = FUNCTIONS.keys() | AGGREGATES.keys()


def _describe(node: exp.Expression) -> str:
    for kind, name in REFUSED:
        if isinstance(node, kind):
            return name
    return f"the SQL construct {type(node).__name__}"


def _children(node: exp.Expression) -> list[exp.Expression]:
    return list(node.iter_expressions())


def _check_tree(tree: exp.Expression) -> None:
    """Bound the tree, then refuse the first construct (in reading order) outside the whitelist.

    Both walks use an explicit stack: a tree too deep for Python's recursion is refused, not crashed on.
    """
    count, deepest, stack = 0, 0, [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        count, deepest = count + 1, max(deepest, depth)
        stack.extend((child, depth + 1) for child in _children(node))
    if count > MAX_NODES:
        raise ExprError(f"too large: {count:,} nodes (at most {MAX_NODES:,})")
    if deepest > MAX_DEPTH:
        raise ExprError(NESTED_TOO_DEEPLY)
    stack = [tree]
    while stack:
        node = stack.pop()
        if not isinstance(node, ALLOWED) or isinstance(node, exp.Query):
            raise ExprError(f"{_describe(node)} is not allowed in a spec expression")
        if isinstance(node, exp.Anonymous) and node.name.lower() not in KNOWN_FUNCTIONS:
            raise ExprError(f"unknown function '{node.name}'{did_you_mean(node.name.lower(), KNOWN_FUNCTIONS)}")
        stack.extend(reversed(_children(node)))


@functools.lru_cache(maxsize=4096)
def _checked(text: str) -> exp.Expression:
    """The parsed and checked tree of an expression (cached: specs ask for the same text many times)."""
    tree = _parse(text)
    _check_tree(tree)
    return tree


# --- compiling: one builder per node class ----------------------------------------------------------------


def _compile(node: exp.Expression) -> pl.Expr:
    builder = BUILDERS.get(type(node))
    if builder is None:
        raise ExprError(f"{_describe(node)} is not allowed here")
    return builder(node)


def _unparen(node: exp.Expression) -> exp.Expression:
    while isinstance(node, exp.Paren):
        node = node.this
    return node


def _column_name(node: exp.Column) -> str:
    """'name', or 'alias.name' for a column of a joined table (quoted identifiers are taken as they are)."""
    if isinstance(node.this, exp.Star):
        raise ExprError("'*' is only allowed in count(*)")
    if node.args.get("db") or node.args.get("catalog"):
        raise ExprError(f"a name has at most one dot (alias.column): '{'.'.join(p.name for p in node.parts)}'")
    name = f"{node.table}.{node.name}" if node.table else node.name
    if name == "*" or (name.startswith("^") and name.endswith("$")):
        raise ExprError(f"the column name {name!r} would stand for several columns")
    return name


def _column(node: exp.Column) -> pl.Expr:
    return pl.col(_column_name(node))


def _literal(node: exp.Literal) -> pl.Expr:
    if node.is_string:
        return pl.lit(node.this)
    return expr_types.literal(expr_types.number(node))


def _null(node: exp.Null) -> pl.Expr:
    return pl.lit(None)


def _boolean(node: exp.Boolean) -> pl.Expr:
    return pl.lit(node.this)


def _paren(node: exp.Paren) -> pl.Expr:
    return _compile(node.this)


def _negate(node: exp.Neg) -> pl.Expr:
    """-1.5 is the literal -1.5 (so is -(1.5 * 2)); -x is 0 - x, as in Polars SQL."""
    found = expr_types.number(node)
    if found is not None and (found.decimal or not found.computed):
        return expr_types.literal(found)
    return pl.lit(0) - _compile(node.this)


# Text beside a CAST(… AS date|timestamp) that Polars SQL read as a date or a timestamp.
_ISO_DATE = re.compile(r"[0-9]{4}-[01][0-9]-[0-3][0-9]")
_ISO_DATETIME = re.compile(
    r"[0-9]{4}-[01][0-9]-[0-3][0-9][ T](?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,9})?"
)


def _cast_target(node: exp.Expression) -> pl.DataType | None:
    """The dtype `node` casts to, or None when it is no cast (or a cast of a text literal, which is a literal)."""
    node = _unparen(node)
    if not isinstance(node, exp.Cast) or _text_literal(node.this) is not None:
        return None
    return cast_dtype(node.to)


def _temporal_literal(text: str, dtype: pl.DataType) -> pl.Expr | None:
    """The date or timestamp an ISO text stands for beside a cast to `dtype`, or None to leave it text."""
    try:
        if dtype == pl.Date and _ISO_DATE.fullmatch(text):
            return pl.lit(dt.date.fromisoformat(text))
        if isinstance(dtype, pl.Datetime) and (_ISO_DATE.fullmatch(text) or _ISO_DATETIME.fullmatch(text)):
            head, _, fraction = text.replace(" ", "T", 1).partition(".")
            moment = dt.datetime.fromisoformat(head if "T" in head else f"{head}T00:00:00")
            moment = moment.replace(microsecond=int(fraction[:6].ljust(6, "0"))) if fraction else moment
            return pl.lit(moment, dtype=dtype)
    except ValueError:
        raise ExprError(f"'{text}' is not a valid {'date' if dtype == pl.Date else 'timestamp'}") from None
    return None


def _text_literal(node: exp.Expression) -> str | None:
    node = _unparen(node)
    return node.this if isinstance(node, exp.Literal) and node.is_string else None


def _operands(left_node: exp.Expression, right_node: exp.Expression, both_ways: bool = True) -> tuple[pl.Expr, pl.Expr]:
    """Both sides of a binary operator, an ISO text beside a cast to date or timestamp read as one (for ||,
    only a text on the right, as in Polars SQL)."""
    left = _read_as_time(left_node, right_node) if both_ways else _compile(left_node)
    return left, _read_as_time(right_node, left_node)


def _read_as_time(node: exp.Expression, beside: exp.Expression) -> pl.Expr:
    """`node` compiled; a text literal beside a cast to date or timestamp becomes that date or timestamp."""
    dtype, text = _cast_target(beside), _text_literal(node)
    moment = None if dtype is None or text is None else _temporal_literal(text, dtype)
    return _compile(node) if moment is None else moment


def _literal_flags(node: exp.Binary) -> tuple[bool, bool]:
    return expr_types.is_decimal_literal(node.this), expr_types.is_decimal_literal(node.expression)


ARITHMETIC = {exp.Add: "+", exp.Sub: "-", exp.Mul: "*", exp.Div: "/", exp.Mod: "%"}


def _arithmetic(node: exp.Binary) -> pl.Expr:
    """+ - * / %. Polars SQL typed * / % (and + - beside a decimal literal) by the operands' dtypes."""
    found = expr_types.number(node)
    if found is not None and found.point:
        return expr_types.literal(found)
    op, flags = ARITHMETIC[type(node)], _literal_flags(node)
    left, right = _operands(node.this, node.expression)
    if op in "+-" and not any(flags):
        return left + right if op == "+" else left - right
    return pl.pipe_with_dtype([left, right], expr_types.arithmetic(op, flags))


def _concat(node: exp.DPipe) -> pl.Expr:
    left, right = _operands(node.this, node.expression, both_ways=False)
    return left.cast(pl.String) + right.cast(pl.String)


COMPARISONS = {exp.EQ: "=", exp.NEQ: "<>", exp.LT: "<", exp.LTE: "<=", exp.GT: ">", exp.GTE: ">="}


def _compare(op: str, left: pl.Expr, right: pl.Expr) -> pl.Expr:
    if op == "<>":
        return left.eq(right).not_()
    return {"=": left.eq, "<": left.lt, "<=": left.le, ">": left.gt, ">=": left.ge}[op](right)


def _as_text_beside_text(node: exp.Expression, other: exp.Expression) -> pl.Expr | None:
    """An integer literal tested for equality with a text literal: Polars SQL compared its digits as text ('x' = 1
    is false, not an error)."""
    found = expr_types.number(node)
    if _text_literal(other) is None or found is None or found.decimal or found.computed:
        return None
    return None if isinstance(found.value, float) else pl.lit(str(found.value))


def _compared(op: str, nodes: tuple[exp.Expression, exp.Expression], left: pl.Expr, right: pl.Expr) -> pl.Expr:
    """`left op right` as Polars SQL compared the two nodes: by the other side's dtype beside a decimal literal."""
    if op in ("=", "<>"):
        if (text := _as_text_beside_text(*nodes)) is not None:
            left = text
        if (text := _as_text_beside_text(*reversed(nodes))) is not None:
            right = text
    flags = expr_types.is_decimal_literal(nodes[0]), expr_types.is_decimal_literal(nodes[1])
    if any(flags):
        return pl.pipe_with_dtype([left, right], expr_types.comparison(op, flags))
    return _compare(op, left, right)


def _comparison(node: exp.Binary) -> pl.Expr:
    return _compared(COMPARISONS[type(node)], (node.this, node.expression), *_operands(node.this, node.expression))


def _and(node: exp.And) -> pl.Expr:
    left, right = _operands(node.this, node.expression)
    return left & right


def _or(node: exp.Or) -> pl.Expr:
    left, right = _operands(node.this, node.expression)
    return left | right


def _not(node: exp.Not) -> pl.Expr:
    inner = node.this
    if isinstance(inner, exp.Is):
        return _is(inner, negate=True)
    if isinstance(inner, exp.In):
        return _in(inner).not_()
    if isinstance(inner, exp.Between):
        return _between(inner, negate=True)
    return _compile(inner).cast(pl.Boolean, strict=True).not_()


def _is(node: exp.Is, negate: bool = False) -> pl.Expr:
    if not isinstance(node.expression, exp.Null):
        raise ExprError("only IS NULL and IS NOT NULL are allowed (compare with = TRUE instead)")
    value = _compile(node.this)
    return value.is_not_null() if negate else value.is_null()


def _is_constant(node: exp.Expression) -> bool:
    """A literal (or a cast of one): Polars SQL compared x IN (constants) by value, else with ==."""
    node = _unparen(node)
    if isinstance(node, exp.Cast):
        node = _unparen(node.this)
    return isinstance(node, exp.Literal | exp.Null | exp.Boolean) or expr_types.number(node) is not None


def _in(node: exp.In) -> pl.Expr:
    """x IN (a, b) is x = a OR x = b: true if one matches, else null if x or an item is null, else false."""
    if any(node.args.get(key) for key in ("query", "unnest", "field")):
        raise ExprError("IN takes a list of values: x IN (a, b)")
    items = node.expressions
    if not items:
        raise ExprError("IN needs at least one value: x IN (a, b)")
    value = _compile(node.this)
    if not all(_is_constant(item) for item in items):
        return functools.reduce(pl.Expr.or_, [value.eq(_compile(item)) for item in items])
    constants = [_compile(item) for item in items]  # compared by value, as literals are compared with =
    matches = functools.reduce(
        pl.Expr.or_, [_compared("=", (node.this, item), value, c) for item, c in zip(items, constants, strict=True)]
    )
    if _is_constant(node.this):  # 'x' IN (1, 2): Polars SQL compared literals as text
        return matches
    return expr_types.in_constants(value, constants, matches)


def _between(node: exp.Between, negate: bool = False) -> pl.Expr:
    if node.args.get("symmetric"):
        raise ExprError("BETWEEN SYMMETRIC is not allowed")
    value, low = _operands(node.this, node.args["low"])
    value, high = _operands(node.this, node.args["high"])
    if negate:
        return (value < low) | (value > high)
    return (value >= low) & (value <= high)


_RUST_REGEX_META = set("\\.+*?()|[]{}^$#&-~")


def _like_regex(pattern: str, case_insensitive: bool) -> str:
    """A LIKE pattern as an anchored regular expression: % is .*, _ is ., every other character literal."""
    body = "".join(
        ".*" if c == "%" else "." if c == "_" else f"\\{c}" if c in _RUST_REGEX_META else c for c in pattern.strip("%")
    )
    start = "" if pattern.startswith("%") else "^"
    end = "" if pattern.endswith("%") else "$"
    return f"{'(?is)' if case_insensitive else '(?s)'}{start}{body}{end}"


def _like_match(value: pl.Expr, pattern: str, case_insensitive: bool) -> pl.Expr:
    """Polars SQL used the plain text operations where a case-sensitive pattern allowed, else a regex."""
    if not case_insensitive:
        if re.fullmatch(r"%[^%_]+%", pattern):
            return value.str.contains(pattern[1:-1], literal=True)
        if re.fullmatch(r"[^%_]+%", pattern):
            return value.str.starts_with(pattern[:-1])
        if re.fullmatch(r"%[^%_]+", pattern):
            return value.str.ends_with(pattern[1:])
    return value.str.contains(_like_regex(pattern, case_insensitive))


def _like(node: exp.Like | exp.ILike) -> pl.Expr:
    pattern = _text_literal(node.expression)
    if pattern is None:
        raise ExprError("the pattern of LIKE must be a text literal, such as 'compute_%'")
    case_insensitive = isinstance(node, exp.ILike)
    if pattern == "" or (not case_insensitive and not set(pattern) & {"%", "_"}):
        matched = _compare("=", *_operands(node.this, node.expression))  # no wildcard: plain equality
    else:
        matched = _like_match(_compile(node.this), pattern, case_insensitive)
    return matched.not_() if node.args.get("negate") else matched


def _case(node: exp.Case) -> pl.Expr:
    """Searched (CASE WHEN c THEN v …) or simple (CASE x WHEN a THEN v …); no ELSE means null."""
    subject = _compile(node.this) if node.this else None
    branches = []
    for branch in node.args["ifs"]:
        condition = _compile(branch.this)
        branches.append((condition if subject is None else subject.eq(condition), _compile(branch.args["true"])))
    result = _compile(node.args["default"]) if node.args.get("default") else pl.lit(None)
    for condition, value in reversed(branches):
        result = pl.when(condition).then(value).otherwise(result)
    return result


# Types a CAST may name, as spelled; decimal/numeric take a precision and scale.
CAST_TYPES = {
    "integer": pl.Int32,
    "int": pl.Int32,
    "bigint": pl.Int64,
    "smallint": pl.Int16,
    "double": pl.Float64,
    "double precision": pl.Float64,
    "float": pl.Float64,
    "real": pl.Float32,
    "numeric": pl.Decimal,
    "decimal": pl.Decimal,
    "text": pl.String,
    "varchar": pl.String,
    "string": pl.String,
    "boolean": pl.Boolean,
    "date": pl.Date,
    "timestamp": pl.Datetime("us"),
    "datetime": pl.Datetime("us"),
}
_SIZED = {"varchar": 1, "numeric": 2, "decimal": 2}  # how many parameters a type may take


def _decimal_dtype(params: list[int]) -> pl.Decimal:
    """numeric is Decimal(38, 9), numeric(p) Decimal(p, 0), numeric(p, s) Decimal(p, s), as in Polars SQL."""
    precision, scale = (38, 9) if not params else (params[0], 0) if len(params) == 1 else params
    if not 1 <= precision <= expr_types.MAX_DECIMAL_DIGITS or not 0 <= scale <= precision:
        raise ExprError(
            f"numeric({', '.join(map(str, params))}): the precision is 1 to {expr_types.MAX_DECIMAL_DIGITS} "
            "and the scale 0 to the precision"
        )
    return pl.Decimal(precision, scale)


def cast_dtype(node: exp.DataType) -> pl.DataType:
    """The Polars dtype of a whitelisted SQL type, as Polars SQL mapped it (int is Int32, float Float64)."""
    spelling = node.meta.get("spelling", "")
    dtype = CAST_TYPES.get(spelling)
    nested = any(isinstance(param, exp.DataType) for param in node.expressions)
    if dtype is None or nested:
        raise ExprError(
            f"the type {spelling or node.this.name.lower()!r} is not allowed in a cast (allowed: {', '.join(CAST_TYPES)})"
        )
    params = []
    for param in node.expressions:
        value = param.this if isinstance(param, exp.DataTypeParam) else param
        if not (isinstance(value, exp.Literal) and value.is_int):
            raise ExprError(f"the type {spelling!r} takes whole numbers in parentheses")
        params.append(int(value.this))
    if len(params) > _SIZED.get(spelling, 0):
        raise ExprError(f"the type {spelling!r} takes {_SIZED.get(spelling, 'no')} parameters")
    return _decimal_dtype(params) if dtype is pl.Decimal else dtype


def _cast(node: exp.Cast) -> pl.Expr:
    """CAST(x AS type) and x::type, strict as in Polars SQL: a value that does not convert is an error.

    Polars casts no text column to a date; a text literal, though, Polars SQL parsed (DATE '2024-01-01').
    """
    if node.args.get("format"):
        raise ExprError("CAST … FORMAT is not allowed")
    dtype, text = cast_dtype(node.to), _text_literal(node.this)
    if text is not None and (dtype == pl.Date or isinstance(dtype, pl.Datetime)):
        moment = _temporal_literal(text, dtype)
        if moment is not None:
            return moment
        if dtype == pl.Date:
            return pl.lit(text).str.to_date(strict=True)
        return pl.lit(text).str.to_datetime(time_unit=dtype.time_unit, strict=True)
    return _compile(node.this).cast(dtype, strict=True)


def _extract(node: exp.Extract) -> pl.Expr:
    unit = node.this
    if not isinstance(unit, exp.Var | exp.Literal):
        raise ExprError("extract(): the unit must be a name such as epoch")
    return date_part(unit.name, _compile(node.expression))


def _call(node: exp.Anonymous, keep: pl.Expr | None = None) -> pl.Expr:
    """A whitelisted function or aggregate; `keep` is the mask of an aggregate's FILTER (WHERE …)."""
    name = node.name.lower()
    function = AGGREGATES.get(name) or FUNCTIONS.get(name)
    if function is None:  # the tree check refuses unknown names first; this guards a direct call
        raise ExprError(f"unknown function '{node.name}'")
    if keep is not None and name not in AGGREGATES:
        raise ExprError(f"FILTER (WHERE …) follows an aggregate such as max(x), not {node.name}()")
    args = Args(name, node.expressions, _compile)
    if not function.min_args <= len(args) <= function.max_args:
        raise ExprError(f"wrong number of arguments to {node.name}(): {len(args)} (expected {function.usage})")
    return function.build(args, keep) if name in AGGREGATES else function.build(args)


def _filter(node: exp.Filter) -> pl.Expr:
    """max(x) FILTER (WHERE c): the aggregate of the rows where c is true (null counts as false)."""
    aggregate, where = node.this, node.expression
    if not (isinstance(aggregate, exp.Anonymous) and aggregate.name.lower() in AGGREGATES):
        raise ExprError("FILTER (WHERE …) follows an aggregate such as max(x)")
    keep = pl.when(_compile(where.this)).then(True).otherwise(False)
    return _call(aggregate, keep)


def _star(node: exp.Star) -> pl.Expr:
    raise ExprError("'*' is only allowed in count(*)")


def _distinct(node: exp.Distinct) -> pl.Expr:
    raise ExprError("DISTINCT is only allowed in count(DISTINCT x)")


BUILDERS = {
    exp.Column: _column,
    exp.Literal: _literal,
    exp.Null: _null,
    exp.Boolean: _boolean,
    exp.Paren: _paren,
    exp.Neg: _negate,
    **dict.fromkeys(ARITHMETIC, _arithmetic),
    exp.DPipe: _concat,
    **dict.fromkeys(COMPARISONS, _comparison),
    exp.And: _and,
    exp.Or: _or,
    exp.Not: _not,
    exp.Is: _is,
    exp.In: _in,
    exp.Between: _between,
    exp.Like: _like,
    exp.ILike: _like,
    exp.Case: _case,
    exp.Cast: _cast,
    exp.Extract: _extract,
    exp.Anonymous: _call,
    exp.Filter: _filter,
    exp.Star: _star,
    exp.Distinct: _distinct,
}


@functools.lru_cache(maxsize=4096)
def _compiled(text: str) -> pl.Expr:
    return _compile(_checked(text))


# --- public API -------------------------------------------------------------------------------------------


def compile_expr(sql: str | int | float | bool) -> pl.Expr:
    """Compile one spec expression; numbers and booleans are constants. Raises ExprError (one line)."""
    if isinstance(sql, bool | int | float):
        return pl.lit(sql)
    if not isinstance(sql, str):
        raise ExprError(f"expected an SQL expression, got {type(sql).__name__}")
    return _compiled(sql)


def columns_of(sql: str | int | float | bool) -> set[str]:
    """The column names an expression reads (qualified ones as 'alias.column'). Raises ExprError like
    compile_expr, so that `engine validate` refuses whatever a run would."""
    if isinstance(sql, bool | int | float):
        return set()
    compile_expr(sql)
    return set(_columns(sql))


@functools.lru_cache(maxsize=4096)
def _columns(text: str) -> frozenset[str]:
    stack, names = [_checked(text)], set()
    while stack:
        node = stack.pop()
        if isinstance(node, exp.Column):
            names.add(_column_name(node))
        stack.extend(_children(node))
    return frozenset(names)


def did_you_mean(name: str, known) -> str:
    """' (did you mean 'x'?)' when a close match exists, else ''."""
    close = difflib.get_close_matches(str(name), sorted(map(str, known)), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""
