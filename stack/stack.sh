#!/usr/bin/env bash
# The Tidewater native stack: the services of docker-compose.yaml, run as local processes on 127.0.0.1.
#
#   stack/stack.sh up       install what is missing, start every service, wait until each answers
#   stack/stack.sh down     stop every service (data stays in .stack/)
#   stack/stack.sh status   one line per service: running/healthy or not
#   stack/stack.sh airflow-up | airflow-down | airflow-status | airflow-migrate
#                           airflow-up runs TIDEWATER_AIRFLOW_EXECUTOR's executor (local, or celery: Redis and
#                           TIDEWATER_CELERY_WORKERS `airflow celery worker` processes; docs/executors.md)
#   stack/stack.sh notebook-up | notebook-down | notebook-status   JupyterLab on the published marts (read-only)
#   stack/stack.sh proxy-up | proxy-down   the mail view and one address for every web UI (Caddy; `make up`)
#
# Everything the stack stores lives in .stack/ (git-ignored); heavy downloads and builds (Maven
# repository, Go module and build caches, the MinIO binary) live in user-level caches so a fresh
# clone reuses them. Settings come from stack/defaults.env; exported variables override them.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STACK=${TIDEWATER_STACK_DIR:-$ROOT/.stack}
CACHE=${TIDEWATER_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/tidewater}
PY=${TIDEWATER_PYTHON:-$ROOT/.venv/bin/python}
AIRFLOW_BIN=$(dirname "$PY")/airflow
NOTEBOOK_VENV=$ROOT/.venv-notebook  # the notebooks' own virtualenv (make notebook-install: notebooks/requirements.txt)

MINIO_MODULE=github.com/minio/minio
MINIO_VERSION=v0.0.0-20260212201848-7aac2a2c5b7c
# The MinIO client: docker/minio/setup.sh creates the lake bucket, the users and their policies with it.
MC_MODULE=github.com/minio/mc
MC_VERSION=v0.0.0-20250313080218-cf909e1063a9
PG_BIN=/usr/lib/postgresql/15/bin
JAVA_OPTS_BASE="-Xms128m -Xmx768m -XX:+UseG1GC -Djava.awt.headless=true"

SERVICES=(postgres airflow-db kafka connect minio smtp)
AIRFLOW_COMPONENTS=(api-server scheduler dag-processor triggerer)
# Started with the celery executor only (TIDEWATER_AIRFLOW_EXECUTOR): the Celery broker.
CELERY_SERVICES=(redis)
# Started by proxy-up (`make up`), not by up: the web UIs' one address and the native mail view.
PROXY_SERVICES=(mail-ui proxy)

# ---------------------------------------------------------------------------------------------
# settings

say() { printf '[stack] %s\n' "$*"; }
die() { printf '[stack] ERROR: %s\n' "$*" >&2; exit 1; }

# Exports every KEY=value of a settings file that the environment does not set already (first one wins).
load_settings() {
  local key value
  while IFS='=' read -r key value; do
    [[ $key =~ ^[A-Z][A-Z0-9_]*$ ]] || continue
    [[ -n ${!key+set} ]] || export "$key=$value"
  done <"$1"
}
# TIDEWATER_STACK_PROFILE: a file of settings read before the defaults (stack/test.env: the test instance).
[[ -z ${TIDEWATER_STACK_PROFILE:-} ]] || load_settings "$ROOT/${TIDEWATER_STACK_PROFILE#"$ROOT/"}"
load_settings "$ROOT/stack/defaults.env"

LOGS=$STACK/logs
RUN=$STACK/run
mkdir -p "$LOGS" "$RUN"

# Secrets: generated once per installation into $STACK/secrets (mode 0600, stack/envfile.py), never committed.
# An exported variable wins over the file, as for every setting.
SECRETS_FILE=$STACK/secrets
ensure_secrets() {
  if [[ ! -f $SECRETS_FILE && -f $STACK/postgres/data/PG_VERSION ]]; then
    die "$STACK was created before generated secrets (with the public default passwords): stop it and delete it (make clean), then make stack-up"
  fi
  local added; added=$("$PY" "$ROOT/stack/envfile.py" secrets "$SECRETS_FILE" 2>&1) || die "$added"
  [[ $added == *TIDEWATER_AIRFLOW_ADMIN_PASSWORD* ]] && FIRST_LOGIN=1
  return 0
}
load_secrets() {
  [[ ! -f $SECRETS_FILE ]] || eval "$("$PY" "$ROOT/stack/envfile.py" exports "$SECRETS_FILE")"
}
FIRST_LOGIN=
load_secrets

# ---------------------------------------------------------------------------------------------
# prerequisites (a fresh machine installs what it lacks)

apt_updated=
apt_install() {
  [[ $(id -u) == 0 ]] || die "missing $* and not root: install it with apt-get install $*"
  if [[ -z $apt_updated ]]; then
    say "apt-get update"; apt-get update -qq >"$LOGS/apt.log" 2>&1; apt_updated=1
  fi
  say "apt-get install $*"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >>"$LOGS/apt.log" 2>&1 \
    || die "apt-get install $* failed: see $LOGS/apt.log"
}

ensure_tools() {
  [[ -x $PG_BIN/postgres ]] || apt_install postgresql-15
  command -v java >/dev/null || apt_install openjdk-17-jre-headless
  command -v mvn >/dev/null || apt_install maven
  command -v curl >/dev/null || apt_install curl
  # One address for every UI (`stack/stack.sh proxy-up`, docs/operating.md).
  command -v caddy >/dev/null || apt_install caddy
  # The Celery broker (docs/executors.md). Debian's package enables a system-wide redis-server service; this stack
  # never uses it and runs its own (start_redis).
  [[ $TIDEWATER_AIRFLOW_EXECUTOR != celery ]] || command -v redis-server >/dev/null || apt_install redis-server
  # The test instance's page tests drive a real browser (tests/support/browser.py).
  [[ ${TIDEWATER_STACK_BROWSER:-0} != 1 ]] || command -v chromium >/dev/null || apt_install chromium
  # Debian's Go is older than MinIO needs; GOTOOLCHAIN=auto fetches the right toolchain from the
  # Go module proxy.
  command -v go >/dev/null || [[ -x $CACHE/bin/minio-$MINIO_VERSION && -x $CACHE/bin/mc-$MC_VERSION ]] \
    || apt_install golang-go
}

# Copies the jars a pom resolves into DEST, only when the pom changed since the last copy.
maven_copy() {
  local pom_dir=$1 dest=$2; shift 2
  local stamp; stamp=$(sha256sum "$pom_dir/pom.xml" | cut -c1-16)
  [[ -f $dest/.stamp && $(cat "$dest/.stamp") == "$stamp" ]] && return 0
  say "resolving $(basename "$pom_dir") jars from Maven Central (cached in ~/.m2)"
  rm -rf "$dest"; mkdir -p "$dest"
  (cd "$pom_dir" && mvn -q -B dependency:copy-dependencies -DincludeScope=runtime \
      -DoutputDirectory="$dest" "$@") >"$LOGS/maven.log" 2>&1 \
    || die "maven could not resolve $pom_dir/pom.xml: see $LOGS/maven.log"
  echo "$stamp" >"$dest/.stamp"
}

# Builds a Go module's command once into $CACHE/bin/NAME-VERSION (go install; GOTOOLCHAIN=auto fetches the Go
# toolchain the module needs from the Go module proxy).
go_binary() {
  local name=$1 module=$2 version=$3 gobin
  [[ -x $CACHE/bin/$name-$version ]] && return 0
  say "building $name $version with go install (once; cached in $CACHE/bin)"
  gobin=$(mktemp -d)
  GOTOOLCHAIN=${GOTOOLCHAIN:-auto} GOBIN=$gobin go install "$module@$version" \
    >"$LOGS/$name-build.log" 2>&1 || die "go install $module failed: see $LOGS/$name-build.log"
  mkdir -p "$CACHE/bin"; mv "$gobin/$name" "$CACHE/bin/$name-$version"; rmdir "$gobin"
}

ensure_artifacts() {
  ensure_tools
  maven_copy "$ROOT/stack/maven/kafka" "$STACK/lib/kafka"
  # Connect supplies its own API, client and logging classes to plugins: keep them out.
  maven_copy "$ROOT/stack/maven/debezium" "$STACK/connect-plugins/debezium-postgres" \
    -DexcludeGroupIds=org.apache.kafka,org.slf4j
  go_binary minio "$MINIO_MODULE" "$MINIO_VERSION"
  go_binary mc "$MC_MODULE" "$MC_VERSION"
}

# ---------------------------------------------------------------------------------------------
# process helpers

pid_of() { [[ -f $RUN/$1.pid ]] && cat "$RUN/$1.pid"; }
is_running() { local pid; pid=$(pid_of "$1") && [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; }

# Starts a command in its own session so `down` can stop it with its children.
spawn() {
  local name=$1; shift
  is_running "$name" && return 0
  printf '\n==== %s start %s\n' "$name" "$(date -Is)" >>"$LOGS/$name.log"
  setsid "$@" >>"$LOGS/$name.log" 2>&1 </dev/null &
  echo $! >"$RUN/$name.pid"
}

terminate() {
  local name=$1 pid; pid=$(pid_of "$name") || return 0
  if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -KILL -- "-$pid" 2>/dev/null || true
    say "stopped $name"
  fi
  rm -f "$RUN/$name.pid"
}

# Waits until `health_<name>` succeeds; on timeout names the service and shows its log tail.
await() {
  local name=$1 timeout=${2:-120} fn=${3:-health_$1}
  local deadline=$((SECONDS + timeout))
  until "$fn" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)) || { [[ $fn == health_* && -f $RUN/$name.pid ]] && ! is_running "$name"; }; then
      printf '[stack] FAILED: %s did not become healthy within %ss. Last lines of %s:\n' \
        "$name" "$timeout" "$LOGS/$name.log" >&2
      tail -n 25 "$LOGS/$name.log" >&2 || true
      exit 1
    fi
    sleep 1
  done
  say "$name is healthy"
}

tcp_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

# Before starting NAME on HOST: the port in each named VARIABLE must be free, or the error names the variable.
claim_ports() {
  local name=$1 host=$2 variable; shift 2
  is_running "$name" && return 0
  for variable in "$@"; do
    tcp_open "$host" "${!variable}" \
      && die "port ${!variable} is taken by another process (not this stack's $name): stop it, or set $variable to a free port"
  done
  return 0
}

# ---------------------------------------------------------------------------------------------
# PostgreSQL 15: two clusters, as compose has two servers. `postgres` holds the shop (wal_level=logical), its
# roles and the DuckLake catalogs; `airflow-db` holds Airflow's metadata alone, in its own data directory on its
# own port, so no role of the shop's server (Debezium's replication role included) can read or decode it.

pg_run() { if [[ $(id -u) == 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi; }
# psql on PORT as USER with PASSWORD (then psql's own arguments); psql_admin: the shop server's superuser,
# psql_airflow: Airflow's role on its own server.
psql_as() {
  local port=$1 user=$2 password=$3; shift 3
  PGPASSWORD=$password "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$TIDEWATER_PG_HOST" -p "$port" -U "$user" "$@"
}
psql_admin() { psql_as "$TIDEWATER_PG_PORT" "$TIDEWATER_PG_SUPERUSER" "$TIDEWATER_PG_SUPERUSER_PASSWORD" "$@"; }
psql_airflow() {
  psql_as "$TIDEWATER_AIRFLOW_DB_PORT" "$TIDEWATER_AIRFLOW_DB_USER" "$TIDEWATER_AIRFLOW_DB_PASSWORD" \
    -d "$TIDEWATER_AIRFLOW_DB" "$@"
}

# Initialises cluster NAME in $STACK/NAME/data once: superuser TIDEWATER_PG_SUPERUSER with password PASSWORD
# (scram-sha-256 for every connection), listening on the port in variable PORT_VAR, plus the postgresql.conf
# lines read from stdin.
init_pg_cluster() {
  local name=$1 port_var=$2 password=$3 data=$STACK/$1/data extra; extra=$(cat)
  [[ -f $data/PG_VERSION ]] && return 0
  say "initialising PostgreSQL ($name) in $data"
  mkdir -p "$data" "$STACK/$name/socket"
  local pwfile; pwfile=$(mktemp); echo "$password" >"$pwfile"
  if [[ $(id -u) == 0 ]]; then chown -R postgres: "$STACK/$name" "$pwfile"; fi
  pg_run "$PG_BIN/initdb" -D "$data" -U "$TIDEWATER_PG_SUPERUSER" --pwfile="$pwfile" \
    --auth=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 >"$LOGS/$name-init.log" 2>&1 \
    || die "initdb failed: see $LOGS/$name-init.log"
  rm -f "$pwfile"
  pg_run tee -a "$data/postgresql.conf" >/dev/null <<EOF
# tidewater
listen_addresses = '$TIDEWATER_PG_HOST'
port = ${!port_var}
unix_socket_directories = '$STACK/$name/socket'
fsync = on
timezone = 'UTC'
$extra
EOF
}

# Starts cluster NAME (or reloads its configuration when it runs).
run_pg_cluster() {
  local name=$1 port_var=$2 data=$STACK/$1/data
  touch "$LOGS/$name.log"
  [[ $(id -u) == 0 ]] && chown postgres: "$LOGS/$name.log"
  if ! pg_run "$PG_BIN/pg_ctl" -D "$data" status >/dev/null 2>&1; then
    claim_ports "$name" "$TIDEWATER_PG_HOST" "$port_var"
    pg_run "$PG_BIN/pg_ctl" -D "$data" -l "$LOGS/$name.log" -w -t 60 start >/dev/null \
      || { tail -n 25 "$LOGS/$name.log" >&2; die "PostgreSQL ($name) failed to start: see $LOGS/$name.log"; }
  else
    pg_run "$PG_BIN/pg_ctl" -D "$data" reload >/dev/null
  fi
  head -1 "$data/postmaster.pid" >"$RUN/$name.pid"
}

stop_pg_cluster() {
  local name=$1 data=$STACK/$1/data
  if [[ -f $data/postmaster.pid ]]; then
    pg_run "$PG_BIN/pg_ctl" -D "$data" -m fast -w stop >/dev/null && say "stopped $name"
  fi
  rm -f "$RUN/$name.pid"
}

start_postgres() {
  init_pg_cluster postgres TIDEWATER_PG_PORT "$TIDEWATER_PG_SUPERUSER_PASSWORD" <<EOF
wal_level = logical
max_wal_senders = 10
max_replication_slots = 10
max_connections = 200
shared_buffers = 256MB
EOF
  # Settings that follow stack/defaults.env at every `up` (the block above is written once, at initdb):
  # tidewater.conf, included by postgresql.conf. max_slot_wal_keep_size: a replication slot whose client stops
  # (a failed Debezium task) holds back at most this much WAL, then PostgreSQL invalidates it (wal_status
  # 'lost') instead of filling the disk; freshness_monitor mails long before (TIDEWATER_MAX_SLOT_LAG_BYTES).
  local data=$STACK/postgres/data
  grep -q "^include_if_exists = 'tidewater.conf'" "$data/postgresql.conf" \
    || echo "include_if_exists = 'tidewater.conf'" | pg_run tee -a "$data/postgresql.conf" >/dev/null
  echo "max_slot_wal_keep_size = '$TIDEWATER_PG_MAX_SLOT_WAL_KEEP_SIZE'" | pg_run tee "$data/tidewater.conf" >/dev/null
  run_pg_cluster postgres TIDEWATER_PG_PORT
}
health_postgres() { "$PG_BIN/pg_isready" -q -h "$TIDEWATER_PG_HOST" -p "$TIDEWATER_PG_PORT"; }
stop_postgres() { stop_pg_cluster postgres; }

start_airflow-db() {
  init_pg_cluster airflow-db TIDEWATER_AIRFLOW_DB_PORT "$TIDEWATER_AIRFLOW_DB_SUPERUSER_PASSWORD" <<EOF
max_connections = 200
EOF
  run_pg_cluster airflow-db TIDEWATER_AIRFLOW_DB_PORT
}
health_airflow-db() { "$PG_BIN/pg_isready" -q -h "$TIDEWATER_PG_HOST" -p "$TIDEWATER_AIRFLOW_DB_PORT"; }
stop_airflow-db() { stop_pg_cluster airflow-db; }

# Airflow's role and database (stack/config/airflow-db.sql, the same file compose's airflow-db runs).
bootstrap_airflow_db() {
  psql_as "$TIDEWATER_AIRFLOW_DB_PORT" "$TIDEWATER_PG_SUPERUSER" "$TIDEWATER_AIRFLOW_DB_SUPERUSER_PASSWORD" \
    -d postgres -f "$ROOT/stack/config/airflow-db.sql" \
    -v airflow_user="$TIDEWATER_AIRFLOW_DB_USER" -v airflow_password="$TIDEWATER_AIRFLOW_DB_PASSWORD" \
    -v airflow_db="$TIDEWATER_AIRFLOW_DB" >/dev/null
  move_airflow_metadata
}

# Installations from before Airflow had its own server kept its metadata in the shop's: moved once into the
# new, still empty database (pg_dump | psql as Airflow's role), then that database and role are dropped from
# the shop's server. Airflow must be stopped (the drop fails while it is connected).
move_airflow_metadata() {
  local old new
  old=$(psql_admin -d postgres -tA -v db="$TIDEWATER_AIRFLOW_DB" <<'EOF'
SELECT count(*) FROM pg_database WHERE datname = :'db'
EOF
  )
  [[ $old == 1 ]] || return 0
  new=$(psql_airflow -tA -c "SELECT to_regclass('public.alembic_version') IS NOT NULL")
  if [[ $new == f ]]; then
    say "moving Airflow's metadata from the shop's server (port $TIDEWATER_PG_PORT) to its own (port $TIDEWATER_AIRFLOW_DB_PORT)"
    PGPASSWORD=$TIDEWATER_PG_SUPERUSER_PASSWORD "$PG_BIN/pg_dump" -h "$TIDEWATER_PG_HOST" -p "$TIDEWATER_PG_PORT" \
      -U "$TIDEWATER_PG_SUPERUSER" --no-owner --no-privileges -d "$TIDEWATER_AIRFLOW_DB" 2>>"$LOGS/airflow-db-move.log" \
      | psql_airflow >>"$LOGS/airflow-db-move.log" 2>&1 \
      || die "moving Airflow's metadata failed (the shop's server still has it): see $LOGS/airflow-db-move.log"
  fi
  psql_admin -d postgres -v db="$TIDEWATER_AIRFLOW_DB" -v role="$TIDEWATER_AIRFLOW_DB_USER" <<'EOF' \
    || die "could not drop the old Airflow database from the shop's server: stop Airflow (make airflow-down), then make stack-up"
SELECT format('DROP DATABASE %I', :'db') \gexec
SELECT format('DROP ROLE %I', :'role') WHERE EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'role') \gexec
EOF
  say "Airflow's metadata now lives on its own server; the shop's server has no Airflow database or role"
}

# The shop's database (its roles come from its migrations) and the DuckLake catalogs with their roles. Idempotent.
# Values reach SQL as psql variables (:'name' is psql's own literal quoting), never pasted into the text.
bootstrap_postgres() {
  psql_admin -d postgres -v shop_db="$TIDEWATER_SHOP_DB" <<'EOF'
SELECT format('CREATE DATABASE %I', :'shop_db')
 WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = :'shop_db') \gexec
EOF
  psql_admin -d postgres -v ON_ERROR_STOP=1 -f "$ROOT/stack/config/ducklake-catalogs.sql" \
    -v lake_db="$TIDEWATER_LAKE_CATALOG_DB" -v marts_db="$TIDEWATER_MARTS_CATALOG_DB" \
    -v writer="$TIDEWATER_LAKE_CATALOG_USER" -v writer_password="$TIDEWATER_LAKE_CATALOG_PASSWORD" \
    -v reader="$TIDEWATER_MARTS_READER_USER" -v reader_password="$TIDEWATER_MARTS_READER_PASSWORD" >/dev/null
}

# ---------------------------------------------------------------------------------------------
# Kafka 4 (KRaft: one process is broker and controller)

kafka_java() {
  java $JAVA_OPTS_BASE -Dlog4j2.configurationFile="$ROOT/stack/config/log4j2.properties" \
    -cp "$STACK/lib/kafka/*" "$@"
}

# Every listener wants SASL: the admin (the broker itself, `tidewater-cdc kafka-access`, tests) logs in with PLAIN
# as declared here; every other client with SCRAM-SHA-512 (users and ACLs: tidewater.cdc.access). The file holds
# the admin's password: readable by this user only.
start_kafka() {
  local dir=$STACK/kafka
  local plain="org.apache.kafka.common.security.plain.PlainLoginModule required username=\"$TIDEWATER_KAFKA_ADMIN_USER\" password=\"$TIDEWATER_KAFKA_ADMIN_PASSWORD\" user_$TIDEWATER_KAFKA_ADMIN_USER=\"$TIDEWATER_KAFKA_ADMIN_PASSWORD\";"
  mkdir -p "$dir/data"
  (umask 077; cat >"$dir/server.properties" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=$TIDEWATER_KAFKA_HOST:$TIDEWATER_KAFKA_CONTROLLER_PORT
listeners=CLIENTS://$TIDEWATER_KAFKA_HOST:$TIDEWATER_KAFKA_PORT,CONTROLLER://$TIDEWATER_KAFKA_HOST:$TIDEWATER_KAFKA_CONTROLLER_PORT
advertised.listeners=CLIENTS://$TIDEWATER_KAFKA_HOST:$TIDEWATER_KAFKA_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=CLIENTS
listener.security.protocol.map=CONTROLLER:SASL_PLAINTEXT,CLIENTS:SASL_PLAINTEXT
sasl.enabled.mechanisms=SCRAM-SHA-512,PLAIN
sasl.mechanism.inter.broker.protocol=PLAIN
sasl.mechanism.controller.protocol=PLAIN
listener.name.controller.sasl.enabled.mechanisms=PLAIN
listener.name.controller.plain.sasl.jaas.config=$plain
listener.name.clients.plain.sasl.jaas.config=$plain
listener.name.clients.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
super.users=User:$TIDEWATER_KAFKA_ADMIN_USER
log.dirs=$dir/data
num.partitions=1
auto.create.topics.enable=true
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
log.retention.hours=168
EOF
  )
  if [[ ! -f $dir/data/meta.properties ]]; then
    local cluster_id; cluster_id=$(kafka_java kafka.tools.StorageTool random-uuid 2>>"$LOGS/kafka.log")
    kafka_java kafka.tools.StorageTool format --standalone -t "$cluster_id" \
      -c "$dir/server.properties" >>"$LOGS/kafka.log" 2>&1 \
      || die "formatting Kafka storage failed: see $LOGS/kafka.log"
  fi
  claim_ports kafka "$TIDEWATER_KAFKA_HOST" TIDEWATER_KAFKA_PORT TIDEWATER_KAFKA_CONTROLLER_PORT
  spawn kafka java $JAVA_OPTS_BASE -Dlog4j2.configurationFile="$ROOT/stack/config/log4j2.properties" \
    -cp "$STACK/lib/kafka/*" kafka.Kafka "$dir/server.properties"
}
health_kafka() {
  "$PY" -c 'import os
from confluent_kafka.admin import AdminClient
from tidewater.cdc.access import admin_config
AdminClient(admin_config(os.environ)).list_topics(timeout=3)'
}
# Every client's SCRAM user and ACLs (before Connect starts: it logs in as its own user).
kafka_access() {
  "$PY" -m tidewater.cdc.cli kafka-access >>"$LOGS/kafka.log" 2>&1 \
    || { tail -n 5 "$LOGS/kafka.log" >&2; die "setting Kafka's users and ACLs failed: see $LOGS/kafka.log"; }
  say "kafka users and ACLs set"
}

# ---------------------------------------------------------------------------------------------
# Kafka Connect (distributed mode, one worker) with the Debezium PostgreSQL plugin

start_connect() {
  local dir=$STACK/connect
  mkdir -p "$dir"
  local scram="org.apache.kafka.common.security.scram.ScramLoginModule required username=\"$TIDEWATER_KAFKA_DEBEZIUM_USER\" password=\"$TIDEWATER_KAFKA_DEBEZIUM_PASSWORD\";"
  (umask 077; cat >"$dir/worker.properties" <<EOF
bootstrap.servers=$TIDEWATER_KAFKA_HOST:$TIDEWATER_KAFKA_PORT
security.protocol=SASL_PLAINTEXT
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=$scram
producer.security.protocol=SASL_PLAINTEXT
producer.sasl.mechanism=SCRAM-SHA-512
producer.sasl.jaas.config=$scram
consumer.security.protocol=SASL_PLAINTEXT
consumer.sasl.mechanism=SCRAM-SHA-512
consumer.sasl.jaas.config=$scram
admin.security.protocol=SASL_PLAINTEXT
admin.sasl.mechanism=SCRAM-SHA-512
admin.sasl.jaas.config=$scram
group.id=tidewater-connect
key.converter=org.apache.kafka.connect.json.JsonConverter
value.converter=org.apache.kafka.connect.json.JsonConverter
key.converter.schemas.enable=true
value.converter.schemas.enable=true
config.storage.topic=_connect-configs
offset.storage.topic=_connect-offsets
status.storage.topic=_connect-status
config.storage.replication.factor=1
offset.storage.replication.factor=1
status.storage.replication.factor=1
offset.flush.interval.ms=5000
listeners=http://$TIDEWATER_KAFKA_HOST:$TIDEWATER_CONNECT_PORT
rest.advertised.host.name=$TIDEWATER_KAFKA_HOST
rest.advertised.port=$TIDEWATER_CONNECT_PORT
plugin.path=$STACK/connect-plugins
rest.extension.classes=org.apache.kafka.connect.rest.basic.auth.extension.BasicAuthSecurityRestExtension
EOF
  )
  # The REST API's one login (stack/config/connect-rest-jaas.conf reads it from this file), written at every
  # start from the generated secret, readable by this user only.
  (umask 077; printf '%s: %s\n' "$TIDEWATER_CONNECT_USER" "$TIDEWATER_CONNECT_PASSWORD" >"$dir/rest-credentials.properties")
  claim_ports connect "$TIDEWATER_KAFKA_HOST" TIDEWATER_CONNECT_PORT
  spawn connect java $JAVA_OPTS_BASE -Dlog4j2.configurationFile="$ROOT/stack/config/log4j2.properties" \
    -Djava.security.auth.login.config="$ROOT/stack/config/connect-rest-jaas.conf" \
    -Dtidewater.connect.credentials="$dir/rest-credentials.properties" \
    -cp "$STACK/lib/kafka/*" org.apache.kafka.connect.cli.ConnectDistributed "$dir/worker.properties"
}
# The login goes to curl on stdin (-K -), not on its command line.
health_connect() {
  printf 'user = "%s:%s"\n' "$TIDEWATER_CONNECT_USER" "$TIDEWATER_CONNECT_PASSWORD" \
    | curl -sf -K - "http://$TIDEWATER_KAFKA_HOST:$TIDEWATER_CONNECT_PORT/connector-plugins" | grep -q PostgresConnector
}

# ---------------------------------------------------------------------------------------------
# MinIO (S3)

s3_url() { echo "http://$TIDEWATER_S3_HOST:$TIDEWATER_S3_PORT$1"; }
start_minio() {
  mkdir -p "$STACK/minio/data"
  claim_ports minio "$TIDEWATER_S3_HOST" TIDEWATER_S3_PORT TIDEWATER_S3_CONSOLE_PORT
  MINIO_ROOT_USER=$TIDEWATER_S3_ACCESS_KEY MINIO_ROOT_PASSWORD=$TIDEWATER_S3_SECRET_KEY \
    MINIO_BROWSER_REDIRECT=off MINIO_UPDATE=off \
    spawn minio "$CACHE/bin/minio-$MINIO_VERSION" server "$STACK/minio/data" \
    --address "$TIDEWATER_S3_HOST:$TIDEWATER_S3_PORT" \
    --console-address "$TIDEWATER_S3_HOST:$TIDEWATER_S3_CONSOLE_PORT" --quiet
}
health_minio() { curl -sf "$(s3_url /minio/health/ready)"; }
# The lake bucket and MinIO's least-privilege users (pipeline, marts reader) with their policies: the same
# docker/minio/setup.sh as compose's minio-setup, as MinIO's root user (mc's config stays in .stack/mc).
setup_minio() {
  mkdir -p -m 0700 "$STACK/mc"
  MC=$CACHE/bin/mc-$MC_VERSION MC_CONFIG_DIR=$STACK/mc sh "$ROOT/docker/minio/setup.sh" >>"$LOGS/minio-setup.log" 2>&1 \
    || { tail -n 5 "$LOGS/minio-setup.log" >&2; die "MinIO setup failed: see $LOGS/minio-setup.log"; }
}

# ---------------------------------------------------------------------------------------------
# SMTP sink: keeps every received message as a .eml file so a person can read what was sent

start_smtp() {
  mkdir -p "$STACK/mail"
  claim_ports smtp "$TIDEWATER_SMTP_HOST" TIDEWATER_SMTP_PORT
  spawn smtp "$PY" -m tidewater_dev.mailsink --host "$TIDEWATER_SMTP_HOST" --port "$TIDEWATER_SMTP_PORT" \
    --maildir "$STACK/mail"
}
health_smtp() { tcp_open "$TIDEWATER_SMTP_HOST" "$TIDEWATER_SMTP_PORT"; }

# ---------------------------------------------------------------------------------------------
# Redis, the Celery broker (TIDEWATER_AIRFLOW_EXECUTOR=celery): bound to 127.0.0.1, password TIDEWATER_REDIS_PASSWORD,
# its data in $STACK/redis. The configuration holds the password: written at every start, readable by this user only.

start_redis() {
  local dir=$STACK/redis
  mkdir -p "$dir/data"
  (umask 077; cat >"$dir/redis.conf" <<EOF
bind 127.0.0.1
port $TIDEWATER_REDIS_PORT
protected-mode yes
requirepass $TIDEWATER_REDIS_PASSWORD
dir $dir/data
daemonize no
logfile ""
EOF
  )
  claim_ports redis 127.0.0.1 TIDEWATER_REDIS_PORT
  spawn redis redis-server "$dir/redis.conf"
}
# The password goes to redis-cli in its environment (REDISCLI_AUTH), not on its command line.
health_redis() {
  [[ $(REDISCLI_AUTH=$TIDEWATER_REDIS_PASSWORD redis-cli -h 127.0.0.1 -p "$TIDEWATER_REDIS_PORT" ping) == PONG ]]
}

# The caught mail, read-only behind TIDEWATER_MAIL_UI_USER's login, under /mail/ (compose: Mailpit's web UI).
start_mail-ui() {
  claim_ports mail-ui 127.0.0.1 TIDEWATER_MAIL_UI_PORT
  TIDEWATER_MAIL_UI_USER=$TIDEWATER_MAIL_UI_USER TIDEWATER_MAIL_UI_PASSWORD=$TIDEWATER_MAIL_UI_PASSWORD \
    spawn mail-ui "$PY" -m tidewater_dev.mailview --host 127.0.0.1 --port "$TIDEWATER_MAIL_UI_PORT" \
    --maildir "$STACK/mail"
}
# Healthy when it answers and wants a login.
health_mail-ui() {
  [[ $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$TIDEWATER_MAIL_UI_PORT/mail/") == 401 ]]
}

# ---------------------------------------------------------------------------------------------
# One address (Caddy, stack/config/Caddyfile): Airflow at /, the MinIO console, mail and notebooks under paths.
# Caddy's own state (it keeps its last configuration) stays in $STACK/caddy.

start_proxy() {
  mkdir -p "$STACK/caddy"
  claim_ports proxy 127.0.0.1 TIDEWATER_PROXY_PORT
  PROXY_BIND=127.0.0.1 PROXY_PORT=$TIDEWATER_PROXY_PORT XDG_CONFIG_HOME=$STACK/caddy XDG_DATA_HOME=$STACK/caddy \
    UPSTREAM_AIRFLOW=127.0.0.1:$TIDEWATER_AIRFLOW_PORT \
    UPSTREAM_MINIO_CONSOLE=$TIDEWATER_S3_HOST:$TIDEWATER_S3_CONSOLE_PORT \
    UPSTREAM_MAIL=127.0.0.1:$TIDEWATER_MAIL_UI_PORT UPSTREAM_JUPYTER=127.0.0.1:$TIDEWATER_JUPYTER_PORT \
    spawn proxy caddy run --config "$ROOT/stack/config/Caddyfile" --adapter caddyfile
}
health_proxy() { tcp_open 127.0.0.1 "$TIDEWATER_PROXY_PORT"; }

proxy_up() {
  [[ -f $STACK/env ]] || die "$STACK/env is missing: run stack/stack.sh up first"
  start_mail-ui; await mail-ui 30
  start_proxy; await proxy 30
  say "one address: http://127.0.0.1:$TIDEWATER_PROXY_PORT/ (Airflow), /minio/, /mail/, /notebook/"
}
proxy_down() {
  local i
  for ((i = ${#PROXY_SERVICES[@]} - 1; i >= 0; i--)); do terminate "${PROXY_SERVICES[i]}"; done
}

# ---------------------------------------------------------------------------------------------
# .stack/env: settings plus the Airflow connections, for make targets, tests and Airflow itself

# Airflow's DAG bundles: the product's dags/ folder, and the demo shop's DAGs (examples/shop/dags) under $1.
dag_bundles() {
  local local_bundle='"classpath": "airflow.dag_processing.bundles.local.LocalDagBundle"'
  printf '[{"name": "dags-folder", %s, "kwargs": {}}, {"name": "shop-example", %s, "kwargs": {"path": "%s"}}]' \
    "$local_bundle" "$local_bundle" "$1/examples/shop/dags"
}

urlencode() { "$PY" -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$1"; }

# Airflow's metadata database, user:password@host:port/db (URL-quoted), for SQLAlchemy URLs.
metadata_db() {
  echo "$(urlencode "$TIDEWATER_AIRFLOW_DB_USER"):$(urlencode "$TIDEWATER_AIRFLOW_DB_PASSWORD")@$TIDEWATER_PG_HOST:$TIDEWATER_AIRFLOW_DB_PORT/$(urlencode "$TIDEWATER_AIRFLOW_DB")"
}

# Exports the settings of TIDEWATER_AIRFLOW_EXECUTOR's executor and unsets the other one's. Celery: Redis as broker,
# Airflow's metadata database as result backend, and each worker's own host name in its task instances
# (tidewater.hostname, TIDEWATER_WORKER_NAME), and a drain task per worker slot (TIDEWATER_DRAIN_TASKS; Local: the
# setting's default).
executor_env() {
  case $TIDEWATER_AIRFLOW_EXECUTOR in
    local)
      export AIRFLOW__CORE__EXECUTOR=LocalExecutor
      unset AIRFLOW__CELERY__BROKER_URL AIRFLOW__CELERY__RESULT_BACKEND AIRFLOW__CORE__HOSTNAME_CALLABLE \
        TIDEWATER_DRAIN_TASKS ;;
    celery)
      export AIRFLOW__CORE__EXECUTOR=CeleryExecutor \
        TIDEWATER_DRAIN_TASKS=$((TIDEWATER_CELERY_WORKERS * TIDEWATER_CELERY_WORKER_CONCURRENCY)) \
        AIRFLOW__CELERY__BROKER_URL="redis://:$(urlencode "$TIDEWATER_REDIS_PASSWORD")@127.0.0.1:$TIDEWATER_REDIS_PORT/0" \
        AIRFLOW__CELERY__RESULT_BACKEND="db+postgresql+psycopg://$(metadata_db)" \
        AIRFLOW__CORE__HOSTNAME_CALLABLE=tidewater.hostname.hostname ;;
    *) die "TIDEWATER_AIRFLOW_EXECUTOR=$TIDEWATER_AIRFLOW_EXECUTOR: must be local or celery (stack/defaults.env)" ;;
  esac
}
# The names executor_env exports.
executor_names() {
  echo AIRFLOW__CORE__EXECUTOR
  [[ $TIDEWATER_AIRFLOW_EXECUTOR != celery ]] \
    || echo AIRFLOW__CELERY__BROKER_URL AIRFLOW__CELERY__RESULT_BACKEND AIRFLOW__CORE__HOSTNAME_CALLABLE \
      TIDEWATER_DRAIN_TASKS
}

# Every setting of stack/defaults.env, every secret and what derives from them, each value shell-quoted
# (stack/envfile.py); mode 0600: it holds the secrets.
write_env() {
  (
    local db; db=$(metadata_db)
    executor_env
    # PYTHONPATH: every process of this stack runs this checkout's code, even when another checkout (a git worktree
    # sharing .venv) re-pointed the virtualenv's editable install at itself.
    export PYTHONPATH=$ROOT/include:$ROOT/examples/shop \
      TIDEWATER_STACK_DIR=$STACK TIDEWATER_WAREHOUSE_PATH=$STACK/warehouse/warehouse.duckdb \
      TIDEWATER_MARTS_DIR=$STACK/marts TIDEWATER_MAIL_DIR=$STACK/mail \
      TIDEWATER_OPENLINEAGE_FILE=$STACK/lineage/events.jsonl \
      TIDEWATER_S3_CONSOLE_URL=http://$TIDEWATER_S3_HOST:$TIDEWATER_S3_CONSOLE_PORT \
      AIRFLOW_HOME=$STACK/airflow AIRFLOW__CORE__DAGS_FOLDER=$ROOT/dags AIRFLOW__CORE__PLUGINS_FOLDER=$ROOT/plugins \
      AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST="$(dag_bundles "$ROOT")" \
      AIRFLOW__CORE__LOAD_EXAMPLES=False AIRFLOW__CORE__PARALLELISM=4 \
      AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS=$TIDEWATER_AIRFLOW_ADMIN_USER:admin \
      AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE=$STACK/airflow/passwords.json \
      AIRFLOW__CORE__FERNET_KEY=$TIDEWATER_AIRFLOW_FERNET_KEY \
      AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=postgresql+psycopg://$db \
      AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC=postgresql+psycopg_async://$db \
      AIRFLOW__API__HOST=127.0.0.1 AIRFLOW__API__PORT=$TIDEWATER_AIRFLOW_PORT \
      AIRFLOW__API__BASE_URL=http://127.0.0.1:$TIDEWATER_AIRFLOW_PORT \
      AIRFLOW__API__SECRET_KEY=$TIDEWATER_AIRFLOW_SECRET_KEY AIRFLOW__API_AUTH__JWT_SECRET=$TIDEWATER_AIRFLOW_JWT_SECRET \
      AIRFLOW__COSMOS__ENABLE_TELEMETRY=False AIRFLOW__COSMOS__CACHE_DIR=$STACK/airflow/cosmos
    echo "# Written by stack/stack.sh (settings: stack/defaults.env, secrets: $SECRETS_FILE). Source it: set -a; . $STACK/env; set +a"
    # shellcheck disable=SC2046
    "$PY" "$ROOT/stack/envfile.py" quote $(grep -oE '^[A-Z][A-Z0-9_]*' "$ROOT/stack/defaults.env") \
      $("$PY" "$ROOT/stack/envfile.py" names) PYTHONPATH TIDEWATER_STACK_DIR TIDEWATER_WAREHOUSE_PATH TIDEWATER_MARTS_DIR \
      TIDEWATER_MAIL_DIR TIDEWATER_OPENLINEAGE_FILE TIDEWATER_S3_CONSOLE_URL \
      AIRFLOW_HOME AIRFLOW__CORE__DAGS_FOLDER AIRFLOW__CORE__PLUGINS_FOLDER \
      AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST \
      AIRFLOW__CORE__LOAD_EXAMPLES AIRFLOW__CORE__PARALLELISM $(executor_names) \
      AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE \
      AIRFLOW__CORE__FERNET_KEY AIRFLOW__DATABASE__SQL_ALCHEMY_CONN AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC \
      AIRFLOW__API__HOST AIRFLOW__API__PORT AIRFLOW__API__BASE_URL AIRFLOW__API__SECRET_KEY \
      AIRFLOW__API_AUTH__JWT_SECRET AIRFLOW__COSMOS__ENABLE_TELEMETRY AIRFLOW__COSMOS__CACHE_DIR
    "$PY" -m tidewater_dev.stackenv
  ) >"$STACK/env.tmp" || die "could not write $STACK/env"
  chmod 600 "$STACK/env.tmp"
  mv "$STACK/env.tmp" "$STACK/env"
}

# ---------------------------------------------------------------------------------------------
# Airflow 3 (api-server, scheduler, dag-processor, triggerer; LocalExecutor; metadata in PostgreSQL)

# Airflow's processes get every setting but the secrets of set-up alone: the superusers' passwords, MinIO's root
# key and the connection built from the shop's superuser (tasks use the shop's application role).
# The executor is the one TIDEWATER_AIRFLOW_EXECUTOR names now (exported, or stack/defaults.env), whatever it was when
# $STACK/env was written: `TIDEWATER_AIRFLOW_EXECUTOR=celery stack/stack.sh airflow-up` switches an instance.
airflow_env() {
  local executor=$TIDEWATER_AIRFLOW_EXECUTOR
  set -a; . "$STACK/env"; set +a
  TIDEWATER_AIRFLOW_EXECUTOR=$executor; executor_env
  # shellcheck disable=SC2046
  unset $("$PY" "$ROOT/stack/envfile.py" setup-names) AIRFLOW_CONN_SHOP_POSTGRES_ADMIN
}

airflow_migrate() {
  airflow_env
  mkdir -p "$AIRFLOW_HOME"
  "$PY" "$ROOT/stack/envfile.py" airflow-passwords "$AIRFLOW_HOME/passwords.json" \
    "$TIDEWATER_AIRFLOW_ADMIN_USER" TIDEWATER_AIRFLOW_ADMIN_PASSWORD
  "$AIRFLOW_BIN" db migrate >"$LOGS/airflow-migrate.log" 2>&1 \
    || die "airflow db migrate failed: see $LOGS/airflow-migrate.log"
  # DuckDB allows one writer process: every task that writes the warehouse takes this pool's one slot.
  "$AIRFLOW_BIN" pools set duckdb_warehouse 1 "DuckDB warehouse: one writer at a time" \
    >>"$LOGS/airflow-migrate.log" 2>&1 || die "creating the duckdb_warehouse pool failed: see $LOGS/airflow-migrate.log"
  mkdir -p "$STACK/warehouse" "$STACK/lineage"
}

airflow_up() {
  airflow_migrate
  local running; running=$(cat "$RUN/airflow-executor" 2>/dev/null || true)
  if [[ -n $running && $running != "$TIDEWATER_AIRFLOW_EXECUTOR" ]] && airflow_running; then
    die "Airflow runs with the $running executor, not $TIDEWATER_AIRFLOW_EXECUTOR: stop it first (stack/stack.sh airflow-down)"
  fi
  if [[ $TIDEWATER_AIRFLOW_EXECUTOR == celery ]]; then start_redis; await redis 30; fi
  claim_ports airflow-api-server 127.0.0.1 TIDEWATER_AIRFLOW_PORT
  echo "$TIDEWATER_AIRFLOW_EXECUTOR" >"$RUN/airflow-executor"
  spawn airflow-api-server "$AIRFLOW_BIN" api-server
  spawn airflow-scheduler "$AIRFLOW_BIN" scheduler --skip-serve-logs
  spawn airflow-dag-processor "$AIRFLOW_BIN" dag-processor
  spawn airflow-triggerer "$AIRFLOW_BIN" triggerer --skip-serve-logs
  [[ $TIDEWATER_AIRFLOW_EXECUTOR != celery ]] || start_workers
  await airflow-api-server 180 health_airflow
  [[ $TIDEWATER_AIRFLOW_EXECUTOR != celery ]] || await airflow-worker1 120 health_workers
  say "Airflow UI: $AIRFLOW__API__BASE_URL (login $TIDEWATER_AIRFLOW_ADMIN_USER; password: TIDEWATER_AIRFLOW_ADMIN_PASSWORD in $SECRETS_FILE)"
}

# Celery workers airflow-worker1..N (TIDEWATER_CELERY_WORKERS), each in its own session (`down`, or a test, stops one
# with its task processes), Celery node name worker<i>@<host>, host name worker<i>.<host> in its task instances. Their
# log servers stay off (--skip-serve-logs) as the scheduler's does: every process of this stack writes task logs into
# the one $AIRFLOW_HOME/logs, which the api-server reads, and a log server would listen on every interface.
worker_names() { local i; for ((i = 1; i <= TIDEWATER_CELERY_WORKERS; i++)); do echo "worker$i"; done; }
start_workers() {
  local worker host; host=$(hostname)
  for worker in $(worker_names); do
    TIDEWATER_WORKER_NAME=$worker.$host spawn "airflow-$worker" "$AIRFLOW_BIN" celery worker \
      --celery-hostname "$worker@$host" --concurrency "$TIDEWATER_CELERY_WORKER_CONCURRENCY" --skip-serve-logs
  done
}
# Healthy when every worker answers a Celery ping through the broker.
health_workers() {
  # shellcheck disable=SC2046
  "$PY" - $(worker_names | sed "s/\$/@$(hostname)/") <<'EOF'
import sys
from airflow.providers.celery.executors.celery_executor import app
answered = set((app.control.inspect(timeout=3).ping() or {}).keys())
sys.exit(0 if set(sys.argv[1:]) <= answered else 1)
EOF
}
# The workers that run (their pid files), whatever TIDEWATER_CELERY_WORKERS says now.
running_workers() {
  local file; for file in "$RUN"/airflow-worker*.pid; do [[ -f $file ]] && basename "$file" .pid; done; return 0
}
airflow_running() {
  local c; for c in "${AIRFLOW_COMPONENTS[@]}"; do is_running "airflow-$c" && return 0; done; return 1
}
# Healthy when the api-server answers and reports every component healthy.
health_airflow() {
  curl -sf "http://127.0.0.1:$TIDEWATER_AIRFLOW_PORT/api/v2/monitor/health" | "$PY" -c '
import json, sys
health = json.load(sys.stdin)
bad = [name for name, part in health.items() if isinstance(part, dict) and part.get("status") != "healthy"]
sys.exit(1 if bad else 0)'
}
airflow_down() {
  local c worker
  for c in "${AIRFLOW_COMPONENTS[@]}"; do terminate "airflow-$c"; done
  for worker in $(running_workers); do terminate "$worker"; done
  rm -f "$RUN/airflow-executor"
}
airflow_status() {
  local c
  say "executor: $(cat "$RUN/airflow-executor" 2>/dev/null || echo "none running") (TIDEWATER_AIRFLOW_EXECUTOR=$TIDEWATER_AIRFLOW_EXECUTOR)"
  for c in "${AIRFLOW_COMPONENTS[@]}" $(running_workers | sed 's/^airflow-//'); do
    if is_running "airflow-$c"; then say "airflow-$c: running (pid $(pid_of "airflow-$c"))"
    else say "airflow-$c: stopped"; fi
  done
  health_airflow >/dev/null 2>&1 && say "airflow: healthy" || say "airflow: not healthy"
}

# ---------------------------------------------------------------------------------------------
# JupyterLab on the published marts (docs/notebooks.md), from its own virtualenv, configured as compose's jupyter
# service is (stack/config/jupyter_server_config.py): token login, served under /notebook/, notebooks/ opened.

notebook_url() { echo "http://127.0.0.1:$TIDEWATER_JUPYTER_PORT/notebook/"; }

# The server and its kernels get the marts reader's credentials (tidewater.marts_reader.READER_VARIABLES) and the
# token, and no other variable of this environment: no pipeline key, no superuser password, no Airflow connection.
notebook_up() {
  [[ -x $NOTEBOOK_VENV/bin/jupyter ]] || die "no notebook virtualenv at $NOTEBOOK_VENV: run make notebook-install"
  [[ -n ${TIDEWATER_JUPYTER_TOKEN:-} ]] || die "no TIDEWATER_JUPYTER_TOKEN in $SECRETS_FILE: run make stack-up first"
  local readers; readers=$("$NOTEBOOK_VENV/bin/python" -m tidewater.marts_reader variables) \
    || die "the notebook virtualenv cannot import tidewater: run make notebook-install"
  claim_ports notebook 127.0.0.1 TIDEWATER_JUPYTER_PORT
  local port=$TIDEWATER_JUPYTER_PORT  # not exported: it outlives the clean-up below
  (
    local keep=" PATH HOME LANG LC_ALL TZ TMPDIR TIDEWATER_JUPYTER_TOKEN $readers " name
    for name in $(compgen -e); do [[ $keep == *" $name "* ]] || unset "$name" 2>/dev/null || true; done
    local as_root=(); [[ $(id -u) != 0 ]] || as_root=(--allow-root)  # a root shell runs the whole stack as root
    spawn notebook "$NOTEBOOK_VENV/bin/jupyter" lab --config="$ROOT/stack/config/jupyter_server_config.py" \
      --ip=127.0.0.1 --port="$port" "${as_root[@]}"
  )
  await notebook 90
  say "JupyterLab (marts read-only): $(notebook_url)lab?token=$TIDEWATER_JUPYTER_TOKEN"
}
# The token goes to curl on stdin (-K -), not on its command line.
health_notebook() {
  printf 'header = "Authorization: token %s"\n' "$TIDEWATER_JUPYTER_TOKEN" \
    | curl -sf -K - "$(notebook_url)api/status" >/dev/null
}
notebook_down() { terminate notebook; }
notebook_status() {
  if health_notebook 2>/dev/null; then say "notebook: healthy at $(notebook_url)lab (log: $LOGS/notebook.log)"
  elif is_running notebook; then say "notebook: running (pid $(pid_of notebook)) but NOT answering (log: $LOGS/notebook.log)"
  else say "notebook: stopped (make notebook starts it)"; fi
}

# ---------------------------------------------------------------------------------------------

up() {
  [[ -x $PY ]] || die "no virtualenv at $ROOT/.venv: run make install first"
  ensure_artifacts
  ensure_secrets; load_secrets
  write_env
  start_postgres; start_airflow-db
  await postgres 60; bootstrap_postgres
  await airflow-db 60; bootstrap_airflow_db
  start_kafka; await kafka 120; kafka_access
  start_connect; start_minio; start_smtp
  await minio 60; setup_minio
  await smtp 30
  if [[ $TIDEWATER_AIRFLOW_EXECUTOR == celery ]]; then start_redis; await redis 30; fi
  await connect 180
  say "stack is up; settings and connections in $STACK/env; logs in $LOGS"
  if [[ -n $FIRST_LOGIN ]]; then
    say "generated this installation's secrets in $SECRETS_FILE (mode 0600). Airflow login, shown once:"
    say "  user $TIDEWATER_AIRFLOW_ADMIN_USER  password $TIDEWATER_AIRFLOW_ADMIN_PASSWORD"
  fi
}

down() {
  proxy_down
  notebook_down
  airflow_down
  terminate redis
  local i
  for ((i = ${#SERVICES[@]} - 1; i >= 0; i--)); do
    if declare -F "stop_${SERVICES[i]}" >/dev/null; then "stop_${SERVICES[i]}"; else terminate "${SERVICES[i]}"; fi
  done
}

status() {
  local name failed=0
  for name in "${SERVICES[@]}"; do
    if "health_$name" >/dev/null 2>&1; then say "$name: healthy"
    else say "$name: NOT healthy (log: $LOGS/$name.log)"; failed=1; fi
  done
  for name in "${CELERY_SERVICES[@]}"; do  # with the celery executor only
    if [[ $TIDEWATER_AIRFLOW_EXECUTOR == celery ]] || is_running "$name"; then
      if "health_$name" >/dev/null 2>&1; then say "$name: healthy"
      else say "$name: NOT healthy (log: $LOGS/$name.log)"; failed=1; fi
    fi
  done
  for name in "${PROXY_SERVICES[@]}"; do  # optional: proxy-up (`make up`) starts them
    if is_running "$name"; then
      if "health_$name" >/dev/null 2>&1; then say "$name: healthy"
      else say "$name: NOT healthy (log: $LOGS/$name.log)"; failed=1; fi
    else say "$name: stopped (stack/stack.sh proxy-up or make up starts it)"; fi
  done
  return $failed
}

case ${1:-} in
  up) up ;;
  down) down ;;
  status) status ;;
  airflow-up) airflow_up ;;
  airflow-down) airflow_down ;;
  airflow-status) airflow_status ;;
  airflow-migrate) airflow_migrate ;;
  notebook-up) notebook_up ;;
  notebook-down) notebook_down ;;
  notebook-status) notebook_status ;;
  proxy-up) proxy_up ;;
  proxy-down) proxy_down ;;
  *) echo "usage: $0 up|down|status|airflow-up|airflow-down|airflow-status|airflow-migrate|notebook-up|notebook-down|notebook-status|proxy-up|proxy-down" >&2
     exit 2 ;;
esac
