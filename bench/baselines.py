"""Baselines for the benchmark, measured on the same raw data and window as the engine.

    python bench/baselines.py --size small|medium|large [--engine-out OUT_DIR]

`floor`: the cost nothing can beat. It scans (Polars, lazily) only the columns the bare-metal pipeline
reads from the ten raw tables it reads, turns every row into a +1 event at its start and a -1 event
at its end (an open end at the window end) and sorts the events by time. No joins, no rules: any
pipeline reads this data and sorts at least this many events.

`duckdb_pipeline`: the obvious alternative a user would write, the bare-metal pipeline in plain DuckDB
SQL over read_parquet(): spans of Nova hosts, Blazar hosts, allocations and reserved and on-demand
instances (lookups as in specs/lookups/), each child clamped to the parent span it overlaps, a
sweepline per (metric, node_type) and node-hours per UTC day. Each stage is a temp table, so each is
timed on its own. Relative to the engine it does NOT:
  - resolve duplicates (INV-7): overlapping rows of one identity (Blazar's duplicated hosts) are all
    counted, and a child overlapping two of them is counted in both;
  - keep rejected rows, orphans, accounts, checkpoints or a report: rows failing a rule or join vanish;
  - sweep other resources than `nodes`, nor derived metrics (ondemand_capacity, idle, ...);
  - read the pre-2021 Blazar layout (capability_name): the node type is by property_id only;
  - apply exclusions (etc/exclusions.yaml) or the projected lens.
`compare_daily` puts the engine's node-hours per base metric next to the baseline's.
"""

import argparse
import json
import resource
import sys
import time
from contextlib import contextmanager
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
    wall, cpu = time.perf_counter(), _cpu()
    yield
    stages[name] = {"seconds": round(time.perf_counter() - wall, 3), "cpu_seconds": round(_cpu() - cpu, 3)}


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


# Stage 1: spans, with the lookups of specs/lookups/ as CTEs. A row with a null start, an end not after
# its start, a failed inner join or out of scope is dropped.
SPANS = """
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
WITH instance_reservation AS (  -- scheduler hint, else the flavor named reservation:<uuid>
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
SELECT * FROM (
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


def compare_daily(engine_daily: pl.DataFrame, duck_daily: pl.DataFrame) -> dict:
    """{metric: {"engine", "duckdb": node-hours in the window, "relative_difference": (duckdb - engine) / engine,
    "max_cell_difference": largest |duckdb - engine| of one (date, node_type) cell}}, for the metrics of both."""
    cells = ["date", "metric", "node_type"]
    engine = engine_daily.filter(pl.col("resource") == "nodes").select(*cells, "hours")
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
    low, duck = floor(raw, window), duckdb_pipeline(raw, window)
    print(f"floor: {low['rows']:,} raw rows, {low['events']:,} events sorted\n{'stage':<18} {'wall s':>8} {'cpu s':>8}")
    for label, result in (("floor", low), ("duckdb", duck)):
        for stage, t in result["stages"].items():
            print(f"{label + ' ' + stage:<18} {t['seconds']:>8.2f} {t['cpu_seconds']:>8.2f}")
        total = [sum(t[k] for t in result["stages"].values()) for k in ("seconds", "cpu_seconds")]
        print(f"{label + ' total':<18} {total[0]:>8.2f} {total[1]:>8.2f}")
    print("duckdb rows: " + ", ".join(f"{t} {n:,}" for t, n in duck["spans"].items()))
    if (out / "daily.parquet").is_file():
        print(f"\n{'node-hours':<22} {'engine':>14} {'duckdb':>14} {'rel. diff':>10} {'max cell diff':>14}")
        for metric, c in compare_daily(pl.read_parquet(out / "daily.parquet"), duck["daily"]).items():
            print(
                f"{metric:<22} {c['engine']:>14,.1f} {c['duckdb']:>14,.1f} {c['relative_difference']:>+10.4%}"
                f" {c['max_cell_difference']:>14,.2f}"
            )


if __name__ == "__main__":
    main()
