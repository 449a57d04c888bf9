"""Tidewater: CDC-to-marts ELT on Airflow. DAGs in dags/ import their logic from here."""
