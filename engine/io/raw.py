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
            except Exception as exc:  # polars raises several types for one cause: not readable parquet
                raise EngineError(f"{path}: not a readable parquet file ({str(exc).splitlines()[0]})") from None
            stamps = [_utc(pl.col(n), t) for n, t in schema.items() if isinstance(t, pl.Datetime)]
            self._scans[table] = lf.with_columns(stamps)
        return self._scans[table]

    def row_count(self, table: str) -> int:
        """Rows in the table, from the parquet metadata."""
        return self.scan(table).select(pl.len()).collect().item()


def as_timestamp(expr: pl.Expr, dtype: pl.DataType) -> pl.Expr | None:
    """Coerce an expression of the given type to a naive microsecond timestamp, or None if impossible.

    Text is parsed leniently: MySQL zero dates and unparseable values become null.
    """
    if isinstance(dtype, pl.Datetime):
        return _utc(expr, dtype)
    if dtype == pl.Date:
        return expr.cast(pl.Datetime("us"))
    if dtype == pl.String:
        return expr.str.to_datetime(strict=False, time_unit="us")
    if dtype == pl.Null:
        return expr.cast(pl.Datetime("us"))
    return None


def _utc(expr: pl.Expr, dtype: pl.Datetime) -> pl.Expr:
    if dtype.time_zone:
        expr = expr.dt.convert_time_zone("UTC").dt.replace_time_zone(None)
    return expr.dt.cast_time_unit("us")
