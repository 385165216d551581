"""The invariant catalogue (the user's IDs) and every check of it: each a named result record (id, entity or
table, status, violations, the input defects handled on the way, a sample of failing rows), never an
`assert` buried in a stage. A failure that can only mean a bug (INV-3) stops the run where it is found."""

import networkx as nx
import polars as pl

from engine.hierarchy import COUNTED, outside_parent
from engine.io.output import CHARGED
from engine.temporal import overlapping

CATALOGUE = {
    "INV-1": "valid_start is not null (else rejected: null_start)",
    "INV-2": "valid_start < valid_end, or valid_end null (else rejected: invalid_time_range; no time: inactive)",
    "INV-3": "input rows = accepted + rejected + inactive + out of scope + not recorded, per entity",
    "INV-4": "a counted child span lies inside its parent's validated span",
    "INV-5": "orphans are not clamped and not counted",
    "INV-6": "clamped rows keep original_start/original_end",
    "INV-7": "no identity is counted twice for the same time",
    "INV-8": "no derived metric is below zero at any instant",
    "INV-9": "sweepline counts are never negative",
    "INV-10": "span hours in the window = integral of the usage series",
    "INV-11": "tx_start <= tx_end (else rejected: invalid_tx_range)",
    "INV-12": "a projected (as-of T) run contains only facts recorded at or before T",
    "INV-13": "entities that share a source table (none the other's ancestor) own each of its rows exactly once",
    "INV-14": "a breakdown summed over its columns equals daily.parquet, per day, metric, resource and group",
    "INV-15": "charges summed over who is charged = the sweep of the charged spans' resource x factor, day by day",
}
ALWAYS = ("INV-3",)
HIERARCHY = ("INV-4", "INV-5", "INV-6")
TOLERANCE = 1e-9  # levels are sums of floats: below this share of the largest level, a negative one is rounding


def applicable(spec) -> list[str]:
    """Entity-level invariants checked for this entity: as declared (plus INV-3), else all that apply."""
    if spec.invariants is not None:
        ids = [*spec.invariants, *ALWAYS]
    else:
        ids = ["INV-1", "INV-2", "INV-3", "INV-7", "INV-11", "INV-12", *(HIERARCHY if spec.parent else ())]
    return sorted(set(ids), key=lambda i: int(i.split("-")[1]))


def record(inv: str, entity: str | None, violations: int, *, handled: int = 0, detail: str = "", sample=None) -> dict:
    """One invariant result: pass when the output satisfies it; input defects fixed on the way are `handled`."""
    out = {"id": inv, "entity": entity, "status": "pass" if violations == 0 else "fail"}
    out |= {"violations": violations, "handled": handled, "detail": detail or CATALOGUE[inv]}
    return out | ({"sample": sample} if sample else {})


def entity_checks(spec, spans, validated: pl.DataFrame, *, parent: pl.DataFrame | None, as_of) -> list[dict]:
    """The entity-level invariants that apply to this entity, checked on its outputs."""
    rejected = dict(spans.rejected["rejection_reason"].value_counts().rows()) if spans.rejected.height else {}
    status = validated["hierarchy_status"]
    found = {
        "INV-1": (validated.filter(pl.col("valid_start").is_null()), rejected.get("null_start", 0)),
        "INV-2": (
            validated.filter(pl.col("valid_end") <= pl.col("valid_start")),
            rejected.get("invalid_time_range", 0),
        ),
        "INV-3": (validated.clear(), 0),
        "INV-7": (
            overlapping(
                validated.filter(status.is_in(COUNTED)).lazy(),
                list(spec.identity),
                start="valid_start",
                end="valid_end",
            ).collect(),
            rejected.get("duplicate", 0) + spans.duplicates_clamped,
        ),
        "INV-11": (validated.filter(pl.col("tx_end") < pl.col("tx_start")), rejected.get("invalid_tx_range", 0)),
    }
    if parent is not None:
        clamped, orphans = int((status == "clamped").sum()), validated.filter(status == "orphan")
        pieces = spans.accepted.select("__row", "valid_start", "valid_end")
        unkept = (pl.col("hierarchy_status") == "clamped") & pl.col("original_start").is_null()
        found["INV-4"] = (outside_parent(validated, spec, parent), clamped)
        found["INV-5"] = (orphans.join(pieces, on=pieces.columns, how="anti", nulls_equal=True), orphans.height)
        found["INV-6"] = (validated.filter(unkept), clamped)
    if as_of is not None:
        found["INV-12"] = (validated.filter(pl.col("tx_start") > as_of), spans.not_recorded)
    detail = {"INV-3": f"{spans.input_rows} input rows, all accounted for"}
    return [
        record(inv, spec.name, bad.height, handled=handled, detail=detail.get(inv, ""), sample=_sample(bad))
        for inv, (bad, handled) in sorted(found.items(), key=lambda kv: int(kv[0].split("-")[1]))
        if inv in applicable(spec)
    ]


def hours_check(name: str, hours: dict) -> dict:
    """INV-10 per entity: hours are conserved and no stage creates any (each clamp account is non-negative)."""
    negative = [
        k for k in ("clamped_by_duplicates", "clamped_by_parent") if hours[k] < -1e-6 * max(1.0, hours["input"])
    ]
    detail = "hours in the window: input = counted + clamped_away + orphaned + rejected + inactive, no stage adds hours"
    return record("INV-10", name, len(negative), detail=detail + (f"; negative: {negative}" if negative else ""))


def usage_checks(below: pl.DataFrame, buckets: pl.DataFrame, expected: pl.DataFrame, *, metrics) -> list[dict]:
    """INV-8 and INV-9 from the levels below zero (beyond rounding); INV-10 with a tolerance relative to the
    hours' magnitude (the sum of |value x hours| of the spans: a difference of huge opposite terms keeps their
    rounding)."""
    derived = [m for m, spec in metrics.metrics.items() if spec.formula]
    got = buckets.group_by("metric", "resource").agg(pl.col("hours").sum().alias("integral"))
    gap = (pl.col("hours") - pl.col("integral")).abs() > 1e-6 * pl.max_horizontal(pl.col("scale"), pl.lit(1.0))
    diff = expected.join(got, on=["metric", "resource"], how="full", coalesce=True).fill_null(0.0).filter(gap)
    derived_below, base_below = (below.filter(pl.col("metric").is_in(derived) == d) for d in (True, False))
    conserved = "per metric and resource: span hours in the window = integral of the series"
    return [
        record(
            "INV-8",
            None,
            derived_below.height,
            detail="no derived metric below zero at any instant",
            sample=_levels(derived_below),
        ),
        record(
            "INV-9",
            None,
            base_below.height,
            detail="no base series below zero at any instant",
            sample=_levels(base_below),
        ),
        record("INV-10", None, diff.height, detail=conserved, sample=diff.to_dicts()[:5]),
    ]


def partition_checks(results: dict, specs, table_of) -> list[dict]:
    """INV-13 for every source table read by several entities that ran (and that are not one another's
    ancestors: a child reading its parent's table sees the same rows at another layer). `table_of(name)` is
    the table's rows as a lazy frame, read only to name the rows a violation is about."""
    readers: dict[str, list[str]] = {}
    for name, res in results.items():
        readers.setdefault(res.spec.source.table, []).append(name)
    out = []
    for table, names in sorted(readers.items()):
        for group in _unrelated(specs, names):
            rows = results[group[0]].spans.input_rows  # every reader scans the same rows
            owned = pl.concat([results[n].spans.owned for n in group])
            twice = owned.filter(owned.is_duplicated()).unique()
            every = pl.int_range(rows, eager=True, dtype=owned.dtype)
            nobody = every.filter(~every.is_in(owned.implode()))
            detail = f"{table}: {rows:,} rows = " + " + ".join(f"{results[n].spans.owned.len():,} {n}" for n in group)
            if nobody.len() or twice.len():
                detail += f"; {nobody.len():,} owned by none, {twice.len():,} by several"
            sample = _keys(table_of(table), results[group[0]].spec, pl.concat([nobody, twice]).head(5))
            check = record("INV-13", None, nobody.len() + twice.len(), detail=detail, sample=sample)
            out.append(check | {"table": table, "entities": group})
    return out


def _unrelated(specs, names: list[str]) -> list[list[str]]:
    """The readers of one table that share its rows out: connected by 'neither is the other's ancestor'."""

    def ancestors(name: str) -> set[str]:
        parent = specs.entities[name].parent
        return {parent.entity} | ancestors(parent.entity) if parent else set()

    graph = nx.Graph()
    graph.add_nodes_from(names)
    graph.add_edges_from(
        (a, b) for i, a in enumerate(names) for b in names[i + 1 :] if a not in ancestors(b) and b not in ancestors(a)
    )
    return [sorted(c) for c in nx.connected_components(graph) if len(c) > 1]


def _keys(table: pl.LazyFrame, spec, rows: pl.Series) -> list:
    """The source keys of some row numbers of a table, for the sample of a violation."""
    if not rows.len():
        return []
    picked = table.with_row_index("__row").filter(pl.col("__row").is_in(rows.implode()))
    return picked.select(pl.col(spec.source.key).cast(pl.String)).collect().to_series().to_list()


def _sample(bad: pl.DataFrame) -> list:
    """A few failing rows, times as text (a raw time Python cannot hold must not crash the report)."""
    return bad.select("entity_id", pl.col("valid_start", "valid_end").cast(pl.String)).head(5).rows()


def _levels(below: pl.DataFrame) -> list[dict]:
    return below.sort("value").head(5).with_columns(pl.col("timestamp").cast(pl.String)).to_dicts()


def _gaps(ours: pl.DataFrame, truth: pl.DataFrame, keys: list[str]) -> pl.DataFrame:
    """Cells where two tables of `hours` on the same keys differ by more than rounding (relative to the cell)."""
    both = ours.join(truth, on=keys, how="full", coalesce=True, nulls_equal=True, suffix="_truth")
    both = both.with_columns(pl.col("hours", "hours_truth").fill_null(0.0))
    scale = pl.max_horizontal(pl.lit(1.0), pl.col("hours_truth").abs())
    return both.filter((pl.col("hours") - pl.col("hours_truth")).abs() > 1e-6 * scale)


def breakdown_check(name: str, table: pl.DataFrame, daily: pl.DataFrame, *, group: list[str], split) -> dict:
    """INV-14 for one breakdown: its hours summed over the breakdown columns, against daily.parquet's (for
    the metrics it split and its resources)."""
    keys = ["date", *group, "metric", "resource"]
    ours = table.group_by(keys).agg(pl.col("hours").sum())
    split_here = pl.col("metric").is_in(table["metric"].unique().implode())
    if split.resources is not None:
        split_here &= pl.col("resource").is_in(split.resources)
    gaps = _gaps(ours, daily.filter(split_here).select(*keys, "hours"), keys)
    detail = f"daily_by_{name} summed over {', '.join(split.by)} = daily.parquet ({ours.height:,} cells)"
    return record("INV-14", None, gaps.height, detail=detail, sample=gaps.head(5).to_dicts())


def charges_check(table: pl.DataFrame, expected: pl.DataFrame, group: list[str]) -> dict:
    """INV-15: the charges per day and group (consumed and encumbered) against the sweep of the charged spans."""
    keys = ["date", *group]
    ours = table.group_by(keys).agg(pl.sum_horizontal(CHARGED).sum().alias("hours"))
    gaps = _gaps(ours, expected, keys)
    detail = f"charges summed over who is charged = the sweep of the charged spans x factor ({ours.height:,} cells)"
    return record("INV-15", None, gaps.height, detail=detail, sample=gaps.head(5).to_dicts())
