"""`engine export` never destroys what is not its own: a database table it did not write (a source table, a
system table, a view, a table named like its scratch tables), a missing database (never created), a file of
the run or one of its inputs, a device or a pipe. A failure mid-export leaves the previous export as it was."""

import json
import os
import shutil
import uuid

import polars as pl
import pytest

from engine import extract
from engine.extract import wide_daily
from tests import mariadb
from tests.conftest import SPECS, run_cli
from tests.hardening.support import WINDOW, one_error
from tests.rawdata import tiny_site, write_raw

URI = "mysql://root@127.0.0.1:3306"
MARK = "testbed-usage-engine export"


@pytest.fixture(scope="module")
def run_out(tmp_path_factory):
    """A run whose manifest records its specs, raw data, sites file and exclusions file (copies, all writable)."""
    base = tmp_path_factory.mktemp("export")
    shutil.copytree(SPECS, base / "specs")
    write_raw(base / "raw", tiny_site())
    (base / "etc").mkdir()
    (base / "etc" / "sites.yaml").write_text("sites:\n  tiny:\n    name: tiny\n    data: raw\n")
    (base / "etc" / "exclusions.yaml").write_text("exclusions: []\n")
    args = ["--site", "tiny", "--sites", base / "etc" / "sites.yaml", "--no-report", *WINDOW]
    result = run_cli("run", base / "specs", "--data", base / "raw", "--out", base / "out", *args)
    assert result.exit_code == 0, result.stderr
    manifest = json.loads((base / "out" / "manifest.json").read_text())
    assert manifest["sites"] and manifest["exclusions"]["file"]  # every input the export must not write over
    return base


@pytest.fixture
def database():
    """A database of this test's own, dropped after it."""
    if not mariadb.available():
        pytest.fail("no MariaDB at 127.0.0.1:3306 (root, no password): .ci/run installs and starts one")
    conn, name = mariadb.connect(), f"t{uuid.uuid4().hex[:8]}_export"
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{name}`")
    yield conn, name
    mariadb.drop(conn, [name])
    conn.close()


def export(out, *args):
    return run_cli("export", out, "--db-uri", URI, *args)


def tables(conn, name: str) -> dict[str, tuple[str, str]]:
    with conn.cursor() as cur:
        cur.execute(
            "SELECT TABLE_NAME, TABLE_TYPE, TABLE_COMMENT FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s",
            (name,),
        )
        return {t: (kind, comment) for t, kind, comment in cur.fetchall()}


def rows(conn, table: str) -> list[tuple]:
    with conn.cursor() as cur:
        cur.execute(f"SELECT * FROM {table}")
        return sorted(cur.fetchall(), key=repr)


def test_an_export_is_marked_as_ours_and_replaces_only_ours(run_out, database):
    conn, name = database
    out = run_out / "out"
    for _ in range(2):  # the second replaces the first: it is ours
        result = export(out, "--table", f"{name}.daily")
        assert result.exit_code == 0, result.stderr
    assert tables(conn, name) == {"daily": ("BASE TABLE", MARK)}  # no scratch table left
    wide, keys = wide_daily(out)
    got = rows(conn, f"`{name}`.daily")
    assert len(got) == wide.height > 0 and sorted(r[: len(keys)] for r in got) == sorted(wide.select(keys).rows())


def test_a_table_or_view_export_did_not_write_is_never_replaced(run_out, database):
    conn, name = database
    with conn.cursor() as cur:
        cur.execute(f"CREATE TABLE `{name}`.instances (id INT, uuid VARCHAR(36))")
        cur.execute(f"INSERT INTO `{name}`.instances VALUES (1, 'a'), (2, 'b')")
        cur.execute(f"CREATE VIEW `{name}`.usage_view AS SELECT id FROM `{name}`.instances")
        cur.execute(f"CREATE TABLE `{name}`.commented (id INT) COMMENT 'not the engine'")
    for table in ("instances", "usage_view", "commented"):
        message = one_error(export(run_out / "out", "--table", f"{name}.{table}"))
        assert message.startswith(f"--table {name}.{table}: refusing to replace {name}.{table}: it is not a table "), (
            message
        )
    assert rows(conn, f"`{name}`.instances") == [(1, "a"), (2, "b")]
    assert rows(conn, f"`{name}`.usage_view") == [(1,), (2,)]
    assert set(tables(conn, name)) == {"instances", "usage_view", "commented"}  # nothing dropped, nothing created


def test_a_scratch_name_taken_by_a_table_not_ours_is_refused(run_out, database):
    conn, name = database
    for scratch in ("daily__old", "daily__new"):
        with conn.cursor() as cur:
            cur.execute(f"CREATE TABLE `{name}`.`{scratch}` (kept INT)")
            cur.execute(f"INSERT INTO `{name}`.`{scratch}` VALUES (7)")
        message = one_error(export(run_out / "out", "--table", f"{name}.daily"))
        assert message.startswith(f"--table {name}.daily: refusing to replace {name}.{scratch}: it is not a table")
        assert rows(conn, f"`{name}`.`{scratch}`") == [(7,)]
        assert "daily" not in tables(conn, name)
        with conn.cursor() as cur:
            cur.execute(f"DROP TABLE `{name}`.`{scratch}`")


def test_scratch_tables_a_killed_export_left_are_cleared(run_out, database):
    conn, name = database
    assert export(run_out / "out", "--table", f"{name}.daily").exit_code == 0
    with conn.cursor() as cur:  # what a kill between CREATE and DROP leaves: our own scratch tables
        for scratch in ("daily__old", "daily__new"):
            cur.execute(f"CREATE TABLE `{name}`.`{scratch}` LIKE `{name}`.daily")
    result = export(run_out / "out", "--table", f"{name}.daily")
    assert result.exit_code == 0, result.stderr
    assert tables(conn, name) == {"daily": ("BASE TABLE", MARK)}


def test_a_failure_mid_export_leaves_the_previous_export(run_out, database, tmp_path):
    conn, name = database
    assert export(run_out / "out", "--table", f"{name}.daily").exit_code == 0
    before = rows(conn, f"`{name}`.daily")
    broken = tmp_path / "out"  # a run whose key is too long for VARCHAR(255): the INSERT fails, strict mode
    shutil.copytree(run_out / "out", broken)
    daily = pl.read_parquet(broken / "daily.parquet")
    daily.with_columns(pl.col("node_type") + "x" * 300).write_parquet(broken / "daily.parquet")
    message = one_error(export(broken, "--table", f"{name}.daily"))
    assert message.startswith(f"export to root@127.0.0.1:3306/{name}.daily: Data too long for column 'node_type'")
    assert rows(conn, f"`{name}`.daily") == before and before
    assert tables(conn, name) == {"daily": ("BASE TABLE", MARK)}


@pytest.mark.parametrize(
    "target", ["mysql.user", "MySQL.db", "information_schema.tables", "performance_schema.accounts", "sys.x"]
)
def test_system_databases_are_refused(run_out, target):
    with mariadb.connect() as conn:
        before = rows(conn, "mysql.user")
        message = one_error(export(run_out / "out", "--table", target))
        assert (
            message
            == f"--table {target}: {target.split('.')[0]} is a system database of the server; export into your own"
        )
        assert rows(conn, "mysql.user") == before


def test_a_missing_database_is_refused_not_created(run_out):
    name = f"t{uuid.uuid4().hex[:8]}_absent"
    message = one_error(export(run_out / "out", "--table", f"{name}.daily"))
    assert message == f"--table {name}.daily: database {name} does not exist; create it first"
    with mariadb.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s", (name,))
        assert cur.fetchone() == (0,)


@pytest.mark.parametrize("target", ["nodot", ".daily", "db."])
def test_a_table_without_its_database_is_one_line(run_out, target):
    assert one_error(export(run_out / "out", "--table", target)) == f"--table {target}: expected DATABASE.TABLE"


def test_a_name_ending_in_a_newline_is_no_identifier(run_out):
    """IDENT's $ let a final newline in: --table 'db.t\\n' reached the server, grants printed a broken account."""
    assert (
        one_error(export(run_out / "out", "--table", "db.t\n")) == "db.t\\x0a: 't\\x0a' is not a valid SQL identifier"
    )
    result = run_cli("grants", "--user", "x\n", "--host", "127.0.0.1", "--password", "p", "--specs", SPECS)
    assert one_error(result).startswith("'x\\x0a'@'127.0.0.1' is not a valid account")


@pytest.mark.parametrize("target", ["db.daily__old", "db.daily__NEW"])
def test_a_table_named_like_a_scratch_table_is_refused(run_out, target):
    """An export into daily__old was dropped, silently, by the next export into daily (taken for its scratch)."""
    assert one_error(export(run_out / "out", "--table", target)) == (
        f"--table {target}: a name ending in __new or __old is export's scratch table; choose another"
    )


def test_a_database_part_in_the_uri_is_refused(run_out):
    result = run_cli("export", run_out / "out", "--db-uri", f"{URI}/nova", "--table", "x.daily")
    assert one_error(result).startswith("--db-uri: a /database part is not used")


@pytest.mark.parametrize(
    "where",
    [
        "out/manifest.json",
        "out/daily.parquet",
        "out/new.csv",
        "specs/metrics.yaml",
        "specs/new.csv",
        "raw/nova.instances.parquet",
        "raw/new.csv",
        "etc/sites.yaml",
        "etc/exclusions.yaml",
    ],
)
def test_a_file_of_the_run_or_one_of_its_inputs_is_never_written(run_out, where):
    target = run_out / where
    before = target.read_bytes() if target.exists() else None
    for kind in ("--csv", "--json"):
        message = one_error(run_cli("export", run_out / "out", kind, target))
        assert message.startswith(f"{target}: refusing to write here: it "), message
        assert (target.read_bytes() if target.exists() else None) == before


def test_the_sites_file_beside_the_specs_is_never_written_after_a_data_run(tmp_path):
    """A --data run records no sites file, and export --json etc/sites.yaml replaced it."""
    shutil.copytree(SPECS, tmp_path / "specs")
    (tmp_path / "etc").mkdir()
    sites = tmp_path / "etc" / "sites.yaml"
    sites.write_text("sites:\n  tiny:\n    name: tiny\n    data: raw\n")
    raw = write_raw(tmp_path / "raw", tiny_site())
    args = ("--data", raw, "--out", tmp_path / "out", "--no-report", *WINDOW)
    assert run_cli("run", tmp_path / "specs", *args).exit_code == 0
    message = one_error(run_cli("export", tmp_path / "out", "--json", sites))
    assert message == (
        f"{sites}: refusing to write here: it lies inside the configuration beside the specs of the run {tmp_path / 'etc'}"
    )
    assert sites.read_text() == "sites:\n  tiny:\n    name: tiny\n    data: raw\n"


def test_a_device_or_a_pipe_is_not_a_file_to_replace(run_out, tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    for kind in ("--csv", "--json"):
        message = one_error(run_cli("export", run_out / "out", kind, fifo))
        assert message == f"{fifo}: not a regular file; {kind} names a file to (re)place"
        assert fifo.is_fifo()


def test_a_missing_directory_is_named_and_nothing_is_half_written(run_out, tmp_path):
    target = tmp_path / "nope" / "daily.csv"
    assert one_error(run_cli("export", run_out / "out", "--csv", target)) == (
        f"{target}: directory {tmp_path / 'nope'} does not exist"
    )
    result = run_cli("export", run_out / "out", "--csv", tmp_path / "ok.csv", "--json", run_out / "out" / "x.json")
    assert one_error(result).startswith(f"{run_out / 'out' / 'x.json'}: refusing to write here")
    assert not (tmp_path / "ok.csv").exists()  # checked before anything is written


def test_a_symlinked_target_writes_the_file_it_points_to(run_out, tmp_path):
    (tmp_path / "real.csv").write_text("old\n")
    (tmp_path / "link.csv").symlink_to(tmp_path / "real.csv")
    result = run_cli("export", run_out / "out", "--csv", tmp_path / "link.csv")
    assert result.exit_code == 0, result.stderr
    assert (tmp_path / "link.csv").is_symlink()
    assert pl.read_csv(tmp_path / "real.csv").columns[:4] == ["date", "site", "resource", "node_type"]


def test_one_export_into_a_table_at_a_time(run_out, database, monkeypatch):
    """Two at once each dropped the other's __new as a killed export's and inserted into one table: a table
    of 2-3 times the rows, exit 0. An export now holds the server's named lock for its table."""
    conn, name = database
    monkeypatch.setattr(extract, "LOCK_WAIT", 1)
    holder = mariadb.connect()
    with holder.cursor() as cur:
        cur.execute("SELECT GET_LOCK(%s, 0)", (extract.lock_key(name, "daily"),))
        assert cur.fetchone() == (1,)  # as an export running meanwhile holds it
        message = one_error(export(run_out / "out", "--table", f"{name}.daily"))
        assert message == f"--table {name}.daily: another export into it has run for over 1 s; try again when it ends"
        assert tables(conn, name) == {}
    holder.close()  # the lock goes with the connection, as when an export ends or is killed
    assert export(run_out / "out", "--table", f"{name}.daily").exit_code == 0
    with conn.cursor() as cur:
        cur.execute(f"SELECT COUNT(*) FROM `{name}`.daily")
        assert cur.fetchone()[0] == wide_daily(run_out / "out")[0].height


def test_values_differing_in_case_or_a_trailing_space_stay_apart_in_the_table(run_out, database, tmp_path):
    """The export's text columns compared case- and space-blind (utf8mb4_general_ci): a dashboard's GROUP BY
    counted `compute_skylake` and `Compute_Skylake ` as one node type."""
    conn, name = database
    odd = tmp_path / "out"
    shutil.copytree(run_out / "out", odd)
    daily = pl.read_parquet(odd / "daily.parquet")
    first = daily["node_type"].drop_nulls()[0]
    twin = pl.when(pl.col("date") == pl.col("date").min()).then(pl.lit(first.capitalize() + " ")).otherwise("node_type")
    daily.filter(pl.col("node_type") == first).with_columns(twin.alias("node_type")).write_parquet(
        odd / "daily.parquet"
    )
    assert export(odd, "--table", f"{name}.daily").exit_code == 0
    with conn.cursor() as cur:
        cur.execute(f"SELECT node_type, COUNT(*) FROM `{name}`.daily GROUP BY node_type ORDER BY node_type")
        groups = cur.fetchall()
    assert [g for g, _ in groups] == sorted([first, first.capitalize() + " "]) and len(groups) == 2
