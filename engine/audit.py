"""Drill-down: `engine trace` follows one raw row through the run; `engine why` takes one daily cell apart.

Both read only a finished output directory (and, for raw values, the raw directory its manifest names).
"""

import json
import re
from datetime import date as Date
from datetime import datetime, timedelta
from pathlib import Path

import polars as pl

from engine.errors import EngineError, first_line
from engine.expr import did_you_mean
from engine.hierarchy import COUNTED
from engine.io.raw import RawDir, as_text
from engine.spec.load import load_specs
from engine.spec.model import expand
from engine.temporal import day_hours, local_time, utc_time


class Run:
    """A finished output directory, its manifest and specs."""

    def __init__(self, out_dir: str | Path):
        self.out = Path(out_dir)
        if not (self.out / "manifest.json").is_file():
            raise EngineError(f"{self.out}: not an output directory of `engine run` (no manifest.json)")
        try:
            self.manifest = json.loads((self.out / "manifest.json").read_text())
            specs, window = self.manifest["specs"], self.manifest["window"]
            self.window = tuple(datetime.fromisoformat(window[k]) for k in ("start", "end"))
            self.tz = self.manifest.get("timezone") or "UTC"
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise EngineError(
                f"{self.out / 'manifest.json'}: damaged, not a manifest of `engine run` ({exc})"
            ) from None
        self.specs = load_specs(specs)

    def read(self, rel: str, must: bool = False) -> pl.DataFrame:
        """An output file of the run (empty when absent, unless it must exist); a damaged one is one line."""
        path = self.out / rel
        if not path.is_file():
            if must:
                raise EngineError(f"{path}: missing from the output directory")
            return pl.DataFrame()
        try:
            return pl.read_parquet(path)
        except (pl.exceptions.PolarsError, OSError, pl.exceptions.PanicException) as exc:
            raise EngineError(f"{path}: not a readable parquet file ({first_line(exc)})") from None

    def frame(self, stage: str, entity: str) -> pl.DataFrame:
        return self.read(f"{stage}/{entity}.parquet")

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
    validated = run.frame("validated", entity).filter(pl.col("entity_id") == key)
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
    parent = spec.parent
    if parent and validated.height:
        theirs = run.frame("validated", parent.entity).filter(pl.col("hierarchy_status").is_in(COUNTED))
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
    d0, d1 = (utc_time(datetime(day.year, day.month, day.day) + timedelta(days=n), run.tz) for n in (0, 1))
    if not (run.window[0] <= d0 < run.window[1]):
        w0, w1 = (local_time(t, run.tz) for t in run.window)
        raise EngineError(
            f"--date {day}: outside this run's window, {w0:%Y-%m-%d} to {w1 - timedelta(days=1):%Y-%m-%d}"
        )
    daily = run.read(table, must=True)
    resources = sorted(daily["resource"].unique()) if daily.height else []
    if resource not in resources:
        raise EngineError(
            f"--resource: '{resource}' is not in {table}{did_you_mean(resource, resources)}; known: {', '.join(resources)}"
        )
    for col, value in where.items():  # a typo in a value must not read as "0 spans, matches"
        known = sorted(daily[col].drop_nulls().unique().to_list()) if col in daily.columns else []
        if value not in known:
            raise EngineError(
                f"--where {col}={value}: no such {col} in this run{did_you_mean(value, known)}; known: {', '.join(known)}"
            )
    window = (max(d0, run.window[0]), min(d1, run.window[1]))
    rows = []
    for base, sign in expand(metrics)[metric].items():
        for name, spec in run.specs.entities.items():
            df = run.frame("validated", name)
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
