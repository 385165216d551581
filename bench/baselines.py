"""Baselines for the benchmark, measured on the same raw data and window as the engine.

    python bench/baselines.py --size small|medium|large [--engine-out OUT_DIR]

`floor`: the cost nothing can beat. It scans (Polars, lazily) only the columns the bare-metal pipeline
reads from the ten raw tables it reads, turns every row into a +1 event at its start and a -1 event
at its end (an open end at the window end) and sorts the events by time. No joins, no rules: any
pipeline reads this data and sorts at least this many events.

`duckdb_pipeline` (the cheap row): the obvious alternative a user would write, the bare-metal pipeline in
plain DuckDB SQL over read_parquet(): spans of Nova hosts, Blazar hosts, allocations and reserved and
on-demand instances (lookups as in specs/lookups/), each child clamped to the parent span it overlaps, a
sweepline per (metric, node_type) and node-hours per UTC day. Each stage is a temp table, so each is
timed on its own. Relative to the engine it does NOT:
  - resolve duplicates (INV-7): overlapping rows of one identity (Blazar's duplicated hosts) are all
    counted, and a child overlapping two of them is counted in both;
  - keep rejected rows, orphans, accounts, checkpoints or a report: rows failing a rule or join vanish;
  - sweep other resources than `nodes`, nor derived metrics (ondemand_capacity, idle, ...);
  - break hours down by project or user, nor charge service units.

`duckdb_full` (the honest row, issue 19): the engine's work on a bare-metal site, in plain DuckDB SQL too.
Every entity's rows in scope get the engine's first rejection reason (missing_fk, a rule, invalid_value,
null_start, zero_length, invalid_time_range, invalid_tx_range); duplicates are claimed as
engine/temporal.py `claim` does (INV-7); the hierarchy clamps each child to its parent's counted islands
and inherits the host's hardware and node type; five resources and nine metrics (the derived ones as
signed base spans) are swept; daily hours, the breakdowns by project and user and the SU charges are
summed. It writes what the engine writes: spans/, validated/, rejected/, inactive/ per entity,
usage.parquet, daily.parquet, daily_by_project.parquet, daily_by_user.parquet and charges.parquet.
Relative to the engine it still does NOT:
  - check invariants, keep accounts, compare with the legacy report or write report.html;
  - carry every source column into rejected/ and inactive/ (the span columns only);
  - share out a child piece that parent islands with different inherited values overlap twice (no
    bare-metal parent has such islands: each is claimed per hostname, which is in the key);
  - read the archive tables (nova.shadow_*), the pre-2021 Blazar layout (capability_name), exclusions
    (etc/exclusions.yaml), the projected lens or a site time zone (days are UTC);
  - generalise: the SQL is written for these five entities, where the engine compiles any spec.

Both DuckDB pipelines read the node type by property_id only.
`compare_daily` puts the engine's hours per metric next to a baseline's; `compare_outputs` compares the
breakdowns, charges and checkpoint row counts of the engine and duckdb_full.
"""

import argparse
import json
import resource
import shutil
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import duckdb
import polars as pl

ROOT = Path(__file__).resolve().parents[1]

# table: the start and end column of the row's span, then the other columns the bare-metal pipeline reads
TABLES = {
    "nova.compute_nodes": (
        "created_at deleted_at id hypervisor_hostname hypervisor_type vcpus memory_mb local_gb cpu_allocation_ratio"
    ),
    "blazar.computehosts": "created_at deleted_at id hypervisor_hostname",
    "blazar.computehost_extra_capabilities": "created_at deleted_at computehost_id property_id capability_value",
    "blazar.computehost_allocations": "created_at deleted_at id compute_host_id reservation_id",
    "blazar.reservations": "created_at deleted_at id lease_id resource_type",
    "blazar.leases": "start_date end_date id created_at updated_at deleted_at",
    "nova.instances": "created_at terminated_at uuid node launched_at deleted_at vcpus memory_mb root_gb",
    "nova_api.request_specs": "created_at updated_at instance_uuid spec",
    "nova.instance_actions": "start_time finish_time id instance_uuid",
    "nova.instance_actions_events": "start_time finish_time id action_id event result host",
}


def _cpu() -> float:
    """CPU seconds of this process, all threads (DuckDB's and Polars' included)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@contextmanager
def _timed(stages: dict, name: str):
    """Wall and CPU seconds of the block, added to the stage's (a stage may run in several blocks)."""
    wall, cpu = time.perf_counter(), _cpu()
    yield
    before = stages.get(name, {"seconds": 0.0, "cpu_seconds": 0.0})
    stages[name] = {
        "seconds": round(before["seconds"] + time.perf_counter() - wall, 3),
        "cpu_seconds": round(before["cpu_seconds"] + _cpu() - cpu, 3),
    }


def _window(window) -> tuple[datetime, datetime]:
    """(start, end) as datetimes; ISO strings (as in manifest.json) are accepted."""
    return tuple(datetime.fromisoformat(w) if isinstance(w, str) else w for w in window)


def floor(raw: Path, window) -> dict:
    """{"stages": {"scan": {seconds, cpu_seconds}, "sort": {...}}, "rows": raw rows, "events": events sorted}."""
    w1 = _window(window)[1]
    stages, spans, rows = {}, [], 0
    with _timed(stages, "scan"):
        for table, columns in TABLES.items():
            frame = pl.scan_parquet(Path(raw) / f"{table}.parquet").select(columns.split()).collect()
            rows += frame.height
            start, end = columns.split()[:2]
            spans.append(frame.select(pl.col(start).alias("start"), pl.col(end).alias("end")))
    with _timed(stages, "sort"):
        spans = pl.concat(spans).lazy().filter(pl.col("start").is_not_null())
        events = pl.concat(
            [
                spans.select(pl.col("start").alias("ts"), pl.lit(1, pl.Int8).alias("delta")),
                spans.select(pl.col("end").fill_null(w1).alias("ts"), pl.lit(-1, pl.Int8).alias("delta")),
            ]
        )
        events = events.sort("ts").collect()
    return {"stages": stages, "rows": rows, "events": events.height}


# The instance lookups of specs/lookups/ (instance_reservation, instance_events, instance_end_event) as CTEs.
INSTANCE_LOOKUPS = """
instance_reservation AS (  -- scheduler hint, else the flavor named reservation:<uuid>
    SELECT instance_uuid,
           coalesce(json_extract_string(spec, '$."nova_object.data".scheduler_hints.reservation[0]'),
                    CASE WHEN flavor LIKE 'reservation:%' THEN substr(flavor, 13) END) AS reservation_id
    FROM (SELECT instance_uuid, spec,
                 json_extract_string(spec, '$."nova_object.data".flavor."nova_object.data".name') AS flavor
          FROM request_specs)
),
ok_events AS (
    SELECT a.instance_uuid, e.event, e.start_time, e.host
    FROM instance_actions_events e JOIN instance_actions a ON a.id = e.action_id
    WHERE e.result = 'Success'
),
instance_events AS (  -- last unshelve; host of the last compute_* event
    SELECT instance_uuid,
           max(start_time) FILTER (WHERE event = 'compute_unshelve_instance') AS last_unshelve,
           arg_max(host, start_time) FILTER (WHERE event LIKE 'compute_%' AND host IS NOT NULL) AS last_compute_host
    FROM ok_events GROUP BY instance_uuid
),
instance_end_event AS (  -- first terminate/shelve after the last unshelve
    SELECT e.instance_uuid, min(e.start_time) AS end_time
    FROM ok_events e LEFT JOIN instance_events ie USING (instance_uuid)
    WHERE e.event IN ('compute_terminate_instance', 'compute_shelve_offload_instance', 'compute_shelve_instance')
      AND (ie.last_unshelve IS NULL OR e.start_time > ie.last_unshelve)
    GROUP BY e.instance_uuid
)
"""

# Stage 1: spans, with the lookups of specs/lookups/ as CTEs. A row with a null start, an end not after
# its start, a failed inner join or out of scope is dropped.
SPANS = (
    """
CREATE TEMP TABLE host_node_type AS  -- the node_type capability of each Blazar host, latest row
SELECT e.computehost_id, arg_max(e.capability_value, e.created_at) AS node_type
FROM computehost_extra_capabilities e JOIN resource_properties rp ON rp.id = e.property_id
WHERE rp.property_name = 'node_type'
GROUP BY e.computehost_id;

CREATE TEMP TABLE nova_host AS
WITH hostname_node_type AS (  -- that of the latest Blazar host with the hostname
    SELECT h.hypervisor_hostname, arg_max(nt.node_type, h.created_at) AS node_type
    FROM computehosts h JOIN host_node_type nt ON nt.computehost_id = h.id
    GROUP BY h.hypervisor_hostname
)
SELECT n.hypervisor_hostname, coalesce(nt.node_type, 'unknown') AS node_type,
       n.created_at AS valid_start, n.deleted_at AS valid_end
FROM compute_nodes n LEFT JOIN hostname_node_type nt USING (hypervisor_hostname)
WHERE n.created_at IS NOT NULL AND (n.deleted_at IS NULL OR n.deleted_at > n.created_at);

CREATE TEMP TABLE blazar_host AS
SELECT h.hypervisor_hostname, coalesce(nt.node_type, 'unknown') AS node_type,
       h.created_at AS valid_start, h.deleted_at AS valid_end
FROM computehosts h LEFT JOIN host_node_type nt ON nt.computehost_id = h.id
WHERE h.created_at IS NOT NULL AND (h.deleted_at IS NULL OR h.deleted_at > h.created_at);

CREATE TEMP TABLE allocation AS
SELECT * FROM (
    SELECT h.hypervisor_hostname, a.reservation_id,
           greatest(l.start_date, l.created_at) AS valid_start, least(l.end_date, l.deleted_at) AS valid_end
    FROM computehost_allocations a
    JOIN reservations r ON r.id = a.reservation_id
    JOIN leases l ON l.id = r.lease_id
    JOIN computehosts h ON CAST(h.id AS VARCHAR) = a.compute_host_id
    WHERE r.resource_type = 'physical:host'
)
WHERE valid_start IS NOT NULL AND (valid_end IS NULL OR valid_end > valid_start);

CREATE TEMP TABLE instance AS
"""
    + "WITH "
    + INSTANCE_LOOKUPS
    + """SELECT * FROM (
    SELECT rs.reservation_id, coalesce(i.node, ie.last_compute_host) AS hypervisor_hostname,
           i.created_at AS valid_start, least(i.terminated_at, i.deleted_at, ee.end_time) AS valid_end
    FROM instances i
    LEFT JOIN instance_reservation rs ON rs.instance_uuid = i.uuid
    LEFT JOIN instance_events ie ON ie.instance_uuid = i.uuid
    LEFT JOIN instance_end_event ee ON ee.instance_uuid = i.uuid
    WHERE i.launched_at IS NOT NULL  -- never_launched
)
WHERE valid_start IS NOT NULL AND (valid_end IS NULL OR valid_end > valid_start);

CREATE TEMP TABLE reserved_instance AS
SELECT i.* FROM instance i JOIN reservations r ON r.id = i.reservation_id
WHERE r.resource_type = 'physical:host';

CREATE TEMP TABLE ondemand_instance AS  -- bare metal: the host as enrolled when the instance started
SELECT i.* FROM instance i
ASOF LEFT JOIN compute_nodes cn ON cn.hypervisor_hostname = i.hypervisor_hostname AND i.valid_start >= cn.created_at
WHERE i.reservation_id IS NULL AND coalesce(cn.hypervisor_type, 'ironic') = 'ironic';
"""
)


def _clamp(child: str, parent: str, keys: list[str], inherit: bool) -> str:
    """Stage 2, one child: each child span cut to every parent span it overlaps on the keys."""
    on = " AND ".join(f"c.{k} = p.{k}" for k in keys)
    node_type = ", p.node_type" if inherit else ""  # else the child's own
    return f"""
CREATE TEMP TABLE {child}_in AS
SELECT c.* EXCLUDE (valid_start, valid_end){node_type},
       greatest(c.valid_start, p.valid_start) AS valid_start, least(c.valid_end, p.valid_end) AS valid_end
FROM {child} c JOIN {parent} p ON {on}
 AND c.valid_start < coalesce(p.valid_end, 'infinity'::TIMESTAMP)
 AND p.valid_start < coalesce(c.valid_end, 'infinity'::TIMESTAMP);
"""


HIERARCHY = (
    _clamp("blazar_host", "nova_host", ["hypervisor_hostname"], inherit=False)
    + _clamp("allocation", "blazar_host_in", ["hypervisor_hostname"], inherit=True)
    + _clamp("reserved_instance", "allocation_in", ["reservation_id", "hypervisor_hostname"], inherit=True)
    + _clamp("ondemand_instance", "nova_host", ["hypervisor_hostname"], inherit=True)
)

# Stage 3: the step function per (metric, node_type): value from ts until next_ts.
SWEEP = """
CREATE TEMP TABLE steps AS
WITH spans AS (
    SELECT 'total' AS metric, node_type, valid_start, valid_end FROM nova_host
    UNION ALL SELECT 'reservable', node_type, valid_start, valid_end FROM blazar_host_in
    UNION ALL SELECT 'committed', node_type, valid_start, valid_end FROM allocation_in
    UNION ALL SELECT 'occupied_reservation', node_type, valid_start, valid_end FROM reserved_instance_in
    UNION ALL SELECT 'occupied_ondemand', node_type, valid_start, valid_end FROM ondemand_instance_in
),
clipped AS (  -- cut to the window; an open end runs to the window end
    SELECT metric, node_type, greatest(valid_start, {w0}) AS s, least(coalesce(valid_end, {w1}), {w1}) AS e
    FROM spans
),
events AS (
    SELECT metric, node_type, s AS ts, 1 AS delta FROM clipped WHERE s < e
    UNION ALL
    SELECT metric, node_type, e AS ts, -1 AS delta FROM clipped WHERE s < e
),
per_instant AS (SELECT metric, node_type, ts, sum(delta) AS delta FROM events GROUP BY metric, node_type, ts)
SELECT metric, node_type, ts,
       sum(delta) OVER (PARTITION BY metric, node_type ORDER BY ts ROWS UNBOUNDED PRECEDING) AS value,
       lead(ts) OVER (PARTITION BY metric, node_type ORDER BY ts) AS next_ts
FROM per_instant;
"""

# Stage 4: node-hours per UTC day: each step piece times its overlap with each day.
DAILY = """
CREATE TEMP TABLE daily AS
WITH days AS (SELECT range AS day FROM range({w0}, {w1}, INTERVAL 1 DAY))
SELECT CAST(d.day AS DATE) AS date, s.metric, s.node_type,
       sum(s.value * epoch(least(s.next_ts, d.day + INTERVAL 1 DAY) - greatest(s.ts, d.day)) / 3600) AS hours
FROM steps s JOIN days d ON s.ts < d.day + INTERVAL 1 DAY AND s.next_ts > d.day
WHERE s.value <> 0
GROUP BY ALL;
"""


def duckdb_pipeline(raw: Path, window) -> dict:
    """{"stages": {spans|hierarchy|sweep|daily: {seconds, cpu_seconds}}, "spans": {table: rows},
    "daily": pl.DataFrame(date, metric, node_type, hours)}."""
    w0, w1 = (f"TIMESTAMP '{w}'" for w in _window(window))
    con = duckdb.connect(config={"threads": 2})
    for table in [*TABLES, "blazar.resource_properties"]:
        con.execute(f"CREATE VIEW {table.split('.')[1]} AS SELECT * FROM read_parquet('{Path(raw) / table}.parquet')")
    stages = {}
    for name, sql in (("spans", SPANS), ("hierarchy", HIERARCHY), ("sweep", SWEEP), ("daily", DAILY)):
        with _timed(stages, name):
            con.execute(sql.format(w0=w0, w1=w1) if name in ("sweep", "daily") else sql)
    tables = ["nova_host", "blazar_host_in", "allocation_in", "reserved_instance_in", "ondemand_instance_in", "steps"]
    spans = {t: con.execute(f"SELECT count(*) FROM {t}").fetchall()[0][0] for t in tables}
    daily = con.sql("SELECT * FROM daily ORDER BY metric, node_type, date").pl()
    con.close()
    return {"stages": stages, "spans": spans, "daily": daily}


# duckdb_full: the same work as the engine on a bare-metal site (issue 19), in plain SQL as well. Each
# entity is one source query (its joins, lookups, scope and rules, as in specs/entities/); the same
# templates then give every entity its rejected rows, its duplicates resolved and its hierarchy.
OPEN = "TIMESTAMP '9999-12-31'"  # an open end, inside the interval math (engine/temporal.py: OPEN)
COUNTED = "hierarchy_status IN ('root', 'direct', 'clamped')"
RESOURCES = ["nodes", "vcpus", "schedulable_vcpus", "memory_mb", "disk_gb"]
INACTIVE = ("zero_length", "never_launched", "cancelled_before_start")  # legitimately never active: no defect
IDENTITY = "hypervisor_hostname"  # INV-7: the identity of all five bare-metal entities
PARQUET = "(FORMAT parquet, COMPRESSION zstd, COMPRESSION_LEVEL 1)"  # as the engine writes (zstd level 1)
# Each metric of specs/metrics.yaml as signed base metrics (its formula expanded).
TERMS = {
    "total": {"total": 1},
    "reservable": {"reservable": 1},
    "committed": {"committed": 1},
    "occupied_reservation": {"occupied_reservation": 1},
    "occupied_ondemand": {"occupied_ondemand": 1},
    "ondemand_capacity": {"total": 1, "reservable": -1},
    "available_reservable": {"reservable": 1, "committed": -1},
    "idle": {"committed": 1, "occupied_reservation": -1},
    "available_ondemand": {"total": 1, "reservable": -1, "occupied_ondemand": -1},
}
BASE = [m for m, terms in TERMS.items() if terms == {m: 1}]  # the metrics entities feed
BY_WHO = ["committed", "occupied_reservation", "occupied_ondemand"]  # the base metrics with a project and user

FULL_LOOKUPS = (
    """
CREATE TEMP TABLE capability AS  -- each extra capability with its name (since 2021: resource_properties)
SELECT e.computehost_id, rp.property_name, trim(e.capability_value) AS value, e.created_at
FROM computehost_extra_capabilities e JOIN resource_properties rp ON rp.id = e.property_id;

CREATE TEMP TABLE host_node_type AS
SELECT computehost_id, arg_max(value, created_at) AS node_type FROM capability
WHERE property_name = 'node_type' GROUP BY computehost_id;

CREATE TEMP TABLE host_su_factor AS  -- a plain non-negative number only: else metrics.yaml's fallback
SELECT computehost_id, arg_max(value, created_at) AS su_factor FROM capability
WHERE property_name = 'su_factor' AND regexp_full_match(value, '[0-9]{1,6}([.][0-9]{1,6})?')
GROUP BY computehost_id;

CREATE TEMP TABLE hostname_node_type AS  -- that of the latest Blazar host with the hostname
SELECT h.hypervisor_hostname, arg_max(nt.node_type, h.created_at) AS node_type
FROM computehosts h JOIN host_node_type nt ON nt.computehost_id = h.id
GROUP BY h.hypervisor_hostname;

CREATE TEMP TABLE instance_facts AS  -- per instance: its reservation, its last compute host, its end event
WITH """
    + INSTANCE_LOOKUPS
    + """SELECT i.uuid, rs.reservation_id, ie.last_compute_host, ee.end_time
FROM instances i
LEFT JOIN instance_reservation rs ON rs.instance_uuid = i.uuid
LEFT JOIN instance_events ie ON ie.instance_uuid = i.uuid
LEFT JOIN instance_end_event ee ON ee.instance_uuid = i.uuid;
"""
)

# Instance columns both instance entities read (specs/entities/*_instance.yaml).
INSTANCE = """
    i.uuid AS entity_id, coalesce(i.node, f.last_compute_host) AS hypervisor_hostname, i.project_id, i.user_id,
    i.created_at AS valid_start, least(i.terminated_at, i.deleted_at, f.end_time) AS valid_end,
    i.created_at AS tx_start, least(i.terminated_at, i.deleted_at, f.end_time) AS tx_end,
    1.0::DOUBLE AS nodes, i.vcpus::DOUBLE AS vcpus, i.vcpus::DOUBLE AS schedulable_vcpus,
    i.memory_mb::DOUBLE AS memory_mb, i.root_gb::DOUBLE AS disk_gb,
    CASE WHEN i.launched_at IS NULL THEN 'never_launched' END AS rule"""


@dataclass(frozen=True)
class Entity:
    """An entity of specs/entities/: its metric, its source query (columns entity_id, the identity and keys,
    attributes, valid_*, tx_*, resources, `missing`: why a required join failed, `rule`: a rule's reason),
    the resources it reads itself, its parent, the key columns it shares with it and the columns it inherits."""

    metric: str
    source: str
    resources: tuple[str, ...] = ("nodes",)
    parent: str | None = None
    on: tuple[str, ...] = ()
    inherit: tuple[str, ...] = ()


ENTITIES = {  # in hierarchy order: a parent before its children
    "nova_host": Entity(
        "total",
        """
SELECT n.id::VARCHAR AS entity_id, n.hypervisor_hostname, coalesce(nt.node_type, 'unknown') AS node_type,
       n.hypervisor_type, n.created_at AS valid_start, n.deleted_at AS valid_end,
       n.created_at AS tx_start, n.deleted_at AS tx_end, 1.0::DOUBLE AS nodes, n.vcpus::DOUBLE AS vcpus,
       n.vcpus * coalesce(n.cpu_allocation_ratio, 1.0) AS schedulable_vcpus,
       n.memory_mb::DOUBLE AS memory_mb, n.local_gb::DOUBLE AS disk_gb, NULL::VARCHAR AS missing, NULL::VARCHAR AS rule
FROM compute_nodes n LEFT JOIN hostname_node_type nt ON nt.hypervisor_hostname = n.hypervisor_hostname""",
        resources=tuple(RESOURCES),
    ),
    "blazar_host": Entity(
        "reservable",
        """
SELECT h.id::VARCHAR AS entity_id, h.hypervisor_hostname, coalesce(nt.node_type, 'unknown') AS node_type,
       sf.su_factor, h.created_at AS valid_start, h.deleted_at AS valid_end,
       h.created_at AS tx_start, h.deleted_at AS tx_end, 1.0::DOUBLE AS nodes, NULL::VARCHAR AS missing, NULL::VARCHAR AS rule
FROM computehosts h
LEFT JOIN host_node_type nt ON nt.computehost_id = h.id
LEFT JOIN host_su_factor sf ON sf.computehost_id = h.id""",
        parent="nova_host",
        on=("hypervisor_hostname",),
        inherit=("vcpus", "schedulable_vcpus", "memory_mb", "disk_gb"),
    ),
    "allocation": Entity(
        "committed",
        """
SELECT a.id AS entity_id, h.hypervisor_hostname, a.reservation_id, l.project_id, l.user_id,
       a.compute_host_id, r.lease_id,
       greatest(l.start_date, l.created_at) AS valid_start, least(l.end_date, l.deleted_at) AS valid_end,
       a.created_at AS tx_start, l.deleted_at AS tx_end, 1.0::DOUBLE AS nodes,
       CASE WHEN r.id IS NULL THEN 'r: no blazar.reservations row with id=' || coalesce(a.reservation_id, 'null')
            WHEN l.id IS NULL THEN 'l: no blazar.leases row with id=' || coalesce(r.lease_id, 'null')
            WHEN h.id IS NULL THEN 'h: no blazar.computehosts row with id=' || coalesce(a.compute_host_id, 'null')
       END AS missing,
       CASE WHEN l.deleted_at <= greatest(l.start_date, l.created_at) AND l.end_date > l.start_date
            THEN 'cancelled_before_start' END AS rule
FROM computehost_allocations a
LEFT JOIN reservations r ON r.id = a.reservation_id
LEFT JOIN leases l ON l.id = r.lease_id
LEFT JOIN computehosts h ON h.id::VARCHAR = a.compute_host_id
WHERE coalesce(r.resource_type = 'physical:host', r.id IS NULL)  -- a row whose reservation is gone is ours""",
        parent="blazar_host",
        on=("hypervisor_hostname",),
        inherit=("node_type", "su_factor", "vcpus", "schedulable_vcpus", "memory_mb", "disk_gb"),
    ),
    "reserved_instance": Entity(
        "occupied_reservation",
        f"""
SELECT {INSTANCE}, f.reservation_id,
       CASE WHEN r.id IS NULL THEN 'r: no blazar.reservations row with id=' || f.reservation_id END AS missing
FROM instances i JOIN instance_facts f ON f.uuid = i.uuid
LEFT JOIN reservations r ON r.id = f.reservation_id
WHERE f.reservation_id IS NOT NULL AND coalesce(r.resource_type = 'physical:host', r.id IS NULL)""",
        resources=tuple(RESOURCES),
        parent="allocation",
        on=("reservation_id", "hypervisor_hostname"),
        inherit=("node_type",),
    ),
    "ondemand_instance": Entity(
        "occupied_ondemand",
        f"""
SELECT i.* EXCLUDE (reservation_id) FROM (
    SELECT {INSTANCE}, f.reservation_id, NULL::VARCHAR AS missing
    FROM instances i JOIN instance_facts f ON f.uuid = i.uuid
) i
ASOF LEFT JOIN compute_nodes cn  -- the host as enrolled when the instance started
    ON cn.hypervisor_hostname = i.hypervisor_hostname AND i.valid_start >= cn.created_at
WHERE i.reservation_id IS NULL AND coalesce(cn.hypervisor_type, 'ironic') = 'ironic'""",
        resources=tuple(RESOURCES),
        parent="nova_host",
        on=("hypervisor_hostname",),
        inherit=("node_type",),
    ),
}


def _rows(name: str, e: Entity) -> str:
    """Stage spans, one entity: every row in scope with the first reason that rejects it, in the engine's
    order (engine/plan/spans.py): missing_fk (a required join, then the parent key), a rule, invalid_value,
    null_start, zero_length, invalid_time_range, invalid_tx_range. A null reason is an accepted row."""
    found, parent = "true", ""
    if e.parent:
        keys = ", ".join(e.on)
        on = " AND ".join(f"pk.{k} = s.{k}" for k in e.on)
        found = "pk.parent_found"
        parent = f"LEFT JOIN (SELECT DISTINCT {keys}, true AS parent_found FROM {e.parent}_validated) pk ON {on}"
    invalid = " OR ".join(["entity_id IS NULL", *(f"NOT coalesce({r} BETWEEN 0 AND 1e15, false)" for r in e.resources)])
    return f"""
CREATE TEMP TABLE {name}_rows AS
WITH s AS ({e.source}
),
reasoned AS (
    SELECT s.*, {found} AS parent_found,
           CASE WHEN missing IS NOT NULL OR {found} IS NULL THEN 'missing_fk'
                WHEN rule IS NOT NULL THEN rule
                WHEN {invalid} THEN 'invalid_value'
                WHEN valid_start IS NULL THEN 'null_start'
                WHEN valid_end = valid_start THEN 'zero_length'
                WHEN valid_end < valid_start THEN 'invalid_time_range'
                WHEN tx_end < tx_start THEN 'invalid_tx_range' END AS reason
    FROM s {parent}
)
SELECT *, CASE reason
    WHEN 'missing_fk' THEN coalesce(missing, 'parent: no accepted {e.parent} with the same {", ".join(e.on)}')
    WHEN 'cancelled_before_start' THEN 'the lease was deleted before it started'
    WHEN 'never_launched' THEN 'launched_at is null: the instance never ran'
    WHEN 'invalid_value' THEN 'a null key or a resource null, NaN, negative or above 1e15'
    WHEN 'null_start' THEN 'valid_start is null'
    WHEN 'zero_length' THEN 'valid_end equals valid_start ' || valid_start
    WHEN 'invalid_time_range' THEN 'valid_end ' || valid_end || ' is before valid_start ' || valid_start
    WHEN 'invalid_tx_range' THEN 'tx_end ' || tx_end || ' is before tx_start ' || tx_start END AS detail
FROM reasoned;
"""


def _claim(name: str) -> str:
    """Stage spans, one entity: duplicates resolved as engine/temporal.py `claim` does (INV-7). Rows of one
    identity that overlap form a cluster; a cluster's start and end times cut it into elementary segments,
    each owned by the covering row first by (tx_start, entity_id); a row keeps the runs of segments it owns
    (clamped, its original times kept), or is rejected as a duplicate if it owns none. A row overlapping
    nobody keeps its span, as does one with a null identity."""
    return f"""
CREATE TEMP TABLE {name}_accepted AS
SELECT row_number() OVER () AS rid, * EXCLUDE (missing, rule, parent_found, reason, detail)
FROM {name}_rows WHERE reason IS NULL;

CREATE TEMP TABLE {name}_cluster AS
WITH ordered AS (
    SELECT rid, entity_id, tx_start, {IDENTITY} AS k, valid_start AS s, coalesce(valid_end, {OPEN}) AS e,
           max(coalesce(valid_end, {OPEN})) OVER (PARTITION BY {IDENTITY} ORDER BY valid_start, rid
                                                  ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS reach
    FROM {name}_accepted WHERE {IDENTITY} IS NOT NULL
),
numbered AS (  -- a new cluster where a row starts once every earlier row of its identity has ended
    SELECT * EXCLUDE (reach), sum(CASE WHEN reach IS NULL OR s >= reach THEN 1 ELSE 0 END)
                                  OVER (PARTITION BY k ORDER BY s, rid ROWS UNBOUNDED PRECEDING) AS c
    FROM ordered
)
SELECT * FROM numbered QUALIFY count(*) OVER (PARTITION BY k, c) > 1;

CREATE TEMP TABLE {name}_cover AS  -- each clustered row on each segment it covers, with the segment's owner
WITH bounds AS (SELECT k, c, s AS t FROM {name}_cluster UNION SELECT k, c, e FROM {name}_cluster),
segments AS (
    SELECT k, c, t AS s, lead(t) OVER w AS e, row_number() OVER w AS n FROM bounds WINDOW w AS (PARTITION BY k, c ORDER BY t)
)
SELECT r.rid, r.entity_id, g.k, g.n, g.s, g.e,
       first_value(r.rid) OVER w AS owner, first_value(r.entity_id) OVER w AS owner_id
FROM {name}_cluster r JOIN segments g ON g.k = r.k AND g.c = r.c AND r.s <= g.s AND g.e <= r.e
WINDOW w AS (PARTITION BY g.k, g.c, g.n ORDER BY r.tx_start NULLS LAST, r.entity_id, r.rid);

CREATE TEMP TABLE {name}_pieces AS
SELECT rid, min(s) AS s, max(e) AS e
FROM (SELECT rid, s, e, n - row_number() OVER (PARTITION BY rid ORDER BY n) AS run FROM {name}_cover WHERE rid = owner)
GROUP BY rid, run
UNION ALL
SELECT rid, valid_start, coalesce(valid_end, {OPEN}) FROM {name}_accepted ANTI JOIN {name}_cluster USING (rid);

CREATE TEMP TABLE {name}_lost AS  -- rows that lost time, and the first row they lost it to
SELECT rid, arg_min(owner_id, n) AS covered_by FROM {name}_cover WHERE rid <> owner GROUP BY rid;

CREATE TEMP TABLE {name}_spans AS
SELECT a.* EXCLUDE (rid, valid_start, valid_end), p.s AS valid_start, CASE WHEN p.e < {OPEN} THEN p.e END AS valid_end,
       CASE WHEN l.rid IS NOT NULL THEN a.valid_start END AS original_start,
       CASE WHEN l.rid IS NOT NULL THEN a.valid_end END AS original_end
FROM {name}_accepted a JOIN {name}_pieces p USING (rid) LEFT JOIN {name}_lost l USING (rid);

CREATE TEMP TABLE {name}_rejected AS
SELECT * EXCLUDE (missing, rule, parent_found, reason, detail), reason AS rejection_reason, detail AS rejection_detail
FROM {name}_rows WHERE reason NOT IN {INACTIVE}
UNION ALL BY NAME
SELECT a.* EXCLUDE (rid), 'duplicate' AS rejection_reason,
       'covered by entity_id ' || l.covered_by || ' with the same identity ({IDENTITY}=' || a.{IDENTITY} || ')'
           AS rejection_detail
FROM {name}_accepted a JOIN {name}_lost l USING (rid) ANTI JOIN {name}_pieces p USING (rid);

CREATE TEMP TABLE {name}_inactive AS
SELECT * EXCLUDE (missing, rule, parent_found, reason, detail), reason AS inactive_reason, detail AS inactive_detail
FROM {name}_rows WHERE reason IN {INACTIVE};
"""


def _validate(name: str, e: Entity) -> str:
    """Stage hierarchy, one entity (engine/hierarchy.py): each span cut to its parent's counted time, merged
    into islands per key and inherited values; direct if it keeps all its time, clamped if some (its
    original times kept), orphan (not counted, its own times) if none. The engine also shares out a span
    that islands with different inherited values overlap twice; here no parent has such islands (each is
    one per identity, and the identity is in the key), so that step is left out."""
    if e.parent is None:
        return f"CREATE TEMP TABLE {name}_validated AS SELECT *, 'root' AS hierarchy_status FROM {name}_spans;"
    by = ", ".join([*e.on, *e.inherit])
    on = " AND ".join(f"i.{k} = c.{k}" for k in e.on)
    inherited = ", ".join(f"x.{a}" for a in e.inherit)
    fresh = "hierarchy_status = 'clamped' AND original_start IS NULL"  # clamped here first: the times to keep
    return f"""
CREATE TEMP TABLE {name}_islands AS
WITH p AS (
    SELECT {by}, valid_start AS s, coalesce(valid_end, {OPEN}) AS e,
           max(coalesce(valid_end, {OPEN})) OVER (PARTITION BY {by} ORDER BY valid_start
                                                  ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS reach
    FROM {e.parent}_validated WHERE {COUNTED}
)
SELECT {by}, min(s) AS s, max(e) AS e
FROM (SELECT *, sum(CASE WHEN reach IS NULL OR s > reach THEN 1 ELSE 0 END)
                    OVER (PARTITION BY {by} ORDER BY s ROWS UNBOUNDED PRECEDING) AS island FROM p)
GROUP BY {by}, island;

CREATE TEMP TABLE {name}_validated AS
WITH child AS (SELECT row_number() OVER () AS pid, * FROM {name}_spans),
cut AS (
    SELECT c.pid, {", ".join(f"i.{a}" for a in e.inherit)},
           greatest(c.valid_start, i.s) AS s, least(coalesce(c.valid_end, {OPEN}), i.e) AS e
    FROM child c JOIN {name}_islands i ON {on} AND c.valid_start < i.e AND i.s < coalesce(c.valid_end, {OPEN})
),
kept AS (SELECT pid, sum(date_diff('microsecond', s, e)) AS kept FROM cut GROUP BY pid),
counted AS (
    SELECT c.* EXCLUDE (valid_start, valid_end), {inherited}, x.s AS valid_start,
           CASE WHEN x.e < {OPEN} THEN x.e END AS valid_end, c.valid_start AS s0, c.valid_end AS e0,
           CASE WHEN k.kept = date_diff('microsecond', c.valid_start, coalesce(c.valid_end, {OPEN}))
                THEN 'direct' ELSE 'clamped' END AS hierarchy_status
    FROM child c JOIN cut x USING (pid) JOIN kept k USING (pid)
)
SELECT * EXCLUDE (pid, s0, e0, original_start, original_end),
       CASE WHEN {fresh} THEN s0 ELSE original_start END AS original_start,
       CASE WHEN {fresh} THEN e0 ELSE original_end END AS original_end
FROM counted
UNION ALL BY NAME
SELECT * EXCLUDE (pid), 'orphan' AS hierarchy_status FROM child ANTI JOIN kept USING (pid);
"""


def _checkpoints(name: str, e: Entity, out: Path, w1: str) -> str:
    """Stage checkpoints, one entity: spans/, validated/, rejected/ and inactive/ as the engine writes them."""
    hours = f"date_diff('microsecond', valid_start, coalesce(valid_end, {w1})) / 3.6e9 AS span_hours"
    named = f"'{name}' AS entity, '{e.metric}' AS metric"
    return "".join(
        f"COPY (SELECT {named}, *{extra} FROM {name}_{kind}{order}) TO '{out / kind / name}.parquet' {PARQUET};\n"
        for kind, extra, order in (
            ("spans", f", {hours}", " ORDER BY entity_id, valid_start"),
            ("validated", f", {hours}", " ORDER BY entity_id, valid_start"),
            ("rejected", "", ""),
            ("inactive", "", ""),
        )
    )


def _window_spans(metrics: list[str], columns: str) -> str:
    """The counted pieces of the entities feeding these base metrics, cut to the window, with `columns` (the
    window is left as {w0} and {w1}, formatted with the stage's SQL)."""
    return "\nUNION ALL BY NAME\n".join(
        f"SELECT '{e.metric}' AS base, {columns}, greatest(valid_start, {{w0}}) AS s,"
        f" least(coalesce(valid_end, {{w1}}), {{w1}}) AS e FROM {name}_validated WHERE {COUNTED}"
        for name, e in ENTITIES.items()
        if e.metric in metrics
    )


def _terms(targets) -> str:
    """The signed terms of these metrics, as a VALUES table (target, base, coef)."""
    rows = ", ".join(f"('{t}', '{b}', {c})" for t in targets for b, c in TERMS[t].items())
    return f"(VALUES {rows}) t(target, base, coef)"


def _signed(table: str, metrics: list[str], columns: str, targets) -> str:
    """Each counted piece in the window once per (metric it feeds, resource), its value signed by the metric's
    formula: a derived metric is swept over its base metrics' spans, as engine/usage.py does."""
    resources = ", ".join(RESOURCES)
    return f"""
CREATE TEMP TABLE {table} AS
WITH base AS (SELECT * FROM ({_window_spans(metrics, f"{columns}, {resources}")}) WHERE s < e),
unpivoted AS (SELECT * FROM (UNPIVOT base ON {resources} INTO NAME resource VALUE value))
SELECT t.target AS metric, l.* EXCLUDE (base, value), t.coef * l.value AS value
FROM unpivoted l JOIN {_terms(targets)} ON t.base = l.base;
"""


# Stage sweep: the step function of every (metric, resource, node_type), written as usage.parquet.
SWEEP_FULL = (
    _signed("signed", BASE, "node_type", TERMS)
    + f"""
CREATE TEMP TABLE series AS  -- integer ids: string keys on every delta made the sweep 1.7x slower (medium)
SELECT row_number() OVER (ORDER BY metric, resource, node_type)::INTEGER AS sid, *
FROM (SELECT DISTINCT metric, resource, node_type FROM signed);

CREATE TEMP TABLE steps AS
WITH spans AS (SELECT sid, s, e, value FROM signed JOIN series USING (metric, resource, node_type)),
events AS (SELECT sid, s AS ts, value AS delta FROM spans UNION ALL SELECT sid, e, -value FROM spans),
per_instant AS (SELECT sid, ts, sum(delta) AS delta FROM events GROUP BY sid, ts)
SELECT sid, ts, sum(delta) OVER w AS value, lead(ts) OVER w AS next_ts
FROM per_instant WINDOW w AS (PARTITION BY sid ORDER BY ts ROWS UNBOUNDED PRECEDING);

COPY (SELECT ts AS timestamp, metric, resource, node_type, value FROM steps JOIN series USING (sid) ORDER BY sid, ts)
TO '{{out}}/usage.parquet' {PARQUET};
"""
)


def _day_hours(table: str, value: str) -> str:
    """The rows of `table` (s, e) split at UTC midnights: one row per day touched, `value` x its hours that day."""
    return f"""
SELECT * EXCLUDE (s, e, day), CAST(day AS DATE) AS date,
       {value} * date_diff('microsecond', greatest(s, day), least(e, day + INTERVAL 1 DAY)) / 3.6e9 AS hours
FROM (SELECT *, unnest(range(date_trunc('day', s), e, INTERVAL 1 DAY)) AS day FROM {table})"""


# Stage daily: hours per UTC day of each step (each step split at the midnights it crosses), daily.parquet.
DAILY_FULL = f"""
CREATE TEMP TABLE daily AS
WITH steps AS (SELECT sid, ts AS s, next_ts AS e, value FROM steps WHERE value <> 0 AND next_ts IS NOT NULL),
per_day AS (SELECT sid, date, sum(hours) AS hours FROM ({_day_hours("steps", "value")}) GROUP BY sid, date)
SELECT sid, date, metric, resource, node_type, hours,
       hours / (date_diff('microsecond', greatest(date::TIMESTAMP, {{w0}}), least(date + INTERVAL 1 DAY, {{w1}})) / 3.6e9)
           AS mean
FROM per_day JOIN series USING (sid);

COPY (SELECT * EXCLUDE (sid) FROM daily ORDER BY sid, date) TO '{{out}}/daily.parquet' {PARQUET};
"""

WHO = [m for m, terms in TERMS.items() if set(terms) <= set(BY_WHO)]  # committed, occupied_*, idle
SPLIT = ["nodes", "vcpus"]  # the resources specs/metrics.yaml's breakdowns split
FALLBACK = "CASE node_type WHEN 'gpu_rtx_6000' THEN 2.0 WHEN 'storage_nvme' THEN 1.5 ELSE 1.0 END"  # metrics.yaml


def _by_who(col: str) -> str:
    """daily_by_<who>.parquet: the resources are summed side by side, then unpivoted (a fifth of the rows to group)."""
    sums = ", ".join(f"sum(hours * {r}) AS {r}" for r in SPLIT)
    return f"""
COPY (
    SELECT date, metric, resource, node_type, {col}, hours FROM (
        UNPIVOT (SELECT date, metric, node_type, {col}, {sums} FROM who_days GROUP BY date, metric, node_type, {col})
        ON {", ".join(SPLIT)} INTO NAME resource VALUE hours
    ) WHERE abs(hours) > 1e-9 ORDER BY metric, resource, node_type, {col}, date
) TO '{{out}}/daily_by_{col.removesuffix("_id")}.parquet' {PARQUET};
"""


# Stage breakdowns: each span's hours per day it touches (signed, for idle), summed per project and per user
# (daily_by_*.parquet); charges.parquet: committed node-hours x the host's su_factor, else the node type's.
BREAKDOWNS = (
    f"""
CREATE TEMP TABLE who AS
WITH base AS (
    SELECT * FROM ({
        _window_spans(
            BY_WHO,
            "node_type, coalesce(project_id, 'null') AS project_id, coalesce(user_id, 'null') AS user_id, "
            + ", ".join(SPLIT),
        )
    }) WHERE s < e
)
SELECT t.target AS metric, b.* EXCLUDE (base), t.coef FROM base b JOIN {_terms(WHO)} ON t.base = b.base;

CREATE TEMP TABLE who_days AS {_day_hours("who", "coef")};
"""
    + _by_who("project_id")
    + _by_who("user_id")
    + f"""
COPY (
    WITH charged AS (
        SELECT node_type, project_id, s, e, nodes * coalesce(TRY_CAST(su_factor AS DOUBLE), {FALLBACK}) AS su
        FROM ({_window_spans(["committed"], "node_type, coalesce(project_id, 'null') AS project_id, su_factor, nodes")})
        WHERE s < e
    )
    SELECT date, node_type, project_id, sum(hours) AS su, 0.0 AS encumbered_su  -- no as-of time: nothing booked ahead
    FROM ({_day_hours("charged", "su")}) GROUP BY date, node_type, project_id HAVING abs(sum(hours)) > 1e-9 ORDER BY ALL
) TO '{{out}}/charges.parquet' {PARQUET};
"""
)


def duckdb_full(raw: Path, window, out: Path | None = None) -> dict:
    """{"stages": {spans|hierarchy|checkpoints|sweep|daily|breakdowns: {seconds, cpu_seconds}}, "rows": {entity:
    {spans, validated, rejected, inactive}}, "daily": pl.DataFrame(date, metric, resource, node_type, hours),
    "out": the output directory}. Writes what the engine writes there (default RAW-duckdb beside RAW)."""
    w0, w1 = (f"TIMESTAMP '{w}'" for w in _window(window))
    out = Path(out or Path(raw).parent / f"{Path(raw).name}-duckdb")
    if (out / ".duckdb-full").is_file():  # only a directory this function wrote is ever replaced
        shutil.rmtree(out)
    for kind in ("spans", "validated", "rejected", "inactive"):
        (out / kind).mkdir(parents=True, exist_ok=True)
    (out / ".duckdb-full").touch()
    # Spill beyond 12 GB (this machine has 24 and is shared) into bench/data, not into .tmp/ of the working directory.
    con = duckdb.connect(config={"threads": 2, "memory_limit": "12GB", "temp_directory": f"{out}.tmp"})
    for table in [*TABLES, "blazar.resource_properties"]:
        con.execute(f"CREATE VIEW {table.split('.')[1]} AS SELECT * FROM read_parquet('{Path(raw) / table}.parquet')")
    stages = {}
    with _timed(stages, "spans"):
        con.execute(FULL_LOOKUPS)
    for name, e in ENTITIES.items():  # a child's rows need its parent's validated spans (the parent key)
        with _timed(stages, "spans"):
            con.execute(_rows(name, e) + _claim(name))
        with _timed(stages, "hierarchy"):
            con.execute(_validate(name, e))
    with _timed(stages, "checkpoints"):
        con.execute("".join(_checkpoints(name, e, out, w1) for name, e in ENTITIES.items()))
    for name, sql in (("sweep", SWEEP_FULL), ("daily", DAILY_FULL), ("breakdowns", BREAKDOWNS)):
        with _timed(stages, name):
            con.execute(sql.format(w0=w0, w1=w1, out=out))
    count = "SELECT count(*) FROM {}"
    rows = {
        name: {
            k: con.execute(count.format(f"{name}_{k}")).fetchall()[0][0]
            for k in ("spans", "validated", "rejected", "inactive")
        }
        for name in ENTITIES
    }
    daily = con.sql("SELECT date, metric, resource, node_type, hours FROM daily ORDER BY ALL").pl()
    con.close()
    return {"stages": stages, "rows": rows, "daily": daily, "out": str(out)}


def compare_daily(engine_daily: pl.DataFrame, duck_daily: pl.DataFrame, resource: str = "nodes") -> dict:
    """{metric: {"engine", "duckdb": hours of the resource in the window, "relative_difference": (duckdb - engine)
    / engine, "max_cell_difference": largest |duckdb - engine| of one (date, node_type) cell}}, for the metrics
    of both. A baseline's daily without a resource column (duckdb_pipeline) is node-hours."""
    cells = ["date", "metric", "node_type"]
    engine = engine_daily.filter(pl.col("resource") == resource).select(*cells, "hours")
    if "resource" in duck_daily.columns:
        duck_daily = duck_daily.filter(pl.col("resource") == resource).select(*cells, "hours")
    engine = engine.join(duck_daily.select("metric").unique(), on="metric", how="semi")  # its base metrics
    both = engine.join(duck_daily, on=cells, how="full", coalesce=True, suffix="_duckdb")
    per_metric = (
        both.fill_null(0.0)
        .group_by("metric")
        .agg(
            pl.col("hours").sum().alias("engine"),
            pl.col("hours_duckdb").sum().alias("duckdb"),
            (pl.col("hours_duckdb") - pl.col("hours")).abs().max().alias("max_cell_difference"),
        )
        .with_columns(((pl.col("duckdb") - pl.col("engine")) / pl.col("engine")).alias("relative_difference"))
        .sort("metric")
    )
    return {row.pop("metric"): row for row in per_metric.iter_rows(named=True)}


def compare_outputs(engine_out: Path, full_out: Path) -> dict:
    """{what: {"engine", "duckdb_full": its total, "max_cell_difference"}} from the two output directories: the
    node-hours of daily_by_project and daily_by_user (cells of date, metric, node_type and project or user),
    the SUs of charges.parquet (cells of date, node_type, project), and the rows of each checkpoint (cells:
    the entities)."""
    out = {}
    for name, cells, value in (
        ("daily_by_project", ["date", "metric", "node_type", "project_id"], "hours"),
        ("daily_by_user", ["date", "metric", "node_type", "user_id"], "hours"),
        ("charges", ["date", "node_type", "project_id"], "su"),
    ):
        a, b = (pl.read_parquet(Path(d) / f"{name}.parquet") for d in (engine_out, full_out))
        if "resource" in a.columns:
            a, b = (t.filter(pl.col("resource") == "nodes") for t in (a, b))
            name = f"{name} node-hours"
        both = a.select(*cells, value).join(b.select(*cells, value), on=cells, how="full", coalesce=True)
        out[name] = _totals(both.fill_null(0.0), value, f"{value}_right")
    for kind in ("spans", "validated", "rejected", "inactive"):
        counts = [[_rows_in(Path(d) / kind / f"{e}.parquet") for d in (engine_out, full_out)] for e in ENTITIES]
        out[f"{kind}/ rows"] = _totals(pl.DataFrame(counts, schema=["a", "b"], orient="row"), "a", "b")
    return out


def _rows_in(path: Path) -> int:
    return pl.scan_parquet(path).select(pl.len()).collect().item()


def _totals(both: pl.DataFrame, engine: str, full: str) -> dict:
    return {
        "engine": both[engine].sum(),
        "duckdb_full": both[full].sum(),
        "max_cell_difference": (both[full] - both[engine]).abs().max(),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", choices=["small", "medium", "large"], default="small")
    ap.add_argument("--engine-out", type=Path, help="an engine run on the same data (default bench/data/SIZE-out)")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))  # run as a script: bench/run.py is importable as bench.run
    from bench.run import site

    raw = site(args.size)
    out = args.engine_out or ROOT / "bench" / "data" / f"{args.size}-out"
    if (out / "manifest.json").is_file():  # the engine's window, so that the hours are comparable
        window = json.loads((out / "manifest.json").read_text())["window"]
    else:
        window = json.loads((raw / "simulation" / "simulation.json").read_text())["window"]
        print(f"no engine output in {out}: the simulated window, no comparison")
    window = _window((window["start"], window["end"]))
    print(f"{args.size}: window {window[0]} → {window[1]}")
    low, duck, full = floor(raw, window), duckdb_pipeline(raw, window), duckdb_full(raw, window)
    print(f"floor: {low['rows']:,} raw rows, {low['events']:,} events sorted\n{'stage':<24} {'wall s':>8} {'cpu s':>8}")
    for label, result in (("floor", low), ("duckdb", duck), ("duckdb_full", full)):
        for stage, t in result["stages"].items():
            print(f"{label + ' ' + stage:<24} {t['seconds']:>8.2f} {t['cpu_seconds']:>8.2f}")
        total = [sum(t[k] for t in result["stages"].values()) for k in ("seconds", "cpu_seconds")]
        print(f"{label + ' total':<24} {total[0]:>8.2f} {total[1]:>8.2f}")
    print("duckdb rows: " + ", ".join(f"{t} {n:,}" for t, n in duck["spans"].items()))
    print("duckdb_full rows: " + "; ".join(f"{e} {n}" for e, n in full["rows"].items()) + f" → {full['out']}")
    if (out / "daily.parquet").is_file():
        for label, result in (("duckdb", duck), ("duckdb_full", full)):
            print(f"\n{'node-hours':<22} {'engine':>14} {label:>14} {'rel. diff':>10} {'max cell diff':>14}")
            for metric, c in compare_daily(pl.read_parquet(out / "daily.parquet"), result["daily"]).items():
                print(
                    f"{metric:<22} {c['engine']:>14,.1f} {c['duckdb']:>14,.1f} {c['relative_difference']:>+10.4%}"
                    f" {c['max_cell_difference']:>14,.2f}"
                )
        for name, c in compare_outputs(out, Path(full["out"])).items():
            print(f"{name:<30} {c['engine']:>14,.1f} {c['duckdb_full']:>14,.1f} {c['max_cell_difference']:>14,.2f}")


if __name__ == "__main__":
    main()
