"""The HTML report of a simulated site, opened in a real headless Chromium: every section, charts with real data,
no console error, a screenshot that is not blank; and the report's numbers and tables checked on their own.

Chromium is Debian's `chromium` package (`apt-get install -y chromium`); without it the browser test fails."""

import json
import re
import shutil
import subprocess
from datetime import date, datetime
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from PIL import Image

from engine.report import html as report
from engine.report.html import SECTIONS, stack_series, write_report
from engine.spec.load import load_specs
from simulator.chameleon import simulate
from tests.conftest import SPECS, run_cli

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--enable-logging=stderr",
    "--v=0",
]
METRICS = load_specs(SPECS).metrics  # the metrics file: metrics and stack
STACK = METRICS.stack
WINDOW = (datetime(2024, 1, 1), datetime(2024, 1, 31))


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("report")
    simulate(base / "raw", seed=1, hosts=20, days=30)
    window = [f"{w:%Y-%m-%d}" for w in WINDOW]
    result = run_cli(
        "run", SPECS, "--data", base / "raw", "--out", base / "out", "--start", window[0], "--end", window[1]
    )
    assert result.exit_code == 0, result.output + result.stderr
    return base / "out"


@pytest.fixture
def out_copy(run_dir, tmp_path) -> Path:
    """A writable copy of the run's outputs, without any comparison the pipeline may have written."""
    out = shutil.copytree(run_dir, tmp_path / "out")
    (out / "comparison.parquet").unlink(missing_ok=True)
    return out


def chromium(profile: Path, *args: str) -> subprocess.CompletedProcess:
    """Run headless Chromium with a fresh profile; fails (never skips) when the browser is not installed."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} not found: install Debian's chromium package (apt-get install -y chromium)")
    cmd = [str(CHROMIUM), *FLAGS, f"--user-data-dir={profile}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180, check=True)


def test_the_report_renders_in_headless_chromium(run_dir, tmp_path):
    page = write_report(run_dir, METRICS, tmp_path / "plots")
    shot = tmp_path / "shot.png"
    shown = chromium(tmp_path / "p1", f"--screenshot={shot}", "--window-size=1400,4000", page.as_uri())
    dumped = chromium(tmp_path / "p2", "--dump-dom", page.as_uri())
    dom = dumped.stdout

    console = [line for line in (shown.stderr + dumped.stderr).splitlines() if "Uncaught" in line or "CONSOLE" in line]
    assert console == []
    image = Image.open(shot).convert("RGB")
    assert image.size == (1400, 4000) and len(image.getcolors(1 << 24)) > 200, "the screenshot looks blank"

    for heading in SECTIONS:
        assert f"<h2>{heading}</h2>" in dom
    svgs = re.findall(r"<svg\b.*?</svg>", dom, flags=re.S)
    drawn = [s for s in svgs if re.search(r'<path\b[^>]*\sd="M[^"]{40,}"', s)]
    imgs = re.findall(r'<img\b[^>]*src="data:image/[^"]{1000,}"', dom)
    assert len(drawn) + len(imgs) >= 4, f"{len(svgs)} svg, {len(drawn)} with drawn paths, {len(imgs)} images"
    assert not re.search(r'\s(?:src|href)="(?!data:|#)', dom), "the page must not load any other file"
    if not (run_dir / "comparison.parquet").exists():
        assert "no legacy report in the raw data" in dom

    plots = {p.name: p.stat().st_size for p in (tmp_path / "plots").glob("*.png")}
    base = METRICS.base()
    assert {"stack.png", *(f"daily_{m}.png" for m in base)} <= set(plots)
    assert len(plots) == len(svgs) and min(plots.values()) > 5_000


@pytest.mark.parametrize("exact_days", [60, 0], ids=["step functions", "daily means"])
def test_the_stack_chart_series_integrate_to_the_run_hours(run_dir, monkeypatch, exact_days):
    monkeypatch.setattr(report, "EXACT_DAYS", exact_days)
    t, series = stack_series(run_dir, WINDOW, STACK, groups=list(METRICS.group_by))
    hours = np.diff(t).astype("timedelta64[us]").astype(float) / 3.6e9
    run_hours = json.loads((run_dir / "manifest.json").read_text())["metrics"]
    assert t[0] == np.datetime64(WINDOW[0]) and t[-1] == np.datetime64(WINDOW[1])
    for metric, values in series.items():
        assert (values[:-1] * hours).sum() == pytest.approx(run_hours[metric][STACK["resource"]], rel=1e-9)


def test_the_flagged_cells_are_tabled_with_their_explanation_and_how_to_take_them_apart(out_copy, tmp_path):
    assert "no data: no legacy report in the raw data to compare with" in write_report(out_copy, METRICS).read_text()
    rows = [  # 20 small differences on node type a, then two flagged ones on b: the larger first
        {"date": date(2024, 1, 1 + d), "node_type": "a", "metric": m, "engine_hours": 100.0, "legacy_hours": 100.0 - d}
        for d in range(10)
        for m in ("total", "committed")
    ]
    rows += [
        {
            "date": date(2024, 1, 12),
            "node_type": "b",
            "metric": "committed",
            "engine_hours": 700.0,
            "legacy_hours": 200.0,
            "explanation": "allocation missing_fk: 2 rows, 48.0 h",
        },
        {"date": date(2024, 1, 13), "node_type": "b", "metric": "total", "engine_hours": 300.0, "legacy_hours": 250.0},
    ]
    cmp = pl.DataFrame(rows).with_columns(
        pl.lit("sim").alias("site"),
        (pl.col("engine_hours") - pl.col("legacy_hours")).alias("diff_hours"),
        ((pl.col("engine_hours") - pl.col("legacy_hours")) / pl.col("legacy_hours")).alias("rel_diff"),
        (pl.col("node_type") == "b").alias("flagged"),
    )
    cmp.write_parquet(out_copy / "comparison.parquet")
    manifest = json.loads((out_copy / "manifest.json").read_text())
    manifest["comparison"] = {"cells": 22, "flagged": 2, "tolerance": "1 node-hours and 5% of the larger value"}
    (out_copy / "manifest.json").write_text(json.dumps(manifest))

    page = write_report(out_copy, METRICS, tmp_path / "plots").read_text()
    assert (
        "22 cells (day, node_type, metric) compared with the older report; 2 flagged, where the gap is above "
        "1 node-hours and 5% of the larger value" in page
    )
    assert '"largest"' not in page and "[{" not in page  # no JSON dump
    table = page.split("<h3>Flagged cells, largest gap first (at most 20)</h3>", 1)[1].split("</table>", 1)[0]
    body = re.findall(r"<tr class=\"(\w*)\">(.*?)</tr>", table)
    cells = [re.findall(r"<td[^>]*>(.*?)</td>", row) for _, row in body]
    assert [c for c, _ in body] == ["flagged", "flagged"]
    assert cells[0] == [
        "2024-01-12",
        "b",
        "committed",
        "700",
        "200",
        "500",
        "250.0%",
        "allocation missing_fk: 2 rows, 48.0 h",
        "engine why OUT_DIR --metric committed --date 2024-01-12 --where node_type=b",
    ]
    assert cells[1][:3] == ["2024-01-13", "b", "total"] and cells[1][7] == ""
    assert {"comparison_total.png", "comparison_committed.png"} <= {p.name for p in (tmp_path / "plots").iterdir()}
    # matplotlib draws one <use> per marker inside the group named by the line's gid, up to the next artist's group
    markers = lambda metric: page.partition(f'<g id="flagged_{metric}"')[2].split('<g id="')[0].count("<use")  # noqa: E731
    assert markers("committed") == 1 and markers("total") == 1


def test_the_provenance_says_what_produced_the_report(run_dir):
    page = (run_dir / "report.html").read_text()
    manifest = json.loads((run_dir / "manifest.json").read_text())
    section = page.split("<h2>Provenance</h2>", 1)[1].split("</section>", 1)[0]
    rows = dict(re.findall(r"<tr class=\"\"><td>(.*?)</td><td>(.*?)</td></tr>", section))
    assert rows["engine version"] == manifest["engine_version"] == "0.3.0"
    assert rows["command"].startswith("engine run ") and f"--data {run_dir.parent / 'raw'}" in rows["command"]
    assert rows["specs"] == f"{SPECS} (sha256 {manifest['specs_sha256']})" and len(manifest["specs_sha256"]) == 64
    assert rows["raw data"] == str(run_dir.parent / "raw")
    assert rows["window"] == "2024-01-01 00:00:00 to 2024-01-31 00:00:00 (end excluded)"
    assert rows["lens"] == "effective" and rows["timezone"].startswith("UTC")
    assert rows["generated at"] == f"{manifest['generated_at']} (UTC)"


def test_the_stack_legend_reads_top_down_as_the_stack(run_dir):
    page = (run_dir / "report.html").read_text()
    figure = page.split('<figure id="stack">', 1)[1].split("</figure>", 1)[0]
    legend = figure.split('id="legend_1"', 1)[1]
    labels = re.findall(r"<text[^>]*>([a-z_]+)</text>", legend)
    stacked = [m for g in STACK["groups"].values() for m in g][::-1]  # drawn bottom up: listed top down
    assert labels == [STACK["line"], *STACK["dashed"], *stacked]


def test_an_edge_site_is_defined_in_its_own_words_with_no_data_where_it_has_none(tmp_path):
    simulate(tmp_path / "raw", seed=2, hosts=12, days=20, kind="edge")
    entities = "device,reservable_device,device_allocation,container"
    (tmp_path / "sites.yaml").write_text(
        f"sites:\n  e:\n    name: CHI@Edge\n    data: raw\n    entities: [{entities}]\n"
    )
    result = run_cli(
        "run",
        SPECS,
        "--sites",
        tmp_path / "sites.yaml",
        "--site",
        "e",
        "--out",
        tmp_path / "out",
        "--start",
        "2024-01-01",
        "--end",
        "2024-01-20",
    )
    assert result.exit_code == 0, result.stderr
    page = (tmp_path / "out" / "report.html").read_text()
    assert "<h1>Usage report: CHI@Edge</h1>" in page
    definitions = page.split("<h2>Definitions</h2>", 1)[1].split("</section>", 1)[0]
    assert "device: An edge device enrolled in Blazar (blazar.devices)" in definitions and "Nova" not in definitions
    assert (
        '<h3>occupied_ondemand</h3><p class="none">no data: no occupied_ondemand on this site in the window</p>' in page
    )
    notice = "entities of the specs that this site does not list, not run: allocation, blazar_host"
    assert f'<p class="note">{notice}' in page and 'class="warn"' not in page  # by design: information


def test_failed_invariants_are_listed_in_red_with_their_samples(out_copy):
    manifest = json.loads((out_copy / "manifest.json").read_text())
    manifest["invariants"].append(
        {
            "id": "INV-8",
            "entity": None,
            "status": "fail",
            "violations": 3,
            "handled": 0,
            "detail": "no derived metric below zero",
            "sample": [{"metric": "idle", "value": -1.0, "timestamp": "2024-01-05 10:00:00"}],
        }
    )
    (out_copy / "manifest.json").write_text(json.dumps(manifest))
    page = write_report(out_copy, METRICS).read_text()
    failed = re.search(r'<div class="fail">(.*?)</div>', page, flags=re.S).group(1)
    assert "invariants: 1 failed" in failed and "INV-8 (all)" in failed and "-1.0" in failed
    assert f'<p class="pass">invariants: {len(manifest["invariants"]) - 1} pass</p>' in page


def test_defect_and_inactive_hours_by_reason_add_up_to_the_entity_accounts(run_dir):
    manifest = json.loads((run_dir / "manifest.json").read_text())
    for name, e in manifest["entities"].items():
        if e["status"] == "skipped":
            continue
        for stage, account in (("rejected", "rejected_by_reason"), ("inactive", "inactive_by_reason")):
            reasons = {r: v for r, v in e["reasons"].items() if r in e[account]}
            assert {r: v["rows"] for r, v in reasons.items()} == e[account]
            hours = sum(v["hours"] for v in reasons.values())
            assert hours == pytest.approx(e["hours"][stage], abs=1e-6)
            rows = pl.read_parquet(run_dir / stage / f"{name}.parquet")
            assert rows.height == sum(e[account].values())


def test_who_used_it_tables_the_largest_projects_with_their_hours_and_units(run_dir):
    page = (run_dir / "report.html").read_text()
    section = page.split("<h2>Who used it</h2>", 1)[1].split("</section>", 1)[0]
    project = section.split("<h3>by project (project_id)</h3>", 1)[1].split("<h3>", 1)[0]
    rows = re.findall(r'<tr class=""><td>([0-9a-f]{32})</td>(.*?)</tr>', project)
    split = pl.read_parquet(run_dir / "daily_by_project.parquet").filter(resource="nodes", metric="committed")
    committed = split.group_by("project_id").agg(pl.col("hours").sum()).sort("hours", descending=True)
    charges = pl.read_parquet(run_dir / "charges.parquet").group_by("project_id").agg(pl.col("su").sum())
    assert [p for p, _ in rows] == committed["project_id"].head(10).to_list() and len(rows) >= 3
    first = [float(v.replace(",", "")) for v in re.findall(r'<td class="n">([-0-9,.]+)</td>', rows[0][1])]
    su = charges.filter(project_id=rows[0][0])["su"].item()
    assert first[0] == round(committed["hours"][0]) and first[-2] == round(su) and first[-1] == 0  # none booked ahead
    assert '<figure id="by_project">' in project and '<figure id="by_user">' in section
