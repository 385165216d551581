"""Raw data cannot collide with the engine: reserved column names, every physical type of a key or a text
column, and the shapes a "parquet file" takes on disk. Each case is read correctly (the tiny site's answers:
allocation 5 rows, 1 out of scope, 3 accepted, 1 missing_fk, 192 committed node-hours) or refused in one line
naming the file and the column."""

import os
import threading

import polars as pl
import pytest

from tests.hardening.support import entity, run_error, run_ok
from tests.rawdata import tiny_site, write_raw

ALLOCATION = (5, 1, 3, {"missing_fk": 1})


def retype(raw, table: str, **columns) -> None:
    """Rewrite one raw table with some columns cast (or replaced by an expression)."""
    path = raw / f"{table}.parquet"
    frame = pl.read_parquet(path)
    frame.with_columns(
        (value if isinstance(value, pl.Expr) else pl.col(name).cast(value)).alias(name)
        for name, value in columns.items()
    ).write_parquet(path)


def test_a_raw_column_named_like_a_join_alias_or_an_internal_column_is_set_aside(tmp_path):
    raw = write_raw(tmp_path / "raw", tiny_site())
    # `r.resource_type` would have shadowed the reservation's resource type (the allocation's scope), `__row`
    # the engine's own row number
    retype(raw, "blazar.computehost_allocations", **{"r.resource_type": pl.lit("flavor:instance"), "__row": pl.lit(7)})
    m = run_ok(tmp_path, None)
    assert entity(m, "allocation") == ALLOCATION
    assert m["metrics"]["committed"]["nodes"] == 192.0
    path = raw / "blazar.computehost_allocations.parquet"
    assert f"{path}: column(s) 'r.resource_type', '__row' ignored: the name is reserved" in m["warnings"]


@pytest.mark.parametrize(
    "table,columns",
    [
        ("blazar.computehosts", {"id": pl.Decimal(20, 0)}),  # a MySQL BIGINT UNSIGNED read as DECIMAL
        ("blazar.computehosts", {"id": pl.UInt64}),
        ("blazar.computehost_allocations", {"compute_host_id": pl.Categorical}),
        ("blazar.computehost_allocations", {"compute_host_id": pl.Binary, "reservation_id": pl.Binary}),
        ("blazar.reservations", {"resource_type": pl.Binary, "id": pl.Categorical}),
    ],
    ids=["decimal", "unsigned", "categorical", "bytes", "bytes-in-scope"],
)
def test_every_physical_type_of_a_key_or_text_column_reads_as_the_plain_one(tmp_path, table, columns):
    raw = write_raw(tmp_path / "raw", tiny_site())
    retype(raw, table, **columns)
    m = run_ok(tmp_path, None)
    assert entity(m, "allocation") == ALLOCATION
    assert m["metrics"]["committed"]["nodes"] == 192.0


def test_bytes_that_are_not_text_are_one_line_naming_the_column(tmp_path):
    raw = write_raw(tmp_path / "raw", tiny_site())
    retype(raw, "blazar.reservations", resource_type=pl.lit(b"\xff\xfe", pl.Binary))
    message = run_error(tmp_path, None)
    assert (
        message == f"{raw / 'blazar.reservations.parquet'}: column 'resource_type' holds bytes that are not UTF-8 text"
    )


def test_a_nested_key_column_is_one_line_naming_the_table_and_column(tmp_path):
    raw = write_raw(tmp_path / "raw", tiny_site())
    retype(raw, "blazar.computehost_allocations", compute_host_id=pl.concat_list("compute_host_id"))
    message = run_error(tmp_path, None)
    assert message == (
        "specs/entities/allocation.yaml: entity 'allocation': joins[2].on: column 'compute_host_id' of the rows "
        "so far is List(String): a key must be a number or text"
    )


def test_nan_ids_never_meet_each_other(tmp_path):
    tables = tiny_site()
    tables["blazar.computehosts"][0]["id"] = float("nan")  # host 10
    for row in tables["blazar.computehosts"][1:]:
        row["id"] = float(row["id"])
    tables["blazar.computehost_allocations"][0]["compute_host_id"] = float("nan")  # A1 named host 10
    for row in tables["blazar.computehost_allocations"][1:]:
        row["compute_host_id"] = float(row["compute_host_id"])
    run_ok(tmp_path, tables)
    rejected = pl.read_parquet(tmp_path / "out" / "rejected" / "allocation.parquet")
    assert rejected.filter(pl.col("entity_id") == "A1")["rejection_reason"].to_list() == ["missing_fk"]


def leases_in_parts(tmp_path, first=lambda leases: leases):
    """The tiny site with blazar.leases written as a directory of two parts (the first as `first` makes it);
    the directory and the leases."""
    path = write_raw(tmp_path / "raw", tiny_site()) / "blazar.leases.parquet"
    leases = pl.read_parquet(path)
    path.unlink()
    path.mkdir()
    first(leases.head(2)).write_parquet(path / "part-0.parquet")
    leases.tail(2).write_parquet(path / "part-1.parquet")
    return path, leases


def test_a_table_written_as_a_directory_of_parquet_files_is_read_whole(tmp_path):
    path, leases = leases_in_parts(tmp_path)
    (path / "_SUCCESS").write_text("")  # what Spark writes beside the parts
    (path / "_temporary" / "0").mkdir(parents=True)  # a killed job's attempt, and a hidden file: no data
    leases.with_columns(pl.col("id") + "x").write_parquet(path / "_temporary" / "0" / "part-0.parquet")
    leases.write_parquet(path / ".part-2.parquet")
    m = run_ok(tmp_path, None)
    assert entity(m, "allocation") == ALLOCATION and m["tables"]["blazar.leases"] == 4  # 12 rows were read before


@pytest.mark.parametrize("name", ["000001_0", "part-1.PARQUET", "part-1.parq", "linked/part-1.parquet"])
def test_every_part_of_a_table_is_read_whatever_its_name_and_through_a_linked_directory(tmp_path, name):
    """Only *.parquet files were read (Path.rglob does not follow a linked directory either): half the leases
    were dropped without a word. Hive names its parts 000000_0."""
    path, _ = leases_in_parts(tmp_path)
    if name.startswith("linked/"):
        (tmp_path / "elsewhere").mkdir()
        (path / "part-1.parquet").rename(tmp_path / "elsewhere" / "part-1.parquet")
        (path / "linked").symlink_to(tmp_path / "elsewhere")
        (tmp_path / "elsewhere" / "loop").symlink_to(path)  # a link back up the tree is walked once
    else:
        (path / "part-1.parquet").rename(path / name)
    m = run_ok(tmp_path, None)
    assert entity(m, "allocation") == ALLOCATION and m["tables"]["blazar.leases"] == 4
    (path / "notes.txt").write_text("exported by hand")
    assert run_error(tmp_path, None).startswith(f"{path / 'notes.txt'}: not a readable parquet file (")


def test_the_parts_of_a_table_with_other_columns_are_one_line_naming_the_part(tmp_path):
    """Polars reads every part by the first one's columns: an extra one was a SchemaError traceback."""
    path, _ = leases_in_parts(tmp_path, first=lambda leases: leases.drop("end_date"))
    assert run_error(tmp_path, None) == (
        f"{path / 'part-1.parquet'}: column 'end_date' is Datetime(time_unit='us', time_zone=None) here and "
        "missing in part-0.parquet: the parts of a table must have the same columns"
    )
    (path / "part-0.parquet").unlink()
    (path / "part-1.parquet").rename(path / "_part-1.parquet")
    assert run_error(tmp_path, None) == f"{path}: a directory with no parquet file in it"


def test_parts_of_one_table_written_years_apart_in_other_units_are_read_as_one(tmp_path):
    """A part with its times in milliseconds, in another zone, and its integers as Int32 beside one in
    microseconds and Int64 (two dumps of one table, by two tools), and an empty part of Null columns: refused
    as "other columns" before. An integer beside a float, or a time as text beside a time, is still refused."""
    typed = run_ok(tmp_path / "typed", tiny_site())
    other = {"start_date": pl.col("start_date").dt.cast_time_unit("ms").dt.replace_time_zone("UTC")}
    other |= {"end_date": pl.col("end_date").dt.cast_time_unit("ms"), "seq": pl.lit(1, pl.Int32)}
    path, _ = leases_in_parts(tmp_path, first=lambda leases: leases.with_columns(**other))
    part = pl.read_parquet(path / "part-1.parquet").with_columns(seq=pl.lit(2**40, pl.Int64))
    part.write_parquet(path / "part-1.parquet")
    nulls = part.head(0).with_columns(pl.lit(None).alias(c) for c in part.columns)  # an empty part: Null columns
    nulls.write_parquet(path / "part-2.parquet")
    m = run_ok(tmp_path, None)
    assert m["entities"] == typed["entities"] and m["tables"]["blazar.leases"] == 4
    part.head(0).with_columns(pl.col("seq").cast(pl.Float64)).write_parquet(path / "part-2.parquet")
    assert run_error(tmp_path, None) == (  # an integer with a float: ids past 2**53 rounded, joins found others
        f"{path / 'part-2.parquet'}: column 'seq' is Float64 here and Int32 in part-0.parquet: the parts of a table "
        "must have the same columns"
    )
    (path / "part-2.parquet").unlink()
    text = pl.read_parquet(path / "part-0.parquet").with_columns(pl.col("end_date").dt.strftime("%F %T"))
    text.write_parquet(path / "part-0.parquet")
    assert run_error(tmp_path, None) == (
        f"{path / 'part-1.parquet'}: column 'end_date' is Datetime(time_unit='us', time_zone=None) here and String "
        "in part-0.parquet: the parts of a table must have the same columns"
    )


@pytest.mark.parametrize(
    "dtype, sentinel", [(pl.Datetime("ms"), 9_400_000_000_000_000), (pl.Date, 200_000_000)], ids=["ms", "date"]
)
def test_a_time_past_the_year_294247_is_an_open_end(tmp_path, dtype, sentinel):
    """Microseconds hold 292,000 years: casting such a sentinel (in milliseconds, or a date) panicked in Polars
    and stopped the run."""
    raw = write_raw(tmp_path / "raw", tiny_site())
    never = pl.lit(sentinel, pl.Int32 if dtype == pl.Date else pl.Int64).cast(dtype)
    retype(
        raw,
        "nova.compute_nodes",
        deleted_at=pl.when(pl.col("id") == 2).then(never).otherwise(pl.col("deleted_at").cast(dtype)),
    )
    far = run_ok(tmp_path, None)
    retype(raw, "nova.compute_nodes", deleted_at=pl.when(pl.col("id") == 2).then(None).otherwise(pl.col("deleted_at")))
    open_end = run_ok(tmp_path, None)
    assert far["entities"]["nova_host"]["hours"] == open_end["entities"]["nova_host"]["hours"]
    assert far["metrics"] == open_end["metrics"]
    assert any("valid.end (deleted_at): 1 row(s) after 2200-01-01, read as an open end" in w for w in far["warnings"])


def test_a_fixed_offset_time_zone_polars_cannot_read_is_one_line(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    raw = write_raw(tmp_path / "raw", tiny_site())
    path = raw / "nova.compute_nodes.parquet"
    table = pq.read_table(path)
    i = table.schema.get_field_index("created_at")
    zoned = table.column(i).cast(pa.timestamp("us", tz="+05:30"))
    pq.write_table(table.set_column(i, "created_at", zoned), path)
    assert run_error(tmp_path, None) == (
        f"{path}: not a readable parquet file (column 'created_at' has the time zone '+05:30', which Polars "
        "cannot read: write UTC or an IANA name)"
    )


def test_a_symlinked_table_is_read_through_the_link(tmp_path):
    raw = write_raw(tmp_path / "raw", tiny_site())
    elsewhere = tmp_path / "leases.parquet"
    (raw / "blazar.leases.parquet").rename(elsewhere)
    (raw / "blazar.leases.parquet").symlink_to(elsewhere)
    assert entity(run_ok(tmp_path, None), "allocation") == ALLOCATION


def test_a_fifo_named_like_a_table_is_refused_without_waiting_for_a_writer(tmp_path):
    raw = write_raw(tmp_path / "raw", tiny_site())
    (raw / "blazar.leases.parquet").unlink()
    os.mkfifo(raw / "blazar.leases.parquet")
    result: list = []
    worker = threading.Thread(target=lambda: result.append(run_error(tmp_path, None)), daemon=True)
    worker.start()
    worker.join(120)
    assert not worker.is_alive(), "the run blocked on the FIFO"
    assert result == [f"{raw / 'blazar.leases.parquet'}: not a regular file or directory"]


@pytest.mark.parametrize(
    "column, field", [("hypervisor_type", "attributes.hypervisor_type"), ("id", "source.key")], ids=["attribute", "key"]
)
def test_a_list_column_as_a_key_or_an_attribute_is_one_line_naming_the_field(tmp_path, column, field):
    """Before: 'cannot cast List type (inner: 'String', to: 'String')', naming neither the field nor the column."""
    raw = write_raw(tmp_path / "raw", tiny_site())
    retype(raw, "nova.compute_nodes", **{column: pl.concat_list(pl.col(column))})
    dtype = pl.read_parquet_schema(raw / "nova.compute_nodes.parquet")[column]
    assert run_error(tmp_path, None) == (
        f"specs/entities/nova_host.yaml: entity 'nova_host': {field}: expected one value, got {dtype} from '{column}'"
    )
