"""Row and hour accounts of a run for the manifest: where every input row and every input hour went."""

import polars as pl

from engine.hierarchy import COUNTED
from engine.temporal import hours_in


def entity_account(spec, spans, validated: pl.DataFrame, *, window) -> dict:
    """One entity's rows (read, out of scope, accepted, rejected, inactive) and hours in the window (input =
    counted + clamped away + orphaned + rejected + inactive)."""
    status = validated["hierarchy_status"]
    counted = validated.filter(status.is_in(COUNTED))
    input_h, rejected_h, inactive_h = (_hours(df, window) for df in (spans.raw_times, spans.rejected, spans.inactive))
    spans_h, counted_h = _hours(spans.accepted, window), _hours(counted, window)
    orphan_h = _hours(validated.filter(status == "orphan"), window)
    accepted_h = input_h - rejected_h - inactive_h
    nodes = pl.col("nodes") if "nodes" in counted.columns else pl.lit(1.0)  # node-hours: a KVM slot is a share
    return {
        "status": "ok",
        "metric": spec.metric,
        "description": " ".join(spec.description.split()).split(". ")[0].rstrip("."),
        "input_rows": spans.input_rows,
        "out_of_scope": spans.out_of_scope,
        "not_recorded": spans.not_recorded,
        "accepted": spans.accepted["__row"].n_unique(),
        "rejected": spans.rejected.height,
        "rejected_by_reason": by_reason(spans.rejected),
        "inactive": spans.inactive.height,
        "inactive_by_reason": by_reason(spans.inactive),
        "reasons": _reasons(spans.rejected, window) | _reasons(spans.inactive, window),
        "duplicates_clamped": spans.duplicates_clamped,
        "hierarchy": dict(sorted(status.value_counts().rows())),
        "tx_uncertain": int(validated["tx_uncertain"].sum()),
        "node_hours": float(counted.select((hours_in(window) * nodes).sum()).item()) if counted.height else 0.0,
        "hours": {
            "input": input_h,
            "accepted": accepted_h,
            "counted": counted_h,
            "clamped_away": (accepted_h - spans_h) + (spans_h - counted_h - orphan_h),
            "orphaned": orphan_h,
            "rejected": rejected_h,
            "inactive": inactive_h,
            "clamped_by_duplicates": accepted_h - spans_h,
            "clamped_by_parent": spans_h - counted_h - orphan_h,
        },
    }


def _hours(df: pl.DataFrame, window) -> float:
    return float(df.select(hours_in(window).sum()).item()) if df.height else 0.0


def by_reason(rows: pl.DataFrame) -> dict[str, int]:
    return dict(sorted(rows["rejection_reason"].value_counts().rows())) if rows.height else {}


def _reasons(rows: pl.DataFrame, window) -> dict[str, dict]:
    """Per rejection or inactivity reason: rows, hours in the window and an example key (for `engine trace`)."""
    if not rows.height:
        return {}
    grouped = rows.group_by("rejection_reason").agg(
        pl.len().alias("rows"),
        hours_in(window).sum().alias("hours"),
        pl.col("entity_id").drop_nulls().min().alias("example"),
    )
    return {r: {"rows": n, "hours": h, "example": e} for r, n, h, e in sorted(grouped.rows())}


def metric_totals(daily: pl.DataFrame) -> dict:
    """Hours in the window per metric and resource (node-hours for `nodes`), each summed in the buckets'
    own order (a parallel group-by sums in any order: the last digit would change from run to run)."""
    out: dict = {}
    for (metric, res), part in sorted(daily.partition_by("metric", "resource", as_dict=True).items()):
        out.setdefault(metric, {})[res] = float(part["hours"].to_numpy().sum())
    return out
