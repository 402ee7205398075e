"""How-to: a real Postfix as one hop of the chain (docs/how-to/postfix.md)."""

from __future__ import annotations

import os
import smtplib

import pytest

from pytest_smtp.relay import MailNetwork, assert_delivered, parse_dsn
from pytest_smtp.relay.postfix import find_postfix

pytestmark = pytest.mark.skipif(
    find_postfix() is None or os.geteuid() != 0,
    reason="needs the Debian package 'postfix' and root",
)


@pytest.fixture
def network(smtp_dns):
    with MailNetwork(smtp_dns) as net:
        net.add_submission("smtp.example.test", smarthost="postfix.example.test")
        net.add_domain("example.test")  # the sender's domain: bounces come back here
        net.add_domain("customer.test", mx=["mx1.customer.test", "mx2.customer.test"])
        yield net


@pytest.fixture
def postfix(network):
    # Any main.cf parameter as a keyword: here, bounce at the first temporary failure.
    return network.add_postfix("postfix.example.test", maximal_queue_lifetime="0s")


def send(network, to):
    with smtplib.SMTP(*network.address, local_hostname="app.test", timeout=10) as client:
        client.sendmail("app@example.test", [to], f"Subject: hi\r\nTo: {to}\r\n\r\nhi\r\n")


def test_mail_goes_through_postfix(network, postfix):
    send(network, "pat@customer.test")
    network.run_until_idle()  # the submission host hands the mail to Postfix
    assert postfix.wait_for_delivery("pat@customer.test").outcome == "sent"
    assert_delivered(
        network,
        "pat@customer.test",
        via=["smtp.example.test", "postfix.example.test", "mx1.customer.test"],
    )


def test_postfix_uses_the_backup_mx(network, postfix):
    network["mx1.customer.test"].faults.defer("rcpt", 451)
    send(network, "lee@customer.test")
    network.run_until_idle()
    network["mx2.customer.test"].mailbox.wait_for(to="lee@customer.test", timeout=30)


def test_postfix_bounces_with_its_own_dsn(network, postfix):
    network["mx1.customer.test"].faults.reject("rcpt", 550)
    send(network, "gone@customer.test")
    network.run_until_idle()
    [dsn] = network["mx.example.test"].mailbox.wait_for(to="app@example.test", timeout=30)
    block = parse_dsn(dsn.raw).recipient("gone@customer.test")
    assert (block.action, block.status) == ("failed", "5.1.1")
