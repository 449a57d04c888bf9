"""A local SMTP sink: accepts every message on 127.0.0.1 and keeps it as an .eml file.

The native stack runs it so that alert emails can be read (and asserted on) without ever leaving the
machine; docker-compose uses Mailpit for the same job.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

from aiosmtpd.controller import Controller


class MaildirHandler:
    def __init__(self, maildir: Path) -> None:
        self.maildir = maildir
        self.maildir.mkdir(parents=True, exist_ok=True)

    async def handle_DATA(self, server, session, envelope) -> str:
        name = f"{time.time_ns()}.eml"
        tmp = self.maildir / f".{name}.tmp"
        tmp.write_bytes(envelope.original_content or envelope.content)
        tmp.rename(self.maildir / name)  # readers never see half a message
        return "250 Message accepted for delivery"


def message_files(maildir: Path) -> list[Path]:
    """The files of every message the sink has kept, oldest first (their names are the arrival times in ns)."""
    return sorted(maildir.glob("*.eml"))


def read_message(path: Path) -> EmailMessage:
    return message_from_bytes(path.read_bytes(), policy=policy.default)  # type: ignore[return-value]


def read_messages(maildir: Path) -> list[EmailMessage]:
    """Every message the sink has kept, oldest first."""
    return [read_message(path) for path in message_files(maildir)]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=21025)
    parser.add_argument("--maildir", type=Path, required=True)
    args = parser.parse_args(argv)
    controller = Controller(MaildirHandler(args.maildir), hostname=args.host, port=args.port)
    controller.start()
    print(f"SMTP sink listening on {args.host}:{args.port}, keeping mail in {args.maildir}", flush=True)
    try:
        asyncio.run(asyncio.Event().wait())
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
