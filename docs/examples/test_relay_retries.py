"""How-to: retries and greylisting across hops (docs/how-to/retries.md)."""

from __future__ import annotations

import smtplib
from datetime import timedelta

from pytest_smtp.relay import (
    MailNetwork,
    RetryPolicy,
    assert_bounced,
    assert_delivered,
    assert_queued,
)


def send(network, to):
    with smtplib.SMTP(*network.address, local_hostname="app.test", timeout=10) as client:
        client.sendmail("app@example.test", [to], f"Subject: hi\r\nTo: {to}\r\n\r\nhi\r\n")


def test_greylisting_is_retried_on_the_virtual_clock(smtp_dns):
    with MailNetwork.simple(smtp_dns) as network:
        network.add_domain("grey.test")
        network["mx.grey.test"].faults.sequence("rcpt", [451, "accept"])  # greylist once
        send(network, "gus@grey.test")
        network.run_until_idle()
        journey = assert_queued(network, "gus@grey.test", status="4.7.1")
        assert journey.next_attempt == network.clock.at(300)  # Postfix: first retry at 5 min
        network.advance(minutes=5)  # no real waiting: the clock is virtual
        assert_delivered(network, "gus@grey.test")


def test_give_up_after_the_queue_lifetime(smtp_dns):
    policy = RetryPolicy(first_retry=60, max_backoff=600, lifetime=timedelta(hours=2))
    with MailNetwork.simple(smtp_dns, retry=policy) as network:
        network.add_domain("down.test")
        network["mx.down.test"].faults.defer("rcpt", 450, "Try later", enhanced="4.2.0")
        send(network, "dora@down.test")
        network.advance(hours=1)
        assert_queued(network, "dora@down.test", status="4.2.0")
        network.advance(hours=2)
        # The bounce keeps the real cause (RFC 3463), not a blanket 4.4.7 "expired".
        journey = assert_bounced(network, "dora@down.test", status="4.2.0", dsn=True)
        block = journey.report.recipient("dora@down.test")
        assert (block.action, block.diagnostic) == ("failed", "450 4.2.0 Try later")
