from __future__ import annotations

import dataclasses

import psycopg
import pytest

from tidewater_shop import migrate


def test_migrations_apply_in_order_once(settings, scratch_db):
    first = migrate.apply(scratch_db, settings.migration_settings())
    second = migrate.apply(scratch_db, settings.migration_settings())

    assert [m.version for m in first] == sorted(m.version for m in migrate.discover())
    assert second == []
    with psycopg.connect(scratch_db) as conn:
        tables = {row[0] for row in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'shop'")}
        published = {row[0] for row in conn.execute(
            "SELECT schemaname || '.' || tablename FROM pg_publication_tables WHERE pubname = 'tidewater_shop'")}
    assert tables == {"customers", "addresses", "products", "orders", "order_items", "payments"}
    # Every shop table, Debezium's heartbeat table (so its writes move the slot: docs/alerts.md) and its signals.
    assert published == {f"shop.{table}" for table in tables} | {"tidewater_cdc.heartbeat", "tidewater_cdc.signals"}


def test_a_migration_edited_after_it_was_applied_is_refused(settings, scratch_db):
    migrate.apply(scratch_db, settings.migration_settings())
    first, *rest = migrate.discover()
    edited = dataclasses.replace(first, sql=first.sql + "\n-- edited\n")

    with pytest.raises(migrate.MigrationError, match="changed after it was applied"):
        migrate.apply(scratch_db, settings.migration_settings(), [edited, *rest])


def test_debezium_role_has_replication_and_select_only(shop):
    with psycopg.connect(shop.shop_conninfo(admin=True)) as conn:
        role = conn.execute(
            "SELECT rolreplication, rolsuper, rolcreatedb, rolcreaterole FROM pg_roles WHERE rolname = %s",
            (shop.debezium_user,),
        ).fetchone()
        privileges = {row[0] for row in conn.execute(
            "SELECT DISTINCT privilege_type FROM information_schema.role_table_grants "
            "WHERE grantee = %s AND table_schema = 'shop'", (shop.debezium_user,))}
    assert role == (True, False, False, False)
    assert privileges == {"SELECT"}


def test_only_debezium_writes_its_heartbeat_row(shop):
    import psycopg.errors

    debezium = psycopg.conninfo.make_conninfo(shop.shop_conninfo(admin=True), user=shop.debezium_user,
                                              password=shop.debezium_password)
    with psycopg.connect(debezium) as conn:
        conn.execute("INSERT INTO tidewater_cdc.heartbeat (slot_name) VALUES ('test-heartbeat') "
                     "ON CONFLICT (slot_name) DO UPDATE SET beat_at = excluded.beat_at")
        conn.rollback()
    with psycopg.connect(shop.shop_conninfo()) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute("INSERT INTO tidewater_cdc.heartbeat (slot_name) VALUES ('test-heartbeat')")
