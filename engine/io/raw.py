"""The raw directory: one parquet file per upstream table, `RAW_DIR/<schema>.<table>.parquet`.

Tables are scanned lazily; timestamps are normalised on the way in (UTC, no zone, microseconds) so
every expression sees one kind of time.
"""

from pathlib import Path

import polars as pl

from engine.errors import EngineError


class RawDir:
    """Lazy access to the raw tables of one site."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.is_dir():
            raise EngineError(f"{self.path}: raw data directory does not exist")
        self._scans: dict[str, pl.LazyFrame] = {}
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
            normal = {c: _normalised(pl.col(c), t) for c, t in schema.items() if c not in reserved}
            self._scans[table] = lf.with_columns(e for e in normal.values() if e is not None)
            for col in (c for c, t in schema.items() if t == pl.Binary and c not in reserved):
                _check_text(lf, path, col)
        return self._scans[table]

    def row_count(self, table: str) -> int:
        """Rows in the table, from the parquet metadata."""
        return self.scan(table).select(pl.len()).collect().item()


def _scan(path: Path) -> pl.LazyFrame:
    """A parquet file or a directory of parquet files; anything else (a FIFO, a device, not parquet) is refused."""
    try:
        if path.is_dir():
            source = path / "**" / "*.parquet"
        elif path.is_file():
            source = path
        else:
            raise EngineError(f"{path}: not a regular file or directory")
        lf = pl.scan_parquet(source)
        lf.collect_schema()
    except EngineError:
        raise
    except (Exception, pl.exceptions.PanicException) as exc:  # several types, one cause: not parquet
        raise EngineError(f"{path}: not a readable parquet file ({str(exc).strip().splitlines()[0]})") from None
    return lf


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


# Text timestamps: with an offset (converted to UTC), then without one (UTC already).
TEXT_FORMATS = ("%+", "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d")


def as_timestamp(expr: pl.Expr, dtype: pl.DataType) -> pl.Expr | None:
    """Coerce an expression of the given type to a naive microsecond timestamp, or None if impossible.

    Text is parsed leniently: an offset (+02:00, Z) is converted to UTC, text without one is UTC
    already; MySQL zero dates and unparseable values become null (see `unreadable_time`).
    """
    if isinstance(dtype, pl.Datetime):
        return _utc(expr, dtype)
    if dtype == pl.Date:
        return expr.cast(pl.Datetime("us"))
    if dtype == pl.String:  # the format Polars infers from the first value, else any of the ISO forms
        parse = lambda fmt: expr.str.to_datetime(fmt, strict=False, time_unit="us", time_zone="UTC")  # noqa: E731
        return pl.coalesce(parse(None), *map(parse, TEXT_FORMATS)).dt.replace_time_zone(None)
    if dtype == pl.Null:
        return expr.cast(pl.Datetime("us"))
    return None


def unreadable_time(expr: pl.Expr, dtype: pl.DataType) -> pl.Expr | None:
    """True where text is set but is neither a timestamp nor a MySQL zero date (None: not text)."""
    if dtype != pl.String:
        return None
    zero = expr.str.starts_with("0000-00-00")
    return expr.is_not_null() & ~zero & as_timestamp(expr, dtype).is_null()


def as_text(expr: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    """Text of a key or attribute; a whole float is written as an integer, so 10.0 meets 10 and '10', and
    NaN is no value (null), so two NaN ids never meet."""
    if dtype.is_float():
        whole = expr.cast(pl.Int64, strict=False)
        text = pl.when(whole == expr).then(whole.cast(pl.String)).otherwise(expr.cast(pl.String))
        return pl.when(expr.is_nan()).then(None).otherwise(text)
    return expr.cast(pl.String)


def _utc(expr: pl.Expr, dtype: pl.Datetime) -> pl.Expr:
    if dtype.time_zone:
        expr = expr.dt.convert_time_zone("UTC").dt.replace_time_zone(None)
    return expr.dt.cast_time_unit("us")
