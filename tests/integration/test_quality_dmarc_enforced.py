"""enforce_dmarc=True: the server acts on the sender's DMARC policy as a receiving MX does.

Messages signed (or not) with dkimpy by the test, sent with smtplib, verified against a real
FakeDNS: p=reject failures get 550 5.7.1 and are not accepted, p=quarantine failures land in
the recipient's Junk folder; in a mail network, the relay bounces what the MX refused.
"""

from __future__ import annotations

import smtplib
from collections.abc import Iterator

import dkim
import pytest
from test_quality_verify import RAW as VERIFIED_RAW

from pytest_smtp import SMTPServer
from pytest_smtp.fakedns import FakeDNS
from pytest_smtp.relay import MailNetwork, assert_bounced, assert_delivered
from pytest_smtp.smtp.options import OptionError

# The message verify()'s own tests send (tests/integration is on sys.path), from shop.test.
RAW = VERIFIED_RAW.replace(b"example.test", b"shop.test")


@pytest.fixture
def fake() -> Iterator[FakeDNS]:
    with FakeDNS() as server:
        yield server


def publish(fake: FakeDNS, policy: str) -> bytes:
    """shop.test: no host may send for it by SPF, DKIM key s1, DMARC ``p=policy``."""
    fake.spf("shop.test", "v=spf1 -all")
    fake.dmarc("shop.test", f"v=DMARC1; p={policy}")
    return fake.dkim_key("shop.test", bits=1024)


def signed(key: bytes, raw: bytes = RAW) -> bytes:
    return dkim.sign(raw, b"s1", b"shop.test", key) + raw


def send(server: SMTPServer, data: bytes) -> None:
    with smtplib.SMTP(*server.address, timeout=10) as client:
        client.ehlo("mail.shop.test")
        client.sendmail("bounces@shop.test", ["ann@inbox.test"], data)


def test_a_reject_policy_failure_gets_550_and_nothing_is_filed(fake: FakeDNS) -> None:
    publish(fake, "reject")
    with SMTPServer(enforce_dmarc=True, dns=fake) as server:
        with pytest.raises(smtplib.SMTPDataError) as refused:
            send(server, RAW)
        assert refused.value.smtp_code == 550
        text = refused.value.smtp_error.decode()
        assert text.startswith("5.7.1 Unauthenticated email from shop.test is not accepted")
        assert "p=reject" in text
        txn = server.transactions.wait_for(1, predicate=lambda t: not t.in_progress)[0]
        assert (txn.outcome, txn.stage) == ("rejected", "eod")
        assert txn.reply is not None and (txn.reply.code, txn.reply.enhanced) == (550, "5.7.1")
        assert len(server.mailbox) == 0
        assert server.store.maildrop("ann@inbox.test").inbox.messages == []


def test_a_signed_message_passes_and_is_filed_in_the_inbox(fake: FakeDNS) -> None:
    key = publish(fake, "reject")
    with SMTPServer(enforce_dmarc=True, dns=fake) as server:
        send(server, signed(key))
        message = server.mailbox.one()
        assert message.auth.dmarc.result == "pass" and message.auth.dmarc.dkim_aligned
        drop = server.store.maildrop("ann@inbox.test")
        assert len(drop.inbox.messages) == 1
        assert "Junk" not in drop


def test_a_quarantine_policy_failure_is_accepted_into_junk(fake: FakeDNS) -> None:
    publish(fake, "quarantine")
    with SMTPServer(enforce_dmarc=True, dns=fake) as server:
        send(server, RAW)
        message = server.mailbox.one()
        assert (message.auth.dmarc.result, message.auth.dmarc.disposition) == (
            "fail",
            "quarantine",
        )
        drop = server.store.maildrop("ann@inbox.test")
        assert drop.inbox.messages == []
        (junk,) = drop.folder("Junk").messages
        assert junk.raw.startswith(b"Authentication-Results: ")
        assert b"dmarc=fail" in junk.raw.split(b"\r\n\r\n", 1)[0]


def test_a_none_policy_failure_is_filed_in_the_inbox(fake: FakeDNS) -> None:
    publish(fake, "none")
    with SMTPServer(enforce_dmarc=True, dns=fake) as server:
        send(server, RAW)
        assert server.mailbox.one().auth.dmarc.result == "fail"
        assert len(server.store.maildrop("ann@inbox.test").inbox.messages) == 1


def test_authenticate_alone_records_the_verdict_and_refuses_nothing(fake: FakeDNS) -> None:
    publish(fake, "reject")
    with SMTPServer(authenticate=True, dns=fake) as server:
        send(server, RAW)
        assert server.mailbox.one().auth.dmarc.disposition == "reject"
        assert len(server.store.maildrop("ann@inbox.test").inbox.messages) == 1


def test_enforce_dmarc_needs_the_fake_dns() -> None:
    with pytest.raises(
        OptionError, match=r"fake DNS to verify against \(enforce_dmarc=True implies"
    ):
        SMTPServer(enforce_dmarc=True)


def test_in_a_mail_network_the_relay_bounces_what_the_mx_refused(smtp_dns: FakeDNS) -> None:
    key = publish(smtp_dns, "reject")
    with MailNetwork.simple(smtp_dns, "inbox.test", mx={"enforce_dmarc": True}) as network:
        forged = RAW.replace(b"Subject: Your order", b"Subject: forged")
        genuine = signed(key, RAW.replace(b"Subject: Your order", b"Subject: genuine"))
        for raw in (forged, genuine):
            with smtplib.SMTP(*network.address, local_hostname="client.test", timeout=10) as c:
                c.sendmail("bounces@shop.test", ["ann@inbox.test"], raw)
        network.run_until_idle()
        journey = assert_bounced(network, "ann@inbox.test", status="5.7.1", subject="forged")
        assert journey.host == "relay.inbox.test"
        assert journey.reply is not None and "DMARC" in journey.reply.text
        assert_delivered(network, "ann@inbox.test", subject="genuine")
    assert network.errors == []
