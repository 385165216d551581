"""The run report: one self-contained HTML page per site (charts inlined as SVG), so it can be mailed or archived
and still open offline years later; the same charts go to PNG files for slides."""

import html
import io
import json
import re
from datetime import datetime, timedelta
from pathlib import Path

import matplotlib as mpl
import numpy as np
import polars as pl
from matplotlib.figure import Figure  # no pyplot: no global figure state; PNGs are drawn by the Agg backend

from engine.report.summary import printable

SECTIONS = ("Utilization stack", "Daily node-hours by group", "Engine vs legacy", "Rows: defects and never active",
            "Invariants")  # fmt: skip
EXACT_DAYS = 60  # longer windows draw the stack from the exact daily means: the raw steps make the page heavy
CSS = """body{font:14px system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse;margin:.5em 0 1.5em}
td,th{border:1px solid #ccc;padding:2px 8px;text-align:left}td.n{text-align:right}.pass{color:#1a7f37}
.fail{color:#c00}tr.flagged{background:#fde2e1}.warn{color:#9a6700}figure{margin:0 0 1em}svg{max-width:100%;height:auto}"""


def _cell(v) -> str:
    """A table cell: numbers right-aligned with thousands separators (float noise below 0.05 shows as 0)."""
    if isinstance(v, bool) or not isinstance(v, int | float):
        return f"<td>{html.escape(printable(v))}</td>"
    v = 0.0 if isinstance(v, float) and abs(v) < 0.05 else v
    return f'<td class="n">{v:,.0f}</td>' if isinstance(v, int) or abs(v) >= 100 else f'<td class="n">{v:,.1f}</td>'


def _table(head: list[str], rows: list[list], classes: list[str] | None = None) -> str:
    """An HTML table of escaped cells; `classes` marks whole rows (failed invariants, flagged discrepancies)."""
    body = "".join(
        f'<tr class="{c}">' + "".join(map(_cell, row)) + "</tr>"
        for row, c in zip(rows, classes or [""] * len(rows), strict=True)
    )
    return "<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + f"</tr>{body}</table>"


def _legend(text: str) -> str:
    """A legend label for a value from the data: printable (no control character reaches the SVG), and not
    starting with '_' (matplotlib hides such labels)."""
    text = printable(text)
    return f" {text}" if text.startswith("_") else text


def _chart(fig: Figure, name: str, title: str, plots_dir: Path | None) -> str:
    """The figure as inline SVG for the page and, with plots_dir, as plots_dir/<name>.png for slides."""
    ax = fig.axes[0]
    ax.set(title=title, ylim=(0, None))
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
    fig.tight_layout()
    if plots_dir:
        fig.savefig(plots_dir / f"{name}.png", dpi=100)
    buf = io.StringIO()
    # text stays <text> (light, searchable); a fixed id salt and no date: the same run gives the same page
    with mpl.rc_context({"svg.fonttype": "none", "svg.hashsalt": name}):
        fig.savefig(buf, format="svg", metadata={"Date": None})
    svg = re.sub(r"<metadata>.*?</metadata>", "", buf.getvalue().split("<svg", 1)[1], flags=re.S)
    return f'<figure id="{name}"><svg{svg}</figure>'


def stack_series(
    out_dir: Path, window: tuple[datetime, datetime], stack: dict, groups: list[str]
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The stack's metrics (metrics.yaml `stack`) summed over the groups on one time grid: each value holds until the next grid time, the
    last grid time is the window end. Exact step functions for short windows, exact daily means for long ones."""
    names = [*(m for g in stack["groups"].values() for m in g), stack["line"], *stack["dashed"]]
    (w0, w1), keep = window, (pl.col("resource") == stack["resource"]) & pl.col("metric").is_in(names)
    if w1 - w0 > timedelta(days=EXACT_DAYS):
        daily = pl.read_parquet(out_dir / "daily.parquet").filter(keep)
        wide = daily.pivot(on="metric", index="date", values="mean", aggregate_function="sum")
        wide = wide.select(pl.col("date").cast(pl.Datetime("us")).alias("t"), pl.exclude("date"))
    else:  # a sum of step functions is the running sum of their summed changes
        usage = pl.read_parquet(out_dir / "usage.parquet").filter(keep).sort("timestamp")
        delta = pl.col("value").diff().over("metric", *groups).fill_null(pl.col("value")).alias("delta")
        wide = usage.with_columns(delta).pivot(on="metric", index="timestamp", values="delta", aggregate_function="sum")
        wide = wide.rename({"timestamp": "t"}).sort("t").with_columns(pl.exclude("t").fill_null(0.0).cum_sum())
    cols = (pl.col(m).cast(pl.Float64).fill_null(0.0) if m in wide.columns else pl.lit(0.0).alias(m) for m in names)
    wide = wide.select(pl.col("t").cast(pl.Datetime("us")), *cols).sort("t")
    if wide.is_empty() or wide["t"][0] > w0:  # every series is 0 before its first change
        wide = pl.concat([pl.DataFrame({"t": [w0], **{m: [0.0] for m in names}}, schema=wide.schema), wide])
    wide = pl.concat([wide, wide.tail(1).with_columns(pl.lit(w1, pl.Datetime("us")).alias("t"))])
    return wide["t"].to_numpy(), {m: wide[m].to_numpy() for m in names}


def _stack(plots_dir: Path | None, out_dir: Path, window, metrics: dict, stack: dict, groups: list[str]) -> str:
    """Filled steps bottom to top, the whole as a line, group tops dashed: a fill that misses its line shows at once."""
    t, series = stack_series(out_dir, window, stack, groups)
    ax = (fig := Figure(figsize=(13, 5))).subplots()
    colours, layers = mpl.colormaps["tab20c"].colors, []
    for g, members in enumerate(stack["groups"].values()):
        layers += [(m, colours[4 * g + i % 4]) for i, m in enumerate(members)]
    names, fills = zip(*layers, strict=True)
    ax.stackplot(t, *(series[m] for m in names), labels=names, colors=fills, step="post")
    ax.step(t, series[stack["line"]], where="post", color="black", lw=1.5, label=stack["line"])
    for m in stack["dashed"]:
        ax.step(t, series[m], where="post", color="#333", lw=1.2, ls="--", label=m)
    ax.set(ylabel=stack["resource"], xlim=(t[0], t[-1]))
    defs = [[m, metrics.get(m, {}).get("formula") or metrics.get(m, {}).get("description", "")] for m in series]
    title = f"{stack['resource']}, summed over {', '.join(groups) or 'the site'}"
    return _chart(fig, "stack", title, plots_dir) + _table(["metric", "definition"], defs)


def _daily(plots_dir: Path | None, out_dir: Path, metrics: dict, stack: dict, group: str) -> str:
    """One chart per base metric of the spec (no formula): a line of daily node-hours per value of `group`."""
    daily = pl.read_parquet(out_dir / "daily.parquet").filter(resource=stack["resource"])
    colour = {nt: f"C{i % 10}" for i, nt in enumerate(sorted(daily[group].unique()))}  # same in every chart
    out, present = [], set(daily["metric"])
    for metric in (m for m, spec in metrics.items() if "formula" not in spec and m in present):
        d = daily.filter(metric=metric).sort("date")
        ax = (fig := Figure(figsize=(13, 3))).subplots()
        for (nt,), part in d.group_by(group, maintain_order=True):
            ax.plot(part["date"].to_numpy(), part["hours"].to_numpy(), lw=1.2, color=colour[nt], label=_legend(nt))
        ax.set(ylabel="node-hours")
        out.append(_chart(fig, f"daily_{metric}", f"{metric}: {metrics[metric].get('description', '')}", plots_dir))
    return "".join(out) or "<p>no daily series</p>"


def _comparison(plots_dir: Path | None, out_dir: Path, manifest: dict, metrics: dict, group: str) -> str:
    """Engine and legacy daily totals per compared metric with the flagged days marked; the 10 largest gaps."""
    if not (out_dir / "comparison.parquet").exists():
        return "<p>no legacy report in the raw data</p>"
    cmp = pl.read_parquet(out_dir / "comparison.parquet")
    notes = "".join(f"<p>{html.escape(f'{k}: {json.dumps(v, default=str)}')}</p>"
                    for k, v in (manifest.get("comparison") or {}).items())  # fmt: skip
    out, sums = [], (pl.col("engine_hours", "legacy_hours").sum(), pl.col("flagged").any())
    for metric in sorted(set(cmp["metric"]), key=lambda m: (list(metrics).index(m) if m in metrics else 99, m)):
        d = cmp.filter(metric=metric).group_by("date").agg(*sums).sort("date")
        ax = (fig := Figure(figsize=(13, 3))).subplots()
        x, engine, flagged = d["date"].to_numpy(), d["engine_hours"].to_numpy(), d["flagged"].to_numpy()
        ax.plot(x, engine, lw=1.4, label="engine")
        ax.plot(x, d["legacy_hours"].to_numpy(), lw=1.2, ls="--", label="legacy")
        ax.plot(x[flagged], engine[flagged], "o", color="#c00", ms=5, label="flagged", gid=f"flagged_{metric}")
        ax.set(ylabel="node-hours")
        out.append(_chart(fig, f"comparison_{metric}", f"{metric}, summed over {group}", plots_dir))
    top = cmp.sort(pl.col("diff_hours").abs(), "date", group, "metric", descending=[True, False, False, False])
    rows = [
        [str(r["date"]), r[group], r["metric"], r["engine_hours"], r["legacy_hours"], r["diff_hours"],
         "" if r["rel_diff"] is None else f"{r['rel_diff']:.1%}", "yes" if r["flagged"] else ""]
        for r in top.head(10).iter_rows(named=True)
    ]  # fmt: skip
    head = ["date", group.replace("_", " "), "metric", "engine", "legacy", "diff", "rel. diff", "flagged"]
    table = _table(head, rows, ["flagged" if r[-1] else "" for r in rows])
    return notes + "".join(out) + "<h3>The 10 largest discrepancies</h3>" + table


def _accounts(manifest: dict) -> str:
    """Per entity: row and hour accounts with hierarchy statuses; then the defects (each reason with its rows,
    hours and the command that traces an example row), then the rows that were never active, apart."""
    head = ["entity", "input rows", "out of scope", "accepted", "defects", "never active", "hierarchy", "hours in"]
    head += ["counted", "clamped away", "orphaned", "defect hours", "inactive hours"]
    accounts, defects, never = [], [], []
    for name, e in manifest["entities"].items():
        if e["status"] == "skipped":
            accounts.append([name, f"skipped: {e.get('reason', '')}"] + [""] * (len(head) - 2))
            continue
        h, statuses = e["hours"], ", ".join(f"{s} {n}" for s, n in e.get("hierarchy", {}).items())
        accounts.append([name, e["input_rows"], e["out_of_scope"], e["accepted"], e["rejected"], e["inactive"], statuses]
                        + [h[k] for k in ("input", "counted", "clamped_away", "orphaned", "rejected", "inactive")])  # fmt: skip
        for reason, r in e.get("reasons", {}).items():
            if reason in e.get("inactive_by_reason", {}):
                never.append([name, reason, r["rows"], r["hours"]])
            else:
                defects.append([name, reason, r["rows"], r["hours"], f"engine trace OUT_DIR {name} {r['example']}"])
    parts = [_table(head, accounts), "<h3>Defects</h3>"]
    note = "<p>Each example row is followed by <code>engine trace OUT_DIR ENTITY KEY</code>, where OUT_DIR is the directory that holds this report.</p>"
    parts.append(
        note + _table(["entity", "reason", "rows", "hours", "an example"], defects) if defects else "<p>none</p>"
    )
    parts.append("<h3>Never active (not defects)</h3>")
    parts.append(_table(["entity", "reason", "rows", "hours"], never) if never else "<p>none</p>")
    shared = [i for i in manifest["invariants"] if i["id"] == "INV-13"]
    if shared:
        parts.append("<h3>Tables several entities share: one owner per row (INV-13)</h3>")
        rows = [[i["table"], i["detail"].split(": ", 1)[1], i["status"]] for i in shared]
        parts.append(
            _table(
                ["table", "rows and owners", "status"], rows, ["" if i["status"] == "pass" else "fail" for i in shared]
            )
        )
    return "".join(parts)


def _header(manifest: dict) -> str:
    """Site, lens and window; a green line for the invariants that pass, the failed ones in red with their samples."""
    lens, w, esc = manifest["lens"], manifest["window"], html.escape
    as_of = f" as of {esc(str(lens['as_of']))}" if lens.get("as_of") else ""
    out = f"<h1>site {esc(manifest['site'])}</h1><p>lens <b>{esc(lens['name'])}</b>{as_of} · window "
    out += f"{esc(w['start'])} → {esc(w['end'])}</p>"
    failed = [i for i in manifest["invariants"] if i["status"] != "pass"]
    out += f'<p class="pass">invariants: {len(manifest["invariants"]) - len(failed)} pass</p>'
    items = "".join(
        f"<li>{esc(i['id'])} ({esc(i['entity'] or 'all')}): {esc(i['status'])}, {i['violations']} violations, "
        f"{esc(i['detail'])}"
        + "".join(f"<br><code>{esc(json.dumps(s, default=str))}</code>" for s in i.get("sample", []))
        for i in failed
    )
    out += f'<div class="fail"><p>invariants: {len(failed)} failed</p><ul>{items}</ul></div>' if failed else ""
    return out + "".join(f'<p class="warn">warning: {esc(str(x))}</p>' for x in manifest.get("warnings", []))


def write_report(out_dir: Path, metrics_spec: dict, plots_dir: Path | None = None) -> Path:
    """Write out_dir/report.html (self-contained: opens offline, no CDN, no external files) from the run's
    outputs in out_dir; with plots_dir, also write every chart there as a PNG. Returns the report path.

    `metrics_spec` is the metrics file: its `metrics` (names, formulas, descriptions) and `stack`."""
    metrics, stack, groups = metrics_spec["metrics"], metrics_spec["stack"], metrics_spec.get("group_by", [])
    group = groups[0] if groups else "site"  # per-group charts split by the first group column
    out_dir, plots_dir = Path(out_dir), Path(plots_dir) if plots_dir else None
    if plots_dir:
        plots_dir.mkdir(parents=True, exist_ok=True)
    manifest = json.loads((out_dir / "manifest.json").read_text())
    window = tuple(datetime.fromisoformat(manifest["window"][k]) for k in ("start", "end"))
    invs = manifest["invariants"]
    with mpl.rc_context({"text.parse_math": False}):  # text from the data is text: "$x$" is no formula
        bodies = (
            _stack(plots_dir, out_dir, window, metrics, stack, groups),
            _daily(plots_dir, out_dir, metrics, stack, group),
            _comparison(plots_dir, out_dir, manifest, metrics, group),
        )
    bodies += (
        _accounts(manifest),
        _table(["id", "entity", "status", "violations", "handled", "detail"],
               [[i["id"], i["entity"] or i.get("table") or "all", i["status"], i["violations"], i["handled"], i["detail"]] for i in invs],
               ["" if i["status"] == "pass" else "fail" for i in invs]),
    )  # fmt: skip
    page = f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>usage: {html.escape(manifest["site"])}'
    page += f"</title><style>{CSS}</style></head><body>{_header(manifest)}"
    page += "".join(f"<section><h2>{h}</h2>{b}</section>" for h, b in zip(SECTIONS, bodies, strict=True))
    path, tmp = out_dir / "report.html", out_dir / ".report.html.tmp"
    tmp.write_text(page + "</body></html>", encoding="utf-8")
    tmp.replace(path)  # a reader never sees half a page
    return path
