-- Debezium's signalling table (signal.data.collection): the pipeline inserts an `execute-snapshot` signal to
-- snapshot a table added to the registry while everything runs (`tidewater tables capture`, docs/tables.md);
-- Debezium writes its incremental snapshot's watermarks into it. In the publication, so the signals reach
-- Debezium through the slot; beside the heartbeat, outside the shop schema.
DO $$
DECLARE
    dbz text := current_setting('tidewater.debezium_user');
    app text := current_setting('tidewater.shop_user');
BEGIN
    CREATE TABLE IF NOT EXISTS tidewater_cdc.signals (
        id varchar(64) PRIMARY KEY,
        type varchar(32) NOT NULL,
        data varchar(2048)
    );
    REVOKE ALL ON tidewater_cdc.signals FROM PUBLIC;
    EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON tidewater_cdc.signals TO %I', dbz);
    EXECUTE format('GRANT USAGE ON SCHEMA tidewater_cdc TO %I', app);
    EXECUTE format('GRANT INSERT ON tidewater_cdc.signals TO %I', app);
END $$;

ALTER PUBLICATION tidewater_shop ADD TABLE tidewater_cdc.signals;
