"""The comparison's sums give the same bits on every run, whatever order a group's rows arrive in: Polars adds a
hash group's partial sums in any order, and drops a sort before `sum()`."""

import random

import polars as pl

from engine.compare import _total


def shuffled(values: list[float], seed: int) -> pl.LazyFrame:
    rows = list(values)
    random.Random(seed).shuffle(rows)
    return pl.LazyFrame({"g": [1] * len(rows), "x": rows})


def test_a_group_total_does_not_depend_on_the_row_order():
    rng = random.Random(0)
    values = [rng.uniform(-1, 1) * 10 ** rng.randint(-6, 6) for _ in range(2_000)]
    plain = {shuffled(values, s).group_by("g").agg(pl.col("x").sum()).collect().item(0, "x") for s in range(20)}
    ours = {shuffled(values, s).group_by("g").agg(_total("x")).collect().item(0, "x") for s in range(20)}
    assert len(plain) > 1  # the rows' order does change a plain sum's last bits
    assert len(ours) == 1 and abs(ours.pop() - sum(values)) < 1e-6


def test_a_total_counts_nulls_as_zero():
    lf = pl.LazyFrame({"g": [1, 1, 2], "x": [0.5, None, None]})
    assert lf.group_by("g").agg(_total("x")).sort("g").collect()["x"].to_list() == [0.5, 0.0]
