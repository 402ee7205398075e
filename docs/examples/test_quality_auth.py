"""How-to: will receivers trust my app's mail? DKIM, SPF, DMARC against the fake DNS
(docs/how-to/lint-and-authentication.md)."""

from __future__ import annotations

import smtplib

import dkim
import pytest

from pytest_smtp.quality import (
    assert_authenticated,
    publish_dkim_key,
    publish_dmarc,
    publish_spf,
    verify,
)


# The code under test: signs its mail with DKIM, as a real sender does, then sends it.
class Mailer:
    def __init__(self, host: str, port: int, dkim_key: bytes, selector: str = "s1") -> None:
        self.host, self.port = host, port
        self.key, self.selector = dkim_key, selector

    def send(self, to: str, subject: str, text: str) -> None:
        raw = (
            f"From: Shop <shop@example.test>\r\nTo: {to}\r\nSubject: {subject}\r\n"
            "Date: Sun, 06 Dec 2026 09:00:00 +0000\r\nMessage-ID: <r1@example.test>\r\n"
            f"\r\n{text}\r\n"
        ).encode()
        signature = dkim.sign(raw, self.selector.encode(), b"example.test", self.key)
        with smtplib.SMTP(self.host, self.port) as client:
            client.ehlo("mail.example.test")
            client.sendmail("bounces@example.test", [to], signature + raw)


@pytest.fixture
def dkim_key(smtp_dns):
    """The domain's DNS as production has it: a DKIM key, SPF for loopback, DMARC reject."""
    publish_spf(smtp_dns, "example.test", "v=spf1 ip4:127.0.0.0/8 -all")
    publish_dmarc(smtp_dns, "example.test", "v=DMARC1; p=reject")
    return publish_dkim_key(smtp_dns, "example.test", selector="s1")


# The tests.
def test_mail_is_authenticated(smtp_server, smtp_dns, dkim_key):
    Mailer(smtp_server.host, smtp_server.port, dkim_key).send("ann@inbox.test", "Hi", "Hello")
    assert_authenticated(smtp_server.mailbox.one(), smtp_dns, dkim_domain="example.test")


def test_wrong_selector_is_caught(smtp_server, smtp_dns, dkim_key):
    Mailer(smtp_server.host, smtp_server.port, dkim_key, selector="2024").send(
        "ann@inbox.test", "Hi", "Hello"
    )
    results = verify(smtp_server.mailbox.one(), smtp_dns)
    assert results.dkim[0].result == "permerror"
    assert results.dkim[0].reason == "key not found: 2024._domainkey.example.test"
    # SPF still passes and is aligned, so DMARC passes: the DKIM bug is silent in production.
    assert results.dmarc.result == "pass" and not results.dmarc.dkim_aligned


def test_the_header_a_receiving_mx_would_add(smtp_server, smtp_dns, dkim_key):
    Mailer(smtp_server.host, smtp_server.port, dkim_key).send("ann@inbox.test", "Hi", "Hello")
    header = verify(smtp_server.mailbox.one(), smtp_dns).header("mx.inbox.test")
    assert header.startswith("Authentication-Results: mx.inbox.test; dkim=pass header.d=")
    assert "dmarc=pass" in header
