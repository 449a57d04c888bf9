-- Change data capture: a least-privilege Debezium role (REPLICATION + SELECT only), the pgoutput
-- publication it streams, and the REPLICA IDENTITY chosen per table.
DO $$
DECLARE
    dbz text := current_setting('tidewater.debezium_user');
    pw  text := current_setting('tidewater.debezium_password');
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = dbz) THEN
        EXECUTE format('CREATE ROLE %I LOGIN REPLICATION PASSWORD %L', dbz, pw);
    END IF;
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO %I', current_database(), dbz);
    EXECUTE format('GRANT USAGE ON SCHEMA shop TO %I', dbz);
    EXECUTE format('GRANT SELECT ON ALL TABLES IN SCHEMA shop TO %I', dbz);
    EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA shop GRANT SELECT ON TABLES TO %I', dbz);
END $$;

-- Created here, by an owner, so the Debezium role needs no CREATE privilege
-- (publication.autocreate.mode=disabled). Tables added to the schema later are published too.
CREATE PUBLICATION tidewater_shop FOR TABLES IN SCHEMA shop;

-- REPLICA IDENTITY FULL where a change's before-image matters downstream: deletes and updates of
-- customers, addresses, orders, order items and payments then carry every old column value, so the
-- lake alone tells what a delete removed. products keeps DEFAULT (before-image = key only): its long
-- TOASTed description would otherwise be written to the WAL on every price change, and the warehouse
-- rebuilds product versions from the change history anyway.
ALTER TABLE shop.customers   REPLICA IDENTITY FULL;
ALTER TABLE shop.addresses   REPLICA IDENTITY FULL;
ALTER TABLE shop.orders      REPLICA IDENTITY FULL;
ALTER TABLE shop.order_items REPLICA IDENTITY FULL;
ALTER TABLE shop.payments    REPLICA IDENTITY FULL;
ALTER TABLE shop.products    REPLICA IDENTITY DEFAULT;
