"""`engine run`: the spec graph, executed node by node in its order (graph.py), with one run context.

    table        rows counted                                          -> manifest tables
    lookup       built once, when an entity that runs reads it          -> lookups/
    entity       raw rows -> spans, rejected and inactive rows (plan/spans.py),
                 then cut to the parent's counted time (hierarchy.py)
    checkpoints  the window; row and hour accounts; invariants        -> spans/ validated/ rejected/ inactive/
    report       rows over the validated spans                        -> reports/
    usage        the sweep: series, daily and resampled hours (usage.py) -> usage, daily, resampled_*
    comparison   the legacy report, cell by cell (compare.py)          -> comparison.parquet
    snapshots    lookups, entities and usage again, under the projected lens of each as-of time
then manifest.json and report.html. Everything is written into a temporary directory that replaces OUT_DIR
only once the run is complete. Progress and timings are hooks around each stage (Hamilton's lifecycle hooks).
"""

import functools
import resource
import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import polars as pl

from engine import __version__
from engine.accounts import entity_account, metric_totals
from engine.breakdowns import breakdown, charge_table, swept_charges
from engine.compare import audit_daily, compare
from engine.errors import EngineError, listed
from engine.exclusions import load_exclusions, stale
from engine.expr import did_you_mean
from engine.graph import build_graph, entity_order, needed, order
from engine.hierarchy import parent_keys, validate
from engine.invariants import breakdown_check, charges_check, entity_checks, hours_check, partition_checks
from engine.io.output import CHARGED, OutputDir, write_entity, write_usage
from engine.io.raw import RawDir
from engine.plan.frames import Frames, MissingTable
from engine.plan.spans import EntitySpans, Lens, build_spans
from engine.sites import load_sites
from engine.spec.load import load_specs
from engine.sweep import bucket_boundaries, clock_range
from engine.usage import usage_stage
from engine.window import data_window, in_utc, window_record

MAX_SNAPSHOTS = 400  # --as-of-series: a weekly series over seven years
MAX_BUCKETS = 200_000  # --resample: an hourly series over 22 years
SWEPT = ["metric", "hierarchy_status", "valid_start", "valid_end"]  # what the sweep reads of a span, with its groups


@dataclass(kw_only=True)
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
    timezone: str = "UTC"  # the day boundaries (an IANA name); --start, --end and --as-of are its clock times


class Timings:
    """Hook: wall time, CPU time and peak memory per stage, summed over its items (the manifest's timings)."""

    def __init__(self):
        self.seconds: dict[str, dict] = {}

    @contextmanager
    def stage(self, name: str, item: str | None):
        wall, cpu = time.perf_counter(), time.process_time()
        yield
        stage = self.seconds.setdefault(name, {"seconds": 0.0, "cpu_seconds": 0.0})
        stage["seconds"] = round(stage["seconds"] + time.perf_counter() - wall, 3)
        stage["cpu_seconds"] = round(stage["cpu_seconds"] + time.process_time() - cpu, 3)
        stage["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


class Progress:
    """Hook: `report(stage, item)` as each stage starts (the terminal's progress line)."""

    def __init__(self, report, prefix: str = ""):
        self.report, self.prefix = report, prefix

    @contextmanager
    def stage(self, name: str, item: str | None):
        self.report(self.prefix + name, item)
        yield


@dataclass
class EntityResult:
    spec: object
    spans: EntitySpans | None = None
    validated: pl.DataFrame | None = None
    skipped: str | None = None  # why the entity did not run on this site


class Catalog:
    """The frames of one run by name (Kedro's DataCatalog): raw tables scanned lazily (each with its archive,
    `archives`: live table -> Archive), lookups and reports once built (or the MissingTable that stopped
    them), and the entities' results."""

    def __init__(self, raw: RawDir, site: str, archives: dict | None = None):
        self.raw, self.site, self.archives = raw, site, archives or {}
        self.built: dict[str, pl.DataFrame] = {}
        self.failed: dict[str, MissingTable] = {}
        self.results: dict[str, EntityResult] = {}

    def table(self, name: str) -> pl.LazyFrame:
        if name in self.failed:
            raise self.failed[name]
        if name in self.built:
            return self.built[name].lazy()
        if not self.raw.has(name):
            raise MissingTable(name)
        return self.raw.rows(name, self.archives.get(name))

    def spans(self, entity: str, columns: list[str] | None = None) -> pl.LazyFrame:
        """An entity's validated spans with the site column (what reports read); only `columns` (those of them
        it has), if given: the sweep needs a few of an entity's columns, and a full copy of a 2M-row frame
        is GB."""
        res = self.results.get(entity)
        if res is None or res.validated is None:
            raise MissingTable(f"entity {entity}")
        lf = res.validated.lazy()
        if columns is not None:
            lf = lf.select(c for c in res.validated.columns if c in columns)
        return lf.with_columns(pl.lit(self.site).alias("site"))

    def live(self) -> dict[str, EntityResult]:
        return {n: r for n, r in self.results.items() if not r.skipped}


@dataclass
class Run:
    """The run context every node handler reads and adds to."""

    cfg: RunConfig
    specs: object
    graph: object
    raw: RawDir
    out: OutputDir | None  # None: a snapshot, which writes nothing
    lens: Lens
    hooks: list
    exclusions: pl.DataFrame | None
    window: tuple[datetime, datetime] | None = None
    every: list[str] = field(default_factory=lambda: ["1d"])
    catalog: Catalog = None
    frames: Frames = None
    selected: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    wanted: set[str] = field(default_factory=set)  # the nodes whose output someone that runs reads
    listed: set[str] = field(default_factory=set)  # the nodes of the site's entities, run or not
    done: set[str] = field(default_factory=set)
    manifest: dict = field(default_factory=dict)  # tables, entities, invariants, ... as the nodes add them
    unmade: dict[str, str] = field(default_factory=dict)  # report -> the entity or table it lacked
    unsplit: list[str] = field(default_factory=list)  # breakdowns no metric of this site has the columns of
    usage: tuple = ()  # (series, buckets) of the usage node
    counted: dict = field(default_factory=dict)  # entity -> (its validated spans' columns read downstream, resources)

    def __post_init__(self):
        self.catalog = Catalog(self.raw, self.cfg.site or self.raw.name, self.specs.archives)
        self.selected = _selected(self.specs, self.graph, self.cfg)
        self.skipped = _skipped(self.specs, self.raw, self.selected)
        live = [n for n in self.selected if n not in self.skipped]
        self.wanted, self.listed = needed(self.graph, live), needed(self.graph, self.selected)
        lookups = {self.graph.nodes[n]["name"] for n in self.wanted if self.graph.nodes[n]["kind"] == "lookup"}
        self.frames = Frames(self.specs, self.catalog, history_as_of=self.lens.as_of, lookups=lookups)
        self.manifest = {"tables": {}, "entities": {}, "invariants": []}

    @contextmanager
    def stage(self, name: str, item: str | None = None):
        with ExitStack() as stack:
            for hook in self.hooks:
                stack.enter_context(hook.stage(name, item))
            yield

    def execute(self, kinds: set[str]) -> None:
        """Run the nodes of these kinds that this run needs, in graph order; free each built frame once every
        node that reads it has run."""
        nodes = [n for n in order(self.graph) if self.graph.nodes[n]["kind"] in kinds and self._runs(n)]
        for node in nodes:
            data = self.graph.nodes[node]
            HANDLERS[data["kind"]](self, data["spec"] or data["name"])
            self.done.add(node)
            for before in self.graph.predecessors(node):
                if all(n in self.done or n not in nodes for n in self.graph.successors(before)):
                    self.catalog.built.pop(self.graph.nodes[before]["name"], None)

    def _runs(self, node: str) -> bool:
        kind = self.graph.nodes[node]["kind"]
        if kind in ("entity", "table"):
            return node in self.listed
        return kind == "report" or node in self.wanted

    def under(self, as_of: datetime) -> "Run":
        """The same run under the projected lens at `as_of`: its own frames, nothing written, progress prefixed."""
        hooks = [Progress(h.report, f"as-of {as_of:%Y-%m-%d}: ") for h in self.hooks if isinstance(h, Progress)]
        cfg, lens = self.cfg, Lens(as_of)
        return Run(cfg, self.specs, self.graph, self.raw, None, lens, hooks, self.exclusions, window=self.window)


def _table(run: Run, name: str) -> None:
    if run.raw.has(name):
        with run.stage("load", name):
            run.manifest["tables"][name] = run.raw.row_count(name)


def _lookup(run: Run, spec, stage: str = "lookups") -> None:
    """Collected once; a missing table is kept, to be raised where a node that runs reads it."""
    with run.stage(stage, spec.name):
        try:
            run.catalog.built[spec.name] = run.frames.collect(run.frames.lookup(spec), spec.where)
        except MissingTable as exc:
            run.catalog.failed[spec.name] = exc
            return
    if run.out:
        run.out.parquet(f"{spec.kind}s/{spec.name}.parquet", run.catalog.built[spec.name])


def _report(run: Run, spec) -> None:
    """A report over entities that did not run on this site is not made, and the manifest says so."""
    _lookup(run, spec, "reports")
    if spec.name in run.catalog.failed:
        run.unmade[spec.name] = run.catalog.failed[spec.name].table


def _entity(run: Run, spec) -> None:
    """Spans, then the hierarchy: every row kept as a span, a rejection or an inactive row."""
    res = run.catalog.results[spec.name] = EntityResult(spec, skipped=run.skipped.get(spec.name))
    if res.skipped:
        return
    parent = run.catalog.results[spec.parent.entity].validated if spec.parent else None
    mine = run.exclusions.filter(pl.col("entity") == spec.name) if run.exclusions is not None else None
    with run.stage("spans", spec.name):
        try:
            res.spans = build_spans(
                run.frames,
                spec,
                lens=run.lens,
                parent_keys=parent_keys(spec, parent) if parent is not None else None,
                exclusions=mine,
                claims=spec.name in run.specs.claimers(run.selected),
            )
        except MissingTable as exc:  # the source is here, a table it needs is not
            raise EngineError(
                f"{exc.where or spec.where}: table {exc.table} is missing, but the entity's source "
                f"{spec.source.table} is there: the dump or the extraction account's grants are incomplete"
            ) from None
    with run.stage("hierarchy", spec.name):
        res.validated, ambiguous = validate(res.spans.accepted, spec, parent)
    if ambiguous:
        on = ", ".join(f"{mine} = {spec.parent.entity}.{theirs}" for mine, theirs in spec.parent.on.items())
        run.frames.notes.append(
            f"{spec.where}: {ambiguous:,} span(s) met several {spec.parent.entity} rows at once, of different "
            f"{', '.join(spec.inherit)}: each instant inherits from the earliest; is parent.on ({on}) the whole key?"
        )


def _checkpoints(run: Run, _) -> None:
    """The window, then every entity's accounts, invariants and checkpoint files."""
    live, results, m = run.catalog.live(), run.catalog.results, run.manifest
    if not live:
        why = "; ".join(f"{n}: {r.skipped}" for n, r in results.items())
        raise EngineError(f"{run.raw.path}: no entity could run: {why}")
    run.window = data_window(run.cfg, live.values(), notes=run.frames.notes)
    _bounded(run)
    with run.stage("checkpoints"):
        for name, res in results.items():
            if res.skipped:
                m["entities"][name] = {"status": "skipped", "reason": res.skipped}
                continue
            parent = live[res.spec.parent.entity].validated if res.spec.parent else None
            m["invariants"] += entity_checks(res.spec, res.spans, res.validated, parent=parent, as_of=run.cfg.as_of)
            m["entities"][name] = entity_account(res.spec, res.spans, res.validated, window=run.window)
            m["invariants"].append(hours_check(name, m["entities"][name]["hours"]))
            resources = run.specs.resources_of(name)
            write_entity(run.out, res, site=run.catalog.site, window=run.window, resources=resources)
        m["invariants"] += partition_checks(live, run.specs, run.catalog.table)
    for res in live.values():  # written and accounted for: the later nodes read the validated spans only
        res.spans.accepted, res.spans.raw_times = res.spans.accepted.clear(), res.spans.raw_times.clear()


def _usage(run: Run, _) -> None:
    with run.stage("sweep"):
        group, read = ["site", *run.specs.metrics.group_by], _span_columns(run.specs.metrics)
        live, declared = run.catalog.live(), {}
        for name, res in live.items():
            resources = run.specs.resources_of(name)
            run.counted[name] = run.catalog.spans(name, [*read, *resources]).collect(), resources
            declared.setdefault(res.spec.metric, set()).update(resources)
        series, buckets, checks = usage_stage(
            list(run.counted.values()),
            run.specs.metrics,
            group,
            window=run.window,
            every=run.every,
            declared=declared,
            tz=run.cfg.timezone,
        )
        run.usage = (None if run.out else series), buckets  # the series are GB, and a snapshot's caller reads them
        if run.out:
            run.manifest["invariants"] += checks
            run.manifest["metrics"] = metric_totals(buckets["1d"])
            write_usage(run.out, series, buckets, group=group)


def _bounded(run: Run) -> None:
    """Refuse, before any output, a resampling or an as-of series too fine for the window: each bucket is a
    row of every series (hourly over 1970-2200 took 22 GB), each snapshot a whole run of the pipeline."""
    tz, every = run.cfg.timezone, run.cfg.as_of_series
    counts = [
        (f"--resample {e}", "buckets", len(bucket_boundaries(run.window, e, tz)) - 1, MAX_BUCKETS) for e in run.every
    ]
    if every:
        counts.append(
            (f"--as-of-series {every}", "snapshots", len(clock_range(*run.window, every, tz=tz)) - 1, MAX_SNAPSHOTS)
        )
    for option, what, count, limit in counts:
        if count > limit:
            raise EngineError(
                f"{option}: {count:,} {what} over the window, at most {limit:,}; choose a longer interval or a "
                "shorter window (--start, --end)"
            )


def _span_columns(metrics) -> list[str]:
    """What the sweep, the breakdowns and the charges read of a span, besides its resources: a full copy of a
    2M-row validated frame is GB."""
    charges = metrics.charges
    read = [*SWEPT, "site", *metrics.group_by, *(c for b in metrics.breakdowns.values() for c in b.by)]
    return read + ([*charges.by, charges.factor, charges.fallback.column] if charges else [])


def _breakdowns(run: Run, _) -> None:
    """daily_by_<name>.parquet per breakdown of metrics.yaml, and charges.parquet, each checked against
    what the sweep counted (INV-14, INV-15)."""
    metrics, live = run.specs.metrics, run.catalog.live()
    if not (metrics.breakdowns or metrics.charges):
        return
    group = ["site", *metrics.group_by]
    with run.stage("breakdowns"):
        feeds = {m: [] for m in metrics.base()}
        for name, pair in run.counted.items():
            feeds[live[name].spec.metric].append(pair)
        daily = run.usage[1]["1d"].with_columns(pl.col("bucket").cast(pl.Date).alias("date"))
        made = {}
        for name, split in metrics.breakdowns.items():
            table = breakdown(metrics, feeds, split, group=group, window=run.window, tz=run.cfg.timezone)
            if table is None:
                run.unsplit.append(f"breakdown {name} not made: no metric's entities provide {', '.join(split.by)}")
            else:
                run.out.parquet(f"daily_by_{name}.parquet", table)
                run.manifest["invariants"].append(breakdown_check(name, table, daily, group=group, split=split))
                values = table.select(split.by).n_unique()
                made[name] = {"by": list(split.by), "metrics": sorted(table["metric"].unique()), "values": values}
        run.manifest["breakdowns"] = made
        if metrics.charges:
            charged = {n: df for n, (df, _) in run.counted.items() if live[n].spec.metric == metrics.charges.metric}
            _charges(run, charged, group)


def _charges(run: Run, by_entity: dict[str, pl.DataFrame], group: list[str]) -> None:
    charges, tz, frames = run.specs.metrics.charges, run.cfg.timezone, list(by_entity.values())
    for name, df in by_entity.items():
        run.frames.notes += [
            f"charges: entity {name} has no {c}: its service units are charged to no one (null {c})"
            for c in charges.by
            if c not in df.columns
        ]
    table = charge_table(charges, run.specs.metrics, frames, group=group, window=run.window, as_of=run.cfg.as_of, tz=tz)
    if table is None:
        return
    run.out.parquet("charges.parquet", table)
    expected = swept_charges(charges, run.specs.metrics, frames, group=group, window=run.window, tz=tz)
    run.manifest["invariants"].append(charges_check(table, expected, group))
    run.manifest["charges"] = {
        "metric": charges.metric,
        "by": list(charges.by),
        "charged": table.select(charges.by).n_unique(),
    } | {name: round(float(table[name].sum()), 6) for name in CHARGED}


def _comparison(run: Run, _) -> None:
    legacy = run.specs.metrics.legacy
    if legacy is None or not run.raw.has(legacy.table):
        return
    with run.stage("compare"):
        table = run.raw.scan(legacy.table)
        expr = functools.partial(run.frames.expr, table, f"{run.specs.metrics.file}: legacy")
        daily = run.usage[1]["1d"].with_columns(pl.col("bucket").cast(pl.Date).alias("date"))
        tz = run.cfg.timezone
        audit = audit_daily(run.catalog.live(), run.window, list(legacy.group_by), tz=tz)
        comparison, repeated = compare(
            legacy, table, expr, daily=daily, audit=audit, window=run.window, as_of=run.cfg.as_of, tz=tz
        )
        if repeated:
            cell = ", ".join(["date", *legacy.group_by])
            run.frames.notes.append(
                f"{run.specs.metrics.file}: legacy: {repeated:,} ({cell}) cells of {legacy.table} hold several rows, "
                "whose hours are summed (a table loaded twice doubles every figure)"
            )
        run.out.parquet("comparison.parquet", comparison)
        worst = comparison.filter("flagged").sort(pl.col("diff_hours").abs(), descending=True).head(10)
        tol = legacy.tolerance
        run.manifest["comparison"] = {
            "cells": comparison.height,
            "flagged": int(comparison["flagged"].sum()),
            "tolerance": f"{tol['hours']:g} node-hours and {tol['relative']:.0%} of the larger value",
            "largest": worst.with_columns(pl.col("date").cast(pl.String)).to_dicts(),
        }
        if run.cfg.as_of is not None:
            run.manifest["comparison"]["days"] = f"the days that ended by the as-of time {run.cfg.as_of} only"


def _snapshots(run: Run, _) -> None:
    """Projected snapshots every `as_of_series` through the window, each swept over the whole window:
    as_of_usage.parquet and as_of_daily.parquet, with an as_of column (how far ahead was it booked?)."""
    every = run.cfg.as_of_series
    if not every:
        return
    snapshots = clock_range(*run.window, every, tz=run.cfg.timezone)[1:]
    keys = ["site", "metric", "resource", *run.specs.metrics.group_by]
    usage, daily = [], []
    with run.stage("as_of_series"):
        for as_of in snapshots:
            snapshot = run.under(as_of)
            snapshot.execute({"lookup", "entity", "usage"})
            series, buckets = snapshot.usage
            stamp = pl.lit(as_of).cast(pl.Datetime("us")).alias("as_of")
            usage.append(series.select(stamp, "timestamp", *keys, "value").collect())
            date = pl.col("bucket").cast(pl.Date).alias("date")
            daily.append(buckets["1d"].select(stamp, date, *keys, "hours", "mean"))
    run.out.parquet("as_of_usage.parquet", pl.concat(usage))
    run.out.parquet("as_of_daily.parquet", pl.concat(daily))
    run.manifest["as_of_series"] = {"every": every, "snapshots": len(snapshots)}


HANDLERS = {
    "table": _table,
    "lookup": _lookup,
    "report": _report,
    "entity": _entity,
    "checkpoints": _checkpoints,
    "usage": _usage,
    "breakdowns": _breakdowns,
    "comparison": _comparison,
    "snapshots": _snapshots,
}


def run(cfg: RunConfig, hooks: list = (), specs=None) -> dict:
    """Run the pipeline (on `specs` if the caller loaded them already); returns the manifest. Nothing is
    written unless the whole run succeeds."""
    cfg = in_utc(cfg)
    specs, raw = specs or load_specs(cfg.specs), RawDir(cfg.data)
    guarded = {
        "the raw data directory": cfg.data,
        "the specs directory": cfg.specs,
        "the sites file": cfg.sites,
        "the exclusions file": cfg.exclusions,
    }
    out = OutputDir(cfg.out, guarded=guarded)
    try:
        plots = _plots_dir(cfg, out, guarded)
    except BaseException:  # a refused plots directory: nothing of OUT_DIR's swap is left behind
        out.abandon()
        raise
    outputs = [out, *([plots] if isinstance(plots, OutputDir) else [])]
    try:
        timings = Timings()
        site, sites = cfg.site or raw.name, list(load_sites(cfg.sites)) if cfg.sites else None
        excl, notes = load_exclusions(cfg.exclusions, specs, site=site, sites=sites) if cfg.exclusions else (None, [])
        raw.notes += notes
        every = ["1d", *(e for e in cfg.resample if e != "1d")]
        ctx = Run(cfg, specs, build_graph(specs), raw, out, Lens(cfg.as_of), [timings, *hooks], excl, every=every)
        ctx.execute(set(HANDLERS))
        manifest = _manifest(ctx) | {"timings": timings.seconds}
        out.json("manifest.json", manifest)
        if cfg.report:
            from engine.report.html import write_report  # matplotlib loads only when a report is wanted

            with ctx.stage("report"):
                write_report(out.tmp, specs.metrics, plots.tmp if isinstance(plots, OutputDir) else plots)
            out.json("manifest.json", manifest)  # again, with the report's timing
        for o in outputs:
            o.commit()
    except BaseException:
        for o in outputs:
            o.abandon()
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


def _manifest(run: Run) -> dict:
    """What the run did, in the order a reader asks: where from, what window, what each entity became."""
    cfg, m = run.cfg, run.manifest
    live = run.catalog.live()
    manifest = {
        "engine_version": __version__,
        "command": cfg.command,
        "generated_at": datetime.now(UTC).replace(tzinfo=None).isoformat(timespec="seconds"),
        "specs": str(Path(cfg.specs).resolve()),
        "data": str(run.raw.path.resolve()),
        "sites": str(Path(cfg.sites).resolve()) if cfg.sites else None,
        "specs_sha256": run.specs.digest,
        "site": run.catalog.site,
        "site_name": cfg.site_name,
        "timezone": cfg.timezone,
        "lens": {"name": run.lens.name, "as_of": cfg.as_of},
        "window": window_record(run.window, cfg.timezone),
        "tables": dict(sorted(m["tables"].items())),
        "entities": m["entities"],
        "invariants": m["invariants"],
        "notices": _notices(run),
        "warnings": run.raw.notes + run.frames.notes,
    }
    if run.exclusions is not None:
        unused = stale(run.exclusions, set().union(*(r.spans.excluded for r in live.values())), set(live))
        entries = run.exclusions["exclusion"].n_unique()
        manifest["exclusions"] = {"file": str(cfg.exclusions), "entries": entries, "stale": unused}
        manifest["warnings"] += [
            f"stale exclusion: {u['entity']} {listed(u['entity_id'], 10)} matched no row ({u['detail']})"
            for u in unused
        ]
        idle = (
            run.exclusions.filter(~pl.col("entity").is_in(list(live))).group_by("entity").agg(pl.len()).sort("entity")
        )
        manifest["notices"] += [  # neither applied nor stale: said, for an exclusions file shared by sites
            f"exclusions of entity {e} not applied: it did not run on this site ({n:,} key(s))" for e, n in idle.rows()
        ]
    return manifest | {k: m[k] for k in ("metrics", "breakdowns", "charges", "comparison", "as_of_series") if k in m}


def _notices(run: Run) -> list[str]:
    """What the site does not have, by design: entities left out of its list, services it does not run,
    reports over entities that did not run."""
    unlisted = [n for n in sorted(run.specs.entities) if n not in run.selected]
    notices = (
        [f"entities of the specs that this site does not list, not run: {', '.join(unlisted)}"] if unlisted else []
    )
    notices += [f"entity {n} not run: {why}" for n, why in run.skipped.items()]
    notices += [f"report {n} not made: {t} did not run on this site" for n, t in sorted(run.unmade.items())]
    return notices + run.unsplit


def _selected(specs, graph, cfg: RunConfig) -> list[str]:
    """Entities to run, parents first: all, or the site's list (which must hold every parent it needs)."""
    order, entities = entity_order(graph), cfg.entities
    if entities is None:
        return order
    where = f"{cfg.sites}: sites.{cfg.site}.entities" if cfg.sites else "site entities"
    for name in entities:
        if name not in specs.entities:
            raise EngineError(f"{where}: unknown entity '{name}'{did_you_mean(name, specs.entities)}")
        parent = specs.entities[name].parent
        if parent and parent.entity not in entities:
            raise EngineError(f"{where}: '{name}' needs its parent '{parent.entity}', which the site does not list")
    return [n for n in order if n in entities]


def _skipped(specs, raw: RawDir, selected: list[str]) -> dict[str, str]:
    """Entities that do not run on this site, with why: a service the site does not have (the raw table its
    rows come from, through lookups read as a source, is absent), or a parent that did not run."""
    skipped: dict[str, str] = {}
    for name in selected:
        spec = specs.entities[name]
        source = spec.source.table
        while source in specs.lookups:
            source = specs.lookups[source].source.table
        if spec.parent and spec.parent.entity in skipped:
            skipped[name] = f"its parent {spec.parent.entity} was skipped"
        elif not raw.has(source):
            skipped[name] = f"the site has no {source}"
    return skipped
