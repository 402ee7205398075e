"""Relay fidelity (issue 13, items 1-7): where the relay chain must agree with Postfix and the
RFCs — backup MX after a 4xx, the cause kept at expiry, SMTPUTF8 only when needed, RFC 6533
DSNs, the hop limit refused in the dialogue, a replayable seed. (Item 7, NXDOMAIN keeps
5.1.2, is test_relay_chain.py::test_nxdomain_bounces_with_a_dsn_to_the_sender.)"""

from __future__ import annotations

import smtplib
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone

import pytest

from pytest_smtp.fakedns import FakeDNS
from pytest_smtp.relay import (
    MailNetwork,
    RetryPolicy,
    assert_bounced,
    assert_delivered,
    assert_queued,
    parse_dsn,
)
from pytest_smtp.relay.queue import VirtualClock

SUB, RELAY, MX = "smtp.example.test", "relay.example.test", "mx.example.test"
MX1, MX2 = "mx1.other.test", "mx2.other.test"


def send(
    address: tuple[str, int],
    to: list[str] | str,
    *,
    sender: str = "alice@example.test",
    subject: str = "hello",
    headers: str = "",
    mail_options: tuple[str, ...] = (),
    rcpt_options: tuple[str, ...] = (),
) -> dict[str, tuple[int, bytes]]:
    rcpts = [to] if isinstance(to, str) else to
    text = (
        f"From: {sender}\r\nTo: {', '.join(rcpts)}\r\nSubject: {subject}\r\n{headers}\r\nBody.\r\n"
    )
    with smtplib.SMTP(*address, local_hostname="client.test", timeout=10) as client:
        return client.sendmail(
            sender, rcpts, text.encode("utf-8"), list(mail_options), list(rcpt_options)
        )


@pytest.fixture
def network(smtp_dns: FakeDNS) -> Iterator[MailNetwork]:
    with MailNetwork.simple(smtp_dns) as net:
        net.add_domain("other.test", mx=[MX1, MX2])
        yield net
    assert net.errors == []


# -- 1. a 4xx moves the recipient on to the next MX in the same attempt ---------------------
@pytest.mark.parametrize(
    "fault",
    [
        pytest.param(("rcpt", 451, "4.7.1", "Greylisted"), id="451-at-rcpt"),
        pytest.param(("mail", 451, "4.3.0", "Try later"), id="451-at-mail"),
        pytest.param(("eod", 452, "4.3.1", "Out of disk"), id="452-after-data"),
        pytest.param(("data", 421, "4.3.2", "Shutting down"), id="421-mid-session"),
    ],
)
def test_a_4xx_from_the_primary_goes_to_the_backup_at_once(
    network: MailNetwork, fault: tuple[str, int, str, str]
) -> None:
    stage, code, enhanced, text = fault
    network.host(MX1).faults.reply(stage, code, text, enhanced=enhanced)
    send(network.address, "carol@other.test")
    network.run_until_idle()
    journey = assert_delivered(network, "carol@other.test", via=[SUB, RELAY, MX2])
    assert network.clock.time() == 0, "in the same attempt, not at a retry"
    assert len(network.host(MX1).mailbox) == 0
    assert journey.message is not None and journey.message.subject == "hello"


def test_only_the_deferred_recipient_moves_on(network: MailNetwork) -> None:
    network.host(MX1).faults.defer("rcpt", match="later@other.test")
    send(network.address, ["now@other.test", "later@other.test"])
    network.run_until_idle()
    assert_delivered(network, "now@other.test", via=[SUB, RELAY, MX1])
    assert_delivered(network, "later@other.test", via=[SUB, RELAY, MX2])
    assert network.host(MX1).mailbox.one().rcpt_tos == ["now@other.test"]
    assert network.host(MX2).mailbox.one().rcpt_tos == ["later@other.test"]


def test_connection_refused_then_4xx_stays_queued_with_the_servers_reply(
    network: MailNetwork,
) -> None:
    network.host(MX1).faults.defer("rcpt", 450, "Mailbox busy", enhanced="4.2.1")
    network.host(MX2).server.stop()
    send(network.address, "carol@other.test")
    network.run_until_idle()
    journey = assert_queued(network, "carol@other.test", status="4.2.1")
    assert journey.host == RELAY
    assert "Mailbox busy" in (journey.diagnostic or "")


def test_a_5xx_from_the_primary_is_final(network: MailNetwork) -> None:
    network.host(MX1).faults.reject("rcpt", 550, "No such user", enhanced="5.1.1")
    send(network.address, "carol@other.test")
    network.run_until_idle()
    assert_bounced(network, "carol@other.test", status="5.1.1", dsn=True)
    assert len(network.host(MX2).transactions) == 0, "the backup is not asked after a 5xx"


def test_every_mx_deferring_keeps_the_recipient_queued(network: MailNetwork) -> None:
    network.host(MX1).faults.defer("rcpt", 451, "Greylisted", enhanced="4.7.1")
    network.host(MX2).faults.defer("rcpt", 452, "Too many", enhanced="4.5.3")
    send(network.address, "carol@other.test")
    network.run_until_idle()
    journey = assert_queued(network, "carol@other.test", status="4.5.3")
    assert "Too many" in (journey.diagnostic or ""), "the last MX's reply is kept"
    assert journey.next_attempt == network.clock.at(300)


# -- 2. expiry keeps the cause --------------------------------------------------------------
def _refuse(net: MailNetwork, dns: FakeDNS) -> None:
    net.host("mx.other.test").server.stop()


def _servfail(net: MailNetwork, dns: FakeDNS) -> None:
    dns.fault("other.test", "MX", "servfail")


def _busy(net: MailNetwork, dns: FakeDNS) -> None:
    net.host("mx.other.test").faults.defer("rcpt", 450, "Mailbox busy", enhanced="4.2.1")


@pytest.mark.parametrize(
    ("cause", "status", "remote", "diagnostic"),
    [
        pytest.param(_busy, "4.2.1", "mx.other.test", "450 4.2.1 Mailbox busy", id="mx-4xx"),
        pytest.param(_refuse, "4.4.1", None, "delivery temporarily suspended", id="refused"),
        pytest.param(_servfail, "4.4.3", None, "MX lookup for other.test failed", id="dns"),
    ],
)
def test_expiry_keeps_the_last_status_and_diagnostic(
    smtp_dns: FakeDNS,
    cause: Callable[[MailNetwork, FakeDNS], None],
    status: str,
    remote: str | None,
    diagnostic: str,
) -> None:
    with MailNetwork.simple(smtp_dns, retry=RetryPolicy(lifetime=timedelta(hours=1))) as net:
        net.add_domain("other.test", mx=["mx.other.test"])
        cause(net, smtp_dns)
        send(net.address, "carol@other.test")
        net.advance(minutes=59)
        assert_queued(net, "carol@other.test", status=status)
        net.advance(hours=1)
        journey = assert_bounced(net, "carol@other.test", status=status, dsn=True)
        assert journey.report is not None
        block = journey.report.recipient("carol@other.test")
        assert (block.action, block.status, block.remote_mta) == ("failed", status, remote)
        assert diagnostic in (block.diagnostic or "")
        assert any(e.kind == "bounced" and "expired" in e.detail for e in journey.events)
    assert net.errors == []


# -- 3. SMTPUTF8 downstream only when needed --------------------------------------------------
def test_ascii_message_submitted_with_smtputf8_reaches_a_hop_without_it(
    network: MailNetwork,
) -> None:
    network.add_domain("legacy.test", mx=["mx.legacy.test"], smtputf8=False)
    send(network.address, "old@legacy.test", mail_options=("SMTPUTF8",))
    network.run_until_idle()
    journey = assert_delivered(network, "old@legacy.test", via=[SUB, RELAY, "mx.legacy.test"])
    assert journey.message is not None
    assert "SMTPUTF8" not in [o.upper() for o in journey.message.mail_options]


def test_smtputf8_is_passed_on_to_a_hop_that_offers_it(network: MailNetwork) -> None:
    send(network.address, "carol@other.test", mail_options=("SMTPUTF8",))
    network.run_until_idle()
    journey = assert_delivered(network, "carol@other.test")
    assert journey.message is not None
    assert "SMTPUTF8" in [o.upper() for o in journey.message.mail_options]


@pytest.mark.parametrize(
    ("to", "headers"),
    [
        pytest.param("jörg@legacy.test", "", id="utf8-recipient"),
        pytest.param("old@legacy.test", "X-Note: grüße\r\n", id="utf8-header"),
    ],
)
def test_utf8_envelope_or_headers_need_smtputf8(
    network: MailNetwork, to: str, headers: str
) -> None:
    network.add_domain("legacy.test", mx=["mx.legacy.test"], smtputf8=False)
    send(network.address, to, headers=headers, mail_options=("SMTPUTF8",))
    network.run_until_idle()
    assert_bounced(network, to, status="5.6.7", dsn=True)


# -- 5. the hop limit is refused at end of DATA -----------------------------------------------
def _with_received(count: int) -> str:
    return "".join(
        f"Received: from h{n}.test ([127.0.0.9]) by h{n + 1}.test; "
        "Thu, 1 Jan 2026 00:00:00 +0000\r\n"
        for n in range(count)
    )


@pytest.mark.parametrize(
    ("total", "refused"),
    [(49, False), (50, True), (51, True)],
)
def test_hop_limit_counts_the_hosts_own_received_like_postfix(
    smtp_dns: FakeDNS, total: int, refused: bool
) -> None:
    """``total`` = Received: fields with the one the receiving host adds (Postfix's count)."""
    with MailNetwork.simple(smtp_dns) as net:
        mx = net.host(MX)
        raw = (
            _with_received(total - 1)
            + "From: a@example.test\r\nTo: bob@example.test\r\nSubject: hops\r\n\r\nBody.\r\n"
        )
        with smtplib.SMTP(*mx.address, local_hostname="client.test", timeout=10) as client:
            if refused:
                with pytest.raises(smtplib.SMTPDataError) as caught:
                    client.sendmail("a@example.test", ["bob@example.test"], raw)
                assert caught.value.smtp_code == 554
                assert caught.value.smtp_error.startswith(b"5.4.6 ")
            else:
                client.sendmail("a@example.test", ["bob@example.test"], raw)
        net.run_until_idle()
        assert len(mx.mailbox) == (0 if refused else 1)
        assert net.queued() == [], "no DSN is generated for a refused loop"
    assert net.errors == []


def test_mail_loop_is_refused_in_the_dialogue_and_bounced_by_the_client(
    smtp_dns: FakeDNS,
) -> None:
    with MailNetwork(smtp_dns, hop_limit=8) as net:
        net.add_submission("smtp.example.test", smarthost="a.example.test")
        net.add_relay("a.example.test", smarthost="b.example.test")
        net.add_relay("b.example.test", smarthost="a.example.test")
        net.add_domain("example.test", mx=["mx.example.test"])
        send(net.address, "carol@elsewhere.example.test")
        net.run_until_idle()
        journey = assert_bounced(net, "carol@elsewhere.example.test", status="5.4.6")
        # Hosts 1-7 accept (7 Received: after their own); the 8th would hold 8 = the limit.
        assert len(journey.hops) == 7
        assert journey.reply is not None and journey.reply.code == 554
        refusing = "b.example.test" if journey.hops[-1] == "a.example.test" else "a.example.test"
        refused = net.host(refusing).transactions.filter(outcome="rejected")
        assert len(refused) == 1
    assert net.errors == []


# -- 6. the seed alone fixes the equal-preference order --------------------------------------
def _equal_mx_choices(smtp_dns: FakeDNS, seed: int, start: datetime, tag: str) -> list[str]:
    smtp_dns.reset()
    with MailNetwork.simple(smtp_dns, seed=seed, clock=VirtualClock(start)) as net:
        net.add_domain("other.test", mx=[(f"{c}.other.test", 10) for c in "abcd"])
        for n in range(6):
            send(
                net.address,
                f"user{n}@other.test",
                headers=f"Date: {start.strftime('%a, %d %b %Y %H:%M:%S +0000')}\r\n"
                f"Message-ID: <{tag}.{n}@example.test>\r\n",
            )
        net.run_until_idle()
        return [net.outcome(f"user{n}@other.test").hops[-1] for n in range(6)]


def test_same_seed_same_hosts_whatever_the_clock_and_date(smtp_dns: FakeDNS) -> None:
    one = _equal_mx_choices(smtp_dns, 7, datetime(2026, 1, 1, tzinfo=timezone.utc), "x")
    two = _equal_mx_choices(smtp_dns, 7, datetime(2031, 6, 5, 13, tzinfo=timezone.utc), "y")
    assert one == two
    others = {
        tuple(_equal_mx_choices(smtp_dns, s, datetime(2026, 1, 1, tzinfo=timezone.utc), "z"))
        for s in range(4)
    }
    assert len(others) > 1, "different seeds choose differently"


# -- 4. DSNs about UTF-8 addresses follow RFC 6533 ----------------------------------------------
def test_bounce_about_a_utf8_recipient_is_a_global_dsn(network: MailNetwork) -> None:
    network.host(MX1).faults.reject("rcpt", 550, "No such user", enhanced="5.1.1")
    send(network.address, "ünïcode@other.test", mail_options=("SMTPUTF8",))
    network.run_until_idle()
    journey = assert_bounced(network, "ünïcode@other.test", status="5.1.1", dsn=True)
    dsn = journey.dsn
    assert dsn is not None
    assert dsn.email.get_param("report-type") == "global-delivery-status"
    assert "SMTPUTF8" in [o.upper() for o in dsn.mail_options], "the DSN went out with SMTPUTF8"
    report = parse_dsn(dsn.raw)
    block = report.recipient("ünïcode@other.test")
    assert (block.action, block.status) == ("failed", "5.1.1")
    assert b"Final-Recipient: utf-8; \xc3\xbcn\xc3\xafcode@other.test" in dsn.raw
    assert b"Content-Type: message/global-delivery-status" in dsn.raw
    assert b"Content-Type: message/global\r\n" in dsn.raw
