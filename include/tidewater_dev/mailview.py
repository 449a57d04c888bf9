"""A read-only web view of the mail the native SMTP sink caught (tidewater_dev.mailsink), behind a login.

The native stack's stand-in for Mailpit's web UI (docker compose runs Mailpit): it serves under ``/mail/`` on
127.0.0.1:TIDEWATER_MAIL_UI_PORT, so the one-address proxy (stack/config/Caddyfile) passes ``/mail/`` on
unchanged, as it does to Mailpit. What it guarantees:

- Every request wants HTTP basic auth as TIDEWATER_MAIL_UI_USER / TIDEWATER_MAIL_UI_PASSWORD (the generated
  secret); it does not start without a password.
- ``/mail/`` lists the messages, newest first; ``/mail/<file>.eml`` shows one: its headers, its plain text, and
  its HTML in a sandboxed frame (no scripts, nothing loaded from elsewhere: the page's Content-Security-Policy).
- It only reads the mail directory; nothing can be sent, changed or deleted through it.

  python -m tidewater_dev.mailview --host 127.0.0.1 --port 28025 --maildir .stack/mail
"""

from __future__ import annotations

import argparse
import base64
import hmac
import os
import re
import sys
from email.message import EmailMessage
from html import escape
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from tidewater_dev.mailsink import message_files, read_message

PREFIX = "/mail/"
_MESSAGE = re.compile(r"[0-9]+\.eml")  # the sink's file names (mailsink.MaildirHandler)
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
STYLE = ("body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}td,th{padding:.3em .8em;"
         "border-bottom:1px solid #ddd;text-align:left}iframe{width:100%;height:60vh;border:1px solid #ccc}")


def _page(title: str, body: str) -> bytes:
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{escape(title)}</title>"
            f"<style>{STYLE}</style></head><body>{body}</body></html>").encode()


def index_page(maildir: Path) -> bytes:
    rows = []
    for path in reversed(message_files(maildir)):
        message = read_message(path)
        date, to, subject = (escape(str(message[key] or "")) for key in ("Date", "To", "Subject"))
        rows.append(f"<tr><td>{date}</td><td>{to}</td><td><a href='{escape(path.name)}'>{subject or '(no subject)'}"
                    "</a></td></tr>")
    table = ("<table><tr><th>date</th><th>to</th><th>subject</th></tr>" + "".join(rows) + "</table>" if rows
             else "<p>No mail yet: alert emails appear here when a DAG sends one.</p>")
    return _page("Tidewater mail", f"<h1>Mail caught by the SMTP sink</h1><p>{len(rows)} message(s) in "
                                   f"{escape(str(maildir))}</p>{table}")


def message_page(message: EmailMessage, name: str) -> bytes:
    headers = "".join(f"<tr><th>{escape(key)}</th><td>{escape(str(message[key] or ''))}</td></tr>"
                      for key in ("Date", "From", "To", "Subject"))
    parts = []
    text, html = message.get_body(("plain",)), message.get_body(("html",))
    if text is not None:
        parts.append(f"<pre>{escape(text.get_content())}</pre>")
    if html is not None:  # the sandbox (no allow-scripts, no allow-same-origin) and the CSP keep it inert
        parts.append(f"<iframe sandbox srcdoc=\"{escape(html.get_content(), quote=True)}\"></iframe>")
    return _page(str(message["Subject"] or name), f"<p><a href='./'>all mail</a></p><table>{headers}</table>"
                                                  + ("".join(parts) or "<p>(no text or HTML part)</p>"))


def make_handler(maildir: Path, user: str, password: str) -> type[BaseHTTPRequestHandler]:
    expected = base64.b64encode(f"{user}:{password}".encode()).decode()

    class MailView(BaseHTTPRequestHandler):
        server_version = "tidewater-mailview"

        def do_GET(self) -> None:
            given = self.headers.get("Authorization", "").removeprefix("Basic ").strip()
            if not hmac.compare_digest(given.encode(), expected.encode()):
                self._send(HTTPStatus.UNAUTHORIZED, _page("Login", "<p>Log in as TIDEWATER_MAIL_UI_USER.</p>"),
                           {"WWW-Authenticate": 'Basic realm="Tidewater mail", charset="UTF-8"'})
                return
            path = self.path.split("?", 1)[0]
            name = path.removeprefix(PREFIX)
            if path in ("/", PREFIX.rstrip("/")):
                self._send(HTTPStatus.FOUND, b"", {"Location": PREFIX})
            elif path == PREFIX:
                self._send(HTTPStatus.OK, index_page(maildir))
            elif path.startswith(PREFIX) and _MESSAGE.fullmatch(name) and (maildir / name).is_file():
                self._send(HTTPStatus.OK, message_page(read_message(maildir / name), name))
            else:
                self._send(HTTPStatus.NOT_FOUND, _page("Not found", "<p>No such message. <a href='/mail/'>All "
                                                                    "mail</a></p>"))

        def _send(self, status: HTTPStatus, body: bytes, headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            for key, value in {"Content-Type": "text/html; charset=utf-8", **SECURITY_HEADERS,
                               **(headers or {})}.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return MailView


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tidewater_dev.mailview", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--maildir", type=Path, required=True)
    args = parser.parse_args(argv)
    user, password = os.environ.get("TIDEWATER_MAIL_UI_USER", ""), os.environ.get("TIDEWATER_MAIL_UI_PASSWORD", "")
    if not user or not password:
        print("tidewater_dev.mailview: TIDEWATER_MAIL_UI_USER and TIDEWATER_MAIL_UI_PASSWORD must be set (the "
              "password is generated into .stack/secrets by `make stack-up`)", file=sys.stderr)
        return 2
    args.maildir.mkdir(parents=True, exist_ok=True)
    server = ThreadingHTTPServer((args.host, args.port), make_handler(args.maildir, user, password))
    print(f"mail view on http://{args.host}:{args.port}{PREFIX} (login {user}), reading {args.maildir}", flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
