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

    def file(self, table: str) -> Path:
        return self.path / f"{table}.parquet"

    def has(self, table: str) -> bool:
        return self.file(table).is_file()

    def scan(self, table: str) -> pl.LazyFrame:
        """The table as a LazyFrame with normalised timestamps; a damaged file is a clear error."""
        if table not in self._scans:
            path = self.file(table)
            try:
                lf = pl.scan_parquet(path)
                schema = lf.collect_schema()
            except (Exception, pl.exceptions.PanicException) as exc:  # several types, one cause: not parquet
                raise EngineError(f"{path}: not a readable parquet file ({str(exc).splitlines()[0]})") from None
            stamps = [_utc(pl.col(n), t) for n, t in schema.items() if isinstance(t, pl.Datetime)]
            self._scans[table] = lf.with_columns(stamps)
        return self._scans[table]

    def row_count(self, table: str) -> int:
        """Rows in the table, from the parquet metadata."""
        return self.scan(table).select(pl.len()).collect().item()


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
    """Text of a key or attribute; a whole float is written as an integer, so 10.0 meets 10 and '10'."""
    if dtype.is_float():
        whole = expr.cast(pl.Int64, strict=False)
        return pl.when(whole == expr).then(whole.cast(pl.String)).otherwise(expr.cast(pl.String))
    return expr.cast(pl.String)


def _utc(expr: pl.Expr, dtype: pl.Datetime) -> pl.Expr:
    if dtype.time_zone:
        expr = expr.dt.convert_time_zone("UTC").dt.replace_time_zone(None)
    return expr.dt.cast_time_unit("us")
