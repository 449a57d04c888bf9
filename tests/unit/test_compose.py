"""docker-compose.yaml against the native stack: one configuration, two ways to run it.

Reads the compose files with PyYAML and interpolates them the way docker compose does (shell < .env <
stack/defaults.env, here with the defaults only), then checks that every file they name exists, every variable
is documented and known, the services are wired with healthchecks and conditions, and the ports, names and
versions equal the native stack's (stack/stack.sh, stack/defaults.env, stack/maven). When the docker compose
plugin is installed, `docker compose config` (which needs no engine) must accept the files too.

Intentionally different from the native stack, and so not compared: container ports (every service listens on
its image's usual port inside the network), the host names (service names), Airflow's separate PostgreSQL,
MinIO's users (root only for minio and minio-setup), Mailpit instead of the SMTP sink.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tidewater import lineage
from tidewater.cdc import connector
from tidewater.config import REPO_ROOT, Settings, parse_connection, read_env_file
from tidewater.marts_reader import READER_VARIABLES, reader_connections
from tidewater_dev.stackenv import airflow_connections

COMPOSE_FILE = REPO_ROOT / "docker-compose.yaml"
sys.path.insert(0, str(REPO_ROOT / "stack"))
import envfile  # noqa: E402  (stack/envfile.py: stdlib only)

# What compose interpolates with: stack/defaults.env, and the secrets the documented
# `python3 stack/envfile.py secrets .env` generates (none has a default).
SETTINGS_FILE = read_env_file(REPO_ROOT / "stack" / "defaults.env")
GENERATED = {name: envfile.generate(name) for name in envfile.SECRETS}
DEFAULTS = SETTINGS_FILE | GENERATED
STACK_SH = (REPO_ROOT / "stack" / "stack.sh").read_text()
ENV_EXAMPLE = REPO_ROOT / ".env.example"
# Where Tidewater's code reads settings: a variable must be known to one of them (or to stack/defaults.env).
SETTINGS_READERS = [REPO_ROOT / "include" / "tidewater" / "config.py",
                    REPO_ROOT / "include" / "tidewater_dev" / "stackenv.py"]

# Host port of each published container port: the native stack's setting of the same service, or a docker-only
# setting (Mailpit's UI, the Kafka UI, Jupyter). The container ports are the images' own.
PUBLISHED = {
    "shop-db": {5432: "TIDEWATER_PG_PORT"},
    "kafka": {19092: "TIDEWATER_KAFKA_PORT"},
    "connect": {8083: "TIDEWATER_CONNECT_PORT"},
    "minio": {9000: "TIDEWATER_S3_PORT", 9001: "TIDEWATER_S3_CONSOLE_PORT"},
    "mailpit": {1025: "TIDEWATER_SMTP_PORT", 8025: "TIDEWATER_MAIL_UI_PORT"},
    "airflow-api-server": {8080: "TIDEWATER_AIRFLOW_PORT"},
    "kafka-ui": {8080: "TIDEWATER_KAFKA_UI_PORT"},
    "jupyter": {8888: "TIDEWATER_JUPYTER_PORT"},
    "proxy": {8000: "TIDEWATER_PROXY_PORT"},
}
NATIVE_SERVICES = {"postgres": "shop-db", "airflow-db": "airflow-db", "kafka": "kafka", "connect": "connect",
                   "minio": "minio", "smtp": "mailpit"}

_VARIABLE = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>(?:[^{}]|\{[^{}]*\})*))?\}")


# ------------------------------------------------------------------ reading the compose files


def interpolate(value, env: dict[str, str]):
    """Compose's interpolation of ${NAME}, ${NAME:-default}, ${NAME:?error}, $$ (a literal $), recursively."""
    if isinstance(value, dict):
        return {key: interpolate(item, env) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, env) for item in value]
    if not isinstance(value, str):
        return value

    def replace(match: re.Match) -> str:
        name, op, arg = match["name"], match["op"], match["arg"]
        present = env.get(name) if op is None or not op.startswith(":") else (env.get(name) or None)
        if op in (":-", "-"):
            return present if present is not None else interpolate(arg, env)
        if op in (":?", "?") and present is None:
            raise AssertionError(f"${{{name}}} is required: {arg}")
        if present is None:
            raise AssertionError(f"${{{name}}} has no value: set it in stack/defaults.env (and document it in "
                                 ".env.example) or give it a default")
        return present

    parts = value.split("$$")
    return "$".join(_VARIABLE.sub(replace, part) for part in parts)


def variables_in(value) -> set[str]:
    """Every ${NAME} the compose file interpolates, and every $$NAME a container's shell expands."""
    text = json.dumps(value)
    names = {match["name"] for match in _VARIABLE.finditer(text.replace("$$", "\0"))}
    names |= set(re.findall(r"\$\$\{?(TIDEWATER_[A-Z0-9_]+)", text))
    return names


def load_compose() -> tuple[dict, dict, Path]:
    """(top-level file, included services file as written, the project directory)."""
    top = yaml.safe_load(COMPOSE_FILE.read_text())
    (include,) = top["include"]
    project = (REPO_ROOT / include.get("project_directory", ".")).resolve()
    assert project == REPO_ROOT, "docker-compose.yaml must include its services with project_directory: ."
    assert include["env_file"] == "stack/defaults.env", (
        "the included services must read their defaults from stack/defaults.env, the native stack's settings")
    services_file = yaml.safe_load((REPO_ROOT / include["path"]).read_text())
    return top, services_file, project


TOP, RAW, PROJECT = load_compose()
RESOLVED = interpolate({key: value for key, value in RAW.items() if not key.startswith("x-")}, DEFAULTS)
SERVICES: dict[str, dict] = RESOLVED["services"]


def test_compose_refuses_to_start_until_the_secrets_are_generated():
    with pytest.raises(AssertionError, match=r"is required: run python3 stack/envfile.py secrets .env first"):
        interpolate({key: value for key, value in RAW.items() if not key.startswith("x-")}, SETTINGS_FILE)
    assert not set(envfile.SECRETS) & SETTINGS_FILE.keys(), "a secret has a default in stack/defaults.env"


def is_one_shot(service: dict) -> bool:
    return service.get("restart") == "no"


def container_env(name: str) -> dict[str, str]:
    """A service's environment as docker compose builds it (env_file, then environment), with a .env of
    generated secrets only."""
    service = SERVICES[name]
    env: dict[str, str] = {}
    for entry in service.get("env_file", []):
        entry = entry if isinstance(entry, dict) else {"path": entry}
        path = PROJECT / entry["path"]
        if path.name == ".env":
            env |= GENERATED  # what the documented command writes there (the user's own .env is not read)
        elif path.exists():
            env |= read_env_file(path)
    env |= {key: str(value) for key, value in (service.get("environment") or {}).items()}
    return env


def documented_settings() -> dict[str, str]:
    """KEY -> default for each `# KEY=value` line of .env.example that has a comment line above it."""
    settings, previous = {}, ""
    for line in ENV_EXAMPLE.read_text().splitlines():
        match = re.fullmatch(r"#?\s*((?:TIDEWATER|AIRFLOW)_[A-Z0-9_]+)=(.*)", line.strip())
        if match:
            assert previous.startswith("#"), f".env.example: {match[1]} has no description above it"
            settings[match[1]] = match[2]
        previous = line.strip()
    return settings


def settings_fields() -> set[str]:
    """The variables Settings reads: one per field."""
    return {f"TIDEWATER_{item.name.upper()}" for item in dataclasses.fields(Settings)}


def known_to_code() -> set[str]:
    named = (re.findall(r"TIDEWATER_[A-Z0-9_]+", path.read_text()) for path in SETTINGS_READERS)
    return settings_fields().union(*named)


def heredoc(marker: str) -> dict[str, str]:
    """key=value lines of the heredoc stack/stack.sh writes to a file named `marker`."""
    body = re.search(rf'cat >"\$dir/{re.escape(marker)}" <<EOF\n(.*?)\nEOF', STACK_SH, re.S)
    assert body, f"stack/stack.sh no longer writes {marker}"
    return dict(line.split("=", 1) for line in body[1].splitlines() if "=" in line)


# ------------------------------------------------------------------ files


def _referenced_paths() -> list[str]:
    paths = [TOP["include"][0]["path"]]
    for service in SERVICES.values():
        build = service.get("build")
        if build:
            paths += [build["context"], str(Path(build["context"]) / build.get("dockerfile", "Dockerfile"))]
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("."):
                paths.append(source)
        for entry in service.get("env_file", []):
            if isinstance(entry, str) or entry.get("required", True):
                paths.append(entry if isinstance(entry, str) else entry["path"])
    return paths


def test_every_file_the_compose_files_name_exists():
    paths = _referenced_paths()
    assert "Dockerfile" in [Path(path).name for path in paths]
    missing = [path for path in paths if not (PROJECT / path).exists()]
    assert not missing, f"docker compose names files that do not exist: {missing}"


@pytest.mark.parametrize("dockerfile", ["Dockerfile", "docker/minio.Dockerfile"])
def test_every_file_the_images_copy_exists_and_is_not_ignored(dockerfile):
    ignored = [line for line in (REPO_ROOT / ".dockerignore").read_text().splitlines()
               if line and not line.startswith("#")]
    sources = []
    for line in (REPO_ROOT / dockerfile).read_text().splitlines():
        if line.startswith("COPY") and "--from=" not in line:
            sources += [word for word in line.split()[1:-1] if not word.startswith("--")]
    missing = [source for source in sources if not (REPO_ROOT / source).exists()]
    assert not missing, f"{dockerfile} copies files that do not exist: {missing}"
    hidden = [source for source in sources if any(source == pattern or source.startswith(pattern + "/")
                                                  for pattern in ignored)]
    assert not hidden, f"{dockerfile} copies files that .dockerignore keeps out of the build: {hidden}"


def test_one_source_for_the_connector_and_the_migrations():
    """The jobs run the same Python entry points as make; docker/ holds no copy of the connector or SQL."""
    commands = {name: " ".join(SERVICES[name]["command"]) for name in ("shop-migrate", "cdc-register", "simulator")}
    assert commands["shop-migrate"] == "python -m tidewater_shop.cli migrate"
    assert commands["cdc-register"] == "python -m tidewater.cdc.cli register"
    assert "python -m tidewater_shop.cli run" in commands["simulator"]
    for module in re.findall(r"python -m ([\w.]+)", " ".join(commands.values()) + (
            REPO_ROOT / "docker" / "airflow-init.sh").read_text() + (REPO_ROOT / "Dockerfile").read_text()):
        assert importlib.util.find_spec(module) is not None, f"docker runs python -m {module}, which does not exist"
    copies = [path.relative_to(REPO_ROOT).as_posix() for path in (REPO_ROOT / "docker").rglob("*")
              if path.suffix == ".sql" or (path.suffix == ".json" and path.parent.name != "minio")]
    assert not copies, f"docker/ must not copy the connector or migrations: {copies}"


def test_the_image_has_the_native_stacks_dag_bundles_and_each_folder_exists():
    function = re.search(r"^dag_bundles\(\) \{\n.*?^\}", STACK_SH, re.S | re.M)[0]
    native = subprocess.run(["bash", "-c", f"{function}\ndag_bundles /opt/tidewater"], capture_output=True,
                            text=True, check=True).stdout
    image = re.search(r"AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST='(.*?)'", (REPO_ROOT / "Dockerfile").read_text())
    assert json.loads(image[1]) == json.loads(native)
    for bundle in json.loads(native):
        folder = bundle["kwargs"].get("path", "/opt/tidewater/dags").removeprefix("/opt/tidewater/")
        assert list((REPO_ROOT / folder).glob("*.py")), f"DAG bundle {bundle['name']}: {folder} holds no DAG file"


def test_airflow_init_does_every_step_of_the_native_airflow_migrate():
    native = re.search(r"^airflow_migrate\(\) \{\n(.*?)^\}", STACK_SH, re.S | re.M)[1]
    steps = [f"airflow {words}" for words in re.findall(r'"\$AIRFLOW_BIN" (\w+ \w+)', native)]
    steps += [f"python -m {module}" for module in re.findall(r'"\$PY" -m ([\w.]+)', native)]
    init = (REPO_ROOT / "docker" / "airflow-init.sh").read_text()
    assert "airflow db migrate" in steps
    missing = [step for step in steps if step not in init]
    assert not missing, f"stack/stack.sh airflow-migrate does {missing}; docker/airflow-init.sh must do it too"
    assert SERVICES["airflow-init"]["command"] == ["bash", "/opt/tidewater/docker/airflow-init.sh"]


@pytest.mark.parametrize(("service", "sql", "variables"), [
    ("catalog-init", "ducklake-catalogs.sql", {"lake_db", "marts_db", "writer", "writer_password", "reader",
                                                "reader_password"}),
    ("airflow-db-init", "airflow-db.sql", {"airflow_user", "airflow_password", "airflow_db"}),
])
def test_databases_and_roles_come_from_the_native_stacks_sql(service, sql, variables):
    """One definition of the DuckLake catalogs and of Airflow's database, each with its roles: the SQL file
    stack/stack.sh runs, with the same variables, done before Airflow starts."""
    init = SERVICES[service]
    assert init["volumes"] == [f"./stack/config/{sql}:/{init['command'][-1].split(' -f /')[1].split()[0]}:ro"]
    native = re.search(re.escape(sql) + r"\" \\\n(.*?)>/dev/null", STACK_SH, re.S)[1]
    native_variables = dict(re.findall(r'-v (\w+)="\$(\w+)"', native))
    compose_variables = dict(re.findall(r'-v (\w+)="\$(\w+)"', " ".join(init["command"])))
    assert set(compose_variables) == set(native_variables) == variables
    for name, variable in compose_variables.items():
        assert init["environment"][variable] == DEFAULTS[native_variables[name]], name
    first = "airflow-init" if service == "airflow-db-init" else "airflow-scheduler"
    assert SERVICES[first]["depends_on"][service] == {"condition": "service_completed_successfully"}


# ------------------------------------------------------------------ settings


def test_every_variable_is_documented_and_known():
    used = variables_in({key: value for key, value in RAW.items()})
    assert "TIDEWATER_PG_PORT" in used
    documented = documented_settings()
    undocumented = sorted(used - documented.keys())
    assert not undocumented, f"document these in .env.example: {undocumented}"
    unknown = sorted(name for name in used if name not in DEFAULTS and name not in known_to_code())
    assert not unknown, \
        f"not a Tidewater setting (stack/defaults.env, tidewater.config, tidewater_dev.stackenv): {unknown}"


def test_env_example_documents_every_setting_with_the_native_default():
    documented = documented_settings()
    settings_read = settings_fields()
    missing = sorted((DEFAULTS.keys() | settings_read) - documented.keys() - {"TIDEWATER_CONNECT_URL"})
    assert not missing, f".env.example does not document: {missing}"
    stale = {key: (value, DEFAULTS[key]) for key, value in documented.items()
             if key in SETTINGS_FILE and value != DEFAULTS[key]}
    assert not stale, f".env.example shows defaults that stack/defaults.env does not have (shown, real): {stale}"
    strangers = sorted(documented.keys() - DEFAULTS.keys() - known_to_code())
    assert not strangers, f".env.example documents settings nothing reads: {strangers}"


def test_containers_reach_every_service_by_its_compose_name():
    """The connections tidewater_dev.stackenv derives in the Airflow containers point at the compose services."""
    env = container_env("airflow-scheduler")
    connections = airflow_connections(env)
    shop = parse_connection("shop_postgres", connections["AIRFLOW_CONN_SHOP_POSTGRES"])
    kafka = parse_connection("kafka_default", connections["AIRFLOW_CONN_KAFKA_DEFAULT"])
    lake = parse_connection("lake_s3", connections["AIRFLOW_CONN_LAKE_S3"])
    smtp = parse_connection("smtp_default", connections["AIRFLOW_CONN_SMTP_DEFAULT"])
    assert (shop.host, shop.port, shop.login, shop.schema) == ("shop-db", 5432, DEFAULTS["TIDEWATER_SHOP_USER"],
                                                               DEFAULTS["TIDEWATER_SHOP_DB"])
    assert kafka.extra["bootstrap.servers"] == "kafka:9092"
    login = [kafka.extra[key] for key in ("security.protocol", "sasl.mechanism", "sasl.username", "sasl.password")]
    assert login == ["SASL_PLAINTEXT", "SCRAM-SHA-512", DEFAULTS["TIDEWATER_KAFKA_PIPELINE_USER"],
                     GENERATED["TIDEWATER_KAFKA_PIPELINE_PASSWORD"]], "the pipeline's own Kafka user"
    assert lake.extra["endpoint_url"] == "http://minio:9000"
    assert (lake.login, lake.password) == (DEFAULTS["TIDEWATER_S3_PIPELINE_ACCESS_KEY"],
                                           DEFAULTS["TIDEWATER_S3_PIPELINE_SECRET_KEY"]), "Airflow must not get root"
    assert (smtp.host, smtp.port) == ("mailpit", 1025)
    assert connections["TIDEWATER_CONNECT_URL"] == "http://connect:8083"
    rest = parse_connection("kafka_connect", connections["AIRFLOW_CONN_KAFKA_CONNECT"])
    assert (rest.host, rest.port, rest.login, rest.password) == (
        "connect", 8083, DEFAULTS["TIDEWATER_CONNECT_USER"], GENERATED["TIDEWATER_CONNECT_PASSWORD"])
    rendered = connector.render_config(Settings.from_env(env | connections))
    assert (rendered["database.hostname"], rendered["database.port"]) == ("shop-db", "5432")
    assert rendered["topic.prefix"] == DEFAULTS["TIDEWATER_CDC_TOPIC_PREFIX"]
    assert Settings.from_env(env).lake_bucket == DEFAULTS["TIDEWATER_LAKE_BUCKET"]


AIRFLOW_SERVICES = ("airflow-init", "airflow-api-server", "airflow-scheduler", "airflow-dag-processor",
                    "airflow-triggerer")


@pytest.mark.parametrize("name", AIRFLOW_SERVICES)
def test_airflow_gets_no_superuser_and_no_root_key(name):
    """No Airflow container holds a set-up secret (in its environment or in a connection derived from it); the
    one-shot jobs that migrate the shop still get the superuser's connection."""
    env = container_env(name)
    everything = json.dumps(env | airflow_connections(env))
    leaked = [secret for secret in envfile.SETUP_SECRETS if GENERATED[secret] in everything]
    assert not leaked, f"{name} gets {leaked}"
    assert "AIRFLOW_CONN_SHOP_POSTGRES_ADMIN" not in airflow_connections(env)
    assert "airflow-db:5432" in env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    migrate = airflow_connections(container_env("shop-migrate"))
    admin = parse_connection("shop_postgres_admin", migrate["AIRFLOW_CONN_SHOP_POSTGRES_ADMIN"])
    assert admin.login == DEFAULTS["TIDEWATER_PG_SUPERUSER"]


@pytest.mark.parametrize("name", AIRFLOW_SERVICES[1:])
def test_every_airflow_component_appends_its_lineage_events_to_the_lineage_volume(name):
    """OpenLineage (docs/lineage.md): the file transport's file lies in the `lineage` volume of each component."""
    events = json.loads(lineage.airflow_settings(container_env(name))["AIRFLOW__OPENLINEAGE__TRANSPORT"])
    path = events["transport"]["log_file_path"]
    mounts = [volume.split(":") for volume in SERVICES[name].get("volumes", [])]
    assert any(source == "lineage" and path.startswith(target + "/") for source, target, *_ in mounts), \
        f"{name} writes {path} outside the lineage volume"


def test_every_published_web_ui_and_http_api_wants_a_login():
    """Kafka Connect's REST API (basic auth, as natively), Kafka UI (login form), Mailpit's UI and API (basic
    auth) and JupyterLab (token) each want a generated secret; Kafka UI logs in to Connect."""
    connect, ui, mail = container_env("connect"), container_env("kafka-ui"), container_env("mailpit")
    assert connect["CONNECT_REST_EXTENSION_CLASSES"].endswith(".BasicAuthSecurityRestExtension")
    jaas = "./stack/config/connect-rest-jaas.conf:/opt/tidewater/connect-rest-jaas.conf:ro"
    assert jaas in SERVICES["connect"]["volumes"]
    assert "-Djava.security.auth.login.config=/opt/tidewater/connect-rest-jaas.conf" in connect["KAFKA_OPTS"]
    credentials = re.search(r"-Dtidewater\.connect\.credentials=(\S+)", connect["KAFKA_OPTS"])[1]
    start = " ".join(SERVICES["connect"]["command"])
    assert f"> {credentials})" in start and "exec /docker-entrypoint.sh start" in start
    assert connect["TIDEWATER_CONNECT_PASSWORD"] == GENERATED["TIDEWATER_CONNECT_PASSWORD"]
    assert "${tidewater.connect.credentials}" in (REPO_ROOT / "stack" / "config" / "connect-rest-jaas.conf").read_text()
    assert "rest.extension.classes=" + connect["CONNECT_REST_EXTENSION_CLASSES"] in STACK_SH
    assert (ui["AUTH_TYPE"], ui["SPRING_SECURITY_USER_PASSWORD"]) == ("LOGIN_FORM",
                                                                     GENERATED["TIDEWATER_KAFKA_UI_PASSWORD"])
    assert ui["KAFKA_CLUSTERS_0_KAFKACONNECT_0_PASSWORD"] == GENERATED["TIDEWATER_CONNECT_PASSWORD"]
    reader = (f'username="{DEFAULTS["TIDEWATER_KAFKA_READER_USER"]}" '
              f'password="{GENERATED["TIDEWATER_KAFKA_READER_PASSWORD"]}"')
    assert reader in ui["KAFKA_CLUSTERS_0_PROPERTIES_SASL_JAAS_CONFIG"]
    assert ui["KAFKA_CLUSTERS_0_PROPERTIES_SECURITY_PROTOCOL"] == "SASL_PLAINTEXT"
    assert mail["MP_UI_AUTH"] == f"{DEFAULTS['TIDEWATER_MAIL_UI_USER']}:{GENERATED['TIDEWATER_MAIL_UI_PASSWORD']}"
    assert container_env("jupyter")["TIDEWATER_JUPYTER_TOKEN"] == GENERATED["TIDEWATER_JUPYTER_TOKEN"]


def test_native_connect_url_is_still_beside_kafka():
    assert airflow_connections(DEFAULTS)["TIDEWATER_CONNECT_URL"] == (
        f"http://{DEFAULTS['TIDEWATER_KAFKA_HOST']}:{DEFAULTS['TIDEWATER_CONNECT_PORT']}")


def test_only_minio_and_its_setup_get_the_root_credentials():
    root_secret = DEFAULTS["TIDEWATER_S3_SECRET_KEY"]
    holders = sorted(name for name in SERVICES if root_secret in container_env(name).values())
    assert holders == ["minio", "minio-setup"]
    assert container_env("minio")["MINIO_ROOT_USER"] == DEFAULTS["TIDEWATER_S3_ACCESS_KEY"]
    jupyter = container_env("jupyter")
    assert "volumes" not in SERVICES["jupyter"], "Jupyter reads the marts through their catalog, no files"
    assert set(jupyter) == {*READER_VARIABLES, "TIDEWATER_JUPYTER_TOKEN"}, (
        "Jupyter gets the marts reader's credentials (tidewater.marts_reader.READER_VARIABLES) and its token alone")


def test_jupyter_attaches_the_marts_as_their_read_only_reader_through_the_compose_services():
    metadata, s3, data_path = reader_connections(container_env("jupyter"))
    assert (metadata.host, metadata.port, metadata.login, metadata.password, metadata.schema) == (
        "shop-db", 5432, DEFAULTS["TIDEWATER_MARTS_READER_USER"], DEFAULTS["TIDEWATER_MARTS_READER_PASSWORD"],
        DEFAULTS["TIDEWATER_MARTS_CATALOG_DB"])
    assert (s3.extra["endpoint_url"], s3.login, s3.password) == (
        "http://minio:9000", DEFAULTS["TIDEWATER_S3_MARTS_READER_ACCESS_KEY"],
        DEFAULTS["TIDEWATER_S3_MARTS_READER_SECRET_KEY"])
    assert data_path == f"s3://{DEFAULTS['TIDEWATER_LAKE_BUCKET']}/marts/"


def test_jupyter_runs_the_native_notebook_servers_configuration_and_notebooks():
    """The image holds notebooks/ and starts JupyterLab with stack/config/jupyter_server_config.py, as
    `make notebook` does (stack/stack.sh notebook_up): the same notebooks under the same /notebook/ path."""
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    jupyter = dockerfile[dockerfile.index("FROM airflow AS jupyter"):]
    assert "pip install --no-cache-dir --no-deps -r notebooks/requirements.txt" in jupyter
    assert "COPY --chown=airflow:root notebooks ./notebooks" in jupyter
    command = json.loads(re.search(r"^CMD (\[.*\])$", jupyter, re.M)[1])
    assert "--config=/opt/tidewater/stack/config/jupyter_server_config.py" in command
    assert "--config=\"$ROOT/stack/config/jupyter_server_config.py\"" in STACK_SH
    health = " ".join(SERVICES["jupyter"]["healthcheck"]["test"])
    assert "http://localhost:8888/notebook/api/status?token=" + GENERATED["TIDEWATER_JUPYTER_TOKEN"] in health


def test_minio_policies_give_the_pipeline_the_lake_and_readers_only_the_marts():
    from tidewater.gate.publish import PREFIX as MARTS_PREFIX

    policies = {path.stem: json.loads(path.read_text()) for path in (REPO_ROOT / "docker" / "minio").glob("*.json")}
    assert set(policies) == {"tidewater-pipeline", "tidewater-marts-reader"}
    pipeline = {resource for statement in policies["tidewater-pipeline"]["Statement"]
                for resource in statement["Resource"]}
    assert pipeline == {"arn:aws:s3:::${bucket}", "arn:aws:s3:::${bucket}/*"}
    reader = policies["tidewater-marts-reader"]["Statement"]
    actions = {action for statement in reader for action in statement["Action"]}
    assert actions == {"s3:ListBucket", "s3:GetObject"}
    assert {resource for statement in reader for resource in statement["Resource"]} == {
        "arn:aws:s3:::${bucket}", f"arn:aws:s3:::${{bucket}}/{MARTS_PREFIX}/*"}
    setup = (REPO_ROOT / "docker" / "minio" / "setup.sh").read_text()
    assert all(f"user_with_policy {name} " in setup for name in policies)


# ------------------------------------------------------------------ wiring


def test_long_running_services_have_healthchecks_and_restart():
    for name, service in SERVICES.items():
        if is_one_shot(service):
            assert "healthcheck" not in service and "ports" not in service, f"{name} is a one-shot job"
        else:
            assert service.get("healthcheck", {}).get("test"), f"{name} runs for good: give it a healthcheck"
            assert service.get("restart") == "unless-stopped", f"{name}: restart: unless-stopped"


def test_depends_on_waits_for_health_or_completion():
    for name, service in SERVICES.items():
        for dependency, spec in (service.get("depends_on") or {}).items():
            assert dependency in SERVICES, f"{name} depends on an unknown service {dependency}"
            target = SERVICES[dependency]
            expected = "service_completed_successfully" if is_one_shot(target) else "service_healthy"
            assert spec.get("condition") == expected, f"{name} -> {dependency}: condition {expected}"
            assert not target.get("profiles") or service.get("profiles"), (
                f"{name} depends on {dependency}, which only starts with a profile")


def test_published_ports_equal_the_native_ports_on_the_bind_address():
    bind = DEFAULTS["TIDEWATER_BIND_ADDRESS"]
    for name, service in SERVICES.items():
        published = {}
        for port in service.get("ports", []):
            host_ip, host_port, container_port = port.split(":")
            assert host_ip == bind, f"{name} publishes {port} beyond TIDEWATER_BIND_ADDRESS"
            published[int(container_port)] = host_port
        expected = {port: DEFAULTS[setting] for port, setting in PUBLISHED.get(name, {}).items()}
        assert published == expected, f"{name} publishes {published}, expected {expected}"
    assert "ports" not in SERVICES["airflow-db"], "Airflow's database stays inside the network"
    for native, service in NATIVE_SERVICES.items():
        assert f"health_{native}()" in STACK_SH and service in SERVICES
    kafka = SERVICES["kafka"]["environment"]
    assert f"HOST://127.0.0.1:{DEFAULTS['TIDEWATER_KAFKA_PORT']}" in kafka["KAFKA_ADVERTISED_LISTENERS"]


def test_host_ports_lie_below_the_ephemeral_range():
    """A port in Linux's ephemeral range (32768-60999) can be held by any outgoing connection: a service
    restarting on it then fails with "address already in use" (seen in CI: the api-server on 58080)."""
    ports = {name: int(value) for name, value in DEFAULTS.items() if name.endswith("_PORT")}
    assert {"TIDEWATER_PG_PORT", "TIDEWATER_AIRFLOW_PORT", "TIDEWATER_KAFKA_PORT"} <= ports.keys()
    ephemeral = {name: port for name, port in ports.items() if port >= 32768}
    assert not ephemeral, f"move these below 32768: {ephemeral}"
    defaults = Settings()
    assert defaults.cdc_db_port == ports["TIDEWATER_PG_PORT"]
    assert defaults.connect_url.endswith(f":{ports['TIDEWATER_CONNECT_PORT']}")
    assert defaults.airflow_url.endswith(f":{ports['TIDEWATER_AIRFLOW_PORT']}")
    assert defaults.docs_url.startswith(f"{defaults.airflow_url}/")
    assert defaults.s3_console_url.endswith(f":{ports['TIDEWATER_S3_CONSOLE_PORT']}")


def test_images_are_pinned_to_the_native_versions():
    images = {name: service["image"] for name, service in SERVICES.items()}
    for name, image in images.items():
        assert re.fullmatch(r"[\w./-]+:[\w.-]+", image) and not image.endswith(":latest"), f"{name}: pin {image}"
    dockerfiles = [(REPO_ROOT / "Dockerfile").read_text(), (REPO_ROOT / "docker" / "minio.Dockerfile").read_text()]
    bases = [line.split()[1] for text in dockerfiles for line in text.splitlines() if line.startswith("FROM ")]
    for base in bases:
        assert base == "airflow" or (":" in base and not base.endswith(":latest")), f"pin the base image {base}"
    kafka_pom = (REPO_ROOT / "stack" / "maven" / "kafka" / "pom.xml").read_text()
    debezium_pom = (REPO_ROOT / "stack" / "maven" / "debezium" / "pom.xml").read_text()
    assert images["kafka"] == "apache/kafka:" + re.search(r"<kafka.version>(.+?)<", kafka_pom)[1]
    assert images["connect"] == "quay.io/debezium/connect:" + re.search(
        r"debezium-connector-postgres</artifactId><version>(.+?)<", debezium_pom)[1]
    native_pg = re.search(r"PG_BIN=/usr/lib/postgresql/(\d+)/bin", STACK_SH)[1]
    assert images["shop-db"].split(":")[1].split(".")[0] == native_pg == images["airflow-db"].split(":")[1][:2]
    airflow = re.search(r"^apache-airflow==(.+)$", (REPO_ROOT / "requirements.txt").read_text(), re.M)[1]
    assert f"apache/airflow:{airflow}-python3.11" in bases
    native_minio = re.search(r"^MINIO_VERSION=(\S+)", STACK_SH, re.M)[1]
    assert f"ARG MINIO_VERSION={native_minio}" in dockerfiles[1]
    native_mc = re.search(r"^MC_VERSION=(\S+)", STACK_SH, re.M)[1]
    assert f"ARG MC_VERSION={native_mc}" in dockerfiles[1]


def native(value: str) -> str:
    """A value stack/stack.sh writes, with its locals ($plain, $scram) and the settings ($NAME) expanded as compose
    expands its variables (the defaults and a generated .env)."""
    for name, definition in re.findall(r'local (\w+)="(.*)"\n', STACK_SH):
        value = value.replace(f"${name}", definition.replace('\\"', '"'))
    return re.sub(r"\$(\w+)", lambda match: DEFAULTS[match[1]], value)


def kafka_variable(key: str) -> str:
    """The apache/kafka image's variable for server property `key` (KAFKA_, "_" → "__", "-" → "___", "." → "_")."""
    return "KAFKA_" + key.replace("_", "__").replace("-", "___").replace(".", "_").upper()


def test_kafka_and_connect_are_configured_like_the_native_stack():
    server = heredoc("server.properties")
    kafka = SERVICES["kafka"]["environment"]
    node_specific = {"controller.quorum.bootstrap.servers", "listeners", "advertised.listeners",
                     "listener.security.protocol.map", "log.dirs", "inter.broker.listener.name"}
    for key, value in server.items():
        if key not in node_specific and not key.startswith("listener.name.clients."):
            assert kafka.get(kafka_variable(key)) == native(value), f"Kafka {key}={value} natively"
    # Every listener wants SASL, each the same mechanisms and logins as the native one (CLIENTS natively).
    protocols = dict(item.split(":") for item in kafka["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    assert set(protocols.values()) == {"SASL_PLAINTEXT"} and set(protocols) == {"CONTROLLER", "INTERNAL", "HOST"}
    for listener in ("internal", "host"):
        for key, value in server.items():
            if key.startswith("listener.name.clients."):
                compose = kafka[kafka_variable(key.replace(".clients.", f".{listener}."))]
                assert compose == native(value), (listener, key)
    assert kafka["KAFKA_INTER_BROKER_LISTENER_NAME"] == "INTERNAL"
    worker = heredoc("worker.properties")
    named = {"bootstrap.servers": "BOOTSTRAP_SERVERS", "group.id": "GROUP_ID", "key.converter": "KEY_CONVERTER",
             "value.converter": "VALUE_CONVERTER", "config.storage.topic": "CONFIG_STORAGE_TOPIC",
             "offset.storage.topic": "OFFSET_STORAGE_TOPIC", "status.storage.topic": "STATUS_STORAGE_TOPIC"}
    connect = SERVICES["connect"]["environment"]
    node_specific = {"bootstrap.servers", "listeners", "rest.advertised.host.name", "rest.advertised.port",
                     "plugin.path"}
    for key, value in worker.items():
        if key not in node_specific:
            variable = named.get(key, "CONNECT_" + key.upper().replace(".", "_"))
            assert connect.get(variable) == native(value), f"Kafka Connect {key}={value} natively ({variable})"
    assert connect["BOOTSTRAP_SERVERS"] == "kafka:9092"


def test_the_proxy_routes_the_same_paths_to_services_that_exist():
    """One Caddyfile for both: compose's proxy gives each upstream variable a service and the port that service
    listens on inside the network; stack/stack.sh gives the same variables the native ports."""
    caddyfile = (REPO_ROOT / "stack" / "config" / "Caddyfile").read_text()
    used = set(re.findall(r"\{\$([A-Z_]+)\}", caddyfile))
    proxy = SERVICES["proxy"]
    assert used == set(proxy["environment"]), "the Caddyfile and compose's proxy name different variables"
    assert re.search(r"^\s*admin off$", caddyfile, re.M), "Caddy's admin API would open a way in without a login"
    assert "./stack/config/Caddyfile:/etc/caddy/Caddyfile:ro" in proxy["volumes"]
    native = re.search(r"^start_proxy\(\) \{\n(.*?)^\}", STACK_SH, re.S | re.M)[1]
    assert {name for name in used if f"{name}=" in native} == used, "stack/stack.sh start_proxy must set each one"
    listening = {name: {*PUBLISHED.get(name, {})} for name in SERVICES}
    listening["mailpit"].add(8025)
    for name in sorted(name for name in used if name.startswith("UPSTREAM_")):
        host, port = proxy["environment"][name].split(":")
        assert host in SERVICES, f"{name} names {host}, which is no compose service"
        assert int(port) in listening[host], f"{name}: {host} does not listen on {port}"
    routes = set(re.findall(r"^\s*handle(?:_path)? (/[a-z]+/)\*", caddyfile, re.M))
    assert routes == {"/minio/", "/mail/", "/notebook/"}
    assert SERVICES["mailpit"]["environment"]["MP_WEBROOT"] == "mail", "Mailpit must serve under /mail/ as natively"


# ------------------------------------------------------------------ docker compose itself


def _compose_plugin() -> list[str] | None:
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0:
        return [docker, "compose"]
    return None


def test_docker_compose_config_accepts_the_files():
    command = _compose_plugin()
    if command is None:
        pytest.skip("the docker compose plugin is not installed (docker compose config needs no engine, only it)")
    # --env-file: interpolate from the defaults alone, whatever a developer's .env says.
    result = subprocess.run(
        [*command, "--project-directory", str(REPO_ROOT), "-f", str(COMPOSE_FILE), "--env-file",
         str(REPO_ROOT / "stack" / "defaults.env"), "--profile", "jupyter", "config", "--format", "json"],
        capture_output=True, text=True, cwd=REPO_ROOT,
        env={"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(Path.home())},
    )
    assert result.returncode == 0, result.stderr
    model = json.loads(result.stdout)
    assert model["name"] == "tidewater"
    assert set(model["services"]) == set(SERVICES)
    # A developer's .env reaches the containers through env_file: leave what it sets out of the comparison.
    dot_env = REPO_ROOT / ".env"
    local = read_env_file(dot_env).keys() if dot_env.exists() else set()
    for name, service in model["services"].items():
        published = sorted((int(port["target"]), port["published"]) for port in service.get("ports", []))
        assert published == sorted((int(p.split(":")[2]), p.split(":")[1]) for p in SERVICES[name].get("ports", []))
        assert service["image"] == SERVICES[name]["image"]
        assert bool(service.get("healthcheck")) == bool(SERVICES[name].get("healthcheck"))
        # This test's reading of the files (every check above relies on it) equals docker compose's.
        environment = {key: value for key, value in (service.get("environment") or {}).items() if key not in local}
        assert environment == {key: value for key, value in container_env(name).items() if key not in local}, name


def test_the_celery_profile_runs_redis_and_workers_that_scale():
    worker, redis = SERVICES["airflow-worker"], SERVICES["redis"]
    assert worker["profiles"] == redis["profiles"] == ["celery"]
    assert worker["command"][:2] == ["celery", "worker"]
    assert not {"container_name", "ports"} & worker.keys(), "`--scale airflow-worker=N` needs neither"
    assert "ports" not in redis, "the broker stays inside the network"
    assert worker["image"] == SERVICES["airflow-scheduler"]["image"]
    assert container_env("airflow-worker") == container_env("airflow-scheduler")
    assert container_env("airflow-scheduler")["TIDEWATER_AIRFLOW_EXECUTOR"] == DEFAULTS["TIDEWATER_AIRFLOW_EXECUTOR"]
    assert redis["environment"]["REDIS_PASSWORD"] == GENERATED["TIDEWATER_REDIS_PASSWORD"]
    assert "healthcheck" in worker and "healthcheck" in redis
