"""Interval math, on tiny frames with hand-worked answers, and against brute force on random ones."""

from datetime import datetime, timedelta

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.temporal import claim, clip, merge_intervals, overlapping

T0 = datetime(2024, 1, 1)


def t(h):
    return None if h is None else T0 + timedelta(hours=h)


def frame(rows, cols=("k", "s", "e")):
    data = {c: [r[i] for r in rows] for i, c in enumerate(cols)}
    data["s"], data["e"] = [t(x) for x in data["s"]], [t(x) for x in data["e"]]
    return pl.LazyFrame(data, schema_overrides={"s": pl.Datetime("us"), "e": pl.Datetime("us")})


def hours_of(df, s="s", e="e", open_at=1000):
    return [((r[e] or t(open_at)) - r[s]).total_seconds() / 3600 for r in df.iter_rows(named=True)]


def test_merge_touching_and_overlapping_become_one_island():
    islands = merge_intervals(
        frame([("a", 0, 5), ("a", 5, 8), ("a", 7, 9), ("a", 12, 13), ("b", 1, 2)]), ["k"], start="s", end="e"
    )
    got = islands.sort("k", "s").collect()
    assert got.rows() == [("a", t(0), t(9)), ("a", t(12), t(13)), ("b", t(1), t(2))]


def test_merge_open_end_swallows_later_intervals():
    got = merge_intervals(frame([("a", 0, None), ("a", 3, 4)]), ["k"], start="s", end="e").collect()
    assert got.rows() == [("a", t(0), None)]


CHILD_CASES = {
    # name: (child, parent islands, expected pieces)
    "inside": ((2, 4), [(0, 10)], [(2, 4)]),
    "starts before": ((-2, 4), [(0, 10)], [(0, 4)]),
    "ends after": ((8, 12), [(0, 10)], [(8, 10)]),
    "both": ((-1, 11), [(0, 10)], [(0, 10)]),
    "ends before parent starts": ((-5, -1), [(0, 10)], []),
    "touches parent start only": ((-5, 0), [(0, 10)], []),
    "open child": ((5, None), [(0, 10)], [(5, 10)]),
    "open parent": ((5, 8), [(0, None)], [(5, 8)]),
    "both open": ((5, None), [(0, None)], [(5, None)]),
    "spans a gap between two parent rows": ((2, 14), [(0, 5), (10, 20)], [(2, 5), (10, 14)]),
}


def test_clip_table():
    for name, (child, parents, expected) in CHILD_CASES.items():
        c = frame([("a", *child)])
        p = frame([("a", *x) for x in parents])
        got = clip(c, p, left_on=["k"], right_on=["k"], start="s", end="e").sort("s").collect()
        assert got.select("s", "e").rows() == [(t(s), t(e)) for s, e in expected], name


def test_clip_needs_equal_keys_and_ignores_null_keys():
    c = frame([("a", 0, 5), (None, 0, 5)])
    p = frame([("b", 0, 10), (None, 0, 10)])
    assert clip(c, p, left_on=["k"], right_on=["k"], start="s", end="e").collect().height == 0


def test_claim_later_row_inside_is_absent_partial_is_cut():
    # rows: 1 owns [0,10); 2 (lower priority) lies inside; 3 overlaps 1's end
    lf = pl.LazyFrame(
        {"row": [1, 2, 3], "k": ["h"] * 3, "s": [t(0), t(2), t(8)], "e": [t(10), t(5), t(15)], "p": [0, 1, 2]}
    )
    pieces, conflicts = claim(lf, ["k"], start="s", end="e", priority=["p", "row"], row="row")
    assert pieces.collect().rows() == [(1, t(0), t(10)), (3, t(10), t(15))]
    assert sorted(conflicts.collect().rows()) == [(2, 1), (3, 1)]


def test_claim_earlier_row_in_the_middle_splits_the_later_one():
    lf = pl.LazyFrame({"row": [1, 2], "k": ["h", "h"], "s": [t(4), t(0)], "e": [t(6), None], "p": [0, 1]})
    pieces, _ = claim(lf, ["k"], start="s", end="e", priority=["p"], row="row")
    assert pieces.collect().rows() == [(1, t(4), t(6)), (2, t(0), t(4)), (2, t(6), None)]


def test_claim_same_instant_start_end_is_not_a_conflict():
    lf = pl.LazyFrame({"row": [1, 2], "k": ["h", "h"], "s": [t(0), t(5)], "e": [t(5), t(9)], "p": [1, 0]})
    pieces, conflicts = claim(lf, ["k"], start="s", end="e", priority=["p"], row="row")
    assert pieces.collect().rows() == [(1, t(0), t(5)), (2, t(5), t(9))]
    assert conflicts.collect().height == 0


def test_claim_null_identity_keeps_whole_interval():
    lf = pl.LazyFrame({"row": [1, 2], "k": [None, None], "s": [t(0), t(0)], "e": [t(5), t(5)], "p": [0, 1]})
    pieces, _ = claim(lf, ["k"], start="s", end="e", priority=["p"], row="row")
    assert pieces.collect().rows() == [(1, t(0), t(5)), (2, t(0), t(5))]


def test_overlapping_finds_rows_starting_before_the_group_reach():
    lf = frame([("a", 0, 5), ("a", 5, 7), ("a", 6, 8), ("b", 0, None), ("b", 100, 101)])
    assert overlapping(lf, ["k"], start="s", end="e").collect().select("k", "s").rows() == [("a", t(6)), ("b", t(100))]


# --- brute force on random data: time is a grid of hours 0..20, "open" is 20 -------------------------

intervals = st.lists(
    st.tuples(st.sampled_from("ab"), st.integers(0, 18), st.integers(1, 6), st.booleans()), min_size=1, max_size=12
)


def to_rows(draw):
    return [(k, s, None if is_open else s + d) for k, s, d, is_open in draw]


@settings(max_examples=150, deadline=None)
@given(intervals)
def test_claim_matches_painting_by_priority(draw):
    rows = to_rows(draw)
    lf = pl.LazyFrame(
        {
            "row": list(range(len(rows))),
            "k": [r[0] for r in rows],
            "s": [t(r[1]) for r in rows],
            "e": [t(r[2]) for r in rows],
        },
        schema_overrides={"e": pl.Datetime("us")},
    )
    pieces, _ = claim(lf, ["k"], start="s", end="e", priority=["row"], row="row")
    got = {}
    for row, s, e in pieces.collect().rows():
        hs, he = int((s - T0).total_seconds() // 3600), int(((e or t(30)) - T0).total_seconds() // 3600)
        for h in range(hs, he):
            got.setdefault(row, set()).add(h)
    want, taken = {}, set()
    for i, (k, s, e) in enumerate(rows):  # lower row id = higher priority, paint in order
        mine = {(k, h) for h in range(s, 30 if e is None else e)} - taken
        taken |= mine
        if mine:
            want[i] = {h for _, h in mine}
    assert got == want


@settings(max_examples=150, deadline=None)
@given(intervals)
def test_merge_matches_union_of_hours(draw):
    rows = to_rows(draw)
    lf = frame(rows)
    got = set()
    for k, s, e in merge_intervals(lf, ["k"], start="s", end="e").collect().rows():
        hs, he = int((s - T0).total_seconds() // 3600), int(((e or t(30)) - T0).total_seconds() // 3600)
        got |= {(k, h) for h in range(hs, he)}
    want = {(k, h) for k, s, e in rows for h in range(s, 30 if e is None else e)}
    assert got == want
