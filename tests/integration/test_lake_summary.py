"""`tidewater cdc lake` on a real drain: the summary names the change table, the drain's snapshot and the positions
against Kafka's high watermark."""

from __future__ import annotations

from confluent_kafka import TopicPartition

from tests.support.lake import drain_once
from tidewater import drain
from tidewater.cdc.connector import table_topic
from tidewater.drain.summary import lake_summary
from tidewater.lake import commit


def test_the_summary_shows_the_table_its_snapshot_and_the_positions_with_lag(shop_changes, lake, group_id):
    topic = table_topic(shop_changes, "orders")
    result = drain_once(shop_changes, lake, topic, group_id, file_max_rows=40)
    rows = lake.changes("orders").num_rows
    files = lake.con.execute("SELECT file_count FROM ducklake_table_info('lake') WHERE table_name = 'orders'"
                             ).fetchone()[0]
    snapshot = lake.con.execute("SELECT id FROM lake.current_snapshot()").fetchone()[0]
    position = commit.read_positions(lake.con, topic).offsets[0]
    consumer = drain.kafka_consumer(shop_changes)
    try:
        high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=30)[1]
        lines = lake_summary(lake.settings(shop_changes), lake=lake, consumer=consumer)
    finally:
        consumer.close()

    assert result.rows == rows > 0 and files > 1 and position == result.partitions[0].end
    [table] = [line for line in lines if line.split()[:1] == ["orders"]]
    assert table.split()[:6] == ["orders", str(rows), "changes", "in", str(files), "data"]
    assert "newest 20" in table and "c" in table.split("ops ")[1].split(",")[0]
    [drained] = [line for line in lines if line.strip().startswith(f"#{snapshot} ")]
    assert "orders" in drained and "drain_positions" in drained  # the files and the positions: one snapshot
    [positions] = [line for line in lines if line.strip().startswith(f"{topic}[0] ")]
    assert f"next {position:>8}" in positions and f"high watermark {high:>8}, lag {high - position}," in positions
    assert lines[-1] == "  quarantine: no accepted quarantine files"
