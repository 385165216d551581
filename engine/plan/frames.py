"""Compiling a spec's rows (its source, joins and derived columns) into one Polars lazy plan, and its
expressions against that plan, naming the spec, field, table and column of any problem.

Tables come from a catalog (`catalog.table(name)`: a raw table scanned lazily, or a lookup the pipeline has
built already; `catalog.spans(entity)`: an entity's validated spans, for reports): the frames never read
files themselves.
"""

import polars as pl

from engine.errors import EngineError, ExprError, first_line
from engine.expr import columns_of, compile_expr, did_you_mean, stopped, time_first
from engine.io.raw import as_text, as_timestamp
from engine.spec.model import Json

# A Polars panic (pyo3's PanicException is a BaseException) is caught too: a spec can provoke one.
POLARS_ERRORS = (pl.exceptions.PolarsError, pl.exceptions.PanicException)


class MissingTable(EngineError):
    """A table a spec needs is not in the raw directory: its source (`where` None: the site has no such
    service) or a table it requires (`where` names the join: the dump or the grants are incomplete)."""

    def __init__(self, table: str, where: str | None = None):
        self.table, self.where = table, where
        super().__init__(f"{where}: table {table} is missing" if where else f"table {table} is missing")


def reads(spec) -> set[str]:
    """Every column name a spec reads, qualified ones as 'alias.column'."""
    names = {c for _, e in spec.expressions() for c in columns_of(e)}
    for join in spec.joins:
        names |= set(join.on) | ({join.asof.left} if join.asof else set())
    return names


def used_columns(specs, name: str) -> set[str] | None:
    """The columns of a lookup that the specs reading it use (None: all), so that a row-wise lookup does not
    hold, for instance, a JSON column it has already taken apart."""
    needed: set[str] = set()
    for spec in specs.by_name.values():
        refs = reads(spec)
        if spec.source.table == name:
            needed |= {c for c in refs if "." not in c} | set(spec.source.optional_columns)
        for join in (j for j in spec.joins if j.table == name):
            if join.history:
                return None
            needed |= {c.split(".", 1)[1] for c in refs if c.startswith(f"{join.alias}.")} | set(join.on.values())
            needed |= {join.asof.right} if join.asof else set()
    return needed


class Frames:
    """Compiles specs against the tables of one run (and one lens: `history_as_of`, the projected as-of time)."""

    def __init__(self, specs, catalog, *, history_as_of=None, lookups: set[str] | None = None):
        """`lookups`: those this run builds (default: all), the only ones that share rows."""
        self.specs, self.catalog, self.history_as_of = specs, catalog, history_as_of
        self.notes: list[str] = []
        self.compiled: dict[str, list] = {}  # spec -> (field, frame, expr): to name the field a failed plan chokes on
        self._joined: dict[str, list[str]] = {}  # "spec: alias." -> every column of the joined table, for hints
        self._tables: dict[str, dict[str, str]] = {}  # spec -> alias ('' for the source) -> table, for messages
        self._repeats: dict[tuple, tuple[int, int]] = {}  # (table, keys) -> (keys repeated, rows ignored)
        self._sharers = _sharers(specs, lookups)  # lookup -> (share key, the lookups whose rows start the same)
        self._unread = {key: set(names) for key, names in self._sharers.values()}  # share key -> yet to read
        self._shared: dict[tuple, pl.DataFrame] = {}  # share key -> the rows, until their last reader

    def frame(self, spec) -> tuple[pl.LazyFrame, list]:
        """Source rows (numbered __row) with every join and derived column applied, and the required joins.

        A derived column is computed as soon as the columns it reads exist, so a join may use one as its
        key. Raises MissingTable when the source or a non-optional joined table is absent.
        """
        try:
            return self._frame(spec)
        finally:  # read, or failed: rows shared with other lookups are released after the last of them
            if spec.name in self._sharers:
                key = self._sharers[spec.name][0]
                self._unread[key].discard(spec.name)
                if not self._unread[key]:
                    self._shared.pop(key, None)

    def _frame(self, spec) -> tuple[pl.LazyFrame, list]:
        self._tables[spec.where] = {"": spec.source.table or f"the spans of entity {spec.source.entity}"}
        self._tables[spec.where] |= {j.alias: j.table for j in spec.joins}
        rows = self.catalog.spans(spec.source.entity) if spec.source.entity else self.catalog.table(spec.source.table)
        lf = _with_optional(rows, spec.source.optional_columns)
        lf = lf.drop("__row", strict=False).with_row_index("__row")
        pending, refs = dict(spec.columns), reads(spec)
        lf = self._columns(lf, pending, where=spec.where)
        joins = list(enumerate(spec.joins))
        if spec.name in self._sharers and len(pending) == len(spec.columns):
            lf, joins = self._columns(self._shared_join(spec, lf, refs), pending, where=spec.where), joins[1:]
        for i, join in joins:
            lf = self._columns(self._join(lf, join, refs, where=f"{spec.where}: joins[{i}]"), pending, where=spec.where)
        return self._columns(lf, pending, where=spec.where, final=True), [j for j in spec.joins if j.required]

    def _shared_join(self, spec, lf: pl.LazyFrame, refs: set[str]) -> pl.LazyFrame:
        """The source rows joined to the first join, collected once for every lookup that starts the same way,
        with the columns any of them reads (`frame` releases them after the last). The others still compile the
        join, for its notes and messages."""
        where, (key, sharers) = f"{spec.where}: joins[0]", self._sharers[spec.name]
        if key in self._shared:
            self._join(lf, spec.joins[0], refs, where=where)
        else:
            every = set().union(*(_lookup_reads(self.specs.lookups[n]) for n in sharers))
            joined = self._join(lf, spec.joins[0], every, where=where)
            keep = [c for c in joined.collect_schema() if c in every or c == "__row" or c.startswith("__matched.")]
            self._shared[key] = self.collect(joined.select(keep), spec.where)
        return self._shared[key].lazy()

    def lookup(self, spec) -> pl.LazyFrame:
        """A lookup's (or a report's) rows: the frame in scope, grouped and aggregated, or row-wise with the
        columns its readers use."""
        lf, required = self.frame(spec)
        keep = [self.condition(lf, spec.where, field=f"scope[{i}]", text=c) for i, c in enumerate(spec.scope)]
        keep += [pl.col(f"__matched.{j.alias}").is_not_null() for j in required]
        if keep:
            lf = lf.filter(pl.all_horizontal(keep).fill_null(False))
        if not spec.group_by:
            needed = used_columns(self.specs, spec.name)
            lf = lf.sort("__row").select(pl.exclude("^__.*$"))
            return lf.select(c for c in lf.collect_schema() if needed is None or c in needed)
        typed = [self.typed(lf, spec.where, field=f"order_by[{i}]", text=c) for i, c in enumerate(spec.order_by)]
        order = [key for expr, dtype in typed for key in time_first(expr, dtype)]  # text times in time order
        keys = [self.expr(lf, spec.where, field=f"group_by[{i}]", text=c) for i, c in enumerate(spec.group_by)]
        aggs = [self.expr(lf, spec.where, field=f"aggregate.{n}", text=e).alias(n) for n, e in spec.aggregate.items()]
        # Source row order breaks ties, so first/last are the same on every run.
        return lf.sort([*order, pl.col("__row")]).group_by(keys, maintain_order=True).agg(aggs)

    def _columns(self, lf: pl.LazyFrame, pending: dict, *, where: str, final: bool = False) -> pl.LazyFrame:
        """Add the pending derived columns (in order) whose inputs exist; at the end, all of them."""
        for name, col in list(pending.items()):
            source = col.json if isinstance(col, Json) else col
            if not final and not columns_of(source) <= set(lf.collect_schema()):
                continue
            value = self.expr(lf, where, field=f"columns.{name}", text=source)
            if isinstance(col, Json):
                value = value.cast(pl.String).str.json_path_match(col.path)
            lf = lf.with_columns(value.alias(name))
            del pending[name]
        return lf

    def expr(self, lf: pl.LazyFrame, where: str, *, field: str, text) -> pl.Expr:
        """Compile one expression and check every column it reads exists in the frame."""
        return self.typed(lf, where, field=field, text=text)[0]

    def condition(self, lf: pl.LazyFrame, where: str, *, field: str, text) -> pl.Expr:
        """An expression that must be true or false (a scope or a rule)."""
        expr, dtype = self.typed(lf, where, field=field, text=text)
        if dtype not in (pl.Boolean, pl.Null):
            raise EngineError(f"{where}: {field}: expected a condition (true or false), got {dtype} from {text!r}")
        return expr

    def typed(self, lf: pl.LazyFrame, where: str, *, field: str, text) -> tuple[pl.Expr, pl.DataType]:
        """Compile one expression, check the columns it reads exist and resolve its type (type errors named
        here)."""
        schema = lf.collect_schema()
        try:
            expr = compile_expr(text, schema)
        except ExprError as exc:
            raise EngineError(f"{where}: {field}: cannot parse {text!r}: {exc}") from None
        for col in (c for c in expr.meta.root_names() if c not in schema):
            prefix = col.split(".")[0] + "." if "." in col else ""
            known = [c for c in schema if c.startswith(prefix) and ("." in c) == bool(prefix) and c[:2] != "__"]
            known += self._joined.get(f"{where}: {prefix}", [])
            table = self._tables.get(where, {}).get(prefix[:-1], "the data")
            raise EngineError(f"{where}: {field}: no column '{col}' in {table}{did_you_mean(col, known)}")
        try:
            dtype = lf.select(expr).collect_schema().dtypes()[0]
        except POLARS_ERRORS as exc:
            raise EngineError(f"{where}: {field}: {first_line(exc)}") from None
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

    def collect(self, lf: pl.LazyFrame, where: str) -> pl.DataFrame:
        """Collect a plan; a data error (bad type, bad value) becomes one line naming the spec (and the field)."""
        try:
            df = lf.collect()
        except POLARS_ERRORS as exc:
            what = "missing column " if isinstance(exc, pl.exceptions.ColumnNotFoundError) else ""
            if isinstance(exc, pl.exceptions.PanicException):
                what = "Polars failed internally (an expression it cannot run, or a damaged file): "
            read = ", ".join(self._tables.get(where, {}).values())  # the data is often the cause: say where from
            why = stopped(exc) or first_line(exc)
            raise EngineError(f"{where}: {self.culprit(where)}{what}{why} (reading {read})") from None
        # Collected: its expressions are not needed to name a culprit any more, and the plans they hold would keep
        # every frame they read (a lookup after its last reader, the rows lookups share) until the run ends.
        self.compiled.pop(where, None)
        return df

    def _join(self, lf: pl.LazyFrame, join, refs: set[str], *, where: str) -> pl.LazyFrame:
        """The rows so far joined to one table: many-to-one on keys of one common type, or as of a time."""
        try:
            right = _with_optional(self.catalog.table(join.table), join.optional_columns)
        except MissingTable as exc:
            if not join.optional:
                raise MissingTable(exc.table, exc.where or where) from None
            missing = "is missing" if exc.table == join.table else f"cannot be built: table {exc.table} is missing"
            self.notes.append(f"{where}: optional table {join.table} {missing}; its columns are null")
            return lf.with_columns(pl.lit(None).alias(c) for c in sorted(refs) if c.startswith(f"{join.alias}."))
        right = self._right(self._as_of_history(right, join), join, refs, where=where)
        keys = self._keys(lf, right, join, where=where)
        tmp = [f"__key{i}" for i in range(len(keys))]
        lf = lf.with_columns(expr.alias(k) for (expr, _), k in zip(keys, tmp, strict=True))
        right = right.with_columns(expr.alias(k) for (_, expr), k in zip(keys, tmp, strict=True))
        if join.asof:
            return self._join_asof(lf, right, join, keys=tmp, where=where).drop(tmp)
        if self._note_repeats(right, join, tmp, where=where):  # else every key is on one row: nothing to drop
            right = right.unique(subset=tmp, keep="first", maintain_order=True)
        return lf.join(right, on=tmp, how="left").drop(tmp)

    def _right(self, right: pl.LazyFrame, join, refs: set[str], *, where: str) -> pl.LazyFrame:
        """The joined table's columns the spec reads, named alias.column (the source keeps all of its own);
        a required join marks its matches."""
        alias = join.alias
        self._joined[f"{where.rsplit(': joins[', 1)[0]}: {alias}."] = [f"{alias}.{c}" for c in right.collect_schema()]
        used = {c.split(".", 1)[1] for c in refs if c.startswith(f"{alias}.")} | set(join.on.values())
        used |= {join.asof.right} if join.asof else set()
        used |= {"__versioned"} if join.history else set()
        right = right.select(c for c in right.collect_schema() if c in used).rename(lambda c: f"{alias}.{c}")
        return right.with_columns(pl.lit(True).alias(f"__matched.{alias}")) if join.required else right

    def _keys(self, lf: pl.LazyFrame, right: pl.LazyFrame, join, *, where: str) -> list[tuple[pl.Expr, pl.Expr]]:
        """Both sides of each join key in one type, so an int id meets a text id (and 10.0 meets 10) without
        altering either; a key or time column that is missing or nested is one line naming it."""
        lkeys, rkeys = list(join.on), [f"{join.alias}.{c}" for c in join.on.values()]
        times = ([join.asof.left], [f"{join.alias}.{join.asof.right}"]) if join.asof else ([], [])
        lschema, rschema = lf.collect_schema(), right.collect_schema()
        names = self._tables.get(where.rsplit(": joins[", 1)[0], {})
        for cols, schema, table in ((lkeys + times[0], lschema, None), (rkeys + times[1], rschema, join.table)):
            for col in (c for c in cols if c not in schema):
                name = col.split(".", 1)[-1] if table else col
                known = [c.split(".", 1)[-1] for c in schema if not c.startswith("__")]
                table = table or names.get(col.split(".")[0] if "." in col else "", "the rows so far")
                field = "asof" if col in times[0] + times[1] else "on"
                raise EngineError(f"{where}.{field}: no column '{name}' in {table}{did_you_mean(name, known)}")
        sides = [(c, lschema[c], "the rows so far") for c in lkeys] + [(c, rschema[c], join.table) for c in rkeys]
        for col, dtype, table in sides:
            if dtype.is_nested():
                name = col.split(".", 1)[-1]
                raise EngineError(f"{where}.on: column '{name}' of {table} is {dtype}: a key must be a number or text")
        pairs = []
        for a, b in zip(lkeys, rkeys, strict=True):
            common = _common(lschema[a], rschema[b])
            pairs.append((_as(a, lschema[a], common), _as(b, rschema[b], common)))
        return pairs

    def _note_repeats(self, right: pl.LazyFrame, join, keys: list[str], *, where: str) -> bool:
        """A right table that repeats a key: its first row is used, and the manifest says how many were ignored.
        True if some key with no null part is on several rows (False: a left join needs no `unique` first; a key
        with a null part matches nothing)."""
        cache = (join.table, tuple(join.on.values()))
        if cache not in self._repeats:
            self._repeats[cache] = self._count_repeats(right, keys, where)
        repeated, ignored = self._repeats[cache]
        if repeated:
            on = ", ".join(join.on.values())
            self.notes.append(
                f"{where}: {join.table} repeats {repeated} value(s) of ({on}); the first row of each is used "
                f"({ignored} row(s) ignored)"
            )
        return repeated > 0

    def _count_repeats(self, right: pl.LazyFrame, keys: list[str], where: str) -> tuple[int, int]:
        """(keys with no null part that are on several rows, rows ignored). One integer key that only increases
        repeats nothing: no group-by."""
        if len(keys) == 1 and right.collect_schema()[keys[0]].is_integer():
            key = pl.col(keys[0]).drop_nulls()
            if self.collect(right.select((key > key.shift(1)).drop_nulls().all()), where).item():
                return 0, 0
        counts = right.group_by(keys).agg(pl.len().alias("n"))
        repeats = counts.filter(pl.all_horizontal(pl.col(k).is_not_null() for k in keys) & (pl.col("n") > 1))
        return self.collect(repeats.select(pl.len().alias("keys"), (pl.col("n") - 1).sum()), where).row(0)

    def _join_asof(self, lf: pl.LazyFrame, right: pl.LazyFrame, join, *, keys: list[str], where: str) -> pl.LazyFrame:
        """Latest right row at or before the left time; with fallback 'earliest', the key's first row.

        Both times are compared as timestamps (text and null-typed columns are read as such)."""
        stamps = []
        for col, frame in ((join.asof.left, lf), (f"{join.alias}.{join.asof.right}", right)):
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
        if join.asof.fallback == "earliest":
            first = right.unique(subset=keys, keep="first", maintain_order=True)
            first = first.select(*keys, *(pl.col(c).alias(f"__first.{c}") for c in cols))
            hit = pl.col("__asof").is_not_null()
            out = out.join(first, on=keys, how="left").with_columns(
                pl.when(hit).then(pl.col(c)).otherwise(pl.col(f"__first.{c}")).alias(c) for c in cols
            )
            out = out.drop(f"__first.{c}" for c in cols)
        return out.drop("__asof").sort("__row")

    def _as_of_history(self, right: pl.LazyFrame, join) -> pl.LazyFrame:
        """Projected lens: replace versioned columns by the version recorded at or before the as-of time."""
        hist = join.history
        if hist is None or self.history_as_of is None:
            return right
        key = next(iter(join.on.values()))
        try:
            history = self.catalog.table(hist.table)
        except MissingTable:
            self.notes.append(
                f"history table {hist.table} is missing: rows changed after the as-of time are tx_uncertain"
            )
            return right
        versions = (
            history.filter(pl.col(hist.recorded_at) <= self.history_as_of)
            .sort(hist.recorded_at)
            .group_by(hist.key)
            .agg(pl.col(c).last().alias(f"__v.{c}") for c in hist.columns)
            .with_columns(pl.lit(True).alias("__versioned"))
        )
        versions = versions.with_columns(pl.col(hist.key).cast(right.collect_schema()[key]))
        right = right.join(versions, left_on=key, right_on=hist.key, how="left")
        return right.with_columns(
            pl.when(pl.col("__versioned")).then(pl.col(f"__v.{c}")).otherwise(pl.col(c)).alias(c) for c in hist.columns
        ).drop([f"__v.{c}" for c in hist.columns])


def _lookup_reads(spec) -> set[str]:
    """Every column a lookup reads, its order and groups included."""
    return reads(spec) | {c for e in (*spec.order_by, *spec.group_by) for c in columns_of(e)}


def _sharers(specs, built: set[str] | None) -> dict[str, tuple[tuple, frozenset[str]]]:
    """Lookup -> (share key, the lookups that share it): grouped lookups built by the run over the same source
    whose first join is the same plain join (no as-of, history or optional table). One that derives a column
    before that join (`frame` finds out) reads rows of its own."""
    groups: dict[tuple, set[str]] = {}
    for spec in (s for n, s in specs.lookups.items() if built is None or n in built):
        first = spec.joins[0] if spec.joins else None
        if not spec.group_by or first is None or first.asof or first.history or first.optional:
            continue
        src = spec.source  # an archive is read with its table wherever it is declared (catalog.table)
        join = (first.table, first.alias, tuple(first.on.items()), first.required, first.optional_columns)
        groups.setdefault((src.table, src.optional_columns, join), set()).add(spec.name)
    return {n: (key, frozenset(names)) for key, names in groups.items() if len(names) > 1 for n in names}


def _with_optional(lf: pl.LazyFrame, columns) -> pl.LazyFrame:
    """Add the optional columns a table lacks, as nulls."""
    have = lf.collect_schema()
    return lf.with_columns(pl.lit(None).alias(c) for c in columns if c not in have)


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
