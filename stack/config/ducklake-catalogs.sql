-- DuckLake catalog databases and their roles (docs/lake.md). Idempotent; run by the superuser with
-- psql -v lake_db=… -v marts_db=… -v writer=… -v writer_password=… -v reader=… -v reader_password=…
-- (stack/stack.sh natively, docker/postgres-init in compose).
--   writer: the pipeline; owns both catalogs (DuckLake creates its ducklake_* tables on first attach).
--   reader: mart readers; may connect to the marts catalog only, and only read it.
SELECT format('CREATE ROLE %I LOGIN PASSWORD %L', :'writer', :'writer_password')
 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'writer') \gexec
SELECT format('ALTER ROLE %I LOGIN PASSWORD %L', :'writer', :'writer_password') \gexec
SELECT format('CREATE ROLE %I LOGIN PASSWORD %L', :'reader', :'reader_password')
 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'reader') \gexec
SELECT format('ALTER ROLE %I LOGIN PASSWORD %L', :'reader', :'reader_password') \gexec
SELECT format('CREATE DATABASE %I OWNER %I', :'lake_db', :'writer')
 WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = :'lake_db') \gexec
SELECT format('CREATE DATABASE %I OWNER %I', :'marts_db', :'writer')
 WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = :'marts_db') \gexec
SELECT format('REVOKE ALL ON DATABASE %I FROM PUBLIC', :'lake_db') \gexec
SELECT format('REVOKE ALL ON DATABASE %I FROM PUBLIC', :'marts_db') \gexec
SELECT format('GRANT CONNECT ON DATABASE %I TO %I', :'marts_db', :'reader') \gexec
\connect :marts_db
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
SELECT format('GRANT USAGE ON SCHEMA public TO %I', :'reader') \gexec
SELECT format('GRANT SELECT ON ALL TABLES IN SCHEMA public TO %I', :'reader') \gexec
SELECT format('ALTER DEFAULT PRIVILEGES FOR ROLE %I IN SCHEMA public GRANT SELECT ON TABLES TO %I',
              :'writer', :'reader') \gexec
