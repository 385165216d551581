"""Interval math on LazyFrames: pure functions, column names as parameters, no domain.

Intervals are half-open [start, end); a null end is open (still running). Inside these functions an
open end is the far-future instant OPEN, and it is turned back into null on the way out.
"""

from datetime import datetime, timedelta
from zoneinfo import available_timezones

import polars as pl

OPEN = datetime(9999, 12, 31)
# The documented bounds of a time: a start or an end beyond LATEST is no real record (an end there is
# read as open); the default window never starts before EARLIEST.
EARLIEST, LATEST = datetime(1970, 1, 1), datetime(2200, 1, 1)


# Text timestamps, the ISO forms only: with an offset (converted to UTC), then without one (UTC already),
# with or without seconds, or a date. Never a format inferred from the data: Polars' inference reads
# 01/02/2024 day first, and a value's reading would depend on the column's first row.
TEXT_FORMATS = ("%+", "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M", "%Y-%m-%d")


def from_text(expr: pl.Expr) -> pl.Expr:
    """Text as a naive UTC microsecond timestamp, each value by the first ISO form it fits; null if none."""
    forms = (expr.str.to_datetime(f, strict=False, time_unit="us", time_zone="UTC") for f in TEXT_FORMATS)
    return pl.coalesce(*forms).dt.replace_time_zone(None)


def unreadable(text: pl.Expr) -> pl.Expr:
    """True where text is set but is neither an ISO timestamp nor MySQL's zero date (0000-00-00, a null)."""
    return text.is_not_null() & ~text.str.starts_with("0000-00-00") & from_text(text).is_null()


def closed(col: str) -> pl.Expr:
    """The end column with an open end as OPEN."""
    return pl.col(col).fill_null(OPEN)


def reopened(col: str) -> pl.Expr:
    """The end column with OPEN turned back into null."""
    return pl.when(pl.col(col) >= OPEN).then(None).otherwise(pl.col(col)).alias(col)


def hours(start: pl.Expr, end: pl.Expr) -> pl.Expr:
    """Length of [start, end) in hours, 0 when empty or reversed."""
    return ((end - start).dt.total_microseconds() / 3.6e9).clip(lower_bound=0).fill_null(0.0)


def to_local(expr: pl.Expr, tz: str) -> pl.Expr:
    """UTC times (naive, as the engine holds every time) as wall-clock times of the time zone `tz`."""
    if tz == "UTC":
        return expr
    return expr.dt.replace_time_zone("UTC").dt.convert_time_zone(tz).dt.replace_time_zone(None)


def to_utc(expr: pl.Expr, tz: str) -> pl.Expr:
    """Wall-clock times of `tz` as UTC times: a repeated time is its first, and a time the clocks skip is the
    instant they skip to (a local midnight that does not exist starts its day at the jump)."""
    if tz == "UTC":
        return expr

    def utc(local: pl.Expr) -> pl.Expr:
        aware = local.dt.replace_time_zone(tz, ambiguous="earliest", non_existent="null")
        return aware.dt.convert_time_zone("UTC").dt.replace_time_zone(None)

    return pl.coalesce(utc(expr), utc(expr.dt.offset_by("-1h")).dt.offset_by("1h"))


def local_time(t: datetime, tz: str) -> datetime:
    """One UTC time on the clocks of `tz` (to_local for a value)."""
    return pl.select(to_local(pl.lit(t, pl.Datetime("us")), tz)).item()


def utc_time(t: datetime, tz: str) -> datetime:
    """One clock time of `tz` as a UTC time (to_utc for a value)."""
    return pl.select(to_utc(pl.lit(t, pl.Datetime("us")), tz)).item()


def day_start(t: datetime, tz: str, days: int = 0) -> datetime:
    """The UTC time at which the day of `tz` holding the UTC time `t` begins (or the day `days` later)."""
    local = local_time(t, tz)
    return utc_time(datetime(local.year, local.month, local.day) + timedelta(days=days), tz)


def zone_error(name: str) -> str | None:
    """Why `name` is not a time zone the engine takes (an IANA name spelled as the tz database spells it,
    which Polars knows too), or None."""
    zones = available_timezones()
    if name in zones:
        try:
            pl.select(pl.lit(datetime(2000, 1, 1)).dt.replace_time_zone(name))
            return None
        except pl.exceptions.PolarsError:  # in the system's tz database (localtime, Factory), not a zone of Polars
            return f"{name!r} is not a time zone the engine can use (e.g. America/Chicago)"
    shown = name if len(name) <= 64 else name[:61] + "..."
    spelled = [z for z in zones if z.lower() == name.strip().lower()]
    hint = f" (did you mean '{spelled[0]}'?)" if spelled else " (e.g. America/Chicago)"
    return f"{shown!r} is not an IANA time zone name{hint}"


def window_cut(window, start: str, end: str) -> tuple[pl.Expr, pl.Expr]:
    """[start, end) cut to the window (an open end runs to the window end); may come out empty."""
    w0, w1 = (pl.lit(w, pl.Datetime("us")) for w in window)
    return pl.max_horizontal(pl.col(start), w0), pl.min_horizontal(pl.col(end).fill_null(w1), w1)


def hours_in(window, start: str = "valid_start", end: str = "valid_end") -> pl.Expr:
    """Hours of [start, end) inside the window; 0 for a null start."""
    return pl.when(pl.col(start).is_null()).then(0.0).otherwise(hours(*window_cut(window, start, end)))


def merge_intervals(lf: pl.LazyFrame, by: list[str], *, start: str, end: str) -> pl.LazyFrame:
    """Union of the intervals of each group: overlapping or touching intervals become one island."""
    lf = lf.select(*by, start, closed(end)).sort(*by, start)
    return (
        lf.with_columns(runs(by, start=start, end=end, touching=True).alias("__island"))
        .group_by("__island")
        .agg(*(pl.col(c).first() for c in by), pl.col(start).min(), pl.col(end).max())
        .drop("__island")
        .with_columns(reopened(end))
    )


def runs(by: list[str], *, start: str, end: str, touching: bool) -> pl.Expr:
    """On rows sorted by `by` then `start` (ends closed): a run id, new where a row starts a group or
    starts after every earlier row of its group has ended (at or after, unless `touching` joins them).

    One cum_max over (group number, end) packed into an Int128, with no window per group: `over` costs
    per group, and with a million groups of one row it dominated the whole hierarchy stage.
    """
    group = pl.any_horizontal(pl.col(c).ne_missing(pl.col(c).shift(1)) for c in by).fill_null(True).cum_sum()

    def packed(col: str) -> pl.Expr:
        return group.cast(pl.Int128) * 2**64 + pl.col(col).dt.epoch("us").cast(pl.Int128) + 2**63

    reach = packed(end).cum_max().shift(1)
    starts = packed(start) > reach if touching else packed(start) >= reach
    return starts.fill_null(True).cum_sum()


def clip(
    child: pl.LazyFrame, islands: pl.LazyFrame, *, left_on: list[str], right_on: list[str], start: str, end: str
) -> pl.LazyFrame:
    """Each child interval cut to every island with equal keys it overlaps (one row per overlap).

    Children overlapping no island are absent. Island columns other than the keys and times are kept.
    """
    islands = islands.rename({start: "__is", end: "__ie"})
    overlap = (pl.col(start) < closed("__ie")) & (pl.col("__is") < closed(end))
    return (
        child.join(islands, left_on=left_on, right_on=right_on, how="inner")
        .filter(overlap)
        .with_columns(
            pl.max_horizontal(start, "__is").alias(start),
            pl.min_horizontal(closed(end), closed("__ie")).alias(end),
        )
        .with_columns(reopened(end))
        .drop("__is", "__ie")
    )


def claim(
    lf: pl.LazyFrame, by: list[str], *, start: str, end: str, priority: list[str], row: str
) -> tuple[pl.LazyFrame, pl.LazyFrame]:
    """Share time among rows with equal `by`: each instant goes to the covering row first in `priority`.

    Returns (pieces, conflicts): pieces are the merged intervals each row owns (rows owning nothing are
    absent); conflicts give, for each row that lost some time, the `row` of the first row it lost to.
    Rows with a null in `by` are compared with nobody and keep their whole interval. Cost is linear in
    the number of (row, elementary segment) pairs, so long runs of disjoint rows stay cheap.
    """
    rows = lf.select(*dict.fromkeys([row, *by, start, *priority]), closed(end))
    keyed = pl.all_horizontal(pl.col(c).is_not_null() for c in by)
    # Only clusters of overlapping rows need sharing out; a row overlapping nobody keeps its interval.
    rows = (
        rows.filter(keyed)
        .sort(*by, start)
        .with_columns(runs(by, start=start, end=end, touching=False).alias("__c"))
        .collect()  # the one collect here: read four times below, and a plan would sort it four times
        .lazy()
    )
    # Clusters are consecutive rows: a row is alone in its cluster when neither neighbour shares it.
    c = pl.col("__c")
    alone = c.ne_missing(c.shift(1)) & c.ne_missing(c.shift(-1))
    rows = rows.with_columns(alone.alias("__alone"))
    loose = pl.concat(
        [lf.filter(~keyed).select(row, start, closed(end)), rows.filter(pl.col("__alone")).select(row, start, end)]
    )
    rows, by = rows.filter(~pl.col("__alone")).drop("__alone"), [*by, "__c"]
    bounds = (
        pl.concat([rows.select(*by, pl.col(start).alias("__t")), rows.select(*by, pl.col(end).alias("__t"))])
        .unique()
        .sort(*by, "__t")
        .with_columns(pl.int_range(pl.len()).over(by).alias("__k"))
    )
    # Each row's first and last segment index, from one join of its two ends onto the boundaries (two
    # separate joins invite the optimizer to join the boundaries with themselves first: quadratic).
    ends = pl.concat(
        [
            rows.select(row, *by, pl.col(c).alias("__t"), pl.lit(side).alias("__side"))
            for side, c in enumerate((start, end))
        ]
    )
    index = (
        ends.join(bounds, on=[*by, "__t"])
        .group_by(row)
        .agg(
            pl.col("__k").filter(pl.col("__side") == 0).first().alias("__ks"),
            pl.col("__k").filter(pl.col("__side") == 1).first().alias("__ke"),
        )
    )
    cover = rows.join(index, on=row).with_columns(pl.int_ranges("__ks", "__ke").alias("__k")).explode("__k")
    owner = cover.sort(*priority, nulls_last=True).group_by(*by, "__k").agg(pl.col(row).first().alias("__owner"))
    cover = cover.join(owner, on=[*by, "__k"])
    segment_end = bounds.with_columns(pl.col("__k") - 1).rename({"__t": "__next"})
    owned = (
        cover.filter(pl.col(row) == pl.col("__owner"))
        .join(bounds.rename({"__t": "__from"}), on=[*by, "__k"])
        .join(segment_end, on=[*by, "__k"])
        .sort(row, "__k")
        .with_columns((pl.col("__k") != pl.col("__k").shift(1) + 1).fill_null(True).cum_sum().over(row).alias("__p"))
        .group_by(row, "__p")
        .agg(pl.col("__from").min().alias(start), pl.col("__next").max().alias(end))
        .drop("__p")
    )
    pieces = pl.concat([owned, loose]).with_columns(reopened(end)).sort(row, start)
    conflicts = (
        cover.filter(pl.col(row) != pl.col("__owner"))
        .sort(row, "__k")
        .group_by(row)
        .agg(pl.col("__owner").first().alias("covered_by"))
    )
    return pieces, conflicts


def overlapping(lf: pl.LazyFrame, by: list[str], *, start: str, end: str) -> pl.LazyFrame:
    """Rows that start before an earlier-starting row of their group has ended (the group overlaps)."""
    reach = closed(end).cum_max().shift(1).over(by)
    keyed = pl.all_horizontal(pl.col(c).is_not_null() for c in by)
    return lf.filter(keyed).sort(*by, start).filter(pl.col(start) < reach)


def day_hours(lf: pl.LazyFrame, window, *, start: str = "valid_start", end: str = "valid_end", tz: str = "UTC"):
    """Each interval's hours per day of the time zone `tz` inside the window (`date`, `day_hours`), one row
    per day touched."""
    s, e = window_cut(window, start, end)
    day = pl.col("date")
    first, last = (to_local(pl.col(c), tz).dt.truncate("1d") for c in ("__s", "__e"))
    midnight, next_midnight = to_utc(day, tz), to_utc(day.dt.offset_by("1d"), tz)
    return (
        lf.filter(pl.col(start).is_not_null())
        .with_columns(s.alias("__s"), e.alias("__e"))
        .filter(pl.col("__s") < pl.col("__e"))
        .with_columns(pl.datetime_ranges(first, last, "1d").alias("date"))
        .explode("date")
        .with_columns(
            hours(pl.max_horizontal(midnight, "__s"), pl.min_horizontal(next_midnight, "__e")).alias("day_hours")
        )
        .filter(pl.col("day_hours") > 0)
        .with_columns(day.cast(pl.Date))
        .drop("__s", "__e")
    )
