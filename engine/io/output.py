"""Checkpoint schemas, checked at each stage boundary, and atomic writing of a run's output directory."""

import json
import os
import shutil
from pathlib import Path

import polars as pl

from engine.errors import EngineError

TIME = pl.Datetime("us")
SPAN = {
    "entity": pl.String, "entity_id": pl.String, "site": pl.String, "metric": pl.String,
    "valid_start": TIME, "valid_end": TIME, "tx_start": TIME, "tx_end": TIME, "span_hours": pl.Float64,
    "original_start": TIME, "original_end": TIME, "tx_uncertain": pl.Boolean,
}  # fmt: skip
VALIDATED = {**SPAN, "hierarchy_status": pl.String}
REJECTED = {"entity": pl.String, "entity_id": pl.String, "rejection_reason": pl.String, "rejection_detail": pl.String}
USAGE = {"timestamp": TIME, "site": pl.String, "metric": pl.String, "resource": pl.String, "value": pl.Float64}
DAILY = {"date": pl.Date, "site": pl.String, "metric": pl.String, "resource": pl.String, "hours": pl.Float64,
         "mean": pl.Float64}  # fmt: skip
NOT_NULL = {"timestamp", "date", "bucket", "value", "hours", "resource", "entity", "entity_id", "site", "metric", "valid_start", "span_hours", "tx_uncertain", "hierarchy_status",
            "rejection_reason"}  # fmt: skip


def check_schema(df: pl.DataFrame, stage: str, declared: dict, extra: dict | None = None) -> pl.DataFrame:
    """Stop the run if a checkpoint drifts from its declared columns, types or nullability."""
    for col, dtype in {**declared, **(extra or {})}.items():
        if col not in df.columns:
            raise EngineError(f"stage {stage}: column '{col}' is missing (expected {dtype})")
        if df.schema[col] != dtype and df.schema[col] != pl.Null:
            raise EngineError(f"stage {stage}: column '{col}' is {df.schema[col]}, expected {dtype}")
        if col in NOT_NULL and df[col].null_count():
            raise EngineError(f"stage {stage}: column '{col}' has {df[col].null_count()} nulls, expected none")
    return df


class OutputDir:
    """Everything of a run is written into a temporary directory that replaces OUT_DIR only when complete."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if self.path.exists() and not self.path.is_dir():
            raise EngineError(f"{self.path}: output path exists and is not a directory")
        self.tmp = self.path.parent / f".{self.path.name}.partial-{os.getpid()}"
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if self.tmp.exists():
                shutil.rmtree(self.tmp)
            self.tmp.mkdir()
        except OSError as exc:
            raise EngineError(f"{self.path}: cannot write the output directory ({exc.strerror})") from None

    def parquet(self, rel: str, df: pl.DataFrame) -> None:
        target = self.tmp / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        df.write_parquet(target, compression="zstd", statistics=False)

    def json(self, rel: str, data: dict) -> None:
        (self.tmp / rel).write_text(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")

    def commit(self) -> None:
        """Swap the finished run in place of the previous one."""
        old = self.path.parent / f".{self.path.name}.old-{os.getpid()}"
        if self.path.exists():
            self.path.rename(old)
        self.tmp.rename(self.path)
        if old.exists():
            shutil.rmtree(old)

    def abandon(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)
