"""The specs as typed, frozen objects, parsed once from validated YAML (dbt's parsed nodes): nothing downstream
reads a dict of a spec file or checks for a missing key. Optional fields take their defaults from the JSON
Schema (`default`), where the format is defined, before they get here."""

import graphlib
import re
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True, kw_only=True)
class Archive:
    """The table a raw table's old rows are moved to, read as one table with it (`Specs.archives`); `file`,
    the spec that declared it, is for messages and not part of the declaration."""

    table: str
    key: tuple[str, ...]
    file: str = field(default="", compare=False)


@dataclass(frozen=True, kw_only=True)
class Source:
    """The rows a spec is about: a raw table or a lookup (`table`), or an entity's validated spans (reports)."""

    table: str | None = None
    entity: str | None = None
    key: str | None = None
    optional_columns: tuple[str, ...] = ()
    archive: Archive | None = None


@dataclass(frozen=True, kw_only=True)
class AsOf:
    left: str
    right: str
    fallback: str


@dataclass(frozen=True, kw_only=True)
class History:
    table: str
    key: str
    recorded_at: str
    columns: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class Join:
    table: str
    alias: str
    on: dict[str, str]
    required: bool
    optional: bool
    optional_columns: tuple[str, ...]
    archive: Archive | None = None
    asof: AsOf | None = None
    history: History | None = None


@dataclass(frozen=True, kw_only=True)
class Json:
    """A derived column taken from JSON text: the expression holding the text and a JSONPath."""

    json: str
    path: str


@dataclass(frozen=True, kw_only=True)
class Rule:
    reason: str
    when: str
    detail: str | None
    inactive: bool


@dataclass(frozen=True, kw_only=True)
class Parent:
    entity: str
    on: dict[str, str]


@dataclass(frozen=True, kw_only=True)
class Spec:
    """What every spec has: its rows (source, joins, derived columns) and the scope that selects them."""

    kind: str
    name: str
    file: str
    description: str
    source: Source
    joins: tuple[Join, ...]
    columns: dict[str, str | Json]
    scope: tuple[str, ...]

    @property
    def where(self) -> str:
        """'file: kind 'name'', the prefix of every message about this spec."""
        return f"{self.file}: {self.kind} '{self.name}'"

    def archived(self):
        """(field, live table, archive) of every table reference of the spec that declares an archive."""
        if self.source.archive:
            yield "source.archive", self.source.table, self.source.archive
        for i, join in enumerate(self.joins):
            if join.archive:
                yield f"joins[{i}].archive", join.table, join.archive

    def expressions(self):
        """(field, expression) of every expression the spec holds, for the checks and the column lists."""
        for name, col in self.columns.items():
            yield f"columns.{name}", col.json if isinstance(col, Json) else col
        for i, cond in enumerate(self.scope):
            yield f"scope[{i}]", cond


@dataclass(frozen=True, kw_only=True)
class Entity(Spec):
    """One kind of span: a thing that held resources over a time interval."""

    metric: str
    valid: dict[str, str | None]  # start, end, planned_end
    tx: dict[str, str | None]  # start, end, updated
    identity: tuple[str, ...]
    rules: tuple[Rule, ...]
    attributes: dict[str, str]
    parent: Parent | None
    inherit: tuple[str, ...]
    resources: dict[str, str]
    measures: dict[str, str]
    invariants: tuple[str, ...] | None
    claims_undecided: int | None

    @property
    def inactive_reasons(self) -> tuple[str, ...]:
        """Reasons that mark a row never active rather than a defect: the rules declared `inactive`, and a
        span of no time."""
        return (*(r.reason for r in self.rules if r.inactive), "zero_length")

    def scope_aliases(self) -> set[str]:
        """Aliases of the joins the scope reads, directly or through derived columns."""
        from engine.expr import columns_of

        pending, seen, aliases = [c for cond in self.scope for c in columns_of(cond)], set(), set()
        while pending:
            name = pending.pop()
            if name in seen:
                continue
            seen.add(name)
            if "." in name:
                aliases.add(name.split(".")[0])
            elif name in self.columns:
                derived = self.columns[name]
                pending += columns_of(derived.json if isinstance(derived, Json) else derived)
        return aliases

    def deciding_joins(self) -> list[str]:
        """Aliases of the required joins the scope reads: when one finds nothing, the scope cannot be decided."""
        read = self.scope_aliases()
        return [j.alias for j in self.joins if j.required and j.alias in read]

    def expressions(self):
        yield from super().expressions()
        for part in ("valid", "tx"):
            yield from ((f"{part}.{k}", e) for k, e in getattr(self, part).items() if e is not None)
        for i, rule in enumerate(self.rules):
            yield f"rules[{i}].when", rule.when
            if rule.detail is not None:
                yield f"rules[{i}].detail", rule.detail
        for part in ("attributes", "resources", "measures"):
            yield from ((f"{part}.{k}", e) for k, e in getattr(self, part).items())


@dataclass(frozen=True, kw_only=True)
class Lookup(Spec):
    """A derived table (kind lookup), or one over the engine's own outputs written as a report (kind report)."""

    order_by: tuple[str, ...]
    group_by: tuple[str, ...]
    aggregate: dict[str, str]

    def expressions(self):
        yield from super().expressions()
        yield from ((f"aggregate.{k}", e) for k, e in self.aggregate.items())
        for part in ("order_by", "group_by"):
            yield from ((f"{part}[{i}]", c) for i, c in enumerate(getattr(self, part)))


@dataclass(frozen=True, kw_only=True)
class Metric:
    name: str
    description: str
    formula: str | None

    @property
    def terms(self) -> list[tuple[int, str]]:
        """'a - b + c' -> [(1, 'a'), (-1, 'b'), (1, 'c')]; none for a base metric."""
        found = re.findall(r"([-+]?)\s*([a-z_][a-z0-9_]*)", self.formula or "")
        return [(-1 if sign == "-" else 1, name) for sign, name in found]


@dataclass(frozen=True, kw_only=True)
class Legacy:
    """The older report to compare with, mapped onto our group columns and metrics."""

    table: str
    date: str
    group_by: dict[str, str]
    metrics: dict[str, str]
    tolerance: dict[str, float]

    def expressions(self):
        """(field, expression) of every expression, as Spec.expressions: all row-wise."""
        yield "date", self.date
        for part in ("group_by", "metrics"):
            yield from ((f"{part}.{k}", e) for k, e in getattr(self, part).items())


@dataclass(frozen=True, kw_only=True)
class Breakdown:
    """Daily hours split by more group columns (`by`), for these resources (None: every one)."""

    by: tuple[str, ...]
    resources: tuple[str, ...] | None


@dataclass(frozen=True, kw_only=True)
class Fallback:
    """The factor where the data records none: `values` by the value of `column`, else `default`."""

    column: str
    values: dict[str, float]
    default: float


@dataclass(frozen=True, kw_only=True)
class Charges:
    """Service units: `metric`'s hours of `resource` times each node's factor, charged to the `by` columns."""

    metric: str
    resource: str
    by: tuple[str, ...]
    factor: str
    fallback: Fallback


def expand(metrics: dict[str, Metric]) -> dict[str, dict[str, int]]:
    """Each metric as signed base metrics: available_ondemand -> {total: 1, reservable: -1, occupied_ondemand: -1}.

    Built in dependency order, each metric once, so a long or widely shared chain of formulas costs one
    step per metric (no recursion, no repeated expansion); the formulas must be acyclic and name known
    metrics (spec/checks.py)."""
    order = graphlib.TopologicalSorter({name: [part for _, part in m.terms] for name, m in metrics.items()})
    out: dict[str, dict[str, int]] = {}
    for name in order.static_order():
        if not metrics[name].formula:
            out[name] = {name: 1}
            continue
        summed: dict[str, int] = {}
        for sign, part in metrics[name].terms:
            for base, coef in out[part].items():
                summed[base] = summed.get(base, 0) + sign * coef
        out[name] = {b: c for b, c in summed.items() if c}
    return {name: out[name] for name in metrics}


@dataclass(frozen=True, kw_only=True)
class Metrics:
    file: str
    metrics: dict[str, Metric]
    group_by: tuple[str, ...]
    stack: dict | None  # resource, groups, line, dashed: read only by the report's stack chart
    legacy: Legacy | None
    breakdowns: dict[str, Breakdown] = field(default_factory=dict)
    charges: Charges | None = None

    def base(self) -> list[str]:
        return [m for m, spec in self.metrics.items() if spec.formula is None]


@dataclass(frozen=True, kw_only=True)
class Specs:
    """A validated spec directory."""

    root: Path
    entities: dict[str, Entity]
    lookups: dict[str, Lookup]
    reports: dict[str, Lookup]
    metrics: Metrics | None
    notes: tuple[str, ...] = ()
    digest: str = ""
    by_name: dict = field(default_factory=dict)  # any spec by name: entities, lookups and reports
    archives: dict[str, Archive] = field(default_factory=dict)  # live raw table -> its archive, from every spec

    def resources_of(self, name: str) -> list[str]:
        """Resources of an entity's validated spans: its own, then those it inherits (over time) from its
        parent."""
        spec = self.entities[name]
        parent = spec.parent.entity if spec.parent else None
        if parent not in self.entities:
            return list(spec.resources)
        return [*spec.resources, *(r for r in spec.inherit if r in self.resources_of(parent))]

    def provided(self, name: str) -> set[str]:
        """Attributes an entity offers its children and outputs: its own, inherited ones and entity_id."""
        spec = self.entities[name]
        return ({*spec.attributes, *spec.inherit, "entity_id"}) - set(self.resources_of(name))

    def claimers(self, names: list[str]) -> set[str]:
        """Of the given entities, those that own their source table's undecided rows: per table, the lowest
        `claims_undecided` rank among them."""
        best: dict[str, tuple[int, str]] = {}
        for spec in (self.entities[n] for n in names if self.entities[n].claims_undecided is not None):
            rank, table = (spec.claims_undecided, spec.name), spec.source.table
            best[table] = min(best.get(table, rank), rank)
        return {name for _, name in best.values()}


def _fallback(*, column: str, values: dict, default) -> Fallback:
    """The factors as floats: YAML reads 3 as an integer, and {a: 3, b: 1.5} must not be a Polars type error."""
    return Fallback(column=column, values={k: float(v) for k, v in values.items()}, default=float(default))


def parse(kind: str, data: dict, file: str):
    """The typed spec of one validated, default-filled spec file."""
    if kind == "metrics":
        metrics = {
            n: Metric(name=n, description=m["description"], formula=m.get("formula"))
            for n, m in data["metrics"].items()
        }
        legacy = Legacy(**data["legacy"]) if "legacy" in data else None
        charges = data.get("charges")
        return Metrics(
            file=file,
            metrics=metrics,
            group_by=tuple(data["group_by"]),
            stack=data.get("stack"),
            legacy=legacy,
            breakdowns={
                name: Breakdown(by=tuple(b["by"]), resources=tuple(b["resources"]) if "resources" in b else None)
                for name, b in data["breakdowns"].items()
            },
            charges=Charges(**charges | {"by": tuple(charges["by"]), "fallback": _fallback(**charges["fallback"])})
            if charges
            else None,
        )
    common = {
        "kind": kind,
        "name": data[kind],
        "file": file,
        "description": data["description"],
        "source": _source(data["source"], file),
        "joins": tuple(_join(j, file) for j in data["joins"]),
        "columns": {n: Json(**c) if isinstance(c, dict) else c for n, c in data["columns"].items()},
        "scope": tuple(data["scope"]),
    }
    if kind != "entity":
        return Lookup(
            **common, order_by=tuple(data["order_by"]), group_by=tuple(data["group_by"]), aggregate=data["aggregate"]
        )
    parent = Parent(**data["parent"]) if "parent" in data else None
    return Entity(
        **common,
        metric=data["metric"],
        valid=data["valid"],
        tx=data["tx"],
        identity=tuple(data["identity"]),
        rules=tuple(Rule(**r) for r in data["rules"]),
        attributes=data["attributes"],
        parent=parent,
        inherit=tuple(data["inherit"]),
        resources=data["resources"],
        measures=data["measures"],
        invariants=tuple(data["invariants"]) if "invariants" in data else None,
        claims_undecided=data.get("claims_undecided"),
    )


def _archive(data: dict | None, file: str) -> Archive | None:
    return Archive(table=data["table"], key=tuple(data["key"]), file=file) if data else None


def _source(data: dict, file: str) -> Source:
    fields = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items() if k != "archive"}
    return Source(**fields, archive=_archive(data.get("archive"), file))


def _join(data: dict, file: str) -> Join:
    asof = AsOf(**data["asof"]) if "asof" in data else None
    history = data.get("history")
    history = History(**history | {"columns": tuple(history["columns"])}) if history else None
    return Join(
        table=data["table"],
        alias=data["as"],
        on=data["on"],
        required=data["required"],
        optional=data["optional"],
        optional_columns=tuple(data["optional_columns"]),
        archive=_archive(data.get("archive"), file),
        asof=asof,
        history=history,
    )
