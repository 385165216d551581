"""The run report: one self-contained HTML page per site (charts inlined as SVG), so it can be mailed or archived
and still open offline years later; the same charts go to PNG files for slides.

It is the document an auditor holds: it says where it comes from (provenance), what every number means on this
site (definitions from the specs), what was left out and why, and how to take any number apart.
"""

import html
import io
import json
import re
import shlex
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import matplotlib as mpl
import matplotlib.dates as mdates
import numpy as np
import polars as pl
from matplotlib.figure import Figure  # no pyplot: no global figure state; PNGs are drawn by the Agg backend

from engine.errors import escaped
from engine.io.output import CHARGED
from engine.report.console import printable, trace_command
from engine.temporal import to_utc

SECTIONS = (
    "Provenance",
    "Definitions",
    "Utilization stack",
    "Daily node-hours by group",
    "Who used it",
    "Engine vs legacy",
    "Rows: defects and never active",
    "Invariants",
    "Taking a number apart",
)
EXACT_DAYS = 60  # longer windows draw the stack from the exact daily means: the raw steps make the page heavy
FLAGGED_SHOWN = 20
TOP = 10  # the largest users shown per breakdown
SU_COLUMNS = dict(zip(CHARGED, ("service units consumed", "service units booked ahead (encumbered)"), strict=True))
CSS = """body{font:14px system-ui,sans-serif;margin:2em;color:#222;max-width:1400px}table{border-collapse:collapse;
margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:2px 8px;text-align:left;vertical-align:top}td.n{text-align:
right}.pass{color:#1a7f37}.fail{color:#c00}tr.flagged{background:#fde2e1}.warn{color:#9a6700}.note{color:#555}
.none{color:#555;font-style:italic;border:1px dashed #bbb;padding:1em}figure{margin:0 0 1em}code{background:#f4f4f4}
svg{max-width:100%;height:auto}td:first-child{white-space:nowrap}"""


def _cell(v) -> str:
    """A table cell: numbers right-aligned with thousands separators (float noise below 0.05 shows as 0)."""
    if isinstance(v, bool) or not isinstance(v, int | float):
        return f"<td>{html.escape(printable(v))}</td>"
    v = 0.0 if isinstance(v, float) and abs(v) < 0.05 else v
    return f'<td class="n">{v:,.0f}</td>' if isinstance(v, int) or abs(v) >= 100 else f'<td class="n">{v:,.1f}</td>'


def _table(head: list[str] | None, rows: list[list], classes: list[str] | None = None) -> str:
    """An HTML table of escaped cells (no header row without `head`); `classes` marks whole rows (failed
    invariants, flagged discrepancies)."""
    body = "".join(
        f'<tr class="{c}">' + "".join(map(_cell, row)) + "</tr>"
        for row, c in zip(rows, classes or [""] * len(rows), strict=True)
    )
    top = "<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>" if head else ""
    return f"<table>{top}{body}</table>"


def _p(text: str, kind: str = "") -> str:
    return f'<p class="{kind}">{html.escape(printable(text))}</p>' if kind else f"<p>{html.escape(printable(text))}</p>"


def _none(what: str) -> str:
    """The place of a chart or table with nothing to show, saying so (never an empty frame)."""
    return f'<p class="none">no data: {html.escape(printable(what))}</p>'


def _legend(text: str) -> str:
    """A legend label for a value from the data: printable (no control character reaches the SVG), cut at 80
    characters (matplotlib lays out a 1 MB node type for minutes) and not starting with '_' (matplotlib
    hides such labels)."""
    text = escaped(text, 80)
    return f" {text}" if text.startswith("_") else text


@dataclass(frozen=True)
class Page:
    """What the sections read: the run's outputs and manifest, the specs' metrics, and where PNGs go."""

    out_dir: Path
    plots_dir: Path | None
    manifest: dict
    spec: object  # the specs' metrics: names, formulas, descriptions, group columns, stack, breakdowns

    @property
    def window(self) -> tuple[datetime, datetime]:
        return tuple(datetime.fromisoformat(self.manifest["window"][k]) for k in ("start", "end"))

    @property
    def group(self) -> str:
        """The first group column: per-group charts and tables split by it."""
        return self.spec.group_by[0] if self.spec.group_by else "site"

    @property
    def tz(self) -> str:
        return self.manifest.get("timezone", "UTC")

    @property
    def resource(self) -> str:
        return self.spec.stack["resource"] if self.spec.stack else "nodes"

    def read(self, name: str) -> pl.DataFrame | None:
        """An output of the run, or None where the run did not write it."""
        path = self.out_dir / name
        return pl.read_parquet(path, glob=False) if path.exists() else None

    def chart(self, fig: Figure, name: str, title: str, *, reverse: bool = False, axis: str = "y") -> str:
        """The figure as inline SVG for the page and, with plots_dir, as plots_dir/<name>.png for slides; with
        `reverse`, the legend lists the artists top to bottom as a stack is drawn bottom to top. Values start
        at 0 on `axis` (x for horizontal bars)."""
        ax = fig.axes[0]
        ax.set(title=title, **{f"{axis}lim": (0, None)})
        handles, labels = ax.get_legend_handles_labels()
        if reverse:
            handles, labels = handles[::-1], labels[::-1]
        ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
        fig.tight_layout()
        if self.plots_dir:
            fig.savefig(self.plots_dir / f"{name}.png", dpi=100)
        buf = io.StringIO()
        # text stays <text> (light, searchable); a fixed id salt and no date: the same run gives the same page
        with mpl.rc_context({"svg.fonttype": "none", "svg.hashsalt": name}):
            fig.savefig(buf, format="svg", metadata={"Date": None})
        svg = re.sub(r"<metadata>.*?</metadata>", "", buf.getvalue().split("<svg", 1)[1], flags=re.S)
        return f'<figure id="{name}"><svg{svg}</figure>'


def stack_series(
    out_dir: Path, window: tuple[datetime, datetime], stack: dict, *, groups: list[str], tz: str = "UTC"
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The stack's metrics (metrics.yaml `stack`) summed over the groups on one grid of UTC times: each value holds
    until the next grid time, the last grid time is the window end. Exact step functions for short windows, exact
    means of the days of the time zone `tz` (23 or 25 hours long across a clock change) for long ones."""
    names = [*(m for g in stack["groups"].values() for m in g), stack["line"], *stack["dashed"]]
    (w0, w1), keep = window, (pl.col("resource") == stack["resource"]) & pl.col("metric").is_in(names)
    if w1 - w0 > timedelta(days=EXACT_DAYS):
        daily = pl.read_parquet(out_dir / "daily.parquet", glob=False).filter(keep)
        wide = daily.pivot(on="metric", index="date", values="mean", aggregate_function="sum")
        day = to_utc(pl.col("date").cast(pl.Datetime("us")), tz)
        wide = wide.select(pl.max_horizontal(day, pl.lit(w0)).alias("t"), pl.exclude("date"))  # a first day, cut
    else:  # a sum of step functions is the running sum of their summed changes
        usage = pl.read_parquet(out_dir / "usage.parquet", glob=False).filter(keep).sort("timestamp")
        delta = pl.col("value").diff().over("metric", *groups).fill_null(pl.col("value")).alias("delta")
        wide = usage.with_columns(delta).pivot(on="metric", index="timestamp", values="delta", aggregate_function="sum")
        wide = wide.rename({"timestamp": "t"}).sort("t").with_columns(pl.exclude("t").fill_null(0.0).cum_sum())
    cols = (pl.col(m).cast(pl.Float64).fill_null(0.0) if m in wide.columns else pl.lit(0.0).alias(m) for m in names)
    wide = wide.select(pl.col("t").cast(pl.Datetime("us")), *cols).sort("t")
    if wide.is_empty() or wide["t"][0] > w0:  # every series is 0 before its first change
        wide = pl.concat([pl.DataFrame({"t": [w0], **{m: [0.0] for m in names}}, schema=wide.schema), wide])
    wide = pl.concat([wide, wide.tail(1).with_columns(pl.lit(w1, pl.Datetime("us")).alias("t"))])
    return wide["t"].to_numpy(), {m: wide[m].to_numpy() for m in names}


def _stack(page: Page) -> str:
    """Filled steps bottom to top, the whole as a line, group tops dashed: a fill that misses its line shows at
    once. The legend reads top to bottom, as the stack does."""
    stack, groups = page.spec.stack, list(page.spec.group_by)
    if stack is None:
        return _none("metrics.yaml declares no stack")
    t, series = stack_series(page.out_dir, page.window, stack, groups=groups, tz=page.tz)
    if not any(np.any(v) for v in series.values()):
        return _none(f"no {stack['resource']} of any stacked metric in the window")
    ax = (fig := Figure(figsize=(13, 5))).subplots()
    colours, layers = mpl.colormaps["tab20c"].colors, []
    for g, members in enumerate(stack["groups"].values()):
        layers += [(m, colours[4 * g + i % 4]) for i, m in enumerate(members)]
    names, fills = zip(*layers, strict=True)
    ax.stackplot(t, *(series[m] for m in names), labels=names, colors=fills, step="post")
    for m in stack["dashed"]:
        ax.step(t, series[m], where="post", color="#333", lw=1.2, ls="--", label=m)
    ax.step(t, series[stack["line"]], where="post", color="black", lw=1.5, label=stack["line"])
    ax.set(ylabel=stack["resource"], xlim=(t[0], t[-1]))
    if page.tz != "UTC":  # the times are UTC instants, read on the clocks of the run's time zone
        locator = mdates.AutoDateLocator(tz=ZoneInfo(page.tz))
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(mdates.AutoDateFormatter(locator, tz=ZoneInfo(page.tz)))
        ax.set_xlabel(f"{page.tz} time")
    title = f"{stack['resource']}, summed over {', '.join(groups) or 'the site'}"
    return page.chart(fig, "stack", title, reverse=True)


def _daily(page: Page) -> str:
    """One chart per base metric of the spec (no formula): a line of daily node-hours per value of the first
    group column."""
    metrics, group = page.spec.metrics, page.group
    daily = page.read("daily.parquet").filter(resource=page.resource)
    colour = {nt: f"C{i % 10}" for i, nt in enumerate(sorted(daily[group].unique()))}  # same in every chart
    out = []
    for metric in (m for m, spec in metrics.items() if spec.formula is None):
        d = daily.filter(metric=metric).sort("date")
        if not d.height or not (d["hours"] != 0).any():
            out.append(f"<h3>{html.escape(metric)}</h3>" + _none(f"no {metric} on this site in the window"))
            continue
        ax = (fig := Figure(figsize=(13, 3))).subplots()
        for (nt,), part in d.group_by(group, maintain_order=True):
            ax.plot(part["date"].to_numpy(), part["hours"].to_numpy(), lw=1.2, color=colour[nt], label=_legend(nt))
        ax.set(ylabel="node-hours")
        out.append(page.chart(fig, f"daily_{metric}", f"{metric}: {metrics[metric].description}"))
    return "".join(out)


def _who(page: Page) -> str:
    """Per breakdown of metrics.yaml: its largest values (by the first metric it splits) with their hours of
    every metric it splits and, where the charges go to the same columns, their service units; then a bar chart."""
    if not page.spec.breakdowns:
        return _none("metrics.yaml declares no breakdowns")
    charges, su = page.spec.charges, page.read("charges.parquet")
    out = []
    for name, cols in ((n, b.by) for n, b in page.spec.breakdowns.items()):
        split = page.read(f"daily_by_{name}.parquet")
        split = pl.DataFrame() if split is None else split.filter(resource=page.resource)
        out.append(f"<h3>by {html.escape(name)} ({html.escape(', '.join(cols))})</h3>")
        if not split.height:
            out.append(_none(f"no metric of this site has {', '.join(cols)}"))
            continue
        names = [m for m in page.spec.metrics if m in split["metric"].unique()]
        wide = split.pivot(on="metric", index=list(cols), values="hours", aggregate_function="sum").fill_null(0.0)
        if su is not None and charges and tuple(charges.by) == tuple(cols):
            wide = wide.join(su.group_by(cols).agg(pl.col(CHARGED).sum()), on=list(cols), how="left")
        top = wide.sort(names[0], *cols, descending=[True, *[False] * len(cols)]).head(TOP)
        head = [
            *cols,
            *(f"{m} node-hours" for m in names),
            *(SU_COLUMNS[c] for c in top.columns[len(cols) + len(names) :]),
        ]
        out.append(_p(f"{wide.height:,} in all; the {top.height} with the most {names[0]} node-hours:"))
        out.append(_table(head, [list(r) for r in top.select(*cols, *names, pl.exclude(*cols, *names)).rows()]))
        ax = (fig := Figure(figsize=(13, 0.4 * top.height + 1.2))).subplots()
        labels = [_legend(" / ".join(str(v) for v in r)) for r in top.select(cols).rows()]
        ax.barh(labels[::-1], top[names[0]].to_numpy()[::-1], color="C0", label=names[0])
        ax.set(xlabel=f"{names[0]} node-hours")
        title = f"{names[0]} node-hours by {name}, the {top.height} largest"
        out.append(page.chart(fig, f"by_{name}", title, axis="x"))
    return "".join(out)


def _why(metric: str, day, where: str) -> str:
    """The command that takes a cell apart, shell-quoted: a value from the data pastes as the very argument."""
    return shlex.join(["engine", "why", "OUT_DIR", "--metric", metric, "--date", str(day), "--where", where])


def _comparison(page: Page) -> str:
    """What was compared and how a cell is flagged, engine and legacy per day with the flagged days marked, then
    the flagged cells with the audit's explanation and the command that takes each apart."""
    cmp, metrics, group = page.read("comparison.parquet"), page.spec.metrics, page.group
    if cmp is None:
        return _none("no legacy report in the raw data to compare with")
    about = page.manifest.get("comparison") or {}
    parts = [
        _p(
            f"{cmp.height:,} cells (day, {group}, metric) compared with the older report; {int(cmp['flagged'].sum()):,} "
            f"flagged, where the gap is above {about.get('tolerance', 'the tolerance')}. Beside each flagged cell, the "
            "hours the audit left out that day (rejected, never active, orphaned or clamped rows of the entities "
            "feeding the metric) as a possible explanation."
        )
    ]
    if about.get("days"):
        parts.append(_p(f"Compared on {about['days']}: the older report records what happened.", "note"))
    sums = (pl.col("engine_hours", "legacy_hours").sum(), pl.col("flagged").any())
    for metric in sorted(set(cmp["metric"]), key=lambda m: (list(metrics).index(m) if m in metrics else 99, m)):
        d = cmp.filter(metric=metric).group_by("date").agg(*sums).sort("date")
        ax = (fig := Figure(figsize=(13, 3))).subplots()
        x, engine, flagged = d["date"].to_numpy(), d["engine_hours"].to_numpy(), d["flagged"].to_numpy()
        ax.plot(x, engine, lw=1.4, label="engine")
        ax.plot(x, d["legacy_hours"].to_numpy(), lw=1.2, ls="--", label="legacy")
        ax.plot(x[flagged], engine[flagged], "o", color="#c00", ms=5, label="flagged", gid=f"flagged_{metric}")
        ax.set(ylabel="node-hours")
        parts.append(page.chart(fig, f"comparison_{metric}", f"{metric}, summed over {group}"))
    order = cmp.sort(pl.col("diff_hours").abs(), "date", group, "metric", descending=[True, False, False, False])
    rows = [
        [
            str(r["date"]),
            r[group],
            r["metric"],
            r["engine_hours"],
            r["legacy_hours"],
            r["diff_hours"],
            "" if r["rel_diff"] is None else f"{r['rel_diff']:.1%}",
            r.get("explanation") or "",
            _why(r["metric"], r["date"], f"{group}={r[group]}"),
        ]
        for r in order.filter("flagged").head(FLAGGED_SHOWN).iter_rows(named=True)
    ]
    head = [
        "date",
        group,
        "metric",
        "engine",
        "legacy",
        "diff",
        "rel. diff",
        "what the audit left out",
        "take it apart",
    ]
    parts.append(f"<h3>Flagged cells, largest gap first (at most {FLAGGED_SHOWN})</h3>")
    parts.append(_table(head, rows, ["flagged"] * len(rows)) if rows else _p("none: every cell within the tolerance"))
    return "".join(parts)


def _accounts(manifest: dict) -> str:
    """Per entity: row and hour accounts with hierarchy statuses; then the defects (each reason with its rows,
    hours and the command that traces an example row), then the rows that were never active, apart."""
    head = ["entity", "input rows", "out of scope", "accepted", "defects", "never active", "hierarchy", "hours in"]
    head += ["counted", "clamped away", "orphaned", "defect hours", "inactive hours", "node-hours counted"]
    accounts, defects, never = [], [], []
    for name, e in manifest["entities"].items():
        if e["status"] == "skipped":
            continue  # not on this site: said in the header, not a row of zeros
        h, statuses = e["hours"], ", ".join(f"{s} {n}" for s, n in e.get("hierarchy", {}).items())
        accounts.append(
            [name, e["input_rows"], e["out_of_scope"], e["accepted"], e["rejected"], e["inactive"], statuses]
            + [h[k] for k in ("input", "counted", "clamped_away", "orphaned", "rejected", "inactive")]
            + [e["node_hours"]]
        )
        for reason, r in e.get("reasons", {}).items():
            if reason in e.get("inactive_by_reason", {}):
                never.append([name, reason, r["rows"], r["hours"]])
            else:
                defects.append([name, reason, r["rows"], r["hours"], trace_command("OUT_DIR", name, r["example"])])
    parts = [
        _p("Hours are span-hours (each row's time in the window); the last column weighs them by nodes."),
        _table(head, accounts),
        "<h3>Defects</h3>",
    ]
    parts.append(_table(["entity", "reason", "rows", "hours", "an example"], defects) if defects else _p("none"))
    parts.append("<h3>Never active (not defects)</h3>")
    parts.append(_table(["entity", "reason", "rows", "hours"], never) if never else _p("none"))
    shared = [i for i in manifest["invariants"] if i["id"] == "INV-13"]
    if shared:
        parts.append("<h3>Tables several entities share: one owner per row (INV-13)</h3>")
        rows = [[i["table"], i["detail"].split(": ", 1)[1], i["status"]] for i in shared]
        parts.append(_table(["table", "rows and owners", "status"], rows, [_status(i) for i in shared]))
    return "".join(parts)


def _status(check: dict) -> str:
    return "" if check["status"] == "pass" else "fail"


def _invariants(manifest: dict) -> str:
    invs = manifest["invariants"]
    rows = [
        [i["id"], i["entity"] or i.get("table") or "all", i["status"], i["violations"], i["handled"], i["detail"]]
        for i in invs
    ]
    return _table(["id", "entity", "status", "violations", "handled", "detail"], rows, [_status(i) for i in invs])


def _window_text(manifest: dict) -> str:
    """The window on the clocks of the run's time zone, with its UTC times when that is not UTC."""
    w, tz = manifest["window"], manifest.get("timezone", "UTC")
    if "local_start" not in w:
        return f"{w['start']} to {w['end']}"
    return f"{w['local_start']} to {w['local_end']} {tz} ({w['start']} to {w['end']} UTC)"


def _provenance(manifest: dict) -> str:
    """Which engine, specs, data, window and command produced this page: enough to produce it again."""
    lens = manifest["lens"]
    rows = [
        ["engine version", manifest["engine_version"]],
        ["command", manifest.get("command") or "(run from Python)"],
        ["specs", f"{manifest['specs']} (sha256 {manifest['specs_sha256']})"],
        ["raw data", manifest["data"]],
        ["sites file", manifest.get("sites") or "none (the raw directory given with --data)"],
        ["exclusions", (manifest.get("exclusions") or {}).get("file", "none")],
        ["window", _window_text(manifest) + " (end excluded)"],
        ["lens", lens["name"] + (f", as of {lens['as_of']}" if lens.get("as_of") else "")],
        ["timezone", f"{manifest.get('timezone', 'UTC')}: the day boundaries of every daily number"],
        ["generated at", f"{manifest.get('generated_at', '')} (UTC)"],
    ]
    return _table(None, rows)


def _definitions(manifest: dict, metrics: dict) -> str:
    """Each metric in the words of metrics.yaml; on this site, the entities that feed a base metric, in the
    words of their own specs (an edge site's total is its devices, not Nova's hosts)."""
    fed: dict[str, list[str]] = {}
    for name, e in manifest["entities"].items():
        if e["status"] == "ok":
            fed.setdefault(e["metric"], []).append(f"{name}: {e['description']}")
    rows = [
        [m, spec.description, f"= {spec.formula}" if spec.formula else "; ".join(fed.get(m, [])) or "(none)"]
        for m, spec in metrics.items()
    ]
    return _table(["metric", "definition", "on this site"], rows)


def _header(manifest: dict) -> str:
    """Site, window, the verdict of the invariants (the failed ones in red with their samples), then what this
    site does not have by design (information) and warnings."""
    esc, lens = html.escape, manifest["lens"]
    name = manifest.get("site_name") or manifest["site"]
    out = f"<h1>Usage report: {esc(printable(name))}</h1>"
    as_of = f", as of {lens['as_of']}" if lens.get("as_of") else ""
    out += _p(f"site {manifest['site']} · {_window_text(manifest)} · {lens['name']} lens{as_of}")
    failed = [i for i in manifest["invariants"] if i["status"] != "pass"]
    out += f'<p class="pass">invariants: {len(manifest["invariants"]) - len(failed)} pass</p>'
    items = "".join(
        f"<li>{esc(i['id'])} ({esc(i['entity'] or i.get('table') or 'all')}): {esc(i['status'])}, "
        f"{i['violations']} violations, {esc(i['detail'])}"
        + "".join(f"<br><code>{esc(json.dumps(s, default=str))}</code>" for s in i.get("sample", []))
        for i in failed
    )
    out += f'<div class="fail"><p>invariants: {len(failed)} failed</p><ul>{items}</ul></div>' if failed else ""
    out += "".join(_p(x, "note") for x in manifest.get("notices", []))
    return out + "".join(_p(f"warning: {x}", "warn") for x in manifest.get("warnings", []))


DRILL_DOWN = """<p>Every daily number is the sum of spans, and every span comes from raw rows:</p><ul>
<li><code>engine why OUT_DIR --metric M --date D --where node_type=T</code> lists the spans that make up one cell
of <code>daily.parquet</code> (a flagged comparison cell above names its own), with each one's hours and signed
contribution, and checks their sum against the cell.</li>
<li><code>engine trace OUT_DIR ENTITY KEY</code> follows one raw row: its raw values, its span or its rejection and
why, its hierarchy status, its parent and its hours per day (the defects above name an example each).</li>
</ul><p>OUT_DIR is the directory that holds this report.</p>"""


def write_report(out_dir: Path, metrics_file, plots_dir: Path | None = None) -> Path:
    """Write out_dir/report.html (self-contained: opens offline, no CDN, no external files) from the run's
    outputs in out_dir; with plots_dir, also write every chart there as a PNG. Returns the report path.

    `metrics_file` is the specs' metrics (names, formulas, descriptions, group columns and stack)."""
    plots_dir = Path(plots_dir) if plots_dir else None
    if plots_dir:
        plots_dir.mkdir(parents=True, exist_ok=True)
    manifest = json.loads((Path(out_dir) / "manifest.json").read_text())
    page = Page(Path(out_dir), plots_dir, manifest, metrics_file)
    with mpl.rc_context({"text.parse_math": False}):  # text from the data is text: "$x$" is no formula
        charts = [section(page) for section in (_stack, _daily, _who, _comparison)]
    bodies = (
        _provenance(manifest),
        _definitions(manifest, metrics_file.metrics),
        *charts,
        _accounts(manifest),
        _invariants(manifest),
        DRILL_DOWN,
    )
    title = html.escape(printable(manifest["site"]))
    text = f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>usage: {title}</title>'
    text += f"<style>{CSS}</style></head><body>{_header(manifest)}"
    text += "".join(f"<section><h2>{h}</h2>{b}</section>" for h, b in zip(SECTIONS, bodies, strict=True))
    path, tmp = page.out_dir / "report.html", page.out_dir / ".report.html.tmp"
    tmp.write_text(text + "</body></html>", encoding="utf-8")
    tmp.replace(path)  # a reader never sees half a page
    return path
