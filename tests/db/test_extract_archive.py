"""Extraction of Nova's archive tables (nova.shadow_*, after `nova-manage db archive_deleted_rows`) from a real
MariaDB server: extracted when the server has them, and when it does not, not extracted and no error."""

import json

import polars as pl
import pytest

from simulator.chameleon import simulate
from tests import mariadb
from tests.conftest import SPECS, run_cli

SHADOWS = ["nova.shadow_instance_actions", "nova.shadow_instance_actions_events", "nova.shadow_instances"]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    if not mariadb.available():
        pytest.fail("no MariaDB at 127.0.0.1:3306 (root, no password): .ci/run installs and starts one")
    base = tmp_path_factory.mktemp("dbarchive")
    simulate(base / "raw", seed=6, hosts=10, days=30, archive_days=7)
    conn, schemas = mariadb.load_site(base / "raw")
    mapping = ", ".join(f"{k}: {v}" for k, v in schemas.items())
    (base / "sites.yaml").write_text(
        f"sites:\n  arch:\n    name: archived\n    data: extracted\n    db_uri: mysql://root@127.0.0.1:3306\n"
        f"    schemas: {{{mapping}}}\n    entities: [nova_host, blazar_host, allocation, reserved_instance, "
        "ondemand_instance]\n"
    )
    yield base, schemas, conn
    mariadb.drop(conn, schemas.values())
    conn.close()


def cli(base, command, *args):
    return run_cli(command, "--site", "arch", "--sites", base / "sites.yaml", "--specs", SPECS, *args)


def run(base, data, out):
    result = run_cli(
        "run", SPECS, "--data", data, "--out", out, "--no-report", "--site", "arch", "--sites", base / "sites.yaml"
    )
    assert result.exit_code == 0, result.stderr
    return json.loads((out / "manifest.json").read_text())


def test_archive_tables_present_are_extracted_absent_ones_are_not_and_no_error(site, tmp_path):
    base, schemas, conn = site
    result = cli(base, "extract", "--out", tmp_path / "with")
    assert result.exit_code == 0, result.stderr
    report = json.loads((tmp_path / "with" / "extract.json").read_text())
    status = {t["table"]: (t["status"], t["rows"]) for t in report["tables"]}
    for table in SHADOWS:
        rows = pl.read_parquet(base / "raw" / f"{table}.parquet").height
        assert status[table] == ("ok", rows) and rows > 0, table
        assert pl.read_parquet(tmp_path / "with" / f"{table}.parquet").height == rows
    assert report["archives_absent"] == [] and report["failed"] == []
    direct, extracted = run(base, base / "raw", tmp_path / "out-direct"), run(base, tmp_path / "with", tmp_path / "out")
    daily = [pl.read_parquet(out / "daily.parquet") for out in (tmp_path / "out-direct", tmp_path / "out")]
    assert daily[0].equals(daily[1])
    assert direct["entities"] == extracted["entities"] and direct["tables"] == extracted["tables"]
    assert extracted["tables"]["nova.shadow_instances"] == status["nova.shadow_instances"][1]

    sql = cli(base, "grants", "--user", "u1", "--db-uri", "mysql://root@127.0.0.1:3306").stdout
    assert all(f"`{schemas['nova']}`.`{t.split('.')[1]}`" in sql for t in SHADOWS)
    plain = cli(base, "grants", "--user", "u1")
    assert "shadow" not in plain.stdout and "archive tables left out" in plain.stderr

    with conn.cursor() as cur:
        for table in SHADOWS:
            cur.execute(f"DROP TABLE `{schemas['nova']}`.`{table.split('.')[1]}`")
    result = cli(base, "extract", "--out", tmp_path / "without")
    assert result.exit_code == 0, result.stderr
    report = json.loads((tmp_path / "without" / "extract.json").read_text())
    assert report["archives_absent"] == SHADOWS and report["failed"] == []
    assert {t["status"] for t in report["tables"]} == {"ok"} and len(report["tables"]) == 12
    assert not list((tmp_path / "without").glob("nova.shadow_*"))
    sql = cli(base, "grants", "--user", "u1", "--db-uri", "mysql://root@127.0.0.1:3306").stdout
    assert "shadow" not in sql and sql.count("GRANT SELECT ON") == 12
