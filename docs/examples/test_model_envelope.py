"""Envelope versus headers: what the SMTP client said versus what the message says."""

from __future__ import annotations

from datetime import datetime, timezone

from pytest_smtp.asserts import assert_sent
from pytest_smtp.mail import Mailbox, Message, SessionInfo

RAW = (
    b"From: Shop <shop@example.com>\r\n"
    b"To: =?utf-8?q?J=C3=BCrgen?= <jurgen@example.org>\r\n"
    b"Subject: =?utf-8?q?Your_order_=E2=84=96_1?=\r\n"
    b"\r\n"
    b"Thanks for your order!\r\n"
)


def captured(raw: bytes, mail_from: str, rcpt_tos: list[str]) -> Message:
    """What the capturing server records for one delivery (the server builds these for you)."""
    return Message(
        raw=raw,
        mail_from=mail_from,
        rcpt_tos=rcpt_tos,
        mail_options=[],
        rcpt_options={},
        session=SessionInfo(id=1, peer=("127.0.0.1", 50000), server_hostname="mx.test"),
        server="127.0.0.1:2525",
        received_at=datetime.now(timezone.utc),
        transaction_id=1,
    )


def test_a_bcc_recipient_is_in_the_envelope_only() -> None:
    message = captured(RAW, "bounces@example.com", ["jurgen@example.org", "audit@example.com"])

    # The envelope: MAIL FROM and RCPT TO, where the mail was actually delivered.
    assert message.mail_from == "bounces@example.com"
    assert message.rcpt_tos == ["jurgen@example.org", "audit@example.com"]

    # The headers: what the recipient's mail program shows, decoded.
    assert message.from_ == "Shop <shop@example.com>"
    assert message.to == ["jurgen@example.org"]
    assert message.headers["To"] == "Jürgen <jurgen@example.org>"
    assert message.subject == "Your order № 1"
    assert message.headers["Bcc"] is None


def test_filters_look_at_the_envelope_or_at_headers() -> None:
    mailbox = Mailbox()
    mailbox._append(
        captured(RAW, "bounces@example.com", ["jurgen@example.org", "audit@example.com"])
    )

    # rcpt= and mail_from= are envelope addresses, matched exactly (case does not matter).
    assert_sent(mailbox, rcpt="AUDIT@example.com", mail_from="bounces@example.com")
    # header_to= and header_from= are the addresses written in the To: and From: headers.
    assert_sent(mailbox, header_to="jurgen@example.org", header_from="shop@example.com")
    assert mailbox.filter(header_to="audit@example.com") == []  # Bcc: envelope only
    # header= matches a decoded header value exactly, or a compiled pattern.
    assert_sent(mailbox, header=("To", "Jürgen <jurgen@example.org>"))
    assert mailbox.filter(rcpt="audit@example.com", subject="Your order № 1")


def test_a_bounce_has_the_null_sender() -> None:
    bounce = captured(b"Subject: Undelivered\r\n\r\n...", "", ["shop@example.com"])
    mailbox = Mailbox()
    mailbox._append(bounce)
    assert bounce.mail_from == ""
    assert mailbox.one(mail_from="") is bounce
