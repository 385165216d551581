"""`engine extract` and `engine grants`: raw tables from MySQL/MariaDB to parquet, with least privilege.

Rows stream through connectorx (Rust, Arrow batches; see docs/extract.md for why) into a parquet file
written next to its target and renamed into place, so a table larger than memory still extracts and
a failure never leaves a half-written file. Every table succeeds or fails on its own.
"""

import json
import os
import re
import time
from pathlib import Path
from urllib.parse import quote, quote_plus, unquote, urlparse

from engine.errors import EngineError

IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
ZERO_DATE = "CASE WHEN MONTH(`{c}`) = 0 OR DAY(`{c}`) = 0 THEN NULL ELSE `{c}` END AS `{c}`"
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
        parts = urlparse(re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", _environment, uri))
        try:
            port = parts.port
        except ValueError:
            raise EngineError("--db-uri: the port is not a number (expected mysql://user:password@host:port)") from None
        if parts.scheme not in ("mysql", "mariadb") or not parts.hostname:
            raise EngineError("--db-uri: expected mysql://user:password@host:port")
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
        if not IDENT.match(ident):
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
        kind = kind.lower()
        if kind in ("date", "datetime", "timestamp"):
            cols.append(ZERO_DATE.format(c=column))
        elif kind in ("decimal", "bit"):
            cols.append(f"CAST(`{column}` AS {'DOUBLE' if kind == 'decimal' else 'UNSIGNED'}) AS `{column}`")
        else:
            cols.append(f"`{column}`")
    return f"SELECT {', '.join(cols)} FROM `{database}`.`{name}`"


def extract_table(db: Database, table: str, out: Path, *, schemas: dict[str, str]) -> int:
    """Stream one table into OUT/<schema>.<table>.parquet (zstd, written atomically); returns its rows."""
    import pyarrow.parquet as pq

    reader = db.stream(_select(db, *real_name(table, schemas)))
    target = out / f"{table}.parquet"
    tmp = out / f".{table}.parquet.partial-{os.getpid()}"
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


def extract(
    db: Database,
    out: Path,
    tables: list[str],
    *,
    entities: dict[str, tuple[str, set[str]]],
    schemas: dict[str, str],
    progress,
    timeout: float = 5.0,
    archives: list[str] = (),
) -> dict:
    """Extract every table; returns the report written to OUT/extract.json (no password in it).

    `entities` maps each entity to (its source table, the tables it requires), graph.entity_tables. A table
    the server does not have (or lets the account not see) is absent: an entity whose source is absent is
    not on this server (the site has no such service); one whose source is there but a required table is
    absent is incomplete (the grants are), which `failed` lists with every table that failed otherwise.
    The `archives` (graph.archives_for) are extracted where the server has them, and absent ones are only
    listed (`archives_absent`): an archive is never required."""
    out.mkdir(parents=True, exist_ok=True)
    login = db.check(timeout)
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
        except Exception as exc:  # every driver failure is this table's status; the others go on
            message = db.mask(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
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
    """CREATE USER and one GRANT SELECT per table: exactly what extraction reads, nothing more."""
    if not IDENT.match(user) or not re.match(r"^[A-Za-z0-9_.%:-]+$", host):
        raise EngineError(
            f"'{user}'@'{host}' is not a valid account (user: letters, digits, _; host: a name or pattern)"
        )
    who = f"'{user}'@'{host}'"
    quoted = password.replace("\\", "\\\\").replace("'", "''")  # MySQL reads a backslash as an escape
    lines = [f"CREATE USER IF NOT EXISTS {who} IDENTIFIED BY '{quoted}';"]
    lines += [f"GRANT SELECT ON `{d}`.`{n}` TO {who};" for d, n in (real_name(t, schemas) for t in tables)]
    return "\n".join(lines) + "\n"


def wide_daily(out_dir: Path):
    """OUT_DIR/daily.parquet as one row per day and group, one column of node-hours per metric: the table
    every export writes."""
    import polars as pl

    path = out_dir / "daily.parquet"
    if not path.is_file():
        raise EngineError(f"{out_dir}: not an output directory of `engine run` (no daily.parquet)")
    try:
        daily = pl.read_parquet(path)
        keys = [c for c in daily.columns if c not in ("metric", "hours", "mean")]
        return daily.pivot(on="metric", index=keys, values="hours", sort_columns=True).sort(keys), keys
    except pl.exceptions.PolarsError as exc:
        raise EngineError(f"{path}: not a daily table of `engine run` ({str(exc).splitlines()[0]})") from None


def export_file(out_dir: Path, target: Path, kind: str) -> int:
    """The wide table as CSV or JSON (one object per row) at `target`, written beside it and renamed into place
    so a reader never sees half a file. Returns its rows."""
    wide, _ = wide_daily(out_dir)
    if target.is_dir():
        raise EngineError(f"{target}: is a directory; --{kind} names the file to write")
    tmp = target.parent / f".{target.name}.partial-{os.getpid()}"
    try:
        if kind == "csv":
            wide.write_csv(tmp)
        else:
            tmp.write_text(wide.write_json() + "\n")
        tmp.replace(target)
    except OSError as exc:
        raise EngineError(f"{target}: cannot write ({exc.strerror})") from None
    finally:
        tmp.unlink(missing_ok=True)
    return wide.height


def export_daily(out_dir: Path, db: Database, target: str) -> int:
    """Write the wide daily table into `db.table`, replacing the previous export in one atomic RENAME:
    dashboards never see a half-written table. Returns its rows."""
    import pymysql

    database, table = real_name(target, {})
    wide, keys = wide_daily(out_dir)
    for ident in wide.columns:
        if not IDENT.match(ident):
            raise EngineError(f"export: column '{ident}' is not a valid SQL identifier")
    types = {"date": "DATE", **{k: "VARCHAR(255)" for k in keys if k != "date"}}
    cols = ", ".join(f"`{c}` {types.get(c, 'DOUBLE')}" for c in wide.columns)
    new, old = f"`{database}`.`{table}__new`", f"`{database}`.`{table}__old`"
    conn = pymysql.connect(host=db.host, port=db.port, user=db.user, password=db.password, autocommit=True)
    try:
        with conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE IF NOT EXISTS `{database}`")
            cur.execute(f"DROP TABLE IF EXISTS {new}, {old}")
            cur.execute(f"CREATE TABLE {new} ({cols})")
            rows, marks = wide.rows(), ", ".join(["%s"] * wide.width)
            for i in range(0, len(rows), 5000):
                cur.executemany(f"INSERT INTO {new} VALUES ({marks})", rows[i : i + 5000])
            cur.execute(f"CREATE TABLE IF NOT EXISTS `{database}`.`{table}` LIKE {new}")
            cur.execute(f"RENAME TABLE `{database}`.`{table}` TO {old}, {new} TO `{database}`.`{table}`")
            cur.execute(f"DROP TABLE {old}")
    except pymysql.MySQLError as exc:
        raise EngineError(f"export to {db.shown}/{database}.{table}: {db.mask(str(exc.args[-1]))}") from None
    finally:
        conn.close()
    return wide.height
