"""The pinned copies of the data docs' CDN files (tidewater.ui.vendor) match what GX's templates load."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import great_expectations
from tidewater.ui import vendor

TEMPLATES = Path(great_expectations.__file__).parent / "render" / "view" / "templates"
ADDRESS = re.compile(r"""(?:<script[^>]*src|<link[^>]*href)=["'](https?://[^"']+)""")


def template_addresses() -> set[str]:
    return {url for template in TEMPLATES.glob("*.j2") for url in ADDRESS.findall(template.read_text())
            if not url.startswith(vendor.GX_ASSETS)}


def test_every_cdn_address_in_gx_templates_has_a_pinned_copy():
    addresses = template_addresses()

    assert len(addresses) >= 15
    assert addresses - set(vendor.CDN_FILES) == set()


def test_each_pinned_copy_is_installed_at_the_version_its_address_names():
    root = vendor.assets_dir()
    assert vendor.missing_files(root) == [], "run `make install` (it runs python -m tidewater.ui.vendor)"
    for url, file in vendor.CDN_FILES.items():
        package = "/".join(file.split("/")[:2]) if file.startswith("@") else file.split("/")[0]
        installed = json.loads((root / package / "package.json").read_text())["version"]
        named = re.search(r"[@/-](\d+(?:\.\d+)*)(?=/|\.min|$)", url)[1]  # vega@5, /4.3.1/, jquery-3.7.1.min.js
        assert installed == named or installed.startswith(named + "."), (url, installed)


def test_a_gx_page_loads_nothing_from_outside():
    head = "".join(f'<script src="{url}"></script>' if url.endswith(".js") or "/npm/vega" in url
                   else f'<link rel="stylesheet" href="{url}"/>' for url in template_addresses())
    logo = (f'<img class="NO-CACHE" src="{vendor.GX_ASSETS}logo-long.png?d=20261204T212358Z&dataContextId='
            '81a4a4dc-0a37-4ec3-abb9-10af9d4d2945" alt="Great Expectations"/>')
    icon = '<link rel="shortcut icon" href="../../../static/images/favicon.ico" type="image/x-icon"/>'

    page = vendor.offline_page(head + logo + icon, "/docs/vendor", "/docs/gx")

    assert ADDRESS.findall(page) == [] and "http" not in page
    assert 'src="/docs/gx/static/images/logo-long.png"' in page
    assert 'href="/docs/gx/static/images/favicon.ico"' in page
    assert page.count('"/docs/vendor/') == len(template_addresses())


@pytest.mark.parametrize("css", [
    "background: url('https://great-expectations-web-assets.s3.us-east-2.amazonaws.com/full_logo_dark.png') 0 0",
])
def test_gx_styles_use_the_sites_own_logo(css):
    assert vendor.offline_styles(css) == "background: url('../images/logo-long.png') 0 0"


def test_the_real_gx_style_sheet_names_no_remote_address():
    sheet = (TEMPLATES.parent / "static" / "styles" / "data_docs_default_styles.css").read_text()

    assert "https://" in sheet and "https://" not in vendor.offline_styles(sheet)
