#!/usr/bin/env bash
# Derives the Airflow connections (AIRFLOW_CONN_*), TIDEWATER_CONNECT_URL and the OpenLineage settings
# (AIRFLOW__OPENLINEAGE__*) from the TIDEWATER_* settings with the same code the native stack uses
# (tidewater_dev.stackenv), writes the admin's password where Airflow's SimpleAuthManager reads it, then hands over
# to the official Airflow entrypoint.
set -euo pipefail
eval "$(python -m tidewater_dev.stackenv | sed 's/^/export /')"
# The executor, as stack/stack.sh's executor_env sets it natively: Redis (compose's `redis`, profile celery) as broker,
# Airflow's metadata database as result backend.
case ${TIDEWATER_AIRFLOW_EXECUTOR:-local} in
  local) export AIRFLOW__CORE__EXECUTOR=LocalExecutor ;;
  celery)
    export AIRFLOW__CORE__EXECUTOR=CeleryExecutor \
      AIRFLOW__CELERY__BROKER_URL="redis://:${TIDEWATER_REDIS_PASSWORD:?not set}@redis:6379/0" \
      AIRFLOW__CELERY__RESULT_BACKEND="db+${AIRFLOW__DATABASE__SQL_ALCHEMY_CONN:?not set}" ;;
  *) echo "TIDEWATER_AIRFLOW_EXECUTOR=$TIDEWATER_AIRFLOW_EXECUTOR: must be local or celery" >&2; exit 1 ;;
esac
if [[ -n ${AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE:-} ]]; then
  python -c 'import json, os, sys; json.dump({os.environ["TIDEWATER_AIRFLOW_ADMIN_USER"]:
             os.environ["TIDEWATER_AIRFLOW_ADMIN_PASSWORD"]}, open(sys.argv[1], "w"))' \
    "$AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"
fi
exec /entrypoint "$@"
