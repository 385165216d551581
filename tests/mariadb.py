"""A real MariaDB server for the extraction tests: 127.0.0.1:3306, root without a password.

.ci/run installs and starts Debian's mariadb-server where none runs. Tests load parquet tables into
uniquely named databases (the sites file maps the specs' schema names onto them) and drop them after.
"""

import uuid

import polars as pl
import pymysql

HOST, PORT = "127.0.0.1", 3306
TYPES = {
    pl.Int64: "BIGINT",
    pl.Int32: "INT",
    pl.Int8: "TINYINT",
    pl.Float64: "DOUBLE",
    pl.Boolean: "TINYINT(1)",
    pl.Date: "DATE",
}


def connect(user: str = "root", password: str = "", **kw) -> pymysql.Connection:
    return pymysql.connect(host=HOST, port=PORT, user=user, password=password, autocommit=True, **kw)


def available() -> bool:
    try:
        connect().close()
        return True
    except pymysql.MySQLError:
        return False


def sql_type(series: pl.Series) -> str:
    if isinstance(series.dtype, pl.Datetime):
        return "DATETIME"
    if series.dtype == pl.String:  # upstream keeps JSON and tracebacks in (MEDIUM)TEXT
        longest = series.str.len_bytes().max() or 0
        return "MEDIUMTEXT" if longest > 255 else "VARCHAR(255)"
    return TYPES.get(series.dtype, "VARCHAR(255)")


def load(conn: pymysql.Connection, table: str, frame: pl.DataFrame, database: str) -> None:
    """Create `database`.`table` with upstream-like column types and insert the frame's rows."""
    cols = ", ".join(f"`{c}` {sql_type(frame[c])}" for c in frame.columns)
    marks = ", ".join(["%s"] * frame.width)
    names = ", ".join(f"`{c}`" for c in frame.columns)
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE IF NOT EXISTS `{database}`")
        cur.execute(f"CREATE TABLE `{database}`.`{table}` ({cols})")
        rows = frame.rows()
        for i in range(0, len(rows), 5000):
            cur.executemany(f"INSERT INTO `{database}`.`{table}` ({names}) VALUES ({marks})", rows[i : i + 5000])


def drop(conn: pymysql.Connection, databases) -> None:
    with conn.cursor() as cur:
        for database in databases:
            cur.execute(f"DROP DATABASE IF EXISTS `{database}`")


def load_site(raw) -> tuple[pymysql.Connection, dict[str, str]]:
    """Every table of a raw directory into databases of their own, uniquely named for this test (Nova's as
    nova_cell1, as cells v2 keeps instances): the connection and the specs' schema -> database mapping."""
    prefix = f"t{uuid.uuid4().hex[:8]}_"
    schemas = {
        s: f"{prefix}{s if s != 'nova' else 'nova_cell1'}" for s in ("nova", "nova_api", "blazar", "chameleon_usage")
    }
    conn = connect()
    for path in sorted(raw.glob("*.parquet")):
        schema, table = path.stem.split(".")
        load(conn, table, pl.read_parquet(path), schemas[schema])
    return conn, schemas
