"""Settings are refused with a message naming the variable: non-finite, out-of-range and unknown names."""

from __future__ import annotations

import re
import subprocess

import pytest

from tidewater.config import REPO_ROOT, ConfigError, Settings, known_variables
from tidewater.drain.drainer import DrainLimits


@pytest.mark.parametrize(("env", "message"), [
    ({"TIDEWATER_DRAIN_MAX_BAD_SHARE": "nan"}, r"TIDEWATER_DRAIN_MAX_BAD_SHARE='nan' is not a finite number"),
    ({"TIDEWATER_DRAIN_MAX_BAD_SHARE": "inf"}, r"TIDEWATER_DRAIN_MAX_BAD_SHARE='inf' is not a finite number"),
    ({"TIDEWATER_DRAIN_MAX_BAD_SHARE": "1.5"}, r"TIDEWATER_DRAIN_MAX_BAD_SHARE='1.5': must be >= 0 and <= 1"),
    ({"TIDEWATER_DRAIN_MAX_BAD_SHARE": "-0.1"}, r"must be >= 0 and <= 1"),
    ({"TIDEWATER_DRAIN_MAX_RECORDS_PER_RUN": "0"}, r"MAX_RECORDS_PER_RUN='0': must be > 0 \(0 would drain nothing"),
    ({"TIDEWATER_DRAIN_FILE_MAX_ROWS": "-1"}, r"TIDEWATER_DRAIN_FILE_MAX_ROWS='-1': must be > 0"),
    ({"TIDEWATER_DRAIN_FILE_MAX_BYTES": "0"}, r"TIDEWATER_DRAIN_FILE_MAX_BYTES='0': must be > 0"),
    ({"TIDEWATER_DRAIN_INTERVAL_MINUTES": "0"}, r"TIDEWATER_DRAIN_INTERVAL_MINUTES='0': must be > 0"),
    ({"TIDEWATER_DRAIN_INTERVAL_MINUTES": "2.5"}, r"TIDEWATER_DRAIN_INTERVAL_MINUTES='2.5' is not a whole number"),
    ({"TIDEWATER_FRESHNESS_INTERVAL_MINUTES": "-5"}, r"must be > 0"),
    ({"TIDEWATER_FRESHNESS_MAX_TOPIC_LAG": "0"}, r"TIDEWATER_FRESHNESS_MAX_TOPIC_LAG='0': must be > 0"),
    ({"TIDEWATER_DRAIN_DEADLINE_MINUTES": "0"}, r"TIDEWATER_DRAIN_DEADLINE_MINUTES='0': must be > 0"),
    ({"TIDEWATER_WAREHOUSE_DEADLINE_MINUTES": "nan"}, r"not a finite number"),
    ({"TIDEWATER_GATE_MAX_CHANGE_AGE_HOURS": "-infinity"}, r"not a finite number"),
    ({"TIDEWATER_MARTS_KEEP_HOURS": "0"}, r"TIDEWATER_MARTS_KEEP_HOURS='0': must be > 0"),
    ({"TIDEWATER_CDC_TOPIC_PARTITIONS": "0"}, r"TIDEWATER_CDC_TOPIC_PARTITIONS='0': must be >= 1"),
    ({"TIDEWATER_CDC_HEARTBEAT_MS": "0"}, r"must be > 0 \(0 would turn Debezium's heartbeats off\)"),
    ({"TIDEWATER_ALERT_ERROR_MAX_LINES": "0"}, r"TIDEWATER_ALERT_ERROR_MAX_LINES='0': must be > 0"),
    ({"TIDEWATER_DOCS_REFRESH_MINUTES": "0"}, r"TIDEWATER_DOCS_REFRESH_MINUTES='0': must be > 0"),
])
def test_a_meaningless_number_is_refused_naming_the_variable(env, message):
    with pytest.raises(ConfigError, match=message):
        Settings.from_env(env)


def test_limits_at_their_bounds_are_accepted():
    settings = Settings.from_env({"TIDEWATER_DRAIN_MAX_BAD_SHARE": "0", "TIDEWATER_DOCS_REFRESH_MINUTES": "0.5",
                                  "TIDEWATER_DRAIN_MAX_RECORDS_PER_RUN": "1"})
    assert (settings.drain_max_bad_share, settings.docs_refresh_minutes, settings.drain_max_records_per_run) == \
        (0.0, 0.5, 1)
    assert Settings.from_env({"TIDEWATER_DRAIN_MAX_BAD_SHARE": "1"}).drain_max_bad_share == 1.0


def test_a_typo_in_a_variable_name_is_refused_naming_the_closest_setting():
    typo = "tidewater_drain_max_bad_shar".upper()  # built: the repository-wide name check must not find it
    with pytest.raises(ConfigError, match=rf"unknown setting {typo} \(did you mean TIDEWATER_DRAIN_MAX_BAD_SHARE\?\)"):
        Settings.from_env({typo: "0.1"})


def test_a_name_like_nothing_is_refused_without_a_guess():
    name = "TIDEWATER_" + "ZZZ_QQQ"
    with pytest.raises(ConfigError, match=rf"unknown setting {name}: no Tidewater component reads it") as error:
        Settings.from_env({name: "1"})
    assert "did you mean" not in str(error.value)


def test_stack_and_docker_variables_are_known_without_the_checkout_files():
    """The docker images carry neither stack/defaults.env nor .env.example: their names must be known anyway."""
    from tidewater import config

    files = set()
    for path in (REPO_ROOT / "stack" / "defaults.env", REPO_ROOT / ".env.example"):
        files |= set(re.findall(r"TIDEWATER_[A-Z0-9_]+", path.read_text()))
    fields = {f"TIDEWATER_{name.upper()}" for name in Settings.__dataclass_fields__}
    assert files - fields - config.OTHER_VARIABLES == set(), "add them to tidewater.config.OTHER_VARIABLES"
    Settings.from_env({name: "" for name in files})  # every one of them passes the name check


def test_every_variable_name_the_repository_uses_is_known():
    """stack.sh, docker compose, the tests and the benchmarks set TIDEWATER_* names: none may be refused (docs are
    prose: docs/alerts.md shows a typo)."""
    grep = subprocess.run(["git", "grep", "-h", "-o", "-E", r"TIDEWATER_[A-Z0-9_]+[A-Z0-9]", "--", ".", ":!*.md"],
                          cwd=REPO_ROOT, capture_output=True, text=True, check=True)  # docs show a typo on purpose
    used = set(grep.stdout.split())
    assert used - known_variables() == set()


def test_drain_limits_refuse_nan_and_zero():
    with pytest.raises(ValueError, match=r"max_bad_share=nan: must be a share in \[0, 1\]"):
        DrainLimits(max_bad_share=float("nan"))
    with pytest.raises(ValueError, match=r"max_records_per_run=0: must be a number > 0"):
        DrainLimits(max_records_per_run=0)
