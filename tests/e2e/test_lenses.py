"""Effective and projected lenses on a hand-made lease history (times in days after 2024-01-01)."""

import json
from datetime import timedelta

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import SPECS, run_cli
from tests.rawdata import day, lease_history_site, tiny_site, write_raw

HISTORY = """    required: true
    history: {table: blazar.lease_versions, key: lease_id, recorded_at: recorded_at, columns: [start_date, end_date]}
"""
ENTITIES = "[nova_host, blazar_host, allocation]"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    base = tmp_path_factory.mktemp("lens")
    write_raw(base / "raw", lease_history_site())
    specs = base / "specs"
    specs.mkdir()
    for path in SPECS.rglob("*.yaml"):
        target = specs / path.relative_to(SPECS)
        target.parent.mkdir(parents=True, exist_ok=True)
        text = path.read_text()
        if path.name == "allocation.yaml":  # declare the lease history table on the lease join
            text = text.replace(
                "    on: {r.lease_id: id}\n    required: true\n", "    on: {r.lease_id: id}\n" + HISTORY
            )
        target.write_text(text)
    (base / "sites.yaml").write_text(f"sites:\n  s:\n    name: s\n    data: raw\n    entities: {ENTITIES}\n")
    return base


def run(base, name, *lens):
    args = [
        "--sites",
        base / "sites.yaml",
        "--site",
        "s",
        "--out",
        base / name,
        "--start",
        "2024-01-01",
        "--end",
        "2024-01-21",
    ]
    result = run_cli("run", base / "specs", *args, *lens)
    assert result.exit_code == 0, result.stderr
    m = json.loads((base / name / "manifest.json").read_text())
    allocs = pl.read_parquet(base / name / "validated" / "allocation.parquet")
    return m, {
        r["entity_id"]: (r["valid_start"], r["valid_end"], r["tx_uncertain"]) for r in allocs.iter_rows(named=True)
    }


def committed(m):
    return m["metrics"].get("committed", {}).get("nodes", 0.0)


def test_effective_lens_is_what_happened(site):
    m, allocs = run(site, "effective")
    assert allocs == {"A1": (day(10), day(13), False), "A2": (day(7), day(8), False)}  # L1 deleted on d13
    assert committed(m) == 72 + 24


def test_as_of_day_5_the_lease_ends_on_its_first_planned_day_and_l2_is_not_booked_yet(site):
    m, allocs = run(site, "d5", "--lens", "projected", "--as-of", "2024-01-06")
    assert allocs == {"A1": (day(10), day(12), False)}  # the d1 version: planned end d12, not deleted yet
    assert committed(m) == 48
    assert m["entities"]["allocation"]["not_recorded"] == 1
    inv12 = next(i for i in m["invariants"] if (i["id"], i["entity"]) == ("INV-12", "allocation"))
    assert (inv12["status"], inv12["handled"]) == ("pass", 1)


@pytest.mark.parametrize("as_of", ["2024-01-12", "2024-01-13"])
def test_as_of_days_11_and_12_the_extension_is_known_and_the_deletion_is_not(site, as_of):
    m, allocs = run(site, f"p{as_of}", "--lens", "projected", "--as-of", as_of)
    assert allocs == {"A1": (day(10), day(14), False), "A2": (day(7), day(8), False)}
    assert committed(m) == 96 + 24


def test_after_every_recorded_time_projected_equals_effective(site):
    run(site, "late", "--lens", "projected", "--as-of", "2030-01-01")
    for output in ("daily.parquet", "usage.parquet"):
        assert pl.read_parquet(site / "late" / output).equals(pl.read_parquet(site / "effective" / output))


def test_without_history_a_later_change_is_flagged_tx_uncertain(tmp_path):
    raw = write_raw(tmp_path / "raw", lease_history_site())
    (tmp_path / "sites.yaml").write_text(f"sites:\n  s:\n    name: s\n    data: raw\n    entities: {ENTITIES}\n")
    args = ["--sites", tmp_path / "sites.yaml", "--site", "s", "--out", tmp_path / "out", "--lens", "projected"]
    assert run_cli("run", SPECS, *args, "--as-of", "2024-01-06").exit_code == 0, raw
    m = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert m["entities"]["allocation"]["tx_uncertain"] == 1  # L1 was changed (d13) after the as-of time


def test_as_of_series_writes_one_snapshot_per_step(site):
    run(site, "series", "--as-of-series", "7d")
    daily = pl.read_parquet(site / "series" / "as_of_daily.parquet")
    assert daily["as_of"].unique().sort().to_list() == [day(7), day(14)]
    booked = daily.filter((pl.col("metric") == "committed") & (pl.col("resource") == "nodes"))
    totals = dict(booked.group_by("as_of").agg(pl.col("hours").sum()).iter_rows())
    # as of d7: L1 (planned d10-12) and L2 (d7-8); as of d14: L1 extended to d14 but deleted d13 (known) + L2
    assert totals == {day(7): 48 + 24, day(14): 72 + 24}


stamps = st.integers(0, 30).map(day)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(stamps, stamps, st.integers(1, 5), st.booleans()), max_size=6))
def test_property_projected_after_every_recorded_time_equals_effective(tmp_path_factory, leases):
    base = tmp_path_factory.mktemp("p")
    tables = tiny_site()
    tables["blazar.leases"] = [
        {
            "id": f"L{i}",
            "start_date": start,
            "end_date": start + timedelta(days=d),
            "created_at": made,
            "deleted_at": start + timedelta(hours=12) if gone else None,
            "updated_at": made,
        }
        for i, (start, made, d, gone) in enumerate(leases)
    ] or tables["blazar.leases"]
    n = len(tables["blazar.leases"])
    tables["blazar.reservations"] = [
        {"id": f"R{i}", "lease_id": f"L{i}", "resource_type": "physical:host"} for i in range(n)
    ]
    tables["blazar.computehost_allocations"] = [
        {"id": f"A{i}", "compute_host_id": "10", "reservation_id": f"R{i}", "created_at": day(0), "deleted_at": None}
        for i in range(n)
    ]
    raw = write_raw(base / "raw", tables)
    window = ["--start", "2024-01-01", "--end", "2024-02-15"]
    assert run_cli("run", SPECS, "--data", raw, "--out", base / "e", *window).exit_code == 0
    assert (
        run_cli(
            "run", SPECS, "--data", raw, "--out", base / "p", *window, "--lens", "projected", "--as-of", "2031-01-01"
        ).exit_code
        == 0
    )
    assert pl.read_parquet(base / "p" / "daily.parquet").equals(pl.read_parquet(base / "e" / "daily.parquet"))
