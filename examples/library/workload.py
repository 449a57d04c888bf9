"""The library example's workload: inserts, updates (one that leaves a TOASTed summary alone), deletes, and one
schema change. Each step is a function of a psycopg connection; `python examples/library/workload.py CONNINFO`
runs them all once on a database that has schema.sql applied."""

from __future__ import annotations

import random
import sys
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import psycopg

START = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)


def summary(rng: random.Random) -> str:
    """About 6 kB that does not compress: PostgreSQL stores it out of line."""
    return " ".join(f"{rng.getrandbits(64):016x}" for _ in range(360))


def seed(conn: psycopg.Connection, rng: random.Random, members: int = 30, books: int = 12) -> None:
    with conn.cursor() as cur:
        cur.executemany("INSERT INTO library.members VALUES (%s, %s, %s, %s, %s)",
                        [(m, f"Member {m}", f"member{m}@library.example", date(2025, 1, 1) + timedelta(days=m),
                          Decimal(m) / 4) for m in range(1, members + 1)])
        cur.executemany("INSERT INTO library.books VALUES (%s, %s, %s, %s)",
                        [(b, f"Book {b}", summary(rng), 100 + b) for b in range(1, books + 1)])
        cur.executemany("INSERT INTO library.loans (member_id, book_id, lent_at) VALUES (%s, %s, %s)",
                        [(m, b, START + timedelta(hours=m * b)) for m in range(1, members + 1, 3)
                         for b in range(1, books + 1, 4)])
    conn.commit()


def churn(conn: psycopg.Connection, rng: random.Random, rounds: int = 20) -> None:
    """Updates, new loans, returns, deletions, one transaction per round."""
    for step in range(rounds):
        members = [row[0] for row in conn.execute("SELECT member_id FROM library.members ORDER BY member_id")]
        member = rng.choice(members)
        conn.execute("UPDATE library.members SET fee_paid = fee_paid + 1.25 WHERE member_id = %s", (member,))
        conn.execute("UPDATE library.books SET pages = pages + 1 WHERE book_id = %s", (rng.randint(1, 12),))
        conn.execute("INSERT INTO library.loans (member_id, book_id, lent_at) VALUES (%s, %s, %s) "
                     "ON CONFLICT DO NOTHING", (member, rng.randint(1, 12), START + timedelta(days=step)))
        conn.execute("UPDATE library.loans SET returned_at = lent_at + interval '9 days' WHERE (member_id, book_id) "
                     "= (SELECT member_id, book_id FROM library.loans WHERE returned_at IS NULL "
                     "ORDER BY member_id, book_id LIMIT 1)")
        if step % 5 == 4:
            conn.execute("DELETE FROM library.loans WHERE (member_id, book_id) = (SELECT member_id, book_id "
                         "FROM library.loans WHERE returned_at IS NOT NULL ORDER BY member_id, book_id LIMIT 1)")
            conn.execute("DELETE FROM library.members WHERE member_id = (SELECT max(member_id) FROM library.members m "
                         "WHERE NOT EXISTS (SELECT FROM library.loans l WHERE l.member_id = m.member_id))")
        conn.commit()


def add_phone_column(conn: psycopg.Connection) -> None:
    """The schema change mid-stream: a new column, filled for some members."""
    conn.execute("ALTER TABLE library.members ADD COLUMN phone text")
    conn.execute("UPDATE library.members SET phone = '+49 30 ' || (1000 + member_id) WHERE member_id % 4 = 0")
    conn.commit()


def main(conninfo: str) -> None:
    rng = random.Random(7)
    with psycopg.connect(conninfo) as conn:
        seed(conn, rng)
        churn(conn, rng)
        add_phone_column(conn)
        churn(conn, rng)


if __name__ == "__main__":
    main(sys.argv[1])
