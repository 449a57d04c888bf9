"""The lake bucket's object layout and the few S3 operations the pipeline needs on it.

  lake/main/<table>/dt=<YYYY-MM-DD>/<topic>-p<partition>-o<first>-<last>-<run>.parquet
      data files of the DuckLake change tables (the catalog's data path is ``lake/``); a file is part of the
      lake only once a drain's commit registered it (tidewater.lake.commit)
  quarantine/<topic>/<topic>-p<partition>-o<first>-<last>.jsonl
      records no decoder could read; accepted with the drain's commit (``tidewater.quarantine_files``)
  marts/…   data files of the published marts' catalog

Offsets are zero-padded to 20 digits so names sort in offset order; ``<run>`` makes each drain's names its
own, so two drains of one slice never overwrite each other's files.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

DATA = "lake/main"
QUARANTINE = "quarantine"
_KEY = re.compile(r"(?P<topic>.+)-p(?P<partition>\d+)-o(?P<first>\d{20})-(?P<last>\d{20})(?:-[0-9a-f]+)?"
                  r"\.(?:parquet|jsonl)$")


class ObjectStoreError(RuntimeError):
    """S3 refused an operation on some objects; the message names them."""


def table_of(topic: str) -> str:
    """shop.shop.orders → orders (Debezium topics are <prefix>.<schema>.<table>)."""
    return topic.rsplit(".", 1)[-1]


def _file_name(topic: str, partition: int, first: int, last: int, suffix: str, run: str = "") -> str:
    return f"{topic}-p{partition}-o{first:020d}-{last:020d}{'-' + run if run else ''}.{suffix}"


def data_table_prefix(table: str) -> str:
    return f"{DATA}/{table}/"


def data_key(topic: str, dt: str, partition: int, first: int, last: int, run: str) -> str:
    return f"{data_table_prefix(table_of(topic))}dt={dt}/{_file_name(topic, partition, first, last, 'parquet', run)}"


def quarantine_prefix(topic: str) -> str:
    return f"{QUARANTINE}/{topic}/"


def quarantine_key(topic: str, partition: int, first: int, last: int) -> str:
    return quarantine_prefix(topic) + _file_name(topic, partition, first, last, "jsonl")


@dataclass(frozen=True)
class LakeFile:
    key: str
    topic: str
    partition: int
    first_offset: int
    last_offset: int


def parse_key(key: str) -> LakeFile | None:
    match = _KEY.search(key.rsplit("/", 1)[-1])
    if not match:
        return None
    return LakeFile(key, match["topic"], int(match["partition"]), int(match["first"]), int(match["last"]))


class Bucket:
    """S3 operations on the lake bucket, through a boto3 S3 client."""

    def __init__(self, client: Any, bucket: str) -> None:
        self.client = client
        self.bucket = bucket

    def uri(self, key: str = "") -> str:
        return f"s3://{self.bucket}/{key}"

    def put(self, key: str, body: bytes, content_type: str) -> None:
        self.client.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType=content_type)

    def put_parquet(self, key: str, body: bytes) -> int:
        self.put(key, body, "application/vnd.apache.parquet")
        return len(body)

    def put_jsonl(self, key: str, rows: list[dict[str, Any]]) -> None:
        body = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows).encode("utf-8")
        self.put(key, body, "application/x-ndjson")

    def get_json(self, key: str) -> Any | None:
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except self.client.exceptions.NoSuchKey:
            return None
        return json.loads(body)

    def put_json(self, key: str, value: Any) -> None:
        self.put(key, json.dumps(value).encode(), "application/json")

    def keys(self, prefix: str) -> list[str]:
        keys: list[str] = []
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            keys += [item["Key"] for item in page.get("Contents", [])]
        return keys

    def delete(self, keys: list[str]) -> None:
        """Deletes the objects; raises ObjectStoreError naming every key S3 did not delete."""
        failed = []
        for start in range(0, len(keys), 1000):
            batch = [{"Key": key} for key in keys[start:start + 1000]]
            response = self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})
            failed += [f"{error.get('Key')} ({error.get('Code')}: {error.get('Message')})"
                       for error in response.get("Errors", [])]
        if failed:
            raise ObjectStoreError(f"S3 did not delete {len(failed)} objects of s3://{self.bucket}: "
                                   + "; ".join(failed[:10]))
