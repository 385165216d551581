"""The engine's expression compiler against Polars SQL, which compiled spec expressions before.

For every whitelisted construct, on operands of every common dtype (with nulls), the compiled expression
and `pl.sql_expr` of the same text (qualified names quoted, as the old engine did) must agree: the same
values and dtypes, or both an error. In a group-by too, and for the output names Polars picks. Then the
bundled specs run on three simulated sites with each compiler and must write the same files.

pl.sql_expr is used here only as the reference, on text written in this file or the bundled specs.
"""

import datetime as dt
import itertools
import json
import re
from decimal import Decimal

import polars as pl
import pytest
from polars.testing import assert_series_equal

from engine.expr import compile_expr
from engine.simulate import simulate
from tests.conftest import SPECS, run_cli

_QUALIFIED = re.compile(r"""('(?:[^']|'')*')|("(?:[^"]|"")*")|\b([A-Za-z_]\w*\.[A-Za-z_]\w*)\b""")


def polars_sql(text: str | int | float | bool) -> pl.Expr:
    """What the engine compiled before: Polars SQL, after quoting every alias.column outside literals."""
    if isinstance(text, bool | int | float):
        return pl.lit(text)
    return pl.sql_expr(_QUALIFIED.sub(lambda m: f'"{m.group(3)}"' if m.group(3) else m.group(0), text))


FRAME = pl.DataFrame(
    {
        "k": [1, 1, 2, 2, 3],
        "i32": pl.Series([7, -7, None, 0, 3], dtype=pl.Int32),
        "i64": pl.Series([7, -7, None, 0, 9223372036854775807]),
        "u32": pl.Series([7, 2, None, 0, 3], dtype=pl.UInt32),
        "f32": pl.Series([7.5, -2.0, None, 1.1, 0.0], dtype=pl.Float32),
        "f64": pl.Series([7.5, -2.0, None, 1.1, float("nan")]),
        "dec": pl.Series(
            [Decimal("1.5"), Decimal("-2.25"), None, Decimal(0), Decimal("1.125")], dtype=pl.Decimal(10, 3)
        ),
        "n": pl.Series([None] * 5, dtype=pl.Null),
        "s": ["a.b", "1.5", None, "", "compute_x"],
        "b": [True, False, None, True, False],
        "d": [dt.date(2024, 1, 1), dt.date(2023, 12, 31), None, dt.date(1969, 12, 31), dt.date(2024, 2, 29)],
        "t": [
            dt.datetime(2024, 1, 1),
            dt.datetime(2024, 1, 2, 3, 4, 5, 678901),
            None,
            dt.datetime(1969, 12, 31, 23, 59, 59, 250000),
            dt.datetime(2024, 2, 29, 12),
        ],
        "l.x": [1, 2, None, 4, 5],
    }
)
COLUMNS = ["i32", "i64", "u32", "f32", "f64", "dec", "n", "s", "b", "d", "t", "l.x"]
LITERALS = ["1", "-2", "0", "1.5", "-0.25", "0.05", "1e0", "9223372036854775808", "'x'", "'1.5'", "NULL", "TRUE"]
TEMPORAL = ["d::date", "t::timestamp", "'2024-01-01'", "'2024-01-01 12:00:00'"]
OPERANDS = COLUMNS + LITERALS + TEMPORAL


def _outcome(compile_text, text: str, agg: bool):
    """('ok', series) or ('error', message): the expression run on FRAME (grouped by k when `agg`)."""
    try:
        expr = compile_text(text).alias("r")
        if agg:
            return "ok", FRAME.group_by("k", maintain_order=True).agg(expr)["r"]
        return "ok", FRAME.select(expr)["r"]
    except (pl.exceptions.PolarsError, pl.exceptions.PanicException, ValueError, TypeError) as exc:
        return "error", str(exc).splitlines()[0]


def disagreement(text: str, agg: bool = False) -> str | None:
    """None when the engine and Polars SQL agree on `text`, else what differs."""
    (mine, a), (theirs, b) = _outcome(compile_expr, text, agg), _outcome(polars_sql, text, agg)
    if mine != theirs:
        return f"{text!r}: engine {mine} {a if mine == 'error' else a.to_list()}, Polars SQL {theirs} {b if theirs == 'error' else b.to_list()}"
    if mine == "error":
        return None
    try:
        assert_series_equal(a, b, check_names=False, check_exact=True)
    except AssertionError:
        return f"{text!r}: engine {a.dtype} {a.to_list()}, Polars SQL {b.dtype} {b.to_list()}"
    return None


def disagreements(texts, agg: bool = False) -> list[str]:
    return [d for d in (disagreement(t, agg) for t in texts) if d]


BINARY = ["+", "-", "*", "/", "%", "||", "=", "<>", "!=", "<", "<=", ">", ">=", "AND", "OR"]


@pytest.mark.parametrize("op", BINARY)
def test_binary_operators_on_every_pair_of_operand_types(op):
    texts = [f"{a} {op} {b}" for a, b in itertools.product(OPERANDS, repeat=2)]
    assert disagreements(texts) == []


UNARY = ["-{}", "- -{}", "+{}", "-({})", "NOT {}", "{} IS NULL", "{} IS NOT NULL", "NOT ({} IS NULL)", "({})"]
IN_LISTS = [
    "(1, 2)",
    "(1.5, 7)",
    "('x', '1.5')",
    "(NULL)",
    "(1, NULL)",
    "(i32, 2)",
    "(TRUE)",
    "('2024-01-01')",
    "(DATE '2024-01-01')",
    "(1e0, -2)",
    "(-7, 3)",
    "(0.05, 1.1)",
    "(9223372036854775808)",
]


@pytest.mark.parametrize("operand", OPERANDS)
def test_unary_in_and_between(operand):
    texts = [u.format(operand) for u in UNARY]
    texts += [f"{operand} IN {items}" for items in IN_LISTS] + [f"{operand} NOT IN {items}" for items in IN_LISTS]
    texts += [f"{operand} IN ({operand})", f"{operand} NOT IN ({operand}, 1)"]
    texts += [
        f"{operand} BETWEEN 0 AND 7",
        f"{operand} NOT BETWEEN 0 AND 7",
        f"{operand} BETWEEN 1.5 AND 7",
        f"{operand} BETWEEN '2024-01-01' AND '2024-12-31'",
        f"{operand} BETWEEN i32 AND i64",
    ]
    assert disagreements(texts) == []


CAST_TYPES = [
    "integer",
    "int",
    "bigint",
    "smallint",
    "double",
    "double precision",
    "float",
    "real",
    "numeric",
    "numeric(10)",
    "numeric(10, 2)",
    "decimal(38, 9)",
    "text",
    "varchar",
    "varchar(3)",
    "string",
    "boolean",
    "date",
    "timestamp",
    "datetime",
]


@pytest.mark.parametrize("operand", OPERANDS)
def test_casts_choices_and_null_functions(operand):
    texts = [f"cast({operand} AS {t})" for t in CAST_TYPES] + [f"{operand}::{t}" for t in CAST_TYPES]
    texts += [
        f"coalesce({operand}, 1)",
        f"coalesce({operand}, 1.5)",
        f"coalesce(NULL, {operand})",
        f"coalesce({operand})",
        f"least({operand}, 1)",
        f"greatest({operand}, 1.5, i32)",
        f"least({operand}, {operand})",
        f"nullif({operand}, 1)",
        f"nullif({operand}, {operand})",
        f"nullif({operand}, 'x')",
        f"CASE WHEN {operand} THEN 1 END",
        f"CASE WHEN b THEN {operand} ELSE 1 END",
        f"CASE WHEN b THEN 1.5 WHEN NOT b THEN {operand} ELSE NULL END",
        f"CASE {operand} WHEN 1 THEN 'one' WHEN 1.5 THEN 'x' ELSE 'other' END",
        f"CASE WHEN {operand} IS NULL THEN 'none' ELSE 'some' END",
        f"concat({operand}, 'x', NULL)",
        f"{operand} || 'x'",
    ]
    assert disagreements(texts) == []


LIKE_PATTERNS = [
    "",
    "%",
    "%%",
    "_",
    "a%",
    "%b",
    "%.%",
    "a.b",
    "a_b",
    "%x%",
    "%x%%",
    "%%x",
    "x%%",
    "compute_%",
    "%_%",
    "1.5",
    "^x%$",
    "a\\%",
    ".+*?()|[]{}^$#&-~\\",
    "%[a]%",
    "A.B",
    "COMPUTE%",
    "%e_x",
    "é%",
]


@pytest.mark.parametrize("operand", ["s", "i32", "n", "'a.b'", "NULL", "d::date", "lower(s)"])
def test_like_and_ilike_patterns(operand):
    texts = []
    for pattern in LIKE_PATTERNS:
        p = pattern.replace("'", "''")
        texts += [f"{operand} {op} '{p}'" for op in ("LIKE", "NOT LIKE", "ILIKE", "NOT ILIKE")]
    assert disagreements(texts) == []


def test_like_is_an_anchored_regex_with_rust_escapes():
    frame = pl.DataFrame({"x": ["a.b+c", "axb+c", "A.B+C", None]})
    assert frame.select(compile_expr("x LIKE 'a.b+_'"))["x"].to_list() == [True, False, False, None]
    assert frame.select(compile_expr("x ILIKE 'a.b+_'"))["x"].to_list() == [True, False, True, None]


@pytest.mark.parametrize("text", ["s", "'  Ab c  '", "NULL", "i32", "d"])
def test_text_functions(text):
    x = text
    texts = [
        f"lower({x})",
        f"upper({x})",
        f"length({x})",
        f"trim({x})",
        f"ltrim({x})",
        f"rtrim({x})",
        f"ltrim({x}, ' a')",
        f"rtrim({x}, 'x ')",
        f"replace({x}, '.', '-')",
        f"replace({x}, 'a.', 'b')",
        f"replace({x}, 'b', '')",
        f"concat({x}, '-', {x})",
        f"starts_with({x}, 'a')",
        f"ends_with({x}, 'x')",
        f"starts_with({x}, s)",
        f"regexp_like({x}, '^c.*x$')",
        f"regexp_like({x}, 'A', 'i')",
        f"regexp_like({x}, 'a.b', 'is')",
        f"regexp_like({x}, s)",
    ]
    for n in ["-3", "-1", "0", "1", "2", "13", "100", "i32", "NULL", "l.x"]:
        texts += [
            f"left({x}, {n})",
            f"right({x}, {n})",
            f"substr({x}, {n})",
            f"substring({x}, {n})",
            f"split_part({x}, '.', {n})",
            f"split_part({x}, '', {n})",
        ]
        texts += [f"substr({x}, {n}, {m})" for m in ["0", "1", "2", "100", "i32", "l.x"]]
    assert disagreements(texts) == []


@pytest.mark.parametrize("x", ["i32", "i64", "u32", "f32", "f64", "dec", "n", "1", "-2.5", "2.5", "0.125", "1e0", "s"])
def test_number_functions(x):
    texts = [f"abs({x})", f"floor({x})", f"ceil({x})", f"round({x})"] + [f"round({x}, {n})" for n in (0, 1, 2, 10)]
    assert disagreements(texts) == []


UNITS = ["epoch", "year", "month", "day", "hour", "minute", "second", "dow", "isodow", "doy", "week", "quarter"]


@pytest.mark.parametrize(
    "x", ["t", "d", "t::timestamp", "d::date", "s", "n", "cast('2024-03-04 05:06:07' AS timestamp)"]
)
def test_date_parts(x):
    texts = [f"date_part('{unit}', {x})" for unit in UNITS] + [f"extract({unit} FROM {x})" for unit in UNITS]
    texts += [f"date_part('EPOCH', {x})", f"(date_part('epoch', {x}) - date_part('epoch', t)) / 3600"]
    assert disagreements(texts) == []


AGGREGATES = [
    "min({})",
    "max({})",
    "sum({})",
    "avg({})",
    "count({})",
    "count(DISTINCT {})",
    "first({})",
    "last({})",
    "median({})",
    "quantile_cont({}, 0.9)",
    "quantile_cont({}, 0)",
    "quantile_cont({}, 1)",
    "quantile_cont({}, 0.5e0)",
]
FILTERS = [None, "b", "i32 > 0", "s LIKE 'compute_%' AND s IS NOT NULL", "NOT b"]


@pytest.mark.parametrize("x", [*COLUMNS, "1", "-1", "1 + 1", "NULL", "1.5", "'x'", "i32 * 2", "coalesce(i32, 0)"])
def test_aggregates_with_and_without_filter_in_a_group_by(x):
    texts = [f.format(x) if c is None else f"{f.format(x)} FILTER (WHERE {c})" for f in AGGREGATES for c in FILTERS]
    assert disagreements(texts, agg=True) == []


def test_row_counts_and_aggregate_arithmetic_in_a_group_by():
    texts = [f"count({x})" if c is None else f"count({x}) FILTER (WHERE {c})" for x in ("*", "1") for c in FILTERS]
    texts += [
        "(date_part('epoch', first(t)) - date_part('epoch', first(d::timestamp))) / 3600",
        "(date_part('epoch', min(t)) - date_part('epoch', first(t))) / 3600",
        "max(i32) + 1",
        "count(*) + count(i32)",
        "max(i32) FILTER (WHERE b) - min(i32)",
        "cast(first(t) AS date)",
        "last(s) FILTER (WHERE s LIKE 'compute_%' AND s IS NOT NULL)",
        "count(DISTINCT (i32))",
        "count(NULL)",
    ]
    assert disagreements(texts, agg=True) == []


def test_integer_and_decimal_literals_are_typed_as_polars_sql_typed_them():
    for text, dtype in [
        ("1", pl.Int32),
        ("2147483648", pl.Int64),
        ("9223372036854775808", pl.Decimal(19, 0)),
        ("1.5", pl.Decimal(2, 1)),
        ("0.05", pl.Decimal(2, 2)),
        ("1e3", pl.Float64),
        ("0.1 + 0.2", pl.Decimal(1, 1)),
        ("1.5 * 1.5", pl.Decimal(3, 2)),
        ("-1.5", pl.Decimal(2, 1)),
    ]:
        assert pl.select(compile_expr(text)).dtypes == [dtype], text
        assert disagreement(text) is None


def test_output_names_are_those_polars_sql_chose():
    texts = [
        f"{a} {op} {b}" for op in ("+", "*", "/", "%", "=", "||") for a, b in itertools.product(OPERANDS[:14], repeat=2)
    ]
    texts += ["count(*)", "lower(s)", "coalesce(n, i32)", "CASE WHEN b THEN s END", "cast(i32 AS text)", "s LIKE 'a%'"]
    wrong = []
    for text in texts:
        try:
            names = FRAME.select(compile_expr(text)).columns, FRAME.select(polars_sql(text)).columns
        except pl.exceptions.PolarsError:
            continue
        if names[0] != names[1]:
            wrong.append(f"{text}: {names}")
    assert wrong == []


# --- the bundled specs, end to end ------------------------------------------------------------------------

SITES = """sites:
  metal:
    name: bare metal
    data: raw/metal
    entities: [nova_host, blazar_host, allocation, reserved_instance, ondemand_instance]
  kvm:
    name: kvm
    data: raw/kvm
    entities: [nova_host, blazar_host, slice_allocation, kvm_reserved_instance, kvm_ondemand_instance]
  edge:
    name: edge
    data: raw/edge
    entities: [device, reservable_device, device_allocation, container]
"""


def _manifest(path):
    """The manifest without timings; metric totals rounded (their float sums vary in the last digit between runs)."""
    manifest = json.loads(path.read_text())
    for key in ("timings", "command", "generated_at"):  # what tells one run from another
        manifest.pop(key)
    for resources in manifest.get("metrics", {}).values():
        for resource, hours in resources.items():
            resources[resource] = None if hours is None else float(f"{hours:.9g}")
    return manifest


def test_the_bundled_specs_write_the_same_files_as_with_polars_sql(tmp_path, monkeypatch):
    for kind, name in (("baremetal", "metal"), ("kvm", "kvm"), ("edge", "edge")):
        simulate(tmp_path / "raw" / name, seed=5, hosts=12, days=40, kind=kind)
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "sites.yaml").write_text(SITES)
    args = ("run", SPECS, "--sites", tmp_path / "etc" / "sites.yaml", "--site", "all", "--jobs", "1", "--no-report")
    assert run_cli(*args, "--out", tmp_path / "engine").exit_code == 0
    compiled = []

    def counted_polars_sql(text):
        compiled.append(text)
        return polars_sql(text)

    monkeypatch.setattr("engine.plan.frames.compile_expr", counted_polars_sql)
    result = run_cli(*args, "--out", tmp_path / "polars_sql")
    assert result.exit_code == 0, result.stderr
    assert len(set(map(str, compiled))) > 60  # every bundled expression went through Polars SQL
    files = sorted(p.relative_to(tmp_path / "engine") for p in (tmp_path / "engine").rglob("*.parquet"))
    assert len(files) > 40 and files == sorted(
        p.relative_to(tmp_path / "polars_sql") for p in (tmp_path / "polars_sql").rglob("*.parquet")
    )
    for rel in files:
        ours, theirs = pl.read_parquet(tmp_path / "engine" / rel), pl.read_parquet(tmp_path / "polars_sql" / rel)
        assert ours.schema == theirs.schema and ours.equals(theirs), rel
    for manifest in (tmp_path / "engine").rglob("manifest.json"):
        assert _manifest(manifest) == _manifest(tmp_path / "polars_sql" / manifest.relative_to(tmp_path / "engine"))
