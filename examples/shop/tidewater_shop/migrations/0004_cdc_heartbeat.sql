-- Replication slot safety: a heartbeat row Debezium itself writes (its heartbeat.action.query, every
-- heartbeat.interval.ms). The slot only advances when Debezium confirms a change of this database, so
-- while the shop is quiet and other databases on the server (Airflow's) write WAL, the slot would hold
-- that WAL back without bound; the heartbeat's own change moves it.
--
-- Outside the shop schema: the connector captures schema shop only (no topic, nothing drained), the
-- application role cannot see it, and only the Debezium role may write it. It is in the tidewater_shop
-- publication, so pgoutput streams its changes to the slot (a transaction touching no published table
-- is not sent at all, and would move nothing).
DO $$
DECLARE
    dbz text := current_setting('tidewater.debezium_user');
BEGIN
    CREATE SCHEMA IF NOT EXISTS tidewater_cdc;
    CREATE TABLE IF NOT EXISTS tidewater_cdc.heartbeat (
        slot_name text PRIMARY KEY,  -- one row per connector, keyed by its replication slot
        beat_at timestamptz NOT NULL DEFAULT now()
    );
    REVOKE ALL ON SCHEMA tidewater_cdc FROM PUBLIC;
    REVOKE ALL ON tidewater_cdc.heartbeat FROM PUBLIC;
    EXECUTE format('GRANT USAGE ON SCHEMA tidewater_cdc TO %I', dbz);
    -- SELECT because the action is an upsert (ON CONFLICT reads the key).
    EXECUTE format('GRANT SELECT, INSERT, UPDATE ON tidewater_cdc.heartbeat TO %I', dbz);
END $$;

ALTER PUBLICATION tidewater_shop ADD TABLE tidewater_cdc.heartbeat;
