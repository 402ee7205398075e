"""How-to: what a receiver that enforces DMARC does to my app's mail
(docs/how-to/lint-and-authentication.md)."""

from __future__ import annotations

import smtplib

import dkim
import pytest

from pytest_smtp.quality import publish_dkim_key, publish_dmarc, publish_spf

MESSAGE = (
    b"From: Shop <shop@example.test>\r\nTo: ann@inbox.test\r\nSubject: Your receipt\r\n"
    b"Date: Sun, 06 Dec 2026 09:00:00 +0000\r\nMessage-ID: <r2@example.test>\r\n"
    b"\r\nThank you.\r\n"
)


def send(server, raw: bytes) -> None:
    with smtplib.SMTP(server.host, server.port) as client:
        client.ehlo("mail.example.test")
        client.sendmail("bounces@example.test", ["ann@inbox.test"], raw)


@pytest.fixture
def dkim_key(smtp_dns):
    """SPF names no host of ours (the mail goes out through a provider), DMARC says reject:
    only a DKIM signature can make the mail pass."""
    publish_spf(smtp_dns, "example.test", "v=spf1 -all")
    publish_dmarc(smtp_dns, "example.test", "v=DMARC1; p=reject")
    return publish_dkim_key(smtp_dns, "example.test", selector="s1")


@pytest.mark.smtp(enforce_dmarc=True)
def test_unsigned_mail_is_refused_as_a_receiver_would(smtp_server, dkim_key):
    with pytest.raises(smtplib.SMTPDataError) as refused:
        send(smtp_server, MESSAGE)
    assert refused.value.smtp_code == 550
    assert refused.value.smtp_error.startswith(b"5.7.1 Unauthenticated email from example.test")
    assert len(smtp_server.mailbox) == 0


@pytest.mark.smtp(enforce_dmarc=True)
def test_signed_mail_reaches_the_inbox(smtp_server, dkim_key):
    send(smtp_server, dkim.sign(MESSAGE, b"s1", b"example.test", dkim_key) + MESSAGE)
    assert smtp_server.mailbox.one().auth.dmarc.result == "pass"
    assert len(smtp_server.store.maildrop("ann@inbox.test").inbox.messages) == 1
