"""`engine run`: specs and a raw directory in; checkpoints, usage series and a manifest out.

Entities run in graph order (parents first); every stage's output is held in memory and written at
the end into a temporary directory that replaces OUT_DIR only once the run is complete.
"""

import resource
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl

from engine import __version__
from engine.compare import audit_daily, compare, tolerance
from engine.errors import EngineError
from engine.exclusions import load_exclusions, stale
from engine.expr import did_you_mean
from engine.graph import build_graph, entity_order, tables_for
from engine.hierarchy import COUNTED, parent_keys, validate
from engine.invariants import entity_checks, partition_checks, record
from engine.io.output import DAILY, INACTIVE, REJECTED, SPAN, USAGE, VALIDATED, OutputDir, check_schema
from engine.io.raw import RawDir
from engine.plan.frames import MissingTable, Tables
from engine.plan.spans import EntitySpans, Lens, build_spans
from engine.spec.checks import claimers, resources_of
from engine.spec.load import load_specs
from engine.temporal import EARLIEST, LATEST, hours, hours_in
from engine.usage import usage_stage

MAX_SNAPSHOTS = 400  # --as-of-series: a weekly series over seven years


@dataclass
class RunConfig:
    specs: str
    data: str
    out: str
    start: datetime | None = None
    end: datetime | None = None
    site: str | None = None
    as_of: datetime | None = None
    resample: tuple[str, ...] = ()
    as_of_series: str | None = None  # e.g. "7d": projected snapshots every 7 days through the window
    exclusions: str | None = None  # etc/exclusions.yaml: known-bad records to reject as `excluded`
    report: bool = True  # write report.html
    plots: str | None = None  # also write the report's charts as PNG files here
    entities: list[str] | None = None  # the site's entities (default: all)
    sites: str | None = None  # the sites file the site came from, if any
    site_name: str | None = None  # its display name (CHI@TACC)
    command: str | None = None  # the command line that asked for the run, for the report's provenance


@dataclass
class EntityResult:
    spec: dict
    spans: EntitySpans | None = None
    validated: pl.DataFrame | None = None
    skipped: str | None = None


@dataclass
class Stages:
    """Wall time, CPU time and peak memory so far, per pipeline stage (summed over entities); each stage
    entered is reported to `progress(stage, item)` (the terminal's progress line)."""

    seconds: dict = field(default_factory=dict)
    progress: object = None

    @contextmanager
    def __call__(self, name: str, item: str | None = None):
        if self.progress:
            self.progress(name, item)
        wall, cpu = time.perf_counter(), time.process_time()
        yield
        stage = self.seconds.setdefault(name, {"seconds": 0.0, "cpu_seconds": 0.0})
        stage["seconds"] = round(stage["seconds"] + time.perf_counter() - wall, 3)
        stage["cpu_seconds"] = round(stage["cpu_seconds"] + time.process_time() - cpu, 3)
        stage["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def run(cfg: RunConfig, progress=None) -> dict:
    """Run the pipeline; returns the manifest. Nothing is written unless the whole run succeeds."""
    if cfg.start and cfg.end and cfg.end <= cfg.start:
        raise EngineError(f"--end {cfg.end:%Y-%m-%d} is not after --start {cfg.start:%Y-%m-%d}")
    for flag, value in (("--start", cfg.start), ("--end", cfg.end), ("--as-of", cfg.as_of)):
        if value is not None and not EARLIEST <= value <= LATEST:
            raise EngineError(
                f"{flag} {value:%Y-%m-%d}: outside the times the engine reads, {EARLIEST:%Y} to {LATEST:%Y}"
            )
    specs = load_specs(cfg.specs)
    raw = RawDir(cfg.data)
    guarded = {
        "the raw data directory": cfg.data,
        "the specs directory": cfg.specs,
        "the sites file": cfg.sites,
        "the exclusions file": cfg.exclusions,
    }
    out = OutputDir(cfg.out, guarded=guarded)
    plots = _plots_dir(cfg, out, guarded)
    try:
        manifest = _execute(cfg, specs, raw, out, progress, plots)
        out.commit()
        if isinstance(plots, OutputDir):
            plots.commit()
    except BaseException:
        out.abandon()
        if isinstance(plots, OutputDir):
            plots.abandon()
        raise
    return manifest


def _plots_dir(cfg: RunConfig, out: OutputDir, guarded: dict) -> OutputDir | Path | None:
    """Where the report's PNGs go: inside OUT_DIR they are part of the run's own swap; elsewhere the plots
    directory is an output directory of its own, with the same rules (and it may not hold OUT_DIR)."""
    if cfg.plots is None:
        return None
    plots = Path(cfg.plots).resolve()
    if plots == out.path or out.path in plots.parents:
        return out.tmp / plots.relative_to(out.path)
    return OutputDir(cfg.plots, kind="plots", guarded=guarded | {"the output directory": cfg.out})


def _entities(cfg: RunConfig, specs, graph, tables: Tables, lens: Lens, stages: Stages, excl=None) -> dict:
    """Spans, INV-7 and hierarchy for every selected entity, parents first, in one lens."""
    results: dict[str, EntityResult] = {}
    selected = _selected(specs, graph, cfg.entities)
    claiming = claimers(specs, selected)
    for name in selected:
        spec = specs.entities[name]
        res = results[name] = EntityResult(spec)
        parent = spec.get("parent", {}).get("entity")
        if parent and results[parent].skipped:
            res.skipped = f"its parent {parent} was skipped"
            continue
        pv = results[parent].validated if parent else None
        try:
            with stages("spans", name):
                mine = excl.filter(pl.col("entity") == name) if excl is not None else None
                keys = parent_keys(spec, pv) if parent else None
                res.spans = build_spans(tables, spec, lens, keys, mine, claims=name in claiming)
        except MissingTable as exc:
            if exc.where:  # the source is here, a table it needs is not: the dump or the grants are incomplete
                raise EngineError(
                    f"{exc.where}: table {exc.table} is missing, but the entity's source {spec['source']['table']} "
                    "is there: the dump or the extraction account's grants are incomplete"
                ) from None
            res.skipped = f"the site has no {exc.table}"
            continue
        with stages("hierarchy", name):
            res.validated = validate(res.spans.accepted, spec, pv)
    return results


def _execute(cfg: RunConfig, specs, raw: RawDir, out: OutputDir, progress, plots=None) -> dict:
    stages, graph, lens = Stages(progress=progress), build_graph(specs), Lens(cfg.as_of)
    site = cfg.site or raw.path.name
    tables = Tables(specs, raw, history_as_of=cfg.as_of)
    with stages("load"):
        counts = {t: raw.row_count(t) for t in tables_for(graph, cfg.entities)[0] if raw.has(t)}
    excl = load_exclusions(cfg.exclusions, specs) if cfg.exclusions else None
    results = _entities(cfg, specs, graph, tables, lens, stages, excl)
    live = {n: r for n, r in results.items() if not r.skipped}
    if not live:
        raise EngineError(
            f"{raw.path}: no entity could run: " + "; ".join(f"{n}: {r.skipped}" for n, r in results.items())
        )
    window = _window(cfg, live.values())
    _refuse_empty(live.values(), window)
    manifest = {
        "engine_version": __version__,
        "command": cfg.command,
        "generated_at": datetime.now(UTC).replace(tzinfo=None).isoformat(timespec="seconds"),
        "specs": str(Path(cfg.specs).resolve()),
        "data": str(raw.path.resolve()),
        "sites": str(Path(cfg.sites).resolve()) if cfg.sites else None,
        "specs_sha256": specs.digest,
        "site": site,
        "site_name": cfg.site_name,
        "timezone": "UTC",
        "lens": {"name": lens.name, "as_of": cfg.as_of},
        "window": {"start": window[0], "end": window[1]},
        "tables": counts,
        "entities": {},
        "invariants": [],
        "notices": _notices(cfg, specs, results),
        "warnings": raw.notes + tables.notes,
    }
    if excl is not None:
        unused = stale(excl, set().union(*(r.spans.excluded for r in live.values())), set(live))
        manifest["exclusions"] = {"file": str(cfg.exclusions), "entries": excl["exclusion"].n_unique(), "stale": unused}
        manifest["warnings"] += [
            f"stale exclusion: {u['entity']} {', '.join(u['entity_id'])} matched no row ({u['detail']})" for u in unused
        ]
    with stages("checkpoints"):
        for name, res in results.items():
            if res.skipped:
                manifest["entities"][name] = {"status": "skipped", "reason": res.skipped}
                continue
            parent = res.spec.get("parent", {}).get("entity")
            manifest["invariants"] += entity_checks(
                res.spec, res, live[parent].validated if parent else None, cfg.as_of
            )
            summary = _summary(res, window)
            manifest["entities"][name] = summary
            manifest["invariants"].append(_hours_check(name, summary["hours"]))
            _write_entity(out, res, site, window, resources_of(specs, name))
        manifest["invariants"] += partition_checks(results, specs, tables.get)
        tables.entity_frames = _sited(live, site)
        for name in sorted(specs.reports):
            try:
                out.parquet(f"reports/{name}.parquet", tables.lookup(name).collect())
            except MissingTable as exc:
                manifest["notices"].append(f"report {name} not made: {exc.table} did not run on this site")
        for name, df in sorted(tables.built.items()):
            if name in specs.lookups:
                out.parquet(f"lookups/{name}.parquet", df)
    with stages("sweep"):
        group = ["site", *specs.metrics.get("group_by", [])]
        counted = [(df, resources_of(specs, n)) for n, df in tables.entity_frames.items()]
        every = ["1d", *(e for e in cfg.resample if e != "1d")]
        series, buckets, checks = usage_stage(counted, specs.metrics["metrics"], group, window, every)
        manifest["invariants"] += checks
        manifest["metrics"] = _metric_totals(buckets["1d"])
        _write_usage(out, series, buckets, group)
    legacy = specs.metrics.get("legacy")
    if legacy and raw.has(legacy["table"]):
        with stages("compare"):
            table = raw.scan(legacy["table"])
            expr = lambda field, text: tables.expr(table, f"{specs.metrics['_file']}: legacy", field, text)  # noqa: E731
            daily = buckets["1d"].with_columns(pl.col("bucket").cast(pl.Date).alias("date"))
            audit = audit_daily(live, window, list(legacy.get("group_by", {})))
            comparison = compare(legacy, table, expr, daily, audit, window, cfg.as_of)
            out.parquet("comparison.parquet", comparison)
            worst = comparison.filter("flagged").sort(pl.col("diff_hours").abs(), descending=True).head(10)
            tol = tolerance(legacy)
            manifest["comparison"] = {
                "cells": comparison.height,
                "flagged": int(comparison["flagged"].sum()),
                "tolerance": f"{tol['hours']:g} node-hours and {tol['relative']:.0%} of the larger value",
                "largest": worst.with_columns(pl.col("date").cast(pl.String)).to_dicts(),
            }
            if cfg.as_of is not None:
                manifest["comparison"]["days"] = f"the days that ended by the as-of time {cfg.as_of} only"
    if cfg.as_of_series:
        with stages("as_of_series"):
            _as_of_series(cfg, specs, graph, raw, window, site, out, stages, manifest)
    manifest["timings"] = stages.seconds
    out.json("manifest.json", manifest)
    if cfg.report:
        from engine.report.html import write_report  # matplotlib loads only when a report is wanted

        with stages("report"):
            write_report(out.tmp, specs.metrics, plots.tmp if isinstance(plots, OutputDir) else plots)
        out.json("manifest.json", manifest)  # again, with the report's timing
    return manifest


def _notices(cfg: RunConfig, specs, results: dict) -> list[str]:
    """What the site does not have, by design: entities left out of its list, services it does not run."""
    unlisted = [n for n in sorted(specs.entities) if cfg.entities is not None and n not in cfg.entities]
    notices = (
        [f"entities of the specs that this site does not list, not run: {', '.join(unlisted)}"] if unlisted else []
    )
    return notices + [f"entity {n} not run: {r.skipped}" for n, r in results.items() if r.skipped]


def _sited(results: dict, site: str) -> dict[str, pl.DataFrame]:
    """The validated spans of every entity that ran, with the site column."""
    return {n: r.validated.with_columns(pl.lit(site).alias("site")) for n, r in results.items() if not r.skipped}


def _selected(specs, graph, entities: list[str] | None) -> list[str]:
    """Entities to run, parents first: all, or the site's list (which must hold every parent it needs)."""
    order = entity_order(graph)
    if entities is None:
        return order
    for name in entities:
        if name not in specs.entities:
            raise EngineError(f"site entities: unknown entity '{name}'{did_you_mean(name, specs.entities)}")
        parent = specs.entities[name].get("parent", {}).get("entity")
        if parent and parent not in entities:
            raise EngineError(f"site entities: '{name}' needs its parent '{parent}', which the site does not list")
    return [n for n in order if n in entities]


def _day_floor(t: datetime) -> datetime:
    return datetime(t.year, t.month, t.day)


def _window(cfg: RunConfig, results) -> tuple[datetime, datetime]:
    """--start/--end, else from the data: first counted start to the last recorded change, whole UTC days."""
    counted = [r.validated.filter(pl.col("hierarchy_status").is_in(COUNTED)) for r in results]
    first = _bounded(df["valid_start"] for df in counted)
    last = _bounded((r.spans.accepted[c] for r in results for c in ("tx_start", "tx_end")), latest=True)
    if cfg.as_of is not None:  # projected: show the future as booked at as_of too
        ends = _bounded((df["valid_end"] for df in counted), latest=True)
        last = max([cfg.as_of, *(t for t in (ends, last) if t is not None)])
    start = cfg.start or (_day_floor(first) if first else None)
    end = cfg.end or (_day_floor(last) + timedelta(days=1) if last else None)
    if start is None or end is None:
        raise EngineError("no counted spans to derive a window from; give --start and --end")
    if end <= start:
        raise EngineError(f"window end {end} is not after its start {start}; give --start and --end")
    return start, end


def _refuse_empty(results, window) -> None:
    """A window with no counted span is no result: stop before anything replaces a previous output."""
    counted = [r.validated.filter(pl.col("hierarchy_status").is_in(COUNTED)) for r in results]
    if any(df.select(hours_in(window).sum()).item() > 0 for df in counted if df.height):
        return
    first = _bounded(df["valid_start"] for df in counted)
    why = f"the data's counted spans start {first:%Y-%m-%d}" if first else "no span counts at all"
    rejected = [f"{r.spec['entity']} {_by_reason(r.spans.rejected)}" for r in results if r.spans.rejected.height]
    why += f"; rejected: {', '.join(rejected)}" if rejected and not first else ""
    raise EngineError(f"no counted span in the window {window[0]:%Y-%m-%d} to {window[1]:%Y-%m-%d} ({why})")


def _bounded(columns, latest: bool = False) -> datetime | None:
    """The earliest (or latest) time of the columns inside the documented bounds (EARLIEST, LATEST): a time
    outside them never stretches the default window (a host enrolled in 1901 is clipped by it), and never
    reaches Python (whose datetime cannot hold year -64)."""
    inside = [c.filter(c.is_between(EARLIEST, LATEST)) for c in columns]
    found = [c.max() if latest else c.min() for c in inside if c.len()]
    return (max if latest else min)((t for t in found if t is not None), default=None)


def _summary(res: EntityResult, window) -> dict:
    """Row and hour accounts of one entity for the manifest."""
    spans, validated = res.spans, res.validated
    total = lambda df: float(df.select(hours_in(window).sum()).item()) if df.height else 0.0  # noqa: E731
    status = validated["hierarchy_status"]
    input_h, rejected_h, spans_h = total(spans.raw_times), total(spans.rejected), total(spans.accepted)
    inactive_h = total(spans.inactive)
    counted = validated.filter(status.is_in(COUNTED))
    counted_h = total(counted)
    nodes = pl.col("nodes") if "nodes" in counted.columns else pl.lit(1.0)  # node-hours: a KVM slot is a share
    orphan_h = total(validated.filter(status == "orphan"))
    accepted_rows = spans.accepted["__row"].n_unique()
    accepted_h = input_h - rejected_h - inactive_h
    return {
        "status": "ok",
        "metric": res.spec["metric"],
        "description": " ".join(res.spec["description"].split()).split(". ")[0].rstrip("."),
        "input_rows": spans.input_rows,
        "out_of_scope": spans.out_of_scope,
        "not_recorded": spans.not_recorded,
        "accepted": accepted_rows,
        "rejected": spans.rejected.height,
        "rejected_by_reason": _by_reason(spans.rejected),
        "inactive": spans.inactive.height,
        "inactive_by_reason": _by_reason(spans.inactive),
        "reasons": _reasons(spans.rejected, window) | _reasons(spans.inactive, window),
        "duplicates_clamped": spans.duplicates_clamped,
        "hierarchy": dict(sorted(status.value_counts().rows())),
        "tx_uncertain": int(validated["tx_uncertain"].sum()),
        "node_hours": float(counted.select((hours_in(window) * nodes).sum()).item()) if counted.height else 0.0,
        "hours": {
            "input": input_h,
            "accepted": accepted_h,
            "counted": counted_h,
            "clamped_away": (accepted_h - spans_h) + (spans_h - counted_h - orphan_h),
            "orphaned": orphan_h,
            "rejected": rejected_h,
            "inactive": inactive_h,
            "clamped_by_duplicates": accepted_h - spans_h,
            "clamped_by_parent": spans_h - counted_h - orphan_h,
        },
    }


def _by_reason(rows: pl.DataFrame) -> dict[str, int]:
    return dict(sorted(rows["rejection_reason"].value_counts().rows())) if rows.height else {}


def _reasons(rows: pl.DataFrame, window) -> dict[str, dict]:
    """Per rejection or inactivity reason: rows, hours in the window and an example key (for `engine trace`)."""
    if not rows.height:
        return {}
    grouped = rows.group_by("rejection_reason").agg(
        pl.len().alias("rows"),
        hours_in(window).sum().alias("hours"),
        pl.col("entity_id").drop_nulls().min().alias("example"),
    )
    return {r: {"rows": n, "hours": h, "example": e} for r, n, h, e in sorted(grouped.rows())}


def _hours_check(name: str, h: dict) -> dict:
    """Hours are conserved and no stage creates any: each account is non-negative."""
    negative = [k for k in ("clamped_by_duplicates", "clamped_by_parent") if h[k] < -1e-6 * max(1.0, h["input"])]
    detail = "hours in the window: input = counted + clamped_away + orphaned + rejected + inactive, no stage adds hours"
    return record("INV-10", name, len(negative), detail=detail + (f"; negative: {negative}" if negative else ""))


def _write_entity(out: OutputDir, res: EntityResult, site: str, window, resources: list[str]) -> None:
    spec, name = res.spec, res.spec["entity"]
    dynamic = {a: pl.String for a in spec.get("attributes", {})} | {r: pl.Float64 for r in spec["resources"]}
    span_hours = hours(pl.col("valid_start"), pl.col("valid_end").fill_null(pl.lit(window[1])))
    extra = [pl.lit(site).alias("site"), span_hours.alias("span_hours")]
    spans = res.spans.accepted.with_columns(extra).sort("entity_id", "valid_start", "__row").drop("__row")
    out.parquet(f"spans/{name}.parquet", check_schema(spans, f"spans/{name}", SPAN, dynamic))
    inherited = {a: pl.Float64 if a in resources else pl.String for a in spec.get("inherit", [])}
    validated = res.validated.with_columns(extra).sort("entity_id", "valid_start", "__row").drop("__row")
    out.parquet(
        f"validated/{name}.parquet", check_schema(validated, f"validated/{name}", VALIDATED, dynamic | inherited)
    )
    rejected = res.spans.rejected.with_columns(pl.lit(site).alias("site"))
    rejected = check_schema(rejected, f"rejected/{name}", REJECTED, nullable={"entity_id"})  # a null source key
    out.parquet(f"rejected/{name}.parquet", rejected)
    inactive = res.spans.inactive.with_columns(pl.lit(site).alias("site"))
    inactive = inactive.rename({"rejection_reason": "inactive_reason", "rejection_detail": "inactive_detail"})
    out.parquet(f"inactive/{name}.parquet", check_schema(inactive, f"inactive/{name}", INACTIVE))


def _metric_totals(daily: pl.DataFrame) -> dict:
    """Hours in the window per metric and resource (node-hours for `nodes`), each summed in the buckets'
    own order (a parallel group-by sums in any order: the last digit would change from run to run)."""
    out: dict = {}
    for (metric, res), part in sorted(daily.partition_by("metric", "resource", as_dict=True).items()):
        out.setdefault(metric, {})[res] = float(part["hours"].to_numpy().sum())
    return out


def _write_usage(out: OutputDir, series: pl.LazyFrame, buckets: dict, group: list[str]) -> None:
    keys = ["site", "metric", "resource", *group[1:]]
    dynamic = {g: pl.String for g in group}
    usage = series.select("timestamp", *keys, "value")  # ordered by keys, then time
    out.sink("usage.parquet", check_schema(usage, "usage", USAGE, dynamic))
    for every, table in buckets.items():
        table = table.select(pl.col("bucket").alias("date" if every == "1d" else "bucket"), *keys, "hours", "mean")
        table = table.with_columns(pl.col("date").cast(pl.Date)) if every == "1d" else table
        name = "daily" if every == "1d" else f"resampled_{every}"
        declared = DAILY if every == "1d" else {**DAILY, "bucket": DAILY["date"]} | {"bucket": pl.Datetime("us")}
        declared = {k: v for k, v in declared.items() if k in table.columns}
        out.parquet(f"{name}.parquet", check_schema(table, name, declared, dynamic))


def _as_of_series(
    cfg: RunConfig, specs, graph, raw: RawDir, window, site: str, out: OutputDir, stages: Stages, manifest
) -> None:
    """Projected snapshots every `cfg.as_of_series` through the window, each swept over the whole window:
    as_of_usage.parquet and as_of_daily.parquet, with an as_of column (how far ahead was it booked?)."""
    group, usage, daily = ["site", *specs.metrics.get("group_by", [])], [], []
    snapshots = pl.datetime_range(window[0], window[1], cfg.as_of_series, eager=True, time_unit="us").to_list()[1:]
    if len(snapshots) > MAX_SNAPSHOTS:  # each snapshot is a whole run of the pipeline
        raise EngineError(
            f"--as-of-series {cfg.as_of_series}: {len(snapshots):,} snapshots over the window, at most "
            f"{MAX_SNAPSHOTS}; choose a longer interval or a shorter window"
        )
    for as_of in snapshots:
        snapshot = Stages(
            progress=lambda stage, item, t=as_of: (
                stages.progress and stages.progress(f"as-of {t:%Y-%m-%d}: {stage}", item)
            )
        )
        results = _entities(cfg, specs, graph, Tables(specs, raw, history_as_of=as_of), Lens(as_of), snapshot)
        counted = [(df, resources_of(specs, n)) for n, df in _sited(results, site).items()]
        series, buckets, _ = usage_stage(counted, specs.metrics["metrics"], group, window, ["1d"])
        stamp = pl.lit(as_of).cast(pl.Datetime("us")).alias("as_of")
        usage.append(series.select(stamp, "timestamp", "site", "metric", "resource", *group[1:], "value").collect())
        daily.append(buckets["1d"].select(stamp, pl.col("bucket").cast(pl.Date).alias("date"), "site", "metric",
                                          "resource", *group[1:], "hours", "mean"))  # fmt: skip
    out.parquet("as_of_usage.parquet", pl.concat(usage))
    out.parquet("as_of_daily.parquet", pl.concat(daily))
    manifest["as_of_series"] = {"every": cfg.as_of_series, "snapshots": len(snapshots)}
