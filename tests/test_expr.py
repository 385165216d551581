"""Spec expressions: qualified names, string literals, constants and parse errors."""

import polars as pl
import pytest

from engine.expr import ExprError, columns_of, compile_expr


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
