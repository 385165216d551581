"""SQL expression strings from the specs, compiled by Polars' own SQL parser (never eval'd as Python).

`alias.column` names a column of a joined table; such columns are stored under the literal name
"alias.column", so before parsing we quote every qualified identifier outside string literals.
"""

import difflib
import re

import polars as pl

_TOKENS = re.compile(r"""('(?:[^']|'')*')|("(?:[^"]|"")*")|\b([A-Za-z_]\w*\.[A-Za-z_]\w*)\b""")


class ExprError(ValueError):
    """An expression Polars cannot parse; the message is Polars' own, without a traceback."""


def _quote_qualified(sql: str) -> str:
    return _TOKENS.sub(lambda m: f'"{m.group(3)}"' if m.group(3) else m.group(0), sql)


def compile_expr(sql: str | int | float | bool) -> pl.Expr:
    """Compile one spec expression; numbers and booleans are constants."""
    if isinstance(sql, bool | int | float):
        return pl.lit(sql)
    try:
        return pl.sql_expr(_quote_qualified(sql))
    except Exception as exc:  # Polars raises several types for one cause: unparseable SQL
        message = str(exc).splitlines()[0]
        raise ExprError("not a valid SQL expression" if "unable to parse" in message else message) from None


def columns_of(sql: str | int | float | bool) -> set[str]:
    """The column names an expression reads (qualified ones as 'alias.column')."""
    return set(compile_expr(sql).meta.root_names())


def did_you_mean(name: str, known) -> str:
    """' (did you mean 'x'?)' when a close match exists, else ''."""
    close = difflib.get_close_matches(str(name), sorted(map(str, known)), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""
