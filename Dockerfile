# Airflow 3 image for docker-compose: the pinned requirements plus the tidewater package.
FROM apache/airflow:3.3.2-python3.11
USER root
RUN apt-get update && apt-get install -y --no-install-recommends curl && rm -rf /var/lib/apt/lists/*
USER airflow
COPY --chown=airflow:root requirements.txt pyproject.toml /opt/tidewater/
COPY --chown=airflow:root include /opt/tidewater/include
RUN pip install --no-cache-dir -r /opt/tidewater/requirements.txt \
 && pip install --no-cache-dir --no-deps -e /opt/tidewater
COPY --chown=airflow:root docker/airflow-entrypoint.sh /opt/tidewater/airflow-entrypoint.sh
ENTRYPOINT ["/usr/bin/dumb-init", "--", "/opt/tidewater/airflow-entrypoint.sh"]
