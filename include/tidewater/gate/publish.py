"""Atomic publication of the marts, keeping the last few so a user can roll back.

Readers open one of two published locations, each switched by one atomic step:

- ``<marts_dir>/marts.duckdb``: a symlink to ``publications/<id>/marts.duckdb``, replaced by ``rename``
  (open it read-only; several readers can, and none of them blocks the warehouse);
- ``s3://<bucket>/marts/<id>/<table>.parquet``, found through the pointer object ``marts/_current.json``
  (one PUT replaces it whole).

A publication's files are all written before either pointer moves, and are never changed afterwards, so a
reader sees the previous publication or the new one, never a mix and never a candidate that failed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from tidewater.config import ConfigError, Settings
from tidewater.gate.stage import MARTS_FILE, candidate_path, sql_string
from tidewater.gate.suites import MARTS

PREFIX = "marts"
POINTER_KEY = f"{PREFIX}/_current.json"
MANIFEST = "_manifest.json"


@dataclass(frozen=True)
class Publication:
    publication_id: str
    local_path: Path
    s3_uri: str
    rows: dict[str, int]

    def summary(self) -> dict:
        """What the publish task returns (XCom): JSON only."""
        return {"publication_id": self.publication_id, "local_path": str(self.local_path), "s3_uri": self.s3_uri,
                "rows": self.rows}


def publications_dir(settings: Settings) -> Path:
    return Path(settings.marts_dir) / "publications"


def published_path(settings: Settings) -> Path:
    """What readers open: the current publication's DuckDB file (through the symlink)."""
    return Path(settings.marts_dir) / MARTS_FILE


def s3_prefix(publication_id: str) -> str:
    return f"{PREFIX}/{publication_id}/"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def current_publication(settings: Settings) -> str | None:
    """The id of the publication readers get locally, or None before the first one."""
    link = published_path(settings)
    return Path(os.readlink(link)).parent.name if link.is_symlink() else None


def list_publications(settings: Settings) -> list[str]:
    """Kept publications, oldest first (ids sort by time)."""
    root = publications_dir(settings)
    return sorted(path.name for path in root.iterdir() if (path / MANIFEST).exists()) if root.exists() else []


def _export_parquet(database: Path, target: Path) -> dict[str, int]:
    rows = {}
    with duckdb.connect(str(database), read_only=True) as con:
        for table in MARTS:
            rows[table] = con.execute(f"select count(*) from {table}").fetchone()[0]
            con.execute(f"copy (select * from {table}) to {sql_string(target / (table + '.parquet'))} "
                        "(format parquet, compression zstd)")
    return rows


def _switch_local_pointer(settings: Settings, publication_id: str) -> None:
    """Points marts.duckdb at a publication with one rename (a reader opens the old file or the new one)."""
    link = published_path(settings)
    staging = link.with_name(f".{MARTS_FILE}.{publication_id}.tmp")
    staging.unlink(missing_ok=True)
    staging.symlink_to(Path("publications") / publication_id / MARTS_FILE)
    os.replace(staging, link)


def _switch_s3_pointer(lake, publication_id: str) -> None:
    manifest = lake.get_json(s3_prefix(publication_id) + MANIFEST)
    if manifest is None:
        raise ConfigError(f"publication {publication_id} is not in {lake.uri(PREFIX)}: its Parquet files are missing")
    lake.put_json(POINTER_KEY, manifest)


def publish(settings: Settings, publication_id: str, lake) -> Publication:
    """Publishes a candidate that passed the gate: files first, then the two pointers, then pruning."""
    candidate = candidate_path(settings, publication_id)
    if not candidate.exists():
        raise ConfigError(f"no candidate {candidate}: publish only runs after the gate staged and passed it")
    target = publications_dir(settings) / publication_id
    if target.exists():
        raise ConfigError(f"publication {publication_id} exists already in {target}; publication ids are never reused")
    rows = _export_parquet(candidate, candidate.parent)
    manifest = {"publication_id": publication_id, "published_at": datetime.now(UTC).isoformat(),
                "prefix": lake.uri(s3_prefix(publication_id)), "rows": rows,
                "tables": {table: lake.uri(s3_prefix(publication_id) + table + ".parquet") for table in MARTS},
                "duckdb_sha256": file_sha256(candidate)}
    for table in MARTS:
        lake.client.upload_file(str(candidate.parent / f"{table}.parquet"), lake.bucket,
                                s3_prefix(publication_id) + f"{table}.parquet")
    lake.put_json(s3_prefix(publication_id) + MANIFEST, manifest)
    (candidate.parent / MANIFEST).write_text(json.dumps(manifest, indent=2))
    target.parent.mkdir(parents=True, exist_ok=True)
    os.rename(candidate.parent, target)
    _switch_s3_pointer(lake, publication_id)
    _switch_local_pointer(settings, publication_id)
    prune(settings, lake)
    return Publication(publication_id, target / MARTS_FILE, manifest["prefix"], rows)


def prune(settings: Settings, lake) -> list[str]:
    """Deletes all but the newest ``marts_keep_publications`` (never the current one)."""
    keep = max(settings.marts_keep_publications, 1)
    current = current_publication(settings)
    kept = list_publications(settings)
    removed = [pid for pid in kept[:-keep] if pid != current]
    for publication_id in removed:
        lake.delete(lake.keys(s3_prefix(publication_id)))
        shutil.rmtree(publications_dir(settings) / publication_id)
    return removed


def rollback(settings: Settings, lake, to: str | None = None) -> str:
    """Points both published locations back at a kept publication (default: the one before the current)."""
    kept = list_publications(settings)
    current = current_publication(settings)
    if to is None:
        older = [pid for pid in kept if current is None or pid < current]
        if not older:
            raise ConfigError(f"no publication older than {current} is kept in {publications_dir(settings)}: "
                              "nothing to roll back to")
        to = older[-1]
    if to not in kept:
        raise ConfigError(f"publication {to!r} is not kept; choose one of: {', '.join(kept) or '(none)'}")
    _switch_s3_pointer(lake, to)
    _switch_local_pointer(settings, to)
    return to


def main(argv: list[str] | None = None) -> None:
    """`python -m tidewater.gate.publish list|rollback [--to ID]`."""
    from tidewater import drain

    parser = argparse.ArgumentParser(prog="python -m tidewater.gate.publish", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="kept publications, the current one marked")
    back = commands.add_parser("rollback", help="point the published marts at an earlier publication")
    back.add_argument("--to", help="publication id (default: the one before the current)")
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    if args.command == "list":
        current = current_publication(settings)
        for publication_id in list_publications(settings):
            print(("* " if publication_id == current else "  ") + publication_id)
    else:
        print(f"[marts] now publishing {rollback(settings, drain.open_lake(settings), args.to)}")


if __name__ == "__main__":
    main()
