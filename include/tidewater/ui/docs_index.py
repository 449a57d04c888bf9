"""The docs plugin's landing page: the newest validation of each gate checkpoint, pass or fail, and the sites."""

from __future__ import annotations

from html import escape

from tidewater.config import Settings
from tidewater.gate import context, docs

PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Tidewater docs</title>
<link rel="icon" href="{url_prefix}/gx/static/images/favicon.ico">
<style>
body{{font-family:system-ui,sans-serif;margin:2rem;color:#1d2330}} h1{{margin-top:0}}
table{{border-collapse:collapse;margin:1rem 0}}
th,td{{border-bottom:1px solid #d8dce3;padding:.4rem .8rem;text-align:left}}
th{{background:#f2f4f7}} .passed{{color:#17692f;font-weight:600}} .failed{{color:#a31621;font-weight:600}}
li{{margin:.4rem 0}} .note{{color:#5b6270}}
</style></head><body>
<h1>Tidewater documentation</h1>
<h2>The gate's latest validations</h2>
{validations}
<h2>Sites</h2><ul>{sites}</ul>
</body></html>"""
SITE_TITLES = {"gx": "Data quality: the Great Expectations data docs (every validation of the marts)",
               "dbt": "Warehouse models: dbt docs (lineage, columns, tests)"}


def render(settings: Settings, url_prefix: str) -> str:
    """The landing page; links point under `url_prefix` (the plugin's mount point)."""
    return PAGE.format(validations=_validations(settings, url_prefix), sites=_sites(settings, url_prefix),
                       url_prefix=url_prefix)


def _validations(settings: Settings, url_prefix: str) -> str:
    latest = context.latest_validations(settings)
    if not latest:
        return '<p class="note">No validation yet: the warehouse DAG\'s gate validates each publication.</p>'
    rows = []
    for validation in latest:
        outcome = "passed" if validation.success else "failed"
        if docs.resolve_file(settings, "gx", validation.page):
            page = f'<a href="{escape(f"{url_prefix}/gx/{validation.page}")}">validation page</a>'
        else:
            page = '<span class="note">page not rendered yet (the data_docs DAG renders it)</span>'
        rows.append(
            f"<tr><td>{escape(validation.checkpoint)}</td><td class=\"{outcome}\">{outcome}</td>"
            f"<td>{validation.successful} of {validation.evaluated}</td>"
            f"<td>{validation.run_time.strftime('%Y-%m-%d %H:%M:%S %Z')}</td><td>{escape(validation.run_name)}</td>"
            f"<td>{page}</td></tr>")
    return ("<table><thead><tr><th>checkpoint</th><th>result</th><th>expectations met</th><th>run time</th>"
            "<th>run</th><th>data docs</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>")


def _sites(settings: Settings, url_prefix: str) -> str:
    items = []
    for site, title in SITE_TITLES.items():
        if docs.resolve_file(settings, site, "index.html"):
            items.append(f'<li><a href="{url_prefix}/{site}/index.html">{escape(title)}</a></li>')
        else:
            items.append(f"<li>{escape(title)}: not built yet (the warehouse DAG builds it)</li>")
    return "".join(items)
