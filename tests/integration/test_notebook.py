"""The starter notebook (notebooks/daily_sales.ipynb) runs headless with nbclient in the notebooks' own virtualenv
against a publication of the test instance's marts, with the marts reader's credentials alone, and draws what the
marts hold; `make notebook`'s server (stack/stack.sh notebook-up) on the test instance wants its token, serves
under /notebook/ on 127.0.0.1 only, and gets no secret but the reader's."""

from __future__ import annotations

import base64
import json
import os
import shutil
import struct
import subprocess
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from tests.support.marts import ScratchMarts, new_marts, stage_synthetic
from tidewater.config import REPO_ROOT, read_env_file
from tidewater.gate import publish, stage
from tidewater.marts_reader import READER_VARIABLES

NOTEBOOK_VENV = REPO_ROOT / ".venv-notebook"
NOTEBOOK = REPO_ROOT / "notebooks" / "daily_sales.ipynb"
STACK_SH = REPO_ROOT / "stack" / "stack.sh"

# The shape of the shop's mart_daily_sales (examples/shop/dbt/models/marts), with values from a seed of the test.
DAILY_SALES = """
create or replace table mart_daily_sales as
select sales_date, orders_placed, orders_cancelled, units_sold::hugeint as units_sold,
       net_revenue_amount::decimal(38, 2) as net_revenue_amount
from (
    select date '2026-10-01' + range::integer as sales_date,
           (5 + hash(range, $seed, 'placed') % 40)::bigint as orders_placed,
           (hash(range, $seed, 'cancelled') % 4)::bigint as orders_cancelled,
           20 + hash(range, $seed, 'units') % 90 as units_sold,
           (hash(range, $seed, 'revenue') % 1000000) / 100 as net_revenue_amount
    from range(35)
)
"""
SUMMARY = """
select count(*), strftime(min(sales_date), '%Y-%m-%d'), strftime(max(sales_date), '%Y-%m-%d'), sum(orders_placed),
       sum(orders_cancelled), sum(units_sold), sum(net_revenue_amount)
from mart_daily_sales
"""


@pytest.fixture(scope="module")
def published(settings, tmp_path_factory) -> Iterator[tuple[ScratchMarts, str]]:
    """A marts catalog of its own with one publication whose mart_daily_sales has real columns; its id."""
    if not (NOTEBOOK_VENV / "bin" / "jupyter").exists():
        pytest.fail(f"no notebook virtualenv at {NOTEBOOK_VENV}: run make notebook-install (make test does)")
    with new_marts(settings, tmp_path_factory.mktemp("notebook") / "marts") as marts:
        publication_id = stage_synthetic(marts.settings, 1)
        with duckdb.connect(str(stage.candidate_path(marts.settings, publication_id))) as con:
            con.execute(DAILY_SALES, {"seed": uuid.uuid4().hex})
        session = marts.writer()
        try:
            publish.publish(marts.settings, publication_id, session)
        finally:
            session.con.close()
        yield marts, publication_id


def reader_env(marts: ScratchMarts) -> dict[str, str]:
    """The marts reader's variables for this test's catalog and bucket, and nothing else of this process."""
    env = {name: os.environ[name] for name in READER_VARIABLES}
    return env | {"TIDEWATER_MARTS_CATALOG_DB": marts.database, "TIDEWATER_LAKE_BUCKET": marts.bucket.bucket}


def png_size(data: str) -> tuple[int, int]:
    png = base64.b64decode(data)
    assert png[:8] == b"\x89PNG\r\n\x1a\n", "the figure is not a PNG"
    return struct.unpack(">II", png[16:24])


def test_the_starter_notebook_draws_the_daily_sales_of_the_published_marts(published, tmp_path):
    marts, publication_id = published
    executed = tmp_path / NOTEBOOK.name
    shutil.copy(NOTEBOOK, executed)

    run = subprocess.run([str(NOTEBOOK_VENV / "bin" / "jupyter"), "execute", "--inplace", "--timeout=300",
                          str(executed)], capture_output=True, text=True, timeout=600,
                         env={"PATH": os.environ["PATH"], "HOME": os.environ["HOME"], **reader_env(marts)})

    assert run.returncode == 0, run.stderr[-4000:]
    cells = [cell for cell in json.loads(executed.read_text())["cells"] if cell["cell_type"] == "code"]
    outputs = [output for cell in cells for output in cell["outputs"]]
    assert [output for output in outputs if output["output_type"] == "error"] == []
    assert all(cell["execution_count"] for cell in cells), "a cell did not run"
    texts = "".join("".join(output.get("text", "")) + "".join(output.get("data", {}).get("text/plain", ""))
                    for output in outputs)
    assert publication_id in texts, "the notebook did not read this test's publication"
    with marts.reader() as con:
        days, first, last, placed, cancelled, units, revenue = con.execute(SUMMARY).fetchone()
    assert days == 35 and placed > 0
    summary = (f"{days} days from {first} to {last}: {placed} orders placed, {cancelled} cancelled, "
               f"{units} units, net revenue {revenue:.2f}")
    assert summary in texts, f"the notebook's daily sales differ from the marts': expected {summary!r} in\n{texts}"
    figures = [output["data"]["image/png"] for output in outputs if "image/png" in output.get("data", {})]
    assert len(figures) == 1, "the notebook drew no chart"
    width, height = png_size(figures[0])
    assert width >= 500 and height >= 300, f"the chart is {width}x{height} px"


def stack_sh(*args: str) -> subprocess.CompletedProcess:
    """stack/stack.sh on the test instance with no other setting: the test profile's ports, its generated secrets."""
    env = {"PATH": os.environ["PATH"], "HOME": os.environ["HOME"], "TIDEWATER_STACK_DIR": os.environ[
        "TIDEWATER_STACK_DIR"], "TIDEWATER_STACK_PROFILE": "stack/test.env"}
    return subprocess.run([str(STACK_SH), *args], capture_output=True, text=True, timeout=180, env=env)


def status(url: str, token: str | None = None) -> int:
    request = urllib.request.Request(url, headers={"Authorization": f"token {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def listening_addresses(port: int) -> set[str]:
    """Local addresses (hex, as /proc/net shows them) of the sockets listening on `port`."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:
                found.add(address)
    return found


def test_make_notebook_serves_jupyterlab_on_loopback_with_its_token_and_the_readers_credentials_only():
    profile = read_env_file(REPO_ROOT / "stack" / "test.env")
    port = int(profile["TIDEWATER_JUPYTER_PORT"])
    assert port < 20000, "the test instance's JupyterLab must not take a port of the deployment (2xxxx)"
    secrets = read_env_file(Path(os.environ["TIDEWATER_STACK_DIR"]) / "secrets")
    token, base = secrets["TIDEWATER_JUPYTER_TOKEN"], f"http://127.0.0.1:{port}/notebook/"
    pid_file = Path(os.environ["TIDEWATER_STACK_DIR"]) / "run" / "notebook.pid"
    try:
        up = stack_sh("notebook-up")
        assert up.returncode == 0, up.stdout + up.stderr[-3000:]
        assert f"{base}lab?token={token}" in up.stdout
        pid = int(pid_file.read_text())

        assert status(f"{base}api/status") == 403
        assert status(f"{base}api/status", "not-the-token") == 403
        assert status(f"{base}api/status", token) == 200
        assert status(f"http://127.0.0.1:{port}/api/status", token) == 404, "served under /notebook/ only"
        request = urllib.request.Request(f"{base}api/contents", headers={"Authorization": f"token {token}"})
        with urllib.request.urlopen(request, timeout=10) as response:
            names = {item["name"] for item in json.load(response)["content"]}
        assert NOTEBOOK.name in names, f"JupyterLab does not open notebooks/: {names}"
        assert listening_addresses(port) == {"0100007F"}, "JupyterLab must listen on 127.0.0.1 only"

        environ = dict(item.split("=", 1) for item in
                       Path(f"/proc/{pid}/environ").read_text().split("\0") if "=" in item)
        assert {name for name in environ if name.startswith(("TIDEWATER_", "AIRFLOW"))} == {
            *READER_VARIABLES, "TIDEWATER_JUPYTER_TOKEN"}
        others = {name: value for name, value in secrets.items()
                  if name not in (*READER_VARIABLES, "TIDEWATER_JUPYTER_TOKEN")}
        leaked = [name for name, value in others.items() if value in environ.values()]
        assert not leaked, f"the notebook server gets {leaked}"

        again = stack_sh("notebook-up")
        assert again.returncode == 0, again.stderr[-3000:]
        assert int(pid_file.read_text()) == pid, "notebook-up is idempotent: the running server stays"
        assert "notebook: healthy" in stack_sh("notebook-status").stdout
    finally:
        down = stack_sh("notebook-down")
    assert down.returncode == 0, down.stderr[-3000:]
    assert not pid_file.exists() and listening_addresses(port) == set()
