#!/usr/bin/env bash
# Derives the Airflow connections from the TIDEWATER_* settings (the same code the native stack
# uses), then hands over to the official Airflow entrypoint.
set -euo pipefail
eval "$(python -m tidewater.stackenv | sed 's/^/export /')"
exec /entrypoint "$@"
