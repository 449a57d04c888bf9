"""The documentation sites: GX data docs (the gate's validation results) and dbt docs, side by side.

Both live under ``<gx_context_dir>/uncommitted/data_docs/`` (git-ignored): ``local_site/`` is GX's,
``dbt/`` is ``dbt docs generate``'s output. The Airflow plugin in plugins/ serves them to logged-in users;
each build is also copied to ``s3://<bucket>/docs/``.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from tidewater.config import ConfigError, Settings

SITES = {"gx": "local_site", "dbt": "dbt"}
LAKE_PREFIX = "docs"
# What dbt docs needs to render offline.
DBT_DOCS_FILES = ("index.html", "manifest.json", "catalog.json")
LAKE_COPY_RECORD = "lake-copy.json"  # what copy_to_lake copied, beside the sites


def yield_the_cpu() -> str:
    """Lowers the calling thread, and the threads and processes it starts, to the lowest CPU and disk priority the
    system grants without privileges: Linux's SCHED_IDLE (runs only when no other thread wants the core; nice 19
    still takes ~1.5% of a busy core per thread) and the idle I/O class; nice 19 where those do not exist. Returns
    what it set."""
    import psutil

    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
        policy = "SCHED_IDLE"
    except (AttributeError, OSError):
        os.nice(19)
        policy = "nice 19"
    try:
        psutil.Process().ionice(psutil.IOPRIO_CLASS_IDLE)
        return f"{policy}, idle I/O"
    except (AttributeError, OSError, psutil.Error):
        return policy


def docs_root(settings: Settings) -> Path:
    return Path(settings.gx_context_dir) / "uncommitted" / "data_docs"


def site_dir(settings: Settings, site: str) -> Path:
    if site not in SITES:
        raise KeyError(f"no docs site {site!r}; known: {', '.join(SITES)}")
    return docs_root(settings) / SITES[site]


def built_at(settings: Settings) -> datetime | None:
    """When the data docs were last built (the dbt site's page), or None if never."""
    page = site_dir(settings, "dbt") / "index.html"
    return datetime.fromtimestamp(page.stat().st_mtime, UTC) if page.exists() else None


def resolve_file(settings: Settings, site: str, relative: str) -> Path | None:
    """A file inside a site, or None: missing, a path that would leave the site, or one no file can have (a NUL
    character, a name too long)."""
    return file_under(site_dir(settings, site), relative)


def file_under(root: Path, relative: str) -> Path | None:
    """The file `relative` names under `root` (a folder: its index.html), or None as `resolve_file`."""
    root = root.resolve()
    try:
        path = (root / (relative or "index.html")).resolve()
        if path.is_dir():
            path = path / "index.html"
        return path if path.is_relative_to(root) and path.is_file() else None
    except (OSError, ValueError):  # ValueError: "embedded null byte"
        return None


@contextmanager
def _dbt_environment(settings: Settings) -> Iterator[None]:
    """The variables dbt/profiles.yml reads, from the settings, for one in-process dbt invocation."""
    values = {"TIDEWATER_WAREHOUSE_PATH": settings.warehouse_path, "TIDEWATER_LAKE_BUCKET": settings.lake_bucket}
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def warehouse_copy(settings: Settings) -> Path:
    """Where the docs build's copy of the warehouse is: beside the warehouse, under its file name (dbt's catalog
    names relations by database, which dbt-duckdb takes from the file's stem)."""
    warehouse = Path(settings.warehouse_path)
    return warehouse.parent / "docs-copy" / warehouse.name


def copy_warehouse(settings: Settings) -> Path:
    """Copies the warehouse file, and a write-ahead log a writer left, to `warehouse_copy` (replacing an older
    copy); the copy is consistent only while no process writes the warehouse: hold the warehouse pool's slot."""
    warehouse, copy = Path(settings.warehouse_path), warehouse_copy(settings)
    if not warehouse.exists():
        raise ConfigError(f"the warehouse {warehouse} does not exist (TIDEWATER_WAREHOUSE_PATH): no dbt docs "
                          "without it; a warehouse run builds it")
    copy.parent.mkdir(parents=True, exist_ok=True)
    for source, target in ((warehouse, copy), (_wal(warehouse), _wal(copy))):
        target.unlink(missing_ok=True)
        if source.exists():
            shutil.copyfile(source, target)
    return copy


def discard_warehouse_copy(copy: Path) -> None:
    """Removes a `copy_warehouse` copy and its write-ahead log."""
    for path in (copy, _wal(copy)):
        path.unlink(missing_ok=True)


def _wal(database: Path) -> Path:
    return database.with_name(database.name + ".wal")


def generate_dbt_docs(settings: Settings, warehouse: Path) -> Path:
    """Runs `dbt docs generate` into the dbt site against `warehouse` (a `copy_warehouse` copy: dbt opens it for
    writing, and the real one is locked by every warehouse run). In-process, as Cosmos runs dbt."""
    from dbt.cli.main import dbtRunner

    target = site_dir(settings, "dbt")
    project = Path(settings.dbt_project_dir)
    with _dbt_environment(replace(settings, warehouse_path=str(warehouse))):
        result = dbtRunner().invoke(["docs", "generate", "--project-dir", str(project), "--profiles-dir", str(project),
                                     "--target-path", str(target), "--quiet"])
    if not result.success:
        raise RuntimeError(f"dbt docs generate failed in {project}: {result.exception or 'see the log above'}")
    return target / "index.html"


def copy_to_lake(settings: Settings, lake) -> int:
    """Mirrors both sites to s3://<bucket>/docs/<site>/ (dbt: only the files its page needs): uploads each file the
    lake lacks or that changed since this function copied it (size and modification time, recorded in
    ``<docs root>/lake-copy.json``), deletes the keys whose file is gone (pruned validation pages); `lake` is a
    tidewater.lake.Lake. Returns the files uploaded."""
    record = docs_root(settings) / LAKE_COPY_RECORD
    previous = json.loads(record.read_text()) if record.exists() else {}
    copied_before = previous.get("files", {}) if previous.get("bucket") == lake.bucket.bucket else {}
    copied: dict[str, list[int]] = {}
    uploaded = 0
    for site in SITES:
        root = site_dir(settings, site)
        prefix = f"{LAKE_PREFIX}/{site}/"
        there = set(lake.bucket.keys(prefix))
        files = [root / name for name in DBT_DOCS_FILES] if site == "dbt" else sorted(root.rglob("*"))
        for path in (path for path in files if path.is_file()):
            key = prefix + path.relative_to(root).as_posix()
            stat = path.stat()
            copied[key] = [stat.st_size, stat.st_mtime_ns]
            if key in there and copied_before.get(key) == copied[key]:
                continue
            lake.bucket.client.upload_file(str(path), lake.bucket.bucket, key)
            uploaded += 1
        lake.bucket.delete(sorted(there - set(copied)))
    record.write_text(json.dumps({"bucket": lake.bucket.bucket, "files": copied}))
    return uploaded
