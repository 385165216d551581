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
        {
            "id": "R3",
            "lease_id": "L3",
            "resource_type": "flavor:instance",
        },  # a KVM slot without its instance_reservations row
        {"id": "R4", "lease_id": "L4", "resource_type": "physical:host"},
    ]
    allocations = [
        {"id": "A1", "compute_host_id": "10", "reservation_id": "R1", "created_at": day(1)},  # direct
        {"id": "A2", "compute_host_id": "10", "reservation_id": "R2", "created_at": day(1.5)},  # cut to [d5, d8)
        {"id": "A3", "compute_host_id": "10", "reservation_id": "R404", "created_at": day(1)},  # missing_fk
        {
            "id": "A4",
            "compute_host_id": "10",
            "reservation_id": "R3",
            "created_at": day(1),
        },  # a KVM slot: slice_allocation's (missing_fk)
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
        row |= {
            "deleted_at": row["terminated_at"],
            "updated_at": None,
            "host": "ironic-compute",
            "vcpus": 48,
            "memory_mb": 196608,
            "root_gb": 240,
        }
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
        {
            "id": 1,
            "action_id": 100,
            "event": "compute__do_build_and_run_instance",
            "start_time": day(3),
            "result": "Success",
            "host": "h5",
        },
        {
            "id": 2,
            "action_id": 101,
            "event": "compute_terminate_instance",
            "start_time": day(6),
            "result": "Success",
            "host": "h5",
        },
    ]
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
        # Blazar always has this table; its one row is a KVM slot of a reservation this site does not have
        "blazar.instance_reservations": [
            {"id": "IR9", "reservation_id": "R9", "vcpus": 2, "memory_mb": 4096, "disk_gb": 20}
        ],
    }


def _instance(uuid, node, created, end=None, **extra) -> dict:
    row = {
        "uuid": uuid,
        "node": node,
        "host": "compute-1",
        "created_at": day(created),
        "launched_at": day(created),
        "terminated_at": day(end),
        "deleted_at": day(end),
        "updated_at": None,
        "vcpus": 48,
        "memory_mb": 1024,
        "root_gb": 40,
    }
    return row | extra


def _events(rows: list[tuple]) -> tuple[list[dict], list[dict]]:
    """(instance, event, day, result, host) -> (instance_actions, instance_actions_events), one action each."""
    actions = [{"id": i, "instance_uuid": r[0], "action": r[1]} for i, r in enumerate(rows)]
    events = [
        {"id": i, "action_id": i, "event": r[1], "start_time": day(r[2]), "result": r[3], "host": r[4]}
        for i, r in enumerate(rows)
    ]
    return actions, events


def lifecycle_site() -> dict[str, list[dict]]:
    """Bare-metal on-demand instances whose end or host is only in their action events (one host each)."""
    nodes = [
        {
            "id": i,
            "hypervisor_hostname": f"h{i}",
            "created_at": day(0),
            "deleted_at": None,
            "updated_at": None,
            "vcpus": 48,
            "memory_mb": 1024,
            "local_gb": 10,
            "hypervisor_type": "ironic",
            "cpu_allocation_ratio": 1.0,
        }
        for i in range(1, 6)
    ]
    instances = [
        _instance("E1", "h1", 1, terminated_at=None, deleted_at=None),  # shelve d2, unshelve d3, terminate d5
        _instance("E2", "h2", 1, terminated_at=None, deleted_at=None),  # ..., unshelve d3, shelve d4, terminate d6
        _instance("E3", "h3", 1, terminated_at=None, deleted_at=None),  # failed terminate d3, terminate d6
        _instance("E4", None, 1, terminated_at=day(8), deleted_at=day(8)),  # node only in its compute_* events
        _instance("E5", "h5", 1, terminated_at=day(7), deleted_at=day(6)),  # earliest of terminated/deleted
    ]
    actions, events = _events(
        [
            ("E1", "compute_shelve_instance", 2, "Success", "h1"),
            ("E1", "compute_unshelve_instance", 3, "Success", "h1"),
            ("E1", "compute_terminate_instance", 5, "Success", "h1"),
            ("E2", "compute_shelve_instance", 2, "Success", "h2"),
            ("E2", "compute_unshelve_instance", 3, "Success", "h2"),
            ("E2", "compute_shelve_instance", 4, "Success", "h2"),
            ("E2", "compute_terminate_instance", 6, "Success", "h2"),
            ("E3", "compute_terminate_instance", 3, "Error", "h3"),
            ("E3", "compute_terminate_instance", 6, "Success", "h3"),
            ("E4", "compute__do_build_and_run_instance", 1, "Success", "h4"),
            ("E4", "conductor_schedule_and_build_instances", 2, "Success", "controller-1"),
        ]
    )
    return {
        "nova.compute_nodes": nodes,
        "nova.instances": instances,
        "nova_api.request_specs": [{"instance_uuid": i["uuid"], "spec": request_spec()} for i in instances],
        "nova.instance_actions": actions,
        "nova.instance_actions_events": events,
    }


def kvm_site() -> dict[str, list[dict]]:
    """A KVM site: a re-enrolled host (48 then 96 vCPUs), two slots of one reservation on it, the old
    capability schema (capability_name, no resource_properties). Answers in tests/e2e/test_domain_rules.py."""
    node = {
        "hypervisor_type": "QEMU",
        "memory_mb": 262144,
        "local_gb": 1000,
        "cpu_allocation_ratio": 4.0,
        "updated_at": None,
    }
    nodes = [
        node | {"id": 1, "hypervisor_hostname": "kvm-1", "vcpus": 48, "created_at": day(0), "deleted_at": day(10)},
        node | {"id": 2, "hypervisor_hostname": "kvm-1", "vcpus": 96, "created_at": day(10), "deleted_at": None},
        node | {"id": 3, "hypervisor_hostname": "kvm-2", "vcpus": 64, "created_at": day(0), "deleted_at": None},
    ]
    instances = [
        _instance("K1", "kvm-1", 3, 5, vcpus=8),  # reserved: 8/48 of the host (row valid at d3)
        _instance("K2", "kvm-1", 11, 14, vcpus=8),  # reserved: 8/96, cut at the lease end d12
        _instance("K3", "kvm-2", 1, None, vcpus=16),  # on demand, open: 16/64
        _instance("K4", "kvm-2", -5, 2, vcpus=32),  # on demand, before the host's first row: earliest row, 32/64
    ]
    hint = {"K1": "R1", "K2": "R1"}
    return {
        "nova.compute_nodes": nodes,
        "nova.instances": instances,
        "nova_api.request_specs": [
            {
                "instance_uuid": i["uuid"],
                "spec": request_spec(
                    hint.get(i["uuid"]), f"reservation:{hint[i['uuid']]}" if i["uuid"] in hint else "m1.large"
                ),
            }
            for i in instances
        ],
        "nova.instance_actions": [{"id": 0, "instance_uuid": "K1", "action": "create"}],
        "nova.instance_actions_events": [
            {
                "id": 0,
                "action_id": 0,
                "event": "compute__do_build_and_run_instance",
                "start_time": day(3),
                "result": "Success",
                "host": "kvm-1",
            }
        ],
        "blazar.computehosts": [
            {
                "id": 10,
                "hypervisor_hostname": "kvm-1",
                "vcpus": 96,
                "memory_mb": 262144,
                "local_gb": 1000,
                "created_at": day(0),
                "deleted_at": None,
                "updated_at": None,
            }
        ],
        "blazar.computehost_extra_capabilities": [
            {
                "id": 1,
                "computehost_id": 10,
                "capability_name": "node_type",
                "capability_value": "compute_kvm",
                "created_at": day(0),
            },
            {
                "id": 2,
                "computehost_id": 10,
                "capability_name": "cpu_arch",
                "capability_value": "x86_64",
                "created_at": day(0),
            },
        ],
        "blazar.leases": [
            {
                "id": "L1",
                "start_date": day(2),
                "end_date": day(12),
                "created_at": day(1),
                "deleted_at": None,
                "updated_at": None,
            }
        ],
        "blazar.reservations": [{"id": "R1", "lease_id": "L1", "resource_type": "flavor:instance"}],
        "blazar.instance_reservations": [
            {"id": "IR1", "reservation_id": "R1", "vcpus": 8, "memory_mb": 16384, "disk_gb": 40, "amount": 2}
        ],
        "blazar.computehost_allocations": [
            {"id": "S1", "compute_host_id": "10", "reservation_id": "R1", "created_at": day(1), "deleted_at": None},
            {"id": "S2", "compute_host_id": "10", "reservation_id": "R1", "created_at": day(1), "deleted_at": None},
        ],
    }


def edge_site() -> dict[str, list[dict]]:
    """An edge site: devices, device leases, Zun containers. Answers in tests/e2e/test_domain_rules.py."""
    soft = {"updated_at": None}
    return {
        "blazar.devices": [
            {"id": "D1", "name": "rpi-1", "created_at": day(0), "deleted_at": None} | soft,
            {"id": "D2", "name": "rpi-2", "created_at": day(0), "deleted_at": day(10)} | soft,
        ],
        "blazar.device_extra_capabilities": [
            {
                "id": 1,
                "device_id": "D1",
                "property_id": "P1",
                "capability_value": "raspberrypi4-64",
                "created_at": day(0),
            },
            {"id": 2, "device_id": "D2", "property_id": "P1", "capability_value": "jetson-nano", "created_at": day(0)},
        ],
        "blazar.resource_properties": [{"id": "P1", "resource_type": "device", "property_name": "machine_name"}],
        "blazar.leases": [
            {"id": "L1", "start_date": day(1), "end_date": day(5), "created_at": day(0), "deleted_at": None} | soft,
            {"id": "L2", "start_date": day(8), "end_date": day(12), "created_at": day(0), "deleted_at": None} | soft,
        ],
        "blazar.reservations": [
            {"id": "R1", "lease_id": "L1", "resource_type": "device"},
            {"id": "R2", "lease_id": "L2", "resource_type": "device"},
        ],
        "blazar.device_allocations": [
            {"id": "A1", "device_id": "D1", "reservation_id": "R1", "created_at": day(0), "deleted_at": None},
            {"id": "A2", "device_id": "D2", "reservation_id": "R2", "created_at": day(0), "deleted_at": None},
        ],
        "zun.container": [
            {"uuid": "C1", "host": "rpi-1", "status": "Deleted", "created_at": day(2), "updated_at": day(4)},
            {"uuid": "C2", "host": "rpi-1", "status": "Running", "created_at": day(4.5), "updated_at": day(4.6)},
            {"uuid": "C3", "host": "rpi-2", "status": "Stopped", "created_at": day(9), "updated_at": day(11)},
        ],
    }


def lease_history_site() -> dict[str, list[dict]]:
    """One host; lease L1 booked d1 for d10-12, extended on d11 to d14 (two versions in a history table),
    deleted on d13; lease L2 booked d6 for d7-8. Answers in tests/e2e/test_lenses.py."""
    host = {
        "hypervisor_hostname": "h1",
        "created_at": day(0),
        "deleted_at": None,
        "updated_at": None,
        "vcpus": 48,
        "memory_mb": 1024,
        "local_gb": 10,
    }
    return {
        "nova.compute_nodes": [host | {"id": 1, "hypervisor_type": "ironic", "cpu_allocation_ratio": 1.0}],
        "blazar.computehosts": [host | {"id": 10}],
        "blazar.leases": [
            {
                "id": "L1",
                "start_date": day(10),
                "end_date": day(14),
                "created_at": day(1),
                "updated_at": day(13),
                "deleted_at": day(13),
            },
            {
                "id": "L2",
                "start_date": day(7),
                "end_date": day(8),
                "created_at": day(6),
                "updated_at": day(6),
                "deleted_at": None,
            },
        ],
        "blazar.lease_versions": [
            {"lease_id": "L1", "start_date": day(10), "end_date": day(12), "recorded_at": day(1)},
            {"lease_id": "L1", "start_date": day(10), "end_date": day(14), "recorded_at": day(11)},
            {"lease_id": "L2", "start_date": day(7), "end_date": day(8), "recorded_at": day(6)},
        ],
        "blazar.reservations": [
            {"id": "R1", "lease_id": "L1", "resource_type": "physical:host"},
            {"id": "R2", "lease_id": "L2", "resource_type": "physical:host"},
        ],
        "blazar.computehost_allocations": [
            {"id": "A1", "compute_host_id": "10", "reservation_id": "R1", "created_at": day(1), "deleted_at": day(13)},
            {"id": "A2", "compute_host_id": "10", "reservation_id": "R2", "created_at": day(6), "deleted_at": None},
        ],
    }
