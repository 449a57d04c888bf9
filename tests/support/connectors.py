"""A test's own Debezium connector: removed with its replication slot and its topics."""

from __future__ import annotations

import dataclasses
import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

from tidewater.cdc import connector
from tidewater.config import Settings
from tidewater.tables import Registry


def remove_connector(settings: Settings, name: str, slot: str, topic_prefix: str, conninfo: str,
                     timeout_s: float = 60) -> None:
    """Deletes connector `name`, then its slot (in the database `conninfo` reaches, as a superuser) once the
    walsender lets go of it, then every topic whose name holds `topic_prefix`."""
    from confluent_kafka.admin import AdminClient

    from tidewater.cdc.access import admin_config

    connector.delete(settings, name)
    deadline = time.monotonic() + timeout_s
    with psycopg.connect(conninfo, autocommit=True) as conn:
        while (row := conn.execute("SELECT active FROM pg_replication_slots WHERE slot_name = %s",
                                   (slot,)).fetchone()) is not None:
            if not row[0]:
                conn.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
                continue
            if time.monotonic() > deadline:
                raise TimeoutError(f"slot {slot} still active {timeout_s:.0f} s after {name} was deleted")
            time.sleep(0.5)
    kafka = AdminClient(admin_config(os.environ))
    topics = [topic for topic in kafka.list_topics(timeout=30).topics if topic_prefix in topic]
    for future in kafka.delete_topics(topics).values() if topics else []:
        future.result()


@contextmanager
def scratch_connector(settings: Settings, tables: Registry, conninfo: str, prefix: str = "twscratch"
                      ) -> Iterator[Settings]:
    """A connector of the test's own (its name, slot and topic prefix `prefix<id>`, 1 s heartbeats) capturing
    `tables`, registered and streaming; yields its settings; removed afterwards with its slot and topics
    (`conninfo`: a superuser of its database)."""
    suffix = uuid.uuid4().hex[:8]
    own = dataclasses.replace(settings, cdc_connector=f"tw-scratch-{suffix}", cdc_slot=f"tw_scratch_{suffix}",
                              cdc_topic_prefix=f"{prefix}{suffix}", cdc_heartbeat_ms=1000)
    try:
        connector.register(own, connector.render_config(own, tables=tables))
        connector.wait_until_running(own)
        connector.wait_for_catch_up(own, conninfo=conninfo)  # streaming: later changes come as such
        yield own
    finally:
        remove_connector(settings, own.cdc_connector, own.cdc_slot, own.cdc_topic_prefix, conninfo)
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute("DELETE FROM tidewater_cdc.heartbeat WHERE slot_name = %s", (own.cdc_slot,))
