"""Breakdowns and charges, the pure parts: the factor a node is charged, and the per-span daily sum against
the sweep's exact integral (and both against a brute force over the minutes), in UTC and across a clock change."""

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.breakdowns import factor, split_daily
from engine.spec.model import Charges, Fallback, Metric

CHARGES = Charges(
    metric="committed",
    resource="nodes",
    by=("project_id",),
    factor="su_factor",
    fallback=Fallback(column="node_type", values={"gpu": 2.0}, default=1.0),
)


def test_a_recorded_factor_counts_only_when_it_is_a_usable_number():
    recorded = ["2.5", "0", "-1", "inf", "NaN", "abc", None, "1e9", " 3 "]
    df = pl.DataFrame({"su_factor": recorded, "node_type": ["x"] * 8 + ["gpu"]})
    got = df.select(factor(CHARGES, df.columns))["su_factor"].to_list()
    # 2.5 and 0 from the data; a negative, infinite, non-numeric, missing or absurd value takes the fallback
    assert got == [2.5, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 2.0]


def test_without_the_factor_column_every_node_takes_the_fallback():
    df = pl.DataFrame({"node_type": ["gpu", "cpu", None]})
    assert df.select(factor(CHARGES, df.columns).alias("f"))["f"].to_list() == [2.0, 1.0, 1.0]
    bare = pl.DataFrame({"nodes": [1, 2]})  # no factor, no node type either: the default
    assert bare.with_columns(factor(CHARGES, bare.columns).alias("f"))["f"].to_list() == [1.0, 1.0]


T0 = datetime(2024, 3, 8)
METRICS = {"a": Metric(name="a", description="a", formula=None), "b": Metric(name="b", description="b", formula=None)}
METRICS["d"] = Metric(name="d", description="a - b", formula="a - b")
span = st.tuples(
    st.sampled_from(["a", "b"]),
    st.sampled_from(["p", "q"]),
    st.integers(0, 5 * 24 * 60),
    st.integers(1, 2 * 24 * 60),
    st.sampled_from([1, 2, 0.5]),
)


def frames(rows) -> list:
    df = pl.DataFrame(
        {
            "metric": [r[0] for r in rows],
            "who": [r[1] for r in rows],
            "valid_start": [T0 + timedelta(minutes=r[2]) for r in rows],
            "valid_end": [T0 + timedelta(minutes=r[2] + r[3]) for r in rows],
            "nodes": [float(r[4]) for r in rows],
            "hierarchy_status": ["direct"] * len(rows),
            "site": ["s"] * len(rows),
        }
    )
    return [(df, ["nodes"])]


def brute(rows, window, tz: str) -> dict:
    """Node-minutes per (local date, metric, who) by walking every minute of every span; d = a - b, both declared
    with nodes, whether or not each has spans in the window (b without any is zero: d is a)."""
    out: dict = {}
    for metric, who, start, length, nodes in rows:
        for m in range(start, start + length):
            t = T0 + timedelta(minutes=m)
            if not window[0] <= t < window[1]:
                continue
            day = t.replace(tzinfo=ZoneInfo("UTC")).astimezone(ZoneInfo(tz)).date()
            for target, sign in ((metric, 1), ("d", 1 if metric == "a" else -1)):
                key = (day, target, who)
                out[key] = out.get(key, 0.0) + sign * nodes / 60
    return {k: v for k, v in out.items() if abs(v) > 1e-9}


@settings(max_examples=40, deadline=None)
@given(st.lists(span, min_size=1, max_size=12), st.sampled_from(["UTC", "America/Chicago"]))
def test_the_per_span_daily_sum_is_the_sweep_and_the_brute_force(rows, tz):
    window = (T0 + timedelta(hours=7), T0 + timedelta(days=5, hours=3))  # 2024-03-10: 23 hours in Chicago
    results = []
    for swept in (False, True):
        declared = {"a": {"nodes"}, "b": {"nodes"}}
        table = split_daily(
            frames(rows), METRICS, group=["site", "who"], window=window, tz=tz, declared=declared, swept=swept
        )
        results.append({(d, m, w): h for d, m, w, h in table.select("date", "metric", "who", "hours").rows()})
    expected = brute(rows, window, tz)
    for got in results:
        got = {k: v for k, v in got.items() if abs(v) > 1e-9}
        assert got.keys() == expected.keys()
        assert all(got[k] == pytest.approx(v, abs=1e-9) for k, v in expected.items())
