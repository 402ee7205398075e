"""How-to: verify and lint every message on receipt (docs/how-to/lint-and-authentication.md)."""

from __future__ import annotations

import poplib
import smtplib

import dkim
import pytest


# The code under test: signs its mail with DKIM, as a real sender does, then sends it.
def send_signed(host: str, port: int, key: bytes, body: str) -> None:
    raw = (
        "From: Shop <shop@example.test>\r\nTo: ann@inbox.test\r\nSubject: Receipt\r\n"
        "Date: Sun, 06 Dec 2026 09:00:00 +0000\r\nMessage-ID: <r2@example.test>\r\n"
        f"\r\n{body}\r\n"
    ).encode()
    signature = dkim.sign(raw, b"s1", b"example.test", key)
    with smtplib.SMTP(host, port) as client:
        client.ehlo("mail.example.test")
        client.sendmail("bounces@example.test", ["ann@inbox.test"], signature + raw)


@pytest.fixture
def dkim_key(smtp_dns):
    """The domain's DNS as production has it, published with smtp_dns's own methods."""
    smtp_dns.spf("example.test", "v=spf1 ip4:127.0.0.0/8 -all")
    smtp_dns.dmarc("example.test", "v=DMARC1; p=reject")
    return smtp_dns.dkim_key("example.test", selector="s1")


# The tests: the server verifies each message before it answers 250, and the test fails at
# teardown if the mail it captured has lint errors.
@pytest.mark.smtp(authenticate=True, strict=True)
def test_receipt_passes_dmarc(smtp_server, dkim_key):
    send_signed(smtp_server.host, smtp_server.port, dkim_key, "Total: 12.50")
    message = smtp_server.mailbox.one()
    assert message.auth.dmarc.result == "pass"
    assert message.auth.dkim[0].domain == "example.test"


@pytest.mark.smtp(authenticate=True, strict=True)
def test_what_the_mailbox_reader_sees(smtp_server, smtp_pop3, dkim_key):
    send_signed(smtp_server.host, smtp_server.port, dkim_key, "Total: 12.50")
    reader = poplib.POP3(*smtp_pop3.address)
    reader.user("ann@inbox.test")
    reader.pass_("any")
    first_line = reader.retr(1)[1][0]
    reader.quit()
    # The receiving MX's verdicts, on top of the copy the mailbox holds ...
    assert first_line.startswith(b"Authentication-Results: smtp.pytest-smtp.test; dkim=pass")
    # ... never on message.raw, the bytes as the client sent them.
    assert not smtp_server.mailbox.one().raw.startswith(b"Authentication-Results")
