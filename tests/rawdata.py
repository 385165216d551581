"""Hand-made raw directories in the upstream layout, for tests whose answers are worked out by hand."""

import json
from datetime import datetime, timedelta
from pathlib import Path

import polars as pl

T0 = datetime(2024, 1, 1)


def day(d: float | None) -> datetime | None:
    """T0 plus d days (d may be fractional); None stays None."""
    return None if d is None else T0 + timedelta(days=d)


def write_raw(path: Path, tables: dict[str, list[dict]], schemas: dict[str, dict] | None = None) -> Path:
    """Write each table as RAW_DIR/<schema>.<table>.parquet; rows are dicts, missing keys are null."""
    path.mkdir(parents=True, exist_ok=True)
    for name, rows in tables.items():
        schema = (schemas or {}).get(name)
        frame = (
            pl.DataFrame(rows, infer_schema_length=None, schema_overrides=schema)
            if rows
            else pl.DataFrame(schema=schema)
        )
        frame.write_parquet(path / f"{name}.parquet")
    return path


def request_spec(hint: str | None = None, flavor: str = "baremetal") -> str:
    """A nova_api.request_specs.spec JSON text with an optional reservation hint."""
    data = {"flavor": {"nova_object.data": {"name": flavor}}, "scheduler_hints": {}}
    if hint:
        data["scheduler_hints"]["reservation"] = [hint]
    return json.dumps({"nova_object.name": "RequestSpec", "nova_object.data": data})


def tiny_site() -> dict[str, list[dict]]:
    """One row of every rejection reason and hierarchy status; see tests/e2e/test_run_tiny.py for the answers."""
    nova = [
        {"id": 1, "hypervisor_hostname": "h1", "created_at": day(0), "deleted_at": None},
        {"id": 2, "hypervisor_hostname": "h2", "created_at": day(0), "deleted_at": day(20)},
        {"id": 3, "hypervisor_hostname": "h3", "created_at": None, "deleted_at": None},  # null_start
        {"id": 4, "hypervisor_hostname": "h4", "created_at": day(10), "deleted_at": day(8)},  # invalid_time_range
        {"id": 5, "hypervisor_hostname": "h1", "created_at": day(2), "deleted_at": None},  # duplicate of 1
        {"id": 6, "hypervisor_hostname": "h5", "created_at": day(0), "deleted_at": day(30)},
    ]
    for row in nova:
        row |= {"vcpus": 48, "memory_mb": 196608, "local_gb": 240, "hypervisor_type": "ironic", "updated_at": None}
    hosts = [
        {"id": 10, "hypervisor_hostname": "h1", "created_at": day(1), "deleted_at": None},  # direct
        {"id": 11, "hypervisor_hostname": "h2", "created_at": day(1), "deleted_at": day(21)},  # clamped to d20
        {"id": 12, "hypervisor_hostname": "h9", "created_at": day(1), "deleted_at": None},  # missing_fk: no nova h9
        {"id": 13, "hypervisor_hostname": "h2", "created_at": day(22), "deleted_at": day(24)},  # orphan
    ]
    for row in hosts:
        row |= {"vcpus": 48, "memory_mb": 196608, "local_gb": 240, "updated_at": None}
    leases = [
        {"id": "L1", "start_date": day(2), "end_date": day(5), "created_at": day(1), "deleted_at": None},
        {"id": "L2", "start_date": day(3), "end_date": day(8), "created_at": day(1.5), "deleted_at": None},
        {"id": "L3", "start_date": day(3), "end_date": day(8), "created_at": day(1), "deleted_at": None},
        {"id": "L4", "start_date": day(18), "end_date": day(23), "created_at": day(1), "deleted_at": None},
    ]
    for row in leases:
        row["updated_at"] = None
    reservations = [
        {"id": "R1", "lease_id": "L1", "resource_type": "physical:host"},
        {"id": "R2", "lease_id": "L2", "resource_type": "physical:host"},
        {"id": "R3", "lease_id": "L3", "resource_type": "virtual:floatingip"},
        {"id": "R4", "lease_id": "L4", "resource_type": "physical:host"},
    ]
    allocations = [
        {"id": "A1", "compute_host_id": "10", "reservation_id": "R1", "created_at": day(1)},  # direct
        {"id": "A2", "compute_host_id": "10", "reservation_id": "R2", "created_at": day(1.5)},  # cut to [d5, d8)
        {"id": "A3", "compute_host_id": "10", "reservation_id": "R404", "created_at": day(1)},  # missing_fk
        {"id": "A4", "compute_host_id": "10", "reservation_id": "R3", "created_at": day(1)},  # out of scope
        {"id": "A5", "compute_host_id": "11", "reservation_id": "R4", "created_at": day(1)},  # clamped to d20
    ]
    for row in allocations:
        row["deleted_at"] = None
    instances = [
        {"uuid": "I1", "node": "h1", "created_at": day(2.5), "terminated_at": day(4), "launched_at": day(2.6)},
        {"uuid": "I2", "node": "h1", "created_at": day(2.5), "terminated_at": day(3), "launched_at": None},
        {"uuid": "I3", "node": "h5", "created_at": day(1), "terminated_at": day(2), "launched_at": day(1.1)},
        {"uuid": "I4", "node": None, "created_at": day(3), "terminated_at": None, "launched_at": day(3.1)},
        {"uuid": "I5", "node": "h1", "created_at": day(4.5), "terminated_at": day(7), "launched_at": day(4.6)},
    ]
    for row in instances:
        row |= {"deleted_at": row["terminated_at"], "updated_at": None, "host": "ironic-compute", "vcpus": 48,
                "memory_mb": 196608, "root_gb": 240}  # fmt: skip
    specs = [
        {"instance_uuid": "I1", "spec": request_spec("R1")},
        {"instance_uuid": "I2", "spec": request_spec(flavor="reservation:R1")},
        {"instance_uuid": "I3", "spec": request_spec()},
        {"instance_uuid": "I4", "spec": request_spec()},
        {"instance_uuid": "I5", "spec": request_spec("R1")},
    ]
    actions = [
        {"id": 100, "instance_uuid": "I4", "action": "create"},
        {"id": 101, "instance_uuid": "I4", "action": "delete"},
    ]
    events = [
        {"id": 1, "action_id": 100, "event": "compute__do_build_and_run_instance", "start_time": day(3), "result": "Success", "host": "h5"},
        {"id": 2, "action_id": 101, "event": "compute_terminate_instance", "start_time": day(6), "result": "Success", "host": "h5"},
    ]  # fmt: skip
    capabilities = [
        {
            "id": 1,
            "computehost_id": "10",
            "property_id": 1,
            "capability_value": "compute_skylake",
            "created_at": day(1),
        },
        {"id": 2, "computehost_id": "11", "property_id": 1, "capability_value": "gpu_v100", "created_at": day(1)},
        {"id": 3, "computehost_id": "13", "property_id": 1, "capability_value": "gpu_v100", "created_at": day(22)},
    ]
    return {
        "nova.compute_nodes": nova,
        "blazar.computehosts": hosts,
        "blazar.leases": leases,
        "blazar.reservations": reservations,
        "blazar.computehost_allocations": allocations,
        "nova.instances": instances,
        "nova_api.request_specs": specs,
        "nova.instance_actions": actions,
        "nova.instance_actions_events": events,
        "blazar.computehost_extra_capabilities": capabilities,
        "blazar.resource_properties": [{"id": 1, "resource_type": "physical:host", "property_name": "node_type"}],
    }
