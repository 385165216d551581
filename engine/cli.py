"""The `engine` command line. User mistakes end in one clear line and exit 1; only bugs show a traceback."""

import functools
import json
import sys

import click
from rich.console import Console

from engine import __version__
from engine.errors import EngineError, SpecError
from engine.explain import FORMATS, render_dot, render_markdown, render_mermaid, render_tree
from engine.expr import did_you_mean
from engine.graph import build_graph
from engine.spec.load import load_specs

DATE = click.DateTime(formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S"])

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def friendly(command):
    """Turn EngineError into a red one-line message per problem and exit code 1."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except SpecError as exc:
            err.print(f"[red]✗ {len(exc.problems)} problem{'s' * (len(exc.problems) > 1)} in the specs:[/]")
            for problem in exc.problems:
                err.out(f"  • {problem}")
            sys.exit(1)
        except EngineError as exc:
            err.out(f"✗ {exc}")
            sys.exit(1)

    return wrapper


@click.group()
@click.version_option(__version__, prog_name="engine")
def main():
    """Reconstruct testbed capacity and usage from OpenStack databases, driven by YAML specs."""


@main.command()
@click.argument("specs_dir", type=click.Path())
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
        "metrics": len(specs.metrics["metrics"]),
        "notes": specs.notes,
        "sha256": specs.digest,
    }
    if as_json:
        out.out(json.dumps(summary))
        return
    for note in specs.notes:
        err.out(f"note: {note}")
    out.print(
        f"[green]✓[/] {specs_dir}: {summary['entities']} entities, {summary['lookups']} lookups, "
        f"{summary['metrics']} metrics — valid"
    )


@main.command()
@click.argument("specs_dir", type=click.Path())
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
        Console(width=None if out.is_terminal else 200).print(render_tree(specs, graph, entity), soft_wrap=False)
    else:
        render = {"mermaid": render_mermaid, "dot": render_dot, "markdown": render_markdown}[fmt]
        out.out(render(specs, graph, entity), end="")


@main.command()
@click.argument("specs_dir", type=click.Path())
@click.option(
    "--data", "data_dir", required=True, type=click.Path(), help="Raw directory: <schema>.<table>.parquet files."
)
@click.option(
    "--out",
    "out_dir",
    default="out",
    show_default=True,
    type=click.Path(),
    help="Output directory (replaced atomically).",
)
@click.option("--start", type=DATE, help="Window start (UTC), default: first counted span, whole days.")
@click.option("--end", type=DATE, help="Window end (UTC), default: last recorded change, whole days.")
@click.option("--site", help="Site name written in every output (default: the data directory's name).")
@click.option("--resample", multiple=True, type=click.Choice(["1h", "1d", "7d", "1mo"]),
              help="Also write resampled_<every>.parquet: hours and mean level per bucket.")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print the manifest as JSON instead of the summary.")
@friendly
def run(specs_dir, data_dir, out_dir, start, end, site, resample, as_json):
    """Build spans, validate the hierarchy and write checkpoints and a manifest."""
    from engine.report.summary import entity_table, invariant_line, metric_table, rejection_lines
    from engine.run import RunConfig
    from engine.run import run as run_pipeline

    config = RunConfig(specs=specs_dir, data=data_dir, out=out_dir, start=start, end=end, site=site, resample=resample)
    with err.status("running…") as status:
        manifest = run_pipeline(config, progress=lambda name: status.update(f"entity {name}…"))
    if as_json:
        out.out(json.dumps(manifest, default=str))
        return
    for warning in manifest["warnings"]:
        err.print(f"[yellow]warning:[/] {warning}")
    wide = Console(width=None if out.is_terminal else 140, highlight=False)
    wide.print(entity_table(manifest))
    for line in rejection_lines(manifest):
        wide.print(line)
    wide.print(metric_table(manifest, load_specs(specs_dir).metrics["metrics"]))
    wide.print(invariant_line(manifest))
    wide.print(
        f"[green]✓[/] outputs in {out_dir}/: usage.parquet, daily.parquet, manifest.json, spans/, validated/, rejected/"
    )
