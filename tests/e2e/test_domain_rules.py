"""The messy rules of real OpenStack data, each on a hand-made raw directory with a hand-worked answer.

Times are days after 2024-01-01; every run uses the window d0..d20 (480 h).
"""

import json

import polars as pl
import pytest

from tests.conftest import SPECS, run_cli
from tests.rawdata import day, edge_site, kvm_site, lifecycle_site, write_raw


def run_site(tmp_path, tables):
    raw = write_raw(tmp_path / "raw", tables)
    result = run_cli(
        "run", SPECS, "--data", raw, "--out", tmp_path / "out", "--start", "2024-01-01", "--end", "2024-01-21"
    )
    assert result.exit_code == 0, result.stderr
    return tmp_path / "out", json.loads((tmp_path / "out" / "manifest.json").read_text())


def rows(out, entity):
    return {r["entity_id"]: r for r in pl.read_parquet(out / "validated" / f"{entity}.parquet").iter_rows(named=True)}


def node_hours(manifest):
    return {m: r["nodes"] for m, r in manifest["metrics"].items() if "nodes" in r}


def test_instance_end_and_host_come_from_action_events(tmp_path):
    out, m = run_site(tmp_path, lifecycle_site())
    got = {
        k: (r["hypervisor_hostname"], r["valid_start"], r["valid_end"])
        for k, r in rows(out, "ondemand_instance").items()
    }
    assert got == {
        "E1": ("h1", day(1), day(5)),  # terminate after the last unshelve
        "E2": ("h2", day(1), day(4)),  # the shelve after the last unshelve ends it, not the later terminate
        "E3": ("h3", day(1), day(6)),  # a failed terminate event does not count
        "E4": ("h4", day(1), day(8)),  # node recovered from its compute_* event, not the controller's
        "E5": ("h5", day(1), day(6)),  # earliest of terminated_at and deleted_at
    }
    assert [i for i in m["invariants"] if i["status"] != "pass"] == []


@pytest.fixture(scope="module")
def kvm(tmp_path_factory):
    return run_site(tmp_path_factory.mktemp("kvm"), kvm_site())


def test_kvm_slots_and_instances_count_fractions_of_the_host_as_enrolled(kvm):
    out, m = kvm
    slots = rows(out, "slice_allocation")
    assert {k: (r["nodes"], r["valid_start"], r["valid_end"]) for k, r in slots.items()} == {
        "S1": (8 / 48, day(2), day(12)),
        "S2": (8 / 48, day(2), day(12)),
    }
    reserved = rows(out, "kvm_reserved_instance")
    assert (reserved["K1"]["nodes"], reserved["K1"]["hierarchy_status"]) == (8 / 48, "direct")  # once, not per slot
    assert (reserved["K2"]["nodes"], reserved["K2"]["valid_end"], reserved["K2"]["original_end"]) == (
        8 / 96,
        day(12),
        day(14),
    )
    ondemand = rows(out, "kvm_ondemand_instance")
    assert (ondemand["K3"]["nodes"], ondemand["K3"]["valid_end"]) == (16 / 64, None)
    # K4 started before its host's first compute_nodes row: the earliest row gives its size
    assert (ondemand["K4"]["nodes"], ondemand["K4"]["valid_start"], ondemand["K4"]["hierarchy_status"]) == (
        0.5,
        day(0),
        "clamped",
    )


def test_kvm_node_hours_by_hand(kvm):
    _, m = kvm
    got = {k: pytest.approx(v) for k, v in node_hours(m).items()}
    # committed: 2 slots x 240 h x 1/6; occupied: K1 48 h x 1/6 + K2 24 h x 1/12; on demand: K3 456 h x 1/4 + K4 48 h x 1/2
    assert got | {} == {
        "total": 960,
        "reservable": 480,
        "committed": 80,
        "occupied_reservation": 10,
        "occupied_ondemand": 138,
        "ondemand_capacity": 480,
        "available_reservable": 400,
        "idle": 70,
        "available_ondemand": 342,
    }
    assert [i for i in m["invariants"] if i["status"] != "pass"] == []


def test_node_type_from_the_old_capability_schema(kvm):
    out, m = kvm
    nova = {r["hypervisor_hostname"]: r["node_type"] for r in rows(out, "nova_host").values()}
    assert nova == {"kvm-1": "compute_kvm", "kvm-2": "unknown"}
    assert any("blazar.resource_properties is missing" in w for w in m["warnings"])


def test_edge_devices_leases_and_containers(tmp_path):
    out, m = run_site(tmp_path, edge_site())
    containers = rows(out, "container")
    assert {k: (r["valid_start"], r["valid_end"], r["hierarchy_status"]) for k, r in containers.items()} == {
        "C1": (day(2), day(4), "direct"),  # Deleted: ends at its last update
        "C2": (day(4.5), day(5), "clamped"),  # still running: open, cut at the lease end
        "C3": (day(9), day(10), "clamped"),  # Stopped at d11 but its device was retired at d10
    }
    assert {r["device_name"]: r["node_type"] for r in rows(out, "device").values()} == {
        "rpi-1": "raspberrypi4-64",
        "rpi-2": "jetson-nano",
    }
    assert node_hours(m)["total"] == 720 and node_hours(m)["committed"] == 144
    assert node_hours(m)["occupied_reservation"] == 84 and node_hours(m)["available_reservable"] == 576
    assert [i for i in m["invariants"] if i["status"] != "pass"] == []
