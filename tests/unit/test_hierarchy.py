"""Hierarchy validation on hand-made parents and children, and properties on random ones."""

from datetime import datetime, timedelta
from types import SimpleNamespace

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.hierarchy import COUNTED, outside_parent, validate
from engine.spec.model import Parent
from engine.temporal import overlapping

T0 = datetime(2024, 1, 1)
SPEC = SimpleNamespace(parent=Parent(entity="p", on={"host": "name"}), inherit=("kind",))


def t(h):
    return None if h is None else T0 + timedelta(hours=h)


def parents(rows):
    """rows: (name, kind, start, end) -> a validated parent frame."""
    return pl.DataFrame(
        {
            "name": [r[0] for r in rows],
            "kind": [r[1] for r in rows],
            "valid_start": [t(r[2]) for r in rows],
            "valid_end": [t(r[3]) for r in rows],
            "hierarchy_status": ["root"] * len(rows),
        },
        schema_overrides={
            "valid_end": pl.Datetime("us"),
            "valid_start": pl.Datetime("us"),
            "name": pl.String,
            "kind": pl.String,
            "hierarchy_status": pl.String,
        },
    )


def children(rows):
    """rows: (host, start, end) -> spans as the span stage hands them over."""
    n = len(rows)
    return pl.DataFrame(
        {
            "__row": list(range(n)),
            "entity_id": [str(i) for i in range(n)],
            "host": [r[0] for r in rows],
            "valid_start": [t(r[1]) for r in rows],
            "valid_end": [t(r[2]) for r in rows],
            "original_start": [None] * n,
            "original_end": [None] * n,
        },
        schema_overrides={"host": pl.String, "entity_id": pl.String, "__row": pl.Int64}
        | {k: pl.Datetime("us") for k in ("valid_start", "valid_end", "original_start", "original_end")},
    )


def test_overlapping_duplicate_parents_count_the_child_once():
    out = validate(children([("a", 2, 12)]), SPEC, parents([("a", "x", 0, 10), ("a", "x", 5, 15)]))[0]
    assert out.select("valid_start", "valid_end", "hierarchy_status").rows() == [(t(2), t(12), "direct")]


def test_consecutive_parent_rows_split_the_child_by_inherited_value_without_clamping():
    out = validate(children([("a", 2, 8)]), SPEC, parents([("a", "x", 0, 5), ("a", "y", 5, 10)]))[0]
    assert out.select("valid_start", "valid_end", "kind", "hierarchy_status").rows() == [
        (t(2), t(5), "x", "direct"),
        (t(5), t(8), "y", "direct"),
    ]


def test_gap_in_parent_clamps_and_keeps_original_times():
    out = validate(children([("a", 2, None)]), SPEC, parents([("a", "x", 0, 5), ("a", "x", 7, None)]))[0]
    assert out.select("valid_start", "valid_end", "original_start", "original_end", "hierarchy_status").rows() == [
        (t(2), t(5), t(2), None, "clamped"),
        (t(7), None, t(2), None, "clamped"),
    ]


def test_orphan_keeps_its_times_and_gets_no_original():
    out = validate(children([("a", 20, 30)]), SPEC, parents([("a", "x", 0, 10)]))[0]
    assert out.select("valid_start", "valid_end", "original_start", "kind", "hierarchy_status").rows() == [
        (t(20), t(30), None, None, "orphan")
    ]


def test_parents_that_do_not_count_do_not_hold_children():
    p = parents([("a", "x", 0, 10)]).with_columns(pl.lit("orphan").alias("hierarchy_status"))
    assert validate(children([("a", 2, 4)]), SPEC, p)[0]["hierarchy_status"].to_list() == ["orphan"]


spans = st.lists(st.tuples(st.sampled_from("ab"), st.integers(0, 40), st.integers(1, 15), st.booleans()), max_size=8)


def hours_of(df):
    end = pl.col("valid_end").fill_null(t(60))
    return df.select(((end - pl.col("valid_start")).dt.total_seconds() / 3600).sum()).item() or 0.0


@settings(max_examples=150, deadline=None)
@given(spans, spans)
def test_properties_on_random_spans(parent_draw, child_draw):
    p = parents([(k, "x" if s % 2 else "y", s, None if o else s + d) for k, s, d, o in parent_draw])
    c = children([(k, s, None if o else s + d) for k, s, d, o in child_draw])
    out, ambiguous = validate(c, SPEC, p)
    counted = out.filter(pl.col("hierarchy_status").is_in(COUNTED))
    assert set(out["__row"]) == set(c["__row"])  # INV-3: every child row is still there
    assert outside_parent(out, SPEC, p).height == 0  # INV-4
    assert overlapping(counted.lazy(), ["__row"], start="valid_start", end="valid_end").collect().height == 0
    assert hours_of(counted) + hours_of(out.filter(pl.col("hierarchy_status") == "orphan")) <= hours_of(c) + 1e-9
    clamped = out.filter(pl.col("hierarchy_status") == "clamped")
    assert clamped["original_start"].null_count() == 0  # INV-6
    assert ambiguous == sum(meets_two_kinds(k, s, None if o else s + d, parent_draw) for k, s, d, o in child_draw)


def meets_two_kinds(key, start, end, parent_draw) -> bool:
    """Brute force: some half hour of the child lies in parents of its key of both kinds (every end is whole)."""
    covering = [(s, None if o else s + d, "x" if s % 2 else "y") for k, s, d, o in parent_draw if k == key]
    for h in range(start, 60 if end is None else end):
        kinds = {kind for s, e, kind in covering if s <= h + 0.5 and (e is None or h + 0.5 < e)}
        if len(kinds) > 1:
            return True
    return False


def test_a_child_meeting_parents_of_two_values_at_once_is_counted_as_ambiguous():
    """`parent.on: {reservation_id}` for a reservation of two node types: instants of either, silently."""
    both = parents([("a", "x", 0, 10), ("a", "y", 0, 10)])
    out, ambiguous = validate(children([("a", 2, 8), ("b", 2, 8)]), SPEC, both)
    assert ambiguous == 1 and out["kind"].to_list() == ["x", None]
    assert validate(children([("a", 2, 8)]), SPEC, parents([("a", "x", 0, 5), ("a", "y", 5, 10)]))[1] == 0
