"""Tidewater's pages in the Airflow UI (the plugins in plugins/): who may see them, and what they show."""
