"""A gate batch reads every value the warehouse can hold, infinite dates and timestamps included."""

from __future__ import annotations

from datetime import UTC, date, datetime

import duckdb

from tidewater.gate.context import batch_frame


def test_infinite_dates_and_timestamps_become_the_extreme_values_pandas_can_hold():
    con = duckdb.connect()
    con.execute("""create table customers as select * from (values
        (1, 'infinity'::date, '-infinity'::timestamptz, timestamp '2020-01-01'),
        (2, date '2001-02-03', timestamptz '2026-01-01 10:00:00+00', 'infinity'::timestamp),
        (3, '-infinity'::date, 'infinity'::timestamptz, null)) t(id, birth_date, created_at, seen_at)""")

    frame = batch_frame(con, "select * from customers order by id")

    assert [value.date() for value in frame["birth_date"]] == [date(9999, 12, 31), date(2001, 2, 3), date(1, 1, 1)]
    assert [value.to_pydatetime() for value in frame["created_at"]] == [
        datetime(1, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, 10, tzinfo=UTC), datetime(9999, 12, 31, 23, 59, 59,
                                                                                       tzinfo=UTC)]
    assert str(frame["seen_at"][1]) == "9999-12-31 23:59:59" and frame["seen_at"].isna()[2]


def test_nullable_integers_hold_none_and_nullable_timestamps_stay_timestamps():
    con = duckdb.connect()
    con.execute("""create table orders as select * from (values
        (1, 10, timestamptz '2026-01-01 10:00:00+00'), (2, null, null)) t(id, customer_id, paid_at)""")

    frame = batch_frame(con, "select * from orders order by id")

    # pd.NA == 1 is neither true nor false: GX's pair expectations need None there.
    assert frame["customer_id"].tolist() == [10, None] and frame["customer_id"].dtype == object
    # NaT compares false and is a missing value to GX: the column stays datetime64 (cheap to fingerprint).
    assert str(frame["paid_at"].dtype).startswith("datetime64") and frame["paid_at"].isna().tolist() == [False, True]
