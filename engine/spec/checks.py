"""Checks across spec files that JSON Schema cannot express: names, references, cycles, expressions."""

import re

import networkx as nx

from engine.errors import SpecError
from engine.expr import ExprError, columns_of, did_you_mean

# Rejection reasons the engine assigns itself; entity rules may not reuse them.
BUILTIN_REASONS = ("excluded", "missing_fk", "invalid_value", "null_start", "zero_length", "invalid_time_range",
                   "invalid_tx_range", "duplicate")  # fmt: skip
TX_DEFAULTS = {"start": "created_at", "end": "deleted_at"}
# Columns every span carries: an attribute, resource or measure of the same name would overwrite one.
ENGINE_COLUMNS = frozenset(
    [
        "entity",
        "entity_id",
        "metric",
        "site",
        "valid_start",
        "valid_end",
        "planned_end",
        "tx_start",
        "tx_end",
        "tx_updated",
        "tx_uncertain",
        "original_start",
        "original_end",
        "hierarchy_status",
        "rejection_reason",
        "rejection_detail",
        "span_hours",
    ]
)


def expressions(spec: dict):
    """Yield (field path, expression) for every SQL expression in an entity or lookup spec."""
    for name, col in spec.get("columns", {}).items():
        yield f"columns.{name}", col["json"] if isinstance(col, dict) else col
    for i, cond in enumerate(spec.get("scope", [])):
        yield f"scope[{i}]", cond
    for part in ("valid", "tx"):
        for key, expr in spec.get(part, {}).items():
            if expr is not None:
                yield f"{part}.{key}", expr
    for i, rule in enumerate(spec.get("rules", [])):
        yield f"rules[{i}].when", rule["when"]
        if "detail" in rule:
            yield f"rules[{i}].detail", rule["detail"]
    for part in ("attributes", "resources", "measures", "aggregate"):
        for key, expr in spec.get(part, {}).items():
            yield f"{part}.{key}", expr
    for part in ("order_by", "group_by"):
        for i, col in enumerate(spec.get(part, [])):
            yield f"{part}[{i}]", col


def formula_terms(formula: str) -> list[tuple[int, str]]:
    """'a - b + c' -> [(1, 'a'), (-1, 'b'), (1, 'c')]."""
    return [(-1 if sign == "-" else 1, name) for sign, name in re.findall(r"([-+]?)\s*([a-z_][a-z0-9_]*)", formula)]


def _check_expressions(specs, spec: dict, problems: list[str]) -> None:
    where = specs.where(spec)
    aliases = [j["as"] for j in spec.get("joins", [])]
    readable = specs.lookups | (specs.reports if "report" in spec else {})  # only reports read reports
    for i, join in enumerate(spec.get("joins", []) + ([spec["source"]] if "table" in spec["source"] else [])):
        field = f"joins[{i}].table" if "on" in join else "source.table"
        if join["table"] not in readable and "." not in join["table"]:
            problems.append(
                f"{where}: {field}: unknown lookup '{join['table']}'{did_you_mean(join['table'], readable)}"
            )
        if "on" not in join:
            continue
        for left in join["on"]:
            if "." in left and left.split(".")[0] not in aliases[:i]:
                problems.append(f"{where}: joins[{i}].on: '{left}' does not name an earlier join's alias")
    for alias in {a for a in aliases if aliases.count(a) > 1}:
        problems.append(f"{where}: joins: alias '{alias}' is used twice")
    for path, expr in expressions(spec):
        try:
            refs = columns_of(expr)
        except ExprError as exc:
            problems.append(f"{where}: {path}: cannot parse {expr!r}: {exc}")
            continue
        for ref in sorted(r for r in refs if "." in r and r.split(".")[0] not in aliases):
            alias = ref.split(".")[0]
            problems.append(
                f"{where}: {path}: '{ref}' uses alias '{alias}', which no join declares{did_you_mean(alias, aliases)}"
            )


def _cycle(graph: nx.DiGraph) -> str | None:
    try:
        edges = nx.find_cycle(graph)
    except nx.NetworkXNoCycle:
        return None
    return " --> ".join([edges[0][0]] + [v for _, v in edges])


def scope_aliases(specs, spec: dict) -> set[str]:
    """Aliases of the joins an entity's scope reads, directly or through its derived columns."""
    columns, seen, aliases = spec.get("columns", {}), set(), set()
    pending = [c for cond in spec.get("scope", []) for c in columns_of(cond)]
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        if "." in name:
            aliases.add(name.split(".")[0])
        elif name in columns:
            derived = columns[name]
            pending += [derived["json"]] if isinstance(derived, dict) else list(columns_of(derived))
    return aliases


def claimers(specs, names: list[str]) -> set[str]:
    """Of the given entities, those that own their source table's undecided rows: per table, the lowest
    `claims_undecided` rank among the entities given."""
    best: dict[str, tuple[int, str]] = {}
    for name in names:
        spec = specs.entities[name]
        if "claims_undecided" in spec:
            rank = (spec["claims_undecided"], name)
            best[spec["source"]["table"]] = min(best.get(spec["source"]["table"], rank), rank)
    return {name for _, name in best.values()}


def inactive_reasons(spec: dict) -> list[str]:
    """Reasons that mark a row never active rather than a defect: the rules declared `inactive`, and a span
    of no time."""
    return [r["reason"] for r in spec.get("rules", []) if r.get("inactive")] + ["zero_length"]


def resources_of(specs, name: str) -> list[str]:
    """Resources of an entity's validated spans: its own, then those it inherits (over time) from its parent."""
    spec = specs.entities[name]
    parent = spec.get("parent", {}).get("entity")
    inherited = [r for r in spec.get("inherit", []) if parent in specs.entities and r in resources_of(specs, parent)]
    return [*spec["resources"], *inherited]


def provided(specs, name: str) -> set[str]:
    """Attributes an entity offers its children and outputs: its own, inherited ones and entity_id."""
    spec = specs.entities[name]
    return (set(spec.get("attributes", {})) | set(spec.get("inherit", [])) | {"entity_id"}) - set(
        resources_of(specs, name)
    )


def check_specs(specs) -> None:
    """Raise SpecError with every cross-file problem; fill defaults on success."""
    problems: list[str] = []
    metrics = specs.metrics.get("metrics", {})
    if not specs.metrics:
        problems.append(f"{specs.root}: no metrics file (a YAML file with a top-level 'metrics' field)")
    base = {m for m, d in metrics.items() if "formula" not in d}
    derived = nx.DiGraph()
    for name, d in metrics.items():
        for _, term in formula_terms(d.get("formula", "")):
            if term not in metrics:
                problems.append(
                    f"{specs.metrics['_file']}: metrics.{name}.formula: unknown metric '{term}'{did_you_mean(term, metrics)}"
                )
            derived.add_edge(name, term)
    stack = specs.metrics.get("stack", {})
    for name in [
        *(m for g in stack.get("groups", {}).values() for m in g),
        *stack.get("dashed", []),
        stack.get("line"),
    ]:
        if name and name not in metrics:
            problems.append(f"{specs.metrics['_file']}: stack: unknown metric '{name}'{did_you_mean(name, metrics)}")
    if cycle := _cycle(derived):
        problems.append(f"{specs.metrics['_file']}: metrics: formulas form a cycle: {cycle}")

    parents = nx.DiGraph()
    for name, spec in specs.entities.items():
        where = specs.where(spec)
        parents.add_node(name)
        if metrics and spec["metric"] not in base:
            hint = (
                " (it is derived: entities feed base metrics only)"
                if spec["metric"] in metrics
                else did_you_mean(spec["metric"], base)
            )
            problems.append(
                f"{where}: metric: '{spec['metric']}' is not a base metric of {specs.metrics['_file']}{hint}"
            )
        for i, rule in enumerate(spec.get("rules", [])):
            if rule["reason"] in BUILTIN_REASONS:
                problems.append(f"{where}: rules[{i}].reason: '{rule['reason']}' is a built-in rejection reason")
        for part in ("attributes", "resources", "measures"):
            for name in sorted(set(spec.get(part, {})) & ENGINE_COLUMNS):
                problems.append(
                    f"{where}: {part}.{name}: '{name}' is a column of the engine's own; choose another name"
                )
        parent = spec.get("parent", {}).get("entity")
        if parent is None:
            continue
        if parent not in specs.entities:
            problems.append(f"{where}: parent.entity: unknown entity '{parent}'{did_you_mean(parent, specs.entities)}")
        elif parent == name:
            problems.append(f"{where}: parent.entity: an entity cannot be its own parent")
        else:
            parents.add_edge(parent, name)
    if cycle := _cycle(parents):
        problems.append(f"{specs.root}: parent links form a cycle: {cycle}")

    lookups = nx.DiGraph()
    for name, spec in {**specs.lookups, **specs.reports}.items():
        lookups.add_node(name)
        for j in spec.get("joins", []) + [spec["source"]]:
            if j.get("table") in specs.lookups or j.get("table") in specs.reports:
                lookups.add_edge(j["table"], name)
    if cycle := _cycle(lookups):
        problems.append(f"{specs.root}: lookups or reports read each other in a cycle: {cycle}")
    for spec in specs.reports.values():
        source = spec["source"].get("entity")
        if source and source not in specs.entities:
            problems.append(
                f"{specs.where(spec)}: source.entity: unknown entity '{source}'{did_you_mean(source, specs.entities)}"
            )

    for spec in [*specs.entities.values(), *specs.lookups.values(), *specs.reports.values()]:
        _check_expressions(specs, spec, problems)
    if not problems:  # the scope's joins are known only once every expression parses
        _check_claims(specs, problems)
    if not problems:  # attribute checks need an acyclic hierarchy
        _check_attributes(specs, nx.topological_sort(parents), problems)
    if problems:
        raise SpecError(problems)
    for spec in specs.entities.values():
        spec["tx"] = {**TX_DEFAULTS, **spec.get("tx", {})}
        spec.setdefault("identity", ["entity_id"])


def _check_claims(specs, problems: list[str]) -> None:
    """Rows whose scope cannot be decided need an owner: per source table, some entity whose scope reads a
    required join means one must claim them, and no two may claim with the same rank."""
    readers: dict[str, list[dict]] = {}
    for spec in specs.entities.values():
        readers.setdefault(spec["source"]["table"], []).append(spec)
    for table, group in readers.items():
        ranks: dict[int, dict] = {}
        for spec in (s for s in group if "claims_undecided" in s):
            rank, other = spec["claims_undecided"], ranks.get(spec["claims_undecided"])
            if other:
                problems.append(
                    f"{specs.where(spec)}: claims_undecided: rank {rank} is also claimed by entity "
                    f"'{other['entity']}' ({other['_file']}) for {table}; give each entity its own rank"
                )
            ranks[rank] = spec
        deciding = [s for s in group if _deciding_joins(specs, s)]
        if deciding and not ranks:
            spec, alias = deciding[0], _deciding_joins(specs, deciding[0])[0]
            problems.append(
                f"{specs.where(spec)}: scope: it reads the required join '{alias}', so a row where that join finds "
                f"nothing cannot be decided; declare claims_undecided on one entity of {table} to own such rows"
            )


def _deciding_joins(specs, spec: dict) -> list[str]:
    """Aliases of the required joins an entity's scope reads."""
    read = scope_aliases(specs, spec)
    return [j["as"] for j in spec.get("joins", []) if j.get("required") and j["as"] in read]


def _check_attributes(specs, order, problems: list[str]) -> None:
    group_by = specs.metrics.get("group_by", [])
    for name in order:
        spec = specs.entities[name]
        where, own = specs.where(spec), set(spec.get("attributes", {})) | {"entity_id"}
        for attr in spec.get("identity", []):
            if attr not in own:
                problems.append(
                    f"{where}: identity: '{attr}' is not an attribute of this entity{did_you_mean(attr, own)}"
                )
        parent = spec.get("parent")
        inherited = set(spec.get("inherit", []))
        if parent is None and inherited:
            problems.append(f"{where}: inherit: the entity has no parent to inherit from")
        if parent:
            offer = provided(specs, parent["entity"])
            for mine, theirs in parent["on"].items():
                if mine not in own:
                    problems.append(
                        f"{where}: parent.on: '{mine}' is not an attribute of this entity{did_you_mean(mine, own)}"
                    )
                if theirs not in offer:
                    problems.append(
                        f"{where}: parent.on: parent '{parent['entity']}' does not provide '{theirs}'{did_you_mean(theirs, offer)}"
                    )
            offer_all = offer | set(resources_of(specs, parent["entity"]))
            for attr in sorted(inherited):
                if attr not in offer_all:
                    problems.append(
                        f"{where}: inherit: parent '{parent['entity']}' provides no attribute or resource '{attr}'{did_you_mean(attr, offer_all)}"
                    )
                if attr in own | set(spec["resources"]):
                    problems.append(f"{where}: inherit: '{attr}' is also an attribute or resource of this entity")
        for col in group_by:
            if col not in own | inherited:
                problems.append(
                    f"{where}: does not provide group column '{col}' ({specs.metrics['_file']}: group_by) as an attribute or inherited one"
                )
