"""A deterministic synthetic OpenStack site in the upstream table layout, with its ground truth: bare metal (Ironic),
KVM (libvirt hosts, flavor:instance reservations) or edge (Blazar devices, Zun containers), see SITES.

`simulate(out)` writes OUT/<schema>.<table>.parquet (the raw tables the engine reads, SCHEMAS) and OUT/simulation/:
truth_daily.parquet (date, node_type, metric, hours: the exact node-hours per UTC day of the window, node type and
metric of the clean intended history) and simulation.json (arguments, window, rows per table, kind -> ids of the
affected rows in the table `case_tables` names, split into `defects` (rows to reject; none with defects=False),
`inactive` (rows never active) and `cases` (hard cases to count right), `legacy_perturbed`: the legacy report
cells changed). With defects=False the defective rows are left out and everything else is drawn the same.
It is the demo data, the test oracle and the benchmark input, so it is exact, reproducible and fast: everything is
vectorized (numpy + polars) and drawn from one seeded numpy Generator. Inside, times are float seconds since
`start` (whole seconds, NaN = null) until they are written. The dump is taken at start + days: no row is recorded
later; nothing is older than start - 60 days.
"""

import json
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo, available_timezones

import numpy as np
import polars as pl

DAY, HOUR = 86400.0, 3600.0
NODE_TYPES = {  # name: (weight, vcpus, memory_mb, local_gb)
    "compute_skylake": (0.40, 48, 196608, 240),
    "compute_cascadelake": (0.30, 96, 196608, 480),
    "gpu_rtx_6000": (0.15, 64, 262144, 960),
    "storage_nvme": (0.15, 40, 131072, 3840),
}
TYPES = [*NODE_TYPES, "unknown"]  # a Nova-only host has no Blazar node_type
METRICS = ["total", "reservable", "committed", "occupied_reservation", "occupied_ondemand"]
ACTIONS = {  # instance action: its events; the last (compute) one carries the action's result
    "create": ("conductor_schedule_and_build_instances", "compute__do_build_and_run_instance"),
    "reboot": ("compute_reboot_instance",),
    "shelve": ("compute_shelve_instance",),
    "shelveOffload": ("compute_shelve_offload_instance",),
    "unshelve": ("compute_unshelve_instance",),
    "delete": ("compute_terminate_instance",),
}
EVENTS = [event for events in ACTIONS.values() for event in events]
DEFECTS = {  # kind: the table whose keys simulation.json lists (instances by uuid)
    kind: table
    for table, kinds in {
        "blazar.computehosts": "duplicate_blazar_host retired_host_capabilities_deleted",
        "nova.compute_nodes": "reenrolled_host compute_node_null_created compute_node_deleted_before_created",
        "blazar.leases": "lease_deleted_early lease_created_late",
        "blazar.computehost_allocations": "allocation_without_reservation cancelled_before_start",
        "nova.instances": "end_only_in_events shelve_unshelve failed_terminate_event instance_past_lease_end "
        "never_launched node_null",
    }.items()
    for kind in kinds.split()
}
GPU_SU, SU_PROPERTY = "2.5", "5f0c7a1e9d2b4c3a8e6f1a2b3c4d5e6f"  # GPU hosts record su_factor 2.5
RACKS = (0.7, 0.15, 0.1, 0.05)  # the chance of each rack size (a lease takes 1..all hosts of one rack)
_KVM = (
    "reenrolled_host lease_deleted_early lease_created_late allocation_without_reservation cancelled_before_start "
    "never_launched node_null"
)
SITES = {  # kind: (node types {name: (weight, ...)}, share of Nova-only hosts (None: a tenth), racks, defects)
    "baremetal": (NODE_TYPES, None, RACKS, DEFECTS),
    "kvm": ({"compute_kvm": (1.0,)}, 0.5, RACKS, {kind: DEFECTS[kind] for kind in _KVM.split()}),
    "edge": (
        {"raspberrypi4-64": (0.5, "rpi4"), "jetson-nano": (0.3, "nano"), "nvidia-xavier": (0.2, "xavier")},
        0.0,
        (0.7, 0.3),
        {
            "lease_deleted_early": "blazar.leases",
            "lease_created_late": "blazar.leases",
            "allocation_without_reservation": "blazar.device_allocations",
            "cancelled_before_start": "blazar.device_allocations",
            "container_past_lease_end": "zun.container",
        },
    ),
}
# What the engine must make of each case: reject it (a defect, left out of a site without defects), set it apart
# as never active, or count it right (every other case).
REJECTED = (
    "duplicate_blazar_host",
    "compute_node_null_created",
    "compute_node_deleted_before_created",
    "allocation_without_reservation",
)
NEVER_ACTIVE = ("cancelled_before_start", "never_launched")
LEGACY = ["total_hours", "maint_hours", "reserved_hours", "used_hours", "idle_hours"]
_DTYPES = {"s": pl.String, "i": pl.Int64, "f": pl.Float64, "b": pl.Boolean, "t": pl.Datetime("us")}
_SOFT = "created_at:t updated_at:t deleted_at:t deleted"
SCHEMAS = {  # every table's columns in order, name[:type] with s(tring, the default), i, f, b, t(ime)
    table: {c.split(":")[0]: _DTYPES[c.split(":")[1] if ":" in c else "s"] for c in cols.split()}
    for table, cols in {
        "nova.compute_nodes": "id:i uuid hypervisor_hostname host hypervisor_type vcpus:i memory_mb:i local_gb:i "
        f"cpu_allocation_ratio:f ram_allocation_ratio:f {_SOFT}:i",
        "blazar.computehosts": "id:i hypervisor_hostname service_name vcpus:i memory_mb:i local_gb:i hypervisor_type "
        f"reservable:i {_SOFT}:i",
        "blazar.computehost_extra_capabilities": f"id:i computehost_id:i property_id capability_value {_SOFT}:i",
        "blazar.resource_properties": f"id resource_type property_name private:b {_SOFT}",
        "blazar.leases": f"id name user_id project_id start_date:t end_date:t status degraded:b {_SOFT}",
        "blazar.reservations": "id lease_id resource_id resource_type status missing_resources:b "
        f"resources_changed:b {_SOFT}",
        "blazar.computehost_allocations": f"id compute_host_id reservation_id {_SOFT}",
        "nova.instances": "id:i uuid user_id project_id display_name host node launched_at:t terminated_at:t "
        f"{_SOFT}:i vcpus:i memory_mb:i root_gb:i ephemeral_gb:i vm_state task_state reservation_id "
        "instance_type_id:i",
        "nova_api.request_specs": "id:i instance_uuid spec created_at:t updated_at:t",
        "nova.instance_actions": "id:i action instance_uuid request_id user_id project_id start_time:t "
        f"finish_time:t message {_SOFT}:i",
        "nova.instance_actions_events": "id:i event action_id:i start_time:t finish_time:t result traceback "
        f"{_SOFT}:i host details",
        "chameleon_usage.node_usage_report_cache": "date:t node_type " + " ".join(f"{c}:f" for c in LEGACY),
        "blazar.instance_reservations": "id reservation_id vcpus:i memory_mb:i disk_gb:i amount:i affinity:b "
        f"resource_properties {_SOFT}",
        "blazar.devices": f"id name device_type device_driver reservable:i {_SOFT}",
        "blazar.device_extra_capabilities": f"id:i device_id property_id capability_value {_SOFT}:i",
        "blazar.device_allocations": f"id device_id reservation_id {_SOFT}",
        "zun.container": "id:i uuid name project_id user_id image cpu:f memory status status_reason host created_at:t "
        "updated_at:t",
    }.items()
}
TRACEBACK = 'Traceback (most recent call last):\n  File "nova/compute/manager.py"\nNovaException: Ironic node failed'
_HEX2 = np.array([ord(f"{i:02x}"[0]) | ord(f"{i:02x}"[1]) << 8 for i in range(256)], "<u2")
_ALNUM = np.frombuffer(b"0123456789abcdefghijklmnopqrstuvwxyz", np.uint8)


def _text(n: int, *pieces) -> pl.Series:
    """n strings glued from (n, width) ASCII code blocks and byte constants: the fast path for millions of ids."""
    blocks = [np.broadcast_to(np.frombuffer(p, np.uint8), (n, len(p))) if isinstance(p, bytes) else p for p in pieces]
    chars = np.hstack(blocks)
    return pl.Series(chars.view(f"S{chars.shape[1]}").ravel()).cast(pl.String)


def _uuids(rng, n: int, dashes: bool = True, prefix: bytes = b"") -> pl.Series:
    """Random version-4 UUIDs; without dashes they look like Keystone ids."""
    raw = rng.integers(0, 256, (n, 16), dtype=np.uint8)
    raw[:, 6], raw[:, 8] = raw[:, 6] & 0x0F | 0x40, raw[:, 8] & 0x3F | 0x80
    h = _HEX2[raw].view(np.uint8)
    if not dashes:
        return _text(n, prefix, h)
    return _text(n, prefix, h[:, :8], b"-", h[:, 8:12], b"-", h[:, 12:16], b"-", h[:, 16:20], b"-", h[:, 20:])


def _ts(sec: np.ndarray, t0: datetime) -> pl.Series:
    """Seconds since t0 (NaN = null) -> naive UTC Datetime('us')."""
    out = np.datetime64(t0, "us") + np.nan_to_num(sec).astype("timedelta64[s]")
    out[np.isnan(sec)] = np.datetime64("NaT")
    return pl.Series(out)


def _deleted(ids, gone_at: np.ndarray) -> pl.Series:
    """Chameleon's soft delete: `deleted` is the row's own id once deleted_at is set, else 0 ("0" for text ids)."""
    ids = pl.Series(ids)
    zero = pl.repeat("0" if ids.dtype == pl.String else 0, len(ids), dtype=ids.dtype, eager=True)
    return ids.zip_with(pl.Series(~np.isnan(gone_at)), zero)


def _maybe(mask: np.ndarray, text: str) -> pl.Series:
    """text where mask holds, else null (a gather: the text is stored once)."""
    return pl.Series([None, text], dtype=pl.String).gather(mask.astype(np.uint32))


def _pick(rng, mask: np.ndarray, k: int) -> np.ndarray:
    """k distinct random indices where mask holds (fewer if there are not enough), sorted."""
    idx = np.flatnonzero(mask)
    return np.sort(rng.choice(idx, size=min(k, idx.size), replace=False))


def _spread(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Expand rows by their counts: (row of each item, its position 0..count-1 in the row), without a loop."""
    row = np.repeat(np.arange(counts.size), counts)
    return row, np.arange(row.size) - np.repeat(np.cumsum(counts) - counts, counts)


def _hardware(h: dict, host: np.ndarray) -> dict:
    """vcpus, memory_mb and local_gb of each host's node type."""
    return dict(zip(("vcpus", "memory_mb", "local_gb"), h["hw"][h["kind"][host]].T, strict=True))


def _few(n: int) -> int:
    """How many rows get each defect: a sprinkling that grows with the site."""
    return max(2, n // 400)


def _slots(rng, lo: np.ndarray, hi: np.ndarray, gap: float, dur: float, dur_max: float):
    """Back-to-back [start, end) slots with random gaps inside each lifetime [lo, hi), as one 2-D cumsum.

    Returns (owner row, start, end), ordered by owner then time."""
    m = int(max(np.max(hi - lo, initial=0), 0) / (gap + dur) * 1.3) + 8
    gaps = np.floor(rng.exponential(gap, (lo.size, m)))
    durs = np.floor(np.clip(rng.gamma(2.0, dur / 2, (lo.size, m)), 2 * HOUR, dur_max))
    end = lo[:, None] + np.cumsum(gaps + durs, axis=1)
    keep = end <= hi[:, None]
    return np.nonzero(keep)[0], (end - durs)[keep], end[keep]


class _Sink:
    """Writes each table as soon as it is built, so a large site never holds every table at once."""

    def __init__(self, out: Path, t0: datetime, defects: bool = True):
        self.out, self.t0, self.counts, self.defects = out, t0, {}, defects

    def __call__(self, table: str, cols: dict, defective: np.ndarray | None = None) -> None:
        """Columns in the declared order and types: seconds become times, scalars repeat, absent ones are null.
        Rows marked `defective` are left out of a site without defects (everything else drawn the same)."""
        n = next(len(v) for v in cols.values() if isinstance(v, np.ndarray | pl.Series))
        frame = {}
        for name, dtype in SCHEMAS[table].items():
            v = cols.get(name)
            if dtype == pl.Datetime("us") and isinstance(v, np.ndarray):
                v = _ts(v, self.t0)
            elif not isinstance(v, np.ndarray | pl.Series):
                v = pl.repeat(v, n, dtype=dtype, eager=True)
            frame[name] = pl.Series(name, v).cast(dtype)
        frame = pl.DataFrame(frame)
        if defective is not None and not self.defects:
            frame = frame.filter(~pl.Series(defective))
        self.write(table, frame)

    def write(self, table: str, frame: pl.DataFrame) -> None:
        frame.write_parquet(self.out / f"{table}.parquet", compression="zstd", statistics=False)
        self.counts[table] = frame.height

    def read(self, table: str) -> pl.DataFrame:
        return pl.read_parquet(self.out / f"{table}.parquet", glob=False)


def _hosts(rng, n: int, now: float, types: dict = NODE_TYPES, ondemand=None, racks=RACKS) -> dict:
    """Hosts and lifetimes. Reservable hosts of one node type come in units (racks, `racks`: the chance of each size)
    that share a lifetime and can be leased together; each Nova-only (on-demand) host is a unit of its own."""
    kind = rng.choice(len(types), n, p=[w for w, *_ in types.values()])
    nova_only = rng.permutation(n) < (max(1, n // 10) if ondemand is None else int(n * ondemand))
    order = np.lexsort((kind, nova_only))
    rack = np.repeat(np.arange(n), rng.choice(len(racks), n, p=racks) + 1)[:n]
    new = np.r_[True, (np.diff(rack) != 0) | (np.diff(kind[order]) != 0) | nova_only[order][1:]]
    unit = np.empty(n, int)
    unit[order] = np.cumsum(new) - 1
    u, res_u = new.sum(), np.isin(np.arange(new.sum()), unit[~nova_only])
    n0 = np.floor(np.where(rng.random(u) < 0.85, -rng.uniform(1, 59, u) * DAY, rng.uniform(0, 0.7, u) * now))
    b0, b1 = np.where(res_u, n0 + np.floor(rng.uniform(0.5, 48, u) * HOUR), np.nan), np.full(u, np.nan)
    retired = _pick(rng, res_u, max(1, u // 12))  # Blazar row and capabilities deleted, then the Nova row
    b1[retired] = np.floor(b0[retired] + rng.uniform(0.3, 0.9, retired.size) * (now - b0[retired]))
    n1 = b1 + np.floor(rng.uniform(0, 1, u) * DAY)
    n1[n1 >= now] = np.nan
    h = {"kind": kind, "nova_only": nova_only, "res_u": res_u, "n0_u": n0, "n1_u": n1, "b0_u": b0, "b1_u": b1}
    h |= {k: h[f"{k}_u"][unit] for k in ("n0", "n1", "b0", "b1")}
    h["reenrol"] = _pick(rng, np.isnan(h["n1"]) & (h["n0"] < now / 2), max(1, n // 30))
    n0r = h["n0"][h["reenrol"]]
    h["t_re"] = np.floor(n0r + rng.uniform(0.3, 0.8, n0r.size) * (now - n0r))
    h["hostname"], h["service"] = _uuids(rng, n), "ironic-compute-" + pl.Series(np.arange(n) % 3 + 1).cast(pl.String)
    h["members"], h["size"] = np.argsort(unit, kind="stable"), np.bincount(unit, minlength=u)
    h["first"], h["hw"] = np.cumsum(h["size"]) - h["size"], np.array([v[1:] for v in types.values()])
    return h


def _host_tables(rng, h: dict, now: float, sink: _Sink) -> tuple[dict, dict]:
    """nova.compute_nodes (re-enrolments, two broken rows), blazar.computehosts (with duplicates), capabilities
    (soft-deleted with their host) and resource_properties. Returns (defects, Blazar ids by host)."""
    n, re = h["kind"].size, h["reenrol"]
    bad_at = np.floor(rng.uniform(0.2, 0.8) * now)  # broken rows: created_at null; deleted before created
    host = np.r_[np.arange(n), re, 0, 0]
    end = h["n1"].copy()
    end[re] = h["t_re"]
    created, deleted = np.r_[h["n0"], h["t_re"], np.nan, bad_at], np.r_[end, h["n1"][re], np.nan, bad_at - DAY]
    ids = np.arange(1, host.size + 1)
    updated = np.where(np.isnan(deleted), now - np.floor(rng.uniform(0, 600, ids.size)), deleted)
    sink(
        "nova.compute_nodes",
        {
            "id": ids,
            "uuid": _uuids(rng, ids.size),
            "hypervisor_type": "ironic",
            "host": h["service"].gather(host),
            "hypervisor_hostname": pl.concat([h["hostname"].gather(host[:-2]), _uuids(rng, 2)]),
            "cpu_allocation_ratio": 1.0,
            "ram_allocation_ratio": 1.0,
            "created_at": created,
            "updated_at": updated,
            "deleted_at": deleted,
            "deleted": _deleted(ids, deleted),
            **_hardware(h, host),
        },
        defective=ids > ids.size - 2,
    )
    defects = {
        "reenrolled_host": ids[n:-2],
        "compute_node_null_created": ids[-2:-1],
        "compute_node_deleted_before_created": ids[-1:],
    }
    # Blazar: every reservable host, then a few duplicates (live, created later, inside the original's time).
    res = np.flatnonzero(~h["nova_only"])
    dup = _pick(rng, np.isnan(h["b1"]) & ~h["nova_only"] & (h["b0"] < now / 2), max(1, n // 200))
    dup_at = np.floor(h["b0"][dup] + rng.uniform(0.2, 0.5, dup.size) * (now - h["b0"][dup]))
    bhost, bids = np.r_[res, dup], np.arange(1, res.size + dup.size + 1)
    made, gone = np.r_[h["b0"][res], dup_at], np.r_[h["b1"][res], np.full(dup.size, np.nan)]
    sink(
        "blazar.computehosts",
        {
            "id": bids,
            "hypervisor_hostname": h["hostname"].gather(bhost),
            "service_name": h["service"].gather(bhost),
            "hypervisor_type": "ironic",
            "reservable": 1,
            "created_at": made,
            "updated_at": made,
            "deleted_at": gone,
            "deleted": _deleted(bids, gone),
            **_hardware(h, bhost),
        },
        defective=bids > res.size,
    )
    defects["duplicate_blazar_host"] = bids[res.size :]
    defects["retired_host_capabilities_deleted"] = bids[: res.size][~np.isnan(h["b1"][res])]
    # Capabilities of every Blazar row: node_type, cpu_arch and, on GPU hosts, gpu.gpu_model and su_factor
    # (the service units a node-hour costs; the other types take the specs' fallback).
    gpu = np.flatnonzero(h["kind"][bhost] == list(NODE_TYPES).index("gpu_rtx_6000"))
    row = np.r_[np.arange(bids.size), np.arange(bids.size), gpu, gpu]
    prop = np.repeat([0, 1, 2, 3], [bids.size, bids.size, gpu.size, gpu.size])
    order = np.lexsort((prop, row))
    row, prop = row[order], prop[order]
    value = np.where(prop == 0, h["kind"][bhost][row], len(NODE_TYPES) + prop - 1)
    prop_ids, cap_ids = pl.concat([_uuids(rng, 3), pl.Series([SU_PROPERTY])]), np.arange(1, row.size + 1)
    sink(
        "blazar.computehost_extra_capabilities",
        {
            "id": cap_ids,
            "computehost_id": bids[row],
            "property_id": prop_ids.gather(prop),
            "capability_value": pl.Series([*NODE_TYPES, "x86_64", "RTX 6000", GPU_SU]).gather(value),
            "created_at": made[row],
            "updated_at": made[row],
            "deleted_at": gone[row],
            "deleted": _deleted(cap_ids, gone[row]),
        },
        defective=bids[row] > res.size,
    )
    sink(
        "blazar.resource_properties",
        {
            "id": prop_ids,
            "resource_type": "physical:host",
            "property_name": pl.Series(["node_type", "cpu_arch", "gpu.gpu_model", "su_factor"]),
            "private": False,
            "created_at": np.full(4, -60 * DAY),
            "deleted": "0",
        },
    )
    bid, dup_id, dup_from = np.zeros(n, int), np.zeros(n, int), np.full(n, np.inf)
    bid[res], dup_id[dup], dup_from[dup] = bids[: res.size], bids[res.size :], dup_at
    if not sink.defects:  # no duplicate row to book: every lease names the host's own row
        dup_from[:] = np.inf
    return defects, {"bid": bid, "dup_id": dup_id, "dup_from": dup_from}


def _leases(rng, h: dict, ids: dict, people: dict, now: float, sink: _Sink, resource="physical:host") -> tuple:
    """Per unit, leases back to back with gaps inside its Blazar lifetime, booked 0-30 days ahead; a lease takes
    1..size hosts of its unit, so no host is ever in two leases at once. One `resource` reservation per lease (bare
    metal: some also a floating IP or network); device allocations name ids["uuid"]. Returns (defects, allocations
    with their lease and, under "leases", each lease's first reservation)."""
    units = np.flatnonzero(h["res_u"])
    lo, hi = h["b0_u"][units], np.fmin(h["b1_u"][units], now + 30 * DAY)
    owner, start, end = _slots(rng, lo, hi, 1.4 * DAY, 2.5 * DAY, 7 * DAY)
    lead = np.where(rng.random(start.size) < 0.3, rng.uniform(0, 600, start.size), rng.exponential(3 * DAY, start.size))
    created = np.maximum(np.floor(start - np.minimum(lead, 30 * DAY)), lo[owner])
    keep = created < now
    owner, start, end, created = owner[keep], start[keep], end[keep], created[keep]
    n = start.size
    deleted = np.where(rng.random(n) < 0.7, end + np.floor(rng.uniform(0, 3 * DAY, n)), np.nan)
    deleted[deleted >= now] = np.nan
    early = _pick(rng, (end < now) & (end - start >= 6 * HOUR), _few(n))
    deleted[early] = start[early] + np.floor(rng.uniform(0.2, 0.8, early.size) * (end - start)[early])
    late = _pick(rng, (end < now) & ~np.isin(np.arange(n), early), _few(n))
    created[late] = start[late] + np.floor(rng.uniform(0.1, 0.4, late.size) * (end - start)[late])
    # Advance bookings cancelled before they began: common, and never active (not a defect).
    booked_ahead = (start - created >= HOUR) & (start < now) & ~np.isin(np.arange(n), np.r_[early, late])
    cancelled = _pick(rng, booked_ahead, max(1, n // 30))
    deleted[cancelled] = created[cancelled] + np.floor(
        rng.uniform(0.1, 0.9, cancelled.size) * (start - created)[cancelled]
    )
    cs, ce = np.maximum(start, created), np.fmin(end, deleted)  # the committed span
    updated = np.where(np.isnan(deleted), np.where(end < now, end, np.where(start < now, start, created)), deleted)
    phase = np.where(ce <= now, 0, np.where(start <= now, 1, 2))
    user, lease_ids = rng.integers(0, people["user"].len(), n), _uuids(rng, n)
    sink(
        "blazar.leases",
        {
            "id": lease_ids,
            "name": "lease-" + pl.Series(np.arange(1, n + 1)).cast(pl.String),
            "user_id": people["user"].gather(user),
            "project_id": people["project"].gather(people["of"][user]),
            "start_date": start,
            "end_date": end,
            "status": pl.Series(["TERMINATED", "ACTIVE", "PENDING"]).gather(phase),
            "degraded": False,
            "created_at": created,
            "updated_at": updated,
            "deleted_at": deleted,
            "deleted": _deleted(lease_ids, deleted),
        },
    )
    # One physical:host reservation per lease; some leases also hold a floating IP or a network.
    extra = _pick(rng, np.ones(n, bool), n // 7 if resource == "physical:host" else 0)
    rl, rtype = np.r_[np.arange(n), extra], np.r_[np.zeros(n, int), rng.integers(1, 3, extra.size)]
    rids = _uuids(rng, rl.size)
    resources = _uuids(rng, rl.size)
    sink(
        "blazar.reservations",
        {
            "id": rids,
            "lease_id": lease_ids.gather(rl),
            "resource_id": resources,
            "resource_type": pl.Series([resource, "virtual:floatingip", "network"]).gather(rtype),
            "status": pl.Series(["deleted", "active", "pending"]).gather(phase[rl]),
            "missing_resources": False,
            "resources_changed": False,
            "created_at": created[rl],
            "updated_at": updated[rl],
            "deleted_at": deleted[rl],
            "deleted": _deleted(rids, deleted[rl]),
        },
    )
    # Allocations: k hosts of the lease's unit from a random offset; a duplicated host's later leases may name
    # the duplicate row. Two more rows name a reservation that does not exist.
    u = units[owner]
    k, off = rng.integers(1, h["size"][u] + 1), rng.integers(0, h["size"][u])
    lease_of, j = _spread(k)
    host = h["members"][h["first"][u][lease_of] + (off[lease_of] + j) % h["size"][u][lease_of]]
    to_dup = (created[lease_of] >= ids["dup_from"][host]) & (rng.random(host.size) < 0.5)
    pool = ids["bid"][ids["bid"] > 0]
    bad = rng.choice(pool, 2) if pool.size else np.zeros(0, int)  # a site with no Blazar host has no such rows
    chid = np.r_[np.where(to_dup, ids["dup_id"][host], ids["bid"][host]), bad]
    aids, at = _uuids(rng, chid.size), np.r_[created[lease_of], np.floor(rng.uniform(0, now, bad.size))]
    gone = np.r_[deleted[lease_of], np.full(bad.size, np.nan)]
    key = ids["uuid"].gather(chid - 1) if "uuid" in ids else pl.Series(chid).cast(pl.String)
    sink(
        "blazar.device_allocations" if resource == "device" else "blazar.computehost_allocations",
        {
            "id": aids,
            "compute_host_id": key,
            "device_id": key,
            "created_at": at,
            "reservation_id": pl.concat([rids.gather(lease_of), _uuids(rng, bad.size)]),
            "updated_at": np.r_[updated[lease_of], at[at.size - bad.size :]],
            "deleted_at": gone,
            "deleted": _deleted(aids, gone),
        },
        defective=np.arange(chid.size) >= lease_of.size,
    )
    # The next committed start on the same host bounds how far an instance may overrun its lease.
    acs, ace = cs[lease_of], ce[lease_of]
    o = np.lexsort((acs, host))
    nxt, same = np.fmin(np.inf, h["b1"][host]), host[o][1:] == host[o][:-1]
    nxt[o[:-1][same]] = acs[o[1:][same]]
    defects = {
        "lease_deleted_early": lease_ids.gather(early),
        "lease_created_late": lease_ids.gather(late),
        "allocation_without_reservation": aids.tail(bad.size),
        "cancelled_before_start": aids.head(lease_of.size).filter(pl.Series(np.isin(lease_of, cancelled))),
    }
    allocs = {
        "host": host,
        "cs": acs,
        "ce": ace,
        "next": nxt,
        "user": user[lease_of],
        "rid": rids.gather(lease_of),
        "lease": lease_of,
        "leases": {
            "id": resources.head(n),
            "reservation_id": rids.head(n),
            "created_at": created,
            "updated_at": updated,
            "deleted_at": deleted,
        },
    }
    return defects, allocs


def _instances(rng, h: dict, al: dict, n_users: int, now: float, p=(0.1, 0.3, 0.35, 0.25), kinds=DEFECTS) -> tuple:
    """0..len(p)-1 sequential instances inside each allocation's committed span (p: the chance of each count),
    on-demand runs on Nova-only hosts, then each instance defect in `kinds` on a few instances no other defect
    touched. Returns (instances, defects as indices: every kind, empty if not in `kinds`)."""
    a = np.flatnonzero((al["cs"] < now) & (al["ce"] > al["cs"]))  # none in a lease cancelled before it began
    per = rng.choice(len(p), a.size, p=p)
    i, j = _spread(per)
    ai, nn = a[i], per[i]
    seg = (al["ce"] - al["cs"])[ai] / np.maximum(nn, 1)
    created = np.floor(al["cs"][ai] + seg * (j + rng.uniform(0, 0.15, ai.size)))
    end = np.floor(al["cs"][ai] + seg * (j + 1 - rng.uniform(0.02, 0.15, ai.size)))
    units = np.flatnonzero(~h["res_u"])
    owner, s, e = _slots(rng, h["n0_u"][units], np.fmin(h["n1_u"][units], now + 30 * DAY), DAY, 4 * DAY, 30 * DAY)
    x = {
        "host": np.r_[al["host"][ai], h["members"][h["first"][units[owner]]]],
        "alloc": np.r_[ai, np.full(s.size, -1)],
        "created": np.r_[created, s],
        "end": np.r_[end, e],
        "last": np.r_[j == nn - 1, np.zeros(s.size, bool)],
        "user": np.r_[al["user"][ai], rng.integers(0, n_users, s.size)],
    }
    build = np.minimum(rng.uniform(300, 1500, x["host"].size), 0.3 * (x["end"] - x["created"]))
    x["launched"] = x["created"] + np.floor(build)
    keep = x["launched"] < now  # the dump holds no instance still building
    order = np.lexsort((x["host"][keep], x["created"][keep]))  # Nova numbers instances as they are created
    x = {k: v[keep][order] for k, v in x.items()}
    n, ended = x["host"].size, x["end"] < now
    lease_end = _of_alloc(al["ce"], x["alloc"])
    overrun = np.floor(np.minimum((_of_alloc(al["next"], x["alloc"]) - lease_end) / 2, 6 * HOUR))  # before the next
    eligible = {
        "end_only_in_events": ended,
        "shelve_unshelve": ended,
        "failed_terminate_event": ended,
        "instance_past_lease_end": ended & x["last"] & (overrun >= 600) & (lease_end + overrun < now),
        "never_launched": ended,
        "node_null": np.ones(n, bool),
    }
    perm, taken, defects = rng.permutation(n), np.zeros(n, bool), {}
    for kind, mask in eligible.items():
        defects[kind] = np.sort(perm[(mask & ~taken)[perm]][: _few(n) if kind in kinds else 0])
        taken[defects[kind]] = True
    past = defects["instance_past_lease_end"]
    x["end"][past] = lease_end[past] + overrun[past]
    x["launched"][defects["never_launched"]] = np.nan
    x["gone"] = np.where(x["end"] < now, x["end"], np.nan)  # terminated_at and deleted_at (Ironic often has neither)
    x["gone"][np.r_[defects["end_only_in_events"], defects["shelve_unshelve"]]] = np.nan
    x["uuid"] = _uuids(rng, n)
    return x, defects


def _of_alloc(values: np.ndarray, alloc: np.ndarray) -> np.ndarray:
    """values[alloc] for the instances of an allocation, NaN for the others (and where there is none at all)."""
    return np.where(alloc >= 0, values[np.maximum(alloc, 0)], np.nan) if values.size else np.full(alloc.size, np.nan)


def _actions(rng, x: dict, defects: dict, now: float) -> tuple[dict, dict]:
    """Actions and events of every instance: create (its build fails if never launched), reboots, shelve, offload
    and unshelve on some, a failed delete on some, the delete at the end. Returns (actions, events), time-ordered."""
    n, life = x["host"].size, x["end"] - x["launched"]
    shelved, failed = defects["shelve_unshelve"], defects["failed_terminate_event"]
    ended = np.flatnonzero(x["end"] < now)
    shelve_at = np.full(n, np.nan)
    shelve_at[shelved] = x["launched"][shelved] + np.floor(0.3 * life[shelved])
    stop = np.fmin(np.fmin(shelve_at, x["end"]), now) - x["launched"]  # reboots happen before this
    rb = np.repeat(np.arange(n), np.where(np.isnan(x["launched"]), 0, rng.poisson(2.2, n)))
    build = np.nan_to_num(x["launched"] - x["created"], nan=60.0)
    kinds = [  # (action, instance, start, duration, success)
        ("create", np.arange(n), x["created"], build, ~np.isnan(x["launched"])),
        ("reboot", rb, np.floor(x["launched"][rb] + rng.uniform(0.05, 0.9, rb.size) * stop[rb]), 120.0, True),
        ("shelve", shelved, shelve_at[shelved], 60.0, True),
        ("shelveOffload", shelved, shelve_at[shelved] + 120, 60.0, True),
        ("unshelve", shelved, x["launched"][shelved] + np.floor(0.6 * life[shelved]), 300.0, True),
        ("delete", failed, x["launched"][failed] + np.floor(0.5 * life[failed]), 30.0, False),
        ("delete", ended, x["end"][ended], 60.0, True),
    ]
    inst = np.concatenate([kind[1] for kind in kinds])
    code = np.concatenate([np.full(kind[1].size, list(ACTIONS).index(kind[0])) for kind in kinds])
    t, dur, ok = (np.concatenate([np.broadcast_to(kind[c], kind[1].shape) for kind in kinds]) for c in (2, 3, 4))
    dur = np.minimum(dur, now - t)  # nothing finishes after the dump
    order = np.lexsort((code, inst, t))
    act = {"inst": inst[order], "code": code[order], "t": t[order], "dur": dur[order], "ok": ok[order]}
    # Events: the k-th event of an action starts 3k s after it; the last one (compute) ends with the action and
    # carries its result; the others (conductor) run on a controller and succeed.
    sizes = np.array([len(events) for events in ACTIONS.values()])[act["code"]]
    a, k = _spread(sizes)
    last, start, first_event = k == sizes[a] - 1, act["t"][a] + 3 * k, np.cumsum([0, *map(len, ACTIONS.values())])
    ev = {
        "action": a,
        "code": first_event[act["code"][a]] + k,
        "start": start,
        "ok": act["ok"][a] | ~last,
        "finish": np.where(last, act["t"][a] + act["dur"][a], start + 2),
        "compute": last,
    }
    order = np.lexsort((k, a, start))
    return act, {key: v[order] for key, v in ev.items()}


def _nova_tables(rng, h: dict, al: dict, x: dict, act: dict, ev: dict, people: dict, node_null, sink: _Sink) -> None:
    """nova.instances, nova_api.request_specs (the reservation as a hint or a flavor), nova.instance_actions and
    nova.instance_actions_events, each written and dropped before the next is built."""
    n, hw, gone = x["host"].size, x["hw"] if "hw" in x else h["hw"][h["kind"][x["host"]]], ~np.isnan(x["gone"])
    ids = np.arange(1, n + 1)
    user, project = people["user"].gather(x["user"]), people["project"].gather(people["of"][x["user"]])
    kvm = "flavor" in x  # KVM: a reserved instance has the hint and Blazar's flavor, the others x["flavor"]
    flavor = (x["alloc"] >= 0) & ((rng.random(n) < 0.15) | kvm)  # bare metal: the reservation in the flavor name
    state = np.where(gone, 0, np.where(np.isnan(x["launched"]), 2, 1))
    sink(
        "nova.instances",
        {
            "id": ids,
            "uuid": x["uuid"],
            "user_id": user,
            "project_id": project,
            "host": h["service"].gather(x["host"]),
            "display_name": "instance-" + pl.Series(ids).cast(pl.String),
            "launched_at": x["launched"],
            "node": h["hostname"].gather(x["host"]).scatter(node_null, None),
            "terminated_at": x["gone"],
            "created_at": x["created"],
            "updated_at": np.where(gone, x["gone"], np.fmax(x["launched"], x["created"])),
            "deleted_at": x["gone"],
            "deleted": _deleted(ids, x["gone"]),
            "vcpus": hw[:, 0],
            "memory_mb": hw[:, 1],
            "root_gb": hw[:, 2],
            "ephemeral_gb": 0,
            "vm_state": pl.Series(["deleted", "active", "error"]).gather(state),
            "reservation_id": _text(n, b"r-", _ALNUM[rng.integers(0, 36, (n, 8))]),
            "instance_type_id": 1 + flavor,
        },
    )
    hint = pl.when("hint").then(pl.concat_str(pl.lit('"reservation": ["'), "rid", pl.lit('"]'))).otherwise(pl.lit(""))
    name = pl.when("flavor").then(pl.concat_str(pl.lit("reservation:"), "rid")).otherwise(pl.col("name"))
    head = '{"nova_object.name": "RequestSpec", "nova_object.data": {"scheduler_hints": {'
    spec = pl.concat_str(
        pl.lit(head), hint, pl.lit('}, "flavor": {"nova_object.data": {"name": "'), name, pl.lit('"}}}}')
    )
    rid = al["rid"].gather(np.maximum(x["alloc"], 0)) if al["rid"].len() else pl.repeat("", n, eager=True)
    specs = (
        pl.DataFrame(
            {
                "rid": rid,
                "flavor": flavor,
                "hint": (x["alloc"] >= 0) & (~flavor | kvm),
                "name": x.get("flavor", "baremetal"),
            }
        )
        .select(spec)
        .to_series()
    )
    sink(
        "nova_api.request_specs",
        {"id": ids, "instance_uuid": x["uuid"], "spec": specs, "created_at": x["created"], "updated_at": x["created"]},
    )
    na, finish = act["inst"].size, act["t"] + act["dur"]
    sink(
        "nova.instance_actions",
        {
            "id": np.arange(1, na + 1),
            "action": pl.Series(list(ACTIONS)).gather(act["code"]),
            "instance_uuid": x["uuid"].gather(act["inst"]),
            "request_id": _uuids(rng, na, prefix=b"req-"),
            "user_id": user.gather(act["inst"]),
            "project_id": project.gather(act["inst"]),
            "start_time": act["t"],
            "finish_time": finish,
            "message": _maybe(~act["ok"], "Error"),
            "created_at": act["t"],
            "updated_at": finish,
            "deleted": 0,
        },
    )
    host = np.where(ev["compute"], x["host"][act["inst"][ev["action"]]], h["hostname"].len() + ev["action"] % 2)
    sink(
        "nova.instance_actions_events",
        {
            "id": np.arange(1, ev["action"].size + 1),
            "event": pl.Series(EVENTS).gather(ev["code"]),
            "action_id": ev["action"] + 1,
            "start_time": ev["start"],
            "finish_time": ev["finish"],
            "result": pl.Series(["Error", "Success"]).gather(ev["ok"].astype(np.uint32)),
            "traceback": _maybe(~ev["ok"], TRACEBACK),
            "created_at": ev["start"],
            "updated_at": ev["finish"],
            "deleted": 0,
            "host": pl.concat([h["hostname"], pl.Series(["controller-1", "controller-2"])]).gather(host),
            "details": _maybe(~ev["ok"], "Ironic node failed"),
        },
    )


def _archive(sink: _Sink, before: datetime) -> None:
    """`nova-manage db archive_deleted_rows --before`: the instances deleted before the time move from
    nova.instances into nova.shadow_instances (same columns), their actions into nova.shadow_instance_actions
    and those actions' events into nova.shadow_instance_actions_events. A uuid is archived when all its rows
    are (Nova's uuids are unique; a simulated duplicate keeps its rows together)."""
    instances = sink.read("nova.instances")
    old = (pl.col("deleted_at") < before).fill_null(False).all()
    uuids = instances.group_by("uuid").agg(old).filter("deleted_at")["uuid"].drop_nulls().implode()
    actions = sink.read("nova.instance_actions")
    ids = actions.filter(pl.col("instance_uuid").is_in(uuids).fill_null(False))["id"].implode()
    moved = {
        "instances": (instances, pl.col("uuid").is_in(uuids)),
        "instance_actions": (actions, pl.col("id").is_in(ids)),
        "instance_actions_events": (sink.read("nova.instance_actions_events"), pl.col("action_id").is_in(ids)),
    }
    for name, (frame, gone) in moved.items():
        sink.write(f"nova.shadow_{name}", frame.filter(gone.fill_null(False)))
        sink.write(f"nova.{name}", frame.filter(~gone.fill_null(False)))


def _typed(rng, sink: _Sink, resource: str, owner, value, made: np.ndarray, gone: np.ndarray) -> None:
    """Each Blazar host's node_type (each device's machine_name), soft-deleted with it, and its resource property."""
    ids, prop, device = np.arange(1, made.size + 1), _uuids(rng, 1), resource == "device"
    sink(
        f"blazar.{'device' if device else 'computehost'}_extra_capabilities",
        {
            "id": ids,
            "computehost_id": owner,
            "device_id": owner,
            "property_id": prop[0],
            "capability_value": value,
            "created_at": made,
            "updated_at": made,
            "deleted_at": gone,
            "deleted": _deleted(ids, gone),
        },
    )
    sink(
        "blazar.resource_properties",
        {
            "id": prop,
            "resource_type": resource,
            "private": False,
            "deleted": "0",
            "property_name": "machine_name" if device else "node_type",
            "created_at": np.full(1, -60 * DAY),
        },
    )


def _kvm_hosts(rng, h: dict, now: float, sink: _Sink) -> tuple[dict, dict]:
    """KVM hypervisors kvm-NNN: nova.compute_nodes (re-enrolled ones come back with 96 vCPUs: h["t_new"]), and for
    the reservable ones a Blazar host with node type compute_kvm. Each host's vCPUs are then cut into lanes (16
    vCPUs if reservable, 8 on demand) that play the bare-metal hosts' part in _leases and _instances (one slot or
    instance at a time), so no host is ever over-full. Returns (defects, Blazar ids by lane, with the lanes)."""
    n, re, res = h["kind"].size, h["reenrol"], np.flatnonzero(~h["nova_only"])
    h["hostname"] = h["service"] = "kvm-" + pl.Series(np.arange(1, n + 1)).cast(pl.String).str.zfill(3)
    h["vcpus"], h["t_new"] = rng.choice(np.array([48, 64, 96]), n), np.full(n, np.inf)
    h["vcpus"][re], h["t_new"][re] = rng.choice(np.array([48, 64]), re.size), h["t_re"]
    host, vcpus, end = np.r_[np.arange(n), re], np.r_[h["vcpus"], np.full(re.size, 96)], h["n1"].copy()
    end[re] = h["t_re"]
    rows = {
        "nova.compute_nodes": (np.arange(host.size), np.r_[h["n0"], h["t_re"]], np.r_[end, h["n1"][re]]),
        "blazar.computehosts": (res, h["b0"][res], h["b1"][res]),
    }
    for table, (row, made, gone) in rows.items():
        ids, name, vc = np.arange(1, row.size + 1), h["hostname"].gather(host[row]), vcpus[row]
        sink(
            table,
            {
                "id": ids,
                "uuid": _uuids(rng, row.size),
                "hypervisor_hostname": name,
                "host": name,
                "service_name": name,
                "hypervisor_type": "QEMU",
                "vcpus": vc,
                "memory_mb": vc * 4096,
                "local_gb": vc * 20,
                "reservable": 1,
                "cpu_allocation_ratio": 4.0,
                "ram_allocation_ratio": 1.0,
                "created_at": made,
                "updated_at": np.fmax(made, gone),
                "deleted_at": gone,
                "deleted": _deleted(ids, gone),
            },
        )
    _typed(rng, sink, "physical:host", ids, "compute_kvm", made, gone)  # the loop's last rows: Blazar's
    lane, pos = _spread(h["vcpus"] // np.where(h["nova_only"], 8, 16))  # lane -> host; a unit is 1-4 lanes
    size = np.bincount(np.cumsum((pos % 4 == 0) | h["nova_only"][lane] | (rng.random(lane.size) < 0.4)) - 1)
    first, bid = np.cumsum(size) - size, np.zeros(n, int)
    bid[res] = ids
    lanes = {
        "res_u": ~h["nova_only"][lane[first]],
        "members": np.arange(lane.size),
        "size": size,
        "first": first,
        "b1": h["b1"][lane],
        "host": lane,
        **{f"{k}_u": h[k][lane[first]] for k in ("n0", "n1", "b0", "b1")},
    }
    ids = {"bid": bid[lane], "dup_id": np.zeros(lane.size, int), "dup_from": np.full(lane.size, np.inf)}
    return {"reenrolled_host": np.arange(n, host.size) + 1}, ids | {"lanes": lanes}


def _kvm_flavors(rng, h: dict, lane: np.ndarray, al: dict, x: dict, sink: _Sink) -> None:
    """blazar.instance_reservations (a flavor per reservation; amount: its slots); slots and instances move from
    lanes to hosts and get vCPUs (reserved: the reservation's; on demand: 1-8), a flavor and their nodes: vcpus /
    vCPUs of the host's row valid at their start (the slot's committed start, the instance's created_at)."""
    rv, lv = rng.choice(np.array([2, 4, 8, 16]), al["leases"]["id"].len()), al["leases"]
    sink(
        "blazar.instance_reservations",
        {
            **lv,
            "vcpus": rv,
            "memory_mb": rv * 2048,
            "disk_gb": rv * 10,
            "amount": np.bincount(al["lease"], minlength=rv.size),
            "affinity": False,
            "resource_properties": "[]",
            "deleted": _deleted(lv["id"], lv["deleted_at"]),
        },
    )
    al["host"], x["host"], sv = lane[al["host"]], lane[x["host"]], rv[al["lease"]]
    vc = np.where(x["alloc"] >= 0, _of_alloc(sv, x["alloc"]), rng.choice(np.array([1, 2, 4, 8]), x["alloc"].size))
    names = pl.Series(["m1.small", "m1.medium", "m1.large", "m1.xlarge", "m1.xxlarge"])  # by log2 vcpus
    x["hw"], x["flavor"] = np.c_[vc, vc * 2048, vc * 10], names.gather(np.log2(vc).astype(int))
    x["nodes"] = vc / np.where(x["created"] >= h["t_new"][x["host"]], 96, h["vcpus"][x["host"]])
    al["nodes"] = sv / np.where(al["cs"] >= h["t_new"][al["host"]], 96, h["vcpus"][al["host"]])


def _edge(rng, h: dict, people: dict, users: int, now: float, sink: _Sink) -> tuple[dict, dict, dict]:
    """CHI@Edge: blazar.devices (a device lives as long as its Blazar row; id: h["hostname"]), their machine_name,
    device leases (as bare-metal ones; a unit is 1-2 devices) and zun.container: 0-2 per allocation on its device,
    one past its lease end. Returns (defects, allocations, containers)."""
    n, h["n0"], h["n1"], dev = h["kind"].size, h["b0"], h["b1"], h["hostname"]
    name = pl.Series(h["hw"][h["kind"], 0]) + "-" + pl.Series(np.arange(1, n + 1)).cast(pl.String).str.zfill(3)
    sink(
        "blazar.devices",
        {
            "id": dev,
            "name": name,
            "device_type": "container",
            "device_driver": "k8s",
            "reservable": 1,
            "created_at": h["b0"],
            "updated_at": h["b0"],
            "deleted_at": h["b1"],
            "deleted": _deleted(dev, h["b1"]),
        },
    )
    _typed(rng, sink, "device", dev, pl.Series(list(SITES["edge"][0])).gather(h["kind"]), h["b0"], h["b1"])
    ids = {"bid": np.arange(1, n + 1), "dup_id": np.zeros(n, int), "dup_from": np.full(n, np.inf), "uuid": dev}
    defects, al = _leases(rng, h, ids, people, now, sink, "device")
    x, past = _instances(rng, h, al, users, now, (0.2, 0.4, 0.4), ("instance_past_lease_end",))
    m, ended = x["host"].size, x["end"] < now
    status = np.where(ended, rng.choice(3, m, p=[0.75, 0.1, 0.15]), rng.choice(np.array([3, 4]), m, p=[0.9, 0.1]))
    pick = lambda *v: pl.Series(v).gather(rng.integers(0, len(v), m))  # noqa: E731
    sink(
        "zun.container",
        {
            "id": np.arange(1, m + 1),
            "uuid": x["uuid"],
            "name": "container-" + pl.Series(np.arange(1, m + 1)).cast(pl.String),
            "user_id": people["user"].gather(x["user"]),
            "project_id": people["project"].gather(people["of"][x["user"]]),
            "image": pick("python:3.11", "nginx:1.25", "ros:humble"),
            "cpu": pick(0.5, 1.0, 2.0),
            "memory": pick("256M", "512M", "1024M"),
            "host": name.gather(x["host"]),
            "created_at": x["created"],
            "status": pl.Series(["Deleted", "Error", "Stopped", "Running", "Created"]).gather(status),
            "status_reason": _maybe(status == 1, "OOMKilled"),
            "updated_at": np.where(ended, x["end"], x["launched"]),
        },
    )
    return defects | {"container_past_lease_end": x["uuid"].gather(past["instance_past_lease_end"])}, al, x


def _midnights(t0: datetime, now: float, tz: str) -> tuple[np.ndarray, pl.Series]:
    """The days of the time zone `tz` that overlap [t0, t0 + now): their starts in seconds since t0 (one more:
    the end of the last) and their dates (naive Datetime at midnight), by the standard library's zoneinfo."""
    zone = ZoneInfo(tz)
    first = t0.replace(tzinfo=UTC).astimezone(zone).date()
    starts, dates = [], []
    while not starts or starts[-1] < now:
        day = first + timedelta(days=len(dates))
        dates.append(datetime.combine(day, time()))
        starts.append((datetime.combine(day, time(), zone).astimezone(UTC).replace(tzinfo=None) - t0).total_seconds())
    return np.array(starts, dtype=np.int64), pl.Series(dates[:-1], dtype=pl.Datetime("us"))


def _truth(h: dict, al: dict, x: dict, now: float, t0: datetime, types=TYPES, tz: str = "UTC") -> tuple:
    """Exact node-hours per day (of the time zone `tz`), node type and metric of the clean history, by brute
    force: each intended interval cut to its parent's and to the window, spread over the days it touches,
    overlaps (whole seconds) times the span's nodes (1, or al/x["nodes"] on KVM) summed in a fixed order.
    Asserts that no host is ever counted more than once at an instant in a metric (its nodes summed over the
    spans covering it). Also returns the same per user (index) for the metrics a user holds: the lease's
    for committed, the instance's for the occupied ones."""
    res, r, o = np.flatnonzero(~h["nova_only"]), x["alloc"] >= 0, x["alloc"] < 0
    r, o = r & ~np.isnan(x["launched"]), o & ~np.isnan(x["launched"])
    ra, rh, oh, ah, xn = x["alloc"][r], x["host"][r], x["host"][o], al["host"], x.get("nodes", np.ones(r.size))
    spans = [  # per metric: host, start, end, nodes, user
        (np.arange(h["kind"].size), h["n0"], h["n1"], 1.0, None),
        (res, np.fmax(h["b0"], h["n0"])[res], np.fmin(h["b1"], h["n1"])[res], 1.0, None),
        (
            ah,
            np.fmax(al["cs"], h["b0"][ah]),
            np.fmin(al["ce"], np.fmin(h["b1"], h["n1"])[ah]),
            al.get("nodes", 1.0),
            al["user"],
        ),
        (rh, np.fmax(x["created"][r], al["cs"][ra]), np.fmin(x["end"][r], al["ce"][ra]), xn[r], x["user"][r]),
        (oh, np.fmax(x["created"][o], h["n0"][oh]), np.fmin(x["end"][o], h["n1"][oh]), xn[o], x["user"][o]),
    ]
    bounds, dates = _midnights(t0, now, tz)
    typ, days = np.where(h["nova_only"], len(types) - 1, h["kind"]), dates.len()
    sec, by_user = np.zeros((len(METRICS), days * len(types))), []
    for m, (host, s, e, w, user) in enumerate(spans):
        s, e = np.clip(s, 0, now).astype(np.int64), np.clip(np.fmin(e, now), 0, now).astype(np.int64)
        keep = e > s
        host, s, e, w = host[keep], s[keep], e[keep], np.broadcast_to(w, keep.shape)[keep]
        dv = np.r_[w, -w]  # per host in time, ends before starts: the level never exceeds one node
        level = np.cumsum(dv[np.lexsort((dv, np.r_[s, e], np.r_[host, host]))])
        assert level.max(initial=0) <= 1 + 1e-9, f"{METRICS[m]}: a host counted more than once"
        first = np.searchsorted(bounds, s, "right") - 1
        i, j = _spread(np.searchsorted(bounds, e - 1, "right") - first)
        day = first[i] + j
        overlap = np.minimum(e[i], bounds[day + 1]) - np.maximum(s[i], bounds[day])
        sec[m] = np.bincount(day * len(types) + typ[host][i], weights=overlap * w[i], minlength=days * len(types))
        if user is not None:
            cell = pl.DataFrame({"day": day, "type": typ[host][i], "user": user[keep][i], "sec": overlap * w[i]})
            by_user.append(cell.group_by("day", "type", "user").agg(pl.col("sec").sum()).with_columns(metric=m))
    present = np.unique(typ)
    hours = sec.reshape(len(METRICS), days, len(types))[:, :, present].transpose(1, 2, 0) / HOUR
    di, ti, mi = np.indices(hours.shape).reshape(3, -1)
    truth = pl.DataFrame(
        {
            "date": dates.gather(di),
            "node_type": pl.Series(types).gather(present[ti]),
            "metric": pl.Series(METRICS).gather(mi),
            "hours": hours.ravel(),
        }
    )
    users = pl.concat(by_user).filter(pl.col("sec") > 0).sort("metric", "day", "type", "user")
    named = {"date": dates.gather(users["day"]), "node_type": pl.Series(types).gather(users["type"])}
    named["metric"] = pl.Series(METRICS).gather(users["metric"])
    return truth, pl.DataFrame(named).with_columns(users["user"], (users["sec"] / HOUR).alias("hours"))


def _legacy(rng, truth: pl.DataFrame) -> tuple[dict, pl.DataFrame]:
    """The old report, derived from the truth by its column mapping, with 5-8 cells perturbed (and recorded)."""
    keys = truth.gather_every(len(METRICS))
    tot, res, com, occ, _ = truth["hours"].to_numpy().reshape(-1, len(METRICS)).T
    cells = np.column_stack([tot, tot - res, com - occ, occ, res - com])
    pick = _pick(rng, cells.ravel() > 24, int(rng.integers(5, 9)))  # at least a node-day: beyond the tolerance
    factor = np.where(rng.random(pick.size) < 0.5, 0.0, rng.uniform(1.2, 1.5, pick.size))
    before = cells.ravel()[pick]
    cells.ravel()[pick] = before * factor
    row, col = np.divmod(pick, len(LEGACY))
    perturbed = pl.DataFrame(
        {
            "date": keys["date"].gather(row).dt.strftime("%Y-%m-%d"),
            "node_type": keys["node_type"].gather(row),
            "column": pl.Series(LEGACY).gather(col),
            "truth": before,
            "legacy": before * factor,
        }
    )
    return {"date": keys["date"], "node_type": keys["node_type"], **dict(zip(LEGACY, cells.T, strict=True))}, perturbed


def simulate(
    out: str | Path,
    seed: int = 0,
    hosts: int = 60,
    days: int = 120,
    start: datetime = datetime(2024, 1, 1),
    kind: str = "baremetal",
    defects: bool = True,
    timezone: str = "UTC",
    archive_days: int | None = None,
) -> dict:
    """Write RAW_DIR/<schema>.<table>.parquet files plus RAW_DIR/simulation/ ground truth; return a summary dict
    (row counts per table, defects per kind). Same arguments, same bytes. `start` should be a midnight (UTC).
    `kind` (SITES): baremetal (Ironic), kvm (libvirt hosts, flavor:instance reservations) or edge (Blazar devices,
    Zun containers); only bare metal has the legacy report, and its simulation.json omits the kind. `timezone`
    (an IANA name) sets the days of the truth and of the legacy report (Chameleon's splits days in US/Central).
    `archive_days` N: the instances deleted more than N days before the end are archived (the nova.shadow_*
    tables, `_archive`), as `nova-manage db archive_deleted_rows --before` does; the truth is the same."""
    if kind not in SITES:
        raise ValueError(f"kind must be one of {', '.join(SITES)}, not {kind!r}")
    rng, now, out = np.random.default_rng(seed), days * DAY, Path(out)
    types, ondemand, racks, defect_tables = SITES[kind]
    (out / "simulation").mkdir(parents=True, exist_ok=True)
    sink, users = _Sink(out, start, defects), max(10, hosts // 4)
    h = _hosts(rng, hosts, now, types, ondemand, racks)
    people = {"user": _uuids(rng, users, dashes=False), "project": _uuids(rng, max(3, users // 3), dashes=False)}
    people["of"] = rng.integers(0, people["project"].len(), users)
    if kind == "edge":
        cases, al, x = _edge(rng, h, people, users, now, sink)
    else:
        cases, ids = (_host_tables if kind == "baremetal" else _kvm_hosts)(rng, h, now, sink)
        kvm, lh = kind == "kvm", ids.get("lanes", h)
        lease_defects, al = _leases(rng, lh, ids, people, now, sink, "flavor:instance" if kvm else "physical:host")
        x, inst_defects = _instances(rng, lh, al, users, now, *[(0.2, 0.4, 0.4), defect_tables][: 2 * kvm])
        if kvm:
            _kvm_flavors(rng, h, lh["host"], al, x, sink)
        else:  # Blazar always has the table, empty on a site without KVM slots
            sink("blazar.instance_reservations", {"id": pl.Series([], dtype=pl.String)})
        act, ev = _actions(rng, x, inst_defects, now)
        _nova_tables(rng, h, al, x, act, ev, people, inst_defects["node_null"], sink)
        if archive_days is not None:
            _archive(sink, start + timedelta(days=days - archive_days))
        cases |= lease_defects | {k: x["uuid"].gather(v) for k, v in inst_defects.items()}
    truth, by_user = _truth(h, al, x, now, start, [*types, "unknown"], timezone)
    truth.write_parquet(out / "simulation" / "truth_daily.parquet", compression="zstd", statistics=False)
    by_user = by_user.with_columns(
        user_id=people["user"].gather(by_user["user"]),
        project_id=people["project"].gather(people["of"][by_user["user"]]),
    )
    by_user.drop("user").write_parquet(out / "simulation" / "truth_by_user.parquet", compression="zstd")
    perturbed = pl.DataFrame()
    if kind == "baremetal":
        legacy, perturbed = _legacy(rng, truth)
        sink("chameleon_usage.node_usage_report_cache", legacy)
    summary = {
        "arguments": {"seed": seed, "hosts": hosts, "days": days, "start": start.isoformat()}
        | ({} if kind == "baremetal" else {"kind": kind})
        | ({} if timezone == "UTC" else {"timezone": timezone})
        | ({} if archive_days is None else {"archive_days": archive_days}),
        "window": {"start": start.isoformat(), "end": (start + timedelta(days=days)).isoformat()},
        "tables": sink.counts,
        "defects": {k: _ids(cases[k]) if defects else [] for k in defect_tables if k in REJECTED},
        "inactive": {k: _ids(cases[k]) for k in defect_tables if k in NEVER_ACTIVE},
        "cases": {k: _ids(cases[k]) for k in defect_tables if k not in (*REJECTED, *NEVER_ACTIVE)},
        "case_tables": defect_tables,
        "legacy_perturbed": perturbed.to_dicts(),
    }
    (out / "simulation" / "simulation.json").write_text(json.dumps(summary, indent=1) + "\n")
    return {**summary, "defects": {kind: len(ids) for kind, ids in summary["defects"].items()}}


def _ids(values) -> list:
    """A case's row keys as JSON values."""
    return pl.Series(values).to_list()


MAX_HOST_DAYS = 25_000_000  # the largest benchmark site is 4,000 hosts x 10 years (14.6 M host-days)
BOUNDS = {"seed": (0, 2**32 - 1), "hosts": (2, 100_000), "days": (1, 36_500)}


def generate(
    out: Path,
    kind: str = "baremetal",
    seed: int = 0,
    hosts: int = 60,
    days: int = 120,
    defects: bool = True,
    timezone: str = "UTC",
    archive_days: int | None = None,
) -> dict:
    """The engine's entry point (`simulate: {generator: chameleon, ...}` in a sites file, `engine simulate`):
    the parameters checked, each refusal one line (ValueError), then `simulate`."""
    if kind not in SITES:
        raise ValueError(f"kind: expected one of {', '.join(SITES)}, got {kind!r}")
    for name, (low, high) in BOUNDS.items():
        value = {"seed": seed, "hosts": hosts, "days": days}[name]
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ValueError(f"{name}: expected a whole number from {low:,} to {high:,}, got {value!r}")
    if hosts * days > MAX_HOST_DAYS:
        raise ValueError(f"hosts {hosts} x days {days} is more than {MAX_HOST_DAYS:,} host-days (about 40 M rows)")
    if not isinstance(defects, bool):
        raise ValueError(f"defects: expected true or false, got {defects!r}")
    if timezone not in available_timezones():
        raise ValueError(f"timezone: expected an IANA time zone name (e.g. America/Chicago), got {timezone!r}")
    whole = isinstance(archive_days, int) and not isinstance(archive_days, bool)
    if archive_days is not None and not (whole and 0 <= archive_days <= BOUNDS["days"][1]):
        raise ValueError(f"archive_days: expected a whole number from 0 to {BOUNDS['days'][1]:,}, got {archive_days!r}")
    return simulate(
        out, seed=seed, hosts=hosts, days=days, kind=kind, defects=defects, timezone=timezone, archive_days=archive_days
    )
