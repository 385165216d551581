"""Compiling a spec's table references, joins and derived columns into one Polars lazy plan.

Raw tables come from the RawDir; lookups are built from their own specs, collected once per run and
reused by every spec that joins them (so the events table is not re-scanned for each entity).
"""

import polars as pl

from engine.errors import EngineError
from engine.expr import ExprError, columns_of, compile_expr, did_you_mean
from engine.io.raw import as_text, as_timestamp
from engine.spec.checks import expressions


class MissingTable(EngineError):
    """A table a spec needs is not in the raw directory: its source (`where` None: the site has no such
    service) or a table it requires (`where` names the join: the dump or the grants are incomplete)."""

    def __init__(self, table: str, where: str | None = None):
        self.table, self.where = table, where
        super().__init__(f"{where}: table {table} is missing" if where else f"table {table} is missing")


def referenced(spec: dict) -> set[str]:
    """Every column name a spec reads, qualified ones as 'alias.column'."""
    names = {c for _, e in expressions(spec) for c in columns_of(e)}
    for j in spec.get("joins", []):
        names |= set(j["on"]) | ({j["asof"]["left"]} if "asof" in j else set())
    return names


class Tables:
    """Resolves table names to lazy frames and compiles specs' joins and columns against them."""

    def __init__(self, specs, raw, history_as_of=None):
        self.specs, self.raw = specs, raw
        self.history_as_of = history_as_of
        self.built: dict[str, pl.DataFrame] = {}
        self.notes: list[str] = []
        self.joined: dict[str, list[str]] = {}  # "spec: alias." -> every column of the joined table
        self.entity_frames: dict[str, pl.DataFrame] = {}  # validated spans, for reports
        self.tables_of: dict[str, dict[str, str]] = {}  # spec -> alias ('' for the source) -> table, for messages
        self.compiled: dict[str, list] = {}  # spec -> (field, frame, expr): to name the field a failed plan chokes on
        self._repeats: dict[tuple, tuple[int, int]] = {}  # (table, keys) -> (keys repeated, rows ignored)

    def get(self, table: str) -> pl.LazyFrame:
        if table in self.specs.lookups or table in self.specs.reports:
            return self.lookup(table)
        if not self.raw.has(table):
            raise MissingTable(table)
        return self.raw.scan(table)

    def lookup(self, name: str) -> pl.LazyFrame:
        """A lookup's rows, built and collected on first use."""
        if name not in self.built:
            spec = self.specs.lookups.get(name) or self.specs.reports[name]
            where = self.specs.where(spec)
            lf, required = self.frame(spec)
            keep = [self.condition(lf, where, f"scope[{i}]", c) for i, c in enumerate(spec.get("scope", []))]
            keep += [pl.col(f"__matched.{j['as']}").is_not_null() for j in required]
            if keep:
                lf = lf.filter(pl.all_horizontal(keep).fill_null(False))
            if "group_by" in spec:
                order = [self.expr(lf, where, f"order_by[{i}]", c) for i, c in enumerate(spec.get("order_by", []))]
                keys = [self.expr(lf, where, f"group_by[{i}]", c) for i, c in enumerate(spec["group_by"])]
                aggs = [self.expr(lf, where, f"aggregate.{n}", e).alias(n) for n, e in spec["aggregate"].items()]
                # Source row order breaks ties, so first/last are the same on every run.
                lf = lf.sort([*order, pl.col("__row")]).group_by(keys, maintain_order=True).agg(aggs)
            else:
                lf = lf.sort("__row").select(pl.exclude("^__.*$"))
                needed = self._read_of(name)
                lf = lf.select(c for c in lf.collect_schema() if needed is None or c in needed)
            self.built[name] = collect(lf, where, self)
        return self.built[name].lazy()

    def _read_of(self, name: str) -> set[str] | None:
        """The columns of a lookup that the specs reading it use (None: all), so that a row-level
        lookup does not hold, for instance, a JSON column it has already taken apart."""
        needed: set[str] = set()
        kinds = (self.specs.entities, self.specs.lookups, self.specs.reports)
        for spec in (s for kind in kinds for s in kind.values()):
            refs = referenced(spec)
            if spec["source"].get("table") == name:
                needed |= {c for c in refs if "." not in c} | set(spec["source"].get("optional_columns", []))
            for j in spec.get("joins", []):
                if j["table"] == name:
                    if "history" in j:
                        return None
                    needed |= {c.split(".", 1)[1] for c in refs if c.startswith(f"{j['as']}.")}
                    needed |= set(j["on"].values()) | ({j["asof"]["right"]} if "asof" in j else set())
        return needed

    def frame(self, spec: dict) -> tuple[pl.LazyFrame, list[dict]]:
        """Source rows (numbered __row) with every join and derived column applied, and the required joins.

        A derived column is computed as soon as the columns it reads exist, so a join may use one as its
        key. Raises MissingTable when the source or a non-optional joined table is absent.
        """
        where, refs = self.specs.where(spec), referenced(spec)
        source = spec["source"]
        self.tables_of[where] = {"": source.get("table") or f"the spans of entity {source.get('entity')}"}
        self.tables_of[where] |= {j["as"]: j["table"] for j in spec.get("joins", [])}
        if "entity" in source:  # a report over an entity's validated spans
            if source["entity"] not in self.entity_frames:
                raise MissingTable(f"entity {source['entity']}")
            lf = self.entity_frames[source["entity"]].lazy().drop("__row", strict=False).with_row_index("__row")
        else:
            lf = with_optional(self.get(source["table"]), source.get("optional_columns", [])).with_row_index("__row")
        pending = dict(spec.get("columns", {}))
        lf = self._columns(lf, pending, where)
        required = []
        for i, join in enumerate(spec.get("joins", [])):
            lf = self._columns(self._join(lf, join, refs, f"{where}: joins[{i}]"), pending, where)
            if join.get("required"):
                required.append(join)
        return self._columns(lf, pending, where, final=True), required

    def _columns(self, lf: pl.LazyFrame, pending: dict, where: str, final: bool = False) -> pl.LazyFrame:
        """Add the pending derived columns (in order) whose inputs exist; at the end, all of them."""
        for name, col in list(pending.items()):
            reads = {col["json"]} if isinstance(col, dict) else columns_of(col)
            if not final and not reads <= set(lf.collect_schema()):
                continue
            if isinstance(col, dict):
                text = self.expr(lf, where, f"columns.{name}", col["json"]).cast(pl.String)
                lf = lf.with_columns(text.str.json_path_match(col["path"]).alias(name))
            else:
                lf = lf.with_columns(self.expr(lf, where, f"columns.{name}", col).alias(name))
            del pending[name]
        return lf

    def expr(self, lf: pl.LazyFrame, where: str, field: str, text) -> pl.Expr:
        """Compile one expression and check every column it reads exists in the frame."""
        return self.typed(lf, where, field, text)[0]

    def condition(self, lf: pl.LazyFrame, where: str, field: str, text) -> pl.Expr:
        """An expression that must be true or false (a scope or a rule)."""
        expr, dtype = self.typed(lf, where, field, text)
        if dtype not in (pl.Boolean, pl.Null):
            raise EngineError(f"{where}: {field}: expected a condition (true or false), got {dtype} from {text!r}")
        return expr

    def typed(self, lf: pl.LazyFrame, where: str, field: str, text) -> tuple[pl.Expr, pl.DataType]:
        """Compile one expression, check the columns it reads exist and resolve its type (type errors named here)."""
        try:
            expr = compile_expr(text)
        except ExprError as exc:
            raise EngineError(f"{where}: {field}: cannot parse {text!r}: {exc}") from None
        schema = lf.collect_schema()
        for col in expr.meta.root_names():
            if col not in schema:
                prefix = col.split(".")[0] + "." if "." in col else ""
                known = [c for c in schema if c.startswith(prefix) and ("." in c) == bool(prefix) and c[:2] != "__"]
                known += self.joined.get(f"{where}: {prefix}", [])
                table = self.tables_of.get(where, {}).get(prefix[:-1], "the data")
                raise EngineError(f"{where}: {field}: no column '{col}' in {table}{did_you_mean(col, known)}")
        try:
            dtype = lf.select(expr).collect_schema().dtypes()[0]
        except POLARS_ERRORS as exc:
            raise EngineError(f"{where}: {field}: {_first_line(exc)}") from None
        self.compiled.setdefault(where, []).append((field, lf, expr))
        return expr, dtype

    def culprit(self, where: str) -> str:
        """'field: ' of the first expression of a spec that fails on its own, or '' (after a failed collect)."""
        for field, lf, expr in self.compiled.get(where, []):
            try:
                lf.select(expr).collect()
            except POLARS_ERRORS:
                return f"{field}: "
        return ""

    def _join(self, lf: pl.LazyFrame, join: dict, refs: set[str], where: str) -> pl.LazyFrame:
        alias = join["as"]
        try:
            right = with_optional(self.get(join["table"]), join.get("optional_columns", []))
        except MissingTable as exc:
            if not join.get("optional"):
                raise MissingTable(exc.table, exc.where or where) from None
            missing = "is missing" if exc.table == join["table"] else f"cannot be built: table {exc.table} is missing"
            self.notes.append(f"{where}: optional table {join['table']} {missing}; its columns are null")
            return lf.with_columns(pl.lit(None).alias(c) for c in sorted(refs) if c.startswith(f"{alias}."))
        right = self._as_of_history(right, join)
        self.joined[f"{where.rsplit(': joins[', 1)[0]}: {alias}."] = [f"{alias}.{c}" for c in right.collect_schema()]
        # Only the columns the spec reads travel with the rows (the source keeps all of its own).
        used = {c.split(".", 1)[1] for c in refs if c.startswith(f"{alias}.")} | set(join["on"].values())
        used |= {join["asof"]["right"]} if "asof" in join else set()
        used |= {"__versioned"} if "history" in join else set()
        right = right.select(c for c in right.collect_schema() if c in used).rename(lambda c: f"{alias}.{c}")
        if join.get("required"):
            right = right.with_columns(pl.lit(True).alias(f"__matched.{alias}"))
        lkeys, rkeys = list(join["on"]), [f"{alias}.{c}" for c in join["on"].values()]
        times = ([join["asof"]["left"]], [f"{alias}.{join['asof']['right']}"]) if "asof" in join else ([], [])
        lschema, rschema = lf.collect_schema(), right.collect_schema()
        names = self.tables_of.get(where.rsplit(": joins[", 1)[0], {})
        for key, schema, table in ((lkeys + times[0], lschema, None), (rkeys + times[1], rschema, join["table"])):
            for col in key:
                if col not in schema:
                    name = col.split(".", 1)[-1] if table else col
                    known = [c.split(".", 1)[-1] for c in schema if not c.startswith("__")]
                    table = table or names.get(col.split(".")[0] if "." in col else "", "the rows so far")
                    field = "asof" if col in times[0] + times[1] else "on"
                    raise EngineError(f"{where}.{field}: no column '{name}' in {table}{did_you_mean(name, known)}")
        for col, schema, table in [
            *((c, lschema, "the rows so far") for c in lkeys),
            *((c, rschema, join["table"]) for c in rkeys),
        ]:
            if schema[col].is_nested():
                raise EngineError(
                    f"{where}.on: column '{col.split('.', 1)[-1]}' of {table} is {schema[col]}: a key must be a number or text"
                )
        # Join on temporary key columns of one type, so an int id meets a text id (and 10.0 meets 10) without
        # altering either.
        tmp = [f"__key{i}" for i in range(len(lkeys))]
        common = [_common(lschema[a], rschema[b]) for a, b in zip(lkeys, rkeys, strict=True)]
        lf = lf.with_columns(_as(a, lschema[a], t).alias(k) for a, t, k in zip(lkeys, common, tmp, strict=True))
        right = right.with_columns(_as(b, rschema[b], t).alias(k) for b, t, k in zip(rkeys, common, tmp, strict=True))
        if "asof" not in join:
            self._note_repeats(right, join, tmp, where)
            right = right.unique(subset=tmp, keep="first", maintain_order=True)
            return lf.join(right, on=tmp, how="left").drop(tmp)
        return self._join_asof(lf, right, join, tmp, where).drop(tmp)

    def _note_repeats(self, right: pl.LazyFrame, join: dict, keys: list[str], where: str) -> None:
        """A right table that repeats a key: its first row is used, and the manifest says how many were ignored."""
        cache = (join["table"], tuple(join["on"].values()))
        if cache not in self._repeats:
            counts = (
                right.group_by(keys)
                .agg(pl.len().alias("n"))
                .filter(pl.col(keys).is_not_null().all() & (pl.col("n") > 1))
            )
            self._repeats[cache] = collect(counts.select(pl.len().alias("keys"), (pl.col("n") - 1).sum()), where).row(0)
        repeated, ignored = self._repeats[cache]
        if repeated:
            on = ", ".join(join["on"].values())
            self.notes.append(f"{where}: {join['table']} repeats {repeated} value(s) of ({on}); the first row of each "
                              f"is used ({ignored} row(s) ignored)")  # fmt: skip

    def _join_asof(
        self, lf: pl.LazyFrame, right: pl.LazyFrame, join: dict, keys: list[str], where: str
    ) -> pl.LazyFrame:
        """Latest right row at or before the left time; with fallback 'earliest', the key's first row.

        Both times are compared as timestamps (text and null-typed columns are read as such)."""
        alias, left_t = join["as"], join["asof"]["left"]
        right_t = f"{alias}.{join['asof']['right']}"
        stamps = []
        for col, frame in ((left_t, lf), (right_t, right)):
            dtype = frame.collect_schema()[col]
            stamps.append(as_timestamp(pl.col(col), dtype))
            if stamps[-1] is None:
                raise EngineError(f"{where}.asof: '{col.split('.', 1)[-1]}' is {dtype}, not a timestamp")
        right = right.with_columns(stamps[1].alias("__asof_r")).filter(pl.col("__asof_r").is_not_null())
        right = right.sort("__asof_r").with_columns(pl.lit(True).alias("__asof"))
        cols = [c for c in right.collect_schema() if c not in keys and c not in ("__asof", "__asof_r")]
        out = (
            lf.with_columns(stamps[0].alias("__asof_l"))
            .sort("__asof_l", nulls_last=True)
            .join_asof(right, left_on="__asof_l", right_on="__asof_r", by=keys, check_sortedness=False)
            .drop("__asof_l", "__asof_r", strict=False)
        )
        if join["asof"].get("fallback", "earliest") == "earliest":
            first = right.unique(subset=keys, keep="first", maintain_order=True).select(
                *keys, *(pl.col(c).alias(f"__first.{c}") for c in cols)
            )
            hit = pl.col("__asof").is_not_null()
            out = out.join(first, on=keys, how="left").with_columns(
                pl.when(hit).then(pl.col(c)).otherwise(pl.col(f"__first.{c}")).alias(c) for c in cols
            )
            out = out.drop(f"__first.{c}" for c in cols)
        return out.drop("__asof").sort("__row")

    def _as_of_history(self, right: pl.LazyFrame, join: dict) -> pl.LazyFrame:
        """Projected lens: replace versioned columns by the version recorded at or before the as-of time."""
        hist = join.get("history")
        if hist is None or self.history_as_of is None:
            return right
        key = next(iter(join["on"].values()))
        try:
            history = self.get(hist["table"])
        except MissingTable:
            self.notes.append(
                f"history table {hist['table']} is missing: rows changed after the as-of time are tx_uncertain"
            )
            return right
        versions = (
            history.filter(pl.col(hist["recorded_at"]) <= self.history_as_of)
            .sort(hist["recorded_at"])
            .group_by(hist["key"])
            .agg(pl.col(c).last().alias(f"__v.{c}") for c in hist["columns"])
            .with_columns(pl.lit(True).alias("__versioned"))
        )
        rtype = right.collect_schema()[key]
        versions = versions.with_columns(pl.col(hist["key"]).cast(rtype))
        right = right.join(versions, left_on=key, right_on=hist["key"], how="left")
        return right.with_columns(
            pl.when(pl.col("__versioned")).then(pl.col(f"__v.{c}")).otherwise(pl.col(c)).alias(c)
            for c in hist["columns"]
        ).drop([f"__v.{c}" for c in hist["columns"]])


def with_optional(lf: pl.LazyFrame, columns: list[str]) -> pl.LazyFrame:
    """Add the optional columns a table lacks, as nulls."""
    have = lf.collect_schema()
    return lf.with_columns(pl.lit(None).alias(c) for c in columns if c not in have)


# A Polars panic (pyo3's PanicException is a BaseException) is caught too: a spec can provoke one.
POLARS_ERRORS = (pl.exceptions.PolarsError, pl.exceptions.PanicException)


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _common(left: pl.DataType, right: pl.DataType) -> pl.DataType:
    """The type two join keys are compared in: their own, an exact integer if both are integers, a float if
    both are numbers, else text."""
    if left == right:
        return left
    if left.is_integer() and right.is_integer():
        return pl.Int128
    return pl.Float64 if left.is_numeric() and right.is_numeric() else pl.String


def _as(col: str, dtype: pl.DataType, target: pl.DataType) -> pl.Expr:
    return as_text(pl.col(col), dtype) if target == pl.String else pl.col(col).cast(target)


def collect(lf: pl.LazyFrame, where: str, tables: Tables | None = None) -> pl.DataFrame:
    """Collect a plan; a data error (bad type, bad value) becomes one line naming the spec (and the field)."""
    try:
        return lf.collect()
    except POLARS_ERRORS as exc:
        field = tables.culprit(where) if tables is not None else ""
        what = "missing column " if isinstance(exc, pl.exceptions.ColumnNotFoundError) else ""
        if isinstance(exc, pl.exceptions.PanicException):
            read = ", ".join(tables.tables_of.get(where, {}).values()) if tables is not None else "the data"
            what = f"Polars failed internally (an expression it cannot run, or a damaged file among {read}): "
        raise EngineError(f"{where}: {field}{what}{_first_line(exc)}") from None
