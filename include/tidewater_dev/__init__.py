"""Tidewater's dev and deployment tooling, not the product: the demo (`make demo`), the native stack's and
docker compose's derived connections (stackenv), the SMTP sink that stands in for a mail server (mailsink), and
the Airflow REST client the tests and benchmarks drive Airflow with (airflow_api)."""
