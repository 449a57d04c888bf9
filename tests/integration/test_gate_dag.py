"""`airflow dags test warehouse` runs the gate after the build, publishes, and builds both docs sites."""

from __future__ import annotations

import duckdb

from tidewater import drain
from tidewater.gate import docs, publish
from tidewater.gate.suites import MARTS

from .lake_checks import wait_for_cdc_catch_up
from .test_cdc_drain_dag import airflow_dags_test
from .test_gate import differences


def test_dags_test_warehouse_gates_publishes_and_documents(shop_changes):
    wait_for_cdc_catch_up(shop_changes)
    drained = airflow_dags_test("cdc_drain")
    assert drained.returncode == 0, drained.stdout[-3000:]
    before = publish.current_publication(shop_changes)

    run = airflow_dags_test("warehouse")

    assert run.returncode == 0, run.stdout[-5000:]
    current = publish.current_publication(shop_changes)
    assert current is not None and current != before
    lake = drain.open_lake(shop_changes)
    assert lake.get_json(publish.POINTER_KEY)["publication_id"] == current
    with duckdb.connect(shop_changes.warehouse_path, read_only=True) as con:
        con.execute(f"attach '{publish.published_path(shop_changes)}' as published (read_only)")
        assert {table: differences(con, f"main.{table}", f"published.main.{table}") for table in MARTS} == \
            dict.fromkeys(MARTS, 0)
    for site in docs.SITES:
        assert docs.resolve_file(shop_changes, site, "index.html"), site
        assert lake.keys(f"{docs.LAKE_PREFIX}/{site}/index.html") == [f"{docs.LAKE_PREFIX}/{site}/index.html"]
