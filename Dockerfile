# Images for docker compose (docker/services.yaml): `airflow` runs Airflow 3 and the Tidewater commands,
# `jupyter` adds JupyterLab and notebooks/ to it for the optional jupyter profile. Both install the pinned
# requirements.txt exactly as `make install` does (a complete, resolved set: no dependency resolution here), and
# `jupyter` the notebooks' notebooks/requirements.txt over it.

# The drain's compiled decoder (native/tidewater_decode) as a CPython 3.11 abi3 wheel, built with the pinned
# maturin and the crate's Cargo.lock (Rust >= 1.85). Bookworm's glibc, so the wheel runs on the Airflow image.
FROM rust:1.95-slim-bookworm AS native
RUN apt-get update && apt-get install -y --no-install-recommends python3 python3-venv && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /opt/maturin && /opt/maturin/bin/pip install --no-cache-dir maturin==1.16.0
COPY native/tidewater_decode /src/tidewater_decode
RUN /opt/maturin/bin/maturin build --release --locked -m /src/tidewater_decode/Cargo.toml \
      --interpreter python3 -o /wheels

# The data docs' scripts, styles and fonts (tidewater.ui.vendor): the npm packages of vendor/package-lock.json, which
# the docs plugin serves instead of GX's public CDNs.
FROM node:20.19.0-bookworm-slim AS docs-assets
WORKDIR /src
COPY include/tidewater/ui/vendor/package.json include/tidewater/ui/vendor/package-lock.json include/tidewater/ui/vendor/.npmrc ./
RUN npm ci --ignore-scripts --no-audit --no-fund --loglevel=error

FROM apache/airflow:3.3.2-python3.11 AS airflow
USER root
RUN install -d -o airflow -g root /opt/tidewater
USER airflow
WORKDIR /opt/tidewater
COPY --chown=airflow:root requirements.txt pyproject.toml ./
RUN pip install --no-cache-dir --no-deps -r requirements.txt
COPY --from=native --chown=airflow:root /wheels ./wheels
RUN pip install --no-cache-dir --no-deps wheels/tidewater_decode-*.whl
COPY --chown=airflow:root include ./include
COPY --chown=airflow:root examples/shop ./examples/shop
# The httpfs DuckDB extension from its pinned package (DuckDB downloads nothing at run time).
RUN pip install --no-cache-dir --no-deps -e . && python -m tidewater.duck
COPY --chown=airflow:root dbt ./dbt
# The manifest Cosmos renders the warehouse DAG from (LoadMode.DBT_MANIFEST), as `make install` builds it.
RUN cd dbt && DBT_PROFILES_DIR=. dbt deps --quiet && DBT_PROFILES_DIR=. dbt parse --quiet && rm -rf logs
COPY --chown=airflow:root great_expectations ./great_expectations
COPY --chown=airflow:root dags ./dags
COPY --chown=airflow:root plugins ./plugins
COPY --from=docs-assets --chown=airflow:root /src/node_modules ./docs-assets
COPY --chown=airflow:root docker/airflow-entrypoint.sh docker/airflow-init.sh ./docker/
# Mount points of the named volumes, owned by the airflow user so the volumes are too.
RUN mkdir -p /opt/tidewater/data/warehouse /opt/tidewater/data/marts /opt/tidewater/lineage \
      /opt/tidewater/great_expectations/uncommitted/data_docs
# Two DAG bundles: the product's dags/, and the demo shop's (shop_traffic), as stack/stack.sh configures them.
ENV AIRFLOW__CORE__DAGS_FOLDER=/opt/tidewater/dags \
    AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST='[{"name": "dags-folder", "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle", "kwargs": {}}, {"name": "shop-example", "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle", "kwargs": {"path": "/opt/tidewater/examples/shop/dags"}}]' \
    AIRFLOW__CORE__PLUGINS_FOLDER=/opt/tidewater/plugins \
    AIRFLOW__COSMOS__CACHE_DIR=/opt/airflow/cosmos \
    TIDEWATER_DOCS_ASSETS_DIR=/opt/tidewater/docs-assets \
    GX_ANALYTICS_ENABLED=false
ENTRYPOINT ["/usr/bin/dumb-init", "--", "/opt/tidewater/docker/airflow-entrypoint.sh"]

FROM airflow AS jupyter
# The notebooks' pinned requirements (resolved against requirements.txt: the shared packages are already installed).
COPY --chown=airflow:root notebooks/requirements.txt ./notebooks/requirements.txt
RUN pip install --no-cache-dir --no-deps -r notebooks/requirements.txt
COPY --chown=airflow:root stack/config/jupyter_server_config.py ./stack/config/jupyter_server_config.py
COPY --chown=airflow:root notebooks ./notebooks
ENTRYPOINT ["/usr/bin/dumb-init", "--"]
# The same configuration as `make notebook` (token login, /notebook/, notebooks/ opened), on the container's port.
CMD ["jupyter", "lab", "--config=/opt/tidewater/stack/config/jupyter_server_config.py", "--ip=0.0.0.0", "--port=8888"]
