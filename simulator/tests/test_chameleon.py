"""The synthetic site: reproducible to the byte, in the upstream layout, with a consistent truth and real defects."""

import json
from datetime import datetime, timedelta

import polars as pl
import pytest

from engine.sites import cached
from simulator.chameleon import DEFECTS, METRICS, SITES, simulate

S, N, F, B, T = pl.String, pl.Int64, pl.Float64, pl.Boolean, pl.Datetime("us")
SOFT = {"created_at": T, "updated_at": T, "deleted_at": T}
EXPECTED = {  # the upstream columns the engine and the legacy comparison read, with their types
    "nova.compute_nodes": {
        "id": N,
        "uuid": S,
        "hypervisor_hostname": S,
        "host": S,
        "hypervisor_type": S,
        "vcpus": N,
        "memory_mb": N,
        "local_gb": N,
        "cpu_allocation_ratio": F,
        "ram_allocation_ratio": F,
        **SOFT,
        "deleted": N,
    },
    "blazar.computehosts": {
        "id": N,
        "hypervisor_hostname": S,
        "service_name": S,
        "vcpus": N,
        "memory_mb": N,
        "local_gb": N,
        "hypervisor_type": S,
        "reservable": N,
        **SOFT,
        "deleted": N,
    },
    "blazar.computehost_extra_capabilities": {
        "id": N,
        "computehost_id": N,
        "property_id": S,
        "capability_value": S,
        **SOFT,
        "deleted": N,
    },
    "blazar.resource_properties": {"id": S, "resource_type": S, "property_name": S, "private": B, **SOFT, "deleted": S},
    "blazar.leases": {
        "id": S,
        "name": S,
        "user_id": S,
        "project_id": S,
        "start_date": T,
        "end_date": T,
        "status": S,
        "degraded": B,
        **SOFT,
        "deleted": S,
    },
    "blazar.reservations": {
        "id": S,
        "lease_id": S,
        "resource_id": S,
        "resource_type": S,
        "status": S,
        "missing_resources": B,
        "resources_changed": B,
        **SOFT,
        "deleted": S,
    },
    "blazar.computehost_allocations": {"id": S, "compute_host_id": S, "reservation_id": S, **SOFT, "deleted": S},
    "nova.instances": {
        "id": N,
        "uuid": S,
        "user_id": S,
        "project_id": S,
        "display_name": S,
        "host": S,
        "node": S,
        "launched_at": T,
        "terminated_at": T,
        **SOFT,
        "deleted": N,
        "vcpus": N,
        "memory_mb": N,
        "root_gb": N,
        "ephemeral_gb": N,
        "vm_state": S,
        "task_state": S,
        "reservation_id": S,
        "instance_type_id": N,
    },
    "nova_api.request_specs": {"id": N, "instance_uuid": S, "spec": S, "created_at": T, "updated_at": T},
    "nova.instance_actions": {
        "id": N,
        "action": S,
        "instance_uuid": S,
        "request_id": S,
        "user_id": S,
        "project_id": S,
        "start_time": T,
        "finish_time": T,
        "message": S,
        **SOFT,
        "deleted": N,
    },
    "nova.instance_actions_events": {
        "id": N,
        "event": S,
        "action_id": N,
        "start_time": T,
        "finish_time": T,
        "result": S,
        "traceback": S,
        **SOFT,
        "deleted": N,
        "host": S,
        "details": S,
    },
    "chameleon_usage.node_usage_report_cache": {
        "date": T,
        "node_type": S,
        "total_hours": F,
        "maint_hours": F,
        "reserved_hours": F,
        "used_hours": F,
        "idle_hours": F,
    },
}
EXPECTED |= {  # the tables of the other kinds
    "blazar.instance_reservations": {
        "id": S,
        "reservation_id": S,
        "vcpus": N,
        "memory_mb": N,
        "disk_gb": N,
        "amount": N,
        "affinity": B,
        "resource_properties": S,
        **SOFT,
        "deleted": S,
    },
    "blazar.devices": {"id": S, "name": S, "device_type": S, "device_driver": S, "reservable": N, **SOFT, "deleted": S},
    "blazar.device_extra_capabilities": {
        "id": N,
        "device_id": S,
        "property_id": S,
        "capability_value": S,
        **SOFT,
        "deleted": N,
    },
    "blazar.device_allocations": {"id": S, "device_id": S, "reservation_id": S, **SOFT, "deleted": S},
    "zun.container": {
        "id": N,
        "uuid": S,
        "name": S,
        "project_id": S,
        "user_id": S,
        "image": S,
        "cpu": F,
        "memory": S,
        "status": S,
        "status_reason": S,
        "host": S,
        "created_at": T,
        "updated_at": T,
    },
}
BAREMETAL = list(EXPECTED)[:12]
TABLES = {
    "kvm": [*BAREMETAL[:7], "blazar.instance_reservations", *BAREMETAL[7:11]],
    "edge": [
        "blazar.devices",
        "blazar.device_extra_capabilities",
        "blazar.resource_properties",
        "blazar.leases",
        "blazar.reservations",
        "blazar.device_allocations",
        "zun.container",
    ],
}
HOSTS, DAYS = 12, 20
START, END = datetime(2024, 1, 1), datetime(2024, 1, 1 + DAYS)


def cases(meta: dict) -> dict:
    """Every injected case by kind: the defects to reject, the rows never active and the hard cases."""
    return meta["defects"] | meta["inactive"] | meta["cases"]


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
    # the bare-metal tables, Blazar's (empty) instance_reservations, and the truth
    assert len(first) == len(BAREMETAL) + 1 + 3 and first == second
    assert first.keys() == other.keys()
    assert all(first[name] != other[name] for name in first if name != "blazar.instance_reservations.parquet")
    assert read(tmp_path / "a", "blazar.instance_reservations").height == 0


def test_every_table_has_the_upstream_columns_and_types(site):
    raw, meta = site
    for table in BAREMETAL:
        frame, schema = read(raw, table), EXPECTED[table]
        assert dict(frame.schema) == schema, table
        assert frame.height == meta["tables"][table] > 0, table


def test_sizes_grow_with_the_site_as_documented(tmp_path):
    counts = simulate(tmp_path, hosts=40, days=120)["tables"]
    leases = counts["blazar.leases"]
    assert 0.8 * 40 * 120 / 7 < leases < 2 * 40 * 120 / 7
    assert counts["nova.instances"] > 1.8 * leases
    assert counts["nova.instance_actions_events"] > 4.5 * counts["nova.instances"]


def stack(raw) -> pl.DataFrame:
    """The truth, a column per metric, once checked to be a complete consistent stack."""
    truth = pl.read_parquet(raw / "simulation" / "truth_daily.parquet")
    assert dict(truth.schema) == {"date": T, "node_type": S, "metric": S, "hours": F}
    assert truth.height == DAYS * truth["node_type"].n_unique() * len(METRICS)
    assert truth["date"].min() == datetime(2024, 1, 1) and truth["date"].dt.hour().max() == 0
    wide = truth.pivot("metric", index=["date", "node_type"], values="hours")
    eps = 1e-9
    assert (wide.select(pl.min_horizontal(METRICS)) >= 0).to_series().all()
    assert (wide["occupied_reservation"] <= wide["committed"] + eps).all()
    assert (wide["committed"] <= wide["reservable"] + eps).all()
    assert (wide["reservable"] <= wide["total"] + eps).all()
    assert (wide["occupied_ondemand"] <= wide["total"] - wide["reservable"] + eps).all()
    assert (wide["total"] <= 24 * HOSTS + eps).all()
    return wide


def test_truth_is_a_complete_consistent_stack(site):
    wide = stack(site[0])
    assert "unknown" in wide["node_type"]
    assert wide.filter(pl.col("node_type") != "unknown")["occupied_reservation"].sum() > 0
    assert wide.filter(pl.col("node_type") == "unknown")["occupied_ondemand"].sum() > 0


def test_legacy_report_is_the_truth_except_the_recorded_cells(site):
    raw, meta = site
    truth = pl.read_parquet(raw / "simulation" / "truth_daily.parquet")
    t = truth.pivot("metric", index=["date", "node_type"], values="hours")
    expected = t.select(
        "date",
        "node_type",
        total_hours="total",
        maint_hours=pl.col("total") - pl.col("reservable"),
        reserved_hours=pl.col("committed") - pl.col("occupied_reservation"),
        used_hours="occupied_reservation",
        idle_hours=pl.col("reservable") - pl.col("committed"),
    )
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
    found = cases(meta)
    assert set(found) == set(DEFECTS) == set(meta["case_tables"])
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
        assert mine["event"].to_list()[-4:] == [
            "compute_shelve_instance",
            "compute_shelve_offload_instance",
            "compute_unshelve_instance",
            "compute_terminate_instance",
        ]
    controller = events.filter(~pl.col("event").str.starts_with("compute_"))
    assert controller.height and controller["host"].str.starts_with("controller-").all()


def test_blazar_and_nova_defects(site):
    raw, meta = site
    found = cases(meta)
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
    found = cases(meta)
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
    past = inst.filter(pl.col("uuid").is_in(cases(meta)["instance_past_lease_end"]))
    past = past.join(rid, left_on="uuid", right_on="instance_uuid").join(lease, on="reservation")
    assert past.height == len(cases(meta)["instance_past_lease_end"])
    assert (past["terminated_at"] > past["lease_end"]).all()
    reserved = inst.join(rid.filter(pl.col("reservation").is_not_null()), left_on="uuid", right_on="instance_uuid")
    assert reserved.join(lease, on="reservation").height == reserved.height  # every hint names a real reservation


@pytest.fixture(scope="module")
def other(tmp_path_factory):
    """One small KVM and one small edge site: kind -> (raw directory, simulation.json)."""
    sites = {}
    for kind in ("kvm", "edge"):
        sites[kind] = raw = tmp_path_factory.mktemp(kind)
        simulate(raw, seed=7, hosts=HOSTS, days=DAYS, kind=kind)
    return {
        kind: (raw, json.loads((raw / "simulation" / "simulation.json").read_text())) for kind, raw in sites.items()
    }


def hours(start, end) -> pl.Expr:
    """Hours of [start, end) inside the window (a null end runs to the window's end)."""
    span = pl.min_horizontal(pl.coalesce(end, pl.lit(END)), pl.lit(END)) - pl.max_horizontal(start, pl.lit(START))
    return span.dt.total_seconds().clip(0) / 3600


def committed(raw, allocations: str, owner: pl.DataFrame, **host) -> pl.DataFrame:
    """Allocations with their lease's committed span (start, end) and their host or device: `host` selects from
    `owner` the allocation's key column first, then `host` (the name)."""
    lease = read(raw, "blazar.leases").select(
        lease_id="id",
        start=pl.max_horizontal("start_date", "created_at"),
        end=pl.min_horizontal("end_date", "deleted_at"),
    )
    resv = read(raw, "blazar.reservations").select("lease_id", reservation_id="id").join(lease, on="lease_id")
    return read(raw, allocations).join(resv, on="reservation_id").join(owner.select(**host), on=list(host)[0])


@pytest.mark.parametrize("kind", ["kvm", "edge"])
def test_other_kinds_are_reproducible_typed_and_recorded(tmp_path, other, kind):
    runs = [
        simulate(tmp_path / f"{i}", seed=seed, hosts=HOSTS, days=DAYS, kind=kind) for i, seed in enumerate((1, 1, 2))
    ]
    first, second, third = (files(tmp_path / f"{i}") for i in range(3))
    assert runs[0] == runs[1] and first == second and all(first[name] != third[name] for name in first)
    truth = {f"simulation/{name}" for name in ("truth_daily.parquet", "truth_by_user.parquet", "simulation.json")}
    assert set(first) == {f"{table}.parquet" for table in TABLES[kind]} | truth
    raw, meta = other[kind]
    for table in TABLES[kind]:
        assert dict(read(raw, table).schema) == EXPECTED[table] and read(raw, table).height == meta["tables"][table]
    assert meta["arguments"]["kind"] == kind and meta["legacy_perturbed"] == []
    assert meta["case_tables"] == SITES[kind][3] and all(cases(meta).values())
    early = read(raw, "blazar.leases").filter(pl.col("id").is_in(cases(meta)["lease_deleted_early"]))
    assert early.select(pl.col("deleted_at").is_between("start_date", "end_date")).to_series().all()
    alloc = read(raw, "blazar.device_allocations" if kind == "edge" else "blazar.computehost_allocations")
    orphans = alloc.filter(~pl.col("reservation_id").is_in(read(raw, "blazar.reservations")["id"].implode()))
    assert sorted(orphans["id"]) == sorted(cases(meta)["allocation_without_reservation"])


def test_kvm_truth_is_vcpu_shares_and_no_host_is_overfull(other):
    raw, meta = other["kvm"]
    wide, nodes = stack(raw), read(raw, "nova.compute_nodes")
    assert set(wide["node_type"]) == {"compute_kvm", "unknown"}
    assert wide["total"].sum() == pytest.approx(nodes.select(hours("created_at", "deleted_at")).sum().item())
    new = nodes.filter(pl.col("id").is_in(cases(meta)["reenrolled_host"]))
    old = nodes.join(new, on="hypervisor_hostname").filter(pl.col("deleted_at") == pl.col("created_at_right"))
    assert old.height == new.height > 0 and (old["vcpus"] != old["vcpus_right"]).all()
    flavors = read(raw, "blazar.instance_reservations").select("reservation_id", "vcpus", "amount")
    blazar = read(raw, "blazar.computehosts")
    slots = committed(
        raw,
        "blazar.computehost_allocations",
        blazar,
        compute_host_id=pl.col("id").cast(pl.String),
        host="hypervisor_hostname",
    ).join(flavors, on="reservation_id")
    assert slots.group_by("reservation_id").agg(pl.len() == pl.col("amount").first())["len"].all()
    assert slots.group_by("reservation_id", "host").len()["len"].max() > 1  # slots of a reservation share a host
    spec = pl.col("spec").str.json_path_match
    inst = read(raw, "nova.instances").join(
        read(raw, "nova_api.request_specs").select(
            uuid="instance_uuid",
            rid=spec("$['nova_object.data'].scheduler_hints.reservation[0]"),
            flavor=spec("$['nova_object.data'].flavor['nova_object.data'].name"),
        ),
        on="uuid",
    )
    reserved = inst.filter(pl.col("rid").is_not_null()).join(flavors, left_on="rid", right_on="reservation_id")
    assert reserved.height == inst["rid"].count() > 0 and (reserved["vcpus"] == reserved["vcpus_right"]).all()
    assert (reserved["flavor"] == "reservation:" + reserved["rid"]).all()
    assert inst.filter(pl.col("rid").is_null())["flavor"].str.starts_with("m1.").all()
    on_demand = inst.filter(pl.col("rid").is_null())["host"]
    assert not on_demand.is_in(blazar["hypervisor_hostname"].implode()).any()
    asof, share = nodes.select(host="hypervisor_hostname", start="created_at", host_vcpus="vcpus").sort("start"), {}
    for metric, spans in ("committed", slots), ("occupied", inst.rename({"created_at": "start", "deleted_at": "end"})):
        ev = pl.concat([spans.select("host", t="start", d="vcpus"), spans.select("host", t="end", d=-pl.col("vcpus"))])
        ev = ev.drop_nulls("t").sort("host", "t", "d").with_columns(level=pl.col("d").cum_sum().over("host"))
        ev = ev.sort("t").join_asof(asof.rename({"start": "t"}), on="t", by="host", check_sortedness=False)
        assert ev["host_vcpus"].null_count() == 0 and (ev["level"] <= ev["host_vcpus"]).all(), metric
        counted = spans.filter(pl.col("launched_at").is_not_null()) if metric == "occupied" else spans
        nodes_ = pl.col("vcpus") / pl.col("host_vcpus")  # the share of the host row valid at the start
        share[metric] = (
            counted.sort("start")
            .join_asof(asof, on="start", by="host", check_sortedness=False)
            .select(hours("start", "end") * nodes_)
        )
    assert wide["committed"].sum() == pytest.approx(share["committed"].sum().item(), rel=1e-9)
    occupied = wide["occupied_reservation"] + wide["occupied_ondemand"]
    assert occupied.sum() == pytest.approx(share["occupied"].sum().item(), rel=1e-9)
    events = read(raw, "nova.instance_actions_events").join(
        read(raw, "nova.instance_actions").select(pl.col("id").alias("action_id"), "instance_uuid"), on="action_id"
    )
    for row in inst.filter(pl.col("uuid").is_in(cases(meta)["node_null"])).rows(named=True):
        mine = events.filter(
            pl.col("instance_uuid") == row["uuid"],
            pl.col("event").str.starts_with("compute_"),
            pl.col("result") == "Success",
        ).sort("start_time")
        assert row["node"] is None and mine["host"][-1] == row["host"]
    assert inst["launched_at"].null_count() == len(cases(meta)["never_launched"])


def test_edge_containers_meet_their_device_allocations(other):
    raw, meta = other["edge"]
    wide, devices = stack(raw), read(raw, "blazar.devices")
    assert set(wide["node_type"]) <= {"raspberrypi4-64", "jetson-nano", "nvidia-xavier"}
    assert wide["occupied_ondemand"].sum() == 0 and wide["occupied_reservation"].sum() > 0
    assert wide["total"].sum() == pytest.approx(devices.select(hours("created_at", "deleted_at")).sum().item())
    caps = read(raw, "blazar.device_extra_capabilities").join(devices, left_on="device_id", right_on="id")
    assert caps.height == devices.height == devices["name"].n_unique()
    assert (caps["deleted_at"].fill_null(END) == caps["deleted_at_right"].fill_null(END)).all()
    alloc = committed(raw, "blazar.device_allocations", devices, device_id="id", host="name")
    assert alloc.group_by("reservation_id").len()["len"].max() == 2
    assert wide["committed"].sum() == pytest.approx(alloc.select(hours("start", "end")).sum().item())
    box = read(raw, "zun.container").with_columns(
        stop=pl.when(pl.col("status").is_in(["Deleted", "Error", "Stopped"])).then("updated_at")
    )
    assert box.filter(pl.col("stop").is_null())["status"].is_in(["Running", "Created"]).all()
    inside = box.join(alloc, on="host").filter(pl.col("created_at").is_between("start", "end", closed="left"))
    assert inside.height == box.height  # every container starts inside exactly one allocation of its device
    past = inside.filter(pl.col("stop").fill_null(END) > pl.col("end"))
    assert sorted(past["uuid"]) == sorted(cases(meta)["container_past_lease_end"])
    cut = inside.select(hours("created_at", pl.min_horizontal(pl.col("stop").fill_null(END), "end"))).sum().item()
    assert wide["occupied_reservation"].sum() == pytest.approx(cut, rel=1e-9)


def test_the_engine_reaches_the_generator_by_its_entry_point_and_caches_the_site(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    path = cached("edge1", {"generator": "chameleon", "kind": "edge", "hosts": HOSTS, "days": DAYS})
    assert path.parent == tmp_path / "testbed-usage-engine" and path.name.startswith("edge1-")
    assert (path / "blazar.devices.parquet").is_file()
    assert cached("edge1", {"days": DAYS, "hosts": HOSTS, "kind": "edge", "generator": "chameleon"}) == path
    assert cached("edge1", {"generator": "chameleon", "kind": "edge", "hosts": HOSTS, "days": DAYS + 1}) != path


@pytest.mark.parametrize("kind", ["baremetal", "kvm"])
def test_archiving_moves_the_old_deleted_instances_with_their_actions_and_events(tmp_path, kind):
    """archive_days=N: every instance deleted more than N days before the end, and only those, is in
    nova.shadow_instances, its actions and their events in the shadow tables beside it (checked row by row
    against the same site unarchived); the other tables and the truth are the same bytes."""
    plain, moved = tmp_path / "plain", tmp_path / "archived"
    simulate(plain, seed=4, hosts=HOSTS, days=DAYS, kind=kind)
    meta = simulate(moved, seed=4, hosts=HOSTS, days=DAYS, kind=kind, archive_days=5)
    before = END - timedelta(days=5)
    instances = read(plain, "nova.instances")
    old = {r["uuid"] for r in instances.iter_rows(named=True) if r["deleted_at"] and r["deleted_at"] < before}
    actions = {r["id"] for r in read(plain, "nova.instance_actions").iter_rows(named=True) if r["instance_uuid"] in old}
    keys = {"instances": ("uuid", old), "instance_actions": ("id", actions)}
    keys["instance_actions_events"] = ("action_id", actions)
    assert old and actions
    for table, (column, gone) in keys.items():
        rows = read(plain, f"nova.{table}")
        live, shadow = read(moved, f"nova.{table}"), read(moved, f"nova.shadow_{table}")
        assert shadow.equals(rows.filter(pl.col(column).is_in(list(gone)))), table
        assert live.equals(rows.filter(~pl.col(column).is_in(list(gone)))), table
        assert meta["tables"][f"nova.shadow_{table}"] == shadow.height > 0
    same = {
        name for name in files(plain) if not name.startswith("nova.instance") and name != "simulation/simulation.json"
    }
    assert {n: b for n, b in files(moved).items() if n in same} == {n: files(plain)[n] for n in same}
    assert meta["arguments"]["archive_days"] == 5


def test_archive_days_is_checked(tmp_path):
    from simulator.chameleon import generate

    for bad in (-1, 1.5, True, "10"):
        with pytest.raises(ValueError, match="archive_days: expected a whole number from 0 to 36,500"):
            generate(tmp_path, hosts=HOSTS, days=DAYS, archive_days=bad)
