"""Checks across spec files that JSON Schema cannot express, one function per concern: the metrics, names
and references, cycles (found in the one spec graph), expressions, claims on undecided rows, attributes.
Every problem is collected, so `engine validate` shows them all at once."""

from engine.errors import ExprError, SpecError
from engine.expr import columns_of, did_you_mean, misplaced
from engine.graph import build_graph, cycle
from engine.io.output import CHARGED, DAILY, INACTIVE, REJECTED, TIMES, VALIDATED
from engine.spec.model import expand

# Rejection reasons the engine assigns itself (engine/plan/spans.py); entity rules may not reuse them.
BUILTIN_REASONS = ("excluded", "missing_fk", "invalid_value", "null_start", "zero_length", "invalid_time_range")
BUILTIN_REASONS += ("invalid_tx_range", "duplicate")
# Columns every span carries: an attribute, resource or measure of the same name would overwrite one.
ENGINE_COLUMNS = frozenset({*VALIDATED, *REJECTED, *INACTIVE, *TIMES})


def check_specs(specs) -> None:
    """Raise SpecError with every cross-file problem."""
    problems = _metrics(specs) + _references(specs)
    for spec in specs.by_name.values():
        problems += _expressions(specs, spec)
    if not problems:  # cycles, claims and attributes need every reference and expression to resolve
        graph = build_graph(specs)
        problems += _cycles(specs, graph)
        problems += _formulas(specs.metrics) if not problems else []
        problems += _claims(specs) if not problems else []
        problems += _attributes(specs) if not problems else []
        problems += _breakdowns(specs) if not problems else []
    if problems:
        raise SpecError(problems)


def _metrics(specs) -> list[str]:
    """A metrics file; known formula terms and stack metrics."""
    if specs.metrics is None:
        return [f"{specs.root}: no metrics file (a YAML file with a top-level 'metrics' field)"]
    metrics, file, out = specs.metrics.metrics, specs.metrics.file, []
    keys = [*DAILY, *specs.metrics.group_by]  # the export writes a column per metric beside these
    out += [
        f"{file}: metrics.{name}: a metric may not be named like a column of the daily outputs ({', '.join(keys)})"
        for name in metrics
        if name in keys
    ]
    for name, metric in metrics.items():
        out += [
            f"{file}: metrics.{name}.formula: unknown metric '{term}'{did_you_mean(term, metrics)}"
            for _, term in metric.terms
            if term not in metrics
        ]
    legacy = specs.metrics.legacy
    for field, expr in legacy.expressions() if legacy else ():
        out += _read(file, f"legacy.{field}", expr)[1]
    out += [  # the engine's side of a cell is a day of daily.parquet, split by the group columns only
        f"{file}: legacy.group_by: '{g}' is not a column of group_by ({', '.join(specs.metrics.group_by) or 'none'}), "
        "by which the engine's days are split"
        for g in (legacy.group_by if legacy else ())
        if g not in specs.metrics.group_by
    ]
    stack = specs.metrics.stack or {}
    drawn = [*(m for g in stack.get("groups", {}).values() for m in g), *stack.get("dashed", []), stack.get("line")]
    out += [f"{file}: stack: unknown metric '{m}'{did_you_mean(m, metrics)}" for m in drawn if m and m not in metrics]
    return out


def _breakdowns(specs) -> list[str]:
    """Breakdown and charge columns are attributes some entity provides (own or inherited), and new group
    columns; charges name a base metric."""
    metrics = specs.metrics
    file, out = metrics.file, []
    provided = {c for name in specs.entities for c in specs.provided(name)}
    taken = {*DAILY, *CHARGED, *metrics.group_by}  # the columns of the daily outputs and the charges
    charges = metrics.charges
    named = [(f"breakdowns.{name}.by", b.by) for name, b in metrics.breakdowns.items()]
    for field, cols in named + ([("charges.by", charges.by)] if charges else []):
        for c in cols:
            if c in taken:
                out.append(f"{file}: {field}: '{c}' is a column of the outputs already (site, group_by, metric, ...)")
            elif c not in provided:
                out.append(f"{file}: {field}: '{c}' is not an attribute of any entity{did_you_mean(c, provided)}")
    resources = {r for name in specs.entities for r in specs.resources_of(name)}
    asked = [(f"breakdowns.{name}.resources", b.resources or ()) for name, b in metrics.breakdowns.items()]
    asked += [("stack.resource", (metrics.stack["resource"],))] if metrics.stack else []
    for field, names in asked + ([("charges.resource", (charges.resource,))] if charges else []):
        out += [
            f"{file}: {field}: '{r}' is not a resource of any entity{did_you_mean(r, resources)}"
            for r in names
            if r not in resources
        ]
    for field, column in [("factor", charges.factor), ("fallback.column", charges.fallback.column)] if charges else []:
        if column not in provided:  # a typo would charge every lease the fallback, silently
            hint = did_you_mean(column, provided)
            out.append(f"{file}: charges.{field}: '{column}' is not an attribute of any entity{hint}")
    if charges and charges.metric not in metrics.base():
        hint = " (it is derived)" if charges.metric in metrics.metrics else did_you_mean(charges.metric, metrics.base())
        out.append(f"{file}: charges.metric: '{charges.metric}' is not a base metric{hint}")
    return out


def _references(specs) -> list[str]:
    """Every name a spec refers to exists: metrics, parents, reports' entities; rule reasons and attribute
    names do not take the engine's own."""
    out, base = [], specs.metrics.base() if specs.metrics else []
    for spec in specs.entities.values():
        where = spec.where
        if specs.metrics and spec.metric not in base:
            hint = " (it is derived: entities feed base metrics only)" if spec.metric in specs.metrics.metrics else ""
            hint = hint or did_you_mean(spec.metric, base)
            out.append(f"{where}: metric: '{spec.metric}' is not a base metric of {specs.metrics.file}{hint}")
        out += [
            f"{where}: rules[{i}].reason: '{rule.reason}' is a built-in rejection reason"
            for i, rule in enumerate(spec.rules)
            if rule.reason in BUILTIN_REASONS
        ]
        for part in ("attributes", "resources", "measures"):
            out += [
                f"{where}: {part}.{name}: '{name}' is a column of the engine's own; choose another name"
                for name in sorted(set(getattr(spec, part)) & ENGINE_COLUMNS)
            ]
        if spec.parent and spec.parent.entity == spec.name:
            out.append(f"{where}: parent.entity: an entity cannot be its own parent")
        elif spec.parent and spec.parent.entity not in specs.entities:
            name = spec.parent.entity
            out.append(f"{where}: parent.entity: unknown entity '{name}'{did_you_mean(name, specs.entities)}")
    for spec in specs.reports.values():
        name = spec.source.entity
        if name and name not in specs.entities:
            out.append(f"{spec.where}: source.entity: unknown entity '{name}'{did_you_mean(name, specs.entities)}")
    return out


def _expressions(specs, spec) -> list[str]:
    """Tables a spec names exist, aliases are declared before use and once, every expression parses and reads
    only declared aliases."""
    out, aliases = [], [j.alias for j in spec.joins]
    readable = specs.lookups | (specs.reports if spec.kind == "report" else {})  # only reports read reports
    named = [("source.table", spec.source.table)] + [(f"joins[{i}].table", j.table) for i, j in enumerate(spec.joins)]
    for field, table in named:
        if table is not None and "." not in table and table not in readable:
            out.append(f"{spec.where}: {field}: unknown lookup '{table}'{did_you_mean(table, readable)}")
    for i, join in enumerate(spec.joins):
        out += [
            f"{spec.where}: joins[{i}].on: '{left}' does not name an earlier join's alias"
            for left in join.on
            if "." in left and left.split(".")[0] not in aliases[:i]
        ]
    out += [
        f"{spec.where}: joins: alias '{a}' is used twice" for a in sorted({a for a in aliases if aliases.count(a) > 1})
    ]
    for field, expr in spec.expressions():
        refs, problems = _read(spec.where, field, expr, grouped=field.startswith("aggregate."))
        out += problems
        for ref in sorted(r for r in refs if "." in r and r.split(".")[0] not in aliases):
            alias = ref.split(".")[0]
            out.append(
                f"{spec.where}: {field}: '{ref}' uses alias '{alias}', which no join declares{did_you_mean(alias, aliases)}"
            )
    return out


def _read(where: str, field: str, expr, *, grouped: bool = False) -> tuple[set[str], list[str]]:
    """The columns an expression reads, and its problems: it must parse and fit its place (an aggregate only
    in a group's `aggregate`)."""
    try:
        refs = columns_of(expr)
    except ExprError as exc:
        return set(), [f"{where}: {field}: cannot parse {expr!r}: {exc}"]
    why = misplaced(expr, grouped=grouped)
    return refs, [f"{where}: {field}: {why}"] if why else []


def _cycles(specs, graph) -> list[str]:
    """Parent links, lookups and reports reading each other, and formulas, each acyclic (shown as a path)."""
    found = [
        (f"{specs.root}: parent links form a cycle", cycle(graph, "parent")),
        (f"{specs.root}: lookups or reports read each other in a cycle", cycle(graph, "reads")),
        (f"{specs.metrics.file}: metrics: formulas form a cycle", cycle(graph, "formula")),
    ]
    return [f"{what}: {path}" for what, path in found if path]


def _formulas(metrics) -> list[str]:
    """Each derived metric counts each base metric's hours once, added or taken away, and not none at all:
    a stack is made of sets of node-hours, so `a + a` counts hours twice and `a - a` is zero whatever the
    data."""
    out = []
    for name, terms in expand(metrics.metrics).items():
        if not terms:
            out.append(f"{metrics.file}: metrics.{name}.formula: its terms cancel out: it is zero whatever the data")
        out += [
            f"{metrics.file}: metrics.{name}.formula: counts base metric '{base}' with weight {coef:+d}; each "
            "base metric may be added or taken away once"
            for base, coef in terms.items()
            if abs(coef) > 1
        ]
    return out


def _claims(specs) -> list[str]:
    """Rows whose scope cannot be decided need an owner: per source table, some entity whose scope reads a
    required join means one must claim them, and no two may claim with the same rank."""
    out, readers = [], {}
    for spec in specs.entities.values():
        readers.setdefault(spec.source.table, []).append(spec)
    for table, group in readers.items():
        ranks: dict[int, object] = {}
        for spec in (s for s in group if s.claims_undecided is not None):
            other = ranks.setdefault(spec.claims_undecided, spec)
            if other is not spec:
                out.append(
                    f"{spec.where}: claims_undecided: rank {spec.claims_undecided} is also claimed by entity "
                    f"'{other.name}' ({other.file}) for {table}; give each entity its own rank"
                )
        deciding = [s for s in group if s.deciding_joins()]
        if deciding and not ranks:
            spec = deciding[0]
            out.append(
                f"{spec.where}: scope: it reads the required join '{spec.deciding_joins()[0]}', so a row where that "
                f"join finds nothing cannot be decided; declare claims_undecided on one entity of {table} to own such rows"
            )
    return out


def _attributes(specs) -> list[str]:
    """Identities, parent keys, inherited names and group columns are what the entities provide."""
    out, group_by = [], specs.metrics.group_by
    for spec in specs.entities.values():
        where, own = spec.where, {*spec.attributes, "entity_id"}
        out += [
            f"{where}: identity: '{a}' is not an attribute of this entity{did_you_mean(a, own)}"
            for a in spec.identity
            if a not in own
        ]
        if spec.parent is None and spec.inherit:
            out.append(f"{where}: inherit: the entity has no parent to inherit from")
        if spec.parent:
            out += _parent_keys(specs, spec, own)
        out += [
            f"{where}: does not provide group column '{col}' ({specs.metrics.file}: group_by) as an attribute or "
            "inherited one"
            for col in group_by
            if col not in own | set(spec.inherit)
        ]
    return out


def _parent_keys(specs, spec, own: set[str]) -> list[str]:
    """The child's side of its parent link is its own; the parent provides the other side and what is inherited."""
    out, parent = [], spec.parent.entity
    offer = specs.provided(parent)
    for mine, theirs in spec.parent.on.items():
        if mine not in own:
            out.append(f"{spec.where}: parent.on: '{mine}' is not an attribute of this entity{did_you_mean(mine, own)}")
        if theirs not in offer:
            out.append(
                f"{spec.where}: parent.on: parent '{parent}' does not provide '{theirs}'{did_you_mean(theirs, offer)}"
            )
    everything = offer | set(specs.resources_of(parent))
    for attr in sorted(spec.inherit):
        if attr not in everything:
            out.append(
                f"{spec.where}: inherit: parent '{parent}' provides no attribute or resource '{attr}'"
                f"{did_you_mean(attr, everything)}"
            )
        if attr in own | set(spec.resources):
            out.append(f"{spec.where}: inherit: '{attr}' is also an attribute or resource of this entity")
    return out
