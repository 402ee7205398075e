"""How-to: what happens when a domain has no MX (docs/how-to/no-mx.md)."""

from __future__ import annotations

import smtplib

import pytest

from pytest_smtp.relay import MailNetwork, assert_bounced, assert_delivered, assert_queued


def send(network, to):
    with smtplib.SMTP(*network.address, local_hostname="app.test", timeout=10) as client:
        client.sendmail("app@example.test", [to], f"Subject: hi\r\nTo: {to}\r\n\r\nhi\r\n")


@pytest.fixture
def network(smtp_dns):
    smtp_dns.add_zone("test")  # every other *.test name is now NXDOMAIN, not REFUSED
    with MailNetwork.simple(smtp_dns) as net:
        yield net


def test_no_mx_record_means_the_domain_itself(network):
    network.add_host("plain.test", domains=["plain.test"])  # an A record, no MX
    send(network, "pat@plain.test")
    network.run_until_idle()
    assert_delivered(
        network, "pat@plain.test", via=["smtp.example.test", "relay.example.test", "plain.test"]
    )


def test_a_domain_that_does_not_exist_bounces(network):
    send(network, "pat@no-such-domain.test")
    network.run_until_idle()
    assert_bounced(network, "pat@no-such-domain.test", status="5.1.2")


def test_a_null_mx_bounces_at_once(network):
    network.add_domain("noreply.test", null_mx=True)
    send(network, "pat@noreply.test")
    network.run_until_idle()
    assert_bounced(network, "pat@noreply.test", status="5.1.10")


def test_a_dns_failure_is_retried(network, smtp_dns):
    network.add_domain("flaky.test")
    smtp_dns.fault("flaky.test", "MX", "servfail", times=1)
    send(network, "pat@flaky.test")
    network.run_until_idle()
    assert_queued(network, "pat@flaky.test", status="4.4.3")
    network.advance(minutes=5)  # the first retry, 300 s later on the virtual clock
    assert_delivered(network, "pat@flaky.test")
