"""Checkpoint schemas, checked at each stage boundary, the checkpoints themselves, and atomic writing of a
run's output directory."""

import glob
import json
import os
import shutil
from pathlib import Path

import polars as pl

from engine.errors import EngineError, first_line, listed
from engine.temporal import hours

TIME = pl.Datetime("us")
TIMES = ("valid_start", "valid_end", "planned_end", "tx_start", "tx_end", "tx_updated")  # every span's times
SPAN = {
    "entity": pl.String,
    "entity_id": pl.String,
    "site": pl.String,
    "metric": pl.String,
    "valid_start": TIME,
    "valid_end": TIME,
    "tx_start": TIME,
    "tx_end": TIME,
    "span_hours": pl.Float64,
    "original_start": TIME,
    "original_end": TIME,
    "tx_uncertain": pl.Boolean,
}
VALIDATED = {**SPAN, "hierarchy_status": pl.String}
REJECTED = {"entity": pl.String, "entity_id": pl.String, "rejection_reason": pl.String, "rejection_detail": pl.String}
INACTIVE = {"entity": pl.String, "entity_id": pl.String, "inactive_reason": pl.String, "inactive_detail": pl.String}
USAGE = {"timestamp": TIME, "site": pl.String, "metric": pl.String, "resource": pl.String, "value": pl.Float64}
DAILY = {
    "date": pl.Date,
    "site": pl.String,
    "metric": pl.String,
    "resource": pl.String,
    "hours": pl.Float64,
    "mean": pl.Float64,
}
CHARGED = ("su", "encumbered_su")  # charges.parquet: service units consumed, and booked for after an as-of time
NOT_NULL = {
    "timestamp",
    "date",
    "bucket",
    "value",
    "hours",
    "resource",
    "entity",
    "entity_id",
    "site",
    "metric",
    "valid_start",
    "span_hours",
    "tx_uncertain",
    "hierarchy_status",
    "rejection_reason",
    "inactive_reason",
}


def check_schema(
    df: pl.DataFrame | pl.LazyFrame,
    stage: str,
    declared: dict,
    *,
    extra: dict | None = None,
    nullable: set = frozenset(),
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


def write_entity(out: "OutputDir", res, *, site: str, window, resources: list[str]) -> None:
    """An entity's checkpoints: spans/, validated/, rejected/ and inactive/, each checked against its schema."""
    spec, name = res.spec, res.spec.name
    dynamic = {a: pl.String for a in spec.attributes} | {r: pl.Float64 for r in spec.resources}
    inherited = {a: pl.Float64 if a in resources else pl.String for a in spec.inherit}
    span_hours = hours(pl.col("valid_start"), pl.col("valid_end").fill_null(pl.lit(window[1])))
    extra = [pl.lit(site).alias("site"), span_hours.alias("span_hours")]
    for stage, df, declared, own in (
        ("spans", res.spans.accepted, SPAN, dynamic),
        ("validated", res.validated, VALIDATED, dynamic | inherited),
    ):
        df = df.with_columns(extra).sort("entity_id", "valid_start", "__row").drop("__row")
        out.parquet(f"{stage}/{name}.parquet", check_schema(df, f"{stage}/{name}", declared, extra=own))
    rejected = res.spans.rejected.with_columns(pl.lit(site).alias("site"))
    rejected = check_schema(rejected, f"rejected/{name}", REJECTED, nullable={"entity_id"})  # a null source key
    out.parquet(f"rejected/{name}.parquet", rejected)
    inactive = res.spans.inactive.with_columns(pl.lit(site).alias("site"))
    inactive = inactive.rename({"rejection_reason": "inactive_reason", "rejection_detail": "inactive_detail"})
    out.parquet(f"inactive/{name}.parquet", check_schema(inactive, f"inactive/{name}", INACTIVE))


def write_usage(out: "OutputDir", series: pl.LazyFrame, buckets: dict, *, group: list[str]) -> None:
    """usage.parquet (streamed: GB on a decade-long site), daily.parquet and resampled_<every>.parquet."""
    keys = ["site", "metric", "resource", *group[1:]]
    dynamic = {g: pl.String for g in group}
    usage = series.select("timestamp", *keys, "value")  # ordered by keys, then time
    out.sink("usage.parquet", check_schema(usage, "usage", USAGE, extra=dynamic))
    for every, table in buckets.items():
        daily = every == "1d"
        name, declared = ("daily", DAILY) if daily else (f"resampled_{every}", {**DAILY, "bucket": TIME})
        table = table.select(pl.col("bucket").alias("date" if daily else "bucket"), *keys, "hours", "mean")
        table = table.with_columns(pl.col("date").cast(pl.Date)) if daily else table
        declared = {k: v for k, v in declared.items() if k in table.columns}
        out.parquet(f"{name}.parquet", check_schema(table, name, declared, extra=dynamic))


MARKER = ".engine-output"  # written into every output directory: only such a directory is ever replaced
WRITERS = {"run": ("`engine run`", "--out"), "plots": ("`engine run --plots`", "--plots")}  # else `engine KIND --out`
NAME_MAX = 255  # bytes of one file name (Linux filesystems)


def beside(path: Path, kind: str) -> Path:
    """`.NAME.KIND-PID` beside a path the engine writes whole before it takes the path's place; a name too long
    to carry that suffix is refused (the filesystem's refusal named the temporary, which the user never gave)."""
    tmp = path.parent / f".{path.name}.{kind}-{os.getpid()}"
    name, extra = len(os.fsencode(path.name)), len(os.fsencode(tmp.name)) - len(os.fsencode(path.name))
    if name + extra > NAME_MAX:
        raise EngineError(
            f"{path}: a name of {name} bytes, at most {NAME_MAX - extra} (the engine writes it first as "
            f".NAME.{kind}-PID beside it)"
        )
    return tmp


class OutputDir:
    """Everything of a run is written into a temporary directory that replaces OUT_DIR only when complete.

    OUT_DIR is replaced only when it is absent, empty or an earlier output of the same kind (it holds the
    MARKER file) holding no file but those the marker lists as written; never when it is or holds the current
    directory, or is, holds or lies inside one of the `guarded` paths (the raw data, the specs): anything
    else is refused before any work. A symlink is followed: its target is replaced.
    """

    def __init__(self, path: str | Path, kind: str = "run", guarded: dict[str, str | Path | None] | None = None):
        self.shown, self.kind = Path(path), kind
        self.path = _resolved(self.shown)
        self._refuse_unsafe(guarded or {})
        self.tmp = beside(self.path, "partial")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._recover()
            if self.tmp.exists():
                shutil.rmtree(self.tmp)
            self.tmp.mkdir()
            (self.tmp / MARKER).write_text(json.dumps({"kind": kind}) + "\n")  # proves the directory is writable
        except OSError as exc:
            self.abandon()
            why = "a parent path is a file" if isinstance(exc, FileExistsError | NotADirectoryError) else exc.strerror
            raise EngineError(f"{self.shown}: cannot write the output directory ({why})") from None

    def _refuse_unsafe(self, guarded: dict) -> None:
        """One line before any work if replacing OUT_DIR could destroy something that is not ours."""
        refuse_overlap(self.shown, guarded)
        here = Path.cwd()
        if self.path == here or self.path in here.parents:  # replaced, it would leave the shell in a deleted one
            relation = "is" if self.path == here else "holds"
            raise EngineError(f"{self.shown}: refusing to write here: it {relation} the current directory {here}")
        if not self.path.exists():
            return
        if not self.path.is_dir():
            raise EngineError(f"{self.shown}: output path exists and is not a directory")
        marker, (writer, option) = _marker(self.path), _writer(self.kind)
        if any(self.path.iterdir()) and marker.get("kind") != self.kind:
            what = f"an output of {_writer(marker['kind'])[0]}" if marker.get("kind") else "not an output of the engine"
            raise EngineError(
                f"{self.shown}: refusing to replace it: the directory is not empty and {what} (no {MARKER} "
                f"file of {writer}); choose another {option}, or empty it"
            )
        self._refuse_added(marker)

    def _refuse_added(self, marker: dict) -> None:
        """Refuse to replace an earlier output holding files its marker does not list (once before any work,
        again just before the swap: a file written into it while the run worked)."""
        if "files" not in marker:  # an earlier version's marker
            return
        added = sorted(_files(self.path) - set(marker["files"]))
        if added:
            raise EngineError(
                f"{self.shown}: refusing to replace it: it holds {listed(added, 5)}, which the engine did not write "
                f"there; move {'it' if len(added) == 1 else 'them'} out, or choose another {_writer(self.kind)[1]}"
            )

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

    def _write(self, rel: str, write) -> None:
        """Run write(target) for OUT/rel; a refusal of the filesystem (disk full, read-only) is one line."""
        target = self.tmp / rel
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            write(target)
        except OSError as exc:
            raise EngineError(f"{self.shown}: cannot write {rel} ({exc.strerror or exc})") from None
        except pl.exceptions.PolarsError as exc:  # Polars reports a failed write as its own error type
            raise EngineError(f"{self.shown}: cannot write {rel} ({first_line(exc)})") from None

    def parquet(self, rel: str, df: pl.DataFrame) -> None:
        # zstd level 1: fast, and nearly as small as the default level
        self._write(
            rel, lambda target: df.write_parquet(target, compression="zstd", compression_level=1, statistics=False)
        )

    def sink(self, rel: str, lf: pl.LazyFrame) -> None:
        """Write a plan's rows without holding them all (streaming engine), as `parquet` would."""
        self._write(
            rel,
            lambda target: lf.sink_parquet(
                target, compression="zstd", compression_level=1, statistics=False, engine="streaming"
            ),
        )

    def json(self, rel: str, data: dict) -> None:
        text = json.dumps(data, indent=2, sort_keys=False, default=str) + "\n"
        self._write(rel, lambda target: target.write_text(text))

    def commit(self) -> None:
        """Swap the finished run in place of the previous one."""
        old = beside(self.path, "old")
        try:
            (self.tmp / MARKER).write_text(json.dumps({"kind": self.kind, "files": sorted(_files(self.tmp))}) + "\n")
            if self.path.exists():
                self._refuse_added(_marker(self.path))
                self.path.rename(old)
            self.tmp.rename(self.path)
        except OSError as exc:
            if old.exists() and not self.path.exists():
                old.rename(self.path)
            raise EngineError(f"{self.shown}: cannot replace the output directory ({exc.strerror})") from None
        shutil.rmtree(old, ignore_errors=True)

    def abandon(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)


def refuse_overlap(path: Path, guarded: dict) -> None:
    """Refuse a directory to write that is, holds or lies inside a guarded path (inside the raw data, only
    inside a table written as a directory: its every file is read as a part)."""
    target = _resolved(path)
    for what, other in guarded.items():
        if other is None:
            continue
        try:
            other = Path(other).resolve()
        except (OSError, RuntimeError):  # a symlink loop: its own reader says so
            continue
        inside = other in target.parents and " file" not in what  # nothing lies inside a file
        if inside and what == "the raw data directory":  # beside the tables is harmless, inside one is not
            inside = target.relative_to(other).parts[0].endswith(".parquet")
        if other == target or target in other.parents or inside:
            relation = "is" if other == target else ("holds" if target in other.parents else "lies inside")
            raise EngineError(f"{path}: refusing to write here: it {relation} {what} {other}")


def _resolved(path: Path) -> Path:
    """The absolute path with every symlink followed (a dangling one is an error: its target is not ours)."""
    if path.is_symlink() and not path.exists():
        raise EngineError(f"{path}: the output path is a symlink to {os.readlink(path)}, which does not exist")
    try:
        return path.resolve()
    except (OSError, RuntimeError) as exc:  # a symlink loop
        raise EngineError(f"{path}: cannot resolve the output path ({exc})") from None


def _writer(kind: str) -> tuple[str, str]:
    """The command that writes an output directory of this kind, and its option naming the directory."""
    return WRITERS.get(kind, (f"`engine {kind}`", "--out"))


MARKER_MAX = 64_000_000  # bytes: the names of a million files


def _marker(path: Path) -> dict:
    """The directory's marker: the command whose output it is (`kind`) and the files it wrote (`files`;
    an earlier version's marker lists none); {} if there is none, or none the engine could have written (a
    FIFO or a device would hang or fill the memory; a hand-edited one is no proof of whose the files are)."""
    file = path / MARKER
    try:
        if not file.is_file() or file.stat().st_size > MARKER_MAX:
            return {}
        marker = json.loads(file.read_text())
    except (OSError, ValueError, RecursionError):
        return {}
    if not isinstance(marker, dict) or not isinstance(marker.get("kind"), str):
        return {}
    files = marker.get("files", [])
    return marker if isinstance(files, list) and all(isinstance(f, str) for f in files) else {}


def _files(path: Path) -> set[str]:
    """Every file and link below a directory (links not followed), relative to it, but the marker."""
    found = set()
    for root, dirs, files in os.walk(path):
        found |= {
            os.path.relpath(os.path.join(root, n), path)
            for n in files + [d for d in dirs if os.path.islink(os.path.join(root, d))]
        }
    return found - {MARKER}


def _alive(pid: int) -> bool:
    """Whether a process with this id runs (a run writing its own partial directory)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        pass
    return True
