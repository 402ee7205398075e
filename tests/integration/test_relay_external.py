"""A server outside the network (``MailNetwork.add_external``): the relay routes to it by MX
like to any host, and the journey ends there, delivered, when it accepts."""

from __future__ import annotations

import smtplib
from collections.abc import Iterator

import pytest

from pytest_smtp.fakedns import FakeDNS
from pytest_smtp.relay import MailNetwork, assert_bounced, assert_delivered, parse_dsn
from pytest_smtp.smtp.server import SMTPServer

SUB, RELAY = "smtp.example.test", "relay.example.test"
OUTSIDE = "sink.outside.test"


def send(network: MailNetwork, rcpt: str, subject: str = "hello") -> None:
    text = f"From: alice@example.test\r\nTo: {rcpt}\r\nSubject: {subject}\r\n\r\nBody.\r\n"
    with smtplib.SMTP(*network.address, local_hostname="client.test", timeout=10) as client:
        client.sendmail("alice@example.test", [rcpt], text)


@pytest.fixture
def setup(smtp_dns: FakeDNS) -> Iterator[tuple[MailNetwork, SMTPServer]]:
    with MailNetwork.simple(smtp_dns) as net:
        ip = "127.0.0.200" if net.distinct_addresses else "127.0.0.1"
        with SMTPServer(host=ip, hostname=OUTSIDE) as server:
            net.add_external(OUTSIDE, server.address, domains=["outside.test"])
            yield net, server
    assert net.errors == []


def test_mail_for_an_external_server_leaves_the_network(
    setup: tuple[MailNetwork, SMTPServer],
) -> None:
    net, server = setup
    send(net, "carol@outside.test", subject="out")
    net.run_until_idle()
    journey = assert_delivered(net, "carol@outside.test", via=[SUB, RELAY, OUTSIDE])
    assert journey.status_code == "2.0.0"
    assert journey.events[-1].kind == "delivered"
    assert "leaves the network" in journey.events[-1].detail
    # Captured by the external server, not by the network: no message on the journey.
    assert net.delivered("carol@outside.test") == []
    (message,) = server.mailbox
    assert message.rcpt_tos == ["carol@outside.test"]
    assert message.session.helo == RELAY
    assert f"by {RELAY} (pytest_smtp relay)" in message.raw.decode()


def test_a_refusal_by_the_external_server_bounces(
    setup: tuple[MailNetwork, SMTPServer],
) -> None:
    net, server = setup
    server.faults.reject("rcpt", match="nobody@outside.test")
    send(net, "nobody@outside.test")
    net.run_until_idle()
    journey = assert_bounced(net, "nobody@outside.test", status="5.1.1")
    assert journey.host == RELAY
    (dsn,) = net.host("mx.example.test").mailbox.filter(to="alice@example.test")
    report = parse_dsn(dsn.raw)
    assert report.recipients[0].remote_mta == OUTSIDE


def test_external_names_and_addresses_are_checked(
    setup: tuple[MailNetwork, SMTPServer],
) -> None:
    net, server = setup
    with pytest.raises(ValueError, match="looks like"):
        net.add_external(RELAY, ("127.0.0.201", 25))
    if net.distinct_addresses:
        with pytest.raises(ValueError, match="already an address"):
            net.add_external("other.outside.test", net.host(RELAY).address)
    else:
        with pytest.raises(ValueError, match=r"share 127\.0\.0\.1"):
            net.add_external("other.outside.test", ("127.0.0.9", 25))
    assert net.external(*server.address) == OUTSIDE
    assert net.external("127.0.0.9", 25) is None
