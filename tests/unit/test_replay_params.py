"""cdc_drain's manual replay params → a Replay for the named topic, or a clear error."""

from __future__ import annotations

import pytest

from tidewater.drain import ParamError, replay_request
from tidewater.drain.drainer import Replay

TOPIC = "shop.shop.orders"


def test_no_replay_unless_the_topic_is_named():
    assert replay_request({}, TOPIC) is None
    assert replay_request({"replay_topic": "shop.shop.customers", "replay_from_offsets": {"0": 1}}, TOPIC) is None


def test_offsets_by_partition():
    assert replay_request({"replay_topic": TOPIC, "replay_from_offsets": {"0": "12", "1": 3}}, TOPIC) == \
        Replay(offsets={0: 12, 1: 3})


def test_timestamp_with_and_without_zone():
    with_zone = replay_request({"replay_topic": TOPIC, "replay_from_timestamp": "2026-11-23T08:00:00+01:00"}, TOPIC)
    naive_is_utc = replay_request({"replay_topic": TOPIC, "replay_from_timestamp": "2026-11-23T07:00:00"}, TOPIC)

    assert with_zone == naive_is_utc == Replay(timestamp_ms=1_795_417_200_000)


@pytest.mark.parametrize(("params", "message"), [
    ({"replay_from_offsets": {"0": 1}, "replay_from_timestamp": "2026-11-23T00:00:00Z"}, "exactly one of"),
    ({}, "exactly one of"),
    ({"replay_from_timestamp": "yesterday"}, "not an ISO 8601 time"),
    ({"replay_from_offsets": {"zero": 1}}, "expected {partition: offset}"),
])
def test_bad_replay_params_say_what_to_give(params, message):
    with pytest.raises(ParamError, match=message):
        replay_request({"replay_topic": TOPIC, **params}, TOPIC)
