from __future__ import annotations

import pytest

from tidewater_shop import migrate


def test_packaged_migrations_are_numbered_without_gaps():
    versions = [m.version for m in migrate.discover()]

    assert versions == list(range(1, len(versions) + 1))


def test_badly_named_migration_is_refused(tmp_path):
    (tmp_path / "1_init.sql").write_text("select 1")

    with pytest.raises(migrate.MigrationError, match=r"NNNN_lowercase_name\.sql"):
        migrate.discover(tmp_path)


def test_checksum_changes_with_the_sql():
    a = migrate.Migration(1, "x", "select 1")
    b = migrate.Migration(1, "x", "select 2")

    assert a.checksum != b.checksum
