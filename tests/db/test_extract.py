"""Extraction from a real MariaDB server holding a simulated site, under the site's real database names.

The run on the extracted tables must equal the run on the simulated parquet files themselves.
"""

import json
import os
import uuid
from datetime import datetime

import polars as pl
import pytest

from simulator.chameleon import simulate
from tests import mariadb
from tests.conftest import SPECS, run_cli
from tests.hardening.support import one_error

BAREMETAL = "[nova_host, blazar_host, allocation, reserved_instance, ondemand_instance]"
ACCOUNTS = f"ext_{uuid.uuid4().hex[:8]}_"  # this run's accounts: the teardown drops these and no other


def account() -> str:
    """A new account name of this run."""
    return ACCOUNTS + uuid.uuid4().hex[:6]


WINDOW = ["--start", "2024-01-01", "--end", "2024-02-10"]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    if not mariadb.available():
        pytest.fail("no MariaDB at 127.0.0.1:3306 (root, no password): .ci/run installs and starts one")
    base = tmp_path_factory.mktemp("db")
    simulate(base / "raw", seed=5, hosts=20, days=40)
    # Nova cells v2 keeps instances in nova_cell1: the sites file maps the specs' `nova` onto it.
    conn, schemas = mariadb.load_site(base / "raw")
    with conn.cursor() as cur:  # what old MySQL wrote for "no date"; extraction must read it as null
        cur.execute("SET SESSION sql_mode = ''")
        cur.execute(
            f"UPDATE `{schemas['nova']}`.instances SET deleted_at = '0000-00-00 00:00:00' WHERE deleted_at IS NULL"
        )
    mapping = ", ".join(f"{k}: {v}" for k, v in schemas.items())
    (base / "etc").mkdir()
    (base / "etc" / "sites.yaml").write_text(
        f"sites:\n  sim:\n    name: simulated\n    data: extracted\n    db_uri: mysql://root@127.0.0.1:3306\n"
        f"    schemas: {{{mapping}}}\n    entities: {BAREMETAL}\n"
    )
    yield base, schemas, conn
    mariadb.drop(conn, schemas.values())
    with conn.cursor() as cur:
        cur.execute("SELECT user, host FROM mysql.user WHERE user LIKE %s", (ACCOUNTS.replace("_", "\\_") + "%",))
        for user, host in cur.fetchall():
            cur.execute(f"DROP USER '{user}'@'{host}'")
    conn.close()


def extract(base, *args):
    return run_cli("extract", "--site", "sim", "--sites", base / "etc" / "sites.yaml", "--specs", SPECS, *args)


def test_extract_then_run_equals_the_direct_run(site):
    base, _, _ = site
    result = extract(base)
    assert result.exit_code == 0, result.stderr
    report = json.loads((base / "extracted" / "extract.json").read_text())
    assert {t["status"] for t in report["tables"]} == {"ok"}
    assert len(report["tables"]) == 12  # the bare-metal entities' tables and the legacy report
    for name in ("direct", "extracted"):
        data = base / ("raw" if name == "direct" else "extracted")
        assert (
            run_cli(
                "run",
                SPECS,
                "--data",
                data,
                "--out",
                base / f"out-{name}",
                "--site",
                "sim",
                "--sites",
                base / "etc" / "sites.yaml",
                *WINDOW,
            ).exit_code
            == 0
        )
    for output in ("daily.parquet", "usage.parquet", "validated/reserved_instance.parquet", "spans/allocation.parquet"):
        direct, extracted = (pl.read_parquet(base / f"out-{n}" / output) for n in ("direct", "extracted"))
        assert direct.equals(extracted), output
    manifests = [json.loads((base / f"out-{n}" / "manifest.json").read_text()) for n in ("direct", "extracted")]
    assert manifests[0]["entities"] == manifests[1]["entities"]
    assert manifests[0]["tables"] == manifests[1]["tables"]


def test_zero_dates_become_null_and_types_are_arrow_types(site):
    base, _, _ = site
    if not (base / "extracted" / "nova.instances.parquet").exists():
        assert extract(base).exit_code == 0
    extracted = pl.read_parquet(base / "extracted" / "nova.instances.parquet")
    original = pl.read_parquet(base / "raw" / "nova.instances.parquet")
    assert extracted["deleted_at"].null_count() == original["deleted_at"].null_count() > 0
    assert extracted.schema["deleted_at"] == pl.Datetime("us") and extracted.schema["uuid"] == pl.String
    assert pl.read_parquet(base / "extracted" / "nova_api.request_specs.parquet").schema["spec"] == pl.String


def grants(sites, site: str, user: str, secret: str, *more: str) -> str:
    """`engine grants` for a site of a sites file: the SQL that creates `user` with `secret`, connecting from here."""
    args = ["--user", user, "--host", "127.0.0.1", "--password", secret, *more]
    return run_cli("grants", "--site", site, "--sites", sites, "--specs", SPECS, *args).stdout


def test_grants_are_exactly_enough_and_the_password_never_shows(site, tmp_path):
    base, _, conn = site
    user, secret = account(), "S3cret-pw"
    sql = grants(base / "etc" / "sites.yaml", "sim", user, secret)
    assert sql.count("GRANT SELECT ON") == 12 and "GRANT ALL" not in sql
    with conn.cursor() as cur:
        for statement in filter(None, (s.strip() for s in sql.split(";"))):
            cur.execute(statement)
    uri = f"mysql://{user}:{secret}@127.0.0.1:3306"
    ok = extract(base, "--db-uri", uri, "--out", tmp_path / "as-user")
    assert ok.exit_code == 0, ok.stderr
    with conn.cursor() as cur:
        cur.execute(f"REVOKE SELECT ON `{site[1]['blazar']}`.`leases` FROM '{user}'@'127.0.0.1'")
    denied = extract(base, "--db-uri", uri, "--out", tmp_path / "denied")
    assert denied.exit_code == 1
    report = json.loads((tmp_path / "denied" / "extract.json").read_text())
    status = {t["table"]: t["status"] for t in report["tables"]}
    assert status["blazar.leases"] == "no permission" and status["nova.instances"] == "ok"
    assert "1 table(s) failed: blazar.leases" in denied.stderr
    assert "allocation: incomplete: blazar.leases absent while blazar.computehost_allocations is there" in denied.stderr
    wrong = extract(base, "--db-uri", f"mysql://{user}:not-{secret}@127.0.0.1:3306", "--out", tmp_path / "wrong")
    assert wrong.exit_code == 1 and "bad credentials" in wrong.stdout
    texts = [r.stdout + r.stderr for r in (ok, denied, wrong)]
    texts += [p.read_text() for p in tmp_path.rglob("extract.json")]
    assert all(secret not in text for text in texts)


def test_a_missing_table_fails_alone(site, tmp_path):
    base, schemas, conn = site
    with conn.cursor() as cur:
        cur.execute(f"CREATE TABLE `{schemas['blazar']}`.`leases_copy` AS SELECT * FROM `{schemas['blazar']}`.`leases`")
        cur.execute(f"DROP TABLE `{schemas['blazar']}`.`leases`")
    try:
        result = extract(base, "--out", tmp_path / "x", "--tables", "blazar.leases", "--tables", "nova.instances")
    finally:
        with conn.cursor() as cur:
            cur.execute(f"RENAME TABLE `{schemas['blazar']}`.`leases_copy` TO `{schemas['blazar']}`.`leases`")
    assert result.exit_code == 1
    report = json.loads((tmp_path / "x" / "extract.json").read_text())
    assert [(t["table"], t["status"]) for t in report["tables"]] == [
        ("blazar.leases", "missing table"),
        ("nova.instances", "ok"),
    ]
    assert not (tmp_path / "x" / "blazar.leases.parquet").exists()


def test_an_unreachable_server_is_one_clear_line(site, tmp_path):
    base, _, _ = site
    refused = extract(base, "--db-uri", "mysql://u:pw1234@127.0.0.1:1", "--out", tmp_path / "x")
    assert refused.exit_code == 1 and "Traceback" not in refused.stderr
    assert "u@127.0.0.1:1: cannot reach 127.0.0.1:1 within 5 s" in refused.stderr
    silent = extract(base, "--db-uri", "mysql://u:pw1234@10.255.255.1:3306", "--out", tmp_path / "y", "--timeout", "1")
    assert silent.exit_code == 1 and "within 1 s" in silent.stderr and "pw1234" not in silent.stderr


def test_export_replaces_the_previous_table_atomically(site, tmp_path):
    base, _, conn = site
    target = f"{site[1]['chameleon_usage']}.engine_daily"
    for seed in (1, 2):
        simulate(tmp_path / f"raw{seed}", seed=seed, hosts=6, days=5)
        run = run_cli("run", SPECS, "--data", tmp_path / f"raw{seed}", "--out", tmp_path / f"out{seed}")
        assert run.exit_code == 0, run.stderr
        result = run_cli(
            "export", tmp_path / f"out{seed}", "--db-uri", "mysql://root@127.0.0.1:3306", "--table", target
        )
        assert result.exit_code == 0, result.stderr
    daily = pl.read_parquet(tmp_path / "out2" / "daily.parquet")
    with conn.cursor() as cur:
        cur.execute(f"SELECT date, node_type, resource, committed, total FROM {target} WHERE resource = 'nodes'")
        got = {(d, nt, r): (c, t) for d, nt, r, c, t in cur.fetchall()}
        cur.execute(f"SHOW TABLES FROM `{site[1]['chameleon_usage']}` LIKE 'engine_daily%'")
        assert [r[0] for r in cur.fetchall()] == ["engine_daily"]  # no __new/__old left behind
    want = daily.filter(pl.col("resource") == "nodes").pivot(
        on="metric", index=["date", "node_type", "resource"], values="hours"
    )
    assert len(got) == want.height
    for row in want.iter_rows(named=True):
        assert got[(row["date"], row["node_type"], "nodes")] == (row["committed"], row["total"])


def test_a_null_in_a_not_null_looking_column_is_a_rejection_not_a_crash(site, tmp_path):
    base, schemas, conn = site
    with conn.cursor() as cur:
        cur.execute(f"SELECT uuid FROM `{schemas['nova']}`.instances WHERE launched_at IS NOT NULL ORDER BY id LIMIT 1")
        (uuid_,) = cur.fetchone()
        cur.execute(f"UPDATE `{schemas['nova']}`.instances SET created_at = NULL WHERE uuid = %s", (uuid_,))
    assert extract(base, "--out", tmp_path / "raw").exit_code == 0
    result = run_cli(
        "run",
        SPECS,
        "--data",
        tmp_path / "raw",
        "--out",
        tmp_path / "out",
        "--site",
        "sim",
        "--sites",
        base / "etc" / "sites.yaml",
        *WINDOW,
    )
    assert result.exit_code == 0, result.stderr
    rejected = pl.concat(
        [
            pl.read_parquet(tmp_path / "out" / "rejected" / f"{e}.parquet")
            for e in ("reserved_instance", "ondemand_instance")
        ],
        how="diagonal_relaxed",
    )
    assert rejected.filter(pl.col("entity_id") == uuid_)["rejection_reason"].to_list() == ["null_start"]


def test_a_password_in_any_spelling_never_shows(site, tmp_path):
    """Percent-encoded in the URI, from $DATABASE_URI, right or wrong: no spelling of it reaches a message or a
    file, even what the Rust driver prints itself on the process's stderr."""
    import subprocess
    import sys
    from urllib.parse import quote, quote_plus

    base, _, conn = site
    user, secret = account(), "p@ss:w/rd%+ 1\\' OR '1"  # the grants SQL holds its hash only
    spellings = {secret, quote(secret, safe=""), quote_plus(secret)}
    sql = grants(base / "etc" / "sites.yaml", "sim", user, secret)
    assert secret not in sql and "IDENTIFIED BY PASSWORD '*" in sql
    with conn.cursor() as cur:  # a server that reads no backslash escapes creates the same account
        cur.execute("SET SESSION sql_mode = CONCAT(@@sql_mode, ',NO_BACKSLASH_ESCAPES')")
        for statement in filter(None, (s.strip() for s in sql.split(";"))):
            cur.execute(statement)
        cur.execute("SET SESSION sql_mode = REPLACE(@@sql_mode, 'NO_BACKSLASH_ESCAPES', '')")
    texts = []
    for password, code in ((secret, 0), ("x" + secret, 1)):
        uri = f"mysql://{user}:{quote(password, safe='')}@127.0.0.1:3306"
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "engine",
                "extract",
                "--site",
                "sim",
                "--sites",
                str(base / "etc" / "sites.yaml"),
                "--specs",
                str(SPECS),
                "--out",
                str(tmp_path / f"as-{code}"),
                "--tables",
                "blazar.leases",
            ],
            capture_output=True,
            text=True,
            env={**os.environ, "DATABASE_URI": uri},
            timeout=120,
        )
        assert proc.returncode == code, proc.stderr
        texts.append(proc.stdout + proc.stderr)
    assert f"{user}@127.0.0.1:3306" in texts[0]
    texts += [p.read_text() for p in tmp_path.rglob("extract.json")]
    assert all(s not in text for s in spellings for text in texts)


def test_a_server_without_every_service_extracts_whole_entities_and_grants_apply(site, tmp_path):
    """A bare-metal server has no device or Zun tables: their entities are named as absent, exit 0; the grants
    listed with an admin's URI name only the tables the server has, so they apply as they are."""
    base, schemas, conn = site
    sites = base / "etc" / "sites.yaml"
    mapping = ", ".join(f"{k}: {v}" for k, v in schemas.items())
    sites.write_text(
        sites.read_text() + f"  every:\n    name: every entity\n    data: every\n"
        f"    db_uri: mysql://root@127.0.0.1:3306\n    schemas: {{{mapping}}}\n"
    )
    result = run_cli("extract", "--site", "every", "--sites", sites, "--specs", SPECS, "--out", tmp_path / "all")
    assert result.exit_code == 0, result.stderr
    report = json.loads((tmp_path / "all" / "extract.json").read_text())
    assert report["entities"]["device"] == "not on this server: no blazar.devices"
    assert report["entities"]["container"] == "not on this server: no zun.container"
    assert report["entities"]["allocation"] == report["entities"]["slice_allocation"] == "ok"
    assert "notice: device not on this server: no blazar.devices" in result.stderr and report["failed"] == []
    run = run_cli("run", SPECS, "--data", tmp_path / "all", "--out", tmp_path / "out", "--no-report", *WINDOW)
    assert run.exit_code == 0, run.stderr  # the raw directory follows the same rule: absent services skipped
    user = account()
    sql = grants(sites, "every", user, "pw-1", "--db-uri", "mysql://root@127.0.0.1:3306")
    assert "zun" not in sql and "devices" not in sql and "instance_reservations" in sql
    with conn.cursor() as cur:
        for statement in filter(None, (s.strip() for s in sql.split(";"))):
            cur.execute(statement)  # no ERROR 1146: every table named exists
    as_user = run_cli(
        "extract",
        "--site",
        "every",
        "--sites",
        sites,
        "--specs",
        SPECS,
        "--out",
        tmp_path / "u",
        "--db-uri",
        f"mysql://{user}:pw-1@127.0.0.1:3306",
    )
    assert as_user.exit_code == 0, as_user.stderr


def snapshot(directory) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def test_an_extraction_replaces_the_previous_one_whole_so_no_stale_table_remains(site, tmp_path):
    """A table absent from the server now is absent from the raw directory too: `engine run` says so instead of
    reading the earlier extraction's file as current."""
    base, schemas, conn = site
    raw = tmp_path / "raw"
    assert extract(base, "--out", raw).exit_code == 0
    assert (raw / "blazar.leases.parquet").exists() and (raw / ".engine-output").exists()
    with conn.cursor() as cur:
        cur.execute(f"RENAME TABLE `{schemas['blazar']}`.`leases` TO `{schemas['blazar']}`.`leases_away`")
    try:
        again = extract(base, "--out", raw)
    finally:
        with conn.cursor() as cur:
            cur.execute(f"RENAME TABLE `{schemas['blazar']}`.`leases_away` TO `{schemas['blazar']}`.`leases`")
    assert again.exit_code == 1 and "1 table(s) failed: blazar.leases" in again.stderr
    assert not (raw / "blazar.leases.parquet").exists() and (raw / "nova.instances.parquet").exists()
    status = {t["table"]: t["status"] for t in json.loads((raw / "extract.json").read_text())["tables"]}
    assert status["blazar.leases"] == "missing table" and status["nova.instances"] == "ok"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raw"]  # nothing left beside it
    run = run_cli("run", SPECS, "--data", raw, "--out", tmp_path / "out", "--no-report", *WINDOW)
    assert run.exit_code == 1 and "blazar.leases" in run.stderr


def test_tables_named_into_an_earlier_extraction_say_what_goes_with_it(site, tmp_path):
    """--tables T into a full extraction kept only T (the directory is replaced whole), without a word; a
    table named twice was extracted and listed twice."""
    base, _, _ = site
    raw = tmp_path / "raw"
    assert extract(base, "--out", raw).exit_code == 0
    before = sorted(p.name.removesuffix(".parquet") for p in raw.glob("*.parquet"))
    again = extract(base, "--out", raw, "--tables", "nova.instances", "--tables", "nova.instances")
    assert again.exit_code == 0, again.stderr
    assert [t["table"] for t in json.loads((raw / "extract.json").read_text())["tables"]] == ["nova.instances"]
    gone = [t for t in before if t != "nova.instances"]
    assert len(gone) == 11 and sorted(p.name for p in raw.glob("*.parquet")) == ["nova.instances.parquet"]
    shown = ", ".join(gone[:5]) + " and 6 more"
    assert f"note: the earlier extraction's other tables are gone with it ({shown}): extract them too" in again.stderr


def test_a_directory_that_is_no_extraction_is_never_replaced(site, tmp_path):
    base, _, _ = site
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me\n")
    message = one_error(extract(base, "--out", tmp_path / "mine"))
    assert message.startswith(f"{tmp_path / 'mine'}: refusing to replace it: the directory is not empty")
    assert snapshot(tmp_path / "mine") == {"notes.txt": b"keep me\n"}


def test_a_server_without_the_tables_is_an_error_and_the_target_stays_as_it_was(site, tmp_path):
    base, schemas, _ = site
    raw = tmp_path / "raw"
    assert extract(base, "--out", raw).exit_code == 0
    before = snapshot(raw)
    absent = {s: f"t{uuid.uuid4().hex[:8]}_none" for s in schemas}  # databases the server does not have
    sites = tmp_path / "sites.yaml"
    mapping = ", ".join(f"{k}: {v}" for k, v in absent.items())
    sites.write_text(
        f"sites:\n  none:\n    name: no services\n    data: x\n    db_uri: mysql://root@127.0.0.1:3306\n"
        f"    schemas: {{{mapping}}}\n    entities: {BAREMETAL}\n"
    )
    for target in (raw, tmp_path / "new"):
        result = run_cli("extract", "--site", "none", "--sites", sites, "--specs", SPECS, "--out", target)
        message = one_error(result)
        assert message.startswith("no table the specs read is on root@127.0.0.1:3306: "), message
        assert message.endswith(f"({target} left as it was)")
    assert snapshot(raw) == before and not (tmp_path / "new").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raw", "sites.yaml"]


def test_a_database_part_in_the_uri_is_refused(site, tmp_path):
    base, _, _ = site
    for command in ("extract", "grants"):
        args = ["--out", tmp_path / "x"] if command == "extract" else []
        result = run_cli(command, "--db-uri", "mysql://root:pw@127.0.0.1:3306/nova", "--specs", SPECS, *args)
        assert one_error(result).startswith("--db-uri: a /database part is not used"), command
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("mysql://user:Secr3t@[::1", "--db-uri: an IPv6 address needs its closing ]"),
        ("mysql://user:Secr3t@host:99999", "--db-uri: the port is not a number from 1 to 65535"),
        ("mysql://user:Secr3t@host:0", "--db-uri: the port is not a number from 1 to 65535"),
        # TLS options were dropped silently: the connection went in plaintext when TLS was asked for
        ("mysql://user:Secr3t@127.0.0.1:3306?ssl-mode=REQUIRED", "--db-uri: options after '?' (or a '#' part)"),
        ("mysql://user:Secr3t@127.0.0.1:3306#tls", "--db-uri: options after '?' (or a '#' part)"),
    ],
)
def test_a_malformed_uri_is_one_line_without_the_password(uri, message, tmp_path):
    for command in ("extract", "grants"):
        args = ["--out", tmp_path / "x"] if command == "extract" else []
        result = run_cli(command, "--db-uri", uri, "--specs", SPECS, *args)
        assert one_error(result).startswith(message), command
        assert "Secr3t" not in result.stdout + result.stderr
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("timeout", ["0", "-1", "nan", "inf", "3601"])
def test_a_timeout_that_is_no_duration_is_one_line(timeout, tmp_path):
    result = run_cli(
        "extract",
        "--db-uri",
        "mysql://root@127.0.0.1:3306",
        "--out",
        tmp_path / "x",
        "--specs",
        SPECS,
        "--timeout",
        timeout,
    )
    assert one_error(result) == (f"--timeout: {float(timeout):g} is not a number of seconds above 0 and at most 3600")
    assert not (tmp_path / "x").exists()


def test_account_names_within_mariadb_limits_apply_and_longer_ones_are_refused(site):
    base, _, conn = site
    user, host = ACCOUNTS + "u" * (80 - len(ACCOUNTS)), "h" * 255  # 80 and 255 characters: the longest MariaDB takes
    sql = grants(base / "etc" / "sites.yaml", "sim", user, "pw", "--host", host)
    with conn.cursor() as cur:
        for statement in filter(None, (s.strip() for s in sql.split(";"))):
            cur.execute(statement)
        cur.execute("SELECT COUNT(*) FROM mysql.user WHERE user = %s AND host = %s", (user, host))
        assert cur.fetchone() == (1,)
    sites = ("--site", "sim", "--sites", base / "etc" / "sites.yaml", "--specs", SPECS)
    assert one_error(run_cli("grants", *sites, "--user", user + "u")) == (
        "--user: 81 characters, at most 80 (MariaDB's limit for an account)"
    )
    assert one_error(run_cli("grants", *sites, "--host", host + "h")) == (
        "--host: 256 characters, at most 255 (MariaDB's limit for an account)"
    )


def test_column_names_and_types_the_driver_cannot_read_are_extracted_as_they_are(site, tmp_path):
    """A column named `x`, y FROM mysql.user# was pasted into the SELECT: the extraction wrote mysql.user's rows
    as the table (exit 0). TIME beyond 24 h and GEOMETRY panicked in the driver, stopping every table."""
    _, _, conn = site
    database = f"t{uuid.uuid4().hex[:8]}_odd"
    evil = "User`, Host, authentication_string FROM mysql.user#"
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{database}`")
        cur.execute(
            f"CREATE TABLE `{database}`.instances (`{evil.replace('`', '``')}` INT, t TIME, g POINT, d DATETIME)"
        )
        cur.execute("SET SESSION sql_mode = 'ALLOW_INVALID_DATES'")  # 2024-02-30 failed the table in the driver
        cur.execute(
            f"INSERT INTO `{database}`.instances VALUES (1, '25:00:00', POINT(1, 2), '2024-02-30 10:00:00'), "
            "(2, '-838:59:59', NULL, '2024-02-29 10:00:00')"
        )
    try:
        uri = "mysql://root@127.0.0.1:3306"
        sites = tmp_path / "sites.yaml"
        sites.write_text(
            f"sites:\n  o:\n    name: o\n    data: x\n    db_uri: {uri}\n    schemas: {{nova: {database}}}\n"
        )
        result = run_cli("extract", "--site", "o", "--sites", sites, "--specs", SPECS, "--tables", "nova.instances")
    finally:
        mariadb.drop(conn, [database])
    assert result.exit_code == 0, result.stderr + result.stdout
    frame = pl.read_parquet(tmp_path / "x" / "nova.instances.parquet")
    assert frame.columns == [evil, "t", "g", "d"]
    leap = datetime(2024, 2, 29, 10)
    assert frame.rows() == [(1, "25:00:00", "POINT(1 2)", None), (2, "-838:59:59", None, leap)]
