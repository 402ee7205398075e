"""How-to: is my app's mail well formed? (docs/how-to/lint-and-authentication.md)."""

from __future__ import annotations

import smtplib
from email.message import EmailMessage
from email.utils import make_msgid

import pytest

from pytest_smtp.quality import assert_clean, lint


# The code under test: builds a message with the standard library and sends it.
def send_receipt(host: str, port: int, to: str, total: str, *, announce_8bit: bool = True) -> None:
    msg = EmailMessage()
    msg["From"] = "Shop <shop@example.test>"
    msg["To"] = to
    msg["Subject"] = "Ihre Quittung über " + total  # non-ASCII: RFC 2047-encoded by the library
    msg["Message-ID"] = make_msgid(domain="example.test")
    msg["Date"] = "Sun, 06 Dec 2026 09:00:00 +0000"
    msg.set_content(f"Summe: {total}\n")  # short UTF-8 lines: Content-Transfer-Encoding 8bit
    with smtplib.SMTP(host, port) as client:
        # smtplib does not announce 8-bit data itself; a strict receiver needs BODY=8BITMIME.
        client.send_message(msg, mail_options=["BODY=8BITMIME"] if announce_8bit else [])


# The tests.
def test_receipt_is_well_formed(smtp_server):
    send_receipt(smtp_server.host, smtp_server.port, "ann@example.test", "12,50 €")
    assert_clean(smtp_server.mailbox.one())


def test_8bit_body_without_8bitmime_is_caught(smtp_server):
    send_receipt(smtp_server.host, smtp_server.port, "ann@example.test", "9 €", announce_8bit=False)
    with pytest.raises(AssertionError, match="8bit-without-8bitmime"):
        assert_clean(smtp_server.mailbox.one())


def test_a_hand_built_message_is_caught(smtp_server):
    with smtplib.SMTP(smtp_server.host, smtp_server.port) as client:
        client.sendmail(
            "shop@example.test",
            ["ann@example.test"],
            "From: shop@example.test\r\nSubject: Grüße\r\n\r\nSee you\n".encode(),
        )
    message = smtp_server.mailbox.one()
    assert [f.code for f in lint(message)] == [
        "bare-lf",
        "missing-date",
        "missing-message-id",
        "non-ascii-header",
    ]
    with pytest.raises(AssertionError, match="non-ascii-header"):
        assert_clean(message, allow=("missing-message-id",))
