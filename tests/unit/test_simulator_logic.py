from __future__ import annotations

import random

import pytest

from tidewater_shop import simulator


def test_schedule_paces_rate_times_duration_operations():
    offsets = list(simulator._schedule(rate=4, duration=2.5))

    assert offsets == [0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0, 2.25]


def test_description_is_large_enough_to_be_toasted():
    # PostgreSQL moves a row out of line above ~2 kB (TOAST_TUPLE_THRESHOLD).
    assert len(simulator.product_description(random.Random(1), "Kettle").encode()) > 2100


def test_bad_rate_is_refused_with_its_name():
    with pytest.raises(ValueError, match="--rate must be > 0"):
        simulator.run_traffic("dbname=unused", seed=1, rate=0, duration=1)
