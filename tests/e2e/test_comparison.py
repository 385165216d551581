"""Legacy comparison: flags exactly the cells the simulator perturbed, and explains gaps from the audit."""

import json

import polars as pl

from simulator.chameleon import simulate
from tests.conftest import SPECS, run_cli
from tests.rawdata import day, tiny_site, write_raw


def test_flags_exactly_the_perturbed_days_and_nothing_else(tmp_path):
    simulate(tmp_path / "raw", seed=3, hosts=40, days=60)
    result = run_cli(
        "run",
        SPECS,
        "--data",
        tmp_path / "raw",
        "--out",
        tmp_path / "out",
        "--start",
        "2024-01-01",
        "--end",
        "2024-03-01",
    )
    assert result.exit_code == 0, result.stderr
    comparison = pl.read_parquet(tmp_path / "out" / "comparison.parquet")
    meta = json.loads((tmp_path / "raw" / "simulation" / "simulation.json").read_text())
    perturbed = {(p["date"], p["node_type"]) for p in meta["legacy_perturbed"] if p["truth"] != p["legacy"]}
    flagged = comparison.filter("flagged")
    assert {(str(d), nt) for d, nt in flagged.select("date", "node_type").rows()} == perturbed
    assert comparison.filter(~pl.col("flagged"))["diff_hours"].abs().max() < 1e-6  # elsewhere: exactly the truth
    cells = comparison.select("legacy_hours", "diff_hours", "rel_diff").rows()
    assert any(legacy == 0 and diff == 0 for legacy, diff, _ in cells)
    for legacy, diff, rel in cells:  # before: NaN where both were 0 ("nan%" in the report), inf where one was
        assert rel == (diff / abs(legacy) if legacy else 0.0 if diff == 0 else None)
    m = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert m["comparison"]["flagged"] == flagged.height and len(m["comparison"]["largest"]) == min(10, flagged.height)
    assert "largest gaps with the legacy report" in result.stdout


def test_a_gap_is_explained_by_the_rows_the_audit_took_out(tmp_path):
    tables = tiny_site()
    # The legacy report counted host h1 twice on d3 (48 h): the duplicate compute_nodes row we rejected.
    tables["chameleon_usage.node_usage_report_cache"] = [
        {
            "date": day(3),
            "node_type": "compute_skylake",
            "total_hours": 48.0,
            "maint_hours": 24.0,
            "reserved_hours": 0.0,
            "used_hours": 24.0,
            "idle_hours": 0.0,
        }
    ]
    raw = write_raw(tmp_path / "raw", tables)
    assert (
        run_cli(
            "run", SPECS, "--data", raw, "--out", tmp_path / "out", "--start", "2024-01-01", "--end", "2024-01-31"
        ).exit_code
        == 0
    )
    cell = pl.read_parquet(tmp_path / "out" / "comparison.parquet").filter(
        (pl.col("date") == day(3).date()) & (pl.col("node_type") == "compute_skylake")
    )
    rows = {r["metric"]: r for r in cell.iter_rows(named=True)}
    assert (rows["total"]["engine_hours"], rows["total"]["legacy_hours"], rows["total"]["flagged"]) == (
        24.0,
        48.0,
        True,
    )
    assert "nova_host duplicate: 1 rows, 24.0 h" in rows["total"]["explanation"]
    assert not any(
        rows[m]["flagged"] for m in ("reservable", "committed", "occupied_reservation", "available_reservable")
    )


def test_a_legacy_table_holding_a_cell_twice_is_a_warning(tmp_path):
    """A legacy table loaded twice doubled every figure (286 of 400 cells flagged), without a word."""
    row = {"date": day(3), "node_type": "compute_skylake", "total_hours": 24.0, "maint_hours": 0.0}
    row |= {"reserved_hours": 0.0, "used_hours": 0.0, "idle_hours": 0.0}
    tables = tiny_site() | {"chameleon_usage.node_usage_report_cache": [row, row, row | {"date": day(4)}]}
    raw = write_raw(tmp_path / "raw", tables)
    window = ["--start", "2024-01-01", "--end", "2024-01-31"]
    result = run_cli("run", SPECS, "--data", raw, "--out", tmp_path / "out", "--no-report", "--json", *window)
    assert result.exit_code == 0, result.stderr
    assert (
        "specs/metrics.yaml: legacy: 1 (date, node_type) cells of chameleon_usage.node_usage_report_cache hold several "
        "rows, whose hours are summed (a table loaded twice doubles every figure)"
    ) in json.loads(result.stdout)["warnings"]
