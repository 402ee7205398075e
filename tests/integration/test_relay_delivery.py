"""Per-recipient results, retries on the virtual clock, DSNs (RFC 3461/3464), relay policy."""

from __future__ import annotations

import smtplib
from collections.abc import Iterator
from datetime import timedelta

import pytest

from pytest_smtp.fakedns import FakeDNS
from pytest_smtp.relay import (
    MailNetwork,
    RetryPolicy,
    assert_bounced,
    assert_delivered,
    assert_discarded,
    assert_queued,
    parse_dsn,
)

SUB, RELAY, MX = "smtp.example.test", "relay.example.test", "mx.example.test"


def send(
    address: tuple[str, int],
    to: list[str] | str,
    *,
    sender: str = "alice@example.test",
    subject: str = "hello",
    mail_options: tuple[str, ...] = (),
    rcpt_options: tuple[str, ...] = (),
) -> dict[str, tuple[int, bytes]]:
    rcpts = [to] if isinstance(to, str) else to
    text = f"From: {sender}\r\nTo: {', '.join(rcpts)}\r\nSubject: {subject}\r\n\r\nBody.\r\n"
    with smtplib.SMTP(*address, local_hostname="client.test", timeout=10) as client:
        return client.sendmail(sender, rcpts, text, list(mail_options), list(rcpt_options))


@pytest.fixture
def network(smtp_dns: FakeDNS) -> Iterator[MailNetwork]:
    with MailNetwork.simple(smtp_dns) as net:
        net.add_domain("other.test", mx=["mx.other.test"])
        yield net
    assert net.errors == []


# -- per-recipient results -----------------------------------------------------------------
def test_partial_success_splits_per_recipient(network: MailNetwork) -> None:
    faults = network.host("mx.other.test").faults
    faults.reject("rcpt", match="gone@other.test")
    faults.defer("rcpt", match="later@other.test")
    send(network.address, ["ok@other.test", "gone@other.test", "later@other.test"])
    network.run_until_idle()
    assert_delivered(network, "ok@other.test")
    bounced = assert_bounced(network, "gone@other.test", status="5.1.1", dsn=True)
    assert bounced.reply is not None and bounced.reply.code == 550
    deferred = assert_queued(network, "later@other.test", status="4.7.1")
    assert deferred.next_attempt == network.clock.at(300)
    message = network.host("mx.other.test").mailbox.one()
    assert message.rcpt_tos == ["ok@other.test"]
    report = parse_dsn(bounced.dsn.raw if bounced.dsn else b"")
    assert [r.final_recipient for r in report.recipients] == ["gone@other.test"]
    assert report.recipient("gone@other.test").remote_mta == "mx.other.test"
    assert report.recipient("gone@other.test").diagnostic == "550 5.1.1 No such user"


def test_recipients_of_two_domains_travel_separately(network: MailNetwork) -> None:
    send(network.address, ["bob@example.test", "carol@other.test"])
    network.run_until_idle()
    assert_delivered(network, "bob@example.test", via=[SUB, RELAY, MX])
    assert_delivered(network, "carol@other.test", via=[SUB, RELAY, "mx.other.test"])
    assert network.host(MX).mailbox.one().rcpt_tos == ["bob@example.test"]


def test_rejection_at_data_bounces_everyone_accepted(network: MailNetwork) -> None:
    network.host("mx.other.test").faults.reject("eod", 554, "Spam detected", enhanced="5.7.1")
    send(network.address, ["a@other.test", "b@other.test"])
    network.run_until_idle()
    for rcpt in ("a@other.test", "b@other.test"):
        assert_bounced(network, rcpt, status="5.7.1")
    dsns = network.host(MX).mailbox.filter(to="alice@example.test")
    assert len(dsns) == 1, "one DSN for both recipients of one attempt"
    assert len(parse_dsn(dsns[0].raw).recipients) == 2


def test_dropped_at_a_hop(network: MailNetwork) -> None:
    network.host("mx.other.test").faults.drop()
    send(network.address, "carol@other.test")
    network.run_until_idle()
    journey = assert_discarded(network, "carol@other.test", at="mx.other.test")
    assert journey.hops == [SUB, RELAY, "mx.other.test"]
    assert len(network.host("mx.other.test").mailbox) == 0


# -- retries on the virtual clock -----------------------------------------------------------
def test_greylisting_across_hops(network: MailNetwork) -> None:
    network.host("mx.other.test").faults.sequence("rcpt", [451, 451, "accept"])
    send(network.address, "carol@other.test")
    network.run_until_idle()
    assert_queued(network, "carol@other.test", status="4.7.1")
    network.advance(minutes=5)
    assert_queued(network, "carol@other.test")
    network.advance(minutes=10)
    journey = assert_delivered(network, "carol@other.test")
    deferrals = [e for e in journey.events if e.kind == "deferred"]
    assert [e.at for e in deferrals] == [0, 300]
    assert journey.events[-1].at == 900, "third attempt at +300 +600 s (doubling backoff)"


def test_advance_runs_each_retry_at_its_time(smtp_dns: FakeDNS) -> None:
    policy = RetryPolicy(first_retry=60, max_backoff=240)
    with MailNetwork.simple(smtp_dns, retry=policy) as net:
        net.host(MX).faults.defer("rcpt")
        send(net.address, "bob@example.test")
        net.advance(minutes=10)
        journey = assert_queued(net, "bob@example.test")
        times = [e.at for e in journey.events if e.kind == "deferred"]
        assert times == [0, 60, 180, 420]  # +60, +120, +240, capped at 240
        assert net.clock.time() == 600


def test_lifetime_expiry_bounces_with_the_last_status(smtp_dns: FakeDNS) -> None:
    policy = RetryPolicy(lifetime=timedelta(hours=1))
    with MailNetwork.simple(smtp_dns, retry=policy) as net:
        net.add_domain("other.test", mx=["mx.other.test"])
        net.host("mx.other.test").faults.defer("rcpt", 450, "Mailbox busy", enhanced="4.2.1")
        send(net.address, "carol@other.test")
        net.advance(minutes=59)
        assert_queued(net, "carol@other.test", status="4.2.1")
        net.advance(hours=1)
        journey = assert_bounced(net, "carol@other.test", status="4.2.1", dsn=True)
        assert "Mailbox busy" in (journey.diagnostic or "")
        report = journey.report
        assert report is not None
        assert report.recipient("carol@other.test").action == "failed"
    assert net.errors == []


def test_default_lifetime_is_five_days(network: MailNetwork) -> None:
    network.host("mx.other.test").faults.defer("rcpt")
    send(network.address, "carol@other.test")
    network.advance(days=4, hours=23)
    assert_queued(network, "carol@other.test")
    network.advance(hours=3)
    assert_bounced(network, "carol@other.test", status="4.7.1")


def test_delay_warning_dsn(smtp_dns: FakeDNS) -> None:
    policy = RetryPolicy(delay_warning=timedelta(hours=4))
    with MailNetwork.simple(smtp_dns, retry=policy) as net:
        net.add_domain("other.test", mx=["mx.other.test"])
        net.host("mx.other.test").faults.defer("rcpt")
        send(net.address, "carol@other.test", rcpt_options=("NOTIFY=DELAY,FAILURE",))
        net.advance(hours=5)
        journey = assert_queued(net, "carol@other.test")
        assert journey.report is not None
        block = journey.report.recipient("carol@other.test")
        assert (block.action, block.status) == ("delayed", "4.7.1")
        assert b"Will-Retry-Until:" in (journey.dsn_raw or b"")
        warnings = net.host(MX).mailbox.filter(to="alice@example.test")
        assert len(warnings) == 1
        assert warnings[0].subject == "Delayed Mail (still being retried)"
        net.advance(hours=5)
        assert len(net.host(MX).mailbox.filter(to="alice@example.test")) == 1, "warn once"


# -- DSN parameters ---------------------------------------------------------------------
def test_notify_never_suppresses_the_bounce(network: MailNetwork) -> None:
    network.host("mx.other.test").faults.reject("rcpt")
    send(network.address, "carol@other.test", rcpt_options=("NOTIFY=NEVER",))
    network.run_until_idle()
    assert_bounced(network, "carol@other.test", dsn=False)
    assert network.host(MX).mailbox.filter(to="alice@example.test") == []


def test_notify_success_gets_a_delivered_dsn(network: MailNetwork) -> None:
    send(network.address, "carol@other.test", rcpt_options=("NOTIFY=SUCCESS",))
    network.run_until_idle()
    journey = assert_delivered(network, "carol@other.test")
    report = journey.report
    assert report is not None and report.reporting_mta == "mx.other.test"
    assert report.recipient("carol@other.test").action == "delivered"
    assert journey.dsn is not None and journey.dsn.mail_from == ""


def test_dsn_parameters_are_passed_on_and_reported(network: MailNetwork) -> None:
    network.host("mx.other.test").faults.reject("eod", 554, "Content rejected", enhanced="5.6.0")
    send(
        network.address,
        "carol@other.test",
        mail_options=("RET=HDRS", "ENVID=QQ314159"),
        rcpt_options=("NOTIFY=FAILURE", "ORCPT=rfc822;carol+2Bsales@other.test"),
    )
    network.run_until_idle()
    relay_copy = network.host(RELAY).mailbox.one()
    assert "RET=HDRS" in relay_copy.mail_options and "ENVID=QQ314159" in relay_copy.mail_options
    assert relay_copy.rcpt_options["carol@other.test"] == [
        "NOTIFY=FAILURE",
        "ORCPT=rfc822;carol+2Bsales@other.test",
    ]
    refused = network.host("mx.other.test").transactions.filter(outcome="rejected")
    assert refused and "ENVID=QQ314159" in refused[0].mail_options
    journey = assert_bounced(network, "carol@other.test", status="5.6.0", dsn=True)
    report = journey.report
    assert report is not None
    assert report.envid == "QQ314159"
    assert report.recipient("carol@other.test").original_recipient == (
        "rfc822;carol+sales@other.test"
    )
    assert report.returned_kind == "headers"
    assert report.returned is not None and b"Subject: hello" in report.returned
    assert b"Body." not in report.returned


def test_ret_full_returns_the_whole_message(network: MailNetwork) -> None:
    network.host("mx.other.test").faults.reject("rcpt")
    send(network.address, "carol@other.test", mail_options=("RET=FULL",))
    network.run_until_idle()
    report = assert_bounced(network, "carol@other.test").report
    assert report is not None and report.returned_kind == "message"
    assert report.returned is not None and report.returned.endswith(b"\r\n\r\nBody.\r\n")


def test_relayed_dsn_when_next_hop_has_no_dsn(network: MailNetwork) -> None:
    network.add_domain("legacy.test", mx=["mx.legacy.test"], dsn=False)
    send(network.address, "old@legacy.test", rcpt_options=("NOTIFY=SUCCESS",))
    network.run_until_idle()
    journey = assert_delivered(network, "old@legacy.test")
    report = journey.report
    assert report is not None and report.reporting_mta == RELAY
    assert report.recipient("old@legacy.test").action == "relayed"
    copy = network.host("mx.legacy.test").mailbox.one()
    assert copy.rcpt_options.get("old@legacy.test", []) == [], "no DSN parameters to a non-DSN hop"


def test_no_bounce_for_the_null_sender(network: MailNetwork) -> None:
    network.host("mx.other.test").faults.reject("rcpt")
    send(network.address, "carol@other.test", sender="")
    network.run_until_idle()
    journey = assert_bounced(network, "carol@other.test", dsn=False)
    assert any(e.kind == "dsn" and "null sender" in e.detail for e in journey.events)


def test_undeliverable_bounce_is_not_bounced_again(network: MailNetwork) -> None:
    network.host("mx.other.test").faults.reject("rcpt")
    network.host(MX).faults.reject("rcpt", match="alice@example.test")
    send(network.address, "carol@other.test")
    network.run_until_idle()
    assert_bounced(network, "carol@other.test")
    dsn_journey = assert_bounced(network, "alice@example.test")
    assert dsn_journey.mail_from == ""
    assert network.summary()["bounced"] == 2


# -- trace and loops ----------------------------------------------------------------------
# -- relay policy ---------------------------------------------------------------------------
def _rcpt(address: tuple[str, int], rcpt: str, *, login: tuple[str, str] | None = None) -> int:
    with smtplib.SMTP(*address, local_hostname="client.test", timeout=10) as client:
        client.ehlo()
        if login is not None:
            client.starttls()
            client.ehlo()
            client.login(*login)
        client.mail("x@example.test")
        code, _ = client.rcpt(rcpt)
        return code


def test_relay_refuses_strangers(network: MailNetwork) -> None:
    relay = network.host(RELAY)
    mx = network.host("mx.other.test")
    assert _rcpt(relay.address, "carol@other.test") == 554
    assert _rcpt(mx.address, "bob@example.test") == 554, "an MX is not an open relay"
    assert _rcpt(mx.address, "carol@other.test") == 250, "but takes mail for its own domain"
    refused = relay.transactions.filter(code=554)
    assert refused and str(refused[0].recipients[0].reply) == "554 5.7.1 Relay access denied"


def test_submission_relays_for_authenticated_users_only(smtp_dns: FakeDNS) -> None:
    with MailNetwork.simple(
        smtp_dns,
        submission={"networks": (), "tls": "starttls", "auth": {"alice": "s3cret"}},
    ) as net:
        net.add_domain("other.test", mx=["mx.other.test"])
        sub = net.submission.address
        assert _rcpt(sub, "carol@other.test") == 554
        assert _rcpt(sub, "carol@other.test", login=("alice", "s3cret")) == 250
        with smtplib.SMTP(*sub, local_hostname="client.test", timeout=10) as client:
            client.starttls()
            client.login("alice", "s3cret")
            client.sendmail("alice@example.test", ["carol@other.test"], "Subject: x\r\n\r\nx\r\n")
        net.run_until_idle()
        journey = assert_delivered(net, "carol@other.test", via=[SUB, RELAY, "mx.other.test"])
        assert journey.message is not None
        assert "ESMTPSA" in journey.message.received[-1]
    assert net.errors == []


@pytest.mark.parametrize(
    "path",
    [
        "<@relay.example.test:carol@other.test>",
        "<carol%other.test@example.test>",
        "<other.test!carol@example.test>",
    ],
)
def test_source_routes_and_percent_hack_are_refused(network: MailNetwork, path: str) -> None:
    with smtplib.SMTP(*network.host(MX).address, local_hostname="c.test", timeout=10) as client:
        client.ehlo()
        client.mail("x@example.test")
        code, text = client.docmd("RCPT", f"TO:{path}")
    assert code == 553
    assert b"5.7.1" in text


def test_the_source_route_is_read_from_the_recipient_result(network: MailNetwork) -> None:
    # The relay refuses on the route the server parsed (RecipientResult.source_route), not on
    # transcript text: a route with two hops and a route-free recipient in one transaction.
    with smtplib.SMTP(*network.host(MX).address, local_hostname="c.test", timeout=10) as client:
        client.ehlo()
        client.mail("x@example.test")
        routed = client.docmd("RCPT", "TO:<@relay.example.test,@b.test:bob@example.test>")
        plain = client.docmd("RCPT", "TO:<bob@example.test>")
    assert (routed[0], plain[0]) == (553, 250)
    routed_result, plain_result = network.host(MX).transactions.one().recipients
    assert routed_result.source_route == "@relay.example.test,@b.test"
    assert routed_result.address == "bob@example.test"
    assert plain_result.source_route is None
