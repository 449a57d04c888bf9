"""End to end, as a user runs it: shop traffic → Debezium → `airflow dags test cdc_drain` → `airflow dags test
warehouse` (dbt through Cosmos, GX gate, publish) → the published marts equal what PostgreSQL says, and a change
made after the first cycle is in the marts after the next one (tests.support.end_to_end). The same check under the
real scheduler and the CeleryExecutor is in test_celery.py."""

from __future__ import annotations

from tests.support import end_to_end


def test_published_marts_follow_the_shop_through_two_cycles(shop_changes):
    end_to_end.assert_marts_follow_the_shop_through_two_cycles(shop_changes, end_to_end.dags_test_cycle)
