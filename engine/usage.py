"""The shared sweepline stage: validated spans of every entity → usage series, bucket hours, INV-8..10.

Derived metrics are not aligned series subtracted from each other (that needs every series on every
timestamp): each is one more sweep over its base metrics' spans with the formula's signs applied.
"""

import polars as pl

from engine.hierarchy import COUNTED
from engine.invariants import TOLERANCE, usage_checks
from engine.spec.model import expand
from engine.sweep import bucket_boundaries, clipped, integrate, sweep, weighted_hours
from engine.temporal import to_local


def signed_spans(
    validated: list[tuple[pl.DataFrame, list[str]]], metrics: dict, group: list[str], *, window, declared: dict
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(counted spans cut to the window, one row per series they feed with the value signed; the series).

    Spans carry an integer series id `__sid` instead of their metric, resource and group values, which
    are read once per span (not once per series fed) and kept in the small series table. A derived
    metric gets a resource only if every base metric in it has that resource: `declared`, base metric ->
    the resources its entities that ran declare, whether or not they have spans in the window (idle is
    committed less occupied_reservation, and committed alone when no instance ran).
    """
    fixed = ["metric", *group]
    counted = [
        (
            df.lazy()
            .filter(pl.col("hierarchy_status").is_in(COUNTED))
            .with_columns(pl.col(group).cast(pl.String).fill_null("null")),
            resources,
        )
        for df, resources in validated
    ]
    names = pl.concat([lf.select(fixed).unique() for lf, _ in counted]).unique().sort(fixed)
    names = names.with_row_index("__gid").collect()
    all_resources = list(dict.fromkeys(r for _, rs in counted for r in rs))
    base = clipped(
        pl.concat(
            [
                lf.join(names.lazy(), on=fixed, how="left", maintain_order="left").select(
                    "__gid",
                    pl.lit(all_resources.index(r), dtype=pl.UInt32).alias("__r"),
                    "valid_start",
                    "valid_end",
                    pl.col(r).cast(pl.Float64).alias("value"),
                )
                for lf, resources in counted
                for r in resources
            ]
        ),
        window,
        start="valid_start",
        end="valid_end",
    ).collect()
    plan = pl.DataFrame(
        [(target, b, c) for target, terms in expand(metrics).items() for b, c in terms.items()],
        schema={"target": pl.String, "metric": pl.String, "coef": pl.Int64},
        orient="row",
    )
    resource_names = pl.DataFrame({"__r": range(len(all_resources)), "resource": all_resources}).cast(
        {"__r": pl.UInt32}
    )
    have = base.select("__gid", "__r").unique().join(names, on="__gid").join(resource_names, on="__r")
    pairs = [(m, r) for m, resources in declared.items() for r in resources]
    present = pl.DataFrame(pairs, schema={"metric": pl.String, "resource": pl.String}, orient="row").unique()
    complete = (
        plan.join(present, on="metric")
        .group_by("target", "resource")
        .agg(pl.len().alias("n"))
        .join(plan.group_by("target").agg(pl.len().alias("n")), on=["target", "n"])
        .select("target", "resource")
    )
    feeds = have.join(plan, on="metric").join(complete, on=["target", "resource"])
    series = (
        feeds.select(pl.col("target").alias("metric"), "resource", *group).unique().sort("metric", "resource", *group)
    )
    series = series.with_row_index("__sid")
    feeds = feeds.join(series, left_on=["target", "resource", *group], right_on=["metric", "resource", *group])
    spans = base.join(feeds.select("__gid", "__r", "__sid", "coef"), on=["__gid", "__r"], maintain_order="left")
    spans = spans.select("__sid", "valid_start", "valid_end", (pl.col("value") * pl.col("coef")).alias("value"))
    return spans, series


def usage_stage(validated, metrics, group: list[str], *, window, every: list[str], declared: dict, tz: str = "UTC"):
    """(usage series as a plan, {every: bucket hours with mean level}, invariant records) for the counted spans.

    `validated` is a list of (validated spans, resource columns), `declared` as for signed_spans. Series are swept under an integer id
    (string group keys make every sort and window several times slower) and ordered by their keys.
    They are swept a batch of series at a time (`per_batch`), so that the deltas and their sort are held
    for one batch, not for all: the whole sweep of a decade-long site is several GB more at its peak.
    """
    spans, keys = signed_spans(validated, metrics.metrics, group, window=window, declared=declared)
    series, expected, below, *tables = per_batch(spans, lambda part: _swept(part, window, every=every, tz=tz))

    def named(lf: pl.LazyFrame) -> pl.LazyFrame:
        return lf.join(keys.lazy(), on="__sid", how="left", maintain_order="left").drop("__sid")

    expected = named(expected.lazy()).group_by("metric", "resource").agg(pl.col("hours", "scale").sum()).collect()
    tables = [named(t.lazy()).collect() for t in tables]
    checks = usage_checks(named(below.lazy()).collect(), tables[0], expected, metrics=metrics)
    series = named(series.lazy())  # left a plan: named, the series are GB on a decade-long site; callers stream
    return series, dict(zip(every, tables, strict=True)), checks


BATCH_SPANS = 4_000_000  # signed spans swept at once: about 1 GB of deltas and their sort


def per_batch(spans: pl.DataFrame, work) -> list[pl.DataFrame]:
    """`work(spans of a batch of whole series)` -> frames ordered by series id, for each batch in order, each
    of its frames concatenated over the batches: what `work` would give for all the spans at once."""
    parts = [work(spans.filter(pl.col("__sid").is_between(lo, hi))) for lo, hi in batches(spans, size=BATCH_SPANS)]
    return [pl.concat(frames, rechunk=False) for frames in zip(*parts, strict=True)]


def batches(spans: pl.DataFrame, *, size: int) -> list[tuple[int, int]]:
    """Ranges (first, last) of series ids, in order, each of whole series with about `size` spans in all (a
    series with more is a batch of its own); one range for a small site, or for no spans at all."""
    counts = spans.group_by("__sid").len().sort("__sid")
    first = counts.with_columns(batch=(pl.col("len").cum_sum() - pl.col("len")) // size)
    ranges = first.group_by("batch", maintain_order=True).agg(lo=pl.col("__sid").min(), hi=pl.col("__sid").max())
    return ranges.select("lo", "hi").rows() or [(0, 0)]


def _swept(spans: pl.DataFrame, window, *, every: list[str], tz: str) -> list[pl.DataFrame]:
    """The series of these spans, what their integral must equal, their levels below zero and their buckets
    per `every`. The sweep is collected first and the rest computed from it: one plan sharing a lazy
    sub-plan between several outputs has deadlocked Polars' executor."""
    series = sweep(spans.lazy(), ["__sid"], start="valid_start", end="valid_end", value="value").collect()
    plans = [buckets(series.lazy(), ["__sid"], window, every=e, tz=tz) for e in every]
    expected = weighted_hours(spans.lazy(), ["__sid"], start="valid_start", end="valid_end", value="value")
    # A value below zero by less than rounding (relative to the series' largest level) is no violation.
    scale = pl.max_horizontal(pl.lit(1.0), pl.col("value").abs().max().over("__sid"))
    below = series.lazy().filter(pl.col("value") < -TOLERANCE * scale)
    done = pl.collect_all([expected, below, *plans], optimizations=pl.QueryOptFlags(comm_subplan_elim=False))
    return [series, *done]


def buckets(series: pl.LazyFrame, by: list[str], window, *, every: str, tz: str) -> pl.LazyFrame:
    """Hours per bucket and the mean level (hours / the bucket's length inside the window); each bucket is
    named by its start on the clocks of the time zone `tz`."""
    bounds = bucket_boundaries(window, every, tz)
    w0, w1 = window
    length = pl.LazyFrame(
        {
            "bucket": bounds[:-1],
            "__len": [
                (min(b, w1) - max(a, w0)).total_seconds() / 3600 for a, b in zip(bounds, bounds[1:], strict=False)
            ],
        }
    ).cast({"bucket": pl.Datetime("us")})
    return (
        integrate(series, by, "value", boundaries=bounds)
        .join(length, on="bucket", how="left")
        .with_columns((pl.col("hours") / pl.col("__len")).alias("mean"), to_local(pl.col("bucket"), tz))
        .drop("__len")
        .sort("bucket", maintain_order=True)  # two stable single-key sorts: by series, then time
        .sort(*by, maintain_order=True)
    )
