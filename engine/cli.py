"""The `engine` command line. User mistakes end in one clear line and exit 1; only bugs show a traceback."""

import functools
import json
import os
import shlex
import sys
from pathlib import Path

import click

from engine import __version__
from engine.errors import EngineError, SpecError, listed
from engine.explain import FORMATS, render_dot, render_markdown, render_mermaid, render_tree
from engine.expr import did_you_mean
from engine.fleet import exit_on_sigterm
from engine.graph import build_graph
from engine.io.output import refuse_overlap
from engine.report.console import err, live, out, plain, printable, wide
from engine.sites import load_sites, select
from engine.spec.load import load_specs

DATE = click.DateTime(formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S"])


class PathArg(click.Path):
    """A path of the command line: not empty (an unset $OUT is no path, not the current directory) and UTF-8
    text (Polars opens no other name; it read such a one as a file object)."""

    def convert(self, value, param, ctx):
        if not value:
            self.fail("an empty path", param, ctx)
        if not self.dir_okay and str(value).endswith("/"):  # a file of that name was written, the '/' ignored
            self.fail(f"{printable(value)} ends in '/': name a file", param, ctx)
        try:
            os.fsdecode(value).encode()
        except UnicodeEncodeError:
            self.fail(f"{printable(os.fsdecode(value))} is not UTF-8 text; rename it", param, ctx)
        return super().convert(value, param, ctx)


def beside(specs_dir: str, name: str) -> str:
    """etc/NAME beside the specs directory: a run finds its site's files from the specs, not the current
    directory, so `engine run path/to/specs` does the same from anywhere."""
    return str(Path(specs_dir).resolve().parent / "etc" / name)


def friendly(command):
    """Turn EngineError into a red one-line message per problem and exit code 1."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except SpecError as exc:
            err.print(f"[red]✗ {len(exc.problems)} problem{'s' * (len(exc.problems) > 1)}:[/]")
            for problem in exc.problems:
                err.out(f"  • {printable(problem)}")
            sys.exit(1)
        except EngineError as exc:
            err.out(f"✗ {printable(exc)}")
            sys.exit(1)
        except OSError as exc:  # the filesystem refused (a path that is a file, no permission, disk full)
            where = exc.filename or "the standard output"  # a file's errors name it; a write to stdout does not
            err.out(f"✗ {printable(where)}: {printable(exc.strerror or exc)}")
            sys.exit(1)

    return wrapper


class OneLineErrors(click.Group):
    """Usage mistakes (an unknown option, a value out of range) as one line, like every other error."""

    def main(self, args=None, standalone_mode: bool = True, **kwargs):
        """Also keeps the command line, which the report quotes as its provenance (ctx.obj["command"])."""
        exit_on_sigterm()
        for stream in (sys.stdout, sys.stderr):  # an ASCII terminal gets \u2014 for what it cannot show
            if hasattr(stream, "reconfigure"):
                stream.reconfigure(errors="backslashreplace")
        try:
            os.getcwd()
        except FileNotFoundError:  # every relative path would fail, each in its own misleading way
            err.out(
                "✗ the current directory no longer exists (deleted since the shell entered it); cd to one that does"
            )
            sys.exit(1)
        argv = [str(a) for a in (sys.argv[1:] if args is None else args)]
        kwargs |= {"prog_name": "engine", "obj": {"command": shlex.join(["engine", *argv])}}
        try:
            return super().main(argv, standalone_mode=False, **kwargs)
        except click.exceptions.Exit as exc:
            sys.exit(exc.exit_code)
        except click.exceptions.NoArgsIsHelpError as exc:  # `engine` alone: the help, as usual
            click.echo(exc.ctx.get_help())
            sys.exit(0)
        except click.Abort:
            err.out("✗ aborted")
            sys.exit(1)
        except click.ClickException as exc:
            command = exc.ctx.command_path if getattr(exc, "ctx", None) else "engine"
            err.out(f"✗ {command}: {printable(exc.format_message())}")
            sys.exit(exc.exit_code)


@click.group(cls=OneLineErrors)
@click.version_option(__version__, prog_name="engine")
def main():
    """Reconstruct testbed capacity and usage from OpenStack databases, driven by YAML specs."""


@main.command()
@click.argument("specs_dir", type=PathArg())
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object.")
@friendly
def validate(specs_dir, as_json):
    """Check every spec file: YAML, JSON Schema, then references across files."""
    try:
        specs = load_specs(specs_dir)
    except SpecError as exc:
        if as_json:
            out.out(json.dumps({"valid": False, "problems": exc.problems}))
            sys.exit(1)
        raise
    build_graph(specs)
    summary = {
        "valid": True,
        "entities": len(specs.entities),
        "lookups": len(specs.lookups),
        "metrics": len(specs.metrics.metrics) if specs.metrics else 0,
        "notes": specs.notes,
        "sha256": specs.digest,
    }
    if as_json:
        out.out(json.dumps(summary))
        return
    for note in specs.notes:
        err.out(f"note: {printable(note)}")
    out.print(
        f"[green]✓[/] {specs_dir}: {summary['entities']} entities, {summary['lookups']} lookups, "
        f"{summary['metrics']} metrics — valid"
    )


@main.command()
@click.argument("specs_dir", type=PathArg())
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="tree", show_default=True)
@click.option("--entity", help="Show only this entity, its ancestors and its descendants.")
@friendly
def explain(specs_dir, fmt, entity):
    """Show the entity hierarchy: a tree for people, Mermaid/DOT/Markdown for documents."""
    specs = load_specs(specs_dir)
    graph = build_graph(specs)
    if entity is not None and entity not in specs.entities:
        raise EngineError(f"--entity: unknown entity '{entity}'{did_you_mean(entity, specs.entities)}")
    if fmt == "tree":
        # Piped output keeps long lines whole instead of wrapping them at 80 columns.
        wide(200).print(render_tree(specs, graph, entity), soft_wrap=False)
    else:
        render = {"mermaid": render_mermaid, "dot": render_dot, "markdown": render_markdown}[fmt]
        out.out(render(specs, graph, entity), end="")


@main.command()
@click.argument("specs_dir", type=PathArg())
@click.option("--data", "data_dir", type=PathArg(), help="Raw directory: <schema>.<table>.parquet files.")
@click.option("--site", "site_keys", multiple=True, help="Site(s) of the sites file to run, or 'all' (default: demo).")
@click.option(
    "--sites", "sites_file", type=PathArg(), help="Sites file [default: etc/sites.yaml beside the specs directory]."
)
@click.option(
    "--out",
    "out_dir",
    default="out",
    show_default=True,
    type=PathArg(),
    help="Output directory (replaced atomically); with several sites, one subdirectory each.",
)
@click.option(
    "--timezone",
    metavar="NAME",
    help="The time zone of the days (an IANA name, e.g. America/Chicago) [default: the site's, else UTC].",
)
@click.option("--start", type=DATE, help="Window start (its clock time), default: first counted span, whole days.")
@click.option("--end", type=DATE, help="Window end (its clock time), default: last recorded change, whole days.")
@click.option(
    "--resample",
    multiple=True,
    type=click.Choice(["1h", "1d", "7d", "1mo"]),
    help="Also write resampled_<every>.parquet: hours and mean level per bucket (1d is daily.parquet, always written).",
)
@click.option(
    "--lens",
    type=click.Choice(["effective", "projected"]),
    default="effective",
    show_default=True,
    help="effective: what happened; projected: what the databases said at --as-of.",
)
@click.option("--as-of", type=DATE, help="The moment the projected lens looks from (a clock time of --timezone).")
@click.option(
    "--as-of-series",
    metavar="EVERY",
    type=click.Choice(["1d", "7d", "1mo"]),
    help="Also write projected snapshots every EVERY through the window (as_of_*.parquet).",
)
@click.option(
    "--exclusions",
    "exclusions_file",
    type=PathArg(),
    help="Known-bad records to reject as `excluded` [default: etc/exclusions.yaml beside the specs, if there].",
)
@click.option(
    "--plots", "plots_dir", type=PathArg(file_okay=False), help="Also write the report's charts as PNGs here."
)
@click.option(
    "--jobs",
    "workers",
    type=click.IntRange(min=1),
    default=os.cpu_count() or 1,
    show_default="cores",
    help="Sites processed at once, each in its own worker process.",
)
@click.option("--no-report", is_flag=True, help="Skip report.html (faster for scripts).")
@click.option("--json", "as_json", is_flag=True, help="Print the manifests as JSON instead of the summary.")
@friendly
def run(specs_dir, *, data_dir, site_keys, sites_file, out_dir, lens, as_of, **options):
    """Build spans, validate the hierarchy, sweep the usage series; write checkpoints and a manifest.

    With --data, runs on that raw directory. Otherwise runs the sites of the sites file named by --site
    (the simulated demo site when none is named).
    """
    from engine.fleet import SiteOutcome, run_sites
    from engine.pipeline import Progress
    from engine.pipeline import run as run_pipeline
    from engine.report.console import print_fleet, print_summary

    if (lens == "projected") != (as_of is not None):
        raise EngineError("--lens projected needs --as-of T, and --as-of needs --lens projected")
    workers, as_json = options.pop("workers"), options.pop("as_json")
    jobs = _jobs(
        specs_dir,
        data_dir=data_dir,
        site_keys=site_keys,
        sites_file=sites_file,
        out_dir=out_dir,
        as_of=as_of,
        **options,
    )
    specs = {path: load_specs(path) for path in dict.fromkeys(job.specs for job in jobs)}
    if len(jobs) == 1:  # one site: its errors are the command's errors, and its specs are the ones loaded
        with live(f"site {plain(jobs[0].site)}") as report:
            manifest = run_pipeline(jobs[0], specs=specs[jobs[0].specs], hooks=[Progress(report)])
        outcomes = [SiteOutcome(jobs[0].site, manifest=manifest)]
    else:
        with live(f"{len(jobs)} sites") as report:
            outcomes = run_sites(jobs, workers, on_done=functools.partial(_done, report), progress=report)
    if as_json:
        found = [o.manifest or {"site": o.site, "error": o.error} for o in outcomes]
        out.out(json.dumps(found[0] if len(jobs) == 1 else found, default=str))
    else:
        for job, o in zip(jobs, outcomes, strict=True):
            if o.manifest and len(jobs) > 1:
                err.print(f"\n[bold]site {plain(o.site)}[/]")
            if o.manifest:
                print_summary(o.manifest, specs[job.specs].metrics, job.out)
        if len(jobs) > 1:
            print_fleet(outcomes, [job.out for job in jobs])
    if any(o.error for o in outcomes):
        sys.exit(1)


def _done(report, outcome, *, n: int, total: int) -> None:
    """One line per site as it finishes, in a fleet run."""
    mark = "[green]✓[/]" if outcome.manifest else "[red]✗[/]"
    err.print(f"{mark} site {plain(outcome.site)} ({n}/{total})")
    report(f"{n} of {total} sites done")


def _jobs(
    specs_dir, *, data_dir, site_keys, sites_file, out_dir, plots_dir, exclusions_file, no_report, timezone, **common
):
    """One RunConfig per site to run: the raw directory given (as the site of that name, if the sites file has
    it), or the sites of the sites file (the demo when none is named), each into its own --out subdirectory."""
    from engine.pipeline import RunConfig

    explicit = sites_file is not None
    sites_file = sites_file or beside(specs_dir, "sites.yaml")
    if exclusions_file is None:  # the default file, where there is one
        default = beside(specs_dir, "exclusions.yaml")
        exclusions_file = default if Path(default).is_file() else None
    common |= {
        "exclusions": exclusions_file,
        "report": not no_report,
        "command": (click.get_current_context().obj or {}).get("command"),
    }
    sites = load_sites(sites_file) if explicit or Path(sites_file).is_file() else {}
    if data_dir is not None:
        if len(site_keys) > 1:
            raise EngineError("--data is one site's raw data: give at most one --site with it")
        key = site_keys[0] if site_keys else Path(data_dir).name
        site = sites.get(key)  # a site of the sites file, read from this raw directory instead
        if site is None:
            zone = "UTC" if timezone is None else timezone
            return [
                RunConfig(
                    specs=specs_dir, data=data_dir, out=out_dir, site=key, plots=plots_dir, timezone=zone, **common
                )
            ]
        chosen, data = [site], {key: data_dir}
    elif not sites:
        raise EngineError(f"{sites_file}: no sites file beside the specs; give --data RAW_DIR or --sites FILE")
    else:
        chosen, data = select(sites, site_keys or ("demo",)), {}

    def announce(path):
        err.print(f"generating the simulated site into {plain(path)} (once)…")

    def inside(path, site):
        return path if path is None or len(chosen) == 1 else str(Path(path) / site.key)

    return [
        RunConfig(
            specs=str(site.specs or specs_dir),
            data=data.get(site.key) or str(site.raw_dir(announce)),
            out=inside(out_dir, site),
            plots=inside(plots_dir, site),
            site=site.key,
            sites=sites_file,
            entities=site.entities,
            site_name=site.name,
            timezone=site.timezone if timezone is None else timezone,
            **common,
        )
        for site in chosen
    ]


@main.command()
@click.option("--out", "out_dir", required=True, type=PathArg(), help="Raw directory to write.")
@click.option("--generator", help="An installed generator [default: the only one installed].")
@click.argument("params", nargs=-1, metavar="[NAME=VALUE]...")
@friendly
def simulate(out_dir, generator, params):
    """Write a synthetic site in the upstream table layout with its ground truth, by an installed generator,
    given its parameters as NAME=VALUE (see the generator's own documentation)."""
    from importlib.metadata import entry_points

    from engine.io.output import OutputDir
    from engine.sites import GENERATORS, generate

    installed = sorted(ep.name for ep in entry_points(group=GENERATORS))
    chosen = {"generator": generator or (installed[0] if len(installed) == 1 else None)}
    chosen |= {name: _scalar(value) for name, value in _assignments(params, option="", form="NAME=VALUE").items()}
    target = OutputDir(out_dir, kind="simulate")
    try:
        summary = generate(target.tmp, chosen)
        target.commit()
    finally:
        target.abandon()
    rows = summary.get("tables", {})
    out.print(f"[green]✓[/] {plain(out_dir)}: {len(rows)} tables, {sum(rows.values()):,} rows")


def _assignments(texts: tuple[str, ...], *, option: str, form: str) -> dict[str, str]:
    """NAME=VALUE arguments by name; a malformed one, or a name given twice, is one line (never the last wins)."""
    found: dict[str, str] = {}
    for text in texts:
        name, sep, value = text.partition("=")
        if not sep or not name:
            raise EngineError(f"{option}{text!r}: expected {form}")
        if name in found:
            raise EngineError(f"{option}{name} given twice")
        found[name] = value
    return found


def _scalar(text: str):
    """A parameter's value as the generator expects it: a whole number, a number, true/false, or text."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


def _site_and_specs(specs_dir: str, sites_file: str, site_key: str | None):
    """(site or None, specs, graph) for the commands that talk to a site's databases."""
    site = select(load_sites(sites_file or beside(specs_dir, "sites.yaml")), (site_key,))[0] if site_key else None
    specs = load_specs(site.specs if site and site.specs else specs_dir)
    return site, specs, build_graph(specs)


@main.command()
@click.option(
    "--db-uri", envvar="DATABASE_URI", help="mysql://user:password@host:port (or $DATABASE_URI, or the site's)."
)
@click.option("--out", "out_dir", type=PathArg(), help="Raw directory to write (default: the site's data).")
@click.option("--site", "site_key", help="Site of the sites file: its database, schema names, entities, raw directory.")
@click.option("--sites", "sites_file", type=PathArg(), help="[default: etc/sites.yaml beside the specs]")
@click.option("--specs", "specs_dir", default="specs", show_default=True, type=PathArg())
@click.option("--tables", multiple=True, help="Only these tables (schema.table); default: every table the specs read.")
@click.option("--timeout", default=5.0, show_default=True, help="Seconds to wait for the server to answer (<= 3600).")
@friendly
def extract(*, db_uri, out_dir, site_key, sites_file, specs_dir, tables, timeout):
    """Copy the raw tables the specs read from MySQL/MariaDB into RAW_DIR/<schema>.<table>.parquet."""
    from engine.extract import ABSENT, Database
    from engine.extract import extract as run_extract
    from engine.graph import archives_for, entity_tables, tables_for
    from engine.report.console import print_extract

    site, specs, graph = _site_and_specs(specs_dir, sites_file, site_key)
    uri = db_uri or (site.db_uri if site else None)
    target = out_dir or (site.data if site else None)
    if not uri or not target:
        raise EngineError("give --db-uri (or $DATABASE_URI) and --out, or a --site that has db_uri and data")
    guarded = {"the specs directory": specs.root, "the sites file": site and site.file}
    refuse_overlap(Path(target), guarded)
    db = Database(uri).without_database()
    entities = site.entities if site else None
    needed, _ = tables_for(graph, entities)
    archives = archives_for(graph, needed)
    unknown = [t for t in tables if t not in needed + archives]
    if unknown:
        known = needed + archives
        raise EngineError(f"--tables: the specs do not read {unknown[0]}{did_you_mean(unknown[0], known)}")
    chosen = list(dict.fromkeys(tables)) or needed  # a table named twice is extracted once
    earlier = sorted(p.name.removesuffix(".parquet") for p in Path(target).glob("*.parquet")) if tables else []
    reading = {n: st for n, st in entity_tables(graph, entities).items() if st[0] in chosen}  # whole entities only
    optional = [] if tables else archives  # an archive asked for by name is extracted like any table
    with live("extracting") as status:
        schemas = site.schemas if site else {}
        report = run_extract(
            db,
            Path(target),
            chosen,
            guarded=guarded,
            entities=reading,
            schemas=schemas,
            progress=status,
            timeout=timeout,
            archives=optional,
        )
    print_extract(report, f"{db.shown} → {target}")
    if tables:  # asked for by name: absent is a failure, whatever reads it
        report["failed"] = sorted({*report["failed"], *(t["table"] for t in report["tables"] if t["status"] != "ok")})
    if report["failed"]:
        errors = [t for t in report["tables"] if t["table"] in report["failed"] and t["status"] not in ABSENT]
        for t in errors:
            err.out(f"{t['table']}: {printable(t['error'])}")
        raise EngineError(f"{len(report['failed'])} table(s) failed: {', '.join(report['failed'])}")
    ok = sum(t["status"] == "ok" for t in report["tables"])
    out.print(f"[green]✓[/] {ok} tables into {plain(target)}/ (report: extract.json)")
    if gone := [t for t in earlier if t not in chosen]:  # an extraction replaces the directory whole
        err.out(
            f"note: the earlier extraction's other tables are gone with it ({plain(listed(gone, 5))}): extract them too"
        )


@main.command()
@click.option("--user", default="usage_reader", show_default=True)
@click.option("--host", "host_pattern", default="%", show_default=True, help="Host pattern of the account.")
@click.option("--password", default="change-me", show_default=True, help="Password of the new account.")
@click.option("--db-uri", help="An admin's mysql://user:password@host:port: list only the tables that server has.")
@click.option("--site", "site_key", help="Site of the sites file: its schema names and entities.")
@click.option("--sites", "sites_file", type=PathArg(), help="[default: etc/sites.yaml beside the specs]")
@click.option("--specs", "specs_dir", default="specs", show_default=True, type=PathArg())
@friendly
def grants(*, user, host_pattern, password, site_key, sites_file, specs_dir, db_uri):
    """Print the least-privilege SQL for an extraction account: SELECT on exactly the tables the specs read
    (with --db-uri, only those that server has, so the SQL applies as it is)."""
    from engine.extract import Database, account, grants_sql, present
    from engine.graph import archives_for, tables_for

    account(user, host_pattern)  # a mistyped account before any work or notice
    site, specs, graph = _site_and_specs(specs_dir, sites_file, site_key)
    needed, _ = tables_for(graph, site.entities if site else None)
    archives, schemas = archives_for(graph, needed), site.schemas if site else {}
    if db_uri:
        needed = present(Database(db_uri).without_database(), needed + archives, schemas)
    elif archives:  # a GRANT on a table the server lacks is an error: only --db-uri knows which it has
        err.print(
            f"notice: archive tables left out (give --db-uri to grant those the server has): {', '.join(archives)}"
        )
    out.out(grants_sql(needed, schemas, user=user, host=host_pattern, password=password), end="")


@main.command()
@click.argument("out_dir", type=PathArg(exists=True, file_okay=False))
@click.option("--table", "target", metavar="DATABASE.TABLE", help="A database table to (re)place, on --db-uri.")
@click.option("--db-uri", envvar="DATABASE_URI", help="mysql://user:password@host:port (or $DATABASE_URI).")
@click.option("--csv", "csv_file", type=PathArg(dir_okay=False), help="Also write the table as CSV here.")
@click.option("--json", "json_file", type=PathArg(dir_okay=False), help="Also write it as JSON (a list of rows).")
@friendly
def export(out_dir, *, target, db_uri, csv_file, json_file):
    """Publish a run's daily node-hours as one wide table (a column per metric): into a database table for
    dashboards (its own earlier export replaced atomically, any other table refused), a CSV file or a JSON file."""
    from engine.extract import Database, export_daily, export_files, export_target, file_targets

    if not (target or csv_file or json_file):
        raise EngineError("give --table DATABASE.TABLE (with --db-uri), --csv FILE or --json FILE")
    if target and not db_uri:
        raise EngineError("--table needs --db-uri (or $DATABASE_URI)")
    # every target is refused before anything is written
    into = export_target(target) if target else None
    files = file_targets(Path(out_dir), {k: Path(p) for k, p in (("csv", csv_file), ("json", json_file)) if p})
    if into:
        db = Database(db_uri).without_database()
        db.check()
        rows = export_daily(Path(out_dir), db, into=into)
        out.print(f"[green]✓[/] {rows:,} rows into {plain(target)} on {plain(db.shown)}")
    if files:
        rows = export_files(Path(out_dir), files)
        for shown, _ in files.values():
            out.print(f"[green]✓[/] {rows:,} rows into {plain(shown)}")


@main.command()
@click.argument("out_dir", type=PathArg())
@click.argument("entity")
@click.argument("key")
@click.option("--json", "as_json", is_flag=True)
@friendly
def trace(out_dir, entity, key, *, as_json):
    """Follow one raw row through a run: raw values, span or rejection, hierarchy, parent, hours per day."""
    from engine.audit import trace as follow
    from engine.report.console import print_trace

    t = follow(out_dir, entity, key)
    if as_json:
        out.out(json.dumps(t, default=str))
        return
    print_trace(t, entity, key)


@main.command()
@click.argument("out_dir", type=PathArg())
@click.option("--metric", required=True)
@click.option("--date", "day", required=True, type=click.DateTime(formats=["%Y-%m-%d"]))
@click.option(
    "--where", "conditions", multiple=True, metavar="COLUMN=VALUE", help="A group column value, e.g. node_type=gpu."
)
@click.option("--resource", default="nodes", show_default=True)
@click.option("--json", "as_json", is_flag=True)
@friendly
def why(out_dir, *, metric, day, conditions, resource, as_json):
    """List the spans that make up one cell of daily.parquet, with their hours, and check they add up."""
    from engine.audit import why as explain_cell
    from engine.report.console import print_why

    where = _assignments(conditions, option="--where ", form="COLUMN=VALUE")
    w = explain_cell(out_dir, metric, day.date(), where=where, resource=resource)
    if as_json:
        out.out(json.dumps(w, default=str))
        return
    print_why(w, metric, where=where, resource=resource)
