"""Spec expressions: qualified names, string literals, constants, the whitelist, the bounds, refusals."""

import re
from datetime import datetime

import polars as pl
import pytest

from engine.expr import (
    AGGREGATES,
    FUNCTIONS,
    MAX_CHARS,
    MAX_DEPTH,
    MAX_NODES,
    ExprError,
    columns_of,
    compile_expr,
    stopped,
    time_first,
)


def test_qualified_columns_are_read_by_their_full_name():
    frame = pl.DataFrame({"l.end_date": [3], "end_date": [9]})
    assert frame.select(compile_expr("l.end_date + 1")).item() == 4
    assert columns_of("least(l.end_date, deleted_at)") == {"l.end_date", "deleted_at"}


def test_dots_inside_string_literals_are_left_alone():
    frame = pl.DataFrame({"name": ["reservation:a.b"]})
    assert frame.select(compile_expr("name = 'reservation:a.b'")).item() is True
    assert columns_of("x LIKE 'nova_object.data%'") == {"x"}


def test_numbers_are_constants():
    assert pl.select(compile_expr(1)).item() == 1
    assert pl.select(compile_expr(0.5)).item() == 0.5
    assert pl.select(compile_expr("1.5 * 2")).item() == 3.0


@pytest.mark.parametrize("bad", ["least(a,", "a +", "nosuchfunction(a)"])
def test_parse_errors_are_one_line(bad):
    with pytest.raises(ExprError) as exc:
        compile_expr(bad)
    assert "\n" not in str(exc.value)


def test_columns_come_from_the_syntax_tree():
    assert columns_of('"l"."end_date" - "odd name"') == {"l.end_date", "odd name"}
    assert columns_of("last(host) FILTER (WHERE event LIKE 'compute_%' AND host IS NOT NULL)") == {"host", "event"}
    assert columns_of("count(*)") == set() and columns_of(3) == set()
    assert columns_of("CASE s WHEN 'a.b' THEN ie.x ELSE coalesce(y, 1.0) END") == {"s", "ie.x", "y"}


@pytest.mark.parametrize(
    "text,refusal",
    [
        ("x || (SELECT 1)", "a subquery (SELECT …) is not allowed in a spec expression"),
        ("read_csv('/etc/passwd')", "unknown function 'read_csv'"),
        ("x -- a comment", "comments are not allowed"),
        ("/* a */ x", "comments are not allowed"),
        ("x; y", "only one expression is allowed (no ';')"),
        ("x AS y", "an alias (… AS name, or a name after a value) is not allowed in a spec expression"),
        ("max(x) OVER ()", "a window function (… OVER …) is not allowed in a spec expression"),
        ("repeat('x', 1000000000)", "unknown function 'repeat' (did you mean 'replace'?)"),
        ("replace(x, 'a', 'aa')", "replace(): the replacement 'aa' is longer than 'a' (text may not grow)"),
        ("x IS TRUE", "only IS NULL and IS NOT NULL are allowed (compare with = TRUE instead)"),
        ("x LIKE y", "the pattern of LIKE must be a text literal, such as 'compute_%'"),
        ("sum(DISTINCT x)", "DISTINCT is only allowed in count(DISTINCT x)"),
        ("lower(x) FILTER (WHERE y)", "FILTER (WHERE …) follows an aggregate such as max(x)"),
        (
            "CAST(x AS int8)",
            "the type 'tinyint' is not allowed in a cast (allowed: int, bigint, smallint, double, float, decimal, "
            "text, varchar, boolean, date, timestamp, datetime)",
        ),
        (
            "date_part('century', x)",
            "unknown date part 'century' (known: epoch, year, quarter, month, week, day, doy, "
            "dow, isodow, hour, minute, second)",
        ),
        ("round(x, -1)", "round(): the number of decimals must be a whole-number literal from 0 to 38"),
        (
            "CAST(x AS varchar(3))",
            "the type 'varchar': only decimal takes parameters, whole numbers: decimal(precision, scale)",
        ),
        ("a.b.c", "a name has at most one dot (alias.column): 'a.b.c'"),
        ('"^.*$"', "the column name '^.*$' would stand for several columns"),
        ("x = '2024-02-30'::date", "'2024-02-30' is not a valid date"),
        ("", "not a valid SQL expression"),
    ],
)
def test_a_refusal_names_the_construct(text, refusal):
    with pytest.raises(ExprError) as exc:
        columns_of(text)
    assert str(exc.value) == refusal


def test_bounds_are_checked_before_parsing_deeply_or_compiling():
    with pytest.raises(ExprError, match=rf"^too long: 10,001 characters \(at most {MAX_CHARS:,}\)$"):
        compile_expr("x" * (MAX_CHARS + 1))
    with pytest.raises(ExprError, match=rf"^too large: 503 nodes \(at most {MAX_NODES}\)$"):
        compile_expr("+".join(["x"] * 168))
    with pytest.raises(ExprError, match=rf"^nested too deeply \(more than {MAX_DEPTH} levels\)$"):
        compile_expr("(" * (MAX_DEPTH + 1) + "x" + ")" * (MAX_DEPTH + 1))
    with pytest.raises(ExprError, match=r"^nested too deeply"):
        compile_expr("NOT " * 2_000 + "x")  # the parser's own recursion gives out: a refusal too
    assert columns_of("(" * (MAX_DEPTH - 2) + "x" + ")" * (MAX_DEPTH - 2)) == {"x"}


def test_functions_and_aggregates_do_not_overlap():
    assert not FUNCTIONS.keys() & AGGREGATES.keys()
    assert "lpad" not in FUNCTIONS and "rpad" not in FUNCTIONS and "repeat" not in FUNCTIONS


def test_number_literals_take_the_type_of_the_other_operand_as_in_polars():
    frame = pl.DataFrame({"f": pl.Series([1.1], dtype=pl.Float32), "i": [2]})
    assert frame.select(compile_expr("f * 1.5")).dtypes == [pl.Float32]
    assert frame.select(compile_expr("f = 1.1")).item() is True
    assert frame.select(compile_expr("i * 1.5")).dtypes == [pl.Float64]  # Polars SQL made it Decimal(38, 1)
    assert frame.select(compile_expr("i * 2")).dtypes == [pl.Int64]
    # Polars' % takes the sign of the divisor (Polars SQL's took the dividend's: -1 and 1.5)
    assert frame.select(compile_expr("-7 % 2"), compile_expr("7.5 % -2.0").alias("y")).row(0) == (1, -0.5)


def test_integer_literals_past_64_bits_or_4300_digits_are_floats():
    """Python's int() refuses 4,300 digits and more (a ValueError traceback before), leading zeros too."""
    values = [pl.select(compile_expr(t)).item() for t in ("0" * 5000 + "7", "9" * 5000, "9223372036854775808")]
    assert values == [7, float("inf"), 2.0**63] and isinstance(values[0], int)
    assert pl.select(compile_expr("9223372036854775807")).item() == 2**63 - 1


def test_a_name_holding_a_newline_keeps_the_refusal_on_one_line():
    with pytest.raises(ExprError) as exc:
        columns_of('"a\nb"(x)')
    assert str(exc.value) == "unknown function 'a\\x0ab' (did you mean 'abs'?)"


INTEGERS = pl.DataFrame(
    {"m": [262144, 5, None], "u": [3, 7, 1], "big": [2**62, 2**62 - 1, -(2**63)]},
    schema={"m": pl.Int32, "u": pl.UInt32, "big": pl.Int64},
)


def checked(text: str) -> list:
    """The expression's values on INTEGERS, compiled with its schema (integer arithmetic checked)."""
    return INTEGERS.select(compile_expr(text, INTEGERS.schema).alias("v"))["v"].to_list()


@pytest.mark.parametrize(
    "text,what",
    [
        ("m * 1048576", "Int32 overflow in m * 1048576: cast an operand to bigint or double first"),  # MiB to bytes
        ("u - 5", "UInt32 overflow in u - 5: cast an operand to bigint or double first"),  # 3 - 5
        ("big + big", "Int64 overflow in big + big: cast an operand to double first"),
        ("-big", "Int64 overflow in -big: cast an operand to double first"),  # -(-2^63)
        ("sum(m) * 10000", "Int32 overflow in SUM(m) * 10000: cast an operand to bigint or double first"),
        ("max(u * 1000000000)", "UInt32 overflow in u * 1000000000: cast an operand to bigint or double first"),
        ("m * 1048576 > 0", "Int32 overflow in m * 1048576: cast an operand to bigint or double first"),  # inside
    ],
)
def test_integer_arithmetic_that_wraps_around_stops_with_the_operation_named(text, what):
    # unchecked (no schema), Polars wraps silently: the Int32 262144 * 1048576 is 0, the UInt32 3 - 5 is 4294967294
    with pytest.raises(pl.exceptions.InvalidOperationError, match=re.escape(f'["stop: {what}"')):
        checked(text)


def test_integer_arithmetic_that_fits_is_exact_and_keeps_its_type():
    assert checked("big + 1 - 1") == [2**62, 2**62 - 1, -(2**63)]
    largest = pl.DataFrame({"big": [2**62]})
    assert largest.select(compile_expr("big + (big - 1)", largest.schema)).item() == 2**63 - 1
    assert checked("m * 2") == [524288, 10, None]
    assert checked("u - 1") == [2, 6, 0]
    assert checked("sum(m)") == [262149]
    assert INTEGERS.select(compile_expr("m * 2", INTEGERS.schema)).dtypes == [pl.Int32]


def test_what_cannot_wrap_is_left_as_it_is():
    assert checked("cast(m as bigint) * 1048576") == [274877906944, 5242880, None]  # the way out the message gives
    assert checked("m * 1048576.0") == [274877906944.0, 5242880.0, None]  # floats do not wrap
    text = pl.DataFrame({"s": ["a"]})
    assert text.select(compile_expr("s + s", text.schema)).item() == "aa"  # Polars' + joins text


def test_text_holding_timestamps_is_ordered_by_time():
    """Text sorts '2024-01-31T08:00' after '2024-01-31 09:00': min, max, <, BETWEEN and an order_by key over
    text times (a dump converted through CSV by two writers) put them in time order, the text as it is; text
    that is no time keeps its own order, and equality of text stays the text's."""
    frame = pl.DataFrame({"s": ["2024-01-31T08:00:00", "2024-01-31 09:00:00", None], "n": ["b", "a", "c"]})

    def values(sql):
        return frame.select(compile_expr(sql, frame.schema).alias("v"))["v"].to_list()

    assert values("max(s)") == ["2024-01-31 09:00:00"] and values("min(s)") == ["2024-01-31T08:00:00"]
    assert values("max(s) FILTER (WHERE n = 'b')") == ["2024-01-31T08:00:00"]
    assert values("s < '2024-01-31 08:30'") == [True, False, None] and values("s > s") == [False, False, None]
    assert values("s BETWEEN '2024-01-31 08:30' AND '2024-01-31T10:00'") == [False, True, None]
    assert values("min(n)") == ["a"] and values("max(n)") == ["c"] and values("n < 'b'") == [False, True, False]
    assert values("s = '2024-01-31 08:00:00'") == [False, False, None]
    late = "'2024-01-31 08:30'"  # greatest by text took 'T…08:00' over ' …08:30'
    assert values(f"greatest(s, {late})") == ["2024-01-31 08:30", "2024-01-31 09:00:00", "2024-01-31 08:30"]
    assert values(f"least(s, {late})") == ["2024-01-31T08:00:00", "2024-01-31 08:30", "2024-01-31 08:30"]
    assert values("least(n, 'b')") == ["b", "a", "b"] and values("greatest(n, s)") == ["b", "a", "c"]

    keys = time_first(pl.col("s"), pl.String) + time_first(pl.col("n"), pl.String)
    assert frame.sort(keys[:2], nulls_last=True)["s"].to_list() == frame["s"].to_list()
    assert frame.sort(keys[2:])["n"].to_list() == ["a", "b", "c"]


def test_a_stop_is_read_back_from_polars_wording():
    error = pl.exceptions.InvalidOperationError(
        'conversion from `str` to `i8` failed in column \'literal\' for 2 out of 9 values: ["stop: a \\"b\\" c", "stop: x"]'
    )
    assert stopped(error) == 'a "b" c' and stopped(ValueError("conversion failed: ['x']")) is None


def test_text_meeting_a_timestamp_is_read_in_the_iso_forms():
    """least, greatest, coalesce, comparisons, BETWEEN, CAST(… AS timestamp) and date_part read a text time as
    the raw reader does
    (a dump converted through CSV); unreadable text is null, and text among text stays text."""
    frame = pl.DataFrame(
        {
            "s": ["2024-01-03 00:00:00", "2024-01-01T02:00:00+02:00", "0000-00-00 00:00:00", None],
            "t": [datetime(2024, 1, 2), datetime(2024, 1, 2), datetime(2024, 1, 2), None],
        }
    )

    def values(sql, data=frame):
        return data.select(compile_expr(sql, data.schema).alias("v"))["v"].to_list()

    jan = [datetime(2024, 1, d) for d in (1, 2, 3)]
    assert values("least(s, t)") == [jan[1], jan[0], jan[1], None]  # MySQL's zero date is null
    assert values("greatest(s, t)") == [jan[2], jan[1], jan[1], None]
    assert values("coalesce(s, t)") == [jan[2], jan[0], jan[1], None]
    assert values("CAST(s AS timestamp)") == [jan[2], jan[0], None, None]
    assert values("date_part('day', s)") == [3, 1, None, None]
    assert values("s > t") == [True, False, None, None] and values("t = '2024-01-02'") == [True, True, True, None]
    assert values("t BETWEEN s AND '2024-01-05'") == [False, True, None, None]
    assert values("least(s, 'x')") == ["2024-01-03 00:00:00", "2024-01-01T02:00:00+02:00", "0000-00-00 00:00:00", "x"]
    month_first = frame.with_columns(pl.lit("01/02/2024").alias("s"))  # no row to reject: not a silent null
    for sql in ("least(s, t)", "CAST(s AS timestamp)", "date_part('day', s)", "s <= t"):
        with pytest.raises(pl.exceptions.InvalidOperationError, match="s holds text that is no timestamp"):
            values(sql, month_first)
