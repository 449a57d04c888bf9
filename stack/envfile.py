"""Generated secrets and shell-quoted settings files, for the native stack and for docker compose.

Standard library only (compose users run it with the system's Python 3.11, no virtualenv; it reads files
with tidewater.config, which imports nothing else):

  python3 stack/envfile.py secrets FILE     add a strong random value for every secret FILE lacks (mode 0600),
                                            keep the ones it has; prints the names it added
  python3 stack/envfile.py quote KEY ...    KEY='value' lines of the environment's values, shell-quoted
  python3 stack/envfile.py exports FILE     `export KEY='value'` for each KEY of FILE the environment lacks
                                            (for bash's eval: what is exported already wins)
  python3 stack/envfile.py names            the secrets' variable names
  python3 stack/envfile.py setup-names      the names of the secrets Airflow never gets (set-up alone)
  python3 stack/envfile.py airflow-passwords FILE USER PASSWORD_KEY
                                            Airflow's simple auth manager passwords file (JSON, mode 0600)

FILE is a `KEY='value'` file that both bash (`set -a; . FILE`) and docker compose (`.env`) read. Values are
generated from letters and digits alone (safe in URLs, shells and SQL, and never read as an option by a
command-line tool, as a value starting with `-` is by mc), the Fernet key as Airflow wants it (32 random bytes,
urlsafe base64).
"""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import shlex
import string
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "include"))
from tidewater.config import ConfigError, read_env_file  # standard library only, like this file

# Every secret of a deployment. The native stack and compose read them from the generated file; none has a
# default anywhere in the repository (tests/unit/test_secrets.py scans the committed files).
SECRETS = (
    "TIDEWATER_PG_SUPERUSER_PASSWORD",
    "TIDEWATER_SHOP_PASSWORD",
    "TIDEWATER_DEBEZIUM_PASSWORD",
    "TIDEWATER_AIRFLOW_DB_PASSWORD",
    "TIDEWATER_AIRFLOW_DB_SUPERUSER_PASSWORD",
    "TIDEWATER_LAKE_CATALOG_PASSWORD",
    "TIDEWATER_MARTS_READER_PASSWORD",
    "TIDEWATER_S3_SECRET_KEY",
    "TIDEWATER_S3_PIPELINE_SECRET_KEY",
    "TIDEWATER_S3_MARTS_READER_SECRET_KEY",
    "TIDEWATER_AIRFLOW_ADMIN_PASSWORD",
    "TIDEWATER_AIRFLOW_SECRET_KEY",
    "TIDEWATER_AIRFLOW_JWT_SECRET",
    "TIDEWATER_AIRFLOW_FERNET_KEY",
    "TIDEWATER_JUPYTER_TOKEN",
    "TIDEWATER_CONNECT_PASSWORD",
    "TIDEWATER_KAFKA_ADMIN_PASSWORD",
    "TIDEWATER_KAFKA_DEBEZIUM_PASSWORD",
    "TIDEWATER_KAFKA_PIPELINE_PASSWORD",
    "TIDEWATER_KAFKA_READER_PASSWORD",
    "TIDEWATER_KAFKA_UI_PASSWORD",
    "TIDEWATER_MAIL_UI_PASSWORD",
    "TIDEWATER_REDIS_PASSWORD",
)

# The secrets of set-up alone (superusers, MinIO's root): Airflow's processes never get them (stack/stack.sh
# airflow_env, docker/services.yaml x-airflow).
SETUP_SECRETS = ("TIDEWATER_PG_SUPERUSER_PASSWORD", "TIDEWATER_AIRFLOW_DB_SUPERUSER_PASSWORD",
                 "TIDEWATER_S3_SECRET_KEY", "TIDEWATER_KAFKA_ADMIN_PASSWORD")


ALPHABET = string.ascii_letters + string.digits


def generate(name: str) -> str:
    """A new value for the secret `name`: letters and digits, at least 256 random bits (512 for the JWT secret:
    HS512 wants a key as long as its hash, RFC 7518 3.2); the Fernet key in the form Airflow reads."""
    if name.endswith("_FERNET_KEY"):
        return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
    length = 86 if name.endswith("_JWT_SECRET") else 43  # 43 * log2(62) = 256.03 bits
    return "".join(secrets.choice(ALPHABET) for _ in range(length))


def read(path: Path) -> dict[str, str]:
    """The KEY=value lines of `path`, shell quoting undone (tidewater.config.read_env_file)."""
    try:
        return read_env_file(path)
    except ConfigError as error:
        raise SystemExit(str(error)) from None


def line(key: str, value: str) -> str:
    """`KEY='value'`: one value, quoted for bash and for docker compose's .env alike."""
    if "\n" in value or "\r" in value:
        raise SystemExit(f"{key}: a value must be one line")
    return f"{key}={shlex.quote(value)}\n"


def write_private(path: Path, text: str) -> None:
    """Writes `text` to `path` readable by its owner only (mode 0600 from the start, then renamed into place)."""
    temporary = path.with_name(path.name + ".tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as out:
        out.write(text)
    os.chmod(temporary, 0o600)
    os.replace(temporary, path)


def ensure_secrets(path: Path, names: tuple[str, ...] = SECRETS) -> list[str]:
    """Every secret in `names` present in `path` (kept if set, generated if missing); returns the added names."""
    text = path.read_text() if path.exists() else (
        "# Secrets of this deployment, generated by stack/envfile.py. Never commit this file.\n")
    present = read(path) if path.exists() else {}
    added = [name for name in names if not present.get(name)]
    if added or not path.exists():
        text = text if text.endswith("\n") or not text else text + "\n"
        write_private(path, text + "".join(line(name, generate(name)) for name in added))
    else:
        os.chmod(path, 0o600)
    return added


def main(argv: list[str]) -> None:
    command, *args = argv or ["help"]
    if command == "secrets" and len(args) == 1:
        for name in ensure_secrets(Path(args[0])):
            print(f"generated {name}", file=sys.stderr)
    elif command == "quote" and args:
        missing = [key for key in args if key not in os.environ]
        if missing:
            raise SystemExit(f"not set: {', '.join(missing)}")
        sys.stdout.write("".join(line(key, os.environ[key]) for key in args))
    elif command == "exports" and len(args) == 1:
        values = read(Path(args[0]))
        bad = [key for key in values if not re.fullmatch(r"[A-Z_][A-Z0-9_]*", key)]
        if bad:
            raise SystemExit(f"{args[0]}: not a variable name: {bad[0][:40]!r}")
        sys.stdout.write("".join("export " + line(key, value) for key, value in values.items()
                                 if key not in os.environ))
    elif command == "names" and not args:
        print(*SECRETS)
    elif command == "setup-names" and not args:
        print(*SETUP_SECRETS)
    elif command == "airflow-passwords" and len(args) == 3:
        target, user, password_key = args
        write_private(Path(target), json.dumps({user: os.environ[password_key]}) + "\n")
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
