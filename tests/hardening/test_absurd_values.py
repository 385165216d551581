"""Absurd values never become numbers silently: resources that are negative, non-finite or beyond 1e15 are
`invalid_value`; huge ones below that are counted exactly without false invariant alarms; times beyond the
documented bounds (1970 to 2200) never crash and never stretch the default window."""

from datetime import datetime

import polars as pl
import pytest

from tests.conftest import SPECS, run_cli
from tests.hardening.support import WINDOW, entity, one_error, run_ok
from tests.rawdata import tiny_site, write_raw

NOVA = ("input", "counted", "rejected")


def failed(m: dict) -> list:
    return [(i["id"], i["entity"]) for i in m["invariants"] if i["status"] != "pass"]


def with_vcpus(value) -> dict:
    tables = tiny_site()
    tables["nova.compute_nodes"][0]["vcpus"] = value  # h1, counted 720 h in the window
    return tables


@pytest.mark.parametrize(
    "value,detail", [(-4, "is -4.0, below 0"), (1e16, "is 1e+16, above 1e15"), (1e308, "is 1e+308, above 1e15")]
)
def test_a_negative_or_absurdly_large_resource_is_invalid_value(tmp_path, value, detail):
    m = run_ok(tmp_path, with_vcpus(value))
    # h1 rejected: row 5 (h1 again from d2) is nobody's duplicate any more, it is accepted
    assert entity(m, "nova_host") == (6, 0, 3, {"invalid_time_range": 1, "invalid_value": 1, "null_start": 1})
    rejected = pl.read_parquet(tmp_path / "out" / "rejected" / "nova_host.parquet")
    assert rejected.filter(pl.col("entity_id") == "1")["rejection_detail"].to_list() == [
        f"resources.vcpus (vcpus) {detail}"
    ]
    assert m["metrics"]["total"]["vcpus"] == (480 + 672 + 720) * 48 and failed(m) == []  # h2, row 5, h5


def test_a_huge_resource_is_counted_exactly_without_false_alarms(tmp_path):
    m = run_ok(tmp_path, with_vcpus(1e14))
    assert entity(m, "nova_host") == (6, 0, 3, {"duplicate": 1, "invalid_time_range": 1, "null_start": 1})
    assert m["metrics"]["total"]["vcpus"] == 720 * 1e14 + (480 + 720) * 48  # h1, then h2 and h5
    assert failed(m) == []


def nova_row(tables, key: int) -> dict:
    return next(r for r in tables["nova.compute_nodes"] if r["id"] == key)


def set_times(raw, **by_id) -> None:
    """Rewrite nova.compute_nodes with some times no Python datetime holds (polars expressions per id)."""
    path = raw / "nova.compute_nodes.parquet"
    frame = pl.read_parquet(path)
    for col in ("created_at", "deleted_at"):
        value = pl.col(col)
        for key, times in by_id.items():
            if col in times:
                value = pl.when(pl.col("id") == int(key[1:])).then(times[col]).otherwise(value)
        frame = frame.with_columns(value.alias(col))
    frame.write_parquet(path)


def test_ends_beyond_2200_are_open_ends_and_do_not_stretch_the_default_window(tmp_path):
    # h1 deleted "9999-12-31" (OverflowError before), h5 "2999-01-01" (7 GB, then an abort before)
    raw = write_raw(tmp_path / "far" / "raw", tiny_site())
    set_times(raw, n1={"deleted_at": pl.datetime(9999, 12, 31)}, n6={"deleted_at": pl.datetime(2999, 1, 1)})
    far = run_ok(tmp_path / "far", None, window=())
    tables = tiny_site()
    nova_row(tables, 1)["deleted_at"] = nova_row(tables, 6)["deleted_at"] = None  # the same, as open ends
    open_ = run_ok(tmp_path / "open", tables, window=())
    assert far["window"] == open_["window"] == {"start": "2024-01-01 00:00:00", "end": "2024-01-26 00:00:00"}
    assert far["entities"] == open_["entities"] and far["metrics"] == open_["metrics"]
    assert (
        "specs/entities/nova_host.yaml: entity 'nova_host': valid.end (deleted_at): 2 row(s) after 2200-01-01, "
        "read as an open end (e.g. entity_id 1)"
    ) in far["warnings"]


def test_a_start_before_1970_is_clipped_by_the_window_and_never_crashes(tmp_path):
    # h2 created in year -64 (Python's datetime cannot hold it: ValueError before, even with a window) counts as
    # the tiny site's h2 created at the window start does, with the window given and with the default one
    raw = write_raw(tmp_path / "raw", tiny_site())
    set_times(raw, n2={"created_at": pl.datetime(-64, 1, 1)})
    for window in (WINDOW, ()):
        m = run_ok(tmp_path, None, window=window)
        plain = run_ok(tmp_path / "plain", tiny_site(), window=window)
        assert m["window"] == plain["window"] and m["window"]["start"] == "2024-01-01 00:00:00"
        assert m["entities"]["nova_host"]["hours"]["counted"] == plain["entities"]["nova_host"]["hours"]["counted"]
        assert m["metrics"] == plain["metrics"]
        assert any("valid.start (created_at): 1 row(s) before 1970-01-01" in w for w in m["warnings"])
    trace = run_cli("trace", tmp_path / "out", "nova_host", "2")
    assert trace.exit_code == 0 and "-0064-01-01" in trace.stdout


def test_a_start_beyond_2200_is_invalid_value(tmp_path):
    tables = tiny_site()
    nova_row(tables, 6)["created_at"] = datetime(2250, 1, 1)
    run_ok(tmp_path, tables)
    rejected = pl.read_parquet(tmp_path / "out" / "rejected" / "nova_host.parquet").filter(pl.col("entity_id") == "6")
    assert rejected["rejection_reason"].to_list() == ["invalid_value"]
    assert rejected["rejection_detail"].to_list() == [
        "valid.start (created_at) is 2250-01-01 00:00:00.000000, after 2200-01-01"
    ]


@pytest.mark.parametrize(
    "flag,value",
    [("--start", "1901-01-01"), ("--end", "2300-01-01"), ("--as-of", "2201-05-05"), ("--start", "0001-01-01")],
)
def test_a_window_outside_the_bounds_is_refused(tmp_path, flag, value):
    raw = write_raw(tmp_path / "raw", tiny_site())
    args = ["--lens", "projected"] if flag == "--as-of" else []
    result = run_cli("run", SPECS, "--data", raw, "--out", tmp_path / "out", flag, value, *args)
    assert one_error(result) == f"{flag} {value}: outside the times the engine reads, 1970 to 2200"
