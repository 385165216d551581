"""A deterministic synthetic bare-metal OpenStack site in the upstream table layout, with its ground truth.

`simulate(out)` writes OUT/<schema>.<table>.parquet (the raw tables the engine reads, SCHEMAS) and OUT/simulation/:
truth_daily.parquet (date, node_type, metric, hours: the exact node-hours per UTC day of the window, node type and
metric of the clean intended history) and simulation.json (arguments, window, rows per table, `defects`: kind ->
ids of the affected rows in the table `defect_tables` names, `legacy_perturbed`: the legacy report cells changed).
It is the demo data, the test oracle and the benchmark input, so it is exact, reproducible and fast: everything is
vectorized (numpy + polars) and drawn from one seeded numpy Generator. Inside, times are float seconds since
`start` (whole seconds, NaN = null) until they are written. The dump is taken at start + days: no row is recorded
later; nothing is older than start - 60 days.
"""

import json
from datetime import datetime, timedelta
from pathlib import Path

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
        "blazar.computehost_allocations": "allocation_without_reservation",
        "nova.instances": "end_only_in_events shelve_unshelve failed_terminate_event instance_past_lease_end "
        "never_launched node_null",
    }.items()
    for kind in kinds.split()
}
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

    def __init__(self, out: Path, t0: datetime):
        self.out, self.t0, self.counts = out, t0, {}

    def __call__(self, table: str, cols: dict) -> None:
        """Columns in the declared order and types: seconds become times, scalars repeat, absent ones are null."""
        n = next(len(v) for v in cols.values() if isinstance(v, np.ndarray | pl.Series))
        frame = {}
        for name, dtype in SCHEMAS[table].items():
            v = cols.get(name)
            if dtype == pl.Datetime("us") and isinstance(v, np.ndarray):
                v = _ts(v, self.t0)
            elif not isinstance(v, np.ndarray | pl.Series):
                v = pl.repeat(v, n, dtype=dtype, eager=True)
            frame[name] = pl.Series(name, v).cast(dtype)
        pl.DataFrame(frame).write_parquet(self.out / f"{table}.parquet", compression="zstd", statistics=False)
        self.counts[table] = n


def _hosts(rng, n: int, now: float) -> dict:
    """Hosts and lifetimes. Reservable hosts of one node type come in units (racks) of 1-4 hosts that share a
    lifetime and can be leased together; each Nova-only (on-demand) host is a unit of its own."""
    kind = rng.choice(len(NODE_TYPES), n, p=[w for w, *_ in NODE_TYPES.values()])
    nova_only = rng.permutation(n) < max(1, n // 10)
    order = np.lexsort((kind, nova_only))
    rack = np.repeat(np.arange(n), rng.choice(4, n, p=[0.7, 0.15, 0.1, 0.05]) + 1)[:n]
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
    h["first"], h["hw"] = np.cumsum(h["size"]) - h["size"], np.array([v[1:] for v in NODE_TYPES.values()])
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
    sink("nova.compute_nodes", {
        "id": ids, "uuid": _uuids(rng, ids.size), "hypervisor_type": "ironic", "host": h["service"].gather(host),
        "hypervisor_hostname": pl.concat([h["hostname"].gather(host[:-2]), _uuids(rng, 2)]),
        "cpu_allocation_ratio": 1.0, "ram_allocation_ratio": 1.0, "created_at": created, "updated_at": updated,
        "deleted_at": deleted, "deleted": _deleted(ids, deleted), **_hardware(h, host),
    })  # fmt: skip
    defects = {"reenrolled_host": ids[n:-2], "compute_node_null_created": ids[-2:-1],
               "compute_node_deleted_before_created": ids[-1:]}  # fmt: skip
    # Blazar: every reservable host, then a few duplicates (live, created later, inside the original's time).
    res = np.flatnonzero(~h["nova_only"])
    dup = _pick(rng, np.isnan(h["b1"]) & ~h["nova_only"] & (h["b0"] < now / 2), max(1, n // 200))
    dup_at = np.floor(h["b0"][dup] + rng.uniform(0.2, 0.5, dup.size) * (now - h["b0"][dup]))
    bhost, bids = np.r_[res, dup], np.arange(1, res.size + dup.size + 1)
    made, gone = np.r_[h["b0"][res], dup_at], np.r_[h["b1"][res], np.full(dup.size, np.nan)]
    sink("blazar.computehosts", {
        "id": bids, "hypervisor_hostname": h["hostname"].gather(bhost), "service_name": h["service"].gather(bhost),
        "hypervisor_type": "ironic", "reservable": 1, "created_at": made, "updated_at": made, "deleted_at": gone,
        "deleted": _deleted(bids, gone), **_hardware(h, bhost),
    })  # fmt: skip
    defects["duplicate_blazar_host"] = bids[res.size :]
    defects["retired_host_capabilities_deleted"] = bids[: res.size][~np.isnan(h["b1"][res])]
    # Capabilities of every Blazar row: node_type, cpu_arch and, on GPU hosts, gpu.gpu_model.
    gpu = np.flatnonzero(h["kind"][bhost] == list(NODE_TYPES).index("gpu_rtx_6000"))
    row = np.r_[np.arange(bids.size), np.arange(bids.size), gpu]
    prop = np.repeat([0, 1, 2], [bids.size, bids.size, gpu.size])
    order = np.lexsort((prop, row))
    row, prop = row[order], prop[order]
    value = np.where(prop == 0, h["kind"][bhost][row], len(NODE_TYPES) + prop - 1)
    prop_ids, cap_ids = _uuids(rng, 3), np.arange(1, row.size + 1)
    sink("blazar.computehost_extra_capabilities", {
        "id": cap_ids, "computehost_id": bids[row], "property_id": prop_ids.gather(prop),
        "capability_value": pl.Series([*NODE_TYPES, "x86_64", "RTX 6000"]).gather(value), "created_at": made[row],
        "updated_at": made[row], "deleted_at": gone[row], "deleted": _deleted(cap_ids, gone[row]),
    })  # fmt: skip
    sink("blazar.resource_properties", {
        "id": prop_ids, "resource_type": "physical:host", "property_name": pl.Series(["node_type", "cpu_arch",
        "gpu.gpu_model"]), "private": False, "created_at": np.full(3, -60 * DAY), "deleted": "0",
    })  # fmt: skip
    bid, dup_id, dup_from = np.zeros(n, int), np.zeros(n, int), np.full(n, np.inf)
    bid[res], dup_id[dup], dup_from[dup] = bids[: res.size], bids[res.size :], dup_at
    return defects, {"bid": bid, "dup_id": dup_id, "dup_from": dup_from}


def _leases(rng, h: dict, ids: dict, people: dict, now: float, sink: _Sink) -> tuple[dict, dict]:
    """Per unit, leases back to back with gaps inside its Blazar lifetime, booked 0-30 days ahead; a lease takes
    1..size hosts of its unit, so no host is ever in two leases at once. Returns (defects, allocations)."""
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
    cs, ce = np.maximum(start, created), np.fmin(end, deleted)  # the committed span
    updated = np.where(np.isnan(deleted), np.where(end < now, end, np.where(start < now, start, created)), deleted)
    phase = np.where(ce <= now, 0, np.where(start <= now, 1, 2))
    user, lease_ids = rng.integers(0, people["user"].len(), n), _uuids(rng, n)
    sink("blazar.leases", {
        "id": lease_ids, "name": "lease-" + pl.Series(np.arange(1, n + 1)).cast(pl.String),
        "user_id": people["user"].gather(user), "project_id": people["project"].gather(people["of"][user]),
        "start_date": start, "end_date": end, "status": pl.Series(["TERMINATED", "ACTIVE", "PENDING"]).gather(phase),
        "degraded": False, "created_at": created, "updated_at": updated, "deleted_at": deleted,
        "deleted": _deleted(lease_ids, deleted),
    })  # fmt: skip
    # One physical:host reservation per lease; some leases also hold a floating IP or a network.
    extra = _pick(rng, np.ones(n, bool), n // 7)
    rl, rtype = np.r_[np.arange(n), extra], np.r_[np.zeros(n, int), rng.integers(1, 3, extra.size)]
    rids = _uuids(rng, rl.size)
    sink("blazar.reservations", {
        "id": rids, "lease_id": lease_ids.gather(rl), "resource_id": _uuids(rng, rl.size),
        "resource_type": pl.Series(["physical:host", "virtual:floatingip", "network"]).gather(rtype),
        "status": pl.Series(["deleted", "active", "pending"]).gather(phase[rl]), "missing_resources": False,
        "resources_changed": False, "created_at": created[rl], "updated_at": updated[rl], "deleted_at": deleted[rl],
        "deleted": _deleted(rids, deleted[rl]),
    })  # fmt: skip
    # Allocations: k hosts of the lease's unit from a random offset; a duplicated host's later leases may name
    # the duplicate row. Two more rows name a reservation that does not exist.
    u = units[owner]
    k, off = rng.integers(1, h["size"][u] + 1), rng.integers(0, h["size"][u])
    lease_of, j = _spread(k)
    host = h["members"][h["first"][u][lease_of] + (off[lease_of] + j) % h["size"][u][lease_of]]
    to_dup = (created[lease_of] >= ids["dup_from"][host]) & (rng.random(host.size) < 0.5)
    chid = np.r_[np.where(to_dup, ids["dup_id"][host], ids["bid"][host]), rng.choice(ids["bid"][ids["bid"] > 0], 2)]
    aids, at = _uuids(rng, chid.size), np.r_[created[lease_of], np.floor(rng.uniform(0, now, 2))]
    gone = np.r_[deleted[lease_of], np.nan, np.nan]
    sink("blazar.computehost_allocations", {
        "id": aids, "compute_host_id": pl.Series(chid).cast(pl.String), "created_at": at,
        "reservation_id": pl.concat([rids.gather(lease_of), _uuids(rng, 2)]),
        "updated_at": np.r_[updated[lease_of], at[-2:]], "deleted_at": gone, "deleted": _deleted(aids, gone),
    })  # fmt: skip
    # The next committed start on the same host bounds how far an instance may overrun its lease.
    acs, ace = cs[lease_of], ce[lease_of]
    o = np.lexsort((acs, host))
    nxt, same = np.fmin(np.inf, h["b1"][host]), host[o][1:] == host[o][:-1]
    nxt[o[:-1][same]] = acs[o[1:][same]]
    defects = {"lease_deleted_early": lease_ids.gather(early), "lease_created_late": lease_ids.gather(late),
               "allocation_without_reservation": aids[-2:]}  # fmt: skip
    allocs = {"host": host, "cs": acs, "ce": ace, "next": nxt, "user": user[lease_of], "rid": rids.gather(lease_of)}
    return defects, allocs


def _instances(rng, h: dict, al: dict, n_users: int, now: float) -> tuple[dict, dict]:
    """0-3 sequential instances inside each allocation's committed span, on-demand runs on Nova-only hosts, then
    each instance defect on a few instances no other defect touched. Returns (instances, defects as indices)."""
    a = np.flatnonzero(al["cs"] < now)
    per = rng.choice(4, a.size, p=[0.1, 0.3, 0.35, 0.25])
    i, j = _spread(per)
    ai, nn = a[i], per[i]
    seg = (al["ce"] - al["cs"])[ai] / np.maximum(nn, 1)
    created = np.floor(al["cs"][ai] + seg * (j + rng.uniform(0, 0.15, ai.size)))
    end = np.floor(al["cs"][ai] + seg * (j + 1 - rng.uniform(0.02, 0.15, ai.size)))
    units = np.flatnonzero(~h["res_u"])
    owner, s, e = _slots(rng, h["n0_u"][units], np.fmin(h["n1_u"][units], now + 30 * DAY), DAY, 4 * DAY, 30 * DAY)
    x = {"host": np.r_[al["host"][ai], h["members"][h["first"][units[owner]]]], "alloc": np.r_[ai, np.full(s.size, -1)],
         "created": np.r_[created, s], "end": np.r_[end, e], "last": np.r_[j == nn - 1, np.zeros(s.size, bool)],
         "user": np.r_[al["user"][ai], rng.integers(0, n_users, s.size)]}  # fmt: skip
    build = np.minimum(rng.uniform(300, 1500, x["host"].size), 0.3 * (x["end"] - x["created"]))
    x["launched"] = x["created"] + np.floor(build)
    keep = x["launched"] < now  # the dump holds no instance still building
    order = np.lexsort((x["host"][keep], x["created"][keep]))  # Nova numbers instances as they are created
    x = {k: v[keep][order] for k, v in x.items()}
    n, ended = x["host"].size, x["end"] < now
    lease_end = np.where(x["alloc"] >= 0, al["ce"][x["alloc"]], np.nan)
    overrun = np.floor(np.minimum((al["next"][x["alloc"]] - lease_end) / 2, 6 * HOUR))  # stays before the next lease
    eligible = {"end_only_in_events": ended, "shelve_unshelve": ended, "failed_terminate_event": ended,
                "instance_past_lease_end": ended & x["last"] & (overrun >= 600) & (lease_end + overrun < now),
                "never_launched": ended, "node_null": np.ones(n, bool)}  # fmt: skip
    perm, taken, defects = rng.permutation(n), np.zeros(n, bool), {}
    for kind, mask in eligible.items():
        defects[kind] = np.sort(perm[(mask & ~taken)[perm]][: _few(n)])
        taken[defects[kind]] = True
    past = defects["instance_past_lease_end"]
    x["end"][past] = lease_end[past] + overrun[past]
    x["launched"][defects["never_launched"]] = np.nan
    x["gone"] = np.where(x["end"] < now, x["end"], np.nan)  # terminated_at and deleted_at (Ironic often has neither)
    x["gone"][np.r_[defects["end_only_in_events"], defects["shelve_unshelve"]]] = np.nan
    x["uuid"] = _uuids(rng, n)
    return x, defects


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
    ]  # fmt: skip
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
    ev = {"action": a, "code": first_event[act["code"][a]] + k, "start": start, "ok": act["ok"][a] | ~last,
          "finish": np.where(last, act["t"][a] + act["dur"][a], start + 2), "compute": last}  # fmt: skip
    order = np.lexsort((k, a, start))
    return act, {key: v[order] for key, v in ev.items()}


def _nova_tables(rng, h: dict, al: dict, x: dict, act: dict, ev: dict, people: dict, node_null, sink: _Sink) -> None:
    """nova.instances, nova_api.request_specs (the reservation as a hint or a flavor), nova.instance_actions and
    nova.instance_actions_events, each written and dropped before the next is built."""
    n, hw, gone = x["host"].size, h["hw"][h["kind"][x["host"]]], ~np.isnan(x["gone"])
    ids = np.arange(1, n + 1)
    user, project = people["user"].gather(x["user"]), people["project"].gather(people["of"][x["user"]])
    flavor = (x["alloc"] >= 0) & (rng.random(n) < 0.15)  # the reservation in the flavor name instead of a hint
    state = np.where(gone, 0, np.where(np.isnan(x["launched"]), 2, 1))
    sink("nova.instances", {
        "id": ids, "uuid": x["uuid"], "user_id": user, "project_id": project, "host": h["service"].gather(x["host"]),
        "display_name": "instance-" + pl.Series(ids).cast(pl.String), "launched_at": x["launched"],
        "node": h["hostname"].gather(x["host"]).scatter(node_null, None), "terminated_at": x["gone"],
        "created_at": x["created"], "updated_at": np.where(gone, x["gone"], np.fmax(x["launched"], x["created"])),
        "deleted_at": x["gone"], "deleted": _deleted(ids, x["gone"]), "vcpus": hw[:, 0], "memory_mb": hw[:, 1],
        "root_gb": hw[:, 2], "ephemeral_gb": 0, "vm_state": pl.Series(["deleted", "active", "error"]).gather(state),
        "reservation_id": _text(n, b"r-", _ALNUM[rng.integers(0, 36, (n, 8))]), "instance_type_id": 1 + flavor,
    })  # fmt: skip
    hint = pl.when("hint").then(pl.concat_str(pl.lit('"reservation": ["'), "rid", pl.lit('"]'))).otherwise(pl.lit(""))
    name = pl.when("flavor").then(pl.concat_str(pl.lit("reservation:"), "rid")).otherwise(pl.lit("baremetal"))
    head = '{"nova_object.name": "RequestSpec", "nova_object.data": {"scheduler_hints": {'
    spec = pl.concat_str(
        pl.lit(head), hint, pl.lit('}, "flavor": {"nova_object.data": {"name": "'), name, pl.lit('"}}}}')
    )
    specs = pl.DataFrame({"rid": al["rid"].gather(np.maximum(x["alloc"], 0)), "hint": (x["alloc"] >= 0) & ~flavor,
                          "flavor": flavor}).select(spec).to_series()  # fmt: skip
    sink("nova_api.request_specs", {"id": ids, "instance_uuid": x["uuid"], "spec": specs, "created_at": x["created"],
                                    "updated_at": x["created"]})  # fmt: skip
    na, finish = act["inst"].size, act["t"] + act["dur"]
    sink("nova.instance_actions", {
        "id": np.arange(1, na + 1), "action": pl.Series(list(ACTIONS)).gather(act["code"]),
        "instance_uuid": x["uuid"].gather(act["inst"]), "request_id": _uuids(rng, na, prefix=b"req-"),
        "user_id": user.gather(act["inst"]), "project_id": project.gather(act["inst"]), "start_time": act["t"],
        "finish_time": finish, "message": _maybe(~act["ok"], "Error"), "created_at": act["t"], "updated_at": finish,
        "deleted": 0,
    })  # fmt: skip
    host = np.where(ev["compute"], x["host"][act["inst"][ev["action"]]], h["hostname"].len() + ev["action"] % 2)
    sink("nova.instance_actions_events", {
        "id": np.arange(1, ev["action"].size + 1), "event": pl.Series(EVENTS).gather(ev["code"]),
        "action_id": ev["action"] + 1, "start_time": ev["start"], "finish_time": ev["finish"],
        "result": pl.Series(["Error", "Success"]).gather(ev["ok"].astype(np.uint32)),
        "traceback": _maybe(~ev["ok"], TRACEBACK), "created_at": ev["start"], "updated_at": ev["finish"], "deleted": 0,
        "host": pl.concat([h["hostname"], pl.Series(["controller-1", "controller-2"])]).gather(host),
        "details": _maybe(~ev["ok"], "Ironic node failed"),
    })  # fmt: skip


def _truth(h: dict, al: dict, x: dict, now: float, t0: datetime) -> pl.DataFrame:
    """Exact node-hours per UTC day, node type and metric of the clean history, by brute force: each intended
    interval cut to its parent's and to the window, spread over the days it touches, overlaps summed in whole
    seconds (exact in float64, in a fixed order). Asserts that no host is counted twice at once in a metric."""
    res, r, o = np.flatnonzero(~h["nova_only"]), x["alloc"] >= 0, x["alloc"] < 0
    r, o = r & ~np.isnan(x["launched"]), o & ~np.isnan(x["launched"])
    ra, rh, oh, ah = x["alloc"][r], x["host"][r], x["host"][o], al["host"]
    spans = [  # per metric: host, start, end
        (np.arange(h["kind"].size), h["n0"], h["n1"]),
        (res, np.fmax(h["b0"], h["n0"])[res], np.fmin(h["b1"], h["n1"])[res]),
        (ah, np.fmax(al["cs"], h["b0"][ah]), np.fmin(al["ce"], np.fmin(h["b1"], h["n1"])[ah])),
        (rh, np.fmax(x["created"][r], al["cs"][ra]), np.fmin(x["end"][r], al["ce"][ra])),
        (oh, np.fmax(x["created"][o], h["n0"][oh]), np.fmin(x["end"][o], h["n1"][oh])),
    ]
    typ, days, d = np.where(h["nova_only"], len(NODE_TYPES), h["kind"]), int(now // DAY), int(DAY)
    sec = np.zeros((len(METRICS), days * len(TYPES)))
    for m, (host, s, e) in enumerate(spans):
        s, e = np.clip(s, 0, now).astype(np.int64), np.clip(np.fmin(e, now), 0, now).astype(np.int64)
        host, s, e = host[e > s], s[e > s], e[e > s]
        i = np.lexsort((s, host))
        assert np.all((s[i][1:] >= e[i][:-1]) | (host[i][1:] != host[i][:-1])), f"{METRICS[m]}: a host counted twice"
        i, j = _spread((e + d - 1) // d - s // d)
        day = s[i] // d + j
        overlap = np.minimum(e[i], (day + 1) * d) - np.maximum(s[i], day * d)
        sec[m] = np.bincount(day * len(TYPES) + typ[host][i], weights=overlap, minlength=days * len(TYPES))
    present = np.unique(typ)
    hours = sec.reshape(len(METRICS), days, len(TYPES))[:, :, present].transpose(1, 2, 0) / HOUR
    di, ti, mi = np.indices(hours.shape).reshape(3, -1)
    return pl.DataFrame({"date": _ts(di * DAY, t0), "node_type": pl.Series(TYPES).gather(present[ti]),
                         "metric": pl.Series(METRICS).gather(mi), "hours": hours.ravel()})  # fmt: skip


def _legacy(rng, truth: pl.DataFrame) -> tuple[dict, pl.DataFrame]:
    """The old report, derived from the truth by its column mapping, with 5-8 cells perturbed (and recorded)."""
    keys = truth.gather_every(len(METRICS))
    tot, res, com, occ, _ = truth["hours"].to_numpy().reshape(-1, len(METRICS)).T
    cells = np.column_stack([tot, tot - res, com - occ, occ, res - com])
    pick = _pick(rng, cells.ravel() > 0, int(rng.integers(5, 9)))
    factor = np.where(rng.random(pick.size) < 0.5, 0.0, rng.uniform(1.2, 1.5, pick.size))
    before = cells.ravel()[pick]
    cells.ravel()[pick] = before * factor
    row, col = np.divmod(pick, len(LEGACY))
    perturbed = pl.DataFrame({"date": keys["date"].gather(row).dt.strftime("%Y-%m-%d"),
                              "node_type": keys["node_type"].gather(row), "column": pl.Series(LEGACY).gather(col),
                              "truth": before, "legacy": before * factor})  # fmt: skip
    return {"date": keys["date"], "node_type": keys["node_type"], **dict(zip(LEGACY, cells.T, strict=True))}, perturbed


def simulate(
    out: str | Path, seed: int = 0, hosts: int = 60, days: int = 120, start: datetime = datetime(2024, 1, 1)
) -> dict:
    """Write RAW_DIR/<schema>.<table>.parquet files plus RAW_DIR/simulation/ ground truth; return a summary dict
    (row counts per table, defects per kind). Same arguments, same bytes. `start` should be a midnight (UTC)."""
    rng, now, out = np.random.default_rng(seed), days * DAY, Path(out)
    (out / "simulation").mkdir(parents=True, exist_ok=True)
    sink, users = _Sink(out, start), max(10, hosts // 4)
    h = _hosts(rng, hosts, now)
    people = {"user": _uuids(rng, users, dashes=False), "project": _uuids(rng, max(3, users // 3), dashes=False)}
    people["of"] = rng.integers(0, people["project"].len(), users)
    defects, ids = _host_tables(rng, h, now, sink)
    lease_defects, al = _leases(rng, h, ids, people, now, sink)
    x, inst_defects = _instances(rng, h, al, users, now)
    act, ev = _actions(rng, x, inst_defects, now)
    _nova_tables(rng, h, al, x, act, ev, people, inst_defects["node_null"], sink)
    defects |= lease_defects | {k: x["uuid"].gather(v) for k, v in inst_defects.items()}
    truth = _truth(h, al, x, now, start)
    truth.write_parquet(out / "simulation" / "truth_daily.parquet", compression="zstd", statistics=False)
    legacy, perturbed = _legacy(rng, truth)
    sink("chameleon_usage.node_usage_report_cache", legacy)
    summary = {
        "arguments": {"seed": seed, "hosts": hosts, "days": days, "start": start.isoformat()},
        "window": {"start": start.isoformat(), "end": (start + timedelta(days=days)).isoformat()},
        "tables": sink.counts,
        "defects": {kind: pl.Series(defects[kind]).to_list() for kind in DEFECTS},
        "defect_tables": DEFECTS,
        "legacy_perturbed": perturbed.to_dicts(),
    }
    (out / "simulation" / "simulation.json").write_text(json.dumps(summary, indent=1) + "\n")
    return {**summary, "defects": {kind: len(ids) for kind, ids in summary["defects"].items()}}


def cached_site(key: str, params: dict | None, announce=lambda path: None) -> Path:
    """A simulated site generated once into the user's cache, keyed by its parameters and the engine version."""
    import os
    import shutil

    from engine import __version__

    args = {"seed": 0, "hosts": 60, "days": 120} | {k: v for k, v in (params or {}).items() if k != "kind"}
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "testbed-usage-engine"
    path = root / f"{key}-s{args['seed']}-h{args['hosts']}-d{args['days']}-v{__version__}"
    if not path.is_dir():
        announce(path)
        tmp = root / f".{path.name}.partial-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        simulate(tmp, **args)
        tmp.rename(path)
    return path
