-- Airflow's metadata database and its role, on Airflow's own PostgreSQL server (natively the airflow-db
-- cluster of stack/stack.sh; in compose the airflow-db service). Safe to repeat.
-- psql variables: airflow_user, airflow_password, airflow_db. The role is no superuser and can create no roles
-- or databases: it owns its database, which is all `airflow db migrate` needs.
SELECT format('CREATE ROLE %I LOGIN PASSWORD %L', :'airflow_user', :'airflow_password')
 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'airflow_user') \gexec
SELECT format('ALTER ROLE %I NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION PASSWORD %L',
              :'airflow_user', :'airflow_password') \gexec
SELECT format('CREATE DATABASE %I OWNER %I', :'airflow_db', :'airflow_user')
 WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = :'airflow_db') \gexec
