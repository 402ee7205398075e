"""How-to: move from pytest-localserver's smtpserver (docs/how-to/migrate.md)."""

from __future__ import annotations

import smtplib

from pytest_smtp import SMTPServer

# pytest-localserver:  def test_send(smtpserver):
#                          host, port = smtpserver.addr
#                          ...
#                          assert smtpserver.outbox[0].details.rcpttos == [...]


def test_send(smtp_server: SMTPServer) -> None:
    host, port = smtp_server.address  # smtpserver.addr
    with smtplib.SMTP(host, port) as client:
        client.sendmail("a@example.test", ["b@example.test"], "Subject: Hi\r\n\r\nHello")

    message = smtp_server.mailbox.one()  # smtpserver.outbox[0]
    assert message.mail_from == "a@example.test"  # .details.mailfrom
    assert message.rcpt_tos == ["b@example.test"]  # .details.rcpttos
    assert message.email["Subject"] == "Hi"  # the parsed email.message
