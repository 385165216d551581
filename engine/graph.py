"""The spec graph: built once from the specs, then used for execution order, `explain` and the manifest.

Nodes are `entity:NAME`, `lookup:NAME` and `table:SCHEMA.TABLE`; an edge A -> B means B needs A
(kind 'reads' for data, kind 'parent' for the temporal hierarchy).
"""

import networkx as nx

from engine.spec.load import Specs


def table_refs(spec: dict) -> list[dict]:
    """The table references of a spec: its source, its joins and their history tables."""
    refs = [spec["source"], *spec.get("joins", [])]
    return refs + [j["history"] for j in spec.get("joins", []) if "history" in j]


def build_graph(specs: Specs) -> nx.DiGraph:
    """Compile the specs into one DAG of entities, lookups and raw tables."""
    graph = nx.DiGraph()
    derived = {**{n: "lookup" for n in specs.lookups}, **{n: "report" for n in specs.reports}}
    for kind, table in (("lookup", specs.lookups), ("report", specs.reports), ("entity", specs.entities)):
        for name, spec in table.items():
            node = f"{kind}:{name}"
            graph.add_node(node, kind=kind, name=name, spec=spec)
            if "entity" in spec["source"]:  # a report over an entity's validated spans
                graph.add_edge(f"entity:{spec['source']['entity']}", node, kind="reads", optional=True)
            for ref in table_refs(spec):  # history tables are never required (only the projected lens reads them)
                if "table" not in ref:
                    continue
                src = f"{derived[ref['table']]}:{ref['table']}" if ref["table"] in derived else f"table:{ref['table']}"
                if src.startswith("table:"):
                    graph.add_node(src, kind="table", name=ref["table"])
                graph.add_edge(src, node, kind="reads", optional=bool(ref.get("optional")) or "recorded_at" in ref)
    if "legacy" in specs.metrics:  # the older report to compare with: read if present, never required
        graph.add_node("legacy", kind="legacy", name="legacy")
        graph.add_node(f"table:{specs.metrics['legacy']['table']}", kind="table", name=specs.metrics["legacy"]["table"])
        graph.add_edge(f"table:{specs.metrics['legacy']['table']}", "legacy", kind="reads", optional=True)
    for name, spec in specs.entities.items():
        if "parent" in spec:
            graph.add_edge(
                f"entity:{spec['parent']['entity']}", f"entity:{name}", kind="parent", on=spec["parent"]["on"]
            )
    return graph


def entity_order(graph: nx.DiGraph) -> list[str]:
    """Entities in execution order: every parent before its children (ties broken by name)."""
    order = nx.lexicographical_topological_sort(graph)
    return [graph.nodes[n]["name"] for n in order if graph.nodes[n]["kind"] == "entity"]


def raw_tables(graph: nx.DiGraph) -> list[str]:
    """Every raw table any entity or lookup reads, sorted: the one list extraction and grants use."""
    return sorted(graph.nodes[n]["name"] for n in graph if graph.nodes[n]["kind"] == "table")


def tables_for(graph: nx.DiGraph, entities: list[str] | None = None) -> tuple[list[str], set[str]]:
    """(tables, required tables) that the given entities (default: all) and the legacy report read.

    A table is required when something reads it as a source or a non-optional join.
    """
    reads = nx.subgraph_view(graph, filter_edge=lambda u, v: graph.edges[u, v]["kind"] == "reads")
    chosen = lambda n: entities is None or graph.nodes[n]["name"] in entities  # noqa: E731
    targets = [
        n for n in graph if graph.nodes[n]["kind"] == "legacy" or (graph.nodes[n]["kind"] == "entity" and chosen(n))
    ]
    targets += [n for n in graph if graph.nodes[n]["kind"] == "report"
                and all(chosen(a) for a in nx.ancestors(reads, n) if graph.nodes[a]["kind"] == "entity")]  # fmt: skip
    needed = {t for n in targets for t in nx.ancestors(reads, n) | {n} if graph.nodes[t]["kind"] == "table"}
    required = {t for t in needed for _, v, o in graph.out_edges(t, data="optional") if not o and v != "legacy"}
    name = lambda n: graph.nodes[n]["name"]  # noqa: E731
    return sorted(name(t) for t in needed), {name(t) for t in required}


def entity_tables(graph: nx.DiGraph, entities: list[str] | None = None) -> dict[str, tuple[str, set[str]]]:
    """Per entity (default: all): its source's raw table (through lookups read as a source) and the raw
    tables it cannot run without (read through non-optional references only)."""
    needed = nx.subgraph_view(
        graph, filter_edge=lambda u, v: graph.edges[u, v]["kind"] == "reads" and not graph.edges[u, v]["optional"]
    )
    out = {}
    for node in (n for n in graph if graph.nodes[n]["kind"] == "entity"):
        name = graph.nodes[node]["name"]
        if entities is not None and name not in entities:
            continue
        source = graph.nodes[node]["spec"]["source"]["table"]
        while f"lookup:{source}" in graph:  # a lookup read as the source: its own source decides
            source = graph.nodes[f"lookup:{source}"]["spec"]["source"]["table"]
        required = {graph.nodes[t]["name"] for t in nx.ancestors(needed, node) if graph.nodes[t]["kind"] == "table"}
        out[name] = (source, required)
    return out


def parent_of(graph: nx.DiGraph, entity: str) -> str | None:
    preds = [u for u, _, k in graph.in_edges(f"entity:{entity}", data="kind") if k == "parent"]
    return graph.nodes[preds[0]]["name"] if preds else None


def children_of(graph: nx.DiGraph, entity: str) -> list[str]:
    return sorted(
        graph.nodes[v]["name"] for _, v, k in graph.out_edges(f"entity:{entity}", data="kind") if k == "parent"
    )


def roots(graph: nx.DiGraph) -> list[str]:
    return [e for e in entity_order(graph) if parent_of(graph, e) is None]
