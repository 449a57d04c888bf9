"""Secrets are generated per installation, quoted wherever written, and none is committed."""

from __future__ import annotations

import re
import stat
import subprocess
import sys

import pytest

from tidewater.config import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "stack"))
import envfile

PAYLOADS = ["it's", 'say "hi"', "$(touch {canary})", "`touch {canary}`", "a;b&&c|d", "${HOME}", "back\\slash"]


def test_every_secret_is_generated_strong_and_kept_on_the_next_run(tmp_path):
    path = tmp_path / "secrets"

    added = envfile.ensure_secrets(path)
    first = envfile.read(path)
    again = envfile.ensure_secrets(path)

    assert added == list(envfile.SECRETS) and again == []
    assert envfile.read(path) == first
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(set(first.values())) == len(envfile.SECRETS)
    assert all(len(value) >= 43 for value in first.values())  # 32 random bytes, base64


def test_a_generated_secret_is_never_read_as_an_option():
    # mc (and most command-line tools) reads an argument starting with `-` as an option: a secret generated
    # with `-` first broke the stack's MinIO set-up in CI.
    values = [envfile.generate(name) for name in envfile.SECRETS if not name.endswith("_FERNET_KEY")
              for _ in range(200)]

    assert all(re.fullmatch(r"[A-Za-z0-9]{43,}", value) for value in values)
    assert len(set(values)) == len(values)


def test_a_secret_set_by_the_user_is_kept_and_only_missing_ones_are_added(tmp_path):
    path = tmp_path / ".env"
    path.write_text("TIDEWATER_PG_PORT=5433\nTIDEWATER_SHOP_PASSWORD='chosen by me'\n")

    added = envfile.ensure_secrets(path)

    values = envfile.read(path)
    assert "TIDEWATER_SHOP_PASSWORD" not in added and values["TIDEWATER_SHOP_PASSWORD"] == "chosen by me"
    assert values["TIDEWATER_PG_PORT"] == "5433" and set(added) == set(envfile.SECRETS) - {"TIDEWATER_SHOP_PASSWORD"}


def test_the_fernet_key_is_one_airflow_accepts():
    import base64

    from cryptography.fernet import Fernet

    key, other = envfile.generate("TIDEWATER_AIRFLOW_FERNET_KEY"), envfile.generate("TIDEWATER_AIRFLOW_FERNET_KEY")

    assert len(base64.urlsafe_b64decode(key)) == 32 and key != other
    token = Fernet(key).encrypt(b"a connection's password")  # what Airflow does with AIRFLOW__CORE__FERNET_KEY
    assert Fernet(key).decrypt(token) == b"a connection's password"


@pytest.mark.parametrize("payload", PAYLOADS)
def test_a_value_with_quotes_or_shell_syntax_is_inert_when_the_file_is_sourced(tmp_path, payload):
    canary = tmp_path / "pwned"
    value = payload.replace("{canary}", str(canary))
    path = tmp_path / "env"
    path.write_text(envfile.line("TIDEWATER_SHOP_PASSWORD", value))

    shell = subprocess.run(["bash", "-c", f'set -a; . "{path}"; printf %s "$TIDEWATER_SHOP_PASSWORD"'],
                           capture_output=True, text=True, check=True)
    exported = subprocess.run([sys.executable, str(REPO_ROOT / "stack" / "envfile.py"), "exports", str(path)],
                              capture_output=True, text=True, check=True, env={"PATH": "/usr/bin:/bin"})
    evaluated = subprocess.run(["bash", "-c", 'eval "$1"; printf %s "$TIDEWATER_SHOP_PASSWORD"', "-",
                                exported.stdout], capture_output=True, text=True, check=True)

    assert shell.stdout == value and evaluated.stdout == value and envfile.read(path) == {
        "TIDEWATER_SHOP_PASSWORD": value}
    assert not canary.exists()


def test_a_file_with_a_line_that_is_not_a_variable_is_refused(tmp_path):
    path = tmp_path / "env"
    path.write_text("$(touch x)=1\n")

    result = subprocess.run([sys.executable, str(REPO_ROOT / "stack" / "envfile.py"), "exports", str(path)],
                            capture_output=True, text=True)

    assert result.returncode != 0 and "not a variable name" in result.stderr


# A value assigned to a secret's name, in any committed file: `NAME=value`, `NAME: value`, `name: "value"`.
ASSIGNED = re.compile(r"(?<![${])\b(?P<name>[A-Z0-9_]*(?:PASSWORD|SECRET_KEY|SECRET|TOKEN|FERNET_KEY))\b\s*[=:]\s*"
                      r"(?P<value>[^\s#]*)")
# What may stand where a value would: a reference, an empty value, a placeholder.
NOT_A_VALUE = re.compile(r"^$|^['\"]?\$\{|^['\"]?\$[A-Z_]|^['\"]?<[^>]+>['\"]?$|^\(generated|^['\"]['\"]$|^os\.environ|"
                         r"^env\[|^settings\.|^self\.|^\{\{")
# Values every installation would share if they were committed (the defaults before generated secrets).
OLD_PUBLIC = ["tidewater-admin", "shop-app-secret", "debezium-secret", "airflow-secret", "lake-writer-secret",
              "marts-reader-secret", "tidewater-secret", "tidewater-pipeline-secret", "tidewater-local-only"]


def committed_files() -> list[str]:
    listed = subprocess.run(["git", "ls-files"], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    return [name for name in listed.stdout.splitlines() if (REPO_ROOT / name).is_file()]


def test_no_committed_file_holds_a_secret():
    found = []
    for name in committed_files():
        if name.startswith("tests/") or name == "LICENSE":
            continue  # tests hold payloads and throwaway values of their own scratch resources
        try:
            text = (REPO_ROOT / name).read_text()
        except UnicodeDecodeError:
            continue
        for number, line in enumerate(text.splitlines(), start=1):
            found += [f"{name}:{number}: {old}" for old in OLD_PUBLIC if old in line]
            for match in ASSIGNED.finditer(line):
                if match["name"] in envfile.SECRETS and not NOT_A_VALUE.match(match["value"]):
                    found.append(f"{name}:{number}: {match['name']}={match['value'][:12]}")
    assert found == []
