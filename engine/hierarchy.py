"""Temporal hierarchy: a child span counts only while its parent counts (INV-4, INV-5, INV-6).

The parent's validated, counted spans are merged into islands per key and inherited attributes, so a
child spanning two consecutive parent rows stays whole, and a clamp of the parent propagates down.
"""

import polars as pl

from engine.temporal import claim, clip, closed, merge_intervals

COUNTED = ("root", "direct", "clamped")


def parent_keys(spec, parent: pl.DataFrame) -> pl.LazyFrame:
    """Key tuples of the parent's accepted rows, named as the child's attributes (a miss is missing_fk)."""
    return parent.lazy().select(pl.col(theirs).alias(mine) for mine, theirs in spec.parent.on.items()).unique()


def parent_islands(spec, parent: pl.DataFrame) -> pl.LazyFrame:
    """Union of the parent's counted time per child key and inherited attributes."""
    on, inherit = spec.parent.on, list(spec.inherit)
    counted = parent.lazy().filter(pl.col("hierarchy_status").is_in(COUNTED))
    counted = counted.select(*(pl.col(t).alias(m) for m, t in on.items()), *inherit, "valid_start", "valid_end")
    return merge_intervals(counted, [*on, *inherit], start="valid_start", end="valid_end")


def validate(spans: pl.DataFrame, spec, parent: pl.DataFrame | None) -> tuple[pl.DataFrame, int]:
    """Each span piece cut to its parent's counted time: direct, clamped (original times kept) or orphan; and
    how many pieces met, at one time, parent rows of different inherited values (each instant then inherits
    from the earliest: a `parent.on` short of the parent's key, silently wrong without a word)."""
    if parent is None:
        return spans.with_columns(pl.lit("root").alias("hierarchy_status")), 0
    keys, inherit = list(spec.parent.on), list(spec.inherit)
    child = spans.lazy().with_columns(pl.int_range(pl.len()).alias("__piece"))
    cut = clip(
        child.select("__piece", *keys, "valid_start", "valid_end"),
        parent_islands(spec, parent),
        left_on=keys,
        right_on=keys,
        start="valid_start",
        end="valid_end",
    )
    # Materialised once: the cuts are numbered, then read twice below (as a lazy plan, the optimiser
    # re-evaluated and re-ordered it, several times slower, and a join's row order is not stable).
    cut = cut.sort("__piece", "valid_start", *inherit, nulls_last=True).with_row_index("__cut").collect()
    # Islands with different inherited values could overlap; one piece of time per child instant, always.
    # Only pieces cut more than once can overlap themselves (few: skip the rest, claim is per group).
    several = pl.len().over("__piece") > 1
    owned, _ = claim(
        cut.lazy().filter(several),
        ["__piece"],
        start="valid_start",
        end="valid_end",
        priority=["valid_start", "__cut"],
        row="__cut",
    )
    length = closed("valid_end") - pl.col("valid_start")
    ambiguous = _overlapped(cut.lazy().filter(several), owned, length)
    owned = pl.concat([cut.lazy().filter(~several).select("__cut", "valid_start", "valid_end"), owned])
    cut = cut.lazy().drop("valid_start", "valid_end", *keys).join(owned, on="__cut")
    kept = cut.group_by("__piece").agg(length.sum().alias("__kept"))
    pre = child.rename({"valid_start": "__s0", "valid_end": "__e0"})
    full = closed("__e0") - pl.col("__s0")
    status = pl.when(pl.col("__kept") == full).then(pl.lit("direct")).otherwise(pl.lit("clamped"))
    # Clamped here first (no duplicate cut before): the pre-clip times are the raw times to keep (INV-6).
    fresh = (pl.col("hierarchy_status") == "clamped") & pl.col("original_start").is_null()
    counted = (
        pre.join(kept, on="__piece")
        .with_columns(status.alias("hierarchy_status"))
        .join(cut.select("__piece", *inherit, "valid_start", "valid_end"), on="__piece")
        .with_columns(
            pl.when(fresh).then("__s0").otherwise("original_start").alias("original_start"),
            pl.when(fresh).then("__e0").otherwise("original_end").alias("original_end"),
        )
    )
    orphans = pre.join(kept, on="__piece", how="anti").with_columns(
        pl.col("__s0").alias("valid_start"),
        pl.col("__e0").alias("valid_end"),
        pl.lit("orphan").alias("hierarchy_status"),
    )
    out = pl.concat([counted, orphans], how="diagonal_relaxed").drop("__s0", "__e0", "__kept", "__piece")
    return out.sort("__row", "valid_start").collect(), ambiguous


def _overlapped(cuts: pl.LazyFrame, owned: pl.LazyFrame, length: pl.Expr) -> int:
    """Pieces whose cuts overlapped (the claim kept less time than they held): islands of one key and the same
    inherited values are merged, so an overlap is of different values."""
    held = cuts.group_by("__piece").agg(length.sum().alias("__held"))
    kept = owned.join(cuts.select("__cut", "__piece"), on="__cut").group_by("__piece").agg(length.sum().alias("__kept"))
    return (
        held.join(kept, on="__piece", how="left")
        .filter(pl.col("__kept") < pl.col("__held"))
        .select(pl.len())
        .collect()
        .item()
    )


def outside_parent(validated: pl.DataFrame, spec, parent: pl.DataFrame) -> pl.DataFrame:
    """INV-4 check: counted child pieces not wholly inside one island of their parent."""
    keys = list(spec.parent.on)
    pieces = validated.lazy().filter(pl.col("hierarchy_status").is_in(COUNTED)).with_row_index("__i")
    islands = parent_islands(spec, parent).rename({"valid_start": "__ps", "valid_end": "__pe"})
    inside = pieces.join(islands, on=keys).filter(
        (pl.col("__ps") <= pl.col("valid_start")) & (closed("valid_end") <= closed("__pe"))
    )
    return pieces.join(inside.select("__i").unique(), on="__i", how="anti").drop("__i").collect()
