"""Sweepline and integrals: hand-made edge cases, and the daily integral against brute force."""

from datetime import datetime, timedelta

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.sweep import bucket_boundaries, clipped, integrate, sweep

T0 = datetime(2024, 1, 1)
WINDOW = (T0, T0 + timedelta(days=3))


def t(h):
    return None if h is None else T0 + timedelta(hours=h)


def spans(rows):
    """rows: (group, start hour, end hour or None, value)."""
    return pl.LazyFrame(
        {
            "g": [r[0] for r in rows],
            "s": [t(r[1]) for r in rows],
            "e": [t(r[2]) for r in rows],
            "v": [float(r[3]) for r in rows],
        },
        schema_overrides={"s": pl.Datetime("us"), "e": pl.Datetime("us")},
    )


def series(rows, window=WINDOW):
    """The sweep, ordered by group then time (sweep itself orders by time only)."""
    return (
        sweep(clipped(spans(rows), window, start="s", end="e"), ["g"], start="s", end="e", value="v")
        .sort("g", maintain_order=True)
        .collect()
    )


def test_touching_intervals_do_not_step_down_between_them():
    got = series([("a", 1, 5, 1), ("a", 5, 9, 1)])
    assert got.select("timestamp", "v").rows() == [(t(1), 1.0), (t(5), 1.0), (t(9), 0.0)]


def test_same_instant_start_and_end_cancel_whatever_the_row_order():
    got = series([("a", 5, 9, 1), ("a", 1, 5, 2)])
    assert got.select("timestamp", "v").rows() == [(t(1), 2.0), (t(5), 1.0), (t(9), 0.0)]


def test_open_end_runs_to_window_end_and_outside_spans_vanish():
    got = series([("a", 10, None, 1), ("a", -50, -10, 1), ("a", 100, 120, 1), ("a", -5, 2, 3)])
    assert got.select("timestamp", "v").rows() == [(t(0), 3.0), (t(2), 0.0), (t(10), 1.0), (t(72), 0.0)]


def test_groups_are_separate_series():
    got = series([("a", 0, 2, 1), ("b", 1, 3, 5)])
    assert got.rows() == [("a", t(0), 1.0), ("a", t(2), 0.0), ("b", t(1), 5.0), ("b", t(3), 0.0)]


def test_daily_integral_by_hand():
    s = sweep(
        clipped(spans([("a", 12, 36, 2), ("a", 30, None, 1)]), WINDOW, start="s", end="e"),
        ["g"],
        start="s",
        end="e",
        value="v",
    )
    got = integrate(s, ["g"], "v", boundaries=bucket_boundaries(WINDOW, "1d")).collect()
    # day 0: 12 h x 2 = 24; day 1: 12 h x 2 + 18 h x 1 = 42; day 2: 24 h x 1 = 24
    assert got.select("bucket", "hours").rows() == [(t(0), 24.0), (t(24), 42.0), (t(48), 24.0)]


def test_bucket_boundaries_cover_the_window_from_its_start():
    window = (datetime(2024, 1, 10, 6), datetime(2024, 3, 2))
    months = bucket_boundaries(window, "1mo")
    assert months == [datetime(2024, 1, 10, 6), datetime(2024, 2, 10, 6), datetime(2024, 3, 2)]
    weeks = bucket_boundaries((datetime(2024, 1, 3), datetime(2024, 1, 20)), "7d")  # a Wednesday: no Monday before
    assert weeks == [datetime(2024, 1, 3), datetime(2024, 1, 10), datetime(2024, 1, 17), datetime(2024, 1, 20)]
    assert bucket_boundaries(window, "1d")[:2] == [datetime(2024, 1, 10), datetime(2024, 1, 11)]  # calendar days
    assert bucket_boundaries((T0, t(3)), "1h") == [t(0), t(1), t(2), t(3)]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from("ab"), st.integers(-30, 90), st.integers(1, 60), st.booleans(), st.integers(1, 4)),
        min_size=1,
        max_size=15,
    ),
    st.sampled_from(["1h", "1d", "7d"]),
)
def test_integral_matches_brute_force_per_bucket(rows, every):
    data = [(g, s, None if is_open else s + d, v) for g, s, d, is_open, v in rows]
    s = sweep(clipped(spans(data), WINDOW, start="s", end="e"), ["g"], start="s", end="e", value="v")
    bounds = bucket_boundaries(WINDOW, every)
    got = {(g, b): h for g, b, h in integrate(s, ["g"], "v", boundaries=bounds).collect().rows()}
    for g in {r[0] for r in data}:
        for a, b in zip(bounds, bounds[1:], strict=False):
            want = 0.0
            for rg, rs, re, v in data:
                lo, hi = max(t(rs), a, WINDOW[0]), min(t(re) if re is not None else WINDOW[1], b, WINDOW[1])
                if rg == g and lo < hi:
                    want += v * (hi - lo).total_seconds() / 3600
            assert abs(got.get((g, a), 0.0) - want) < 1e-9, (g, a)
