"""The native mail view (tidewater_dev.mailview): a login on every request, the caught mail readable, an HTML
part kept inert, nothing outside the mail directory served."""

from __future__ import annotations

import threading
from email.message import EmailMessage
from http.server import ThreadingHTTPServer

import pytest
import requests

from tidewater_dev.mailview import make_handler

LOGIN = ("admin", "s3cret-for-this-test")


@pytest.fixture
def view(tmp_path):
    maildir = tmp_path / "mail"
    maildir.mkdir()
    (tmp_path / "secrets").write_text("TOP SECRET")
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "airflow@x.invalid", "team@x.invalid", "Gate <failed>"
    message.set_content("plain body")
    message.add_alternative("<p>html body</p><script>alert(1)</script>", subtype="html")
    (maildir / "1700000000000000000.eml").write_bytes(bytes(message))
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(maildir, *LOGIN))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_every_page_wants_the_login(view):
    for path in ("/", "/mail/", "/mail/1700000000000000000.eml", "/nothing"):
        response = requests.get(view + path, timeout=5, allow_redirects=False)
        assert response.status_code == 401, path
        assert response.headers["WWW-Authenticate"].startswith("Basic ")
    assert requests.get(view + "/mail/", auth=("admin", "wrong"), timeout=5).status_code == 401


def test_the_list_and_a_message_are_readable_and_the_html_is_inert(view):
    listing = requests.get(view + "/mail/", auth=LOGIN, timeout=5)
    assert listing.status_code == 200
    assert "Gate &lt;failed&gt;" in listing.text and "href='1700000000000000000.eml'" in listing.text
    page = requests.get(view + "/mail/1700000000000000000.eml", auth=LOGIN, timeout=5)
    assert page.status_code == 200
    assert "plain body" in page.text
    assert "<iframe sandbox srcdoc=" in page.text and "<script>" not in page.text
    assert "default-src 'none'" in page.headers["Content-Security-Policy"]


def test_nothing_outside_the_mail_directory_is_served(view):
    for path in ("/mail/../secrets", "/mail/%2e%2e/secrets", "/secrets", "/mail/1700000000000000000.eml/x"):
        response = requests.get(view + path, auth=LOGIN, timeout=5)
        assert response.status_code == 404 and "TOP SECRET" not in response.text, path
