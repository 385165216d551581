"""Measure the child-in-parent interval join three ways on the same data (see docs/design.md).

python bench/interval_join.py [--children 2000000] [--keys 2000]
"""

import argparse
import time
from datetime import datetime

import duckdb
import numpy as np
import polars as pl

from engine.temporal import clip

T0 = datetime(2015, 1, 1)


def data(children: int, keys: int, seed: int = 1):
    rng = np.random.default_rng(seed)
    hours = 10 * 365 * 24
    # parents: 3 enrolment periods per key with gaps between them
    starts = np.sort(rng.integers(0, hours, size=(keys, 3)), axis=1)
    p = pl.DataFrame(
        {
            "k": np.repeat(np.arange(keys), 3).astype(str),
            "s": np.ravel(starts),
            "e": np.ravel(starts) + rng.integers(24, 24 * 900, size=keys * 3),
        }
    )
    c_start = rng.integers(0, hours, size=children)
    c = pl.DataFrame(
        {
            "k": rng.integers(0, keys, size=children).astype(str),
            "s": c_start,
            "e": c_start + rng.integers(1, 24 * 14, size=children),
        }
    )

    def as_time(df: pl.DataFrame) -> pl.DataFrame:
        return df.with_columns((pl.lit(T0) + pl.duration(hours=pl.col(x))).alias(x) for x in ("s", "e"))

    return as_time(c), as_time(p)


def timed(label, fn):
    began = time.perf_counter()
    rows = fn()
    print(f"{label:<34} {time.perf_counter() - began:7.2f} s  {rows:>10,} pieces")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--children", type=int, default=2_000_000)
    ap.add_argument("--keys", type=int, default=2_000)
    args = ap.parse_args()
    c, p = data(args.children, args.keys)
    print(f"{c.height:,} children, {p.height:,} parent intervals, {args.keys:,} keys")
    timed(
        "polars equi-join + overlap filter",
        lambda: clip(c.lazy(), p.lazy(), left_on=["k"], right_on=["k"], start="s", end="e").collect().height,
    )
    timed(
        "polars join_where (experimental)",
        lambda: (
            c.lazy()
            .join_where(
                p.lazy(),
                pl.col("k") == pl.col("k_right"),
                pl.col("s") < pl.col("e_right"),
                pl.col("s_right") < pl.col("e"),
            )
            .collect()
            .height
        ),
    )
    con = duckdb.connect()
    con.register("c", c.to_arrow())
    con.register("p", p.to_arrow())
    sql = """SELECT c.k, greatest(c.s, p.s) AS s, least(c.e, p.e) AS e FROM c JOIN p
             ON c.k = p.k AND c.s < p.e AND p.s < c.e"""
    timed("duckdb SQL range join", lambda: len(con.sql(sql).pl()))


if __name__ == "__main__":
    main()
