#!/usr/bin/env bash
# Derives the Airflow connections (AIRFLOW_CONN_*), TIDEWATER_CONNECT_URL and the OpenLineage settings
# (AIRFLOW__OPENLINEAGE__*) from the TIDEWATER_* settings with the same code the native stack uses
# (tidewater_dev.stackenv), writes the admin's password where Airflow's SimpleAuthManager reads it, then hands over
# to the official Airflow entrypoint.
set -euo pipefail
eval "$(python -m tidewater_dev.stackenv | sed 's/^/export /')"
if [[ -n ${AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE:-} ]]; then
  python -c 'import json, os, sys; json.dump({os.environ["TIDEWATER_AIRFLOW_ADMIN_USER"]:
             os.environ["TIDEWATER_AIRFLOW_ADMIN_PASSWORD"]}, open(sys.argv[1], "w"))' \
    "$AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"
fi
exec /entrypoint "$@"
