"""`engine explain`: views of the spec graph for people (rich tree) and documents (Mermaid, DOT, Markdown)."""

import networkx as nx
from rich.markup import escape
from rich.tree import Tree

from engine.graph import children_of, edges, entity_order, parent_of, roots
from engine.invariants import applicable

FORMATS = ("tree", "mermaid", "dot", "markdown")


def _focus(graph: nx.DiGraph, entity: str | None) -> set[str]:
    """Entities to show: all, or one entity with its ancestors and descendants."""
    names = set(entity_order(graph))
    if entity is None:
        return names
    node = f"entity:{entity}"
    parent_edges = edges(graph, "parent")
    related = nx.ancestors(parent_edges, node) | nx.descendants(parent_edges, node) | {node}
    return {graph.nodes[n]["name"] for n in related}


def _joins(spec) -> list[str]:
    return [
        f"{j.alias} = {j.table} on "
        + ", ".join(f"{a} = {j.alias}.{b}" for a, b in j.on.items())
        + (" (required)" if j.required else "")
        + (" (optional table)" if j.optional else "")
        + (f" as of {j.asof.left}" if j.asof else "")
        for j in spec.joins
    ]


def _facts(spec: dict) -> list[tuple[str, str]]:
    """(label, text) lines describing one entity, shared by every format."""
    valid, tx = spec.valid, spec.tx
    facts = [("source", f"{spec.source.table} (key {spec.source.key})")]
    facts += [("join", j) for j in _joins(spec)]
    if spec.scope:
        facts.append(("scope", " AND ".join(map(str, spec.scope))))
    if spec.parent:
        on = ", ".join(f"{a} = {spec.parent.entity}.{b}" for a, b in spec.parent.on.items())
        facts.append(("parent", f"{spec.parent.entity} on {on}, inside it in time"))
    facts.append(("valid", f"[{valid['start']}, {valid['end']})"))
    facts.append(("tx", f"[{tx['start']}, {tx['end']})"))
    if spec.inherit:
        facts.append(("inherits", ", ".join(spec.inherit)))
    facts.append(("identity", ", ".join(spec.identity)))
    facts += [("rule", f"{r.reason}: {r.when}") for r in spec.rules]
    facts.append(("resources", ", ".join(f"{k} = {v}" for k, v in spec.resources.items())))
    facts.append(("invariants", ", ".join(applicable(spec))))
    return facts


def _first_sentence(text: str) -> str:
    return " ".join(text.split()).split(". ")[0].rstrip(".")


def render_tree(specs, graph: nx.DiGraph, entity: str | None = None) -> Tree:
    """Rich tree: each root entity, its children below it, each node with its facts."""
    shown = _focus(graph, entity)
    top = Tree(f"[bold]{escape(str(specs.root))}[/] — {len(specs.entities)} entities, {len(specs.lookups)} lookups")

    def add(branch: Tree, name: str) -> None:
        spec = specs.entities[name]
        node = branch.add(
            f"[bold cyan]{name}[/] → [green]{spec.metric}[/]  [dim]{escape(_first_sentence(spec.description))}[/]"
        )
        for label, text in _facts(spec):
            node.add(f"[dim]{label}:[/] {escape(text)}")
        for child in children_of(graph, name):
            if child in shown:
                add(node, child)

    for root in roots(graph):
        if root in shown:
            add(top, root)
    if specs.lookups and entity is None:
        lookups = top.add("[bold]lookups[/]")
        for name, spec in sorted(specs.lookups.items()):
            users = sorted(graph.nodes[v]["name"] for v in graph.successors(f"lookup:{name}"))
            lookups.add(f"[bold magenta]{name}[/] ← {spec.source.table}  [dim]used by {', '.join(users)}[/]")
    return top


def _label(specs, name: str) -> str:
    spec = specs.entities[name]
    return f"{name}<br/>{spec.metric}<br/>{spec.source.table}"


def _links(specs, graph: nx.DiGraph, shown: set[str]):
    """(parent, child, 'key = parent key, ...') of every parent link between shown entities."""
    for name in entity_order(graph):
        parent = parent_of(graph, name)
        if name in shown and parent in shown:
            yield parent, name, ", ".join(f"{a} = {b}" for a, b in specs.entities[name].parent.on.items())


def render_mermaid(specs, graph: nx.DiGraph, entity: str | None = None) -> str:
    shown = _focus(graph, entity)
    lines = ["graph TD", *(f'  {n}["{_label(specs, n)}"]' for n in entity_order(graph) if n in shown)]
    lines += [f'  {parent} -->|"{on}"| {name}' for parent, name, on in _links(specs, graph, shown)]
    return "\n".join(lines) + "\n"


def render_dot(specs, graph: nx.DiGraph, entity: str | None = None) -> str:
    shown = _focus(graph, entity)
    lines = ["digraph specs {", "  rankdir=TB;", "  node [shape=box];"]
    for name in (n for n in entity_order(graph) if n in shown):
        label = _label(specs, name).replace("<br/>", "\\n")
        lines.append(f'  "{name}" [label="{label}"];')
    lines += [f'  "{parent}" -> "{name}" [label="{on}"];' for parent, name, on in _links(specs, graph, shown)]
    return "\n".join(lines + ["}"]) + "\n"


def _cell(text: str) -> str:
    """Text for one Markdown table cell: on one line, and its `|` escaped (GFM splits cells on a `|` even
    inside a code span: `a || b` in an expression)."""
    return " ".join(str(text).split()).replace("|", "\\|")


def render_markdown(specs, graph: nx.DiGraph, entity: str | None = None) -> str:
    """The entity reference (docs/entities.md), generated so it never drifts from the YAML."""
    out = [
        "# Entities",
        "",
        f"Generated from the YAML specs in `{specs.root.name}/` by `engine explain {specs.root.name}/ --format markdown`; do not edit by hand.",
        "",
        "```mermaid",
        render_mermaid(specs, graph, entity).rstrip(),
        "```",
        "",
    ]
    for name in entity_order(graph):
        if name not in _focus(graph, entity):
            continue
        spec = specs.entities[name]
        out += [
            f"## {name}",
            "",
            spec.description.strip(),
            "",
            f"Feeds metric **{spec.metric}** (`{spec.file}`).",
            "",
        ]
        out += ["| field | value |", "|---|---|"]
        out += [f"| {label} | `{_cell(text)}` |".replace("|`", "| `") for label, text in _facts(spec)]
        out.append("")
    if specs.lookups and entity is None:
        out += ["## Lookups", "", "| lookup | source | description |", "|---|---|---|"]
        for name, spec in sorted(specs.lookups.items()):
            out.append(f"| {name} | `{spec.source.table}` | {_cell(spec.description)} |")
        out.append("")
    return "\n".join(out)
