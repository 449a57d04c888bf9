"""A person-readable summary of what the lake holds (used by `tidewater-cdc lake` and the demo)."""

from __future__ import annotations

from collections import Counter

from tidewater import drain
from tidewater.config import Settings, get_connection
from tidewater.drain import quarantine
from tidewater.duck import connect_lake
from tidewater.lake import objects as layout


def lake_summary(settings: Settings) -> list[str]:
    lake = drain.open_lake(settings)
    files = Counter(key.split("/")[1] for key in lake.keys(f"{layout.RAW}/") if key.endswith(".parquet"))
    quarantined = Counter(key.split("/")[1] for key in lake.keys(f"{layout.QUARANTINE}/"))
    if not files:
        return [f"[lake] {lake.uri(layout.RAW + '/')} is empty: run cdc_drain (airflow dags test cdc_drain)"]
    con = connect_lake(get_connection(settings.lake_conn_id))
    lines = [f"[lake] {lake.uri(layout.RAW + '/')}"]
    for table in sorted(files):
        rows, newest, ops = con.execute(
            f"""select count(*), max(_source_ts), string_agg(distinct _op, '' order by _op)
                from read_parquet('{lake.uri(f"{layout.RAW}/{table}/*/*.parquet")}', union_by_name = true)"""
        ).fetchone()
        lines.append(f"  {table:<12} {rows:>8} changes in {files[table]:>4} files, ops {ops}, newest {newest}")
    unreported = Counter(f.topic for f in quarantine.unreported_files(lake)) if quarantined else Counter()
    for topic, count in sorted(quarantined.items()):
        note = f" ({unreported[topic]} not reported yet: the next cdc_drain run mails them)" if unreported[topic] \
            else ""
        lines.append(f"  quarantine: {count} files for {topic} in {lake.uri(layout.quarantine_prefix(topic))}{note}")
    return lines
