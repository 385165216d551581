"""The raw directory: one parquet file per upstream table, `RAW_DIR/<schema>.<table>.parquet`.

Tables are scanned lazily; timestamps are normalised on the way in (UTC, no zone, microseconds) so
every expression sees one kind of time. A table with an archive (the table its old rows were moved to) is
read as one table with it, here, for every reader (`rows`).
"""

import os
import re
from pathlib import Path

import polars as pl

from engine.errors import EngineError, first_line
from engine.expr import did_you_mean
from engine.temporal import from_text, unreadable


class RawDir:
    """Lazy access to the raw tables of one site."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.is_dir():
            raise EngineError(f"{self.path}: raw data directory does not exist")
        self.name = self.path.resolve().name  # the site's name without a sites file (`--data .` too)
        self._scans: dict[str, pl.LazyFrame] = {}
        self._unions: dict[str, pl.LazyFrame] = {}
        self.notes: list[str] = []  # columns set aside, for the manifest's warnings

    def file(self, table: str) -> Path:
        return self.path / f"{table}.parquet"

    def has(self, table: str) -> bool:
        """A table is a parquet file, or a directory of them (a dataset as Spark or pyarrow write it)."""
        return self.file(table).exists()

    def scan(self, table: str) -> pl.LazyFrame:
        """The table as a LazyFrame with normalised types; a damaged or foreign file is a clear error."""
        if table not in self._scans:
            path = self.file(table)
            lf = _scan(path)
            schema = lf.collect_schema()
            reserved = [c for c in schema if "." in c or c.startswith("__")]
            if reserved:  # `x.y` reads as alias.column, and `__` names are the engine's own: neither may shadow
                self.notes.append(f"{path}: column(s) {', '.join(map(repr, reserved))} ignored: the name is reserved")
                lf = lf.drop(reserved)
            self._scans[table] = _as_read(lf, {c: t for c, t in schema.items() if c not in reserved})
            for col in (c for c, t in schema.items() if t == pl.Binary and c not in reserved):
                _check_text(lf, path, col)
        return self._scans[table]

    def rows(self, table: str, archive=None) -> pl.LazyFrame:
        """The table's rows, then those of its archive (a spec's Archive: table, key) whose key the table does not
        have, in the table's columns and types; without the archive file, the table alone. A key in both whose
        rows differ is a warning naming both tables (the table's row is the one read)."""
        if archive is None or not self.has(archive.table):
            return self.scan(table)
        if table not in self._unions:
            live, old = self.scan(table), self._aligned(table, archive)
            keys = list(archive.key)
            added = old.join(live.select(keys).unique(), on=keys, how="anti", maintain_order="left")
            self._unions[table] = pl.concat([live, added], how="vertical")
            differ = _differing(live, old, keys, where=f"{self.file(archive.table)}: archive of {table}")
            if differ:
                self.notes.append(
                    f"{self.file(archive.table)}: {differ:,} key(s) of ({', '.join(keys)}) also in {table} with "
                    f"other values; the rows of {table} are read"
                )
        return self._unions[table]

    def _aligned(self, table: str, archive) -> pl.LazyFrame:
        """The archive in the live table's columns and types (a column it lacks is null, one it adds is left out);
        a key column missing from either is an error naming the table and the declaring spec."""
        live, old = self.scan(table).collect_schema(), self.scan(archive.table)
        have = old.collect_schema()
        for name, schema in ((table, live), (archive.table, have)):
            for col in (c for c in archive.key if c not in schema):
                raise EngineError(
                    f"{self.file(name)}: no column '{col}', the key of the archive {archive.table} of {table} "
                    f"({archive.file}){did_you_mean(col, schema)}"
                )
        return old.select((_in_type(c, have[c], t) if c in have else pl.lit(None, t)).alias(c) for c, t in live.items())

    def row_count(self, table: str) -> int:
        """Rows in the table, from the parquet metadata."""
        return self.scan(table).select(pl.len()).collect().item()


def _in_type(col: str, dtype: pl.DataType, wanted: pl.DataType) -> pl.Expr:
    """An archive column in the live table's type: text times read in the ISO forms (Polars casts no text
    to a time), anything else cast, null where it cannot be."""
    if isinstance(wanted, pl.Datetime) and dtype == pl.String:
        return as_timestamp(pl.col(col), dtype)
    return pl.col(col).cast(wanted, strict=False)


def _differing(live: pl.LazyFrame, old: pl.LazyFrame, keys: list[str], *, where: str) -> int:
    """Keys found in both tables on rows that differ in some column."""
    others = [c for c in live.collect_schema() if c not in keys]
    both = live.join(old, on=keys, how="inner", suffix="__archive")
    differ = (
        pl.any_horizontal(pl.col(c).ne_missing(pl.col(f"{c}__archive")) for c in others) if others else pl.lit(False)
    )
    try:
        return both.filter(differ).select(pl.struct(keys).n_unique()).collect().item()
    except pl.exceptions.PolarsError as exc:
        first = first_line(exc)
        raise EngineError(f"{where}: cannot compare the rows of a key in both ({first})") from None


def _scan(path: Path) -> pl.LazyFrame:
    """A parquet file or a directory of parquet files; anything else (a FIFO, a device, not parquet) is refused."""
    try:
        if path.is_dir():
            lf = _union(_parts(path))
        elif path.is_file():
            lf = pl.scan_parquet(path, glob=False)  # a path is a name: `r*` is no pattern
        else:
            raise EngineError(f"{path}: not a regular file or directory")
        lf.collect_schema()
    except EngineError:
        raise
    except (Exception, pl.exceptions.PanicException) as exc:  # several types, one cause: not parquet
        raise EngineError(f"{path}: not a readable parquet file ({_unreadable(exc, path)})") from None
    return lf


def _parts(path: Path) -> list[Path]:
    """The data files of a dataset directory as Spark, Hive and pyarrow write one: every file below it in
    name order, whatever its suffix (Hive names parts 000000_0) and through linked directories (each once),
    without those they mark as no data (a name starting with _ or ., such as a killed job's _temporary/)."""
    parts, seen = [], set()
    for root, dirs, files in os.walk(path, followlinks=True):
        if os.path.realpath(root) in seen:  # a link back up the tree
            dirs.clear()
            continue
        seen.add(os.path.realpath(root))
        dirs[:] = [d for d in dirs if d[0] not in "_."]
        parts += [Path(root, f) for f in files if f[0] not in "_."]
    parts.sort(key=str)
    if not parts:
        raise EngineError(f"{path}: a directory with no parquet file in it")
    for part in parts:
        try:
            str(part).encode()
        except UnicodeEncodeError:  # Polars took such a name for a file object
            raise EngineError(
                f"{part}: a file name that is not UTF-8 text (Polars opens no other); rename it"
            ) from None
    return parts


def _union(parts: list[Path]) -> pl.LazyFrame:
    """The parts as one table. Polars reads a later part by the first one's columns, so they must match: the
    same columns, of one type once read (a time in ms or in us, a zone or none; Int32 or Int64: two dumps
    years apart), else refused naming the column. Parts of exactly one schema are one scan."""
    scans, schemas = [], []
    for part in parts:
        try:
            scans.append(pl.scan_parquet(part, glob=False))
            schemas.append(dict(scans[-1].collect_schema()))
        except (Exception, pl.exceptions.PanicException) as exc:
            raise EngineError(f"{part}: not a readable parquet file ({_unreadable(exc, part)})") from None
    if all(s == schemas[0] for s in schemas):
        return pl.scan_parquet(parts, glob=False)
    read = [_read_types(s) for s in schemas]
    for col in dict.fromkeys(c for s in read for c in s):  # a column of nulls only (Null) goes with any
        typed = [(part, s.get(col)) for part, s in zip(parts, read, strict=True) if s.get(col) != pl.Null]
        (first, there), *rest = typed or [(parts[0], pl.Null)]
        for part, here in rest:
            if here != there and not _widens(here, there):
                raise EngineError(
                    f"{part}: column '{col}' is {here or 'missing'} here and {there or 'missing'} in {first.name}: "
                    "the parts of a table must have the same columns"
                )
    normal = [_as_read(lf, schema) for lf, schema in zip(scans, schemas, strict=True)]
    return pl.concat(normal, how="vertical_relaxed")  # integers to the widest, floats too


def _widens(one: pl.DataType | None, other: pl.DataType | None) -> bool:
    """Two integer types, or two float types: one holds the other's values (an integer and a float do not: an
    id past 2**53 rounded, and the join found other rows)."""
    if one is None or other is None:  # a column missing from a part
        return False
    return (one.is_integer() and other.is_integer()) or (one.is_float() and other.is_float())


def _read_types(schema: dict) -> dict:
    """A schema as the engine reads it (_normalised): times in UTC microseconds, bytes as text, …"""
    return dict(_as_read(pl.LazyFrame(schema=schema), schema).collect_schema())


def _as_read(lf: pl.LazyFrame, schema: dict) -> pl.LazyFrame:
    """The frame with every column of `schema` of one kind of each value (_normalised)."""
    return lf.with_columns(e for c, t in schema.items() if (e := _normalised(pl.col(c), t)) is not None)


def _unreadable(exc: BaseException, path: Path) -> str:
    """Why Polars could not read a file, in one line; a time zone it cannot parse (a fixed offset such as
    '+05:30') is said as such, naming its columns (from the footer, as pyarrow reads it), without its hints."""
    if found := re.search(r"unable to parse time zone: '([^']*)'", str(exc)):
        import pyarrow.parquet as pq

        zoned = [f.name for f in pq.read_schema(path) if getattr(f.type, "tz", None) == found[1]]
        return (
            f"column {', '.join(map(repr, zoned))} has the time zone '{found[1]}', which Polars cannot read: "
            "write UTC or an IANA name"
        )
    return first_line(exc)


def _normalised(col: pl.Expr, dtype: pl.DataType) -> pl.Expr | None:
    """One kind of each value: UTC naive microsecond times, whole decimals as integers, other decimals as
    floats, bytes and categories as text (None: the column is fine as it is)."""
    if isinstance(dtype, pl.Datetime):
        return _utc(col, dtype)
    if isinstance(dtype, pl.Decimal):
        whole = dtype.scale == 0
        return col.cast((pl.Int64 if (dtype.precision or 38) <= 18 else pl.Int128) if whole else pl.Float64)
    if dtype == pl.Binary or isinstance(dtype, pl.Categorical | pl.Enum):
        return col.cast(pl.String)
    return None


def _check_text(lf: pl.LazyFrame, path: Path, col: str) -> None:
    """A column of bytes must be UTF-8 text to be read as text: say so once, naming the column."""
    try:
        lf.select(pl.col(col).cast(pl.String)).collect()
    except pl.exceptions.PolarsError:
        raise EngineError(f"{path}: column '{col}' holds bytes that are not UTF-8 text") from None


def as_timestamp(expr: pl.Expr, dtype: pl.DataType) -> pl.Expr | None:
    """Coerce an expression of the given type to a naive microsecond timestamp, or None if impossible.

    Text is parsed leniently: an offset (+02:00, Z) is converted to UTC, text without one is UTC
    already; MySQL zero dates and unparseable values become null (see `unreadable_time`).
    """
    if isinstance(dtype, pl.Datetime):
        return _utc(expr, dtype)
    if dtype == pl.Date:  # clipped to the years 1 to 9999 first, as a millisecond time (_utc)
        return expr.cast(pl.Int32).clip(*DAY_BOUNDS).cast(pl.Date).cast(pl.Datetime("us"))
    if dtype == pl.String:
        return from_text(expr)
    if dtype == pl.Null:
        return expr.cast(pl.Datetime("us"))
    return None


def unreadable_time(expr: pl.Expr, dtype: pl.DataType) -> pl.Expr | None:
    """True where text is set but is neither a timestamp nor a MySQL zero date (None: not text)."""
    return unreadable(expr) if dtype == pl.String else None


def as_text(expr: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    """Text of a key or attribute; a whole float is written as an integer, so 10.0 meets 10 and '10', and
    NaN is no value (null), so two NaN ids never meet."""
    if dtype.is_float():
        whole = expr.cast(pl.Int64, strict=False)
        text = pl.when(whole == expr).then(whole.cast(pl.String)).otherwise(expr.cast(pl.String))
        return pl.when(expr.is_nan()).then(None).otherwise(text)
    return expr.cast(pl.String)


MS_BOUNDS = (-62_135_596_800_000, 253_402_214_400_000)  # 0001-01-01 and 9999-12-31 in milliseconds
DAY_BOUNDS = (-719_162, 2_932_896)  # and in days


def _utc(expr: pl.Expr, dtype: pl.Datetime) -> pl.Expr:
    """UTC, naive, microseconds. A millisecond time past the years 1 to 9999 is clipped to them first:
    microseconds hold 292,000 years, and Polars panics on a sentinel beyond (both ends are still no real
    record: LATEST reads such an end as open)."""
    if dtype.time_unit == "ms":
        expr = expr.cast(pl.Int64).clip(*MS_BOUNDS).cast(dtype)
    if dtype.time_zone:
        expr = expr.dt.convert_time_zone("UTC").dt.replace_time_zone(None)
    return expr.dt.cast_time_unit("us")
