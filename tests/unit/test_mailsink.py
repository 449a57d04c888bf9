from __future__ import annotations

import smtplib
from email.message import EmailMessage

from aiosmtpd.controller import Controller

from tests.support.alerts import free_port
from tidewater_dev.mailsink import MaildirHandler, read_messages


def test_sink_keeps_each_message_as_a_readable_file(tmp_path):
    port = free_port()
    controller = Controller(MaildirHandler(tmp_path), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        message = EmailMessage()
        message["From"], message["To"], message["Subject"] = "a@x.invalid", "b@x.invalid", "Ünïcode"
        message.set_content("body line")
        with smtplib.SMTP("127.0.0.1", port) as client:
            client.send_message(message)
    finally:
        controller.stop()

    [received] = read_messages(tmp_path)
    assert received["Subject"] == "Ünïcode"
    assert received.get_content().strip() == "body line"
