"""authenticate=True on a real SMTPServer: messages signed with dkimpy by the test, sent with
smtplib, verified on receipt against a real FakeDNS; the stored copy read back over POP3."""

from __future__ import annotations

import poplib
import smtplib
from collections.abc import Iterator

import dkim
import pytest

# The message verify()'s own tests send (tests/integration is on sys.path).
from test_quality_verify import RAW

from pytest_smtp import POP3Server, SMTPServer
from pytest_smtp.fakedns import FakeDNS
from pytest_smtp.mail import Message
from pytest_smtp.quality import Finding, lint


@pytest.fixture
def fake() -> Iterator[FakeDNS]:
    with FakeDNS() as server:
        yield server


@pytest.fixture
def key(fake: FakeDNS) -> bytes:
    fake.spf("example.test", "v=spf1 ip4:127.0.0.0/8 -all")
    fake.dmarc("example.test", "v=DMARC1; p=reject")
    return fake.dkim_key("example.test")


def send(server: SMTPServer, data: bytes, sender: str = "bounces@example.test") -> Message:
    with smtplib.SMTP(*server.address) as client:
        client.ehlo("mail.example.test")
        client.sendmail(sender, ["ann@inbox.test"], data)
    return server.mailbox.one()


def pop3_retrieve(server: SMTPServer, user: str) -> bytes:
    with POP3Server(store=server.store, auth="any") as pop3:
        client = poplib.POP3(*pop3.address)
        try:
            client.user(user)
            client.pass_("x")
            _, lines, _ = client.retr(1)
        finally:
            client.quit()
    return b"\r\n".join(lines) + b"\r\n"


def test_verdicts_are_on_the_message_when_the_client_has_its_250(fake: FakeDNS, key: bytes) -> None:
    signed = dkim.sign(RAW, b"s1", b"example.test", key) + RAW
    with SMTPServer(authenticate=True, dns=fake) as server:
        message = send(server, signed)
        # The FakeDNS answers on the engine loop: verdicts that needed its answers (a key, the
        # SPF and DMARC records) prove the checks ran off the loop, not stuck behind it.
        assert message.auth.dkim_result == "pass"
        assert message.auth.spf is not None and message.auth.spf.result == "pass"
        assert message.auth.dmarc.result == "pass"
        assert message.raw == signed  # the capture log keeps the bytes as received


def test_the_stored_copy_carries_authentication_results_as_pop3_reads_it(
    fake: FakeDNS, key: bytes
) -> None:
    signed = dkim.sign(RAW, b"s1", b"example.test", key) + RAW
    with SMTPServer(authenticate=True, dns=fake, hostname="mx.inbox.test") as server:
        message = send(server, signed)
        stored = pop3_retrieve(server, "ann@inbox.test")
    head, _, _rest = stored.partition(b"\r\n")
    assert head.startswith(b"Authentication-Results: mx.inbox.test; dkim=pass")
    field, _, after = stored.partition(b"\r\nDKIM-Signature:")
    assert b"DKIM-Signature:" + after == signed
    unfolded = field.replace(b"\r\n", b"").decode()
    assert unfolded == message.auth.header("mx.inbox.test")
    assert all(len(line) <= 78 for line in field.split(b"\r\n"))
    # What the reader gets is still well formed.
    assert [f.code for f in lint_bytes(stored) if f.severity == "error"] == []


def lint_bytes(raw: bytes) -> list[Finding]:
    """Lint bytes as a receiver of them would: sent to a second server, captured, linted."""
    with SMTPServer() as server:
        return lint(send(server, raw))


def test_unauthenticated_mail_gets_fail_verdicts_in_the_header(fake: FakeDNS, key: bytes) -> None:
    # Sent from loopback but the domain's SPF only allows 192.0.2.0/24: spf=fail, no signature,
    # so DMARC fails and asks for reject.
    fake.remove("example.test", "TXT")
    fake.spf("example.test", "v=spf1 ip4:192.0.2.0/24 -all")
    with SMTPServer(authenticate=True, dns=fake) as server:
        message = send(server, RAW)
        stored = pop3_retrieve(server, "ann@inbox.test")
    assert message.auth.spf is not None and message.auth.spf.result == "fail"
    assert (message.auth.dmarc.result, message.auth.dmarc.disposition) == ("fail", "reject")
    field = stored.split(b"\r\nFrom:")[0].replace(b"\r\n", b"").decode()
    assert "dkim=none" in field and "spf=fail" in field
    assert "dmarc=fail" in field and "policy.dmarc=reject" in field


def test_a_final_delivery_keeps_return_path_on_top(fake: FakeDNS, key: bytes) -> None:
    signed = dkim.sign(RAW, b"s1", b"example.test", key) + RAW
    with SMTPServer(authenticate=True, dns=fake) as server:
        server.delivery_hook = lambda message, rcpt: (
            f"Return-Path: <{message.mail_from}>\r\n".encode() + message.raw
        )
        send(server, signed)
        stored = pop3_retrieve(server, "ann@inbox.test")
    lines = stored.split(b"\r\n")
    assert lines[0] == b"Return-Path: <bounces@example.test>"
    assert lines[1].startswith(b"Authentication-Results: smtp.pytest-smtp.test; dkim=pass")


def test_authenticate_without_dns_names_what_to_pass() -> None:
    with pytest.raises(ValueError, match=r"authenticate=True needs the fake DNS.*dns=FakeDNS"):
        SMTPServer(authenticate=True)


def test_message_auth_without_authenticate_says_how_to_get_it() -> None:
    with SMTPServer() as server:
        message = send(server, RAW)
        with pytest.raises(AttributeError, match=r"authenticate=True.*verify\(message"):
            message.auth  # noqa: B018 -- the property under test
        assert message.lint() == lint(message)
        assert not hasattr(message, "auth")
        # Nothing added to the stored copy either.
        assert pop3_retrieve(server, "ann@inbox.test") == RAW


def test_fake_dns_publishes_the_records_the_checks_read(fake: FakeDNS) -> None:
    pem = fake.dkim_key("example.test", selector="2026", bits=1024)
    assert pem.startswith(b"-----BEGIN PRIVATE KEY-----")
    fake.spf("example.test", "v=spf1 -all")
    fake.dmarc("example.test", "v=DMARC1; p=quarantine")
    resolver = fake.sync_resolver()

    def txt(name: str) -> list[bytes]:
        return [b"".join(r.strings) for r in resolver.resolve(name, "TXT")]

    assert txt("2026._domainkey.example.test")[0].startswith(b"v=DKIM1; k=rsa; p=")
    assert txt("example.test") == [b"v=spf1 -all"]
    assert txt("_dmarc.example.test") == [b"v=DMARC1; p=quarantine"]
    with pytest.raises(ValueError, match="v=spf1"):
        fake.spf("example.test", "spf1 -all")
    with pytest.raises(ValueError, match="bad DMARC record"):
        fake.dmarc("example.test", "v=DMARC1; p=maybe")


def test_forged_results_in_the_servers_name_are_removed_from_the_stored_copy(
    fake: FakeDNS, key: bytes
) -> None:
    # A sender claims "dkim=pass" in the receiving MX's own name (one of them folded before its
    # authserv-id); another MX's results are not the receiver's to judge and stay.
    forged = (
        b"Authentication-Results: MX.inbox.test; dkim=pass header.d=example.test\r\n"
        b"Authentication-Results:\r\n mx.inbox.test; spf=pass\r\n"
        b"Authentication-Results: relay.example.test; spf=pass smtp.mailfrom=example.test\r\n"
    )
    with SMTPServer(authenticate=True, dns=fake, hostname="mx.inbox.test") as server:
        message = send(server, forged + RAW)
        stored = pop3_retrieve(server, "ann@inbox.test")
    assert message.raw == forged + RAW  # the capture log keeps what was sent
    header, _, body = stored.partition(b"\r\n\r\n")
    fields = header.replace(b"\r\n ", b" ").split(b"\r\n")
    results = [f for f in fields if f.startswith(b"Authentication-Results:")]
    assert len(results) == 2
    assert results[0].startswith(b"Authentication-Results: mx.inbox.test; dkim=none")
    assert results[1] == (
        b"Authentication-Results: relay.example.test; spf=pass smtp.mailfrom=example.test"
    )
    raw_header, _, raw_body = RAW.partition(b"\r\n\r\n")
    assert header.endswith(raw_header) and body == raw_body
