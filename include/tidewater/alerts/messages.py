"""The text of every alert email: pure functions of what happened, so tests can read them exactly."""

from __future__ import annotations

import re
from dataclasses import dataclass
from html import escape
from urllib.parse import quote

SUBJECT_PREFIX = "[tidewater]"
# Kafka Connect's REST API wants its login (basic auth): the commands in emails name it by the variables of the
# deployment's settings (.stack/env, compose's .env), never by its value.
CURL = 'curl -s -u "$TIDEWATER_CONNECT_USER:$TIDEWATER_CONNECT_PASSWORD"'
_URL = re.compile(r"https?://[^\s<>\"']+")


@dataclass(frozen=True)
class Email:
    subject: str
    html: str


def run_url(airflow_url: str, dag_id: str, run_id: str) -> str:
    """The run's page in the Airflow UI (run ids hold ':' and '+', so they are quoted)."""
    return f"{airflow_url.rstrip('/')}/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}"


def first_lines(text: str, max_lines: int | None) -> str:
    """The first `max_lines` (None: all) non-empty lines of an error, saying how many were left out."""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    if max_lines is None or len(lines) <= max_lines:
        return "\n".join(lines)
    return "\n".join([*lines[:max_lines], f"… ({len(lines) - max_lines} more lines in the log)"])


def _page(*parts: str) -> str:
    return "<html><body>" + "".join(parts) + "</body></html>"


def _linked(text: str) -> str:
    """Escaped text whose URLs (e.g. the gate's data docs pages) are links."""
    return _URL.sub(lambda match: f'<a href="{match[0]}">{match[0]}</a>', escape(text))


def _link(url: str, label: str) -> str:
    return f'<p><a href="{escape(url)}">{escape(label)}</a>: {escape(url)}</p>'


def task_failure_email(*, dag_id: str, run_id: str, task_id: str, map_index: int | None, try_number: int | None,
                       error: str, log_url: str, max_lines: int | None) -> Email:
    """`max_lines` None keeps the whole error: for failures whose message is written for people (the gate's
    names every failed expectation and ends with the data docs links)."""
    task = task_id if map_index is None or map_index < 0 else f"{task_id}[{map_index}]"
    headline = next((line.strip() for line in error.splitlines() if line.strip()), "no error message")
    return Email(
        subject=f"{SUBJECT_PREFIX} FAILED {dag_id}.{task}: {headline[:150]}",
        html=_page(
            f"<p>Task <b>{escape(task)}</b> of DAG <b>{escape(dag_id)}</b> failed "
            f"(run <code>{escape(run_id)}</code>, try {try_number if try_number is not None else '?'}).</p>",
            f"<pre>{_linked(first_lines(error, max_lines))}</pre>",
            _link(log_url, "Task log"),
        ),
    )


def deadline_email_templates(*, dag_id: str, airflow_url: str) -> Email:
    """Jinja templates for SmtpNotifier, rendered by the triggerer when a Deadline Alert fires.

    A deadline callback's context holds only ``dag_run`` (the REST API's JSON of the run) and ``deadline``
    (``id``, ``deadline_time``), so everything else is filled in here. Airflow renders them without
    autoescaping: every value of the context is escaped in the HTML by the template itself (``| e``; the link's
    run id ``| urlencode``); the subject is plain text.
    """
    base = f"{airflow_url.rstrip('/')}/dags/{quote(dag_id, safe='')}/runs/"
    url = base + "{{ dag_run.dag_run_id | urlencode }}"  # not HTML-escaped: it is a template
    return Email(
        subject=f"{SUBJECT_PREFIX} DEADLINE missed: {dag_id} run {{{{ dag_run.dag_run_id }}}}",
        html=_page(
            f"<p>DAG <b>{escape(dag_id)}</b> run <code>{{{{ dag_run.dag_run_id | e }}}}</code> had not finished by "
            "its deadline <b>{{ deadline.deadline_time | e }}</b> (it was queued at {{ dag_run.queued_at | e }}). "
            "State when the deadline passed: {{ dag_run.state | e }}.</p>",
            f'<p><a href="{url}">The run in Airflow</a>: {url}</p>',
        ),
    )


def freshness_email(*, recovered: bool, subject: str, measured: str, limit: str, detail: str, since: str) -> Email:
    """A freshness breach (STALE) or its end (RECOVERED); `since` is when the breach started."""
    if recovered:
        word, status = "RECOVERED", f"is within its freshness limit again (breached since {since})"
    else:
        word, status = "STALE", f"breaches its freshness limit since {since}"
    return Email(
        subject=f"{SUBJECT_PREFIX} {word} {subject}: {measured} (limit {limit})",
        html=_page(
            f"<p><b>{escape(subject)}</b> {escape(status)}: {escape(measured)}, limit {escape(limit)}.</p>",
            f"<p>{escape(detail)}</p>" if detail else "",
            "" if recovered else "<p>One email is sent per breach; another follows when it recovers.</p>",
        ),
    )


def connector_remedy(*, connect_url: str, connector: str, task: int | None, state: str) -> list[str]:
    """What to do about a connector (`task` None) or task in `state`: steps, each a line (commands as is)."""
    base = f"{connect_url.rstrip('/')}/connectors/{quote(connector, safe='')}"
    check = f"Find the cause: the trace above, `{CURL} {base}/status`, `make cdc-status`, Connect's log " \
            "(.stack/logs/connect.log; docker: `docker compose logs connect`)."
    if state == "UNREACHABLE":
        return [f"Kafka Connect does not answer at {connect_url}: start it (`make stack-up`; docker: "
                "`docker compose up -d connect`), then check the connector with `make cdc-status`."]
    if state == "NOT REGISTERED":
        return ["Register it: `make cdc-register` (docker: `docker compose run --rm cdc-register`). "
                "Its slot keeps its position, so nothing is lost if the slot still exists."]
    if state == "PAUSED" or state == "STOPPED":
        return [f"Someone {state.lower()} it: resume it when that is over: `{CURL} -X PUT {base}/resume`. "
                "The replication slot keeps WAL for it meanwhile (see the slot alerts)."]
    if task is not None:
        return [check, f"Fix the cause, then restart the task: `{CURL} -X POST {base}/tasks/{task}/restart` "
                "(or re-register the connector: `make cdc-register`)."]
    return [check, "Fix the cause, then restart the connector and its failed tasks: "
            f"`{CURL} -X POST '{base}/restart?includeTasks=true&onlyFailed=true'` (or `make cdc-register`)."]


def connector_email(*, recovered: bool, connector: str, task: int | None, state: str, trace: str,
                    connect_url: str, max_lines: int | None, since: str) -> Email:
    """A Debezium connector or task that is not running (DOWN), or runs again (RECOVERED)."""
    what = f"Debezium connector {connector}" + ("" if task is None else f" task {task}")
    if recovered:
        return Email(subject=f"{SUBJECT_PREFIX} RECOVERED {what}: {state}",
                     html=_page(f"<p><b>{escape(what)}</b> is {escape(state)} again (down since {escape(since)}). "
                                "Changes made meanwhile are captured from its replication slot.</p>"))
    steps = connector_remedy(connect_url=connect_url, connector=connector, task=task, state=state)
    return Email(
        subject=f"{SUBJECT_PREFIX} DOWN {what}: {state}",
        html=_page(
            f"<p><b>{escape(what)}</b> is <b>{escape(state)}</b> (since {escape(since)}): no change of the shop is "
            "captured until it runs again, and its replication slot keeps the server's WAL meanwhile.</p>",
            f"<pre>{escape(first_lines(trace, max_lines))}</pre>" if trace.strip() else "",
            "<p>What to do:</p><ol>" + "".join(f"<li>{escape(step)}</li>" for step in steps) + "</ol>",
            "<p>One email is sent per breach; another follows when it runs again.</p>",
        ),
    )


def slot_lost_detail(*, slot: str, keep_size: str, connect_url: str, connector: str) -> str:
    """Detail of a replication slot PostgreSQL has invalidated (wal_status 'lost'): it must be recreated."""
    base = f"{connect_url.rstrip('/')}/connectors/{quote(connector, safe='')}"
    return (f"PostgreSQL removed WAL that slot {slot} still needed (max_slot_wal_keep_size = {keep_size}): the changes "
            "in it can no longer be streamed, and the slot must be recreated and the tables snapshotted again. "
            f"If the slot is connector {connector}'s: stop it (`{CURL} -X PUT {base}/stop`), drop the slot "
            f"(`SELECT pg_drop_replication_slot('{slot}')` as an admin), forget its offsets "
            f"(`{CURL} -X DELETE {base}/offsets`) and resume it (`{CURL} -X PUT {base}/resume`): with "
            "snapshot.mode=initial it creates the slot and takes a new snapshot (every row again, as op 'r').")


@dataclass(frozen=True)
class QuarantinedTopic:
    """What a quarantine report says about one topic: records, reasons (reason → records), file URIs."""

    topic: str
    records: int
    reasons: dict[str, int]
    uris: list[str]


QUARANTINE_MAX_REASONS = 10  # distinct reasons listed per topic; the rest are counted
QUARANTINE_MAX_FILES = 20  # file URIs listed per topic; the rest are under the topic's prefix


def quarantine_report_email(*, dag_id: str, run_id: str, run_link: str, prefix_uri: str,
                            topics: list[QuarantinedTopic]) -> Email:
    """One email per cdc_drain run about every quarantined record not reported before (under the limit too)."""
    records = sum(t.records for t in topics)
    parts = [f"<p>cdc_drain quarantined <b>{records}</b> record{'s' if records != 1 else ''} that could not be "
             f"decoded (run <code>{escape(run_id)}</code> of <b>{escape(dag_id)}</b>). The rest of each topic "
             "landed; these records are <b>not</b> in the lake's tables or the warehouse.</p>"]
    for topic in topics:
        reasons = sorted(topic.reasons.items(), key=lambda item: (-item[1], item[0]))
        shown = reasons[:QUARANTINE_MAX_REASONS]
        more = len(reasons) - len(shown)
        parts.append(f"<h3>{escape(topic.topic)}: {topic.records} records</h3><ul>"
                     + "".join(f"<li>{count}: <code>{escape(reason)}</code></li>" for reason, count in shown)
                     + (f"<li>… {more} more distinct reasons ({sum(c for _, c in reasons[len(shown):])} records)"
                        "</li>" if more else "") + "</ul>")
        uris = topic.uris[:QUARANTINE_MAX_FILES]
        parts.append("<p>Files (one JSON line per record: key, value, headers, offset, error):</p><ul>"
                     + "".join(f"<li><code>{escape(uri)}</code></li>" for uri in uris)
                     + (f"<li>… {len(topic.uris) - len(uris)} more</li>" if len(topic.uris) > len(uris) else "")
                     + "</ul>")
    parts.append(f"<p>All quarantine files are under <code>{escape(prefix_uri)}</code>. To land such records, fix "
                 "their cause (producer, connector settings or decoder), then replay the topic from their offsets "
                 "(cdc_drain params <code>replay_topic</code> and <code>replay_from_offsets</code>). Each record is "
                 "reported once.</p>")
    parts.append(_link(run_link, "The run in Airflow"))
    return Email(
        subject=f"{SUBJECT_PREFIX} QUARANTINED {records} record{'s' if records != 1 else ''} in "
                + ", ".join(f"{t.topic} ({t.records})" for t in topics),
        html=_page(*parts),
    )


def reconcile_email(report: dict, *, lake_uri: str) -> Email:
    """A reconciliation with the source that found a table not equal (or could not compare one)."""
    bad = [t for t in report["tables"] if t["status"] != "equal"]

    def summary(t: dict) -> str:
        if t["status"] == "error":
            return f"{t['table']} (not compared)"
        parts = [f"{t[kind]} {kind}" for kind in ("missing", "extra", "differing") if t[kind]]
        return f"{t['table']} ({', '.join(parts)})"

    parts = [f"<p>Reconciliation <code>{escape(report['run_id'])}</code> compared PostgreSQL at LSN "
             f"<code>{escape(report['lsn'])}</code> (snapshot {escape(report['snapshot_taken_at'])}) with the "
             "warehouse's state as of that snapshot: "
             f"<b>{len(bad)} of {len(report['tables'])} tables are not equal</b>.</p>"]
    for t in bad:
        parts.append(f"<h3>{escape(_qualified(t['table']))}</h3>")
        if t["status"] == "error":
            parts.append(f"<pre>{escape(t['error'] or '')}</pre>")
            continue
        figures = {name: escape(str(t[name])) for name in
                   ("source_rows", "warehouse_rows", "source_checksum", "warehouse_checksum")}
        parts.append(f"<p>rows: PostgreSQL {figures['source_rows']}, warehouse {figures['warehouse_rows']}; "
                     f"checksum: PostgreSQL {figures['source_checksum']}, warehouse {figures['warehouse_checksum']}"
                     "</p><ul>")
        labels = {"missing": "in PostgreSQL, missing in the warehouse", "extra": "in the warehouse, not in PostgreSQL",
                  "differing": "in both, with other values"}
        for kind, label in labels.items():
            if t[kind]:
                keys = ", ".join(str(key) for key in t["examples"].get(kind, []))
                more = t[kind] - len(t["examples"].get(kind, []))
                parts.append(f"<li>{t[kind]} {escape(label)}: keys {escape(keys)}"
                             f"{f' and {more} more' if more > 0 else ''}</li>")
        parts.append("</ul>")
    parts.append("<p>What to do: look for the missing changes in the lake (<code>quarantine/</code>, "
                 "<code>tidewater cdc lake</code>) and in Kafka; replay the table's topic from before them "
                 "(cdc_drain params <code>replay_topic</code>, <code>replay_from_timestamp</code>) and rebuild the "
                 "warehouse with <code>full_refresh</code>; then run <code>tidewater cdc reconcile</code> again. "
                 f"The whole result: <code>{escape(lake_uri)}</code> (docs/reconcile.md).</p>")
    return Email(subject=f"{SUBJECT_PREFIX} RECONCILE differs from PostgreSQL: " + ", ".join(map(summary, bad)),
                 html=_page(*parts))


def _qualified(table: str) -> str:
    """`schema.table` of a registered table (the name as given for another)."""
    from tidewater.config import ConfigError
    from tidewater.tables import registry

    try:
        return registry().table(table).qualified_name
    except ConfigError:
        return table
