"""Span building: one lazy plan per entity turns every source row into a span, a rejection with a reason (a
defect) or an inactive row (legitimately never active).

Order (first match wins): excluded, missing_fk (required joins, then the parent key), the entity's own rules
(each a defect or, with `inactive`, inactivity), invalid_value (a time that is text but no timestamp, a
resource that is null, NaN, infinite, negative or absurd), null_start (INV-1), zero_length (inactive) and
invalid_time_range (INV-2), invalid_tx_range (INV-11), and, among the rows left, duplicate (INV-7).
"""

from dataclasses import dataclass, field

import polars as pl

from engine.errors import EngineError, InvariantViolation
from engine.io.raw import as_text, as_timestamp, unreadable_time
from engine.plan.frames import Tables, collect
from engine.spec.checks import inactive_reasons, scope_aliases
from engine.temporal import EARLIEST, LATEST, claim

TIMES = ("valid_start", "valid_end", "planned_end", "tx_start", "tx_end", "tx_updated")
MAX_QUANTITY = 1e15  # a resource above this is no real quantity: value x hours would lose whole units


@dataclass
class Lens:
    """effective (as_of None): what happened; projected: what the databases said at as_of."""

    as_of: object = None

    @property
    def name(self) -> str:
        return "effective" if self.as_of is None else "projected"


@dataclass
class EntitySpans:
    """An entity's rows after span building: accepted pieces, rejected rows and the counts between."""

    accepted: pl.DataFrame
    rejected: pl.DataFrame
    input_rows: int
    out_of_scope: int
    not_recorded: int
    duplicates_clamped: int
    raw_times: pl.DataFrame  # valid times of every kept row before any cut, for the hour accounts
    inactive: pl.DataFrame = field(default_factory=pl.DataFrame)  # rows legitimately never active
    owned: pl.Series = field(default_factory=pl.Series)  # source row numbers in scope: this entity's rows (INV-13)
    excluded: set = field(default_factory=set)  # the manual exclusions that matched a row


def _chain(cases: list[tuple[pl.Expr, pl.Expr]]) -> pl.Expr:
    """when(c1).then(v1).when(c2)... otherwise null."""
    if not cases:
        return pl.lit(None, dtype=pl.String)
    out = pl.when(cases[0][0]).then(cases[0][1])
    for cond, value in cases[1:]:
        out = out.when(cond).then(value)
    return out.otherwise(None)


def _timestamp(tables: Tables, lf: pl.LazyFrame, where: str, field: str, text, checks: dict) -> pl.Expr:
    """The expression as a timestamp. Text that is not one, and a start after LATEST, are added to
    checks["invalid"] as (condition, detail); an end after LATEST is an open end, flagged in checks["far"]."""
    if text is None:
        return pl.lit(None, dtype=pl.Datetime("us"))
    expr, dtype = tables.typed(lf, where, field, text)
    out = as_timestamp(expr, dtype)
    if out is None:
        raise EngineError(f"{where}: {field}: expected a timestamp, got {dtype} from {text!r}")
    if (bad := unreadable_time(expr, dtype)) is not None:
        checks["invalid"].append((bad, pl.format(f"{field} ({text}) is '{{}}', not a timestamp", expr)))
    beyond = out >= pl.lit(LATEST)
    if field.split(".")[1] in ("start",):
        detail = pl.format(f"{field} ({text}) is {{}}, after {LATEST:%Y-%m-%d}", out)
        checks["invalid"].append((beyond.fill_null(False), detail))
        early = f"before {EARLIEST:%Y-%m-%d}, kept (the default window does not reach back to them)"
        checks["far"].append((field, text, (out < pl.lit(EARLIEST)).fill_null(False), early))
        return out
    checks["far"].append((field, text, beyond.fill_null(False), f"after {LATEST:%Y-%m-%d}, read as an open end"))
    return pl.when(beyond).then(None).otherwise(out)


def _resource(tables: Tables, lf: pl.LazyFrame, where: str, name: str, text, invalid: list) -> pl.Expr:
    """A resource quantity as a float; null, NaN, infinite, negative and absurdly large values (beyond
    MAX_QUANTITY, where sums of hours lose their precision) are added to `invalid`."""
    expr, dtype = tables.typed(lf, where, f"resources.{name}", text)
    if not (dtype.is_numeric() or dtype in (pl.Boolean, pl.Null)):
        raise EngineError(f"{where}: resources.{name}: expected a number, got {dtype} from {text!r}")
    value = pl.col(f"__res.{name}")
    why = (
        pl.when(~value.is_finite())
        .then(pl.lit(""))
        .when(value < 0)
        .then(pl.lit(", below 0"))
        .when(value > MAX_QUANTITY)
        .then(pl.lit(", above 1e15"))
    )
    detail = pl.format(
        f"resources.{name} ({text}) is {{}}{{}}", value.cast(pl.String).fill_null("null"), why.otherwise(pl.lit(""))
    )
    absurd = value.is_null() | ~value.is_finite() | (value < 0) | (value > MAX_QUANTITY)
    invalid.append((absurd, detail))
    return expr.cast(pl.Float64).alias(f"__res.{name}")


def build_spans(
    tables: Tables,
    spec: dict,
    lens: Lens,
    parent_keys: pl.LazyFrame | None,
    exclusions: pl.DataFrame | None = None,
    claims: bool = False,
) -> EntitySpans:
    """Accepted span pieces, rejected and inactive rows of one entity; INV-3 holds by construction and is asserted.

    `claims`: this entity owns the rows of its source table whose scope cannot be decided (a required join
    the scope reads found nothing); they are rejected as missing_fk. Other entities leave them out of scope."""
    where, name = tables.specs.where(spec), spec["entity"]
    lf, required = tables.frame(spec)
    invalid: list[tuple[pl.Expr, pl.Expr]] = []  # (condition, detail): values the engine cannot use
    checks = {"invalid": invalid, "far": []}  # far: (field, expression, condition) of ends read as open
    ex = lambda field, text: tables.expr(lf, where, field, text)  # noqa: E731
    ts = lambda field, text: _timestamp(tables, lf, where, field, text, checks)  # noqa: E731
    txt = lambda field, text: as_text(*tables.typed(lf, where, field, text))  # noqa: E731
    valid, tx = spec["valid"], spec["tx"]
    scope = [tables.condition(lf, where, f"scope[{i}]", c) for i, c in enumerate(spec.get("scope", []))]
    decided = pl.all_horizontal(scope) if scope else pl.lit(True)  # Kleene: false if any condition is false
    deciders = [j for j in required if j["as"] in scope_aliases(tables.specs, spec)]
    missing = pl.any_horizontal(pl.col(f"__matched.{j['as']}").is_null() for j in deciders) if deciders else False
    lf = lf.with_columns(
        pl.lit(name).alias("entity"),
        txt("source.key", spec["source"]["key"]).alias("entity_id"),
        pl.lit(spec["metric"]).alias("metric"),
        # A condition false on known values takes the row out of scope; one that cannot be decided because
        # the join it reads found nothing leaves the row to the entity that claims such rows.
        (decided.fill_null(False) | (decided.is_null() & missing & claims)).alias("__in_scope"),
        ts("valid.start", valid["start"]).alias("valid_start"),
        ts("valid.end", valid.get("end")).alias("valid_end"),
        ts("valid.planned_end", valid.get("planned_end")).alias("planned_end"),
        ts("tx.start", tx.get("start")).alias("tx_start"),
        ts("tx.end", tx.get("end")).alias("tx_end"),
        ts("tx.updated", tx.get("updated")).alias("tx_updated"),
        pl.lit(False).alias("tx_uncertain"),
        *(txt(f"attributes.{a}", e).alias(a) for a, e in spec.get("attributes", {}).items()),
        *(_resource(tables, lf, where, r, e, invalid) for r, e in spec["resources"].items()),
        *(ex(f"measures.{m}", e).alias(f"__measure.{m}") for m, e in spec.get("measures", {}).items()),
        *(
            tables.condition(lf, where, f"rules[{i}].when", r["when"]).fill_null(False).alias(f"__rule{i}")
            for i, r in enumerate(spec.get("rules", []))
        ),
        *(
            (ex(f"rules[{i}].detail", r["detail"]) if "detail" in r else pl.lit(f"{r['when']}"))
            .cast(pl.String)
            .alias(f"__detail{i}")
            for i, r in enumerate(spec.get("rules", []))
        ),
    )
    if lens.as_of is not None:
        versioned = [f"{j['as']}.__versioned" for j in spec.get("joins", []) if "history" in j]
        lf = _project(lf, lens.as_of, [c for c in versioned if c in lf.collect_schema()])
    cases = []
    if exclusions is not None and exclusions.height:
        marks = exclusions.select(
            "entity_id", *(pl.col(c).alias(f"__ex.{c}") for c in ("valid_from", "valid_to", "detail", "exclusion"))
        )
        lf = lf.join(marks.lazy(), on="entity_id", how="left")
        frm, to = pl.col("__ex.valid_from"), pl.col("__ex.valid_to")
        reaches = frm.is_null() | pl.col("valid_end").is_null() | (pl.col("valid_end") > frm)
        starts = to.is_null() | pl.col("valid_start").is_null() | (pl.col("valid_start") < to)
        cases.append(
            (pl.col("__ex.exclusion").is_not_null() & reaches & starts, pl.lit("excluded"), pl.col("__ex.detail"))
        )
    for join in required:
        keys = ", ".join(f"{right}={{}}" for right in join["on"].values())
        values = [pl.col(left).cast(pl.String).fill_null("null") for left in join["on"]]
        detail = pl.format(f"{join['as']}: no {join['table']} row with {keys}", *values)
        cases.append((pl.col(f"__matched.{join['as']}").is_null(), pl.lit("missing_fk"), detail))
    if parent_keys is not None:
        lf = lf.join(
            parent_keys.with_columns(pl.lit(True).alias("__parent_found")), on=list(spec["parent"]["on"]), how="left"
        )
        keys = ", ".join(f"{theirs}={{}}" for theirs in spec["parent"]["on"].values())
        values = [pl.col(mine).fill_null("null") for mine in spec["parent"]["on"]]
        detail = pl.format(f"parent: no accepted {spec['parent']['entity']} with {keys}", *values)
        cases.append((pl.col("__parent_found").is_null(), pl.lit("missing_fk"), detail))
    for i, rule in enumerate(spec.get("rules", [])):
        cases.append((pl.col(f"__rule{i}"), pl.lit(rule["reason"]), pl.col(f"__detail{i}")))
    invalid.insert(0, (pl.col("entity_id").is_null(), pl.lit(f"source.key ({spec['source']['key']}) is null")))
    cases += [(cond, pl.lit("invalid_value"), detail) for cond, detail in invalid]
    start, end, t0, t1 = (pl.col(c) for c in ("valid_start", "valid_end", "tx_start", "tx_end"))
    cases += [
        (start.is_null(), pl.lit("null_start"), pl.lit(f"valid.start ({valid['start']}) is null")),
        (end == start, pl.lit("zero_length"), pl.format("valid_end equals valid_start {}: a span of no time", start)),
        (end < start, pl.lit("invalid_time_range"), pl.format("valid_end {} is before valid_start {}", end, start)),
        (t1 < t0, pl.lit("invalid_tx_range"), pl.format("tx_end {} is before tx_start {}", t1, t0)),
    ]
    lf = lf.with_columns(
        _chain([(c, r) for c, r, _ in cases]).alias("rejection_reason"),
        _chain([(c, d) for c, _, d in cases]).alias("rejection_detail"),
        *(flag.alias(f"__far{i}") for i, (_, _, flag, _) in enumerate(checks["far"])),
    )
    rows = collect(lf.sort("__row"), where, tables)
    for i, (name_of, text, _, what) in enumerate(checks["far"]):
        far = rows.filter(pl.col(f"__far{i}"))["entity_id"]
        if far.len():
            tables.notes.append(f"{where}: {name_of} ({text}): {far.len()} row(s) {what} (e.g. entity_id {far[0]})")
    repeated = rows.filter(pl.col("entity_id").is_duplicated() & pl.col("entity_id").is_not_null())["entity_id"]
    if repeated.len():
        tables.notes.append(
            f"{where}: source.key: {repeated.n_unique()} {spec['source']['key']} value(s) of {spec['source']['table']} "
            f"are on more than one row (e.g. {repeated[0]}); each row is kept, so entity_id is not unique"
        )
    in_lens = pl.col("__recorded") if "__recorded" in rows.columns else pl.lit(True)
    kept = rows.filter(pl.col("__in_scope") & in_lens)
    never = pl.col("rejection_reason").is_in(inactive_reasons(spec))
    rejected = kept.filter(pl.col("rejection_reason").is_not_null() & ~never)
    inactive = kept.filter(never)
    accepted = kept.filter(pl.col("rejection_reason").is_null())
    accepted, duplicates, clamped = _resolve_duplicates(accepted, spec["identity"])
    rejected = pl.concat([rejected, duplicates], how="diagonal_relaxed").sort("__row")
    out = EntitySpans(
        accepted=accepted.select(_span_columns(spec)),
        rejected=rejected.select(pl.exclude("^__.*$")),
        inactive=inactive.select(pl.exclude("^__.*$")),
        owned=rows.filter(pl.col("__in_scope"))["__row"],
        input_rows=rows.height,
        out_of_scope=rows.filter(~pl.col("__in_scope")).height,
        not_recorded=rows.filter(pl.col("__in_scope") & ~in_lens).height,
        duplicates_clamped=clamped,
        raw_times=kept.select("__row", "valid_start", "valid_end"),
        excluded=set(rejected.filter(pl.col("rejection_reason") == "excluded")["__ex.exclusion"])
        if "__ex.exclusion" in rejected.columns
        else set(),
    )
    counted_rows = accepted.select(pl.col("__row").n_unique()).item() if accepted.height else 0
    accounted = counted_rows + rejected.height + inactive.height + out.out_of_scope + out.not_recorded
    if out.input_rows != accounted:
        raise InvariantViolation(
            f"INV-3 violated for entity '{spec['entity']}': {out.input_rows} input rows != {counted_rows} accepted + "
            f"{rejected.height} rejected + {inactive.height} inactive + {out.out_of_scope} out of scope + "
            f"{out.not_recorded} not recorded (engine bug)"
        )
    return out


def _project(lf: pl.LazyFrame, as_of, versioned: list[str]) -> pl.LazyFrame:
    """Projected lens: keep what was recorded by as_of and undo every later deletion.

    A row changed after as_of keeps only its latest values, unless a history table gave the version
    of as_of: otherwise it is tx_uncertain (counted, flagged, reported).
    """
    deleted_later = pl.col("tx_end") > as_of
    recovered = pl.any_horizontal(pl.col(c).fill_null(False) for c in versioned) if versioned else pl.lit(False)
    return lf.with_columns(
        pl.col("tx_start").le(as_of).fill_null(True).alias("__recorded"),
        pl.when(deleted_later).then(pl.col("planned_end")).otherwise(pl.col("valid_end")).alias("valid_end"),
        pl.when(deleted_later).then(None).otherwise(pl.col("tx_end")).alias("tx_end"),
        ((pl.col("tx_updated") > as_of).fill_null(False) & ~recovered).alias("tx_uncertain"),
    )


def _span_columns(spec: dict) -> list:
    """Columns of an accepted span; resources are kept apart from raw columns of the same name until here."""
    attrs = list(spec.get("attributes", {}))
    resources = [pl.col(f"__res.{r}").alias(r) for r in spec["resources"]]
    measures = [pl.col(f"__measure.{m}").alias(m) for m in spec.get("measures", {})]
    return ["__row", "entity", "entity_id", "metric", *TIMES[:2], *TIMES[3:5], "original_start", "original_end",
            "tx_uncertain", *attrs, *resources, *measures]  # fmt: skip


def _resolve_duplicates(accepted: pl.DataFrame, identity: list[str]) -> tuple[pl.DataFrame, pl.DataFrame, int]:
    """INV-7: rows sharing an identity never count the same instant twice; the earlier-recorded row wins.

    Returns (pieces, rows rejected as duplicate, number of rows cut to their uncovered part).
    """
    pieces, conflicts = claim(
        accepted.lazy(), identity, "valid_start", "valid_end", ["tx_start", "entity_id", "__row"], "__row"
    )
    pieces, conflicts = pl.collect_all([pieces, conflicts])
    owners = accepted.select(pl.col("__row").alias("covered_by"), pl.col("entity_id").alias("__owner_id"))
    conflicts = conflicts.join(owners, on="covered_by")
    lost = accepted.join(pieces.select("__row").unique(), on="__row", how="anti")
    ident = ", ".join(f"{c}={{}}" for c in identity)
    duplicates = lost.join(conflicts, on="__row").with_columns(
        pl.lit("duplicate").alias("rejection_reason"),
        pl.format(f"covered by entity_id {{}} with the same identity ({ident})", "__owner_id", *identity).alias(
            "rejection_detail"
        ),
    )
    cut = conflicts.join(pieces.select("__row").unique(), on="__row").select("__row")
    spans = (
        accepted.join(pieces.rename({"valid_start": "__s", "valid_end": "__e"}), on="__row")
        .with_columns(
            pl.when(pl.col("__row").is_in(cut["__row"].implode())).then(pl.col("valid_start")).alias("original_start"),
            pl.when(pl.col("__row").is_in(cut["__row"].implode())).then(pl.col("valid_end")).alias("original_end"),
        )
        .with_columns(pl.col("__s").alias("valid_start"), pl.col("__e").alias("valid_end"))
        .sort("__row", "valid_start")
    )
    return spans, duplicates.drop("covered_by", "__owner_id"), cut.height
