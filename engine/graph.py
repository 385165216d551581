"""The spec graph, built once from the specs and handed to everything: the pipeline executes it in its order,
the checks find its cycles, `explain` draws it, extraction and grants list its tables (dbt's Linker).

Nodes are `table:SCHEMA.TABLE`, `lookup:NAME`, `report:NAME`, `entity:NAME`, `metric:NAME` and the steps
that join every entity, in this order: `checkpoints` (the window, the accounts, the files), `usage` (the
sweep), `breakdowns` (by project, user, and the charges), `comparison` (the legacy report) and `snapshots` (the as-of series). An edge A -> B means B needs A;
its kind is `reads` (with `optional`), `parent` (the temporal hierarchy, with `on`), `feeds` (an entity's
spans to its base metric), `formula` (a term of a derived metric, with its `sign`) or `step` (an entity
into the checkpoints, each step into the next). A reference to an unknown name gets no edge: the checks
name it.
"""

import itertools

import networkx as nx

STEPS = ("checkpoints", "usage", "breakdowns", "comparison", "snapshots")


def build_graph(specs) -> nx.DiGraph:
    """Compile the specs into one DAG of raw tables, lookups, reports, entities, metrics and the run's steps."""
    graph = nx.DiGraph()
    for spec in specs.by_name.values():
        graph.add_node(f"{spec.kind}:{spec.name}", kind=spec.kind, name=spec.name, spec=spec)
    for step in STEPS:
        graph.add_node(step, kind=step, name=step, spec=None)
    for spec in specs.by_name.values():
        _add_reads(graph, specs, spec)
    for live, archive in sorted(specs.archives.items()):
        _add_archive(graph, live, archive.table)
    for spec in specs.entities.values():
        node = f"entity:{spec.name}"
        if spec.parent and spec.parent.entity in specs.entities:
            graph.add_edge(f"entity:{spec.parent.entity}", node, kind="parent", on=spec.parent.on)
        graph.add_edge(node, "checkpoints", kind="step")
    if specs.metrics:
        _add_metrics(graph, specs)
    for before, after in itertools.pairwise(STEPS):
        graph.add_edge(before, after, kind="step")
    return graph


def _add_reads(graph: nx.DiGraph, specs, spec) -> None:
    """Edges from every table, lookup or report a spec reads (history tables are only read by the projected
    lens: never required)."""
    node = f"{spec.kind}:{spec.name}"
    if spec.source.entity in specs.entities:
        graph.add_edge(f"entity:{spec.source.entity}", node, kind="reads", optional=True)
    refs = [(spec.source.table, False), *((j.table, j.optional) for j in spec.joins)]
    refs += [(j.history.table, True) for j in spec.joins if j.history]
    for table, optional in refs:
        if table is None:
            continue
        if "." in table:
            graph.add_node(f"table:{table}", kind="table", name=table, spec=None)
            graph.add_edge(f"table:{table}", node, kind="reads", optional=optional)
        elif table in specs.lookups or table in specs.reports:
            graph.add_edge(f"{specs.by_name[table].kind}:{table}", node, kind="reads", optional=optional)


def _add_archive(graph: nx.DiGraph, live: str, archive: str) -> None:
    """An archive table is read by every reader of its live table, as part of it: never required (its absence
    is an archive with no rows)."""
    if f"table:{live}" not in graph:
        return
    graph.add_node(f"table:{archive}", kind="table", name=archive, spec=None, archive_of=live)
    for reader in list(graph.successors(f"table:{live}")):
        graph.add_edge(f"table:{archive}", reader, kind="reads", optional=True)


def _add_metrics(graph: nx.DiGraph, specs) -> None:
    metrics = specs.metrics
    for name in metrics.metrics:
        graph.add_node(f"metric:{name}", kind="metric", name=name, spec=metrics.metrics[name])
    for name, metric in metrics.metrics.items():
        for sign, term in metric.terms:
            if term in metrics.metrics:
                graph.add_edge(f"metric:{term}", f"metric:{name}", kind="formula", sign=sign)
    for spec in specs.entities.values():
        if spec.metric in metrics.metrics:
            graph.add_edge(f"entity:{spec.name}", f"metric:{spec.metric}", kind="feeds")
    if metrics.legacy:
        table = f"table:{metrics.legacy.table}"
        graph.add_node(table, kind="table", name=metrics.legacy.table, spec=None)
        graph.add_edge(table, "comparison", kind="reads", optional=True)


def edges(graph: nx.DiGraph, kind: str) -> nx.DiGraph:
    """The graph seen through one kind of edge."""
    return nx.subgraph_view(graph, filter_edge=lambda u, v: graph.edges[u, v]["kind"] == kind)


def cycle(graph: nx.DiGraph, kind: str) -> str | None:
    """A cycle among the edges of one kind, as its path `a --> b --> a` (dbt's Linker), or None."""
    try:
        found = nx.find_cycle(edges(graph, kind))
    except nx.NetworkXNoCycle:
        return None
    return " --> ".join([graph.nodes[found[0][0]]["name"]] + [graph.nodes[v]["name"] for _, v in found])


def order(graph: nx.DiGraph) -> list[str]:
    """Every node in execution order: what a node needs before it, ties broken by name."""
    return list(nx.lexicographical_topological_sort(graph))


def entity_order(graph: nx.DiGraph) -> list[str]:
    """Entities in execution order: every parent before its children."""
    return [graph.nodes[n]["name"] for n in order(graph) if graph.nodes[n]["kind"] == "entity"]


def needed(graph: nx.DiGraph, entities: list[str] | None) -> set[str]:
    """The nodes a run of these entities (default: all) executes: the entities, what they read, the reports
    over them alone, the steps, and the legacy table."""
    chosen = {
        n
        for n in graph
        if graph.nodes[n]["kind"] == "entity" and (entities is None or graph.nodes[n]["name"] in entities)
    }
    reads = edges(graph, "reads")
    reports = {
        n
        for n in graph
        if graph.nodes[n]["kind"] == "report"
        and {a for a in nx.ancestors(reads, n) if graph.nodes[a]["kind"] == "entity"} <= chosen
    }
    wanted = chosen | reports | set(STEPS)
    return wanted | {a for n in wanted for a in nx.ancestors(reads, n)}


def tables_for(graph: nx.DiGraph, entities: list[str] | None = None) -> tuple[list[str], set[str]]:
    """(tables, required tables) that the given entities (default: all) and the legacy comparison read, the
    archive tables aside (`archives_for`). A table is required when something reads it as a source or a
    non-optional join."""
    tables = [
        n for n in needed(graph, entities) if graph.nodes[n]["kind"] == "table" and not graph.nodes[n].get("archive_of")
    ]
    required = {
        graph.nodes[t]["name"]
        for t in tables
        for _, v, data in graph.out_edges(t, data=True)
        if not data["optional"] and v != "comparison"
    }
    return sorted(graph.nodes[t]["name"] for t in tables), required


def archives_for(graph: nx.DiGraph, tables: list[str]) -> list[str]:
    """The archive tables of these live tables (a server or a dump may have them or not)."""
    return sorted(
        data["name"] for data in graph.nodes.values() if data["kind"] == "table" and data.get("archive_of") in tables
    )


def entity_tables(graph: nx.DiGraph, entities: list[str] | None = None) -> dict[str, tuple[str, set[str]]]:
    """Per entity (default: all): its source's raw table (through lookups read as a source) and the raw
    tables it cannot run without (read through non-optional references only)."""
    required = nx.subgraph_view(
        graph, filter_edge=lambda u, v: graph.edges[u, v]["kind"] == "reads" and not graph.edges[u, v]["optional"]
    )
    out = {}
    for name in entity_order(graph):
        if entities is not None and name not in entities:
            continue
        source = graph.nodes[f"entity:{name}"]["spec"].source.table
        while f"lookup:{source}" in graph:  # a lookup read as the source: its own source decides
            source = graph.nodes[f"lookup:{source}"]["spec"].source.table
        tables = {graph.nodes[t]["name"] for t in nx.ancestors(required, f"entity:{name}")}
        out[name] = (source, {t for t in tables if f"table:{t}" in graph})
    return out


def parent_of(graph: nx.DiGraph, entity: str) -> str | None:
    preds = [graph.nodes[u]["name"] for u in edges(graph, "parent").predecessors(f"entity:{entity}")]
    return preds[0] if preds else None


def children_of(graph: nx.DiGraph, entity: str) -> list[str]:
    return sorted(graph.nodes[v]["name"] for v in edges(graph, "parent").successors(f"entity:{entity}"))


def roots(graph: nx.DiGraph) -> list[str]:
    return [e for e in entity_order(graph) if parent_of(graph, e) is None]
