"""Pages in a real browser: Debian's chromium, driven by Playwright, logged in to Airflow.

Every request a page makes is recorded, so a test can say that none failed and none left 127.0.0.1.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from urllib.parse import urlsplit

LOCAL_HOSTS = {"127.0.0.1", "localhost"}


@dataclass
class Traffic:
    """What a page asked for: every URL, the ones that failed (no answer, or a status of 400 or more), and
    the console's errors."""

    urls: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)

    def remote(self) -> list[str]:
        """The URLs that left this machine (data: and blob: URLs stay inside the page)."""
        return [url for url in self.urls
                if urlsplit(url).scheme in ("http", "https", "ws", "wss") and urlsplit(url).hostname not in LOCAL_HOSTS]


@contextmanager
def chromium() -> Iterator[object]:
    """A headless chromium (the system's, from Debian's package: `playwright install` is not needed)."""
    from playwright.sync_api import sync_playwright

    executable = shutil.which("chromium")
    assert executable, "chromium is not installed: `make test-stack-up` installs it (Debian's chromium package)"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        try:
            yield browser
        finally:
            browser.close()


@contextmanager
def logged_in_page(browser, airflow_api) -> Iterator[tuple[object, Traffic]]:
    """A page of a fresh browser context holding the Airflow login (the `_token` cookie the UI sets), and the
    traffic it records."""
    context = browser.new_context()
    context.add_cookies([{"name": "_token", "value": airflow_api.token(), "url": airflow_api.base_url}])
    page = context.new_page()
    traffic = Traffic()
    page.on("request", lambda request: traffic.urls.append(request.url))
    page.on("requestfailed", lambda request: traffic.failed.append(f"{request.url}: {request.failure}"))
    page.on("response", lambda response: response.status >= 400
            and traffic.failed.append(f"{response.url}: HTTP {response.status}"))
    page.on("console", lambda message: message.type == "error"
            and traffic.console_errors.append(f"{message.location.get('url')}: {message.text}"))
    try:
        yield page, traffic
    finally:
        context.close()
