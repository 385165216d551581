"""The invariant catalogue (the user's IDs) and which invariants apply to an entity."""

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
}
ALWAYS = ("INV-3",)
HIERARCHY = ("INV-4", "INV-5", "INV-6")


def _order(ids) -> list[str]:
    return sorted(set(ids), key=lambda i: int(i.split("-")[1]))


def applicable(spec: dict) -> list[str]:
    """Entity-level invariants checked for this entity: as declared (plus INV-3), else all that apply."""
    if "invariants" in spec:
        return _order([*spec["invariants"], *ALWAYS])
    ids = ["INV-1", "INV-2", "INV-3", "INV-7", "INV-11", "INV-12"]
    return _order(ids + (list(HIERARCHY) if "parent" in spec else []))


def record(inv: str, entity: str | None, violations: int, handled: int = 0, detail: str = "", sample=None) -> dict:
    """One invariant result: pass when the output satisfies it; input defects fixed on the way are `handled`."""
    out = {"id": inv, "entity": entity, "status": "pass" if violations == 0 else "fail"}
    out |= {"violations": violations, "handled": handled, "detail": detail or CATALOGUE[inv]}
    if sample:
        out["sample"] = sample
    return out


def entity_checks(spec: dict, result, parent_validated, as_of) -> list[dict]:
    """Check the entity-level invariants that apply to this entity, on its outputs."""
    import polars as pl

    from engine.hierarchy import COUNTED, outside_parent
    from engine.temporal import overlapping

    name, spans, validated = spec["entity"], result.spans, result.validated
    rejected = dict(spans.rejected["rejection_reason"].value_counts().rows()) if spans.rejected.height else {}
    status = validated["hierarchy_status"]
    counted = validated.filter(status.is_in(COUNTED))
    wanted, out = set(applicable(spec)), []

    def add(inv: str, bad: pl.DataFrame, handled: int = 0, detail: str = "") -> None:
        if inv in wanted:
            rows = bad.select("entity_id", "valid_start", "valid_end").head(5).rows()
            out.append(record(inv, name, bad.height, handled, detail, sample=rows))

    add("INV-1", validated.filter(pl.col("valid_start").is_null()), rejected.get("null_start", 0))
    add("INV-2", validated.filter(pl.col("valid_end") <= pl.col("valid_start")), rejected.get("invalid_time_range", 0))
    add("INV-3", validated.clear(), detail=f"{spans.input_rows} input rows, all accounted for")
    if parent_validated is not None:
        n_clamped = int((status == "clamped").sum())
        add("INV-4", outside_parent(validated, spec, parent_validated), n_clamped)
        orphans = validated.filter(status == "orphan")
        pieces = spans.accepted.select("__row", "valid_start", "valid_end")
        add("INV-5", orphans.join(pieces, on=pieces.columns, how="anti", nulls_equal=True), orphans.height)
        unkept = (pl.col("hierarchy_status") == "clamped") & pl.col("original_start").is_null()
        add("INV-6", validated.filter(unkept), n_clamped)
    overlaps = overlapping(counted.lazy(), spec["identity"], "valid_start", "valid_end").collect()
    add("INV-7", overlaps, rejected.get("duplicate", 0) + spans.duplicates_clamped)
    add("INV-11", validated.filter(pl.col("tx_end") < pl.col("tx_start")), rejected.get("invalid_tx_range", 0))
    if as_of is not None:
        add("INV-12", validated.filter(pl.col("tx_start") > as_of), spans.not_recorded)
    return out


def partition_checks(results: dict, specs, table_of) -> list[dict]:
    """INV-13 for every source table read by several entities that ran (and that are not one another's
    ancestors: a child reading its parent's table sees the same rows at another layer). `table_of(name)` is
    the table's rows as a lazy frame, read only to name the rows a violation is about."""
    import polars as pl

    readers: dict[str, list[str]] = {}
    for name, res in results.items():
        if not res.skipped:
            readers.setdefault(res.spec["source"]["table"], []).append(name)
    out = []
    for table, names in sorted(readers.items()):
        for group in _unrelated_groups(specs, names):
            rows = results[group[0]].spans.input_rows  # every reader scans the same rows
            owned = pl.concat([results[n].spans.owned for n in group])
            twice = owned.filter(owned.is_duplicated()).unique()
            every = pl.int_range(rows, eager=True, dtype=owned.dtype)
            nobody = every.filter(~every.is_in(owned.implode()))
            parts = " + ".join(f"{results[n].spans.owned.len():,} {n}" for n in group)
            detail = f"{table}: {rows:,} rows = {parts}"
            if nobody.len() or twice.len():
                detail += f"; {nobody.len():,} owned by none, {twice.len():,} by several"
            sample = _keys(table_of(table), results[group[0]].spec, pl.concat([nobody, twice]).head(5))
            check = record("INV-13", None, nobody.len() + twice.len(), detail=detail, sample=sample)
            out.append(check | {"table": table, "entities": group})
    return out


def _unrelated_groups(specs, names: list[str]) -> list[list[str]]:
    """The readers of one table that share its rows out: connected by 'neither is the other's ancestor'."""
    import networkx as nx

    def ancestors(name: str) -> set[str]:
        parent = specs.entities[name].get("parent", {}).get("entity")
        return {parent} | ancestors(parent) if parent else set()

    graph = nx.Graph()
    graph.add_nodes_from(names)
    graph.add_edges_from(
        (a, b) for i, a in enumerate(names) for b in names[i + 1 :] if a not in ancestors(b) and b not in ancestors(a)
    )
    return [sorted(c) for c in nx.connected_components(graph) if len(c) > 1]


def _keys(table, spec: dict, rows) -> list:
    """The source keys of some row numbers of a table, for the sample of a violation."""
    import polars as pl

    if not rows.len():
        return []
    key = spec["source"]["key"]
    picked = (
        table.with_row_index("__row").filter(pl.col("__row").is_in(rows.implode())).select(pl.col(key).cast(pl.String))
    )
    return picked.collect()[key].to_list()
