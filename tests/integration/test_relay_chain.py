"""The relay chain end to end: routing by MX (RFC 5321 §5.1, RFC 7505), trace headers, TLS."""

from __future__ import annotations

import smtplib
from collections.abc import Iterator

import pytest

from pytest_smtp.fakedns import FakeDNS
from pytest_smtp.relay import (
    MailNetwork,
    assert_bounced,
    assert_delivered,
    assert_queued,
    parse_dsn,
)

SUB, RELAY, MX = "smtp.example.test", "relay.example.test", "mx.example.test"


def send(
    network: MailNetwork,
    to: list[str] | str,
    *,
    sender: str = "alice@example.test",
    subject: str = "hello",
    body: str = "Hi there.\r\n",
    mail_options: tuple[str, ...] = (),
    rcpt_options: tuple[str, ...] = (),
) -> dict[str, tuple[int, bytes]]:
    rcpts = [to] if isinstance(to, str) else to
    text = f"From: {sender}\r\nTo: {', '.join(rcpts)}\r\nSubject: {subject}\r\n\r\n{body}"
    with smtplib.SMTP(*network.address, local_hostname="client.test", timeout=10) as client:
        return client.sendmail(sender, rcpts, text, list(mail_options), list(rcpt_options))


@pytest.fixture
def network(smtp_dns: FakeDNS) -> Iterator[MailNetwork]:
    with MailNetwork.simple(smtp_dns) as net:
        yield net
    assert net.errors == []


def test_one_call_gives_a_working_chain(network: MailNetwork) -> None:
    send(network, "bob@example.test")
    network.run_until_idle()
    journey = assert_delivered(network, "bob@example.test", via=[SUB, RELAY, MX])
    assert journey.message is not None
    assert journey.message.subject == "hello"
    assert network.host(MX).mailbox.one(to="bob@example.test").mail_from == "alice@example.test"
    stored = network.maildrop("bob@example.test").inbox.messages
    assert len(stored) == 1
    raw = stored[0].raw
    assert raw.startswith(b"Return-Path: <alice@example.test>\r\nReceived: from relay.example.test")
    received = [line for line in raw.split(b"\r\n") if line.startswith(b"Received:")]
    assert len(received) == 3, "one Received: per hop: submission, relay, MX"
    assert b"by smtp.example.test" in raw and b"from client.test ([127.0.0.1])" in raw
    assert b"for <bob@example.test>;" in raw
    assert network.summary() == {
        "queued": 0,
        "deferred": 0,
        "delivered": 1,
        "bounced": 0,
        "dropped": 0,
    }


def test_hosts_have_distinct_loopback_addresses(network: MailNetwork) -> None:
    ips = {host.ip for host in network.hosts.values()}
    if network.distinct_addresses:
        assert len(ips) == 3 and all(ip.startswith("127.") and ip != "127.0.0.1" for ip in ips)
        send(network, "bob@example.test")
        network.run_until_idle()
        message = network.host(MX).mailbox.one()
        assert message.session.peer[0] == network.host(RELAY).ip
        assert message.session.helo == RELAY
    else:
        assert ips == {"127.0.0.1"}


def test_nothing_moves_until_run(network: MailNetwork) -> None:
    send(network, "bob@example.test")
    assert network.outcome("bob@example.test").status == "queued"
    assert len(network.host(MX).mailbox) == 0
    network.run_until_idle()
    assert network.outcome("bob@example.test").status == "delivered"


def test_mx_preference_and_next_mx_on_connection_failure(network: MailNetwork) -> None:
    network.add_domain("other.test", mx=["mx1.other.test", "mx2.other.test"])
    send(network, "carol@other.test", subject="first")
    network.run_until_idle()
    assert_delivered(network, "carol@other.test", via=[SUB, RELAY, "mx1.other.test"])
    network.host("mx1.other.test").server.stop()
    send(network, "carol@other.test", subject="second")
    network.run_until_idle()
    assert_delivered(
        network, "carol@other.test", subject="second", via=[SUB, RELAY, "mx2.other.test"]
    )


def test_next_mx_on_4xx_greeting(network: MailNetwork) -> None:
    network.add_domain("other.test", mx=["mx1.other.test", "mx2.other.test"])
    network.host("mx1.other.test").faults.reply("connect", 421, "Too busy")
    send(network, "carol@other.test")
    network.run_until_idle()
    assert_delivered(network, "carol@other.test", via=[SUB, RELAY, "mx2.other.test"])


def test_all_mx_down_defers(network: MailNetwork) -> None:
    network.add_domain("other.test", mx=["mx1.other.test", "mx2.other.test"])
    for name in ("mx1.other.test", "mx2.other.test"):
        network.host(name).faults.reply("connect", 421, "Too busy")
    send(network, "carol@other.test")
    network.run_until_idle()
    journey = assert_queued(network, "carol@other.test", status="4.4.1")
    assert journey.host == RELAY
    assert "mx1.other.test" in (journey.diagnostic or "")


def test_equal_preferences_follow_the_seed(smtp_dns: FakeDNS) -> None:
    chosen = set()
    for seed in range(6):
        smtp_dns.reset()
        with MailNetwork.simple(smtp_dns, seed=seed) as net:
            net.add_domain("other.test", mx=[("a.other.test", 10), ("b.other.test", 10)])
            for n in range(2):
                send(net, "carol@other.test", subject=f"s{n}")
            net.run_until_idle()
            hosts = {j.hops[-1] for j in net.journeys("carol@other.test")}
            chosen |= hosts
            assert all(j.delivered for j in net.journeys("carol@other.test"))
    assert chosen == {"a.other.test", "b.other.test"}


def test_equal_preference_choice_is_reproducible(smtp_dns: FakeDNS) -> None:
    runs = []
    for _ in range(2):
        smtp_dns.reset()
        with MailNetwork.simple(smtp_dns, seed=3) as net:
            net.add_domain("other.test", mx=[("a.other.test", 10), ("b.other.test", 10)])
            for n in range(4):
                send(net, "carol@other.test", subject=f"s{n}")
            net.run_until_idle()
            runs.append(sorted((j.subject, j.hops[-1]) for j in net.journeys()))
    assert runs[0] == runs[1]


def test_implicit_mx_uses_the_domain_address(network: MailNetwork, smtp_dns: FakeDNS) -> None:
    network.add_host("plain.test", domains=["plain.test"])
    send(network, "dan@plain.test")
    network.run_until_idle()
    assert_delivered(network, "dan@plain.test", via=[SUB, RELAY, "plain.test"])
    assert smtp_dns.queries.filter(name="plain.test", rdtype="MX")


def test_nxdomain_bounces_with_a_dsn_to_the_sender(network: MailNetwork, smtp_dns: FakeDNS) -> None:
    smtp_dns.add_zone("test")  # the fake DNS is now authoritative for every other *.test name
    send(network, "erin@nowhere.test")
    network.run_until_idle()
    journey = assert_bounced(network, "erin@nowhere.test", status="5.1.2", dsn=True)
    assert journey.host == RELAY
    dsn = journey.dsn
    assert dsn is not None
    assert dsn.mail_from == ""
    assert dsn.rcpt_tos == ["alice@example.test"]
    report = parse_dsn(dsn.raw)
    block = report.recipient("erin@nowhere.test")
    assert (block.action, block.status) == ("failed", "5.1.2")
    assert report.reporting_mta == RELAY
    assert_delivered(network, "alice@example.test", via=[RELAY, MX])


def test_servfail_defers_then_delivers(network: MailNetwork, smtp_dns: FakeDNS) -> None:
    network.add_domain("other.test", mx=["mx1.other.test"])
    fault = smtp_dns.fault("other.test", "MX", "servfail")
    send(network, "carol@other.test")
    network.run_until_idle()
    journey = assert_queued(network, "carol@other.test", status="4.4.3")
    assert journey.next_attempt == network.clock.at(300)
    smtp_dns.clear_faults()
    assert fault.hits >= 1
    network.advance(minutes=4)
    assert_queued(network, "carol@other.test")
    network.advance(minutes=1)
    assert_delivered(network, "carol@other.test")


def test_name_outside_the_fake_zones_is_refused_and_deferred(network: MailNetwork) -> None:
    send(network, "erin@unknown.test")
    network.run_until_idle()
    assert_queued(network, "erin@unknown.test", status="4.4.3")


def test_dns_timeout_defers(smtp_dns: FakeDNS) -> None:
    smtp_dns.lifetime = 0.3
    with MailNetwork.simple(smtp_dns) as net:
        net.add_domain("other.test", mx=["mx1.other.test"])
        smtp_dns.fault("other.test", "MX", "timeout")
        send(net, "carol@other.test")
        net.run_until_idle()
        assert_queued(net, "carol@other.test", status="4.4.3")


def test_null_mx_bounces_without_address_lookup(network: MailNetwork, smtp_dns: FakeDNS) -> None:
    network.add_domain("nomail.test", null_mx=True)
    smtp_dns.add_a("nomail.test", "127.0.0.1")
    smtp_dns.queries.clear()
    send(network, "frank@nomail.test")
    network.run_until_idle()
    journey = assert_bounced(network, "frank@nomail.test", status="5.1.10", dsn=True)
    assert journey.reply is not None and journey.reply.code == 556
    asked = [(q.name, q.rdtype) for q in smtp_dns.queries if q.name == "nomail.test"]
    assert asked == [("nomail.test", "MX")], "a null MX must not fall back to A/AAAA"


def test_relay_in_mx_list_drops_itself_and_worse(network: MailNetwork, smtp_dns: FakeDNS) -> None:
    network.add_host("mx1.loop.test", domains=["loop.test"])
    network.add_host("mx3.loop.test", domains=["loop.test"])
    smtp_dns.add_mx("loop.test", "mx1.loop.test", 5)
    smtp_dns.add_mx("loop.test", RELAY, 10)
    smtp_dns.add_mx("loop.test", "mx3.loop.test", 20)
    network.host("mx1.loop.test").server.stop()
    send(network, "gina@loop.test")
    network.run_until_idle()
    journey = assert_queued(network, "gina@loop.test")
    assert len(network.host("mx3.loop.test").mailbox) == 0, "worse than itself: never tried"
    assert journey.host == RELAY


def test_relay_as_best_mx_bounces_loops_back(network: MailNetwork, smtp_dns: FakeDNS) -> None:
    smtp_dns.add_mx("loop.test", RELAY, 10)
    send(network, "gina@loop.test")
    network.run_until_idle()
    journey = assert_bounced(network, "gina@loop.test", status="5.4.6")
    assert "loops back to myself" in (journey.diagnostic or "")


def test_non_loopback_addresses_are_never_used(network: MailNetwork, smtp_dns: FakeDNS) -> None:
    smtp_dns.add_mx("far.test", "mx.far.test", 10)
    smtp_dns.add_a("mx.far.test", "192.0.2.25")
    send(network, "hal@far.test")
    network.run_until_idle()
    journey = assert_bounced(network, "hal@far.test", status="5.4.4")
    assert "non-loopback" in (journey.diagnostic or "")


def test_starttls_is_used_when_offered(smtp_dns: FakeDNS) -> None:
    with MailNetwork.simple(smtp_dns, relay={"tls": "starttls"}, mx={"tls": "starttls"}) as net:
        send(net, "bob@example.test")
        net.run_until_idle()
        message = net.host(MX).mailbox.one()
        assert message.session.tls and message.session.tls_mode == "starttls"
        assert message.session.tls_version is not None
        relay_copy = net.host(RELAY).mailbox.one()
        assert relay_copy.session.tls
        raw = net.maildrop("bob@example.test").inbox.messages[0].raw
        assert b"with ESMTPS id" in raw
    assert net.errors == []


def test_fallback_to_one_address_and_a_name_table(smtp_dns: FakeDNS) -> None:
    with MailNetwork.simple(smtp_dns, distinct_addresses=False) as net:
        assert {h.ip for h in net.hosts.values()} == {"127.0.0.1"}
        net.add_domain("other.test", mx=["mx1.other.test", "mx2.other.test"])
        send(net, "carol@other.test")
        send(net, "bob@example.test")
        net.run_until_idle()
        assert_delivered(net, "carol@other.test", via=[SUB, RELAY, "mx1.other.test"])
        assert_delivered(net, "bob@example.test", via=[SUB, RELAY, MX])
    assert net.errors == []


def test_failure_message_lists_the_journey_hop_by_hop(network: MailNetwork) -> None:
    network.host(MX).faults.defer("rcpt")
    send(network, "bob@example.test")
    network.run_until_idle()
    with pytest.raises(AssertionError) as info:
        assert_delivered(network, "bob@example.test")
    text = str(info.value)
    assert "expected <bob@example.test> to be delivered" in text
    assert "deferred at relay.example.test (4.7.1" in text
    assert "smtp.example.test: accepted" in text
    assert "relay.example.test: deferred: 451 4.7.1" in text
    with pytest.raises(AssertionError, match=r"no message for <zed@example\.test>"):
        assert_delivered(network, "zed@example.test")


@pytest.mark.asyncio
async def test_async_api_from_another_loop(network: MailNetwork) -> None:
    import aiosmtplib

    await aiosmtplib.send(
        "Subject: async\r\n\r\nx\r\n",
        sender="alice@example.test",
        recipients=["bob@example.test"],
        hostname=network.address[0],
        port=network.address[1],
        local_hostname="client.test",
    )
    await network.run_until_idle_async()
    assert_delivered(network, "bob@example.test", subject="async")
    network.host(MX).faults.sequence("rcpt", [451, "accept"])
    await aiosmtplib.send(
        "Subject: later\r\n\r\nx\r\n",
        sender="alice@example.test",
        recipients=["bob@example.test"],
        hostname=network.address[0],
        port=network.address[1],
        local_hostname="client.test",
    )
    await network.run_until_idle_async()
    assert_queued(network, "bob@example.test", subject="later")
    await network.advance_async(minutes=5)
    assert_delivered(network, "bob@example.test", subject="later")


def test_auto_mode_delivers_as_mail_arrives(smtp_dns: FakeDNS) -> None:
    with MailNetwork.simple(smtp_dns, auto=True) as net:
        send(net, "bob@example.test")
        net.host(MX).mailbox.wait_for(1, timeout=10)
        net.run_until_idle()
        assert_delivered(net, "bob@example.test", via=[SUB, RELAY, MX])
    assert net.errors == []


def test_bad_building_arguments_are_explained(network: MailNetwork) -> None:
    with pytest.raises(ValueError, match="already exists"):
        network.add_host(MX)
    with pytest.raises(TypeError, match="chosen by the network"):
        network.add_host("x.example.test", port=25)
    with pytest.raises(ValueError, match="CIDRs"):
        network.add_host("y.example.test", networks=["not-a-network"])
    with pytest.raises(KeyError, match=r"hosts: relay\.example\.test"):
        network.host("nope.test")
    with pytest.raises(ValueError, match="only moves forward"):
        network.advance(-5)
