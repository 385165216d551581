"""Checkpoint schemas, checked at each stage boundary, and atomic writing of a run's output directory."""

import glob
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


def check_schema(
    df: pl.DataFrame | pl.LazyFrame, stage: str, declared: dict, extra: dict | None = None, nullable: set = frozenset()
) -> pl.DataFrame | pl.LazyFrame:
    """Stop the run if a checkpoint drifts from its declared columns, types or nullability (NOT_NULL - nullable).

    A LazyFrame (an output too big to hold named in memory) has its nulls counted in one streaming pass.
    """
    schema, wanted = df.collect_schema(), {**declared, **(extra or {})}
    for col, dtype in wanted.items():
        if col not in schema:
            raise EngineError(f"stage {stage}: column '{col}' is missing (expected {dtype})")
        if schema[col] != dtype and schema[col] != pl.Null:
            raise EngineError(f"stage {stage}: column '{col}' is {schema[col]}, expected {dtype}")
    strict = [c for c in wanted if c in NOT_NULL - nullable]
    nulls = df.lazy().select(pl.col(strict).null_count()).collect(engine="streaming") if strict else pl.DataFrame()
    for col in strict:
        if nulls[col].item():
            raise EngineError(f"stage {stage}: column '{col}' has {nulls[col].item()} nulls, expected none")
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
            self._recover()
            if self.tmp.exists():
                shutil.rmtree(self.tmp)
            self.tmp.mkdir()
        except OSError as exc:
            why = "a parent path is a file" if isinstance(exc, FileExistsError | NotADirectoryError) else exc.strerror
            raise EngineError(f"{self.path}: cannot write the output directory ({why})") from None

    def _recover(self) -> None:
        """Clear what killed runs left beside OUT_DIR; one killed mid-swap gets its previous output back."""
        for kind in ("old", "partial"):
            for left in sorted(self.path.parent.glob(f"{glob.escape('.' + self.path.name)}.{kind}-*")):
                pid = left.name.rsplit("-", 1)[1]
                if not pid.isdigit() or _alive(int(pid)):
                    continue
                if kind == "old" and not self.path.exists():
                    left.rename(self.path)
                else:
                    shutil.rmtree(left, ignore_errors=True)

    def parquet(self, rel: str, df: pl.DataFrame) -> None:
        target = self.tmp / rel
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            df.write_parquet(target, compression="zstd", compression_level=1, statistics=False)  # fast, nearly as small
        except OSError as exc:
            raise EngineError(f"{target}: cannot write ({exc.strerror})") from None

    def sink(self, rel: str, lf: pl.LazyFrame) -> None:
        """Write a plan's rows without holding them all (streaming engine), as `parquet` would."""
        target = self.tmp / rel
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            lf.sink_parquet(target, compression="zstd", compression_level=1, statistics=False, engine="streaming")
        except OSError as exc:
            raise EngineError(f"{target}: cannot write ({exc.strerror})") from None

    def json(self, rel: str, data: dict) -> None:
        try:
            (self.tmp / rel).write_text(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")
        except OSError as exc:
            raise EngineError(f"{self.tmp / rel}: cannot write ({exc.strerror})") from None

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


def _alive(pid: int) -> bool:
    """Whether a process with this id runs (a run writing its own partial directory)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        pass
    return True
