"""Drill-down: `engine trace` follows one raw row through the run; `engine why` takes one daily cell apart.

Both read only a finished output directory (and, for raw values, the raw directory its manifest names).
"""

import json
import re
from datetime import date as Date
from datetime import datetime, timedelta
from pathlib import Path

import polars as pl

from engine.errors import EngineError, escaped, first_line, listed
from engine.expr import did_you_mean
from engine.hierarchy import COUNTED
from engine.io.output import TIME
from engine.io.raw import RawDir, as_text
from engine.spec.load import load_specs, schema_problems
from engine.spec.model import expand
from engine.temporal import day_hours, local_time, utc_time, zone_error

TEXT = pl.String
READS = {  # what trace and why read of each output: a file without these is not as `engine run` writes it
    "validated": {"entity_id": TEXT, "valid_start": TIME, "valid_end": TIME, "hierarchy_status": TEXT},
    "spans": {"entity_id": TEXT, "metric": TEXT, "valid_start": TIME},
    "rejected": {"entity_id": TEXT, "rejection_reason": TEXT, "rejection_detail": TEXT},
    "inactive": {"entity_id": TEXT, "inactive_reason": TEXT, "inactive_detail": TEXT},
    "daily": {"date": pl.Date, "metric": TEXT, "resource": TEXT, "hours": pl.Float64},
}


class Run:
    """A finished output directory, its manifest and specs. Whatever is read of them is checked first, so
    an edited or damaged output is one line naming the file and the field, never a traceback."""

    def __init__(self, out_dir: str | Path):
        self.out = Path(out_dir)
        path = self.out / "manifest.json"
        if not path.is_file():
            raise EngineError(f"{self.out}: not an output directory of `engine run` (no manifest.json)")
        damaged = f"{path}: damaged, not a manifest of `engine run`"
        try:
            self.manifest = json.loads(path.read_bytes())
        except (OSError, ValueError, RecursionError) as exc:  # RecursionError: JSON nested 100,000 deep
            raise EngineError(f"{damaged} ({first_line(exc)})") from None
        if not isinstance(self.manifest, dict):
            raise EngineError(f"{damaged} (not a JSON object)")
        if problems := schema_problems(self.manifest, "manifest", display=str(path)):
            raise EngineError(problems[0])
        self.tz = self.manifest.get("timezone") or "UTC"
        if problem := zone_error(self.tz):
            raise EngineError(f"{path}: manifest: timezone {problem}")
        try:
            self.window = tuple(datetime.fromisoformat(self.manifest["window"][k]) for k in ("start", "end"))
        except ValueError as exc:  # a 13th month
            raise EngineError(f"{damaged} (window: {exc})") from None
        self.specs = load_specs(self.manifest["specs"])

    def read(self, rel: str, must: bool = False, *, columns: dict, optional: dict | None = None) -> pl.DataFrame:
        """An output file of the run (empty when absent, unless it must exist) with the `columns` it must
        have and the `optional` ones it may, of their types; a damaged one is one line."""
        path = self.out / rel
        if not path.is_file():
            if must:
                raise EngineError(f"{path}: missing from the output directory")
            return pl.DataFrame()
        try:
            df = pl.read_parquet(path, glob=False)
        except (pl.exceptions.PolarsError, OSError, pl.exceptions.PanicException) as exc:
            raise EngineError(f"{path}: not a readable parquet file ({first_line(exc)})") from None
        wanted = columns | {c: t for c, t in (optional or {}).items() if c in df.columns}
        for col, dtype in wanted.items():
            if df.schema.get(col) != dtype:
                got = f"is {df.schema[col]}" if col in df.columns else "is missing"
                raise EngineError(f"{path}: column '{col}' {got}, expected {dtype}: not as `engine run` writes it")
        return df

    def frame(self, stage: str, entity: str, *, columns: dict | None = None, optional: dict | None = None):
        return self.read(f"{stage}/{entity}.parquet", columns=READS[stage] | (columns or {}), optional=optional)

    def entity(self, name: str) -> dict:
        if name not in self.specs.entities:
            raise EngineError(f"unknown entity '{name}'{did_you_mean(name, self.specs.entities)}")
        return self.specs.entities[name]


def rows_of(df: pl.DataFrame) -> list[dict]:
    """Rows as dicts with times as text: a raw time Python cannot hold (year -64) is shown, not a crash."""
    text = {pl.Datetime: "%Y-%m-%d %H:%M:%S%.f", pl.Date: "%Y-%m-%d"}
    return df.with_columns(
        pl.col(c).dt.to_string(fmt) for c, t in df.schema.items() for kind, fmt in text.items() if isinstance(t, kind)
    ).to_dicts()


def trace(out_dir, entity: str, key: str) -> dict:
    """One raw row's journey: raw values, rejection or span pieces with hierarchy status, parents, hours per day."""
    run = Run(out_dir)
    spec = run.entity(entity)
    raw = _raw_rows(RawDir(run.manifest["data"]), spec.source, key, archives=run.specs.archives)
    rejected, inactive = (_with_key(run.frame(stage, entity), key) for stage in ("rejected", "inactive"))
    parent = spec.parent
    keys = {k: TEXT for k in parent.on} if parent else {}
    validated = run.frame("validated", entity, columns=keys).filter(pl.col("entity_id") == key)
    if not raw.height and not rejected.height and not inactive.height and not validated.height:
        raise EngineError(f"{entity} {key}: no such row in {spec.source.table} or in this run's outputs")
    out = {
        "entity": entity,
        "key": key,
        "raw": rows_of(raw),
        "spans": rows_of(run.frame("spans", entity).filter(pl.col("entity_id") == key)),
    }
    out["rejected"] = rejected.select("rejection_reason", "rejection_detail").to_dicts() if rejected.height else []
    out["inactive"] = inactive.select("inactive_reason", "inactive_detail").to_dicts() if inactive.height else []
    out["validated"] = rows_of(validated)
    if parent and validated.height:
        theirs = run.frame("validated", parent.entity, columns={t: TEXT for t in parent.on.values()})
        theirs = theirs.filter(pl.col("hierarchy_status").is_in(COUNTED))
        mine = validated.filter(pl.col("hierarchy_status").is_in(COUNTED))
        links = mine.select(*parent.on, "valid_start", "valid_end").join(
            theirs.rename(
                {t: m for m, t in parent.on.items() if t != m} | {"valid_start": "p_start", "valid_end": "p_end"}
            ),
            on=list(parent.on),
        )
        far = datetime.max
        overlap = (pl.col("p_start") < pl.col("valid_end").fill_null(far)) & (
            pl.col("valid_start") < pl.col("p_end").fill_null(far)
        )
        out["parents"] = (
            links.filter(overlap)
            .select(pl.lit(parent.entity).alias("entity"), "entity_id", "p_start", "p_end")
            .unique()
            .sort("p_start")
            .pipe(rows_of)
        )
    counted = validated.filter(pl.col("hierarchy_status").is_in(COUNTED))
    days = (
        day_hours(counted.lazy(), run.window, tz=run.tz)
        .group_by("date")
        .agg(pl.col("day_hours").sum().alias("hours"))
        .sort("date")
    )
    out["hours_per_day"] = rows_of(days.collect())
    return out


def _natural(span: dict) -> tuple:
    """Spans by metric, entity, then id as a person counts (host 2 before host 10), then time."""
    parts = re.split(r"(\d+)", str(span["entity_id"]))
    key = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in parts)
    return span["metric"], span["entity"], key, str(span["valid_start"])


def _with_key(rows: pl.DataFrame, key: str) -> pl.DataFrame:
    return rows.filter(pl.col("entity_id") == key) if rows.height else rows


def _raw_rows(data: RawDir, source, key: str, *, archives: dict) -> pl.DataFrame:
    """The raw rows with this key, as the run read them (with the table's archive; none if the table is a lookup
    or has no such column)."""
    table, column = source.table, source.key
    if not data.has(table):
        return pl.DataFrame()
    scan = data.rows(table, archives.get(table))
    schema = scan.collect_schema()
    if column not in schema:
        return pl.DataFrame()
    return scan.filter(as_text(pl.col(column), schema[column]) == key).collect()


def why(out_dir, metric: str, day: Date, *, where: dict[str, str], resource: str = "nodes") -> dict:
    """The counted spans making up one daily cell, with their signed contributions, checked against daily.parquet."""
    run = Run(out_dir)
    metrics = run.specs.metrics.metrics
    if metric not in metrics:
        raise EngineError(f"--metric: unknown metric '{metric}'{did_you_mean(metric, metrics)}")
    table = _cells(run, metric, resource, where=where)
    try:
        d0, d1 = (utc_time(datetime(day.year, day.month, day.day) + timedelta(days=n), run.tz) for n in (0, 1))
    except OverflowError:  # the calendar's last day (9999-12-31) has no next midnight: outside any window
        d0 = d1 = run.window[1]
    if not (run.window[0] <= d0 < run.window[1]):
        w0, w1 = (local_time(t, run.tz) for t in run.window)
        raise EngineError(
            f"--date {day}: outside this run's window, {w0:%Y-%m-%d} to {w1 - timedelta(days=1):%Y-%m-%d}"
        )
    text = {k: TEXT for k in where}
    daily = run.read(table, must=True, columns=READS["daily"], optional=text)
    resources = sorted(daily["resource"].unique()) if daily.height else []
    if resource not in resources:
        raise EngineError(
            f"--resource: '{resource}' is not in {table}{did_you_mean(resource, resources)}; known: {', '.join(resources)}"
        )
    for col, value in where.items():  # a typo in a value must not read as "0 spans, matches"
        known = sorted(daily[col].drop_nulls().unique().to_list()) if col in daily.columns else []
        if value not in known:
            raise EngineError(
                f"--where {col}={value}: no such {col} in this run{did_you_mean(value, known)}; "
                f"known: {listed([escaped(k, 80) for k in known], 20)}"
            )
    window = (max(d0, run.window[0]), min(d1, run.window[1]))
    rows = []
    for base, sign in expand(metrics)[metric].items():
        for name, spec in run.specs.entities.items():
            df = run.frame("validated", name, optional={resource: pl.Float64, **text})
            if spec.metric != base or not df.height or resource not in df.columns:
                continue
            df = df.filter(
                pl.col("hierarchy_status").is_in(COUNTED), *(_is(k, v) for k, v in where.items() if k in df.columns)
            )
            part = day_hours(df.lazy(), window, tz=run.tz).collect()
            rows.append(part.select(*_contribution(base, sign, entity=name, resource=resource)))
    spans = pl.concat(rows) if rows else pl.DataFrame()
    total = float(spans["contribution"].sum()) if spans.height else 0.0
    daily = daily.filter(
        (pl.col("metric") == metric) & (pl.col("resource") == resource) & (pl.col("date") == day),
        *(pl.col(k) == v for k, v in where.items()),
    )
    reported = float(daily["hours"].sum())
    return {
        "metric": metric,
        "date": str(day),
        "table": table,
        "where": where,
        "resource": resource,
        "spans": sorted(rows_of(spans), key=_natural),
        "total": total,
        "daily": reported,
        "matches": abs(total - reported) <= 1e-6 * max(1.0, abs(reported)),
    }


def _cells(run: Run, metric: str, resource: str, *, where: dict[str, str]) -> str:
    """The output that holds the cell: daily.parquet for the group columns, a breakdown's
    daily_by_<name>.parquet when `where` names its columns (for a metric and resource it split)."""
    groups = ["site", *run.specs.metrics.group_by]
    extra = [c for c in where if c not in groups]
    if not extra:
        return "daily.parquet"
    splits = run.specs.metrics.breakdowns
    name = next((n for n, b in splits.items() if set(extra) <= set(b.by)), None)
    known = [*groups, *dict.fromkeys(c for b in splits.values() for c in b.by)]
    unknown = [c for c in extra if c not in known]
    if unknown:
        raise EngineError(
            f"--where: '{unknown[0]}' is not a group or breakdown column{did_you_mean(unknown[0], known)}; "
            f"known: {', '.join(known)}"
        )
    if name is None:
        by = "; ".join(f"{n}: {', '.join(b.by)}" for n, b in splits.items())
        raise EngineError(f"--where: no breakdown splits by {' and '.join(extra)} together (breakdowns: {by})")
    split = (run.manifest.get("breakdowns") or {}).get(name, {})
    resources = splits[name].resources
    if metric not in split.get("metrics", []) or (resources is not None and resource not in resources):
        raise EngineError(
            f"--where {extra[0]}: {metric} in {resource} is not split by {name} in this run (split: "
            f"{', '.join(split.get('metrics', [])) or 'nothing'}, in {', '.join(resources or ['every resource'])})"
        )
    return f"daily_by_{name}.parquet"


def _is(col: str, value: str) -> pl.Expr:
    """A span's column equals a cell's value: outputs name a missing group value 'null'."""
    return (pl.col(col) == value) | (pl.col(col).is_null() & pl.lit(value == "null"))


def _contribution(base: str, sign: int, *, entity: str, resource: str) -> list:
    """The columns of one span's share of a daily cell: its level, its hours that day, level x hours x sign."""
    return [
        pl.lit(base).alias("metric"),
        pl.lit(sign).alias("sign"),
        pl.lit(entity).alias("entity"),
        "entity_id",
        "valid_start",
        "valid_end",
        "hierarchy_status",
        pl.col(resource).alias("value"),
        pl.col("day_hours").alias("hours"),
        (pl.col(resource) * pl.col("day_hours") * sign).alias("contribution"),
    ]
