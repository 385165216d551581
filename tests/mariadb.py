"""A real MariaDB server for the extraction tests: 127.0.0.1:3306, root without a password.

.ci/run installs and starts Debian's mariadb-server where none runs. Tests load parquet tables into
uniquely named databases (the sites file maps the specs' schema names onto them) and drop them after.
"""

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
