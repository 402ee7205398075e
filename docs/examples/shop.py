"""A tiny application that sends mail: the code under test in the example suite.

It is written the way application code usually is: it knows nothing about tests, it reads its
SMTP settings from a config object and uses smtplib (sync) or aiosmtplib (async).
"""

from __future__ import annotations

import smtplib
import ssl
from dataclasses import dataclass, field
from email.message import EmailMessage

import aiosmtplib


@dataclass
class MailConfig:
    host: str
    port: int
    sender: str = "shop@example.test"
    starttls: bool = False
    user: str | None = None
    password: str | None = None
    tls_context: ssl.SSLContext | None = None
    retries: int = 0
    failed: list[str] = field(default_factory=list)


def _message(
    cfg: MailConfig, to: str, subject: str, text: str, html: str | None = None
) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = f"Example Shop <{cfg.sender}>"
    msg["To"] = to
    msg["Subject"] = subject
    msg.set_content(text)
    if html is not None:
        msg.add_alternative(html, subtype="html")
    return msg


def _send(cfg: MailConfig, msg: EmailMessage) -> dict[str, tuple[int, bytes]]:
    attempts = cfg.retries + 1
    for attempt in range(attempts):
        try:
            with smtplib.SMTP(cfg.host, cfg.port, timeout=10) as client:
                if cfg.starttls:
                    client.starttls(context=cfg.tls_context)
                if cfg.user is not None and cfg.password is not None:
                    client.login(cfg.user, cfg.password)
                return client.send_message(msg)
        except smtplib.SMTPResponseException as exc:
            # 4xx: try again (greylisting, rate limits); 5xx: give up at once.
            if exc.smtp_code >= 500 or attempt == attempts - 1:
                raise
        except smtplib.SMTPRecipientsRefused as exc:
            permanent = any(code >= 500 for code, _ in exc.recipients.values())
            if permanent or attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


def send_welcome(cfg: MailConfig, email: str, name: str) -> None:
    """Sent when a user signs up."""
    msg = _message(
        cfg,
        email,
        f"Welcome, {name}!",
        f"Hi {name},\n\nthanks for signing up. Confirm here: https://shop.example.test/confirm\n",
        html=f"<p>Hi {name},</p><p><a href='https://shop.example.test/confirm'>Confirm</a></p>",
    )
    _send(cfg, msg)


def send_order_confirmation(cfg: MailConfig, email: str, order_id: int, invoice_pdf: bytes) -> None:
    """Sent after checkout, with the invoice attached and a Bcc to accounting."""
    msg = _message(
        cfg, email, f"Order #{order_id} confirmed", f"Your order #{order_id} is on its way.\n"
    )
    msg.add_attachment(
        invoice_pdf, maintype="application", subtype="pdf", filename=f"invoice-{order_id}.pdf"
    )
    refused = _send_with_bcc(cfg, msg, ["accounting@example.test"])
    cfg.failed.extend(refused)


def _send_with_bcc(
    cfg: MailConfig, msg: EmailMessage, bcc: list[str]
) -> dict[str, tuple[int, bytes]]:
    with smtplib.SMTP(cfg.host, cfg.port, timeout=10) as client:
        return client.send_message(msg, to_addrs=[msg["To"], *bcc])


def newsletter(cfg: MailConfig, recipients: list[str], subject: str) -> list[str]:
    """Sends one message to many recipients; returns the ones the server refused."""
    msg = _message(cfg, "undisclosed-recipients:;", subject, "News!\n")
    with smtplib.SMTP(cfg.host, cfg.port, timeout=10) as client:
        refused = client.send_message(msg, to_addrs=recipients)
    return sorted(refused)


async def notify_async(cfg: MailConfig, email: str, text: str) -> None:
    """The async path of the app (a background worker) uses aiosmtplib."""
    msg = _message(cfg, email, "Notification", text)
    await aiosmtplib.send(msg, hostname=cfg.host, port=cfg.port, timeout=10)
