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
from engine.io.output import TIMES
from engine.io.raw import as_text, as_timestamp, unreadable_time
from engine.temporal import EARLIEST, LATEST, claim

MAX_QUANTITY = 1e15  # a resource above this is no real quantity: value x hours would lose whole units
TIME_FIELDS = ("valid.start", "valid.end", "valid.planned_end", "tx.start", "tx.end", "tx.updated")  # of TIMES


@dataclass(frozen=True)
class Lens:
    """effective (as_of None): what happened; projected: what the databases said at as_of."""

    as_of: object = None

    @property
    def name(self) -> str:
        return "effective" if self.as_of is None else "projected"


@dataclass
class EntitySpans:
    """An entity's rows after span building: accepted pieces, rejected and inactive rows, the counts between."""

    accepted: pl.DataFrame
    rejected: pl.DataFrame
    inactive: pl.DataFrame
    input_rows: int
    out_of_scope: int
    not_recorded: int
    duplicates_clamped: int
    raw_times: pl.DataFrame  # valid times of every kept row before any cut, for the hour accounts
    owned: pl.Series  # source row numbers in scope: this entity's rows (INV-13)
    excluded: set = field(default_factory=set)  # the manual exclusions that matched a row


@dataclass
class _Checks:
    """What span building learns while it compiles a spec: values the engine cannot use, as (condition,
    detail), and times beyond the documented bounds, as (field, expression, condition, what was done)."""

    invalid: list = field(default_factory=list)
    far: list = field(default_factory=list)


def build_spans(frames, spec, *, lens: Lens, parent_keys=None, exclusions=None, claims: bool = False) -> EntitySpans:
    """Accepted span pieces, rejected and inactive rows of one entity; INV-3 holds by construction and is asserted.

    `claims`: this entity owns the rows of its source table whose scope cannot be decided (a required join
    the scope reads found nothing); they are rejected as missing_fk. Other entities leave them out of scope."""
    lf, required = frames.frame(spec)
    checks = _Checks()
    lf = lf.with_columns(*_span_columns(frames, lf, spec, checks=checks), _in_scope(frames, lf, spec, claims=claims))
    if lens.as_of is not None:
        versioned = [f"{j.alias}.__versioned" for j in spec.joins if j.history]
        lf = _project(lf, lens.as_of, [c for c in versioned if c in lf.collect_schema()])
    lf, cases = _cases(lf, spec, required=required, parent_keys=parent_keys, exclusions=exclusions, checks=checks)
    lf = lf.with_columns(
        _chain([(c, r) for c, r, _ in cases]).alias("rejection_reason"),
        _chain([(c, d) for c, _, d in cases]).alias("rejection_detail"),
        *(flag.alias(f"__far{i}") for i, (_, _, flag, _) in enumerate(checks.far)),
    )
    rows = frames.collect(lf, spec.where)
    if not rows["__row"].is_sorted():  # the joins mostly keep the source's order: then a sort only copies every column
        rows = rows.sort("__row")
    frames.notes += _notes(spec, rows, checks)
    return _split(spec, rows)


def _span_columns(frames, lf: pl.LazyFrame, spec, *, checks: _Checks) -> list[pl.Expr]:
    """Every column a span carries, compiled from the spec: its identity, times, attributes, resources,
    measures, and each rule's condition and detail."""
    where = spec.where
    columns = [
        pl.lit(spec.name).alias("entity"),
        _text(frames, lf, where, field="source.key", text=spec.source.key).alias("entity_id"),
        pl.lit(spec.metric).alias("metric"),
    ]
    for column, name in zip(TIMES, TIME_FIELDS, strict=True):
        part, key = name.split(".")
        columns.append(
            _timestamp(frames, lf, spec, field=name, text=getattr(spec, part)[key], checks=checks).alias(column)
        )
    columns += [
        pl.lit(False).alias("tx_uncertain"),
        *(_text(frames, lf, where, field=f"attributes.{a}", text=e).alias(a) for a, e in spec.attributes.items()),
        *(_resource(frames, lf, spec, name=r, text=e, checks=checks) for r, e in spec.resources.items()),
        *(
            frames.expr(lf, where, field=f"measures.{m}", text=e).alias(f"__measure.{m}")
            for m, e in spec.measures.items()
        ),
    ]
    for i, rule in enumerate(spec.rules):
        columns.append(
            frames.condition(lf, where, field=f"rules[{i}].when", text=rule.when).fill_null(False).alias(f"__rule{i}")
        )
        detail = (
            frames.expr(lf, where, field=f"rules[{i}].detail", text=rule.detail) if rule.detail else pl.lit(rule.when)
        )
        columns.append(detail.cast(pl.String).alias(f"__detail{i}"))
    return columns


def _in_scope(frames, lf: pl.LazyFrame, spec, *, claims: bool) -> pl.Expr:
    """A condition false on known values takes the row out of scope; one that cannot be decided because a
    required join it reads found nothing leaves the row to the entity that claims such rows."""
    scope = [frames.condition(lf, spec.where, field=f"scope[{i}]", text=c) for i, c in enumerate(spec.scope)]
    decided = pl.all_horizontal(scope) if scope else pl.lit(True)  # Kleene: false if any condition is false
    deciders = spec.deciding_joins()
    missing = pl.any_horizontal(pl.col(f"__matched.{a}").is_null() for a in deciders) if deciders else False
    return (decided.fill_null(False) | (decided.is_null() & missing & claims)).alias("__in_scope")


def _text(frames, lf: pl.LazyFrame, where: str, *, field: str, text) -> pl.Expr:
    """A key or an attribute as text; a list or a struct (a JSON column read as one) is no single value."""
    expr, dtype = frames.typed(lf, where, field=field, text=text)
    if dtype.is_nested():
        raise EngineError(f"{where}: {field}: expected one value, got {dtype} from {text!r}")
    return as_text(expr, dtype)


def _timestamp(frames, lf: pl.LazyFrame, spec, *, field: str, text, checks: _Checks) -> pl.Expr:
    """The expression as a timestamp. Text that is not one, and a start after LATEST, are invalid values; an
    end after LATEST is an open end, and a start before EARLIEST is kept: both are named in a note."""
    if text is None:
        return pl.lit(None, dtype=pl.Datetime("us"))
    expr, dtype = frames.typed(lf, spec.where, field=field, text=text)
    out = as_timestamp(expr, dtype)
    if out is None:
        raise EngineError(f"{spec.where}: {field}: expected a timestamp, got {dtype} from {text!r}")
    if (bad := unreadable_time(expr, dtype)) is not None:
        checks.invalid.append((bad, pl.format(f"{field} ({text}) is '{{}}', not a timestamp", expr)))
    beyond = out >= pl.lit(LATEST)
    if field.endswith(".start"):
        detail = pl.format(f"{field} ({text}) is {{}}, after {LATEST:%Y-%m-%d}", out)
        checks.invalid.append((beyond.fill_null(False), detail))
        early = f"before {EARLIEST:%Y-%m-%d}, kept (the default window does not reach back to them)"
        checks.far.append((field, text, (out < pl.lit(EARLIEST)).fill_null(False), early))
        return out
    checks.far.append((field, text, beyond.fill_null(False), f"after {LATEST:%Y-%m-%d}, read as an open end"))
    return pl.when(beyond).then(None).otherwise(out)


def _resource(frames, lf: pl.LazyFrame, spec, *, name: str, text, checks: _Checks) -> pl.Expr:
    """A resource quantity as a float; null, NaN, infinite, negative and absurdly large values (beyond
    MAX_QUANTITY, where sums of hours lose their precision) are invalid values."""
    expr, dtype = frames.typed(lf, spec.where, field=f"resources.{name}", text=text)
    if not (dtype.is_numeric() or dtype in (pl.Boolean, pl.Null)):
        raise EngineError(f"{spec.where}: resources.{name}: expected a number, got {dtype} from {text!r}")
    value = pl.col(f"__res.{name}")
    why = pl.when(~value.is_finite()).then(pl.lit("")).when(value < 0).then(pl.lit(", below 0"))
    why = why.when(value > MAX_QUANTITY).then(pl.lit(", above 1e15")).otherwise(pl.lit(""))
    detail = pl.format(f"resources.{name} ({text}) is {{}}{{}}", value.cast(pl.String).fill_null("null"), why)
    checks.invalid.append((value.is_null() | ~value.is_finite() | (value < 0) | (value > MAX_QUANTITY), detail))
    return expr.cast(pl.Float64).alias(f"__res.{name}")


def _cases(lf: pl.LazyFrame, spec, *, required, parent_keys, exclusions, checks: _Checks):
    """(the rows with what the cases read joined on, [(condition, reason, detail)] in the order they apply)."""
    cases = []
    if exclusions is not None and exclusions.height:
        marks = exclusions.select(
            "entity_id", *(pl.col(c).alias(f"__ex.{c}") for c in ("valid_from", "valid_to", "detail", "exclusion"))
        )
        lf = lf.join(marks.lazy(), on="entity_id", how="left")
        frm, to = pl.col("__ex.valid_from"), pl.col("__ex.valid_to")
        reaches = frm.is_null() | pl.col("valid_end").is_null() | (pl.col("valid_end") > frm)
        starts = to.is_null() | pl.col("valid_start").is_null() | (pl.col("valid_start") < to)
        cases.append((pl.col("__ex.exclusion").is_not_null() & reaches & starts, "excluded", pl.col("__ex.detail")))
    for join in required:
        keys = ", ".join(f"{right}={{}}" for right in join.on.values())
        values = [pl.col(left).cast(pl.String).fill_null("null") for left in join.on]
        detail = pl.format(f"{join.alias}: no {join.table} row with {keys}", *values)
        cases.append((pl.col(f"__matched.{join.alias}").is_null(), "missing_fk", detail))
    if parent_keys is not None:
        on = spec.parent.on
        lf = lf.join(parent_keys.with_columns(pl.lit(True).alias("__parent_found")), on=list(on), how="left")
        keys = ", ".join(f"{theirs}={{}}" for theirs in on.values())
        detail = pl.format(
            f"parent: no accepted {spec.parent.entity} with {keys}", *(pl.col(m).fill_null("null") for m in on)
        )
        cases.append((pl.col("__parent_found").is_null(), "missing_fk", detail))
    cases += [(pl.col(f"__rule{i}"), rule.reason, pl.col(f"__detail{i}")) for i, rule in enumerate(spec.rules)]
    invalid = [(pl.col("entity_id").is_null(), pl.lit(f"source.key ({spec.source.key}) is null")), *checks.invalid]
    cases += [(cond, "invalid_value", detail) for cond, detail in invalid]
    start, end, t0, t1 = (pl.col(c) for c in ("valid_start", "valid_end", "tx_start", "tx_end"))
    cases += [
        (start.is_null(), "null_start", pl.lit(f"valid.start ({spec.valid['start']}) is null")),
        (end == start, "zero_length", pl.format("valid_end equals valid_start {}: a span of no time", start)),
        (end < start, "invalid_time_range", pl.format("valid_end {} is before valid_start {}", end, start)),
        (t1 < t0, "invalid_tx_range", pl.format("tx_end {} is before tx_start {}", t1, t0)),
    ]
    return lf, [(cond, pl.lit(reason), detail) for cond, reason, detail in cases]


def _chain(cases: list[tuple[pl.Expr, pl.Expr]]) -> pl.Expr:
    """when(c1).then(v1).when(c2)... otherwise null."""
    if not cases:
        return pl.lit(None, dtype=pl.String)
    out = pl.when(cases[0][0]).then(cases[0][1])
    for cond, value in cases[1:]:
        out = out.when(cond).then(value)
    return out.otherwise(None)


def _notes(spec, rows: pl.DataFrame, checks: _Checks) -> list[str]:
    """Warnings for the manifest: times beyond the bounds, source keys on several rows."""
    notes = []
    for i, (name, text, _, what) in enumerate(checks.far):
        far = rows["entity_id"].filter(rows[f"__far{i}"])  # one column, not every column of the rows
        if far.len():
            notes.append(f"{spec.where}: {name} ({text}): {far.len()} row(s) {what} (e.g. entity_id {far[0]})")
    key = pl.col("entity_id")
    repeated = rows.select(key.filter(key.is_duplicated() & key.is_not_null()))["entity_id"]
    if repeated.len():
        notes.append(
            f"{spec.where}: source.key: {repeated.n_unique()} {spec.source.key} value(s) of {spec.source.table} "
            f"are on more than one row (e.g. {repeated[0]}); each row is kept, so entity_id is not unique"
        )
    return notes


def _split(spec, rows: pl.DataFrame) -> EntitySpans:
    """Each row out of scope, not recorded, rejected, inactive or accepted (then INV-7 between the accepted);
    INV-3 asserted."""
    # each part filtered from the rows by a mask, with only its columns: copying every column of the kept rows
    # and then of the accepted ones is GBs
    scope = rows["__in_scope"]
    recorded = rows["__recorded"] if "__recorded" in rows.columns else pl.repeat(True, rows.height, eager=True)
    kept, reason = scope & recorded, rows["rejection_reason"]
    never = reason.is_in(spec.inactive_reasons).fill_null(False)
    rejected = rows.filter(kept & reason.is_not_null() & ~never)
    columns = _accepted_columns(spec)
    accepted, duplicates, clamped = _resolve_duplicates(
        rows, kept & reason.is_null(), identity=spec.identity, columns=_roots(columns)
    )
    rejected = pl.concat([rejected, duplicates], how="diagonal_relaxed").sort("__row")
    out = EntitySpans(
        accepted=accepted.select(columns),
        rejected=rejected.select(pl.exclude("^__.*$")),
        inactive=rows.filter(kept & never).select(pl.exclude("^__.*$")),
        input_rows=rows.height,
        out_of_scope=int((~scope).sum()),
        not_recorded=int((scope & ~recorded).sum()),
        duplicates_clamped=clamped,
        raw_times=rows.select("__row", "valid_start", "valid_end").filter(kept),
        owned=rows["__row"].filter(scope),
        excluded=set(rejected.filter(pl.col("rejection_reason") == "excluded")["__ex.exclusion"])
        if "__ex.exclusion" in rejected.columns
        else set(),
    )
    counted = accepted["__row"].n_unique() if accepted.height else 0
    accounted = counted + rejected.height + out.inactive.height + out.out_of_scope + out.not_recorded
    if out.input_rows != accounted:
        raise InvariantViolation(
            f"INV-3 violated for entity '{spec.name}': {out.input_rows} input rows != {counted} accepted + "
            f"{rejected.height} rejected + {out.inactive.height} inactive + {out.out_of_scope} out of scope + "
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


def _accepted_columns(spec) -> list:
    """Columns of an accepted span; resources are kept apart from raw columns of the same name until here."""
    resources = [pl.col(f"__res.{r}").alias(r) for r in spec.resources]
    measures = [pl.col(f"__measure.{m}").alias(m) for m in spec.measures]
    times = ["valid_start", "valid_end", "tx_start", "tx_end", "original_start", "original_end", "tx_uncertain"]
    return ["__row", "entity", "entity_id", "metric", *times, *spec.attributes, *resources, *measures]


def _roots(columns: list) -> list[str]:
    """The columns a list of names and expressions reads, in order, once each."""
    names = (n for c in columns for n in ([c] if isinstance(c, str) else c.meta.root_names()))
    return list(dict.fromkeys(names))


def _resolve_duplicates(
    rows: pl.DataFrame, mask: pl.Series, *, identity, columns: list[str]
) -> tuple[pl.DataFrame, pl.DataFrame, int]:
    """INV-7: rows sharing an identity never count the same instant twice; the earlier-recorded row wins.

    Reads the rows under `mask`, with only the columns it needs. Returns (pieces, with those of `columns` only;
    rows rejected as duplicate, with all of theirs; number of rows cut to their uncovered part).
    """
    identity, priority = list(identity), ["tx_start", "entity_id", "__row"]
    needed = dict.fromkeys([*columns, *identity, "valid_start", "valid_end", *priority])
    accepted = rows.select(c for c in needed if c in rows.columns).filter(mask)
    pieces, conflicts = claim(
        accepted.lazy(),
        identity,
        start="valid_start",
        end="valid_end",
        priority=priority,
        row="__row",
    )
    pieces, conflicts = pl.collect_all([pieces, conflicts])
    owners = accepted.select(pl.col("__row").alias("covered_by"), pl.col("entity_id").alias("__owner_id"))
    conflicts = conflicts.join(owners, on="covered_by")
    lost = rows.filter(mask & ~rows["__row"].is_in(pieces["__row"].implode()))
    ident = ", ".join(f"{c}={{}}" for c in identity)
    detail = pl.format(f"covered by entity_id {{}} with the same identity ({ident})", "__owner_id", *identity)
    duplicates = lost.join(conflicts, on="__row")
    duplicates = duplicates.with_columns(
        pl.lit("duplicate").alias("rejection_reason"), detail.alias("rejection_detail")
    )
    cut = conflicts.join(pieces.select("__row").unique(), on="__row").select("__row")
    was_cut = pl.col("__row").is_in(cut["__row"].implode())
    spans = (
        accepted.select(c for c in columns if c in accepted.columns)
        .join(pieces.rename({"valid_start": "__s", "valid_end": "__e"}), on="__row")
        .with_columns(
            pl.when(was_cut).then(pl.col("valid_start")).alias("original_start"),
            pl.when(was_cut).then(pl.col("valid_end")).alias("original_end"),
        )
        .with_columns(pl.col("__s").alias("valid_start"), pl.col("__e").alias("valid_end"))
        .sort("__row", "valid_start")
    )
    return spans, duplicates.drop("covered_by", "__owner_id"), cut.height
