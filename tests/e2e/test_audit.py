"""`engine trace` and `engine why` on the tiny hand-made site: any row followed, any cell taken apart."""

import json

import polars as pl
import pytest

from engine.audit import why
from tests.conftest import SPECS, run_cli
from tests.rawdata import day, tiny_site, write_raw


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    base = tmp_path_factory.mktemp("audit")
    raw = write_raw(base / "raw", tiny_site())
    assert (
        run_cli(
            "run", SPECS, "--data", raw, "--out", base / "out", "--start", "2024-01-01", "--end", "2024-01-31"
        ).exit_code
        == 0
    )
    return base / "out"


def test_trace_follows_a_clamped_row_to_its_parent_and_hours(out):
    t = json.loads(run_cli("trace", out, "reserved_instance", "I5", "--json").stdout)
    assert t["raw"][0]["node"] == "h1" and t["rejected"] == []
    assert [(v["valid_start"], v["valid_end"], v["hierarchy_status"]) for v in t["validated"]] == [
        (str(day(4.5)), str(day(5)), "clamped")
    ]
    assert [(p["entity"], p["entity_id"]) for p in t["parents"]] == [("allocation", "A1")]
    assert t["hours_per_day"] == [{"date": str(day(4).date()), "hours": 12.0}]


def test_trace_shows_a_rejection_with_its_reason(out):
    result = run_cli("trace", out, "nova_host", "5")
    assert (
        "rejected (a defect): duplicate — covered by entity_id 1 with the same identity (hypervisor_hostname=h1)"
        in result.stdout
    )


def test_trace_of_an_unknown_row_or_entity_is_a_clear_error(out):
    assert "nova_host 77: no such row" in run_cli("trace", out, "nova_host", "77").stderr
    assert "unknown entity 'nova_hots' (did you mean 'nova_host'?)" in run_cli("trace", out, "nova_hots", "1").stderr


def test_why_takes_a_derived_cell_apart(out):
    result = run_cli("why", out, "--metric", "idle", "--date", "2024-01-03", "--where", "node_type=compute_skylake")
    assert "2 spans, total 12 node-hours — ✓ matches daily.parquet (12)" in result.stdout


def test_every_daily_cell_is_the_sum_of_its_spans(out):
    daily = pl.read_parquet(out / "daily.parquet").filter((pl.col("resource") == "nodes") & (pl.col("hours") != 0))
    for row in daily.iter_rows(named=True):
        cell = why(out, row["metric"], row["date"], where={"node_type": row["node_type"]})
        assert cell["matches"] and cell["total"] == pytest.approx(row["hours"]), row
