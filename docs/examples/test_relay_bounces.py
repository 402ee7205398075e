"""How-to: bounces and DSNs (docs/how-to/bounces.md)."""

from __future__ import annotations

import smtplib

import pytest

from pytest_smtp.relay import MailNetwork, assert_bounced, assert_delivered


def send(network, to, *, mail_options=(), rcpt_options=()):
    with smtplib.SMTP(*network.address, local_hostname="app.test", timeout=10) as client:
        client.sendmail(
            "app@example.test",
            [to],
            f"Subject: invoice\r\nTo: {to}\r\n\r\nAttached.\r\n",
            list(mail_options),
            list(rcpt_options),
        )


@pytest.fixture
def network(smtp_dns):
    with MailNetwork.simple(smtp_dns) as net:
        net.add_domain("client.test")
        yield net


def test_the_bounce_is_a_delivery_status_report(network):
    network["mx.client.test"].faults.reject("rcpt", 550, "Mailbox unavailable", enhanced="5.2.1")
    send(network, "bill@client.test", mail_options=["RET=HDRS", "ENVID=INV-42"])
    network.run_until_idle()
    journey = assert_bounced(network, "bill@client.test", status="5.2.1", dsn=True)
    report = journey.report
    assert report.reporting_mta == "relay.example.test"
    assert report.envid == "INV-42"
    block = report.recipient("bill@client.test")
    assert block.action == "failed"
    assert block.remote_mta == "mx.client.test"
    assert block.diagnostic == "550 5.2.1 Mailbox unavailable"
    assert report.returned_kind == "headers"  # RET=HDRS: headers only
    # The DSN travelled back: relay -> mx.example.test, into app@example.test's mailbox.
    assert_delivered(network, "app@example.test", via=["relay.example.test", "mx.example.test"])
    assert journey.dsn.email.get_content_type() == "multipart/report"


def test_notify_success_and_never(network):
    send(network, "bill@client.test", rcpt_options=["NOTIFY=SUCCESS"])
    network["mx.client.test"].faults.reject("rcpt", match="gone@client.test")
    send(network, "gone@client.test", rcpt_options=["NOTIFY=NEVER"])
    network.run_until_idle()
    delivered = assert_delivered(network, "bill@client.test")
    assert delivered.report.recipient("bill@client.test").action == "delivered"
    assert_bounced(network, "gone@client.test", dsn=False)
