"""What the terminal shows: progress while a command works, then its result (the end-of-run summary a person
reads in five seconds, an extraction's tables, a trace, the spans of one cell). Text from the data is printed
escaped: it cannot drive the terminal or inject rich markup."""

import contextlib
import shlex
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from engine.errors import escaped

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def printable(value) -> str:
    """Text for a terminal line: control characters escaped, so data cannot drive the terminal (an escape
    sequence in a hostname could otherwise rewrite the screen)."""
    return escaped(str(value))


def plain(value) -> str:
    """Text from the data or the specs for a rich line: printable, and no rich markup."""
    return escape(printable(value))


def _n(value: float | int) -> str:
    return f"{value:,.0f}" if isinstance(value, int) or abs(value) >= 100 else f"{value:,.1f}"


def wide(columns: int) -> Console:
    """stdout at the terminal's width, or, when piped, at `columns` so that long lines stay whole."""
    return Console(width=None if out.is_terminal else columns, highlight=False)


@contextlib.contextmanager
def live(label: str):
    """A progress line on the terminal (stderr, gone when done): the stage and the item being worked on, with
    the time elapsed since the command began. Yields report(stage, item=None)."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    with Progress(*columns, console=err, transient=True) as bar:
        task = bar.add_task(f"{label}…")

        def report(stage: str, item: str | None = None) -> None:
            bar.update(task, description=f"{label} · {plain(stage)}" + (f": {plain(item)}" if item else "") + "…")

        yield report


def entity_table(manifest: dict) -> Table:
    """Per entity: rows in, out of scope, accepted, defects, never active, clamped, orphans, hours."""
    window = manifest["window"]
    start, end = (window.get(f"local_{k}", window[k]) for k in ("start", "end"))
    zone = "" if manifest.get("timezone", "UTC") == "UTC" else f" ({manifest['timezone']})"
    title = f"site {plain(manifest['site'])} · {manifest['lens']['name']} · {start:%Y-%m-%d} → {end:%Y-%m-%d}{zone}"
    table = Table(title=title, title_justify="left")
    columns = ("entity", "input", "out of scope", "accepted", "defects", "never active", "clamped", "orphans")
    for col in (*columns, "node-hours counted"):
        table.add_column(col, justify="left" if col == "entity" else "right")
    for name, e in manifest["entities"].items():
        if e["status"] == "skipped":
            table.add_row(name, "", "", "", f"[yellow]skipped: {plain(e['reason'])}[/]", "", "", "", "")
            continue
        clamped, orphans = e["hierarchy"].get("clamped", 0) + e["duplicates_clamped"], e["hierarchy"].get("orphan", 0)
        counts = (e["input_rows"], e["out_of_scope"] + e["not_recorded"], e["accepted"], e["rejected"], e["inactive"])
        table.add_row(name, *map(_n, (*counts, clamped, orphans, e["node_hours"])))
    return table


def invariant_line(manifest: dict) -> str:
    """'invariants: 42 pass' or the failing ones by id and entity."""
    failed = [
        f"{i['id']} ({i['entity'] or i.get('table') or 'all'}: {i['violations']})"
        for i in manifest["invariants"]
        if i["status"] != "pass"
    ]
    passed = len(manifest["invariants"]) - len(failed)
    if failed:
        return f"[red]invariants: {len(failed)} FAILED[/] {', '.join(failed)}; {passed} pass"
    return f"[green]invariants: all {passed} pass[/]"


def partition_lines(manifest: dict) -> list[str]:
    """INV-13 for each table several entities share: its rows, who owns how many, and the verdict."""
    return [
        f"{'[green]✓[/]' if i['status'] == 'pass' else '[red]✗[/]'} INV-13 one owner per row: {plain(i['detail'])}"
        for i in manifest["invariants"]
        if i["id"] == "INV-13"
    ]


def trace_command(out_dir, entity: str, key) -> str:
    """The command that follows one raw row, shell-quoted: a key from the data pastes as the very argument
    (`0$(touch X)` ran when pasted)."""
    return shlex.join(["engine", "trace", str(out_dir), entity, str(key)])


def rejection_lines(manifest: dict, out_dir: str) -> list[str]:
    """Defects (rejected rows) by entity and reason, with rows, hours and a command to trace an example, then
    the rows that were never active, apart: they are no defect."""
    defects, never = [], []
    for name, e in manifest["entities"].items():
        for reason, r in e.get("reasons", {}).items():
            what = f"{plain(name)} {plain(reason)}: {r['rows']:,} row{'s' * (r['rows'] != 1)}, {_n(r['hours'])} h"
            if reason in e.get("inactive_by_reason", {}):
                never.append(what)
            else:
                defects.append(f"{what} — e.g. {plain(trace_command(out_dir, name, r['example']))}")
    lines = (
        ["[green]defects: none[/]"]
        if not defects
        else [f"[red]defects[/] ({len(defects)}):", *(f"  {d}" for d in defects)]
    )
    return lines + ([f"never active (not defects): {'; '.join(never)}"] if never else [])


def metric_table(manifest: dict, metrics) -> Table:
    """Node-hours of every metric in the window, base metrics then derived, each with its description (and a
    derived one's formula)."""
    table = Table(title="node-hours in the window", title_justify="left")
    table.add_column("metric")
    table.add_column("node-hours", justify="right")
    table.add_column("definition")
    for name, spec in sorted(metrics.metrics.items(), key=lambda kv: (kv[1].formula is not None, kv[0])):
        hours = manifest.get("metrics", {}).get(name, {}).get("nodes")
        formula = f" ({spec.formula})" if spec.formula else ""
        table.add_row(name, "" if hours is None else _n(hours), plain(spec.description + formula))
    return table


FIXED = {"date", "site", "metric", "engine_hours", "legacy_hours", "diff_hours", "rel_diff", "flagged"}
FIXED |= {"explained_hours", "explanation"}  # the comparison's own columns; the others are its groups


def who_lines(manifest: dict) -> list[str]:
    """Who used it: each breakdown's metrics and how many values it found, and the service units charged."""
    lines = [
        f"by {name}: {b['values']:,} {'/'.join(b['by'])} values over {', '.join(b['metrics'])} (daily_by_{name}.parquet)"
        for name, b in manifest.get("breakdowns", {}).items()
    ]
    if c := manifest.get("charges"):
        ahead = f", {c['encumbered_su']:,.0f} booked ahead (encumbered)" if c["encumbered_su"] else ""
        lines.append(
            f"service units: {c['su']:,.0f} consumed{ahead}, {c['metric']} charged to {c['charged']:,} "
            f"{'/'.join(c['by'])} values (charges.parquet)"
        )
    return [plain(line) for line in lines]


def print_summary(manifest: dict, metrics, out_path: str) -> None:
    """The end of one site's run: notices and warnings, the entity and metric tables, the largest gaps with the
    legacy report, the invariants and every output written."""
    screen = wide(140)
    for notice in manifest.get("notices", []):
        err.print(f"[dim]notice: {plain(notice)}[/]")
    for warning in manifest["warnings"]:
        err.print(f"[yellow]warning:[/] {plain(warning)}")
    screen.print(entity_table(manifest))
    for line in [*rejection_lines(manifest, out_path), *partition_lines(manifest)]:
        screen.print(line)
    screen.print(metric_table(manifest, metrics))
    for line in who_lines(manifest):
        screen.print(line)
    comparison = manifest.get("comparison", {})
    if comparison.get("largest"):
        screen.print(
            f"largest gaps with the legacy report ({comparison['flagged']} of {comparison['cells']} cells flagged):"
        )
        for c in comparison["largest"][:5]:
            why = f" — {c['explanation']}" if c.get("explanation") else ""
            where = " ".join(escaped(str(v), 80) for k, v in c.items() if k not in FIXED)
            hours = f"engine {c['engine_hours']:,.1f} h, legacy {c['legacy_hours']:,.1f} h ({c['diff_hours']:+,.1f})"
            screen.print(printable(f"  {c['date']} {where} {c['metric']}: {hours}{why}"), markup=False)
    screen.print(invariant_line(manifest))
    screen.print(f"[green]✓[/] outputs in {plain(out_path)}/: {plain(_written(Path(out_path)))}", soft_wrap=True)


def _written(out_dir: Path) -> str:
    """What a run wrote: its files, then its folders of checkpoints with how many files each holds."""
    entries = sorted(out_dir.iterdir(), key=lambda p: (p.is_dir(), p.name))
    files = [p.name for p in entries if p.is_file() and not p.name.startswith(".")]
    folders = [f"{p.name}/ ({len(list(p.iterdir()))})" for p in entries if p.is_dir()]
    return ", ".join(files + folders)


def print_fleet(outcomes: list, outs: list[str]) -> None:
    """One line per site: done with its time and outputs, or its error."""
    failed = [o for o in outcomes if o.error]
    out.print(f"\n[bold]{len(outcomes) - len(failed)} of {len(outcomes)} sites done[/]")
    for o, path in zip(outcomes, outs, strict=True):
        if o.error:
            out.out(f"  ✗ {o.site}: {printable(o.error)}")
        else:
            seconds = sum(t["seconds"] for t in o.manifest["timings"].values())
            out.out(f"  ✓ {o.site}: {seconds:.1f} s, outputs in {path}/")


def rows_table(title: str, rows: list[dict], columns: list[str]) -> Table:
    table = Table(title=title, title_justify="left")
    for col in columns:
        table.add_column(col)
    for row in rows:
        cells = (row.get(c) for c in columns)
        table.add_row(*("" if v is None else (f"{v:,.4g}" if isinstance(v, float) else plain(v)) for v in cells))
    return table


def print_extract(report: dict, title: str) -> None:
    """Each table extracted (rows, status, seconds), then each entity that cannot run from what was extracted."""
    table = Table(title=plain(title), title_justify="left")
    for col in ("table", "rows", "status", "seconds"):
        table.add_column(col, justify="right" if col in ("rows", "seconds") else "left")
    for t in report["tables"]:
        colour = "green" if t["status"] == "ok" else ("red" if t["table"] in report["failed"] else "yellow")
        rows = "" if t["rows"] is None else f"{t['rows']:,}"
        table.add_row(t["table"], rows, f"[{colour}]{t['status']}[/]", f"{t['seconds']:.2f}")
    wide(140).print(table)
    for name, state in report["entities"].items():
        if state.startswith("not on"):  # the site has no such service: information, not a failure
            err.print(f"[dim]notice: {plain(name)} {plain(state)}[/]")
        elif state != "ok":
            err.print(f"[red]{plain(name)}: {plain(state)}[/]")


def print_trace(t: dict, entity: str, key: str) -> None:
    """One raw row's way through a run."""
    screen = wide(160)
    screen.print(f"[bold]{plain(entity)} {plain(key)}[/]")
    for row in t["raw"]:
        screen.print("raw: " + plain(", ".join(f"{k}={v}" for k, v in row.items())))
    for r in t["rejected"]:
        screen.print(f"[red]rejected (a defect): {plain(r['rejection_reason'])}[/] — {plain(r['rejection_detail'])}")
    for r in t["inactive"]:
        screen.print(f"never active (not a defect): {plain(r['inactive_reason'])} — {plain(r['inactive_detail'])}")
    if t["validated"]:
        cols = ["valid_start", "valid_end", "hierarchy_status", "original_start", "original_end"]
        screen.print(rows_table("span pieces after validation", t["validated"], cols))
    if t.get("parents"):
        screen.print(rows_table("inside its parent", t["parents"], ["entity", "entity_id", "p_start", "p_end"]))
    if t["hours_per_day"]:
        screen.print(rows_table("hours counted per day", t["hours_per_day"], ["date", "hours"]))
        screen.print(f"total: {sum(d['hours'] for d in t['hours_per_day']):,.4g} h")


WHY = ["metric", "sign", "entity", "entity_id", "valid_start", "valid_end", "hierarchy_status", "value", "hours"]


def print_why(w: dict, metric: str, *, where: dict, resource: str) -> None:
    """The spans of one daily cell and whether they add up to it."""
    label = " ".join(f"{k}={v}" for k, v in where.items())
    wide(180).print(rows_table(f"{plain(metric)} on {w['date']} {plain(label)}", w["spans"], [*WHY, "contribution"]))
    mark = "[green]✓ matches[/]" if w["matches"] else "[red]✗ differs from[/]"
    unit, total = resource.removesuffix("s"), f"{w['total']:,.6g}"
    out.print(f"{len(w['spans'])} spans, total {total} {unit}-hours — {mark} {w['table']} ({w['daily']:,.6g})")
