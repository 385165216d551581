"""Who used it: the daily hours of some metrics split by more group columns (a project, a user), and charges,
a metric's hours times a factor per node (service units).

Both take the counted spans of the entities that provide the columns, signed per series as the usage stage
signs them (usage.py), and sum each span's exact hours per local day: a breakdown has a series per project
or user, most of them active on few days, so the days a span touches are the only cells it costs (a sweep
would integrate every series over every day). Summed over the extra columns they are what the sweep says:
daily.parquet for a breakdown (INV-14), the sweep of the charged spans by group alone for the charges (INV-15).
"""

from datetime import datetime

import polars as pl

from engine.io.output import CHARGED
from engine.spec.model import expand
from engine.sweep import cell_sums, sweep
from engine.temporal import day_hours
from engine.usage import buckets, per_batch, signed_spans

BREAKDOWN_KEYS = ["date", "site", "metric", "resource"]
MAX_FACTOR = 1e6  # service units per node-hour: the largest factor taken from the data (the schema's bound too)
NOISE = 1e-9  # hours: a cell of opposite terms that cancel (idle = committed - occupied) keeps their rounding


def split_daily(counted: list, metrics: dict, *, group: list[str], window, tz: str, declared: dict, swept=False):
    """Exact hours per local day, metric, resource and group of these (validated spans, resources) pairs:
    date, the group columns, metric, resource, hours. Each span's hours per day it touches, summed; or, with
    `swept`, the sweep and its integral over every day (usage.py's way: the check of the other). `declared`
    as for signed_spans."""
    spans, keys = signed_spans(counted, metrics, group, window=window, declared=declared)

    def cells(part: pl.DataFrame) -> list[pl.DataFrame]:
        if swept:
            series = sweep(part.lazy(), ["__sid"], start="valid_start", end="valid_end", value="value").collect()
            daily = buckets(series.lazy(), ["__sid"], window, every="1d", tz=tz).rename({"bucket": "date"})
            return [daily.drop("mean").collect()]
        span_days = day_hours(part.lazy(), window, tz=tz)
        parts = span_days.select("__sid", "date", hours=pl.col("value") * pl.col("day_hours"))
        return [cell_sums(parts, sid="__sid", date="date", value="hours").collect()]

    (daily,) = per_batch(spans, cells)
    named = daily.join(keys, on="__sid", how="left", maintain_order="left").drop("__sid")
    return named.with_columns(pl.col("date").cast(pl.Date))


def broken_down(metrics, feeds: dict[str, list], cols: tuple[str, ...]) -> list[str]:
    """The metrics a breakdown by `cols` applies to: a base metric whose every feeding entity has the
    columns, a derived one whose base metrics all are. `feeds`: base metric -> its (spans, resources)."""
    base = [m for m, pairs in feeds.items() if pairs and all(set(cols) <= set(df.columns) for df, _ in pairs)]
    return [m for m, terms in expand(metrics.metrics).items() if terms and set(terms) <= set(base)]


def breakdown(metrics, feeds: dict[str, list], split, *, group: list[str], window, tz: str):
    """daily_by_<name>: date, site, metric, resource, the group and breakdown columns, hours (the cells with
    hours only) of the breakdown `split` (by, resources); None when no metric has the columns on this site."""
    names = broken_down(metrics, feeds, split.by)
    if not names:
        return None
    wanted = split.resources
    counted = {
        m: [(df, [r for r in resources if wanted is None or r in wanted]) for df, resources in pairs]
        for m, pairs in feeds.items()
        if m in names
    }
    declared = {m: {r for _, resources in pairs for r in resources} for m, pairs in counted.items()}
    chosen = {m: metrics.metrics[m] for m in names}
    spans = [pair for pairs in counted.values() for pair in pairs]
    table = split_daily(spans, chosen, group=[*group, *split.by], window=window, tz=tz, declared=declared)
    return table.filter(pl.col("hours").abs() > NOISE).select(*BREAKDOWN_KEYS, *group[1:], *split.by, "hours")


def factor(charges, columns: list[str]) -> pl.Expr:
    """Each node's factor: the data's where it records a usable one (a number from 0 to MAX_FACTOR: no text,
    negative, infinite or absurd value makes SUs), else the fallback by its column's value."""
    fallback = charges.fallback
    default = pl.lit(float(fallback.default))
    if fallback.column in columns:
        by_value = pl.col(fallback.column).cast(pl.String)
        default = by_value.replace_strict(fallback.values, default=default, return_dtype=pl.Float64)
    if charges.factor not in columns:
        return default
    recorded = pl.col(charges.factor).cast(pl.Float64, strict=False)
    usable = recorded.is_finite() & recorded.is_between(0, MAX_FACTOR)
    return pl.when(usable).then(recorded).otherwise(default)


def charged_spans(charges, frames: list[pl.DataFrame]) -> list[tuple[pl.DataFrame, list[str]]]:
    """The spans of the charged metric with `su` = the resource x the node's factor, as the one resource; a
    `by` column an entity does not provide is null (charged to no one known)."""
    su = pl.col(charges.resource).cast(pl.Float64)
    return [
        (
            df.with_columns(
                (su * factor(charges, df.columns)).alias("su"),
                *(pl.lit(None, pl.String).alias(c) for c in charges.by if c not in df.columns),
            ),
            ["su"],
        )
        for df in frames
        if charges.resource in df.columns
    ]


def charge_table(charges, metrics, frames: list[pl.DataFrame], *, group: list[str], window, as_of: datetime | None, tz):
    """charges.parquet: date, site, the group and `by` columns, su (consumed) and encumbered_su (booked for
    after the as-of time: what a projected run's commitments will cost), the cells with SUs only; None when
    nothing is charged."""
    spans = charged_spans(charges, frames)
    if not spans:
        return None
    keys = ["date", *group, *charges.by]
    chosen = {charges.metric: metrics.metrics[charges.metric]}
    w0, w1 = window
    cut = min(max(as_of, w0), w1) if as_of is not None else w1
    parts = dict(zip(CHARGED, ((w0, cut), (cut, w1)), strict=True))
    tables = [
        split_daily(
            spans, chosen, group=[*group, *charges.by], window=part, tz=tz, declared={charges.metric: {"su"}}
        ).select(*keys, pl.col("hours").alias(name))
        for name, part in parts.items()
        if part[0] < part[1]
    ]
    table = tables[0]
    for other in tables[1:]:
        table = table.join(other, on=keys, how="full", coalesce=True, nulls_equal=True)
    table = table.with_columns(pl.lit(0.0).alias(n) for n in parts if n not in table.columns)
    table = table.with_columns(pl.col(*parts).fill_null(0.0)).filter(pl.any_horizontal(pl.col(*parts).abs() > NOISE))
    return table.select(*keys, *parts).sort(keys, nulls_last=True)


def swept_charges(charges, metrics, frames: list[pl.DataFrame], *, group: list[str], window, tz) -> pl.DataFrame:
    """The charged spans' SUs per day and group (no `by` columns: a few series) by the sweep: what the
    charges must add up to (INV-15)."""
    chosen = {charges.metric: metrics.metrics[charges.metric]}
    spans, declared = charged_spans(charges, frames), {charges.metric: {"su"}}
    table = split_daily(spans, chosen, group=group, window=window, tz=tz, declared=declared, swept=True)
    return table.select("date", *group, "hours")
