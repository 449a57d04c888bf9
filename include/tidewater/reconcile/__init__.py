"""Reconciliation with the source: the warehouse's state as of a PostgreSQL snapshot equals PostgreSQL's.

Stages, one module each: ``tables`` (which shop tables, their keys and warehouse names), ``canonical``
(one text form and one row hash per value, written as PostgreSQL SQL and as DuckDB SQL), ``source``
(the snapshot, its LSN, and waiting for the slot, the drain and the warehouse to hold it), ``compare``
(the warehouse's rows as of the snapshot against the source's), ``run`` (recording, mailing, the whole
step as the CLI and the DAG run it). docs/reconcile.md says what it guarantees and how to read a result.
"""
