#!/bin/sh
# One-shot MinIO setup (the minio-setup service of docker compose), safe to run again:
#   - the lake bucket TIDEWATER_LAKE_BUCKET (the native stack creates the same one in stack/stack.sh);
#   - TIDEWATER_S3_PIPELINE_ACCESS_KEY: Airflow's user, read/write in the lake bucket only (policy
#     tidewater-pipeline.json): no other bucket, no bucket creation or deletion, no administration;
#   - TIDEWATER_S3_MARTS_READER_ACCESS_KEY: lists and reads marts/ only (policy tidewater-marts-reader.json).
# Runs as MinIO's root user (TIDEWATER_S3_ACCESS_KEY), which no other service is given.
set -eu
mc=${MC:-mc}
here=$(cd "$(dirname "$0")" && pwd)
policies=$(mktemp -d)
trap 'rm -rf "$policies"' EXIT

"$mc" alias set lake "http://$TIDEWATER_S3_HOST:$TIDEWATER_S3_PORT" "$TIDEWATER_S3_ACCESS_KEY" "$TIDEWATER_S3_SECRET_KEY" \
  >/dev/null
"$mc" mb --ignore-existing "lake/$TIDEWATER_LAKE_BUCKET"

# Creates (or updates) a policy from its template for a bucket (or a bucket name pattern), a user, and
# attaches the policy to the user.
user_with_policy() {
  policy=$1 template=$2 bucket=$3 access_key=$4 secret_key=$5
  for value in "$access_key" "$secret_key"; do
    case $value in -*)
      echo "[minio-setup] ERROR: the access key or secret key of policy $policy's user starts with '-', which" \
        "mc reads as an option: choose a value starting with a letter or digit" >&2
      exit 1 ;;
    esac
  done
  sed "s/\${bucket}/$bucket/g" "$here/$template.json" >"$policies/$policy.json"
  "$mc" admin policy create lake "$policy" "$policies/$policy.json" >/dev/null
  "$mc" admin user add lake "$access_key" "$secret_key" >/dev/null
  # Attaching a policy that is already attached is refused: only attach what is missing.
  if ! "$mc" admin user info lake "$access_key" --json | grep -Eq "\"policyName\": *\"([^\"]*,)?$policy[,\"]"; then
    "$mc" admin policy attach lake "$policy" --user "$access_key" >/dev/null
  fi
  echo "[minio-setup] user $access_key has policy $policy"
}

user_with_policy tidewater-pipeline tidewater-pipeline "$TIDEWATER_LAKE_BUCKET" \
  "$TIDEWATER_S3_PIPELINE_ACCESS_KEY" "$TIDEWATER_S3_PIPELINE_SECRET_KEY"
user_with_policy tidewater-marts-reader tidewater-marts-reader "$TIDEWATER_LAKE_BUCKET" \
  "$TIDEWATER_S3_MARTS_READER_ACCESS_KEY" "$TIDEWATER_S3_MARTS_READER_SECRET_KEY"
# The stack's test instance only (stack/test.env): each test's own lake bucket is one of these, with the
# same policies as the lake bucket.
if [ -n "${TIDEWATER_S3_PIPELINE_SCRATCH_BUCKETS:-}" ]; then
  user_with_policy tidewater-pipeline-scratch tidewater-pipeline "$TIDEWATER_S3_PIPELINE_SCRATCH_BUCKETS" \
    "$TIDEWATER_S3_PIPELINE_ACCESS_KEY" "$TIDEWATER_S3_PIPELINE_SECRET_KEY"
  user_with_policy tidewater-marts-reader-scratch tidewater-marts-reader "$TIDEWATER_S3_PIPELINE_SCRATCH_BUCKETS" \
    "$TIDEWATER_S3_MARTS_READER_ACCESS_KEY" "$TIDEWATER_S3_MARTS_READER_SECRET_KEY"
fi
echo "[minio-setup] bucket $TIDEWATER_LAKE_BUCKET ready"
