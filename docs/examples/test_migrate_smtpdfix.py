"""How-to: move from smtpdfix (docs/how-to/migrate.md)."""

from __future__ import annotations

import smtplib
from email.message import EmailMessage

import pytest

from pytest_smtp import SMTPServer, TestCA

# smtpdfix:  def test_send(smtpd):
#                with smtplib.SMTP(smtpd.hostname, smtpd.port) as client: ...
#                assert len(smtpd.messages) == 1


def test_send(smtp_server: SMTPServer) -> None:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "a@example.test", "b@example.test", "Hi"
    message.set_content("Hello")
    with smtplib.SMTP(smtp_server.host, smtp_server.port) as client:  # smtpd.hostname/.port
        client.send_message(message)

    [received] = smtp_server.mailbox  # smtpd.messages
    assert received.subject == "Hi"
    assert received.rcpt_tos == ["b@example.test"]  # smtpd.messages[0]["X-RcptTo"]


# smtpdfix:  SMTPD_USE_STARTTLS=1 SMTPD_ENFORCE_AUTH=1 SMTPD_LOGIN_NAME=user
#            SMTPD_LOGIN_PASSWORD=password   (or smtpd.config.use_starttls = True ...)
@pytest.mark.smtp(tls="starttls", require_tls=True, auth={"user": "password"}, require_auth=True)
def test_starttls_and_login(smtp_server: SMTPServer, smtp_tls: TestCA) -> None:
    with smtplib.SMTP(smtp_server.host, smtp_server.port) as client:
        client.starttls(context=smtp_tls.client_context())  # a verified certificate
        client.login("user", "password")
        client.sendmail("a@example.test", ["b@example.test"], "Subject: Hi\r\n\r\nHello")

    assert smtp_server.mailbox.one().session.auth_user == "user"
