"""The synthetic site: reproducible to the byte, in the upstream layout, with a consistent truth and real defects."""

import json
from datetime import datetime

import polars as pl
import pytest

from engine.simulate import DEFECTS, METRICS, simulate

S, N, F, B, T = pl.String, pl.Int64, pl.Float64, pl.Boolean, pl.Datetime("us")
SOFT = {"created_at": T, "updated_at": T, "deleted_at": T}
EXPECTED = {  # the upstream columns the engine and the legacy comparison read, with their types
    "nova.compute_nodes": {"id": N, "uuid": S, "hypervisor_hostname": S, "host": S, "hypervisor_type": S, "vcpus": N,
                           "memory_mb": N, "local_gb": N, "cpu_allocation_ratio": F, "ram_allocation_ratio": F, **SOFT,
                           "deleted": N},
    "blazar.computehosts": {"id": N, "hypervisor_hostname": S, "service_name": S, "vcpus": N, "memory_mb": N,
                            "local_gb": N, "hypervisor_type": S, "reservable": N, **SOFT, "deleted": N},
    "blazar.computehost_extra_capabilities": {"id": N, "computehost_id": N, "property_id": S, "capability_value": S,
                                              **SOFT, "deleted": N},
    "blazar.resource_properties": {"id": S, "resource_type": S, "property_name": S, "private": B, **SOFT, "deleted": S},
    "blazar.leases": {"id": S, "name": S, "user_id": S, "project_id": S, "start_date": T, "end_date": T, "status": S,
                      "degraded": B, **SOFT, "deleted": S},
    "blazar.reservations": {"id": S, "lease_id": S, "resource_id": S, "resource_type": S, "status": S,
                            "missing_resources": B, "resources_changed": B, **SOFT, "deleted": S},
    "blazar.computehost_allocations": {"id": S, "compute_host_id": S, "reservation_id": S, **SOFT, "deleted": S},
    "nova.instances": {"id": N, "uuid": S, "user_id": S, "project_id": S, "display_name": S, "host": S, "node": S,
                       "launched_at": T, "terminated_at": T, **SOFT, "deleted": N, "vcpus": N, "memory_mb": N,
                       "root_gb": N, "ephemeral_gb": N, "vm_state": S, "task_state": S, "reservation_id": S,
                       "instance_type_id": N},
    "nova_api.request_specs": {"id": N, "instance_uuid": S, "spec": S, "created_at": T, "updated_at": T},
    "nova.instance_actions": {"id": N, "action": S, "instance_uuid": S, "request_id": S, "user_id": S,
                              "project_id": S, "start_time": T, "finish_time": T, "message": S, **SOFT, "deleted": N},
    "nova.instance_actions_events": {"id": N, "event": S, "action_id": N, "start_time": T, "finish_time": T,
                                     "result": S, "traceback": S, **SOFT, "deleted": N, "host": S, "details": S},
    "chameleon_usage.node_usage_report_cache": {"date": T, "node_type": S, "total_hours": F, "maint_hours": F,
                                                "reserved_hours": F, "used_hours": F, "idle_hours": F},
}  # fmt: skip
HOSTS, DAYS = 12, 20


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """One small site shared by the read-only tests: (raw directory, simulation.json)."""
    raw = tmp_path_factory.mktemp("site")
    simulate(raw, seed=7, hosts=HOSTS, days=DAYS)
    return raw, json.loads((raw / "simulation" / "simulation.json").read_text())


def read(raw, table: str) -> pl.DataFrame:
    return pl.read_parquet(raw / f"{table}.parquet")


def files(path) -> dict:
    return {p.relative_to(path).as_posix(): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def test_same_seed_same_bytes_other_seed_other_data(tmp_path):
    a, b, c = (
        simulate(tmp_path / name, seed=seed, hosts=HOSTS, days=DAYS) for name, seed in (("a", 1), ("b", 1), ("c", 2))
    )
    assert a == b
    first, second, other = files(tmp_path / "a"), files(tmp_path / "b"), files(tmp_path / "c")
    assert len(first) == len(EXPECTED) + 2 and first == second
    assert first.keys() == other.keys()
    assert all(first[name] != other[name] for name in first)


def test_every_table_has_the_upstream_columns_and_types(site):
    raw, meta = site
    for table, schema in EXPECTED.items():
        frame = read(raw, table)
        assert dict(frame.schema) == schema, table
        assert frame.height == meta["tables"][table] > 0, table


def test_sizes_grow_with_the_site_as_documented(tmp_path):
    counts = simulate(tmp_path, hosts=40, days=120)["tables"]
    leases = counts["blazar.leases"]
    assert 0.8 * 40 * 120 / 7 < leases < 2 * 40 * 120 / 7
    assert counts["nova.instances"] > 1.8 * leases
    assert counts["nova.instance_actions_events"] > 4.5 * counts["nova.instances"]


def test_truth_is_a_complete_consistent_stack(site):
    raw, _ = site
    truth = pl.read_parquet(raw / "simulation" / "truth_daily.parquet")
    assert dict(truth.schema) == {"date": T, "node_type": S, "metric": S, "hours": F}
    types = truth["node_type"].unique()
    assert "unknown" in types and truth.height == DAYS * types.len() * len(METRICS)
    assert truth["date"].min() == datetime(2024, 1, 1) and truth["date"].dt.hour().max() == 0
    wide = truth.pivot("metric", index=["date", "node_type"], values="hours")
    eps = 1e-9
    assert (wide.select(pl.min_horizontal(METRICS)) >= 0).to_series().all()
    assert (wide["occupied_reservation"] <= wide["committed"] + eps).all()
    assert (wide["committed"] <= wide["reservable"] + eps).all()
    assert (wide["reservable"] <= wide["total"] + eps).all()
    assert (wide["occupied_ondemand"] <= wide["total"] - wide["reservable"] + eps).all()
    assert (wide["total"] <= 24 * HOSTS + eps).all()
    assert wide.filter(pl.col("node_type") != "unknown")["occupied_reservation"].sum() > 0
    assert wide.filter(pl.col("node_type") == "unknown")["occupied_ondemand"].sum() > 0


def test_legacy_report_is_the_truth_except_the_recorded_cells(site):
    raw, meta = site
    truth = pl.read_parquet(raw / "simulation" / "truth_daily.parquet")
    t = truth.pivot("metric", index=["date", "node_type"], values="hours")
    expected = t.select(
        "date", "node_type", total_hours="total", maint_hours=pl.col("total") - pl.col("reservable"),
        reserved_hours=pl.col("committed") - pl.col("occupied_reservation"), used_hours="occupied_reservation",
        idle_hours=pl.col("reservable") - pl.col("committed"),
    )  # fmt: skip
    legacy = read(raw, "chameleon_usage.node_usage_report_cache")
    both = expected.join(legacy, on=["date", "node_type"], suffix="_legacy")
    assert both.height == legacy.height == t.height
    perturbed = {(p["date"], p["node_type"], p["column"]): p for p in meta["legacy_perturbed"]}
    assert 5 <= len(perturbed) <= 8
    for col in expected.columns[2:]:
        diff = both.select(pl.col("date").dt.strftime("%Y-%m-%d"), "node_type", (pl.col(f"{col}_legacy") - pl.col(col)))
        for date, node_type, d in diff.rows():
            cell = perturbed.get((date, node_type, col))
            assert abs(d) > 1e-6 if cell else abs(d) < 1e-9, (date, node_type, col)
            if cell:
                assert cell["legacy"] == 0 or 1.2 <= cell["legacy"] / cell["truth"] <= 1.5


def test_every_defect_is_recorded_and_really_in_the_data(site):
    raw, meta = site
    found = meta["defects"]
    assert set(found) == set(DEFECTS) == set(meta["defect_tables"])
    assert all(found[kind] for kind in DEFECTS), found
    inst = read(raw, "nova.instances")
    picked = lambda kind: inst.filter(pl.col("uuid").is_in(found[kind]))  # noqa: E731
    assert picked("never_launched")["launched_at"].null_count() == len(found["never_launched"])
    assert inst["launched_at"].null_count() == len(found["never_launched"])
    assert picked("node_null")["node"].null_count() == len(found["node_null"]) == inst["node"].null_count()
    for kind in ("end_only_in_events", "shelve_unshelve"):
        assert picked(kind).select(pl.col("terminated_at", "deleted_at").null_count()).row(0) == (len(found[kind]),) * 2
    events = read(raw, "nova.instance_actions_events").join(
        read(raw, "nova.instance_actions").select(pl.col("id").alias("action_id"), "instance_uuid"), on="action_id"
    )
    ends = events.filter(pl.col("event") == "compute_terminate_instance")
    ok_end = ends.filter(pl.col("result") == "Success")
    assert set(found["end_only_in_events"]) <= set(ok_end["instance_uuid"])
    failed = ends.filter(pl.col("result") == "Error")
    assert set(failed["instance_uuid"]) == set(found["failed_terminate_event"])
    assert failed["traceback"].null_count() == 0 and ok_end["traceback"].null_count() == ok_end.height
    for uuid in found["shelve_unshelve"]:
        mine = events.filter(pl.col("instance_uuid") == uuid, pl.col("event").str.starts_with("compute_")).sort(
            "start_time"
        )
        assert mine["event"].to_list()[-4:] == ["compute_shelve_instance", "compute_shelve_offload_instance",
                                                "compute_unshelve_instance", "compute_terminate_instance"]  # fmt: skip
    controller = events.filter(~pl.col("event").str.starts_with("compute_"))
    assert controller.height and controller["host"].str.starts_with("controller-").all()


def test_blazar_and_nova_defects(site):
    raw, meta = site
    found = meta["defects"]
    nova, hosts = read(raw, "nova.compute_nodes"), read(raw, "blazar.computehosts")
    caps = read(raw, "blazar.computehost_extra_capabilities")
    by_id = lambda df, kind: df.filter(pl.col("id").is_in(found[kind])).row(0, named=True)  # noqa: E731
    no_start = by_id(nova, "compute_node_null_created")
    assert no_start["created_at"] is None
    reversed_ = by_id(nova, "compute_node_deleted_before_created")
    assert reversed_["deleted_at"] < reversed_["created_at"] and reversed_["deleted"] == reversed_["id"]
    for row in (no_start, reversed_):
        assert (nova["hypervisor_hostname"] == row["hypervisor_hostname"]).sum() == 1
    for new in nova.filter(pl.col("id").is_in(found["reenrolled_host"])).rows(named=True):
        old = nova.filter(pl.col("hypervisor_hostname") == new["hypervisor_hostname"], pl.col("id") != new["id"])
        assert old["deleted_at"].to_list() == [new["created_at"]]
    for dup in hosts.filter(pl.col("id").is_in(found["duplicate_blazar_host"])).rows(named=True):
        first = hosts.filter(pl.col("hypervisor_hostname") == dup["hypervisor_hostname"], pl.col("id") != dup["id"])
        assert (
            first["created_at"].item() < dup["created_at"] and dup["deleted_at"] is first["deleted_at"].item() is None
        )
    retired = hosts.filter(pl.col("id").is_in(found["retired_host_capabilities_deleted"]))
    assert retired.height and retired["deleted_at"].null_count() == 0
    assert (retired["deleted"] == retired["id"]).all()
    node_type = read(raw, "blazar.resource_properties").filter(pl.col("property_name") == "node_type")["id"].item()
    kept = caps.filter(pl.col("property_id") == node_type).join(retired, left_on="computehost_id", right_on="id")
    assert kept.height == retired.height and (kept["deleted_at"] == kept["deleted_at_right"]).all()
    assert caps.filter(pl.col("property_id") == node_type).height == hosts.height  # one node_type per Blazar row


def test_lease_and_allocation_defects(site):
    raw, meta = site
    found = meta["defects"]
    leases, resv = read(raw, "blazar.leases"), read(raw, "blazar.reservations")
    early = leases.filter(pl.col("id").is_in(found["lease_deleted_early"]))
    assert early.height and early.select(pl.col("deleted_at").is_between("start_date", "end_date")).to_series().all()
    late = leases.filter(pl.col("id").is_in(found["lease_created_late"]))
    assert late.height and (late["created_at"] > late["start_date"]).all()
    normal = leases.filter(~pl.col("id").is_in(found["lease_created_late"]))
    assert (normal["created_at"] <= normal["start_date"]).all()
    alloc = read(raw, "blazar.computehost_allocations")
    orphans = alloc.filter(~pl.col("reservation_id").is_in(resv["id"].implode()))
    assert sorted(orphans["id"]) == sorted(found["allocation_without_reservation"])
    assert resv["resource_type"].unique().sort().to_list() == ["network", "physical:host", "virtual:floatingip"]
    hosts = alloc.join(resv, left_on="reservation_id", right_on="id").group_by("reservation_id").len()
    assert hosts["len"].max() > 1  # a multi-host lease


def test_instances_reach_their_reservation_and_some_overrun_it(site):
    raw, meta = site
    inst, specs = read(raw, "nova.instances"), read(raw, "nova_api.request_specs")
    data = pl.col("spec").str.json_path_match
    rid = specs.select(
        "instance_uuid",
        hint=data("$['nova_object.data'].scheduler_hints.reservation[0]"),
        flavor=data("$['nova_object.data'].flavor['nova_object.data'].name"),
    )
    assert rid["hint"].null_count() < rid.height and rid["flavor"].str.starts_with("reservation:").any()
    assert (rid["flavor"] == "baremetal").any() and not inst["reservation_id"].str.starts_with("r-").not_().any()
    rid = rid.select(
        "instance_uuid", reservation=pl.coalesce("hint", pl.col("flavor").str.extract("^reservation:(.+)$"))
    )
    lease = read(raw, "blazar.reservations").join(read(raw, "blazar.leases"), left_on="lease_id", right_on="id")
    lease = lease.select(reservation="id", lease_end=pl.min_horizontal("end_date", "deleted_at"))
    past = inst.filter(pl.col("uuid").is_in(meta["defects"]["instance_past_lease_end"]))
    past = past.join(rid, left_on="uuid", right_on="instance_uuid").join(lease, on="reservation")
    assert past.height == len(meta["defects"]["instance_past_lease_end"])
    assert (past["terminated_at"] > past["lease_end"]).all()
    reserved = inst.join(rid.filter(pl.col("reservation").is_not_null()), left_on="uuid", right_on="instance_uuid")
    assert reserved.join(lease, on="reservation").height == reserved.height  # every hint names a real reservation
