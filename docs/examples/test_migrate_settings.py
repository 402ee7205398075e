"""How-to: Flask-Mail / fastapi-mail style settings -> the capturing server
(docs/how-to/migrate.md). The send functions read the settings as those libraries do."""

from __future__ import annotations

import smtplib
from email.message import EmailMessage
from typing import Any

import aiosmtplib
import pytest

from pytest_smtp import SMTPServer, TestCA


def flask_mail_send(config: dict[str, Any], to: str, subject: str) -> None:
    """What Flask-Mail does with app.config: SMTP(MAIL_SERVER, MAIL_PORT), STARTTLS, login."""
    with smtplib.SMTP(config["MAIL_SERVER"], config["MAIL_PORT"]) as client:
        if config.get("MAIL_USE_TLS"):
            client.starttls(context=config.get("TLS_CONTEXT"))
        if config.get("MAIL_USERNAME"):
            client.login(config["MAIL_USERNAME"], config["MAIL_PASSWORD"])
        client.sendmail(config["MAIL_DEFAULT_SENDER"], [to], f"Subject: {subject}\r\n\r\nx")


@pytest.mark.smtp(tls="starttls", auth={"app": "s3cret"}, require_auth=True)
def test_flask_mail_config(smtp_server: SMTPServer, smtp_tls: TestCA) -> None:
    config = {
        "MAIL_SERVER": smtp_server.host,
        "MAIL_PORT": smtp_server.port,
        "MAIL_USE_TLS": True,
        "MAIL_USERNAME": "app",
        "MAIL_PASSWORD": "s3cret",
        "MAIL_DEFAULT_SENDER": "shop@example.test",
        "TLS_CONTEXT": smtp_tls.client_context(),  # trust the test CA
    }
    flask_mail_send(config, "ann@example.test", "Order shipped")

    message = smtp_server.mailbox.one()
    assert (message.subject, message.session.tls, message.session.auth_user) == (
        "Order shipped",
        True,
        "app",
    )


async def fastapi_mail_send(conf: dict[str, Any], to: str, subject: str) -> None:
    """What fastapi-mail does with its ConnectionConfig fields, on aiosmtplib."""
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = conf["MAIL_FROM"], to, subject
    message.set_content("x")
    await aiosmtplib.send(
        message,
        hostname=conf["MAIL_SERVER"],
        port=conf["MAIL_PORT"],
        start_tls=conf["MAIL_STARTTLS"],
        use_tls=conf["MAIL_SSL_TLS"],
        username=conf["MAIL_USERNAME"] if conf["USE_CREDENTIALS"] else None,
        password=conf["MAIL_PASSWORD"] if conf["USE_CREDENTIALS"] else None,
    )


@pytest.mark.asyncio
async def test_fastapi_mail_config(smtp_server: SMTPServer) -> None:
    conf = {
        "MAIL_SERVER": smtp_server.host,
        "MAIL_PORT": smtp_server.port,
        "MAIL_STARTTLS": False,
        "MAIL_SSL_TLS": False,
        "USE_CREDENTIALS": False,
        "MAIL_USERNAME": "",
        "MAIL_PASSWORD": "",
        "MAIL_FROM": "shop@example.test",
    }
    await fastapi_mail_send(conf, "ann@example.test", "Welcome")

    message = smtp_server.mailbox.one(subject="Welcome")  # recorded before the 250
    assert message.rcpt_tos == ["ann@example.test"]
