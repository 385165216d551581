"""`engine extract` and `engine grants`: raw tables from MySQL/MariaDB to parquet, with least privilege.

Rows stream through connectorx (Rust, Arrow batches; see docs/extract.md for why) into a parquet file
written next to its target and renamed into place, so a table larger than memory still extracts and
a failure never leaves a half-written file. Every table succeeds or fails on its own.
"""

import contextlib
import hashlib
import json
import os
import re
import time
from pathlib import Path
from urllib.parse import quote, quote_plus, unquote, urlparse

from engine.errors import EngineError, first_line, listed

IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")  # matched whole (fullmatch): a $ would let a final newline in
# MySQL's zero and partial dates (0000-00-00, 2019-00-00) and, under ALLOW_INVALID_DATES, impossible ones
# (2024-02-30): no date at all, read as NULL (the driver cannot convert them and fails the table).
ZERO_DATE = "CASE WHEN MONTH({c}) = 0 OR DAY({c}) = 0 OR DAY({c}) > DAY(LAST_DAY({c})) THEN NULL ELSE {c} END AS {c}"
# Types the driver cannot read, as text: TIME is an interval (-838:59:59 to 838:59:59, no time of day),
# the spatial types have no Arrow type (connectorx panics on both).
SPATIAL = ("geometry", "point", "linestring", "polygon", "multipoint", "multilinestring", "multipolygon")
AS_TEXT = {"time": "CAST({c} AS CHAR) AS {c}"} | dict.fromkeys(
    (*SPATIAL, "geometrycollection"), "ST_AsText({c}) AS {c}"
)
PROBLEMS = (  # (text in the driver's error, status): the first match wins
    ("bad credentials", "bad credentials"),
    ("Access denied for user", "bad credentials"),
    ("command denied", "no permission"),
    ("doesn't exist", "missing table"),
    ("Unknown database", "missing table"),
)


class Database:
    """A MySQL/MariaDB server given as mysql://user:password@host:port[/database]; never shows its password.

    It is shown as user@host:port/database. Messages of the driver are masked for every spelling of the
    password a URI can carry (as typed, percent-decoded, percent-encoded), wherever it came from (the
    command line, $DATABASE_URI or a sites file's ${VAR})."""

    def __init__(self, uri: str):
        parts, port = _parsed(re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", _environment, uri))
        self.user, self.password = unquote(parts.username or ""), unquote(parts.password or "")
        self.host, self.port, self.database = parts.hostname, port or 3306, parts.path.strip("/")
        self.uri = f"mysql://{parts.netloc}"
        spellings = {parts.password or "", self.password, quote(self.password, safe=""), quote_plus(self.password)}
        self._secrets = sorted((s for s in spellings if s), key=len, reverse=True)

    def mask(self, text: str) -> str:
        """Text with every spelling of the password replaced by ***."""
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    @property
    def shown(self) -> str:
        """user@host:port/database: what messages and reports name (no part of the password, ever)."""
        return self.mask(f"{self.user}@{self.host}:{self.port}" + (f"/{self.database}" if self.database else ""))

    def check(self, timeout: float = 5.0) -> str | None:
        """Log in once, within the timeout: None if fine, else the status every table gets.

        A server that cannot be reached is an error for the whole run; a TCP connect alone is not
        proof (a proxy may accept it), so this is a real MySQL handshake.
        """
        import pymysql

        try:
            pymysql.connect(
                host=self.host,
                port=self.port,
                user=self.user,
                password=self.password,
                connect_timeout=timeout,
                read_timeout=timeout,
                write_timeout=timeout,
            ).close()
        except pymysql.err.OperationalError as exc:
            code, message = exc.args[0], self.mask(str(exc.args[-1]))
            if code in (1044, 1045):
                return "bad credentials"
            raise EngineError(
                f"{self.shown}: cannot reach {self.host}:{self.port} within {timeout:g} s ({message})"
            ) from None
        return None

    def stream(self, query: str, batch_rows: int = 100_000):
        """The query's rows as Arrow record batches (a RecordBatchReader)."""
        import connectorx

        return connectorx.read_sql(self.uri, query, return_type="arrow_stream", batch_size=batch_rows)

    def without_database(self) -> "Database":
        """This server, refused if the URI names a database: which databases are read or written comes from the
        spec tables, the site's `schemas` or --table, and a database part silently ignored would mislead."""
        if self.database:  # not shown: a '/' in an unencoded password lands here
            raise EngineError(
                "--db-uri: a /database part is not used (the databases come from the specs' tables, the site's "
                "`schemas` or --table); remove it (a '/' in a password is written %2F)"
            )
        return self


def _parsed(uri: str):
    """(urlparse parts, port) of a server URI, or one line saying what is wrong; no part of the URI is shown
    (the password may be anywhere in a mistyped one)."""
    expected = "(expected mysql://user:password@host:port)"
    try:
        parts = urlparse(uri)
    except ValueError as exc:  # its text may quote the host part, password included
        why = "an IPv6 address needs its closing ]" if "IPv6" in str(exc) else "not a URI"
        raise EngineError(f"--db-uri: {why} {expected}") from None
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port == 0:
        raise EngineError(f"--db-uri: the port is not a number from 1 to 65535 {expected}")
    if parts.scheme not in ("mysql", "mariadb") or not parts.hostname:
        raise EngineError(f"--db-uri: {expected[1:-1]}")
    if parts.query or parts.fragment:  # not shown: a ? or # in an unencoded password lands here
        raise EngineError(
            "--db-uri: options after '?' (or a '#' part) are not supported: the engine would connect without them "
            "(without TLS, if they asked for it); percent-encode a ? or # in the password"
        )
    return parts, port


def _environment(match: re.Match) -> str:
    """The value of ${VAR} in a URI (only this form: a `$` in a password stays a `$`)."""
    if match.group(1) not in os.environ:
        raise EngineError(f"--db-uri: the environment variable {match.group(1)} is not set")
    return os.environ[match.group(1)]


def real_name(table: str, schemas: dict[str, str]) -> tuple[str, str]:
    """(database, table) on the server for a spec table `schema.table`, identifiers checked."""
    schema, name = table.split(".", 1)
    database = schemas.get(schema, schema)
    for ident in (database, name):
        if not IDENT.fullmatch(ident):
            raise EngineError(f"{table}: '{ident}' is not a valid SQL identifier")
    return database, name


def _select(db: Database, database: str, name: str) -> str:
    """SELECT of every column, zero dates as NULL and decimals as doubles, from information_schema."""
    meta = db.stream(
        "SELECT COLUMN_NAME, DATA_TYPE FROM information_schema.COLUMNS "
        f"WHERE TABLE_SCHEMA = '{database}' AND TABLE_NAME = '{name}' ORDER BY ORDINAL_POSITION"
    ).read_all()
    if meta.num_rows == 0:  # missing, or invisible without privileges: let the server say which
        db.stream(f"SELECT * FROM `{database}`.`{name}` LIMIT 0").read_all()
        raise RuntimeError(f"Table '{database}.{name}' doesn't exist")
    cols = []
    for column, kind in zip(*(meta.column(i).to_pylist() for i in range(2)), strict=True):
        kind, c = kind.lower(), quoted(column)  # a column name is the server's data: `x`, y FROM mysql.user#
        if kind in ("date", "datetime", "timestamp"):
            cols.append(ZERO_DATE.format(c=c))
        elif kind in ("decimal", "bit"):
            cols.append(f"CAST({c} AS {'DOUBLE' if kind == 'decimal' else 'UNSIGNED'}) AS {c}")
        else:
            cols.append(AS_TEXT.get(kind, "{c}").format(c=c))
    return f"SELECT {', '.join(cols)} FROM `{database}`.`{name}`"


def quoted(name: str) -> str:
    """A MySQL identifier quoted whatever it holds: in backticks, each backtick doubled."""
    return "`" + name.replace("`", "``") + "`"


def extract_table(db: Database, table: str, out: Path, *, schemas: dict[str, str]) -> int:
    """Stream one table into OUT/<schema>.<table>.parquet (zstd, written atomically); returns its rows."""
    import pyarrow.parquet as pq

    from engine.io.output import beside

    reader = db.stream(_select(db, *real_name(table, schemas)))
    target = out / f"{table}.parquet"
    tmp = beside(target, "partial")
    rows = 0
    try:
        with pq.ParquetWriter(tmp, reader.schema, compression="zstd") as writer:
            for batch in reader:
                writer.write_batch(batch)
                rows += batch.num_rows
        tmp.replace(target)
    finally:
        tmp.unlink(missing_ok=True)
    return rows


ABSENT = ("missing table", "no permission")  # MariaDB answers both alike to a least-privilege account


MAX_TIMEOUT = 3600.0  # seconds: longer is a typo, not a slow server


def extract(db: Database, target: Path, tables: list[str], *, guarded: dict, **options) -> dict:
    """Extract every table into the raw directory `target` as a whole; returns the report (extract.json).

    Like every output directory of the engine (engine.io.output.OutputDir), it is built beside the target and
    replaces it only when complete, and only when the target is absent, empty or an earlier extraction: the
    result holds exactly what this extraction found, never a stale file of a table now absent, which a later
    `engine run` would read as current. A server without any of the tables (or an account seeing none, or
    one that cannot log in) leaves the target untouched."""
    from engine.io.output import OutputDir

    timeout = options.pop("timeout", 5.0)
    if not 0 < timeout <= MAX_TIMEOUT:  # also refuses nan, which every comparison fails
        raise EngineError(f"--timeout: {timeout:g} is not a number of seconds above 0 and at most {MAX_TIMEOUT:g}")
    login = db.check(timeout)  # an unreachable server stops here: nothing read, nothing written
    out = OutputDir(target, kind="extract", guarded=guarded)
    try:
        report = _extract_into(db, out.tmp, tables, login=login, **options)
        if any(t["status"] == "ok" for t in report["tables"]):
            out.commit()
        elif all(t["status"] in ABSENT for t in report["tables"]):
            shown = listed([t["table"] for t in report["tables"]], 3)
            raise EngineError(
                f"no table the specs read is on {db.shown}: {shown} absent or not visible to {db.user}; check the "
                f"server and the site's `schemas` ({target} left as it was)"
            )
    finally:
        out.abandon()
    return report


def _extract_into(
    db: Database,
    out: Path,
    tables: list[str],
    *,
    entities: dict[str, tuple[str, set[str]]],
    schemas: dict[str, str],
    progress,
    login: str | None,
    archives: list[str] = (),
) -> dict:
    """Extract every table into the directory `out`; returns the report written to OUT/extract.json (no password).
    `login` is what Database.check said: None, or the status every table gets (bad credentials).

    `entities` maps each entity to (its source table, the tables it requires), graph.entity_tables. A table
    the server does not have (or lets the account not see) is absent: an entity whose source is absent is
    not on this server (the site has no such service); one whose source is there but a required table is
    absent is incomplete (the grants are), which `failed` lists with every table that failed otherwise.
    The `archives` (graph.archives_for) are extracted where the server has them, and absent ones are only
    listed (`archives_absent`): an archive is never required."""
    report = {"db": db.shown, "schemas": schemas, "tables": []}
    found = _present_archives(db, list(archives), schemas) if archives and not login else []
    if archives:
        report["archives_absent"] = [t for t in archives if t not in found]
    for table in [*tables, *found]:
        progress("table", table)
        began, entry = time.perf_counter(), {"table": table}
        try:
            if login:
                raise RuntimeError(f"{login}: {db.user}@{db.host} cannot log in")
            entry |= {"rows": extract_table(db, table, out, schemas=schemas), "status": "ok"}
        except BaseException as exc:  # every driver failure is this table's status (a Rust panic is a
            if isinstance(exc, KeyboardInterrupt | SystemExit | GeneratorExit):  # BaseException): others go on
                raise
            message = db.mask(first_line(exc))
            status = next((s for text, s in PROBLEMS if text in message), "error")
            entry |= {"rows": None, "status": status, "error": message[:300]}
        entry["seconds"] = round(time.perf_counter() - began, 3)
        report["tables"].append(entry)
    status = {t["table"]: t["status"] for t in report["tables"]}
    report["entities"], failed = {}, [t for t, s in status.items() if s not in ("ok", *ABSENT)]
    for name, (source, required) in sorted(entities.items()):
        missing = sorted(t for t in required if status.get(t) in ABSENT)
        if status.get(source) in ABSENT:
            report["entities"][name] = f"not on this server: no {source}"
        elif missing:
            report["entities"][name] = f"incomplete: {', '.join(missing)} absent while {source} is there"
            failed += missing
        else:
            report["entities"][name] = "ok"
    report["failed"] = sorted(set(failed))
    (out / "extract.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def _present_archives(db: Database, archives: list[str], schemas: dict[str, str]) -> list[str]:
    """The archive tables the account sees on the server; none if it cannot list them (they are optional)."""
    try:
        return present(db, archives, schemas)
    except EngineError:
        return []


def present(db: Database, tables: list[str], schemas: dict[str, str]) -> list[str]:
    """The spec tables this server has, as information_schema tells the (admin) account asking."""
    import pymysql

    wanted = {real_name(t, schemas): t for t in tables}
    try:
        conn = pymysql.connect(host=db.host, port=db.port, user=db.user, password=db.password, connect_timeout=5)
        with conn.cursor() as cur:
            cur.execute("SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES")
            have = {tuple(row) for row in cur.fetchall()}
        conn.close()
    except pymysql.MySQLError as exc:
        raise EngineError(f"{db.shown}: cannot list the server's tables ({db.mask(str(exc.args[-1]))})") from None
    return sorted(t for pair, t in wanted.items() if pair in have)


def grants_sql(tables: list[str], schemas: dict[str, str], *, user: str, host: str, password: str) -> str:
    """CREATE USER and one GRANT SELECT per table: exactly what extraction reads, nothing more. The password
    goes as its mysql_native_password hash: hex digits, the same under every sql_mode (a quoted password
    reads otherwise under NO_BACKSLASH_ESCAPES), and the SQL handed to a DBA does not hold it."""
    who = account(user, host)
    digest = hashlib.sha1(hashlib.sha1(password.encode()).digest()).hexdigest().upper()
    lines = [f"CREATE USER IF NOT EXISTS {who} IDENTIFIED BY PASSWORD '*{digest}';"]
    lines += [f"GRANT SELECT ON `{d}`.`{n}` TO {who};" for d, n in (real_name(t, schemas) for t in tables)]
    return "\n".join(lines) + "\n"


def account(user: str, host: str) -> str:
    """'user'@'host', refused before any work unless MariaDB takes it as it is (nothing to quote)."""
    for option, value, limit in (("--user", user, 80), ("--host", host, 255)):  # what every MariaDB version takes
        if len(value) > limit:
            raise EngineError(f"{option}: {len(value)} characters, at most {limit} (MariaDB's limit for an account)")
    if not IDENT.fullmatch(user) or not re.fullmatch(r"[A-Za-z0-9_.%:-]+", host):
        raise EngineError(
            f"'{user}'@'{host}' is not a valid account (user: letters, digits, _; host: a name or pattern)"
        )
    return f"'{user}'@'{host}'"


def wide_daily(out_dir: Path):
    """OUT_DIR/daily.parquet as one row per day and group, one column of node-hours per metric: the table
    every export writes."""
    import polars as pl

    path = out_dir / "daily.parquet"
    if not path.is_file():
        raise EngineError(f"{out_dir}: not an output directory of `engine run` (no daily.parquet)")
    try:
        daily = pl.read_parquet(path, glob=False)
        keys = [c for c in daily.columns if c not in ("metric", "hours", "mean")]
        return daily.pivot(on="metric", index=keys, values="hours", sort_columns=True).sort(keys), keys
    except pl.exceptions.PolarsError as exc:
        raise EngineError(f"{path}: not a daily table of `engine run` ({first_line(exc)})") from None


def file_targets(out_dir: Path, files: dict[str, Path]) -> dict[str, tuple[Path, Path]]:
    """Each file to export, files["csv"] and files["json"], as (as given, the file it really is): all checked
    before any export is written, so a refused one leaves the others unwritten too."""
    real = {kind: (path, file_target(out_dir, path, kind)) for kind, path in files.items()}
    if len({path for _, path in real.values()}) < len(real):
        raise EngineError(f"{files['json']}: --csv and --json name the same file")
    return real


def export_files(out_dir: Path, targets: dict[str, tuple[Path, Path]]) -> int:
    """The wide table as CSV and/or JSON (one object per row) at the checked `targets` (file_targets). Returns
    the rows."""
    wide, _ = wide_daily(out_dir)
    for kind, (shown, real) in targets.items():
        _write_file(wide, real, kind, shown=shown)
    return wide.height


def file_target(out_dir: Path, target: Path, kind: str) -> Path:
    """The file `target` really is (a symlink followed), refused when writing it could destroy what is not ours:
    a file of the run (OUT_DIR), one of its inputs (from its manifest), or anything that is not a regular file
    (a device, a pipe, /dev/stdout: renaming over it would replace the node itself)."""
    from engine.io.output import refuse_overlap

    if target.is_dir():
        raise EngineError(f"{target}: is a directory; --{kind} names the file to write")
    if target.exists() and not target.is_file():
        raise EngineError(f"{target}: not a regular file; --{kind} names a file to (re)place")
    refuse_overlap(target, {"the output directory": out_dir, **_run_inputs(out_dir)})
    real = target.resolve()
    if not real.parent.is_dir():
        why = "is not a directory" if real.parent.exists() else "does not exist"
        raise EngineError(f"{target}: directory {real.parent} {why}")
    return real


def _run_inputs(out_dir: Path) -> dict[str, str | None]:
    """The inputs a run's manifest records (specs, raw data, sites and exclusions files), and the etc/ beside
    its specs (a --data run records no sites file, but etc/sites.yaml is there): never written over."""
    try:
        manifest = json.loads((out_dir / "manifest.json").read_text())
        specs = manifest.get("specs")
        inputs = {
            "the specs of the run": specs,
            "the configuration beside the specs of the run": str(Path(specs).parent / "etc")
            if isinstance(specs, str)
            else None,
            "the raw data of the run": manifest.get("data"),  # not "the raw data directory": nothing inside it
            "the sites file of the run": manifest.get("sites"),
            "the exclusions file of the run": (manifest.get("exclusions") or {}).get("file"),
        }
    except (OSError, ValueError, AttributeError, RecursionError):  # no manifest (or not ours): OUT_DIR alone is guarded
        return {}
    return {what: path for what, path in inputs.items() if isinstance(path, str) and path}


def _inert(wide):
    """Text cells a spreadsheet would run as a formula (=, +, -, @ first, as OWASP lists them: a node type
    `=HYPERLINK(…)` from the data) with a ' before them, as spreadsheets read a text cell; numbers stay."""
    import polars as pl

    text = [c for c, t in wide.schema.items() if t == pl.String]
    formula = pl.col(text).str.contains(r"^[=+\-@\t\r]")
    return wide.with_columns(pl.when(formula).then("'" + pl.col(text)).otherwise(pl.col(text)).name.keep())


def _write_file(wide, target: Path, kind: str, *, shown: Path) -> None:
    """Write beside the target and rename into place, so a reader never sees half a file."""
    import polars as pl

    from engine.io.output import beside

    tmp = beside(target, "partial")
    try:
        if kind == "csv":
            _inert(wide).write_csv(tmp)
        else:
            tmp.write_text(wide.write_json() + "\n")
        tmp.replace(target)
    except OSError as exc:
        raise EngineError(f"{shown}: cannot write ({exc.strerror or exc})") from None
    except pl.exceptions.PolarsError as exc:
        raise EngineError(f"{shown}: cannot write ({first_line(exc)})") from None
    finally:
        tmp.unlink(missing_ok=True)


EXPORT_MARK = "testbed-usage-engine export"  # the COMMENT of every table export writes: only those are replaced
SYSTEM = ("mysql", "information_schema", "performance_schema", "sys")


def export_target(target: str) -> tuple[str, str]:
    """(database, table) of --table DATABASE.TABLE, checked before any work."""
    database, dot, table = target.partition(".")
    if not (dot and database and table):
        raise EngineError(f"--table {target}: expected DATABASE.TABLE")
    database, table = real_name(target, {})
    if database.lower() in SYSTEM:
        raise EngineError(f"--table {target}: {database} is a system database of the server; export into your own")
    if table.lower().endswith(("__new", "__old")):  # the next export into its stem would drop it as scratch
        raise EngineError(
            f"--table {target}: a name ending in __new or __old is export's scratch table; choose another"
        )
    if len(table) > 59:  # MariaDB allows 64 characters, and the scratch tables add `__new`
        raise EngineError(f"--table {target}: the table name has {len(table)} characters, at most 59")
    return database, table


def export_daily(out_dir: Path, db: Database, *, into: tuple[str, str]) -> int:
    """Write the wide daily table into the table `into` (database, table; export_target), replacing the previous
    export in one atomic RENAME: dashboards never see a half-written table, and a table export did not write is
    never dropped. Returns its rows."""
    import pymysql

    database, table = into
    wide, keys = wide_daily(out_dir)
    for ident in wide.columns:
        if not IDENT.fullmatch(ident):
            raise EngineError(f"export: column '{ident}' is not a valid SQL identifier")
    text = "VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"  # a dashboard's GROUP BY tells Gpu from gpu
    types = {"date": "DATE", **{k: text for k in keys if k != "date"}}
    cols = ", ".join(f"`{c}` {types.get(c, 'DOUBLE')}" for c in wide.columns)
    try:
        conn = pymysql.connect(host=db.host, port=db.port, user=db.user, password=db.password, autocommit=True)
        with conn, conn.cursor() as cur:
            _lock(cur, database, table)
            ours = _our_exports(cur, database, [table, f"{table}__new", f"{table}__old"])
            _publish(cur, database, table, rows=wide.rows(), width=wide.width, columns=cols, existing=ours)
    except pymysql.MySQLError as exc:
        raise EngineError(f"export to {db.shown}/{database}.{table}: {db.mask(str(exc.args[-1]))}") from None
    return wide.height


LOCK_WAIT = 60  # seconds an export waits for another one into the same table


def lock_key(database: str, table: str) -> str:
    """The server's named lock of exports into one table (at most 64 characters, whatever the names)."""
    return "testbed-usage-engine export " + hashlib.sha256(f"{database}.{table}".encode()).hexdigest()[:32]


def _lock(cur, database: str, table: str) -> None:
    """One export into a table at a time (the named lock, held until the connection closes): two at once each
    took the other's __new for a killed export's, and published one table with both's rows."""
    cur.execute("SELECT GET_LOCK(%s, %s)", (lock_key(database, table), LOCK_WAIT))
    if cur.fetchone()[0] != 1:
        raise EngineError(
            f"--table {database}.{table}: another export into it has run for over {LOCK_WAIT} s; try again when it ends"
        )


def _our_exports(cur, database: str, names: list[str]) -> set[str]:
    """Which of the tables `names` exist in `database`: all of them exports of ours (information_schema: a
    BASE TABLE with our COMMENT), or the export is refused. A missing database is refused too (never created:
    where dashboards read is the DBA's choice)."""
    cur.execute("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s", (database,))
    if database not in {row[0] for row in cur.fetchall()}:
        raise EngineError(f"--table {database}.{names[0]}: database {database} does not exist; create it first")
    cur.execute(
        "SELECT TABLE_NAME, TABLE_TYPE, TABLE_COMMENT FROM information_schema.TABLES "
        "WHERE TABLE_SCHEMA = %s AND TABLE_NAME IN (%s, %s, %s)",
        (database, *names),
    )
    found = {name: (kind, comment) for name, kind, comment in cur.fetchall() if name in names}
    for name, (kind, comment) in found.items():
        if kind != "BASE TABLE" or comment != EXPORT_MARK:
            raise EngineError(
                f"--table {database}.{names[0]}: refusing to replace {database}.{name}: it is not a table written "
                f"by `engine export` (a {kind.lower()} without the comment '{EXPORT_MARK}'); choose another --table"
            )
    return set(found)


def _publish(cur, database: str, table: str, *, rows: list, width: int, columns: str, existing: set[str]) -> None:
    """Fill `table__new`, swap it in with one RENAME (atomic in MariaDB: the target is never missing, and a failure
    before it leaves the previous export as it was), then drop the previous export. `existing` are ours."""
    import pymysql

    def name(suffix: str = "") -> str:
        return f"`{database}`.`{table}{suffix}`"

    for left in sorted(existing - {table}):  # scratch tables of a killed export
        cur.execute(f"DROP TABLE `{database}`.`{left}`")
    cur.execute(f"CREATE TABLE {name('__new')} ({columns}) COMMENT = '{EXPORT_MARK}'")  # fails if one appeared since
    try:
        marks = ", ".join(["%s"] * width)
        for i in range(0, len(rows), 5000):
            cur.executemany(f"INSERT INTO {name('__new')} VALUES ({marks})", rows[i : i + 5000])
        if table in existing:
            cur.execute(f"RENAME TABLE {name()} TO {name('__old')}, {name('__new')} TO {name()}")
        else:
            cur.execute(f"RENAME TABLE {name('__new')} TO {name()}")
    except BaseException:
        with contextlib.suppress(pymysql.MySQLError):  # ours: created above; the previous export is untouched
            cur.execute(f"DROP TABLE IF EXISTS {name('__new')}")
        raise
    if table in existing:
        cur.execute(f"DROP TABLE {name('__old')}")
