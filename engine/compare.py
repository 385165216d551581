"""Legacy comparison: the older report (metrics.yaml `legacy`) against our daily node-hours, day by day.

Each flagged day is explained where the audit can: the hours of that day's rejected, orphaned and
clamped rows of the entities feeding the metric are what our number leaves out and theirs may count.
"""

import polars as pl

from engine.hierarchy import COUNTED
from engine.temporal import day_hours, to_local, to_utc


def _total(col: str) -> pl.Expr:
    """A group's sum, the same bits on every run: a hash group-by adds a group's partial sums in any order, a
    running sum of its values in sorted order does not depend on it (Polars drops a sort before `sum()`, whose
    order it takes not to matter). Nulls count as 0, as in `sum()`."""
    return pl.col(col).sort().cum_sum().last().fill_null(0.0)


def audit_daily(results: dict, window, groups: list[str], *, tz: str = "UTC") -> pl.DataFrame:
    """Node-hours per (date, metric, groups) that the engine did not count, by entity and cause.

    A row rejected before it got a group value (one inherited from its parent) has it null.
    """
    frames = []
    for name, res in results.items():

        def grouped(df: pl.DataFrame) -> pl.LazyFrame:
            return df.lazy().with_columns(pl.lit(None, pl.String).alias(g) for g in groups if g not in df.columns)

        rejected = grouped(pl.concat([res.spans.rejected, res.spans.inactive], how="diagonal_relaxed"))
        rejected = rejected.with_columns(pl.col("rejection_reason").alias("cause"))
        validated = grouped(res.validated)
        orphans = validated.filter(pl.col("hierarchy_status") == "orphan").with_columns(pl.lit("orphan").alias("cause"))
        cut = validated.filter(pl.col("original_start").is_not_null())
        raw = day_hours(
            cut.unique("entity_id", keep="first"), window, start="original_start", end="original_end", tz=tz
        )
        kept = day_hours(cut.filter(pl.col("hierarchy_status").is_in(COUNTED)), window, tz=tz)
        lost = raw.join(
            kept.group_by("entity_id", "date").agg(_total("day_hours").alias("__k")),
            on=["entity_id", "date"],
            how="left",
        )
        lost = lost.with_columns(
            (pl.col("day_hours") - pl.col("__k").fill_null(0.0)).alias("day_hours"), pl.lit("clamped").alias("cause")
        )
        for part in (day_hours(rejected, window, tz=tz), day_hours(orphans, window, tz=tz), lost):
            frames.append(
                part.select(
                    "date",
                    pl.lit(res.spec.metric).alias("metric"),
                    *groups,
                    pl.lit(name).alias("entity"),
                    "cause",
                    "entity_id",
                    "day_hours",
                )
            )
    audit = pl.concat(frames).filter(pl.col("day_hours") > 1e-9)
    return (
        audit.group_by("date", "metric", *groups, "entity", "cause")
        .agg(pl.col("entity_id").n_unique().alias("rows"), _total("day_hours").alias("hours"))
        .collect()
    )


def _relative(diff: pl.Expr, legacy: pl.Expr) -> pl.Expr:
    """The difference relative to the legacy value: 0 where both are 0, null where only the legacy one is (a
    division gave NaN and inf, printed as "nan%" in the report)."""
    return pl.when(legacy != 0).then(diff / legacy.abs()).when(diff == 0).then(0.0)


def compare(legacy, table: pl.LazyFrame, expr, *, daily: pl.DataFrame, audit: pl.DataFrame, window, as_of, tz):
    """comparison rows: date, site, the group columns, metric, engine_hours, legacy_hours, diff_hours, rel_diff, flagged,
    explained_hours, explanation; and how many (date, group) cells of the legacy table hold several rows (their
    hours are summed: a table loaded twice doubles every figure). `expr(field=…, text=…)` compiles a spec
    expression against the legacy table.

    The legacy report records what happened: a projected run (as_of) is compared on the days that ended by
    its as-of time only (a later day holds bookings not yet made at T)."""
    groups = legacy.group_by
    theirs = table.select(
        expr(field="date", text=f"CAST(({legacy.date}) AS date)").alias("date"),  # text read as ISO, as CAST does
        *(expr(field=f"group_by.{g}", text=e).cast(pl.String).alias(g) for g, e in groups.items()),
        *(expr(field=f"metrics.{m}", text=e).cast(pl.Float64).alias(m) for m, e in legacy.metrics.items()),
    )
    # One pass over the legacy rows: the days they cover, and the cells held by several rows.
    cells = theirs.group_by("date", *groups).len()
    first, last, repeated = (
        cells.select(pl.col("date").min().alias("a"), pl.col("date").max().alias("b"), (pl.col("len") > 1).sum())
        .collect()
        .row(0)
    )
    theirs = theirs.unpivot(index=["date", *groups], variable_name="metric", value_name="legacy_hours")
    theirs = theirs.group_by("date", *groups, "metric").agg(_total("legacy_hours"))
    ours = daily.lazy().filter((pl.col("resource") == "nodes") & pl.col("metric").is_in(list(legacy.metrics)))
    ours = ours.group_by("date", "site", *groups, "metric").agg(_total("hours").alias("engine_hours"))
    tol = legacy.tolerance
    diff = pl.col("engine_hours") - pl.col("legacy_hours")
    big = pl.max_horizontal(pl.col("engine_hours").abs(), pl.col("legacy_hours").abs())
    # Compare the days both cover: the window, and the legacy report's first to last day.
    w0, w1 = (to_local(pl.lit(w, pl.Datetime("us")), tz).cast(pl.Date) for w in window)
    covered = pl.col("date").is_between(w0, w1, closed="left") & pl.col("date").is_between(pl.lit(first), pl.lit(last))
    if as_of is not None:
        day_end = to_utc(pl.col("date").cast(pl.Datetime("us")).dt.offset_by("1d"), tz)
        covered &= day_end <= pl.lit(as_of, pl.Datetime("us"))
    both = (
        ours.join(theirs, on=["date", *groups, "metric"], how="full", coalesce=True)
        .filter(covered)
        .with_columns(
            pl.col("engine_hours", "legacy_hours").fill_null(0.0),
            pl.col("site").fill_null(pl.col("site").drop_nulls().first()),
        )
        .with_columns(diff.alias("diff_hours"), _relative(diff, pl.col("legacy_hours")).alias("rel_diff"))
        .with_columns(
            ((pl.col("diff_hours").abs() > tol["hours"]) & (pl.col("diff_hours").abs() > tol["relative"] * big)).alias(
                "flagged"
            )
        )
    )
    # A cause whose rows have no group value (rejected before inheriting one) may explain any group.
    text = pl.format("{} {}: {} rows, {} h", "entity", "cause", "rows", pl.col("hours").round(1))
    loose = pl.any_horizontal(pl.col(g).is_null() for g in groups) if groups else pl.lit(False)
    causes = audit.lazy().with_columns(pl.when(loose).then(text + " (group unknown)").otherwise(text).alias("text"))
    keys = ["date", *groups, "metric"]
    why = [
        part.group_by(on).agg(_total("hours").alias(f"__h{i}"), pl.col("text").sort().str.join("; ").alias(f"__t{i}"))
        for i, (part, on) in enumerate(((causes.filter(~loose), keys), (causes.filter(loose), ["date", "metric"])))
    ]
    out = both.join(why[0], on=keys, how="left").join(why[1], on=["date", "metric"], how="left")
    out = out.with_columns(
        (pl.col("__h0").fill_null(0.0) + pl.col("__h1").fill_null(0.0)).alias("explained_hours"),
        pl.concat_str(pl.col("__t0"), pl.col("__t1"), separator="; ", ignore_nulls=True).alias("explanation"),
    ).drop("__h0", "__h1", "__t0", "__t1")
    return out.sort("date", *groups, "metric").collect(), repeated
