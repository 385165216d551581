"""Bad raw input: each case ends in a documented rejection or in one clear error line, never a traceback.

Every case changes tests/rawdata.py:tiny_site(); its untouched answers are in tests/e2e/test_run_tiny.py
(nova_host: 2592 input hours, 1920 counted, 672 rejected; allocation: 3 accepted, 1 missing_fk).
"""

from datetime import datetime, timedelta

import polars as pl
import pyarrow.parquet as pq
import pytest

from tests.conftest import SPECS, run_cli
from tests.hardening.support import entity, hours, one_error, run_error, run_ok
from tests.rawdata import day, tiny_site, write_raw

NOVA = ("input", "counted", "rejected")
STAMP = pl.Datetime("us")


def nova_times(transform):
    """The tiny site with every nova.compute_nodes created_at/deleted_at passed through transform."""
    tables = tiny_site()
    for row in tables["nova.compute_nodes"]:
        for col in ("created_at", "deleted_at"):
            row[col] = None if row[col] is None else transform(row[col])
    return tables


# Wrong column types -----------------------------------------------------------------------------


def test_text_timestamps_read_as_the_typed_ones(tmp_path):
    # nova timestamps as ISO text; ondemand_instance as-of joins its host on cn.created_at (text vs timestamp)
    m = run_ok(tmp_path, nova_times(lambda t: t.isoformat(sep=" ")))
    assert entity(m, "nova_host") == (6, 0, 3, {"duplicate": 1, "invalid_time_range": 1, "null_start": 1})
    assert hours(m, "nova_host", *NOVA) == (2592, 1920, 672)
    assert entity(m, "ondemand_instance") == (5, 3, 2, {})
    assert m["metrics"]["occupied_ondemand"]["nodes"] == 96.0


@pytest.mark.parametrize(
    "tables", [["blazar.leases"], ["nova.instances"], ["nova.instance_actions_events"], "all"], ids=str
)
def test_text_timestamps_inside_expressions_read_as_the_typed_ones(tmp_path, tables):
    """A dump converted through CSV holds every time as text. Where a spec reads one inside least(),
    coalesce() or date_part() (leases' end, instances' and events' times), the run stopped: 'got invalid or
    ambiguous dtypes [str, str, datetime]', 'casting from string to datetime is not supported'."""
    typed = run_ok(tmp_path / "typed", tiny_site())
    daily = pl.read_parquet(tmp_path / "typed" / "out" / "daily.parquet")
    site = tiny_site()
    for name in site if tables == "all" else tables:
        for row in site[name]:
            row.update({c: f"{v:%Y-%m-%d %H:%M:%S}" for c, v in row.items() if isinstance(v, datetime)})
    text = run_ok(tmp_path / "text", site)
    assert text["metrics"] == typed["metrics"] and text["entities"] == typed["entities"]
    assert pl.read_parquet(tmp_path / "text" / "out" / "daily.parquet").equals(daily)
    lead = [
        pl.read_parquet(tmp_path / run / "out" / "reports" / "lease_lead_time.parquet") for run in ("typed", "text")
    ]
    assert lead[1]["requested_lead_hours"].to_list() == lead[0]["requested_lead_hours"].to_list()


def test_text_timestamps_with_an_offset_are_converted_to_utc(tmp_path):
    # same wall clock at +02:00 = 2 h earlier in UTC. nova: h1 720 h in the window, h2 [d0-2h, d20-2h) 478,
    # h5 [d0-2h, d30-2h) 718; row 5 (duplicate of h1) from d2-2h: 674 rejected
    m = run_ok(tmp_path, nova_times(lambda t: t.isoformat() + "+02:00"))
    assert hours(m, "nova_host", *NOVA) == (2590, 1916, 674)
    # blazar host 11 [d1, d21) cut to its nova host's end d20-2h: 26 h clamped away
    assert hours(m, "blazar_host", "counted", "clamped_away", "orphaned") == (696 + 454, 26, 48)


def test_text_timestamps_mixing_forms_in_one_column(tmp_path):
    # the tiny site's instants written five ways in one column: every row reads as before
    forms = {  # row index: (created_at, deleted_at)
        0: ("2024-01-01 00:00:00", None),  # naive
        1: ("2024-01-01T00:00:00Z", "2024-01-21 02:00:00+02:00"),  # Zulu; offset: d20 in UTC
        3: ("2024-01-11", "2024-01-09T00:00:00.000"),  # a date; fractional seconds
        4: ("2024-01-03T02:00:00+0200", None),  # offset without colon: d2 in UTC
        5: ("2024-01-01 00:00:00.000000", "2024-01-31T01:00:00+01:00"),
    }
    tables = tiny_site()
    for i, row in enumerate(tables["nova.compute_nodes"]):
        row["created_at"], row["deleted_at"] = forms.get(i, (None, None))
    m = run_ok(tmp_path, tables)
    assert entity(m, "nova_host") == (6, 0, 3, {"duplicate": 1, "invalid_time_range": 1, "null_start": 1})
    assert hours(m, "nova_host", *NOVA) == (2592, 1920, 672)


@pytest.mark.parametrize("first", ["2024-01-01 00:00:00", "2024-01-01T00:00:00Z"])
def test_a_text_timestamp_reads_the_same_whatever_the_first_row(tmp_path, first):
    """Polars inferred a format from a column's first value: with a first row in Z form the minute-only rows
    below were rejected (744 h counted instead of 1,920)."""
    tables = tiny_site()
    for row in tables["nova.compute_nodes"]:
        for col in ("created_at", "deleted_at"):
            row[col] = row[col] and f"{row[col]:%Y-%m-%d %H:%M}"
    tables["nova.compute_nodes"][0]["created_at"] = first
    m = run_ok(tmp_path, tables)
    assert entity(m, "nova_host") == (6, 0, 3, {"duplicate": 1, "invalid_time_range": 1, "null_start": 1})
    assert hours(m, "nova_host", *NOVA) == (2592, 1920, 672)


def test_month_first_text_dates_are_refused_never_read_day_first(tmp_path):
    """01/02/2024 was read as 1 February (Polars' inference): exit 0, every invariant passing, wrong hours."""
    tables = tiny_site()
    for row in tables["nova.compute_nodes"]:
        for col in ("created_at", "deleted_at"):
            row[col] = row[col] and f"{row[col]:%m/%d/%Y %H:%M:%S}"
    message = run_error(tmp_path, tables)  # nothing counts, so nothing is written: no false success
    assert message.startswith("no counted span in the window 2024-01-01 to 2024-01-31 (no span counts at all; ")
    assert "rejected: nova_host {'invalid_value': 5, 'null_start': 1}" in message


def test_text_that_is_no_timestamp_is_rejected_as_invalid_value(tmp_path):
    tables = tiny_site()
    tables["nova.compute_nodes"] = [
        r
        | {
            "created_at": r["created_at"] and r["created_at"].isoformat(),
            "deleted_at": r["deleted_at"] and str(r["deleted_at"]),
        }
        for r in tables["nova.compute_nodes"]
    ]
    tables["nova.compute_nodes"][5]["deleted_at"] = "next tuesday"  # h5 would otherwise run to the window end
    tables["nova.compute_nodes"][1]["deleted_at"] = "0000-00-00 00:00:00"  # MySQL's zero date: null, h2 open
    m = run_ok(tmp_path, tables)
    assert entity(m, "nova_host") == (
        6,
        0,
        2,
        {"duplicate": 1, "invalid_time_range": 1, "invalid_value": 1, "null_start": 1},
    )
    rejected = pl.read_parquet(tmp_path / "out" / "rejected" / "nova_host.parquet").filter(pl.col("entity_id") == "6")
    assert rejected["rejection_detail"].to_list() == ["valid.end (deleted_at) is 'next tuesday', not a timestamp"]
    # h1 720 + h2 now open 720 counted; h5 [d0, d30) 720 rejected with row 5's 672
    assert hours(m, "nova_host", *NOVA) == (2832, 1440, 1392)


def test_int_ids_meet_text_ids(tmp_path):
    tables = tiny_site()
    for row in tables["blazar.leases"]:
        row["id"] = int(row["id"][1:])  # 1..4, where reservations.lease_id holds the text '1'..'4'
    for row in tables["blazar.reservations"]:
        row["lease_id"] = row["lease_id"][1:]
    m = run_ok(tmp_path, tables)
    assert entity(m, "allocation") == (5, 1, 3, {"missing_fk": 1})
    assert hours(m, "allocation", "input", "counted", "clamped_by_duplicates", "clamped_by_parent") == (
        312,
        192,
        48,
        72,
    )


def test_float_ids_meet_int_ids(tmp_path):
    # a nullable integer column exported as floats: 10.0 must meet computehosts.id 10 (it met nothing before)
    tables = tiny_site()
    for row in tables["blazar.computehost_allocations"]:
        row["compute_host_id"] = float(row["compute_host_id"])
    m = run_ok(tmp_path, tables)
    assert entity(m, "allocation") == (5, 1, 3, {"missing_fk": 1})
    assert m["metrics"]["committed"]["nodes"] == 192.0


# Missing columns, empty tables, all-null columns --------------------------------------------------


@pytest.mark.parametrize(
    "table,column,message",
    [
        (
            "nova.compute_nodes",
            "deleted_at",
            "specs/entities/nova_host.yaml: entity 'nova_host': valid.end: no column "
            "'deleted_at' in nova.compute_nodes (did you mean 'updated_at'?)",
        ),
        (
            "blazar.leases",
            "end_date",
            "specs/entities/allocation.yaml: entity 'allocation': valid.end: no column "
            "'l.end_date' in blazar.leases (did you mean 'l.start_date'?)",
        ),
        (
            "blazar.computehost_allocations",
            "reservation_id",
            "specs/entities/allocation.yaml: entity 'allocation': "
            "joins[0].on: no column 'reservation_id' in blazar.computehost_allocations",
        ),
        (
            "blazar.reservations",
            "id",
            "specs/entities/allocation.yaml: entity 'allocation': joins[0].on: no column 'id' in blazar.reservations",
        ),
        (
            "nova.instance_actions_events",
            "result",
            "specs/lookups/instance_events.yaml: lookup 'instance_events': "
            "scope[0]: no column 'result' in nova.instance_actions_events",
        ),
    ],
)
def test_a_missing_column_names_file_spec_field_table_and_column(tmp_path, table, column, message):
    tables = tiny_site()
    for row in tables[table]:
        del row[column]
    assert run_error(tmp_path, tables) == message


def test_an_empty_table_gives_zero_rows_and_orphans_its_children(tmp_path):
    tables = tiny_site()
    tables["nova.compute_nodes"] = []
    schema = {
        "id": pl.Int64,
        "hypervisor_hostname": pl.String,
        "created_at": STAMP,
        "deleted_at": STAMP,
        "updated_at": STAMP,
        "vcpus": pl.Int64,
        "memory_mb": pl.Int64,
        "local_gb": pl.Int64,
        "hypervisor_type": pl.String,
    }
    # nothing can count: no false success, but the one line says what became of the rows
    assert run_error(tmp_path, tables, schemas={"nova.compute_nodes": schema}) == (
        "no counted span in the window 2024-01-01 to 2024-01-31 (no span counts at all; rejected: blazar_host "
        "{'missing_fk': 4}, allocation {'missing_fk': 4}, slice_allocation {'missing_fk': 1}, ondemand_instance "
        "{'missing_fk': 2}, reserved_instance {'missing_fk': 3})"
    )


def test_an_empty_table_without_columns_names_the_first_column_needed(tmp_path):
    tables = tiny_site()
    tables["nova.compute_nodes"] = []  # written as a parquet file with no columns at all
    assert run_error(tmp_path, tables) == (
        "specs/entities/nova_host.yaml: entity 'nova_host': joins[0].on: no column 'hypervisor_hostname' in "
        "nova.compute_nodes"
    )


def test_empty_tables_and_no_window_ask_for_one(tmp_path):
    raw = write_raw(tmp_path / "raw", tiny_site())
    for path in raw.glob("*.parquet"):
        pl.read_parquet(path).clear().write_parquet(path)  # every table empty, with its columns
    result = run_cli("run", SPECS, "--data", raw, "--out", tmp_path / "out")
    assert one_error(result) == "no counted spans to derive a window from; give --start and --end"


def test_every_root_row_rejected_and_no_window_says_which_rows_and_why(tmp_path):
    tables = tiny_site()
    for row in tables["nova.compute_nodes"]:
        row["vcpus"] = -1
    raw = write_raw(tmp_path / "raw", tables)
    message = one_error(run_cli("run", SPECS, "--data", raw, "--out", tmp_path / "out"))
    assert message.startswith("no counted spans to derive a window from; rejected: nova_host {'invalid_value': 6}, ")
    assert message.endswith("; give --start and --end") and not (tmp_path / "out").exists()


def test_an_end_after_the_data_is_kept_with_a_warning_of_what_it_projects(tmp_path):
    m = run_ok(tmp_path, tiny_site(), window=("--start", "2024-01-01", "--end", "2024-03-01"))
    assert m["window"] == {"start": "2024-01-01 00:00:00", "end": "2024-03-01 00:00:00"}
    assert m["warnings"] == [
        "--end 2024-03-01 00:00 is after the data's last recorded change, 2024-01-31 00:00: what was open then "
        "is counted to the window end, as if nothing changed after it"
    ]
    # h1 (enrolled day 0, never deleted) counts to the window end: 60 days, with h2's 20 and h5's 30
    assert m["entities"]["nova_host"]["hours"]["counted"] == (60 + 20 + 30) * 24


def test_an_all_null_timestamp_column_rejects_every_row_as_null_start(tmp_path):
    # written with the Null type (no values to infer one from): read as timestamps, all null
    message = run_error(tmp_path, nova_times(lambda t: None))
    assert message.startswith("no counted span in the window 2024-01-01 to 2024-01-31 (no span counts at all; ")
    assert "nova_host {'null_start': 6}, blazar_host {'missing_fk': 4}" in message


def test_an_all_null_resource_column_rejects_every_row_as_invalid_value(tmp_path):
    tables = tiny_site()
    for row in tables["nova.compute_nodes"]:
        row["vcpus"] = None
    assert "rejected: nova_host {'invalid_value': 6}" in run_error(tmp_path, tables)
    tables["nova.compute_nodes"][0]["vcpus"] = 48  # h1 counts: the run goes on, and says why the others did not
    m = run_ok(tmp_path, tables)
    assert entity(m, "nova_host") == (6, 0, 1, {"invalid_value": 5})
    rejected = pl.read_parquet(tmp_path / "out" / "rejected" / "nova_host.parquet")
    assert set(rejected["rejection_detail"]) == {"resources.vcpus (vcpus) is null"}


def test_an_all_null_identity_column_never_makes_two_rows_duplicates(tmp_path):
    tables = tiny_site()
    for row in tables["nova.compute_nodes"]:
        row["hypervisor_hostname"] = None
    m = run_ok(tmp_path, tables)
    # rows 1, 2, 5, 6 are all accepted (an unknown identity is nobody's duplicate): 720 + 480 + 672 + 720 h
    assert entity(m, "nova_host") == (6, 0, 4, {"invalid_time_range": 1, "null_start": 1})
    assert hours(m, "nova_host", *NOVA) == (2592, 2592, 0)
    assert entity(m, "blazar_host") == (4, 0, 0, {"missing_fk": 4})  # no nova host has their hostnames


# Values -----------------------------------------------------------------------------------------


def test_nan_and_infinite_resources_are_rejected_as_invalid_value(tmp_path):
    tables = tiny_site()
    tables["nova.compute_nodes"][0]["vcpus"] = float("nan")  # h1
    tables["nova.compute_nodes"][1]["vcpus"] = float("inf")  # h2
    m = run_ok(tmp_path, tables)
    # row 5 (h1 again, from d2) is no longer anyone's duplicate: counted 672 (h1 from d2) + 720 (h5)
    assert entity(m, "nova_host") == (6, 0, 2, {"invalid_time_range": 1, "invalid_value": 2, "null_start": 1})
    assert hours(m, "nova_host", *NOVA) == (2592, 1392, 720 + 480)
    detail = pl.read_parquet(tmp_path / "out" / "rejected" / "nova_host.parquet").filter(
        pl.col("rejection_reason") == "invalid_value"
    )
    assert sorted(detail["rejection_detail"]) == ["resources.vcpus (vcpus) is NaN", "resources.vcpus (vcpus) is inf"]
    assert m["metrics"]["total"]["vcpus"] == (672 + 720) * 48  # finite: nothing NaN reached the sweep
    assert [i for i in m["invariants"] if i["status"] != "pass"] == []


def test_timestamps_in_1970_and_2099_are_clipped_to_the_window(tmp_path):
    tables = tiny_site()
    tables["nova.compute_nodes"][0]["created_at"] = datetime(1970, 1, 1)  # h1
    tables["nova.compute_nodes"][1]["deleted_at"] = datetime(2099, 1, 1)  # h2
    m = run_ok(tmp_path, tables)
    # h1, h2, h5 each fill the 720 h window; row 5 (h1 from d2) duplicate: 672
    assert hours(m, "nova_host", *NOVA) == (2832, 2160, 672)
    # h2 now outlives its Blazar hosts: 11 [d1, d21) and 13 [d22, d24) are direct, nothing clamped or orphaned
    assert hours(m, "blazar_host", "counted", "clamped_away", "orphaned") == (696 + 480 + 48, 0, 0)


def test_timestamps_in_1970_and_2099_without_a_window_stretch_it(tmp_path):
    tables = tiny_site()
    tables["nova.compute_nodes"][0]["created_at"] = datetime(1970, 1, 1)
    tables["nova.compute_nodes"][1]["deleted_at"] = datetime(2099, 1, 1)
    m = run_ok(tmp_path, tables, window=())
    # from the first counted start to the day after the last recorded change (h2's deletion)
    start, end = datetime(1970, 1, 1), datetime(2099, 1, 2)
    assert m["window"] == {"start": str(start), "end": str(end)}
    h = lambda a, b: (b - a) / timedelta(hours=1)  # noqa: E731
    assert hours(m, "nova_host", "counted") == (h(start, end) + h(day(0), datetime(2099, 1, 1)) + h(day(0), day(30)),)


def test_timezone_aware_and_naive_tables_are_compared_in_utc(tmp_path):
    tables = tiny_site()
    raw = write_raw(tmp_path / "raw", tables)
    paris = pl.read_parquet(raw / "nova.compute_nodes.parquet").with_columns(
        pl.col("created_at", "deleted_at").dt.replace_time_zone("Europe/Paris")  # same wall clock, UTC+1 in January
    )
    paris.write_parquet(raw / "nova.compute_nodes.parquet")
    m = run_ok(tmp_path, None)
    # nova 1 h earlier: h1 720, h2 [d0-1h, d20-1h) 479, h5 [d0-1h, d30-1h) 719; row 5 from d2-1h: 673 rejected
    assert hours(m, "nova_host", *NOVA) == (2591, 1918, 673)
    # the naive Blazar host 11 [d1, d21) is cut at its aware nova host's end: 25 h away
    assert hours(m, "blazar_host", "counted", "clamped_away") == (696 + 455, 25)


# Duplicated primary keys ------------------------------------------------------------------------


def test_a_repeated_source_key_is_kept_apart_and_warned_about(tmp_path):
    tables = tiny_site()
    tables["nova.compute_nodes"].append(dict(tables["nova.compute_nodes"][0]))  # row id 1 twice
    m = run_ok(tmp_path, tables)
    # the copy is a second h1 from d0: rejected as duplicate of the first, like row 5
    assert entity(m, "nova_host") == (7, 0, 3, {"duplicate": 2, "invalid_time_range": 1, "null_start": 1})
    assert hours(m, "nova_host", *NOVA) == (2592 + 720, 1920, 672 + 720)
    assert (
        "specs/entities/nova_host.yaml: entity 'nova_host': source.key: 1 id value(s) of nova.compute_nodes are on "
        "more than one row (e.g. 1); each row is kept, so entity_id is not unique" in m["warnings"]
    )


def test_a_null_source_key_is_rejected_as_invalid_value(tmp_path):
    tables = tiny_site()
    tables["blazar.computehost_allocations"][0]["id"] = None  # A1: no id, so no entity_id to trace it by
    m = run_ok(tmp_path, tables)
    assert entity(m, "allocation") == (5, 1, 2, {"invalid_value": 1, "missing_fk": 1})
    rejected = pl.read_parquet(tmp_path / "out" / "rejected" / "allocation.parquet").filter(
        pl.col("rejection_reason") == "invalid_value"
    )
    assert rejected.select("entity_id", "reservation_id", "rejection_detail").rows() == [
        (None, "R1", "source.key (id) is null")
    ]
    # A2 is no longer cut by A1: [d3, d8) all counted
    assert hours(m, "allocation", "counted", "clamped_by_duplicates") == (120 + 48, 0)


def test_a_repeated_key_in_a_joined_table_uses_the_first_row_and_says_so(tmp_path):
    tables = tiny_site()
    tables["blazar.reservations"].append({"id": "R1", "lease_id": "L4", "resource_type": "physical:host"})
    m = run_ok(tmp_path, tables)
    assert entity(m, "allocation") == (5, 1, 3, {"missing_fk": 1})  # A1 still on L1 [d2, d5)
    assert hours(m, "allocation", "input", "counted") == (312, 192)
    assert (
        "specs/entities/allocation.yaml: entity 'allocation': joins[0]: blazar.reservations repeats 1 value(s) of "
        "(id); the first row of each is used (1 row(s) ignored)" in m["warnings"]
    )


def test_a_repeated_key_is_counted_when_another_row_has_a_null_key(tmp_path):
    """A null key matches nothing, and it hides no repeat of another key (the count once read every repeat as
    none as soon as a key column held a null anywhere)."""
    tables = tiny_site()
    tables["blazar.reservations"].append({"id": "R1", "lease_id": "L4", "resource_type": "physical:host"})
    tables["blazar.reservations"].append({"id": None, "lease_id": "L4", "resource_type": "physical:host"})
    m = run_ok(tmp_path, tables)
    assert entity(m, "allocation") == (5, 1, 3, {"missing_fk": 1})
    assert (
        "specs/entities/allocation.yaml: entity 'allocation': joins[0]: blazar.reservations repeats 1 value(s) of "
        "(id); the first row of each is used (1 row(s) ignored)" in m["warnings"]
    )


# Files that are not parquet ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "damage,reason",
    [
        (lambda b: b[: len(b) // 2], "The file must end with PAR1 or PARE"),  # truncated
        (lambda b: b"id,hypervisor_hostname\n1,h1\n", "The file must end with PAR1 or PARE"),  # a CSV
        (lambda b: b"", "A Parquet file must contain a header and footer with at least 12 bytes"),  # empty
    ],
    ids=["truncated", "csv", "zero-bytes"],
)
def test_a_file_that_is_not_parquet_is_named(tmp_path, damage, reason):
    raw = write_raw(tmp_path / "raw", tiny_site())
    path = raw / "blazar.leases.parquet"
    path.write_bytes(damage(path.read_bytes()))
    assert run_error(tmp_path, None) == (
        f"{path}: not a readable parquet file (parquet: File out of specification: {reason})"
    )


def test_a_damaged_data_page_is_one_line_naming_the_entity_and_its_tables(tmp_path):
    raw = write_raw(tmp_path / "raw", tiny_site())
    path = raw / "nova.compute_nodes.parquet"
    column = pq.ParquetFile(path).metadata.row_group(0).column(0)  # id: footer intact, page scrambled
    data = bytearray(path.read_bytes())
    for i in range(
        column.data_page_offset + column.total_compressed_size // 2,
        column.data_page_offset + column.total_compressed_size,
    ):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))
    message = run_error(tmp_path, None)
    assert message.startswith(
        "specs/entities/nova_host.yaml: entity 'nova_host': source.key: Polars failed internally (an expression it "
        "cannot run, or a damaged file): "
    )
    assert message.endswith(" (reading nova.compute_nodes, hostname_node_type)")
