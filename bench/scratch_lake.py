"""A benchmark's own lake: a new bucket on the stack's MinIO and a new DuckLake catalog database owned by the
catalog writer, removed afterwards (like tests/integration/conftest.py's `new_lake`; benchmarks do not import
tests). Nothing of the deployment's lake is touched."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace

import duckdb
import psycopg
from psycopg import sql

from tidewater.config import Connection, Settings, get_connection
from tidewater.duck import load_extensions, s3_secret_sql
from tidewater.lake import Lake, catalog
from tidewater.lake.objects import Bucket
from tidewater_dev.stackenv import airflow_connections


def run_as_minio_root() -> None:
    """Benchmarks create and drop their own buckets, which MinIO's pipeline user may not touch (its policy has the
    lake bucket only): each benchmark calls this first; from then on, in its process and its children, the
    pipeline's S3 connection and dbt's S3 user are MinIO's root user."""
    os.environ["TIDEWATER_S3_PIPELINE_ACCESS_KEY"] = os.environ["TIDEWATER_S3_ACCESS_KEY"]
    os.environ["TIDEWATER_S3_PIPELINE_SECRET_KEY"] = os.environ["TIDEWATER_S3_SECRET_KEY"]
    os.environ["AIRFLOW_CONN_LAKE_S3"] = airflow_connections(os.environ)["AIRFLOW_CONN_LAKE_S3"]


@dataclass
class ScratchLake:
    lake: Lake
    name: str  # the catalog database; the bucket is the same with dashes
    metadata: Connection  # the catalog writer on that database

    @property
    def env(self) -> dict[str, str]:
        """What points dbt (dbt/profiles.yml) at this lake."""
        return {"TIDEWATER_LAKE_BUCKET": self.lake.bucket.bucket, "TIDEWATER_LAKE_CATALOG_DB": self.name}


def s3_client(settings: Settings):
    import boto3

    conn = get_connection(settings.lake_conn_id)
    return boto3.client("s3", endpoint_url=conn.extra.get("endpoint_url"), aws_access_key_id=conn.login,
                        aws_secret_access_key=conn.password, region_name=conn.extra.get("region_name", "us-east-1"))


def create_database(settings: Settings, name: str, owner: str) -> None:
    with psycopg.connect(settings.shop_conninfo(admin=True), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(name), sql.Identifier(owner)))


def drop_database(settings: Settings, name: str) -> None:
    with psycopg.connect(settings.shop_conninfo(admin=True), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def empty_bucket(client, bucket: str) -> None:
    keys = [item["Key"] for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
            for item in page.get("Contents", [])]
    for start in range(0, len(keys), 1000):
        client.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys[start:start + 1000]],
                                                     "Quiet": True})
    client.delete_bucket(Bucket=bucket)


def open_scratch_lake(settings: Settings, client, name: str) -> ScratchLake:
    """Another session (its own DuckDB connection) on the scratch lake `name` that scratch_lake made."""
    metadata = replace(get_connection(settings.lake_catalog_conn_id), schema=name)
    bucket = name.replace("_", "-")
    con = duckdb.connect()
    load_extensions(con, "httpfs", "ducklake", "postgres")
    con.execute(s3_secret_sql(get_connection(settings.lake_conn_id)))
    catalog.attach(con, catalog.LAKE, metadata, f"s3://{bucket}/{catalog.DATA_PREFIX[catalog.LAKE]}")
    return ScratchLake(Lake(con, Bucket(client, bucket)), name, metadata)


@contextmanager
def scratch_lake(settings: Settings, prefix: str = "bench") -> Iterator[ScratchLake]:
    """A new, empty lake attached as `lake` to a fresh DuckDB connection (its writer)."""
    client = s3_client(settings)
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    bucket = name.replace("_", "-")
    client.create_bucket(Bucket=bucket)
    writer = get_connection(settings.lake_catalog_conn_id)
    con = None
    try:
        create_database(settings, name, writer.login)
        scratch = open_scratch_lake(settings, client, name)
        con = scratch.lake.con
        yield scratch
    finally:
        if con is not None:
            con.close()
        empty_bucket(client, bucket)
        drop_database(settings, name)
