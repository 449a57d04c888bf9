"""The notebooks as committed (no outputs, the notebooks' own kernel) and the marts reader's settings."""

from __future__ import annotations

import json

import pytest

from tidewater.config import REPO_ROOT, ConfigError
from tidewater.marts_reader import READER_VARIABLES, reader_connections

NOTEBOOKS = sorted((REPO_ROOT / "notebooks").glob("*.ipynb"))
READER = {
    "TIDEWATER_PG_HOST": "127.0.0.1", "TIDEWATER_PG_PORT": "25432", "TIDEWATER_MARTS_CATALOG_DB": "tidewater_marts",
    "TIDEWATER_MARTS_READER_USER": "reader", "TIDEWATER_MARTS_READER_PASSWORD": "pw",
    "TIDEWATER_S3_HOST": "127.0.0.1", "TIDEWATER_S3_PORT": "29000", "TIDEWATER_S3_REGION": "us-east-1",
    "TIDEWATER_LAKE_BUCKET": "tidewater-lake", "TIDEWATER_S3_MARTS_READER_ACCESS_KEY": "marts-reader",
    "TIDEWATER_S3_MARTS_READER_SECRET_KEY": "key",
}


def test_the_starter_notebook_is_there():
    assert "daily_sales.ipynb" in [path.name for path in NOTEBOOKS]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.name)
def test_notebooks_are_committed_without_outputs_for_the_python3_kernel(path):
    notebook = json.loads(path.read_text())
    ran = [index for index, cell in enumerate(notebook["cells"]) if cell["cell_type"] == "code"
           and (cell["outputs"] or cell["execution_count"] is not None)]
    assert not ran, f"{path.name}: cells {ran} hold outputs: clear them before committing (Edit > Clear Outputs)"
    assert notebook["metadata"]["kernelspec"]["name"] == "python3"


def test_a_reader_gets_the_catalog_and_s3_connections_of_the_marts_reader():
    metadata, s3, data_path = reader_connections(READER)
    assert (metadata.host, metadata.port, metadata.login, metadata.schema) == ("127.0.0.1", 25432, "reader",
                                                                                "tidewater_marts")
    assert (s3.login, s3.password, s3.extra["endpoint_url"]) == ("marts-reader", "key", "http://127.0.0.1:29000")
    assert data_path == "s3://tidewater-lake/marts/"
    assert set(READER) == set(READER_VARIABLES)


def test_a_reader_without_its_credentials_is_told_which_variables_it_lacks():
    env = {key: value for key, value in READER.items() if key != "TIDEWATER_S3_MARTS_READER_SECRET_KEY"}
    with pytest.raises(ConfigError, match=r"^not set: TIDEWATER_S3_MARTS_READER_SECRET_KEY: a marts reader needs"):
        reader_connections(env)
    with pytest.raises(ConfigError, match=r"TIDEWATER_PG_PORT='5432x' is not a port number"):
        reader_connections(READER | {"TIDEWATER_PG_PORT": "5432x"})
