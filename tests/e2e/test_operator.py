"""What a new operator meets (issue 16): no false success, runs from any directory, progress by stage, the
summary's node-hours, the outputs line, drill-down that refuses what does not exist, buckets from the window."""

import json
import subprocess
import sys
from datetime import datetime

import polars as pl
import pytest

from engine.pipeline import Progress, RunConfig, run
from simulator.chameleon import simulate
from tests.conftest import ROOT, SPECS, run_cli
from tests.hardening.support import WINDOW, one_error
from tests.rawdata import tiny_site, write_raw


@pytest.fixture
def raw(tmp_path):
    return write_raw(tmp_path / "raw", tiny_site())


def test_a_window_with_no_counted_span_fails_and_keeps_the_previous_output(tmp_path, raw):
    out = tmp_path / "out"
    assert run_cli("run", SPECS, "--data", raw, "--out", out, "--no-report", *WINDOW).exit_code == 0
    before = (out / "daily.parquet").read_bytes()
    result = run_cli("run", SPECS, "--data", raw, "--out", out, "--start", "2010-01-01", "--end", "2010-02-01")
    assert one_error(result) == (
        "no counted span in the window 2010-01-01 to 2010-02-01 (the data's counted spans start 2024-01-01)"
    )
    assert (out / "daily.parquet").read_bytes() == before


def test_why_refuses_a_date_outside_the_run_and_a_value_that_does_not_exist(tmp_path, raw):
    out = tmp_path / "out"
    assert run_cli("run", SPECS, "--data", raw, "--out", out, "--no-report", *WINDOW).exit_code == 0
    result = run_cli("why", out, "--metric", "total", "--date", "2030-01-01")
    assert one_error(result) == "--date 2030-01-01: outside this run's window, 2024-01-01 to 2024-01-30"
    result = run_cli("why", out, "--metric", "total", "--date", "2024-01-05", "--where", "node_type=compute_skylak")
    assert one_error(result) == (
        "--where node_type=compute_skylak: no such node_type in this run (did you mean 'compute_skylake'?); "
        "known: compute_skylake, gpu_v100, unknown"
    )
    ok = run_cli("why", out, "--metric", "total", "--date", "2024-01-05", "--where", "node_type=unknown")
    assert ok.exit_code == 0 and "node-hours — ✓ matches daily.parquet" in ok.stdout


def test_why_lists_ids_as_a_person_counts(tmp_path):
    simulate(tmp_path / "raw", seed=1, hosts=14, days=10)
    out = tmp_path / "out"
    assert run_cli("run", SPECS, "--data", tmp_path / "raw", "--out", out, "--no-report").exit_code == 0
    result = run_cli("why", out, "--metric", "total", "--date", "2024-01-05", "--json")
    ids = [s["entity_id"] for s in json.loads(result.stdout)["spans"]]
    assert len(ids) >= 12 and ids == sorted(ids, key=int)  # 2 before 10, not "10" before "2"


def test_a_run_from_another_directory_finds_the_sites_file_beside_the_specs(tmp_path):
    # the demo site of etc/sites.yaml beside specs/, whatever the current directory
    cmd = [
        sys.executable,
        "-m",
        "engine",
        "run",
        str(ROOT / "specs"),
        "--site",
        "demo_edge",
        "--out",
        str(tmp_path / "o"),
        "--no-report",
        "--json",
    ]
    elsewhere = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert elsewhere.returncode == 0, elsewhere.stderr
    m = json.loads(elsewhere.stdout)
    assert m["sites"] == str(ROOT / "etc" / "sites.yaml") and m["site_name"] == "Simulated edge site (demo)"
    assert m["exclusions"]["file"] == str(ROOT / "etc" / "exclusions.yaml")
    assert set(n for n, e in m["entities"].items() if e["status"] == "ok") == {
        "device",
        "reservable_device",
        "device_allocation",
        "container",
    }
    here = run_cli("run", "specs", "--site", "demo_edge", "--out", tmp_path / "p", "--no-report")  # tests run at ROOT
    assert here.exit_code == 0
    for name in ("daily.parquet", "usage.parquet"):
        assert pl.read_parquet(tmp_path / "o" / name).equals(pl.read_parquet(tmp_path / "p" / name))


def test_without_a_sites_file_beside_the_specs_a_run_needs_data(tmp_path, specs_copy):
    result = run_cli("run", specs_copy, "--out", tmp_path / "out")
    assert one_error(result) == (
        f"{tmp_path / 'etc' / 'sites.yaml'}: no sites file beside the specs; give --data RAW_DIR or --sites FILE"
    )


def test_progress_reports_every_stage_in_order(tmp_path, raw):
    seen: list[tuple[str, str | None]] = []
    cfg = RunConfig(
        specs=str(SPECS),
        data=str(raw),
        out=str(tmp_path / "out"),
        start=datetime(2024, 1, 1),
        end=datetime(2024, 1, 31),
    )
    run(cfg, hooks=[Progress(lambda stage, item=None: seen.append((stage, item)))])
    # the tiny site has no legacy report: no comparison stage
    assert list(dict.fromkeys(stage for stage, _ in seen)) == [
        "load",
        "lookups",
        "spans",
        "hierarchy",
        "reports",
        "checkpoints",
        "sweep",
        "breakdowns",
        "report",
    ]
    assert ("spans", "nova_host") in seen and ("hierarchy", "reserved_instance") in seen
    assert seen.index(("spans", "nova_host")) < seen.index(("spans", "blazar_host"))  # parents first
    # a lookup is built once, just before the first entity that reads it
    assert [s for s in seen if s == ("lookups", "instance_events")] == [("lookups", "instance_events")]
    assert seen.index(("lookups", "instance_events")) < seen.index(("spans", "ondemand_instance"))
    assert seen.index(("reports", "lease_lead_time")) > seen.index(("hierarchy", "allocation"))


def test_the_summary_gives_node_hours_per_entity_and_every_file_written(tmp_path):
    simulate(tmp_path / "raw", seed=1, hosts=16, days=20, kind="kvm")
    entities = "nova_host,blazar_host,slice_allocation,kvm_reserved_instance,kvm_ondemand_instance"
    (tmp_path / "sites.yaml").write_text(f"sites:\n  k:\n    name: kvm\n    data: raw\n    entities: [{entities}]\n")
    result = run_cli(
        "run", SPECS, "--sites", tmp_path / "sites.yaml", "--site", "k", "--out", tmp_path / "out", "--resample", "7d"
    )
    assert result.exit_code == 0, result.stderr
    assert "node-hours counted" in result.stdout
    m = json.loads((tmp_path / "out" / "manifest.json").read_text())
    slots = pl.read_parquet(tmp_path / "out" / "validated" / "slice_allocation.parquet")
    window = [datetime.fromisoformat(m["window"][k]) for k in ("start", "end")]
    counted = slots.filter(pl.col("hierarchy_status") != "orphan").with_columns(
        pl.max_horizontal("valid_start", pl.lit(window[0])).alias("s"),
        pl.min_horizontal(pl.col("valid_end").fill_null(window[1]), pl.lit(window[1])).alias("e"),
    )
    inside = ((pl.col("e") - pl.col("s")).dt.total_seconds() / 3600).clip(lower_bound=0)  # a slot before the window: 0
    node_hours = counted.select((inside * pl.col("nodes")).sum()).item()
    assert m["entities"]["slice_allocation"]["node_hours"] == pytest.approx(node_hours)
    assert node_hours < m["entities"]["slice_allocation"]["hours"]["counted"]  # a slot is a share of its host
    line = next(x for x in result.stdout.splitlines() if x.startswith("✓ outputs in"))
    for name in ("daily.parquet", "usage.parquet", "manifest.json", "report.html", "resampled_7d.parquet", "inactive/"):
        assert name in line


def test_resampled_buckets_start_at_the_window_start(tmp_path, raw):
    args = ["--start", "2024-01-03", "--end", "2024-01-31", "--resample", "7d", "--no-report"]  # a Wednesday
    assert run_cli("run", SPECS, "--data", raw, "--out", tmp_path / "out", *args).exit_code == 0
    weeks = pl.read_parquet(tmp_path / "out" / "resampled_7d.parquet")
    assert weeks["bucket"].min() == datetime(2024, 1, 3)
    daily = pl.read_parquet(tmp_path / "out" / "daily.parquet")
    assert weeks["hours"].sum() == pytest.approx(daily["hours"].sum())
