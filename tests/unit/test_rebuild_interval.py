"""Which interval a warehouse run rebuilds."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tidewater.rebuild import IntervalError, rebuild_interval

DAY_START, DAY_END = datetime(2026, 1, 5, tzinfo=UTC), datetime(2026, 1, 6, tzinfo=UTC)
NO_PARAMS = {"interval_start": None, "interval_end": None}


@pytest.mark.parametrize("run_type", ["backfill", "scheduled"])
def test_backfill_and_daily_runs_rebuild_their_data_interval(run_type):
    assert rebuild_interval(NO_PARAMS, run_type, DAY_START, DAY_END) == (DAY_START.isoformat(), DAY_END.isoformat())


@pytest.mark.parametrize("run_type", ["asset_triggered", "manual"])
def test_data_and_manual_runs_have_no_interval(run_type):
    assert rebuild_interval(NO_PARAMS, run_type, DAY_START, DAY_END) == ("", "")


def test_params_win_over_the_data_interval():
    params = {"interval_start": "2026-02-01", "interval_end": "2026-02-03"}

    assert rebuild_interval(params, "backfill", DAY_START, DAY_END) == ("2026-02-01", "2026-02-03")


@pytest.mark.parametrize(("params", "message"), [
    ({"interval_start": "2026-02-01", "interval_end": None}, "give both dates"),
    ({"interval_start": "2026-02-03", "interval_end": "2026-02-01"}, "is not before"),
    ({"interval_start": "Feb 1", "interval_end": "2026-02-03"}, "interval_start='Feb 1' is not a date"),
])
def test_bad_params_say_what_to_do(params, message):
    with pytest.raises(IntervalError, match=message):
        rebuild_interval(params, "manual", None, None)
