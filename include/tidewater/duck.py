"""DuckDB connections that read the lake on S3.

DuckDB cannot download extensions here, so httpfs comes from the pinned ``duckdb-extension-httpfs``
package: it is installed from the package's file once (into DuckDB's extension directory) and loaded.
"""

from __future__ import annotations

from importlib.util import find_spec
from pathlib import Path
from urllib.parse import urlsplit

import duckdb

from tidewater.config import ConfigError, Connection


def httpfs_extension_file() -> Path:
    spec = find_spec("duckdb_extension_httpfs")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("the duckdb-extension-httpfs package is not installed: run make install")
    path = Path(next(iter(spec.submodule_search_locations))) / "extensions" / f"v{duckdb.__version__}" / \
        "httpfs.duckdb_extension"
    if not path.exists():
        raise ConfigError(f"{path} is missing: duckdb-extension-httpfs must have the same version as duckdb "
                          f"({duckdb.__version__})")
    return path


def load_httpfs(con: duckdb.DuckDBPyConnection) -> None:
    try:
        con.load_extension("httpfs")
    except duckdb.Error:
        con.install_extension(str(httpfs_extension_file()))
        con.load_extension("httpfs")


def s3_secret_sql(conn: Connection, name: str = "lake") -> str:
    """CREATE SECRET for an S3 connection (endpoint from its extras, path-style as MinIO wants)."""
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
    body = ", ".join(f"{key} {value if key == 'USE_SSL' else repr(value)}" for key, value in options.items())
    return f"CREATE OR REPLACE SECRET {name} ({body})"


def connect_lake(conn: Connection, database: str = ":memory:", read_only: bool = False) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(database, read_only=read_only)
    load_httpfs(con)
    con.execute(s3_secret_sql(conn))
    return con


def main() -> None:
    """Installs httpfs from the pinned package into DuckDB's extension directory (make install runs it)."""
    con = duckdb.connect()
    load_httpfs(con)
    print(f"[duckdb] httpfs {duckdb.__version__} installed from {httpfs_extension_file()}")


if __name__ == "__main__":
    main()
