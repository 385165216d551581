"""The end-of-run summary: a table a person can read in five seconds."""

from rich.markup import escape
from rich.table import Table


def printable(value) -> str:
    """Text for a terminal line: control characters escaped, so data cannot drive the terminal (an escape
    sequence in a hostname could otherwise rewrite the screen)."""
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in str(value))


def plain(value) -> str:
    """Text from the data or the specs for a rich line: printable, and no rich markup."""
    return escape(printable(value))


def _n(value: float | int) -> str:
    return f"{value:,.0f}" if isinstance(value, int) or abs(value) >= 100 else f"{value:,.1f}"


def entity_table(manifest: dict) -> Table:
    """Per entity: rows in, out of scope, accepted, defects, never active, clamped, orphans, hours."""
    table = Table(title=f"site {plain(manifest['site'])} · {manifest['lens']['name']} · {manifest['window']['start']:%Y-%m-%d} → "
                  f"{manifest['window']['end']:%Y-%m-%d}", title_justify="left")  # fmt: skip
    columns = ("entity", "input", "out of scope", "accepted", "defects", "never active", "clamped", "orphans")
    for col in (*columns, "node-hours counted"):
        table.add_column(col, justify="left" if col == "entity" else "right")
    for name, e in manifest["entities"].items():
        if e["status"] == "skipped":
            table.add_row(name, "", "", "", f"[yellow]skipped: {plain(e['reason'])}[/]", "", "", "", "")
            continue
        table.add_row(
            name, _n(e["input_rows"]), _n(e["out_of_scope"] + e["not_recorded"]), _n(e["accepted"]), _n(e["rejected"]),
            _n(e["inactive"]), _n(e["hierarchy"].get("clamped", 0) + e["duplicates_clamped"]),
            _n(e["hierarchy"].get("orphan", 0)), _n(e["node_hours"]),
        )  # fmt: skip
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
                defects.append(f"{what} — e.g. engine trace {plain(out_dir)} {plain(name)} {plain(r['example'])}")
    lines = (
        ["[green]defects: none[/]"]
        if not defects
        else [f"[red]defects[/] ({len(defects)}):", *(f"  {d}" for d in defects)]
    )
    return lines + ([f"never active (not defects): {'; '.join(never)}"] if never else [])


def metric_table(manifest: dict, metrics: dict) -> Table:
    """Node-hours of every metric in the window, base metrics then derived with their formula."""
    table = Table(title="node-hours in the window", title_justify="left")
    table.add_column("metric")
    table.add_column("node-hours", justify="right")
    table.add_column("definition")
    for name, spec in sorted(metrics.items(), key=lambda kv: ("formula" in kv[1], kv[0])):
        hours = manifest.get("metrics", {}).get(name, {}).get("nodes")
        table.add_row(name, "" if hours is None else _n(hours), plain(spec.get("formula") or spec["description"]))
    return table
