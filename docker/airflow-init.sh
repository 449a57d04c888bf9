#!/usr/bin/env bash
# One-shot Airflow setup for docker compose: what `stack/stack.sh airflow-migrate` does for the native stack
# (tests/unit/test_compose.py checks that every step there has its counterpart here).
set -euo pipefail
airflow db migrate
# DuckDB allows one writer process: every task that writes the warehouse takes this pool's one slot.
airflow pools set duckdb_warehouse 1 "DuckDB warehouse: one writer at a time"
echo "[airflow-init] database migrated, pool set"
