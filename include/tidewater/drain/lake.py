"""The lake's object layout on S3 and the few operations the drain needs on it.

  raw/<table>/dt=<YYYY-MM-DD>/<topic>-p<partition>-o<first offset>-<last offset>.parquet
  quarantine/<topic>/<topic>-p<partition>-o<first offset>-<last offset>.jsonl
  _drain/inflight/<topic>/p<partition>.json      journal of a drain not yet committed to Kafka

Offsets are zero-padded to 20 digits so keys sort in offset order.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

RAW = "raw"
QUARANTINE = "quarantine"
INFLIGHT = "_drain/inflight"
_KEY = re.compile(r"(?P<topic>.+)-p(?P<partition>\d+)-o(?P<first>\d{20})-(?P<last>\d{20})\.(?:parquet|jsonl)$")


def table_of(topic: str) -> str:
    """shop.shop.orders → orders (Debezium topics are <prefix>.<schema>.<table>)."""
    return topic.rsplit(".", 1)[-1]


def _file_name(topic: str, partition: int, first: int, last: int, suffix: str) -> str:
    return f"{topic}-p{partition}-o{first:020d}-{last:020d}.{suffix}"


def raw_key(topic: str, dt: str, partition: int, first: int, last: int) -> str:
    return f"{RAW}/{table_of(topic)}/dt={dt}/{_file_name(topic, partition, first, last, 'parquet')}"


def raw_table_prefix(topic: str) -> str:
    return f"{RAW}/{table_of(topic)}/"


def raw_dt_prefix(topic: str, dt: str) -> str:
    return f"{RAW}/{table_of(topic)}/dt={dt}/"


def quarantine_prefix(topic: str) -> str:
    return f"{QUARANTINE}/{topic}/"


def quarantine_key(topic: str, partition: int, first: int, last: int) -> str:
    return quarantine_prefix(topic) + _file_name(topic, partition, first, last, "jsonl")


def inflight_key(topic: str, partition: int) -> str:
    return f"{INFLIGHT}/{topic}/p{partition}.json"


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


class Lake:
    """S3 operations on one bucket, through a boto3 S3 client."""

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

    def partition_files(self, prefix: str, topic: str, partition: int) -> list[LakeFile]:
        """Files of one topic partition under a prefix, in offset order."""
        files = [parse_key(key) for key in self.keys(prefix)]
        return sorted((f for f in files if f and f.topic == topic and f.partition == partition),
                      key=lambda f: (f.first_offset, f.last_offset))

    def delete(self, keys: list[str]) -> None:
        for start in range(0, len(keys), 1000):
            batch = [{"Key": key} for key in keys[start:start + 1000]]
            self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})
