"""DuckDB connections that read the lake on S3.

DuckDB cannot download extensions here, so httpfs, ducklake and postgres come from the pinned
``duckdb-extension-<name>`` packages: each is installed from its package's file once (into DuckDB's extension
directory) and loaded.
"""

from __future__ import annotations

from importlib.util import find_spec
from pathlib import Path
from urllib.parse import urlsplit

import duckdb

from tidewater.config import ConfigError, Connection
from tidewater.sqltext import identifier, literal, redacting

EXTENSIONS = ("httpfs", "ducklake", "postgres")  # each from its pinned duckdb-extension-<name> package


def extension_file(name: str) -> Path:
    """The extension file the pinned ``duckdb-extension-<name>`` package ships for this duckdb version."""
    package = f"duckdb_extension_{name}"
    spec = find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(f"the duckdb-extension-{name} package is not installed: run make install")
    path = Path(next(iter(spec.submodule_search_locations))) / "extensions" / f"v{duckdb.__version__}" / \
        f"{name}.duckdb_extension"
    if not path.exists():
        raise ConfigError(f"{path} is missing: duckdb-extension-{name} must have the same version as duckdb "
                          f"({duckdb.__version__})")
    return path


def load_extensions(con: duckdb.DuckDBPyConnection, *names: str) -> None:
    """Loads extensions, installing each from its package's file the first time (DuckDB downloads nothing)."""
    for name in names:
        try:
            con.load_extension(name)
        except duckdb.Error:
            con.install_extension(str(extension_file(name)))
            con.load_extension(name)


def s3_secret_sql(conn: Connection, name: str = "lake") -> str:
    """CREATE SECRET for an S3 connection (endpoint from its extras, path-style as MinIO wants); every value a
    quoted literal (CREATE SECRET takes no parameters). Run it with `create_s3_secret`, whose errors never
    quote the key."""
    endpoint = urlsplit(conn.extra.get("endpoint_url", ""))
    options = {
        "TYPE": "s3",
        "KEY_ID": conn.login or "",
        "SECRET": conn.password or "",
        "REGION": conn.extra.get("region_name", "us-east-1"),
    }
    if endpoint.netloc:
        options |= {"ENDPOINT": endpoint.netloc, "URL_STYLE": "path",
                    "USE_SSL": "true" if endpoint.scheme == "https" else "false"}
    body = ", ".join(f"{key} {literal(value)}" for key, value in options.items())
    return f"CREATE OR REPLACE SECRET {identifier(name)} ({body})"


def create_s3_secret(con: duckdb.DuckDBPyConnection, conn: Connection, name: str = "lake") -> None:
    """Creates `s3_secret_sql`'s secret; an error is raised with the connection's key id and secret redacted."""
    with redacting(conn.password, conn.login):
        con.execute(s3_secret_sql(conn, name))


def connect_lake(conn: Connection, database: str = ":memory:", read_only: bool = False) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(database, read_only=read_only)
    load_extensions(con, "httpfs")
    create_s3_secret(con, conn)
    return con


def main() -> None:
    """Installs the extensions from their pinned packages into DuckDB's extension directory (make install)."""
    con = duckdb.connect()
    load_extensions(con, *EXTENSIONS)
    for name in EXTENSIONS:
        print(f"[duckdb] {name} {duckdb.__version__} installed from {extension_file(name)}")


if __name__ == "__main__":
    main()
