"""The shared sweepline stage: validated spans of every entity → usage series, bucket hours, INV-8..10.

Derived metrics are not aligned series subtracted from each other (that needs every series on every
timestamp): each is one more sweep over its base metrics' spans with the formula's signs applied.
"""

import polars as pl

from engine.hierarchy import COUNTED
from engine.invariants import record
from engine.spec.checks import formula_terms
from engine.sweep import bucket_boundaries, clipped, integrate, sweep, weighted_hours

TOLERANCE = 1e-9  # node counts are sums of floats: below this, a negative value is rounding


def expand(metrics: dict) -> dict[str, dict[str, int]]:
    """Each metric as signed base metrics: available_ondemand -> {total: 1, reservable: -1, occupied_ondemand: -1}."""

    def terms(name: str) -> dict[str, int]:
        formula = metrics[name].get("formula")
        if not formula:
            return {name: 1}
        out: dict[str, int] = {}
        for sign, part in formula_terms(formula):
            for base, coef in terms(part).items():
                out[base] = out.get(base, 0) + sign * coef
        return {b: c for b, c in out.items() if c}

    return {name: terms(name) for name in metrics}


def signed_spans(validated: list[tuple[pl.DataFrame, list[str]]], metrics: dict, group: list[str]) -> pl.LazyFrame:
    """Counted spans in long form (one row per resource), once per metric they feed, value signed.

    A derived metric gets a resource only if every base metric in it has that resource.
    """
    fixed = ["metric", *group, "valid_start", "valid_end"]
    frames = []
    for df, resources in validated:
        frames.append(
            df.lazy()
            .filter(pl.col("hierarchy_status").is_in(COUNTED))
            .select(*fixed, *(pl.col(r).cast(pl.Float64).alias(f"__res.{r}") for r in resources))
            .unpivot(index=fixed, variable_name="resource", value_name="value")
            .with_columns(pl.col("resource").str.strip_prefix("__res."))
        )
    base = pl.concat(frames, how="diagonal_relaxed").with_columns(pl.col(group).cast(pl.String).fill_null("null"))
    plan = pl.LazyFrame(
        [(target, b, c) for target, terms in expand(metrics).items() for b, c in terms.items()],
        schema={"target": pl.String, "metric": pl.String, "coef": pl.Int64},
        orient="row",
    )
    have = base.select("metric", "resource").unique()
    need = plan.select("target", "metric").join(have, on="metric", how="left")
    complete = (
        need.group_by("target", "resource")
        .agg(pl.len().alias("n"))
        .join(plan.group_by("target").agg(pl.len().alias("n")), on=["target", "n"])
    )
    return (
        base.join(plan, on="metric", maintain_order="left")
        .join(complete.select("target", "resource"), on=["target", "resource"], maintain_order="left")
        .with_columns((pl.col("value") * pl.col("coef")).alias("value"), pl.col("target").alias("metric"))
        .drop("target", "coef")
    )


def usage_stage(validated, metrics: dict, group: list[str], window, every: list[str]):
    """(usage series, {every: bucket hours with mean level}, invariant records) for the counted spans.

    `validated` is a list of (validated spans, resource columns). Series are swept under an integer id
    (string group keys make every sort and window several times slower) and ordered by their keys.
    """
    by = ["metric", "resource", *group]
    spans = clipped(signed_spans(validated, metrics, group), window, "valid_start", "valid_end").collect()
    keys = spans.select(by).unique().sort(by).with_row_index("__sid")
    ids = spans.lazy().join(keys.lazy(), on=by, how="left", maintain_order="left")
    ids = ids.select("__sid", "valid_start", "valid_end", "value")
    series = sweep(ids, ["__sid"], "valid_start", "valid_end", "value").sort("__sid", maintain_order=True)
    plans = [_buckets(series, ["__sid"], window, e) for e in every]
    expected = weighted_hours(spans.lazy(), ["metric", "resource"], "valid_start", "valid_end", "value")
    series, expected, *tables = pl.collect_all([series, expected, *plans])
    named = lambda df: df.join(keys, on="__sid", how="left", maintain_order="left").drop("__sid")  # noqa: E731
    series, tables = named(series), [named(t) for t in tables]
    return series, dict(zip(every, tables, strict=True)), _checks(series, tables[0], expected, metrics)


def _buckets(series: pl.LazyFrame, by: list[str], window, every: str) -> pl.LazyFrame:
    """Hours per bucket and the mean level (hours / the bucket's length inside the window)."""
    bounds = bucket_boundaries(window, every)
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
        integrate(series, by, "value", bounds)
        .join(length, on="bucket", how="left")
        .with_columns((pl.col("hours") / pl.col("__len")).alias("mean"))
        .drop("__len")
        .sort("bucket", maintain_order=True)  # two stable single-key sorts: by series, then time
        .sort(*by, maintain_order=True)
    )


def _checks(series: pl.DataFrame, buckets: pl.DataFrame, expected: pl.DataFrame, metrics: dict) -> list[dict]:
    derived = [m for m, d in metrics.items() if "formula" in d]
    below = series.filter(pl.col("value") < -TOLERANCE)
    sample = lambda df: df.sort("value").head(5).with_columns(pl.col("timestamp").cast(pl.String)).to_dicts()  # noqa: E731
    inv8 = below.filter(pl.col("metric").is_in(derived))
    inv9 = below.filter(~pl.col("metric").is_in(derived))
    got = buckets.group_by("metric", "resource").agg(pl.col("hours").sum().alias("integral"))
    diff = (
        expected.join(got, on=["metric", "resource"], how="full", coalesce=True)
        .fill_null(0.0)
        .filter(
            (pl.col("hours") - pl.col("integral")).abs() > 1e-6 * pl.max_horizontal(pl.col("hours").abs(), pl.lit(1.0))
        )
    )
    return [
        record("INV-8", None, inv8.height, detail="no derived metric below zero at any instant", sample=sample(inv8)),
        record("INV-9", None, inv9.height, detail="no base series below zero at any instant", sample=sample(inv9)),
        record(
            "INV-10",
            None,
            diff.height,
            detail="per metric and resource: span hours in the window = integral of the series",
            sample=diff.to_dicts()[:5],
        ),  # fmt: skip
    ]
