"""Pure logic of a cdc_drain run: waiting for a running warehouse run (drains and warehouse runs take turns), and the
run's summary from its slices and the results of the drains that succeeded."""

from __future__ import annotations

import time

from tidewater import assets, drain


def test_a_drain_waits_while_a_warehouse_run_is_running_and_not_longer():
    answers = iter([1, 1, 0])
    asked: list[int] = []

    def running() -> int:
        asked.append(1)
        return next(answers)

    waited = drain.yield_to_warehouse(running, timeout_s=10, poll_s=0.05)
    assert len(asked) == 3 and 0.09 < waited < 1.0


def test_a_drain_waits_for_the_run_that_reads_the_previous_drain_until_it_started_and_ended():
    # The previous drain landed during a warehouse run: the run that reads it starts only once that one ended.
    running = iter([1, 0, 0, 1, 0])
    unread = iter([True, True, False])  # asked only while none runs; read once the next run has started
    waited = drain.yield_to_warehouse(lambda: next(running), timeout_s=10, poll_s=0.05, unread=lambda: next(unread))
    assert 0.18 < waited < 1.0
    # A run that never starts (a paused DAG) holds the drain only for the grace time.
    waited = drain.yield_to_warehouse(lambda: 0, timeout_s=10, poll_s=0.05, unread=lambda: True, start_grace_s=0.2)
    assert 0.2 <= waited < 1.0


def test_a_warehouse_run_that_does_not_end_holds_a_drain_back_only_until_the_limit():
    started = time.monotonic()
    waited = drain.yield_to_warehouse(lambda: 1, timeout_s=0.3, poll_s=0.05)
    assert 0.3 <= waited < 1.0 and time.monotonic() - started < 1.0


def test_no_wait_when_turned_off_or_no_warehouse_run_is_running():
    def never_asked() -> int:
        raise AssertionError("TIDEWATER_DRAIN_YIELD_SECONDS=0 must not ask")

    assert drain.yield_to_warehouse(never_asked, timeout_s=0) < 0.01
    assert drain.yield_to_warehouse(lambda: 0, timeout_s=10, unread=lambda: False) < 0.01


def test_a_drain_is_unread_until_a_warehouse_run_read_its_snapshot():
    assert not assets.unread(None, None)  # no drain yet
    assert assets.unread(40, None)  # no warehouse run yet
    assert assets.unread(41, "40") and not assets.unread(40, "40") and not assets.unread(39, "41")


def _result(topic: str, partition: int, rows: int, lag: int, snapshot: int | None) -> dict:
    return {"topic": topic, "rows": rows, "remaining_lag": lag, "snapshot_id": snapshot,
            "partitions": [{"partition": partition}]}


def test_the_run_summary_adds_up_partitions_and_names_the_slices_without_a_result():
    slices = [{"topic": "t.orders", "partition": 0}, {"topic": "t.orders", "partition": 1},
              {"topic": "t.items", "partition": 0}, {"topic": "t.items", "partition": 1}]
    results = [_result("t.orders", 0, 5, 1, 40), _result("t.orders", 1, 2, 0, 42), _result("t.items", 0, 0, 3, None)]
    summary = drain.run_summary(slices, results)
    assert summary.rows == {"t.orders": 7}  # a partition without rows counts in the lag, not in rows
    assert summary.remaining_lag == {"t.orders": 1, "t.items": 3}
    assert summary.snapshot_id == 42  # the run's last commit
    assert summary.failed == ["t.items[1]"]
    assert summary.extra() == {"rows": {"t.orders": 7}, "remaining_lag": {"t.orders": 1, "t.items": 3},
                               "snapshot_id": 42}
    assert drain.run_summary([], []).snapshot_id is None


def _slices(partitions: dict[str, int]) -> list[dict]:
    return [{"topic": topic, "partition": p, "until": 100} for topic, n in partitions.items() for p in range(n)]


def test_slices_are_shared_over_the_tasks_by_records_the_largest_first():
    slices = _slices({"t.orders": 4, "t.items": 1, "t.customers": 1})
    pending = {("t.orders", p): 1000 for p in range(4)} | {("t.items", 0): 900, ("t.customers", 0): 10}
    shares = drain.share_slices(slices, pending, tasks=2)
    assert len(shares) == 2
    assert sorted(s for share in shares for s in map(str, share["slices"])) == sorted(map(str, slices))  # each once
    loads = [sum(pending[(s["topic"], s["partition"])] for s in share["slices"]) for share in shares]
    assert sorted(loads) == [2010, 2900]  # the busy topic's partitions split 2 + 2, the small slices filling up
    assert [sorted(s["partition"] for s in share["slices"] if s["topic"] == "t.orders") for share in shares] \
        in ([[0, 2], [1, 3]], [[1, 3], [0, 2]])
    first = shares[0]["slices"]
    assert first == sorted(first, key=lambda s: (s["topic"], s["partition"]))
    assert shares[0]["label"] == ", ".join(f"{s['topic']}[{s['partition']}]" for s in first)


def test_no_more_tasks_than_slices_and_labels_fit_the_map_index():
    slices = _slices({f"shop.shop.table_with_a_long_name_{n}": 1 for n in range(40)})
    assert [len(share["slices"]) for share in drain.share_slices(slices[:3], {}, tasks=8)] == [1, 1, 1]
    (share,) = drain.share_slices(slices, {}, tasks=1)
    assert len(share["slices"]) == 40
    assert len(share["label"]) <= drain.LABEL_MAX and share["label"].endswith(" … (40 slices)")
    assert drain.share_slices([], {}, tasks=2) == []
