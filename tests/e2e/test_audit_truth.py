"""An audit that names only real defects (issue 15): on every simulated site kind, with and without injected
defects, each raw row has exactly one owner (INV-13), the rejected rows are exactly the injected defects, the
never-active rows exactly the cancelled bookings and never-launched instances, and the accounts close."""

import json
import shutil

import polars as pl
import pytest

from simulator.chameleon import simulate
from tests.conftest import SPECS, run_cli

ENTITIES = {
    "baremetal": "nova_host,blazar_host,allocation,reserved_instance,ondemand_instance",
    "kvm": "nova_host,blazar_host,slice_allocation,kvm_reserved_instance,kvm_ondemand_instance",
    "edge": "device,reservable_device,device_allocation,container",
}
WINDOW = ("--start", "2024-01-01", "--end", "2024-02-20")


def frames(out, stage: str) -> pl.DataFrame:
    """Every entity's checkpoint of one stage, with the entity column."""
    parts = [pl.read_parquet(p) for p in sorted((out / stage).glob("*.parquet"))]
    parts = [p.select("entity", "entity_id") for p in parts]
    return pl.concat(parts) if parts else pl.DataFrame()


def run_site(tmp_path, kind: str, defects: bool, entities: str | None = None):
    raw = tmp_path / f"{kind}-{defects}"
    simulate(raw, seed=4, hosts=30, days=50, kind=kind, defects=defects)
    args = ["--data", raw] if entities is None else []
    if entities is not None:
        (tmp_path / "sites.yaml").write_text(
            f"sites:\n  s:\n    name: s\n    data: {raw.name}\n    entities: [{entities}]\n"
        )
        args = ["--sites", tmp_path / "sites.yaml", "--site", "s"]
    out = tmp_path / f"out-{kind}-{defects}"
    result = run_cli("run", SPECS, *args, "--out", out, "--no-report", "--json", *WINDOW)
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout), out, json.loads((raw / "simulation" / "simulation.json").read_text())


def injected(meta: dict, bucket: str) -> set[tuple[str, str]]:
    """(table, key) of every case of one bucket (defects, inactive) the simulator wrote."""
    return {(meta["case_tables"][kind], str(key)) for kind, keys in meta[bucket].items() for key in keys}


def found(m: dict, out, stage: str) -> set[tuple[str, str]]:
    rows, table = frames(out, stage), _tables(m)
    return {(table[e], k) for e, k in rows.select("entity", "entity_id").iter_rows()} if rows.height else set()


def _tables(m: dict) -> dict[str, str]:
    from engine.spec.load import load_specs

    specs = load_specs(SPECS)
    return {name: specs.entities[name].source.table for name in m["entities"]}


@pytest.mark.parametrize("defects", [True, False], ids=["with-defects", "clean"])
@pytest.mark.parametrize("kind", ["baremetal", "kvm", "edge"])
def test_every_defect_is_real_and_every_real_defect_named(tmp_path, kind, defects):
    m, out, meta = run_site(tmp_path, kind, defects, ENTITIES[kind])
    assert found(m, out, "rejected") == injected(meta, "defects")
    if not defects:
        assert all(e["rejected"] == 0 for e in m["entities"].values())
        assert injected(meta, "defects") == set()
    assert found(m, out, "inactive") == injected(meta, "inactive") != set()
    for name, e in m["entities"].items():  # the row accounts close, per entity
        parts = e["accepted"] + e["rejected"] + e["inactive"] + e["out_of_scope"] + e["not_recorded"]
        assert e["input_rows"] == parts, name
        assert sum(r["rows"] for r in e["reasons"].values()) == e["rejected"] + e["inactive"]
    partitions = [i for i in m["invariants"] if i["id"] == "INV-13"]
    assert len(partitions) == (0 if kind == "edge" else 1)  # edge: device and reservable_device are layers
    assert all(i["status"] == "pass" for i in m["invariants"]), [i for i in m["invariants"] if i["status"] != "pass"]


def test_without_a_site_list_every_entity_runs_and_still_no_false_defect(tmp_path):
    # Blazar always has instance_reservations (empty on bare metal): slice_allocation then reads every
    # allocation and must leave the physical:host ones out of scope, not reject them as missing_fk
    m0, _, meta = run_site(tmp_path, "baremetal", True, ENTITIES["baremetal"])
    raw = tmp_path / "baremetal-True"
    pl.DataFrame(
        schema={
            "id": pl.String,
            "reservation_id": pl.String,
            "vcpus": pl.Int64,
            "memory_mb": pl.Int64,
            "disk_gb": pl.Int64,
        }
    ).write_parquet(raw / "blazar.instance_reservations.parquet")
    result = run_cli("run", SPECS, "--data", raw, "--out", tmp_path / "all", "--no-report", "--json", *WINDOW)
    assert result.exit_code == 0, result.stderr
    m = json.loads(result.stdout)
    assert m["entities"]["slice_allocation"]["status"] == "ok"
    assert m["entities"]["slice_allocation"]["out_of_scope"] == m["entities"]["slice_allocation"]["input_rows"] > 0
    assert found(m, tmp_path / "all", "rejected") == injected(meta, "defects")  # the dangling allocations once
    tables = {i["table"]: i for i in m["invariants"] if i["id"] == "INV-13"}
    assert set(tables) == {"blazar.computehost_allocations", "nova.instances"}
    assert all(i["status"] == "pass" for i in tables.values())
    assert m["metrics"]["committed"] == m0["metrics"]["committed"]


GPU = """
entity: gpu_allocation
description: A GPU host committed to a lease.
metric: committed
source: {table: blazar.computehost_allocations, key: id}
joins:
  - {table: blazar.reservations, as: r, on: {reservation_id: id}, required: true}
  - {table: blazar.leases, as: l, on: {r.lease_id: id}, required: true}
  - {table: blazar.computehosts, as: h, on: {compute_host_id: id}, required: true}
  - {table: host_node_type, as: nt, on: {compute_host_id: computehost_id}}
scope:
  - r.resource_type = 'physical:host'
  - nt.node_type = 'gpu_rtx_6000'
claims_undecided: 3
rules:
  - {reason: cancelled_before_start, when: "l.deleted_at <= greatest(l.start_date, l.created_at)", inactive: true}
valid: {start: "greatest(l.start_date, l.created_at)", end: "least(l.end_date, l.deleted_at)"}
tx: {start: created_at, end: l.deleted_at}
identity: [hypervisor_hostname]
parent: {entity: blazar_host, on: {hypervisor_hostname: hypervisor_hostname}}
attributes: {hypervisor_hostname: h.hypervisor_hostname}
inherit: [node_type]
resources: {nodes: 1}
"""


def test_a_gpu_entity_added_by_yaml_shares_the_allocations_out(tmp_path, specs_copy):
    m0, _, meta = run_site(tmp_path, "baremetal", True, ENTITIES["baremetal"])
    (specs_copy / "entities" / "gpu_allocation.yaml").write_text(GPU)
    alloc = specs_copy / "entities" / "allocation.yaml"
    text = (
        alloc.read_text()
        .replace(
            "  - r.resource_type = 'physical:host'\n",
            "  - r.resource_type = 'physical:host'\n  - coalesce(nt.node_type, '') <> 'gpu_rtx_6000'\n",
        )
        .replace("joins:\n", "joins:\n  - {table: host_node_type, as: nt, on: {compute_host_id: computehost_id}}\n", 1)
    )
    alloc.write_text(text)
    sites = tmp_path / "sites.yaml"
    sites.write_text(sites.read_text().replace("allocation,", "allocation, gpu_allocation,"))
    result = run_cli(
        "run", specs_copy, "--sites", sites, "--site", "s", "--out", tmp_path / "gpu", "--no-report", "--json", *WINDOW
    )
    assert result.exit_code == 0, result.stderr
    m = json.loads(result.stdout)
    gpu, rest = m["entities"]["gpu_allocation"], m["entities"]["allocation"]
    assert gpu["accepted"] > 0 and gpu["rejected"] == 0
    assert rest["rejected_by_reason"] == {"missing_fk": 2}  # the dangling allocations, once: allocation claims them
    [partition] = [i for i in m["invariants"] if i["id"] == "INV-13" and i["table"] == "blazar.computehost_allocations"]
    assert partition["status"] == "pass" and partition["entities"] == ["allocation", "gpu_allocation"]
    assert m["metrics"]["committed"]["nodes"] == pytest.approx(m0["metrics"]["committed"]["nodes"])


def test_two_claims_of_one_rank_or_none_at_all_are_spec_errors(specs_copy):
    slice_ = specs_copy / "entities" / "slice_allocation.yaml"
    slice_.write_text(slice_.read_text().replace("claims_undecided: 2", "claims_undecided: 1"))
    result = run_cli("validate", specs_copy)
    assert result.exit_code == 1
    assert (
        "entity 'slice_allocation': claims_undecided: rank 1 is also claimed by entity 'allocation' "
        "(specs/entities/allocation.yaml) for blazar.computehost_allocations; give each entity its own rank"
    ) in result.stderr
    for name in ("allocation", "slice_allocation"):
        path = specs_copy / "entities" / f"{name}.yaml"
        path.write_text("\n".join(line for line in path.read_text().splitlines() if "claims_undecided" not in line))
    result = run_cli("validate", specs_copy)
    assert (
        "scope: it reads the required join 'r', so a row where that join finds nothing cannot be decided"
        in result.stderr
    )


def test_a_projected_run_compares_with_the_legacy_report_only_before_its_as_of(tmp_path):
    raw = tmp_path / "raw"
    simulate(raw, seed=4, hosts=30, days=50)
    result = run_cli(
        "run",
        SPECS,
        "--data",
        raw,
        "--out",
        tmp_path / "out",
        "--no-report",
        "--json",
        *WINDOW,
        "--lens",
        "projected",
        "--as-of",
        "2024-01-25T12:00:00",
    )
    assert result.exit_code == 0, result.stderr
    m = json.loads(result.stdout)
    cmp = pl.read_parquet(tmp_path / "out" / "comparison.parquet")
    assert str(cmp["date"].max()) == "2024-01-24"  # the last day that ended by the as-of time
    assert m["comparison"]["days"] == "the days that ended by the as-of time 2024-01-25 12:00:00 only"
    perturbed = {
        (c["date"], c["node_type"])
        for c in json.loads((raw / "simulation" / "simulation.json").read_text())["legacy_perturbed"]
    }
    flagged = {(str(d), nt) for d, nt in cmp.filter("flagged").select("date", "node_type").iter_rows()}
    assert flagged <= perturbed  # nothing flagged but the cells the simulator changed


def test_a_simulated_clean_site_is_the_same_site_without_its_defects(tmp_path):
    for defects in (True, False):
        simulate(tmp_path / str(defects), seed=9, hosts=12, days=20, defects=defects)
    truths = [pl.read_parquet(tmp_path / str(d) / "simulation" / "truth_daily.parquet") for d in (True, False)]
    assert truths[0].equals(truths[1])
    shutil.rmtree(tmp_path / "True")
