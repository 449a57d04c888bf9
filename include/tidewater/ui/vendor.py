"""Pinned copies of the scripts, styles and fonts GX's data docs load from public CDNs, and pages rewritten to them.

GX 1.x pages name exact versions on public CDNs (and the logo on GX's bucket, with the data context id: a usage
beacon). `vendor/package.json` pins the same packages at those versions; `install()` (run by `make install`, and by
the image build) puts them under `assets_dir()`; the docs plugin serves them and rewrites each GX page and style
sheet with `offline_page` / `offline_styles`, so the docs render without any request leaving the Airflow UI's host.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).with_name("vendor")  # package.json, package-lock.json, .npmrc
LOCKFILE = PACKAGE / "package-lock.json"

# Every CDN address GX 1.24's templates name → the same file of the npm package pinned in vendor/package.json.
CDN_FILES = {
    "https://cdn.jsdelivr.net/npm/vega@5": "vega/build/vega.min.js",
    "https://cdn.jsdelivr.net/npm/vega-lite@5": "vega-lite/build/vega-lite.min.js",
    "https://cdn.jsdelivr.net/npm/vega-embed@6": "vega-embed/build/vega-embed.min.js",
    "https://cdnjs.cloudflare.com/ajax/libs/font-awesome/6.6.0/css/all.min.css":
        "@fortawesome/fontawesome-free/css/all.min.css",
    "https://code.jquery.com/jquery-3.7.1.min.js": "jquery/dist/jquery.min.js",
    "https://cdnjs.cloudflare.com/ajax/libs/popper.js/1.12.9/umd/popper.min.js": "popper.js/dist/umd/popper.min.js",
    "https://stackpath.bootstrapcdn.com/bootstrap/4.3.1/js/bootstrap.min.js": "bootstrap/dist/js/bootstrap.min.js",
    "https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/bootstrap.min.css": "bootstrap/dist/css/bootstrap.min.css",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.js":
        "bootstrap-table/dist/bootstrap-table.min.js",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.css":
        "bootstrap-table/dist/bootstrap-table.min.css",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/extensions/filter-control/bootstrap-table-filter-control.min.js":
        "bootstrap-table/dist/extensions/filter-control/bootstrap-table-filter-control.min.js",
    "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.css":
        "bootstrap-table-1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.css",
    "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.min.css":
        "bootstrap-table-1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.min.css",
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/js/bootstrap-datepicker.min.js":
        "bootstrap-datepicker/dist/js/bootstrap-datepicker.min.js",
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/css/bootstrap-datepicker.min.css":
        "bootstrap-datepicker/dist/css/bootstrap-datepicker.min.css",
    "https://cdn.jsdelivr.net/npm/@forevolve/bootstrap-dark@1.1.0/dist/css/bootstrap-prefers-dark.css":
        "@forevolve/bootstrap-dark/dist/css/bootstrap-prefers-dark.css",
}
GX_ASSETS = "https://great-expectations-web-assets.s3.us-east-2.amazonaws.com/"
# The navbar logo: GX's bucket, with the build time and the data context id in its query string.
_LOGO = re.compile(re.escape(GX_ASSETS) + r"logo-long\.png[^\"']*")
# The style sheet's dark logo (static/styles/data_docs_default_styles.css): the site's own logo instead.
_STYLE_LOGO = re.compile(re.escape(GX_ASSETS) + r"full_logo_dark\.png")
# favicon.j2 puts validation pages' icon one folder short of the site's static/ (a 404 on every such page).
_FAVICON = re.compile(r'(<link rel="shortcut icon" href=")[^"]*static/images/favicon\.ico"')
_CDN = re.compile("|".join(re.escape(url) for url in sorted(CDN_FILES, key=len, reverse=True)) + r"(?=[\"'])")


def assets_dir() -> Path:
    """Where the pinned packages are: TIDEWATER_DOCS_ASSETS_DIR, else a user-level cache keyed by the lockfile."""
    if configured := os.environ.get("TIDEWATER_DOCS_ASSETS_DIR"):
        return Path(configured)
    digest = hashlib.sha256(LOCKFILE.read_bytes()).hexdigest()[:16]
    return Path.home() / ".cache" / "tidewater" / "docs-assets" / digest / "node_modules"


def missing_files(root: Path | None = None) -> list[str]:
    """The files of CDN_FILES not under `root` (default `assets_dir()`)."""
    root = root or assets_dir()
    return [name for name in CDN_FILES.values() if not (root / name).is_file()]


def install() -> Path:
    """Installs the packages of vendor/package-lock.json (`npm ci`) into `assets_dir()` unless every file is there."""
    target = assets_dir()
    if not missing_files(target):
        return target
    npm = shutil.which("npm")
    if npm is None:
        raise SystemExit("npm not found: the data docs' scripts and styles are npm packages (vendor/package.json); "
                         "install Node.js and npm (Debian: apt-get install npm) and run `make install` again")
    work = target.parent
    work.mkdir(parents=True, exist_ok=True)
    for name in ("package.json", "package-lock.json", ".npmrc"):
        shutil.copyfile(PACKAGE / name, work / name)
    subprocess.run([npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"], cwd=work,
                   check=True)
    if missing := missing_files(target):
        raise SystemExit(f"npm ci in {work} left out {', '.join(missing)}: vendor/package.json and CDN_FILES disagree")
    return target


def offline_page(html: str, assets_url: str, site_url: str) -> str:
    """A GX page with every CDN address replaced by its pinned copy under `assets_url`, and GX's logo beacon by the
    site's own logo under `site_url` (both URL paths without a trailing slash); its favicon link points at the
    site's icon."""
    html = _CDN.sub(lambda match: f"{assets_url}/{CDN_FILES[match.group(0)]}", html)
    html = _FAVICON.sub(lambda match: f'{match.group(1)}{site_url}/static/images/favicon.ico"', html)
    return _LOGO.sub(f"{site_url}/static/images/logo-long.png", html)


def offline_styles(css: str) -> str:
    """A GX style sheet (static/styles/) with its logo from GX's bucket replaced by the site's own."""
    return _STYLE_LOGO.sub("../images/logo-long.png", css)


if __name__ == "__main__":
    sys.stdout.write(f"data docs assets in {install()}\n")
