"""Change data capture: the Debezium connector that streams the shop into Kafka."""
