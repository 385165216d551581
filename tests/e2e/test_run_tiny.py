"""`engine run` on a hand-made raw directory with one row of every rejection reason and hierarchy status.

Every expected value below is worked out by hand from tests/rawdata.py:tiny_site (times in days after
2024-01-01, window d0..d30 = 720 h).
"""

import json

import polars as pl
import pytest

from tests.conftest import SPECS, run_cli
from tests.rawdata import day, tiny_site, write_raw


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    base = tmp_path_factory.mktemp("tiny")
    raw = write_raw(base / "tiny", tiny_site())
    result = run_cli("run", SPECS, "--data", raw, "--out", base / "out", "--start", "2024-01-01", "--end", "2024-01-31")
    assert result.exit_code == 0, result.output + result.stderr
    return base / "out"


def manifest(run_dir):
    return json.loads((run_dir / "manifest.json").read_text())


def frame(run_dir, stage, entity):
    return pl.read_parquet(run_dir / stage / f"{entity}.parquet")


def by_id(df):
    return {r["entity_id"]: r for r in df.iter_rows(named=True)}


def test_every_row_is_accounted_for(run_dir):
    entities = manifest(run_dir)["entities"]
    expected = {  # input, out of scope, accepted, rejected by reason (defects), inactive by reason
        "nova_host": (6, 0, 3, {"duplicate": 1, "invalid_time_range": 1, "null_start": 1}, {}),
        "blazar_host": (4, 0, 3, {"missing_fk": 1}, {}),
        "allocation": (5, 1, 3, {"missing_fk": 1}, {}),
        "reserved_instance": (5, 2, 2, {}, {"never_launched": 1}),  # I2 never ran: no defect
        "ondemand_instance": (5, 3, 2, {}, {}),
    }
    for name, counts in expected.items():
        e = entities[name]
        keys = ("input_rows", "out_of_scope", "accepted", "rejected_by_reason", "inactive_by_reason")
        assert tuple(e[k] for k in keys) == counts, name
        assert e["input_rows"] == e["accepted"] + e["rejected"] + e["inactive"] + e["out_of_scope"]


def test_hierarchy_statuses(run_dir):
    entities = manifest(run_dir)["entities"]
    assert entities["nova_host"]["hierarchy"] == {"root": 3}
    assert entities["blazar_host"]["hierarchy"] == {"clamped": 1, "direct": 1, "orphan": 1}
    assert entities["allocation"]["hierarchy"] == {"clamped": 1, "direct": 2}
    assert entities["reserved_instance"]["hierarchy"] == {"clamped": 1, "direct": 1}
    assert entities["allocation"]["duplicates_clamped"] == 1


def test_hour_accounts(run_dir):
    entities = manifest(run_dir)["entities"]
    # nova: h1 [0,30) + h2 [0,20) + h5 [0,30) = 1920 h; row 5 (duplicate of h1) [2,30) = 672 h rejected
    assert entities["nova_host"]["hours"] | {} == {
        "input": 2592.0,
        "accepted": 1920.0,
        "counted": 1920.0,
        "clamped_away": 0.0,
        "orphaned": 0.0,
        "rejected": 672.0,
        "inactive": 0.0,
        "clamped_by_duplicates": 0.0,
        "clamped_by_parent": 0.0,
    }
    # blazar: 10 [1,30) 696 h; 11 [1,21) cut to [1,20): 456 h counted, 24 away; 12 missing_fk 696 h; 13 orphan 48 h
    h = entities["blazar_host"]["hours"]
    assert (h["input"], h["counted"], h["clamped_away"], h["orphaned"], h["rejected"]) == (1920, 1152, 24, 48, 696)
    # allocation: A1 [2,5) 72; A2 [3,8) cut to [5,8) by A1: 72 counted, 48 away; A5 [18,23) cut to [18,20): 48, 72 away
    h = entities["allocation"]["hours"]
    assert (h["input"], h["counted"], h["clamped_by_duplicates"], h["clamped_by_parent"]) == (312, 192, 48, 72)
    # reserved: I1 [2.5,4) 36; I5 [4.5,7) cut to its allocation's end d5: 12 counted, 48 away; I2 never launched 12
    h = entities["reserved_instance"]["hours"]
    assert (h["input"], h["counted"], h["clamped_away"], h["rejected"], h["inactive"]) == (108, 48, 48, 0, 12)
    for e in (e for e in entities.values() if e["status"] == "ok"):
        h = e["hours"]
        parts = h["counted"] + h["clamped_away"] + h["orphaned"] + h["rejected"] + h["inactive"]
        assert h["input"] == pytest.approx(parts)


def test_clamped_rows_keep_original_times_and_orphans_are_untouched(run_dir):
    hosts = by_id(frame(run_dir, "validated", "blazar_host"))
    assert (hosts["11"]["valid_start"], hosts["11"]["valid_end"]) == (day(1), day(20))
    assert (hosts["11"]["original_start"], hosts["11"]["original_end"]) == (day(1), day(21))
    assert hosts["13"]["hierarchy_status"] == "orphan"
    assert (hosts["13"]["valid_start"], hosts["13"]["valid_end"], hosts["13"]["original_start"]) == (
        day(22),
        day(24),
        None,
    )
    allocs = by_id(frame(run_dir, "validated", "allocation"))
    assert (allocs["A2"]["valid_start"], allocs["A2"]["valid_end"]) == (day(5), day(8))
    assert (allocs["A2"]["original_start"], allocs["A2"]["original_end"]) == (day(3), day(8))
    assert (allocs["A5"]["valid_end"], allocs["A5"]["hierarchy_status"]) == (day(20), "clamped")
    reserved = by_id(frame(run_dir, "validated", "reserved_instance"))
    assert (reserved["I5"]["valid_start"], reserved["I5"]["valid_end"]) == (day(4.5), day(5))


def test_lookups_resolve_node_type_reservation_and_event_end(run_dir):
    hosts = by_id(frame(run_dir, "validated", "blazar_host"))
    assert hosts["10"]["node_type"] == "compute_skylake"
    nova = by_id(frame(run_dir, "validated", "nova_host"))
    assert (nova["2"]["node_type"], nova["6"]["node_type"]) == ("gpu_v100", "unknown")
    ondemand = by_id(frame(run_dir, "validated", "ondemand_instance"))
    # I4: node null, recovered from its last compute_* event; no terminated_at, ends at its terminate event
    assert (ondemand["I4"]["hypervisor_hostname"], ondemand["I4"]["valid_end"]) == ("h5", day(6))
    reserved = by_id(frame(run_dir, "validated", "reserved_instance"))
    assert reserved["I1"]["reservation_id"] == "R1" and reserved["I1"]["node_type"] == "compute_skylake"


def test_rejections_carry_reason_detail_and_raw_columns(run_dir):
    nova = by_id(frame(run_dir, "rejected", "nova_host"))
    assert nova["5"]["rejection_detail"] == "covered by entity_id 1 with the same identity (hypervisor_hostname=h1)"
    assert nova["3"]["rejection_detail"] == "valid.start (created_at) is null"
    assert nova["4"]["hypervisor_hostname"] == "h4"  # raw columns kept
    alloc = by_id(frame(run_dir, "rejected", "allocation"))
    assert alloc["A3"]["rejection_detail"] == "r: no blazar.reservations row with id=R404"
    hosts = by_id(frame(run_dir, "rejected", "blazar_host"))
    assert hosts["12"]["rejection_detail"] == "parent: no accepted nova_host with hypervisor_hostname=h9"
    assert "I2" not in by_id(frame(run_dir, "rejected", "reserved_instance"))
    never = by_id(frame(run_dir, "inactive", "reserved_instance"))
    assert never["I2"]["inactive_reason"] == "never_launched" and never["I2"]["node"] == "h1"


def test_manifest_shape_and_invariants(run_dir):
    m = manifest(run_dir)
    assert m["tables"]["nova.compute_nodes"] == 6 and m["tables"]["nova_api.request_specs"] == 5
    assert m["window"] == {"start": "2024-01-01 00:00:00", "end": "2024-01-31 00:00:00"}
    assert len(m["specs_sha256"]) == 64 and set(m["timings"]) >= {"spans", "hierarchy"}
    ids = {(i["id"], i["entity"]) for i in m["invariants"]}
    assert ("INV-3", "nova_host") in ids and ("INV-4", "reserved_instance") in ids and ("INV-10", "allocation") in ids
    assert [i for i in m["invariants"] if i["status"] != "pass"] == []
    inv7 = next(i for i in m["invariants"] if (i["id"], i["entity"]) == ("INV-7", "allocation"))
    assert inv7["handled"] == 1
    for stage in ("spans", "validated", "rejected"):
        assert (run_dir / stage / "allocation.parquet").is_file()


def test_a_missing_table_skips_its_entities_and_the_rest_run(tmp_path):
    tables = tiny_site()
    del tables["nova.instances"]
    raw = write_raw(tmp_path / "raw", tables)
    result = run_cli("run", SPECS, "--data", raw, "--out", tmp_path / "out", "--json")
    assert result.exit_code == 0, result.stderr
    m = json.loads(result.stdout)
    assert m["entities"]["reserved_instance"] == {"status": "skipped", "reason": "the site has no nova.instances"}
    assert m["entities"]["allocation"]["status"] == "ok"
    assert "entity ondemand_instance not run: the site has no nova.instances" in m["notices"]
    assert m["warnings"] == []  # a service the site does not have is no warning


def test_a_failed_run_leaves_the_previous_output_untouched(tmp_path, specs_copy):
    raw = write_raw(tmp_path / "raw", tiny_site())
    out = tmp_path / "out"
    assert run_cli("run", SPECS, "--data", raw, "--out", out).exit_code == 0
    before = (out / "manifest.json").read_text()
    text = (specs_copy / "entities" / "allocation.yaml").read_text()
    (specs_copy / "entities" / "allocation.yaml").write_text(text.replace("l.end_date", "l.end_dat"))
    result = run_cli("run", specs_copy, "--data", raw, "--out", out)
    assert result.exit_code == 1
    assert (
        "joins" not in result.stderr
        and "valid.end: no column 'l.end_dat' in blazar.leases (did you mean 'l.end_date'?)" in result.stderr
    )
    assert (out / "manifest.json").read_text() == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_usage_stack_node_hours_by_hand(run_dir):
    m = manifest(run_dir)
    nodes = {metric: r["nodes"] for metric, r in m["metrics"].items() if "nodes" in r}
    assert nodes == {
        "total": 1920.0,
        "reservable": 1152.0,
        "committed": 192.0,
        "occupied_reservation": 48.0,
        "occupied_ondemand": 96.0,
        "ondemand_capacity": 768.0,
        "available_reservable": 960.0,
        "idle": 144.0,
        "available_ondemand": 672.0,
    }
    # allocations inherit the host's 48 vCPUs from the Blazar host, which inherits them from Nova
    assert m["metrics"]["available_reservable"]["vcpus"] == (1152 - 192) * 48
    assert {(i["id"], i["status"]) for i in m["invariants"] if i["entity"] is None} == {
        ("INV-8", "pass"),
        ("INV-9", "pass"),
        ("INV-10", "pass"),
        ("INV-13", "pass"),
        ("INV-14", "pass"),
        ("INV-15", "pass"),
    }
    # I1, I2 (never active) and I5 are reserved instances, I3 and I4 on-demand ones; none is KVM's
    shared = {i["table"]: i["detail"] for i in m["invariants"] if i["id"] == "INV-13"}
    assert shared == {
        "nova.instances": "nova.instances: 5 rows = 0 kvm_ondemand_instance + 0 kvm_reserved_instance + "
        "2 ondemand_instance + 3 reserved_instance",
        # A3 (its reservation gone) is the whole-host entity's by its rank; A4 is a KVM slot
        "blazar.computehost_allocations": "blazar.computehost_allocations: 5 rows = 4 allocation + 1 slice_allocation",
    }


def test_a_derived_metric_counts_a_base_metric_without_spans_as_zero(tmp_path):
    """In d14..d31 no instance runs: idle is committed (48) and available_ondemand ondemand_capacity (384). Both
    vanished from every output before (a derived metric needed spans of every base metric in the window),
    with every invariant passing; so did available_reservable (reservable, 1,176) with no allocation at all."""
    tables = tiny_site()
    raw = write_raw(tmp_path / "raw", tables)
    args = ("--data", raw, "--out", tmp_path / "out", "--no-report", "--json")
    nodes = json.loads(run_cli("run", SPECS, *args, "--start", "2024-01-15", "--end", "2024-02-01").stdout)["metrics"]
    assert (nodes["committed"]["nodes"], nodes["idle"]["nodes"]) == (48.0, 48.0)
    assert (nodes["ondemand_capacity"]["nodes"], nodes["available_ondemand"]["nodes"]) == (384.0, 384.0)
    assert "occupied_reservation" not in nodes and "occupied_ondemand" not in nodes
    daily = pl.read_parquet(tmp_path / "out" / "daily.parquet").filter(pl.col("resource") == "nodes")
    assert daily.filter(pl.col("metric") == "idle")["hours"].sum() == 48.0
    tables["blazar.computehost_allocations"] = []
    write_raw(
        raw,
        tables,
        {
            "blazar.computehost_allocations": pl.read_parquet(
                tmp_path / "raw" / "blazar.computehost_allocations.parquet"
            ).schema
        },
    )
    nodes = json.loads(run_cli("run", SPECS, *args, "--start", "2024-01-01", "--end", "2024-01-31").stdout)["metrics"]
    assert nodes["available_reservable"]["nodes"] == nodes["reservable"]["nodes"] == 1152.0


def test_daily_hours_and_usage_steps(run_dir):
    daily = pl.read_parquet(run_dir / "daily.parquet").filter(pl.col("resource") == "nodes")
    cell = lambda metric, d, nt: daily.filter(  # noqa: E731
        (pl.col("metric") == metric) & (pl.col("date") == day(d).date()) & (pl.col("node_type") == nt)
    )["hours"].to_list()
    # day 2: A1 committed [2,5) on h1 all day; day 4: A1 until d5 then A2 from d5 (cut) = 24
    assert cell("committed", 2, "compute_skylake") == [24.0]
    assert cell("committed", 4, "compute_skylake") == [24.0]
    # day 2: I1 from d2.5 = 12 h occupied; idle = 24 - 12
    assert cell("occupied_reservation", 2, "compute_skylake") == [12.0]
    assert cell("idle", 2, "compute_skylake") == [12.0]
    assert daily["date"].n_unique() == 30
    usage = pl.read_parquet(run_dir / "usage.parquet")
    steps = usage.filter(
        (pl.col("metric") == "committed") & (pl.col("resource") == "nodes") & (pl.col("node_type") == "gpu_v100")
    )
    assert steps.select("timestamp", "value").rows() == [(day(18), 1.0), (day(20), 0.0)]


def test_resampled_buckets_hold_the_same_hours_and_a_mean_level(tmp_path):
    raw = write_raw(tmp_path / "raw", tiny_site())
    args = ["--start", "2024-01-01", "--end", "2024-01-31", "--resample", "7d", "--resample", "1mo"]
    assert run_cli("run", SPECS, "--data", raw, "--out", tmp_path / "out", *args).exit_code == 0
    daily = pl.read_parquet(tmp_path / "out" / "daily.parquet")
    for every in ("7d", "1mo"):
        table = pl.read_parquet(tmp_path / "out" / f"resampled_{every}.parquet")
        assert table["hours"].sum() == pytest.approx(daily["hours"].sum())
    month = pl.read_parquet(tmp_path / "out" / "resampled_1mo.parquet").filter(
        (pl.col("metric") == "total") & (pl.col("resource") == "nodes") & (pl.col("node_type") == "unknown")
    )
    # h5 (no node type) exists all 30 days of the window: mean level 1 node over the 720 h in the window
    assert month.select("bucket", "hours", "mean").rows() == [(day(0), 720.0, 1.0)]


def test_lead_time_reports(run_dir):
    leases = {
        r["lease_id"]: r for r in pl.read_parquet(run_dir / "reports" / "lease_lead_time.parquet").iter_rows(named=True)
    }
    # L1 booked d1 for d2; L2 booked d1.5 for d3 but its host was committed to L1 until d5; L4 booked d1 for d18
    assert {k: (r["requested_lead_hours"], r["effective_lead_hours"]) for k, r in leases.items()} == {
        "L1": (24.0, 24.0),
        "L2": (36.0, 84.0),
        "L4": (408.0, 408.0),
    }
    daily = pl.read_parquet(run_dir / "reports" / "lead_time_daily.parquet").sort("node_type")
    assert daily.select("date", "node_type", "leases", "requested_median_hours", "effective_median_hours").rows() == [
        (day(1).date(), "compute_skylake", 2, 30.0, 54.0),
        (day(1).date(), "gpu_v100", 1, 408.0, 408.0),
    ]
