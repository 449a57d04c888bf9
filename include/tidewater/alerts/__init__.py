"""Alert emails: deadlines missed, data gone stale (and fresh again), tasks failed. See docs/alerts.md.

``messages`` and ``freshness`` are pure (no Airflow, no network); ``deadlines`` builds the DAGs' Deadline
Alerts; ``notify`` sends through Airflow's smtp provider; ``sources`` measures the lake and Kafka.
"""
