"""Params of manual runs are checked before anything runs: cdc_drain's topics and offsets, the warehouse's
interval."""

from __future__ import annotations

import pytest

from tidewater.drain import ParamError, accept_quarantine, accept_recreated_topic, check_params, replay_request
from tidewater.drain.drainer import Replay
from tidewater.rebuild import IntervalError, rebuild_interval

TOPICS = ["shop.shop.customers", "shop.shop.orders"]


def test_a_replay_from_offsets_of_a_partition_the_topic_lacks_names_the_real_ones():
    partitions = {"shop.shop.customers": [0], "shop.shop.orders": [0, 1, 2]}
    with pytest.raises(ParamError, match=r"shop.shop.orders has no partition 3, 7 \(its partitions are 0, 1, 2\)"):
        check_params({"replay_topic": "shop.shop.orders", "replay_from_offsets": {"7": 1, "3": 0, "1": 5}}, TOPICS,
                     partitions)
    check_params({"replay_topic": "shop.shop.orders", "replay_from_offsets": {"2": 1}}, TOPICS, partitions)


def test_an_unknown_replay_topic_lists_the_real_ones():
    with pytest.raises(ParamError, match=r"replay_topic='shop.shop.order' is not a topic cdc_drain drains "
                                         r"\(did you mean 'shop.shop.orders'\?\); the topics are: "
                                         r"shop.shop.customers, shop.shop.orders"):
        check_params({"replay_topic": "shop.shop.order", "replay_from_offsets": {"0": 1}}, TOPICS)


def test_an_unknown_accept_quarantine_topic_is_refused():
    with pytest.raises(ParamError, match=r"accept_quarantine_topic='orders' is not a topic cdc_drain drains"):
        check_params({"accept_quarantine_topic": "orders"}, TOPICS)


def test_an_unknown_accept_recreated_topic_is_refused_and_a_known_one_names_only_itself():
    with pytest.raises(ParamError, match=r"accept_recreated_topic='shop.shop.order' is not a topic cdc_drain drains "
                                         r"\(did you mean 'shop.shop.orders'\?\)"):
        check_params({"accept_recreated_topic": "shop.shop.order"}, TOPICS)
    params = {"accept_recreated_topic": "shop.shop.orders"}
    check_params(params, TOPICS)
    assert [accept_recreated_topic(params, topic) for topic in TOPICS] == [False, True]


def test_replay_offsets_without_a_topic_are_refused():
    with pytest.raises(ParamError, match="need replay_topic"):
        check_params({"replay_from_offsets": {"0": 5}}, TOPICS)


def test_good_params_pass():
    check_params({}, TOPICS)
    check_params({"replay_topic": None, "replay_from_offsets": None, "accept_quarantine_topic": None}, TOPICS)
    check_params({"replay_topic": "shop.shop.orders", "replay_from_offsets": {"0": 0, "1": "7"},
                  "accept_quarantine_topic": "shop.shop.customers"}, TOPICS)


def test_accept_quarantine_names_one_topic():
    params = {"accept_quarantine_topic": "shop.shop.orders"}
    assert accept_quarantine(params, "shop.shop.orders") is True
    assert accept_quarantine(params, "shop.shop.customers") is False
    assert accept_quarantine({}, "shop.shop.orders") is False


@pytest.mark.parametrize("offsets", [
    [0, 12], [["0", 12]], {"0": None}, {"0": -1}, {"0": True}, {"0": 1.5}, {"0": "1.5"}, {"0": "-3"},
    {None: 1}, {"x": 1}, {True: 1}, "0:12", 12,
])
def test_malformed_offsets_are_a_param_error_not_a_type_error(offsets):
    with pytest.raises(ParamError, match=r"replay_from_offsets=.*: expected \{partition: offset\}.*non-negative"):
        replay_request({"replay_topic": TOPICS[1], "replay_from_offsets": offsets}, TOPICS[1])


def test_offsets_may_be_numbers_or_digits():
    assert replay_request({"replay_topic": TOPICS[1], "replay_from_offsets": {0: 0, "1": " 42"}}, TOPICS[1]) == \
        Replay(offsets={0: 0, 1: 42})


@pytest.mark.parametrize("timestamp", [12345, ["2026-01-01"], "2026-13-01T00:00:00Z"])
def test_a_timestamp_that_is_not_iso_text_is_refused(timestamp):
    with pytest.raises(ParamError, match="is not an ISO 8601 time"):
        replay_request({"replay_topic": TOPICS[1], "replay_from_timestamp": timestamp}, TOPICS[1])


@pytest.mark.parametrize(("params", "message"), [
    ({"interval_start": 20260105, "interval_end": "2026-01-07"}, r"interval_start=20260105 is not a date"),
    ({"interval_start": "20260105", "interval_end": "2026-01-07"}, r"interval_start='20260105' is not a date"),
    ({"interval_start": "2026-01-05", "interval_end": "2026-02-30"}, r"interval_end='2026-02-30' is not a date"),
    ({"interval_start": "2026-01-05T00:00", "interval_end": "2026-01-07"}, r"give it as YYYY-MM-DD"),
    ({"interval_start": "2026-01-05", "interval_end": "2026-01-05"}, r"is not before interval_end"),
    ({"full_refresh": "yes"}, r"full_refresh='yes': give true or false"),
])
def test_bad_interval_params_are_refused(params, message):
    with pytest.raises(IntervalError, match=message):
        rebuild_interval(params, "manual", None, None)
