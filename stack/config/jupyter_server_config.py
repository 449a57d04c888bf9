"""JupyterLab for the published marts: one configuration for `make notebook` (stack/stack.sh notebook-up) and
compose's jupyter service (docs/notebooks.md). Each gives the address on the command line (127.0.0.1 and
TIDEWATER_JUPYTER_PORT natively, 0.0.0.0:8888 in the container).

- Login: the token TIDEWATER_JUPYTER_TOKEN (generated into .stack/secrets or .env by stack/envfile.py).
- Served under /notebook/ (the proxy routes /notebook/* to it as is).
- Opens the repository's notebooks/ folder (the starter notebook daily_sales.ipynb).
"""

import os
from pathlib import Path

c = get_config()  # noqa: F821  (traitlets defines it for config files)

token = os.environ.get("TIDEWATER_JUPYTER_TOKEN")
if not token:
    raise SystemExit("TIDEWATER_JUPYTER_TOKEN is not set: JupyterLab would start without a login. Natively, "
                     "`make notebook` reads it from .stack/secrets; compose: python3 stack/envfile.py secrets .env")
c.IdentityProvider.token = token
c.ServerApp.base_url = "/notebook/"
c.ServerApp.open_browser = False
c.ServerApp.root_dir = str(Path(__file__).resolve().parents[2] / "notebooks")
# Nothing reaches out to the internet: no extension installs from PyPI, no news feed, no update checks.
c.LabApp.extension_manager = "readonly"
c.LabApp.news_url = None
c.LabApp.check_for_updates_class = "jupyterlab.NeverCheckForUpdate"
