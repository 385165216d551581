"""What spec expressions mean: the bundled specs' against Polars SQL, and each construct against values worked
out by hand.

Polars SQL (`pl.sql_expr`) compiled spec expressions before the engine did; every expression of the bundled
specs must still mean what it made of it, values and dtypes, so the bundled outputs stay the same. It is used
here only as that reference, on the text of the bundled specs. The constructs the specs do not use have the
engine's own documented meaning (docs/specs.md, "Expressions"), checked by hand below.
"""

import datetime as dt
import random
import re
from decimal import Decimal

import polars as pl
import pytest
from polars.testing import assert_series_equal

from engine.expr import columns_of, compile_expr
from engine.spec.load import load_specs
from tests.conftest import SPECS

_QUALIFIED = re.compile(r"""('(?:[^']|'')*')|("(?:[^"]|"")*")|\b([A-Za-z_]\w*\.[A-Za-z_]\w*)\b""")


def polars_sql(text: str | int | float | bool) -> pl.Expr:
    """What the engine compiled before: Polars SQL, after quoting every alias.column outside literals."""
    if isinstance(text, bool | int | float):
        return pl.lit(text)
    return pl.sql_expr(_QUALIFIED.sub(lambda m: f'"{m.group(3)}"' if m.group(3) else m.group(0), text))


def bundled_expressions() -> list[tuple[str, str, object]]:
    """(where, field, expression) for every expression of the bundled specs, metrics.yaml's legacy included."""
    specs = load_specs(SPECS)
    found = []
    for kind in (specs.entities, specs.lookups, specs.reports):
        found += [(name, field, text) for name, spec in kind.items() for field, text in spec.expressions()]
    legacy = specs.metrics.legacy
    found += [("legacy", "date", legacy.date)] + [("legacy", g, e) for g, e in legacy.group_by.items()]
    return found + [("legacy", f"metrics.{m}", e) for m, e in legacy.metrics.items()]


BUNDLED = bundled_expressions()
# Text that the bundled specs compare or match, so that every condition is true on some rows and false on others.
WORDS = sorted({w for _, _, e in BUNDLED if isinstance(e, str) for w in re.findall(r"'([^']*)'", e)})
WORDS += ["compute_start_instance", "reservation:0123456789ab", "reservation:", "other", "2.5", " 1.25 "]
ROWS = 160


def column(name: str, seed: int) -> pl.Series:
    """A column of the dtype the bundled data gives `name`: varied values (fractions of seconds, zeros,
    the words the specs look for) and a null."""
    rng, base = random.Random(seed), name.split(".")[-1]
    if base == "date" or base.endswith(("_at", "_date", "_time", "_start", "_unshelve")):
        start = dt.datetime(2024, 1, 1, 6, 30)
        values = [
            start + dt.timedelta(hours=rng.randrange(100), microseconds=rng.choice([0, 250_000])) for _ in range(ROWS)
        ]
    elif base.endswith("_hours") or base == "cpu_allocation_ratio":
        values = [rng.choice([0.0, 0.1, 1.25, 2.5, 3.0]) for _ in range(ROWS)]
    elif base in ("vcpus", "memory_mb", "local_gb", "root_gb", "disk_gb", "id", "computehost_id"):
        values = [rng.randrange(7) for _ in range(ROWS)]
    else:
        values = [rng.choice(WORDS) for _ in range(ROWS)]
    values[rng.randrange(ROWS)] = None
    return pl.Series(name, values)


def bundled_frame() -> pl.DataFrame:
    names = sorted({c for _, _, e in BUNDLED for c in columns_of(e)} - {"k"})
    return pl.DataFrame([column(name, offset) for offset, name in enumerate(names)]).with_columns(
        k=pl.Series([i % 3 for i in range(ROWS)])
    )


# (whether it is an aggregate, the expression), each once
CASES = sorted({(field.startswith("aggregate."), text) for _, field, text in BUNDLED}, key=str)


@pytest.mark.parametrize("aggregate,text", CASES, ids=[str(text) for _, text in CASES])
def test_every_bundled_expression_means_what_polars_sql_made_of_it(aggregate, text):
    frame = bundled_frame()
    results = []
    for compile_text in (compile_expr, polars_sql):
        expr = compile_text(text).alias("r")
        if aggregate:  # in a group-by, in order, as lookups and reports compute them
            results.append(frame.sort("created_at").group_by("k", maintain_order=True).agg(expr)["r"])
        else:
            results.append(frame.select(expr)["r"])
    assert_series_equal(*results, check_exact=True)
    # not a vacuous comparison: a condition is true on some rows and false on others
    assert set(results[0].drop_nulls()) == {True, False} if results[0].dtype == pl.Boolean else results[0].count()


# --- each construct, by hand -----------------------------------------------------------------------------

T1, T2 = dt.datetime(2024, 1, 1), dt.datetime(2024, 2, 29, 12, 30, 15, 250_000)  # a Monday, a Thursday
FRAME = pl.DataFrame(
    {
        "i": [7, -7, None],
        "f": [1.5, -2.0, None],
        "s": ["a.b", "Compute_x", None],
        "b": [True, False, None],
        "t": [T1, T2, None],
        "l.x": [1, 2, 3],
    }
)


def values(text: str, frame: pl.DataFrame = FRAME) -> list:
    return frame.select(compile_expr(text).alias("r"))["r"].to_list()


@pytest.mark.parametrize(
    "text,expected",
    [
        # literals and arithmetic: Polars' types, true division, Polars' % (the sign of the divisor)
        ("i + 1", [8, -6, None]),
        ("i - f", [5.5, -5.0, None]),
        ("i * 2", [14, -14, None]),
        ("i / 2", [3.5, -3.5, None]),
        ("i % 2", [1, 1, None]),
        ("-i", [-7, 7, None]),
        ("l.x * 1.5", [1.5, 3.0, 4.5]),
        ("'it''s'", ["it's"]),
        ("s || '!'", ["a.b!", "Compute_x!", None]),
        ("i || 'x'", ["7x", "-7x", None]),
        # comparisons and logic
        ("i = 7", [True, False, None]),
        ("i <> 7", [False, True, None]),
        ("i != 7", [False, True, None]),
        ("i < 0", [False, True, None]),
        ("i <= 7", [True, True, None]),
        ("i > 0", [True, False, None]),
        ("i >= 7", [True, False, None]),
        ("b AND TRUE", [True, False, None]),
        ("b AND FALSE", [False, False, False]),
        ("b OR TRUE", [True, True, True]),
        ("b OR FALSE", [True, False, None]),
        ("NOT b", [False, True, None]),
        ("i IS NULL", [False, False, True]),
        ("i IS NOT NULL", [True, True, False]),
        ("i IN (7, 8)", [True, False, None]),
        ("i IN (8, NULL)", [None, None, None]),
        ("i NOT IN (7)", [False, True, None]),
        ("i BETWEEN -7 AND 0", [False, True, None]),
        ("i NOT BETWEEN -7 AND 0", [True, False, None]),
        # LIKE: the whole text, % any text, _ one character, the rest literal
        ("s LIKE 'a.%'", [True, False, None]),
        ("s LIKE 'a_b'", [True, False, None]),
        ("s LIKE 'a'", [False, False, None]),
        ("s LIKE '%x'", [False, True, None]),
        ("s LIKE 'compute%'", [False, False, None]),
        ("s ILIKE 'compute%'", [False, True, None]),
        ("s NOT LIKE '%.%'", [False, True, None]),
        ("s NOT ILIKE '%X'", [True, False, None]),
        # CASE and casts
        ("CASE WHEN i > 0 THEN 'pos' WHEN i < 0 THEN 'neg' END", ["pos", "neg", None]),
        ("CASE s WHEN 'a.b' THEN 1 ELSE 0 END", [1, 0, 0]),
        ("CAST(i AS text)", ["7", "-7", None]),
        ("f::int", [1, -2, None]),
        ("CAST(i AS decimal(5, 2))", [Decimal("7.00"), Decimal("-7.00"), None]),
        ("CAST(b AS integer)", [1, 0, None]),
        ("CAST('2024-02-29' AS date)", [dt.date(2024, 2, 29)]),
        ("'2024-01-01 12:00'::timestamp", [dt.datetime(2024, 1, 1, 12)]),
        ("t < DATE '2024-02-01'", [True, False, None]),
        # text functions
        ("lower(s)", ["a.b", "compute_x", None]),
        ("upper(s)", ["A.B", "COMPUTE_X", None]),
        ("length(s)", [3, 9, None]),
        ("trim('  a b ')", ["a b"]),
        ("ltrim('xxaxx', 'x')", ["axx"]),
        ("rtrim('  a  ')", ["  a"]),
        ("substr(s, 3)", ["b", "mpute_x", None]),
        ("substr(s, 0, 2)", ["a.", "Co", None]),
        ("substring(s, 2, 3)", [".b", "omp", None]),
        ("split_part(s, '.', 1)", ["a", "Compute_x", None]),
        ("split_part(s, '.', -1)", ["b", "Compute_x", None]),
        ("split_part(s, '.', 3)", [None, None, None]),
        ("replace(s, '.', '-')", ["a-b", "Compute_x", None]),
        ("concat(s, '-', i)", ["a.b-7", "Compute_x--7", "-"]),
        ("starts_with(s, 'a')", [True, False, None]),
        ("ends_with(s, '_x')", [False, True, None]),
        ("regexp_like(s, '^[A-Z]')", [False, True, None]),
        ("regexp_like(s, '(?i)^c')", [False, True, None]),
        ("left(s, 2)", ["a.", "Co", None]),
        ("left(s, -2)", ["a", "Compute", None]),
        ("right(s, 2)", [".b", "_x", None]),
        ("right(s, -2)", ["b", "mpute_x", None]),
        # numbers, nulls, choices
        ("abs(i)", [7, 7, None]),
        ("round(2.5)", [2.0]),
        ("round(f * 1.01, 1)", [1.5, -2.0, None]),
        ("floor(f)", [1.0, -2.0, None]),
        ("ceil(f)", [2.0, -2.0, None]),
        ("coalesce(i, l.x, 0)", [7, -7, 3]),
        ("greatest(i, l.x)", [7, 2, 3]),
        ("least(i, l.x)", [1, -7, 3]),
        ("nullif(i, 7)", [None, -7, None]),
        # date parts
        ("date_part('epoch', t)", [1704067200.0, 1709209815.25, None]),
        ("extract(epoch FROM t)", [1704067200.0, 1709209815.25, None]),
        ("date_part('year', t)", [2024, 2024, None]),
        ("date_part('quarter', t)", [1, 1, None]),
        ("date_part('month', t)", [1, 2, None]),
        ("date_part('week', t)", [1, 9, None]),
        ("date_part('day', t)", [1, 29, None]),
        ("date_part('doy', t)", [1, 60, None]),
        ("date_part('dow', t)", [1, 4, None]),
        ("extract(isodow FROM t)", [1, 4, None]),
        ("date_part('hour', t)", [0, 12, None]),
        ("date_part('minute', t)", [0, 30, None]),
        ("date_part('SECOND', t)", [0, 15, None]),
    ],
)
def test_each_construct_means_what_the_docs_say(text, expected):
    assert values(text) == expected


def test_types_follow_polars():
    frame = pl.DataFrame({"f32": pl.Series([1.5], dtype=pl.Float32), "i32": pl.Series([2], dtype=pl.Int32)})
    dtypes = frame.select(
        *(
            compile_expr(t).alias(str(n))
            for n, t in enumerate(["f32 * 1.5", "i32 * 2", "i32 / 2", "i32 * 1.5", "1", "1.5"])
        )
    ).dtypes
    assert dtypes == [pl.Float32, pl.Int32, pl.Float64, pl.Float64, pl.Int32, pl.Float64]
    assert pl.select(compile_expr("9223372036854775808")).dtypes == [pl.Float64]  # beyond 64 bits: a float
    for text in ("'x' = 1", "length(CAST('x' AS int))", "substr('abc', 1, -1)"):
        with pytest.raises(pl.exceptions.PolarsError):  # Polars' own error, named with the field by the engine
            pl.select(compile_expr(text))


GROUPS = pl.DataFrame({"k": [1, 1, 1, 1, 2], "x": [3, None, 3, 1, 5], "c": [True, True, False, True, None]})


@pytest.mark.parametrize(
    "text,expected",
    [
        ("min(x)", [1, 5]),
        ("max(x)", [3, 5]),
        ("sum(x)", [7, 5]),
        ("avg(x)", [7 / 3, 5.0]),
        ("count(*)", [4, 1]),
        ("count(x)", [3, 1]),
        ("count(DISTINCT x)", [2, 1]),
        ("first(x)", [3, 5]),
        ("last(x)", [1, 5]),
        ("median(x)", [3.0, 5.0]),
        ("quantile_cont(x, 0.25)", [2.0, 5.0]),  # 1 + 0.5 * (3 - 1) between the sorted 1, 3, 3
        ("max(x) FILTER (WHERE c)", [3, None]),  # null counts as false
        ("count(*) FILTER (WHERE c)", [3, 0]),
        ("count(x) FILTER (WHERE c)", [2, 0]),
        ("count(DISTINCT x) FILTER (WHERE c)", [2, 0]),
        ("sum(x) FILTER (WHERE c)", [4, 0]),  # Polars' sum of no value is 0
        ("last(x) FILTER (WHERE c AND x IS NOT NULL)", [1, None]),
        ("max(x) - min(x) FILTER (WHERE NOT c)", [0, None]),
    ],
)
def test_each_aggregate_in_a_group_by(text, expected):
    result = GROUPS.group_by("k", maintain_order=True).agg(compile_expr(text).alias("r"))["r"]
    assert result.to_list() == expected
    assert not text.startswith("count") or result.dtype == pl.Int64
