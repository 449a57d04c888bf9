"""Who may do what on Kafka: a SCRAM user and ACLs per client, set by Kafka's admin (safe to repeat).

Every listener wants SASL. The admin (the broker itself, and this set-up) logs in with PLAIN, declared in the
broker's own configuration; every other client with SCRAM-SHA-512, whose credentials ``apply`` upserts (so a
changed password takes effect at the next run). The broker's StandardAuthorizer then allows each client its
ACLs and nothing else (no ACL, no access):

- ``debezium`` (Kafka Connect and the connector): everything on the change topics (``<prefix>.``), the heartbeat
  topic and Connect's internal topics (``_connect-``), and Connect's group; it creates the topics it writes.
- ``pipeline`` (the drain, the alerts, ``tidewater cdc peek``): read and describe every topic but Connect's internal
  ones (their configs hold the Debezium password), any consumer group; it writes no topic.
- ``reader`` (Kafka UI in compose): describe the cluster, every group and topic, read every topic but Connect's.

  python -m tidewater.cdc.cli kafka-access     (`make stack-up` and compose's kafka-setup run it)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

SCRAM = "SCRAM-SHA-512"
SCRAM_ITERATIONS = 8192
CONNECT_INTERNAL_PREFIX = "_connect-"


class AccessError(RuntimeError):
    pass


def _need(env: Mapping[str, str], key: str) -> str:
    value = env.get(key)
    if not value:
        raise AccessError(f"{key} is not set: the native stack generates it into .stack/secrets (make stack-up); "
                          "compose: python3 stack/envfile.py secrets .env")
    if '"' in value or "\\" in value:
        raise AccessError(f"{key}: a Kafka user or password may hold neither '\"' nor '\\' (JAAS quoting)")
    return value


@dataclass(frozen=True)
class Principal:
    """A SCRAM user: the variable names of its user and password."""

    user_key: str
    password_key: str


DEBEZIUM = Principal("TIDEWATER_KAFKA_DEBEZIUM_USER", "TIDEWATER_KAFKA_DEBEZIUM_PASSWORD")
PIPELINE = Principal("TIDEWATER_KAFKA_PIPELINE_USER", "TIDEWATER_KAFKA_PIPELINE_PASSWORD")
READER = Principal("TIDEWATER_KAFKA_READER_USER", "TIDEWATER_KAFKA_READER_PASSWORD")
PRINCIPALS = (DEBEZIUM, PIPELINE, READER)


def client_config(env: Mapping[str, str], principal: Principal) -> dict[str, str]:
    """librdkafka settings that log in as `principal` (what connection kafka_default's extras hold)."""
    return {"security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": SCRAM,
            "sasl.username": _need(env, principal.user_key), "sasl.password": _need(env, principal.password_key)}


def admin_config(env: Mapping[str, str]) -> dict[str, str]:
    """librdkafka settings of Kafka's admin (PLAIN; set-up and tests alone), for TIDEWATER_KAFKA_HOST/_PORT."""
    return {"bootstrap.servers": f"{_need(env, 'TIDEWATER_KAFKA_HOST')}:{_need(env, 'TIDEWATER_KAFKA_PORT')}",
            "security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "PLAIN",
            "sasl.username": _need(env, "TIDEWATER_KAFKA_ADMIN_USER"),
            "sasl.password": _need(env, "TIDEWATER_KAFKA_ADMIN_PASSWORD")}


def acl_bindings(env: Mapping[str, str]) -> list[Any]:
    """Every client's ACLs (the module docstring says what each may do)."""
    from confluent_kafka.admin import AclBinding, AclOperation, AclPermissionType, ResourcePatternType, ResourceType

    allow, deny = AclPermissionType.ALLOW, AclPermissionType.DENY
    prefixed, literal = ResourcePatternType.PREFIXED, ResourcePatternType.LITERAL
    topic, group, cluster = ResourceType.TOPIC, ResourceType.GROUP, ResourceType.BROKER
    ops = AclOperation

    def user(principal: Principal) -> str:
        return f"User:{_need(env, principal.user_key)}"

    def bind(principal: Principal, kind: Any, name: str, pattern: Any, operation: Any,
             permission: Any = allow) -> Any:
        return AclBinding(kind, name, pattern, user(principal), "*", operation, permission)

    # The test instance's own connectors write under other prefixes too (TIDEWATER_KAFKA_SCRATCH_TOPIC_PREFIXES).
    prefix = _need(env, "TIDEWATER_CDC_TOPIC_PREFIX")
    scratch = [name for name in env.get("TIDEWATER_KAFKA_SCRATCH_TOPIC_PREFIXES", "").split(",") if name]
    written = [f"{prefix}.", f"__debezium-heartbeat.{prefix}", CONNECT_INTERNAL_PREFIX]
    written += [name for start in scratch for name in (start, f"__debezium-heartbeat.{start}")]
    debezium = [bind(DEBEZIUM, topic, name, prefixed, ops.ALL) for name in written]
    debezium += [bind(DEBEZIUM, group, "tidewater-connect", literal, ops.ALL),
                 bind(DEBEZIUM, cluster, "kafka-cluster", literal, ops.DESCRIBE),
                 bind(DEBEZIUM, cluster, "kafka-cluster", literal, ops.DESCRIBE_CONFIGS)]
    pipeline = [bind(PIPELINE, topic, "*", literal, operation) for operation in (ops.READ, ops.DESCRIBE)]
    pipeline += [bind(PIPELINE, group, "*", literal, operation) for operation in (ops.READ, ops.DESCRIBE)]
    reader = [bind(READER, topic, "*", literal, operation)
              for operation in (ops.READ, ops.DESCRIBE, ops.DESCRIBE_CONFIGS)]
    reader += [bind(READER, group, "*", literal, ops.DESCRIBE),
               bind(READER, cluster, "kafka-cluster", literal, ops.DESCRIBE),
               bind(READER, cluster, "kafka-cluster", literal, ops.DESCRIBE_CONFIGS)]
    # DENY wins over ALLOW: no reader of every topic reads Connect's configs (the Debezium password) or offsets.
    hidden = [bind(principal, topic, CONNECT_INTERNAL_PREFIX, prefixed, operation, deny)
              for principal in (PIPELINE, READER) for operation in (ops.READ, ops.DESCRIBE)]
    return debezium + pipeline + reader + hidden


def apply(env: Mapping[str, str], timeout_s: float = 30) -> list[str]:
    """Upserts every client's SCRAM credential and creates its ACLs, as the admin; returns the users set."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient, ScramCredentialInfo, ScramMechanism, UserScramCredentialUpsertion

    admin = AdminClient(admin_config(env))
    users = [_need(env, principal.user_key) for principal in PRINCIPALS]
    upserts = [UserScramCredentialUpsertion(name, ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512,
                                                                      SCRAM_ITERATIONS),
                                            _need(env, principal.password_key).encode())
               for name, principal in zip(users, PRINCIPALS, strict=True)]
    try:
        for future in admin.alter_user_scram_credentials(upserts, request_timeout=timeout_s).values():
            future.result()
        for future in admin.create_acls(acl_bindings(env), request_timeout=timeout_s).values():
            future.result()
    except KafkaException as exc:
        raise AccessError(f"setting Kafka's users and ACLs as {env.get('TIDEWATER_KAFKA_ADMIN_USER')!r} failed at "
                          f"{admin_config(env)['bootstrap.servers']}: {exc.args[0]}") from exc
    return users
