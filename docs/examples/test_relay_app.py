"""How-to: my app sends through a relay (docs/how-to/relay.md)."""

from __future__ import annotations

import smtplib
from email.message import EmailMessage

import pytest

from pytest_smtp.relay import MailNetwork, assert_bounced, assert_delivered


# The code under test: it submits to its configured mail server, nothing more.
def send_welcome(host: str, port: int, to: str) -> None:
    mail = EmailMessage()
    mail["From"] = "shop@example.test"
    mail["To"] = to
    mail["Subject"] = "Welcome!"
    mail.set_content("Thanks for signing up.")
    with smtplib.SMTP(host, port, local_hostname="shop.test", timeout=10) as client:
        client.send_message(mail)


# The network: smtp.example.test -> relay.example.test -> mx.example.test, on the fake DNS.
@pytest.fixture
def network(smtp_dns):
    with MailNetwork.simple(smtp_dns) as net:
        net.add_domain("customer.test", mx=["mx1.customer.test", "mx2.customer.test"])
        yield net


def test_the_welcome_mail_reaches_the_customer(network):
    send_welcome(*network.address, to="ann@customer.test")
    network.run_until_idle()  # nothing moves until you ask: deterministic
    journey = assert_delivered(
        network,
        "ann@customer.test",
        via=["smtp.example.test", "relay.example.test", "mx1.customer.test"],
    )
    assert journey.message.subject == "Welcome!"
    stored = network.maildrop("ann@customer.test").inbox.messages[0]
    assert stored.raw.startswith(b"Return-Path: <shop@example.test>\r\nReceived: ")


def test_the_backup_mx_takes_over(network):
    network["mx1.customer.test"].server.stop()  # connection refused: try the next MX
    send_welcome(*network.address, to="ann@customer.test")
    network.run_until_idle()
    assert_delivered(
        network,
        "ann@customer.test",
        via=["smtp.example.test", "relay.example.test", "mx2.customer.test"],
    )


def test_a_greylisting_primary_hands_over_to_the_backup_at_once(network):
    network["mx1.customer.test"].faults.defer("rcpt")  # 451 4.7.1: "later", not "no"
    send_welcome(*network.address, to="ann@customer.test")
    network.run_until_idle()  # same attempt, no retry: the virtual clock has not moved
    journey = assert_delivered(network, "ann@customer.test")
    assert journey.host == "mx2.customer.test"


def test_an_unknown_user_bounces_back_to_the_shop(network):
    network["mx1.customer.test"].faults.reject("rcpt", match="nobody@customer.test")
    send_welcome(*network.address, to="nobody@customer.test")
    network.run_until_idle()
    journey = assert_bounced(network, "nobody@customer.test", status="5.1.1", dsn=True)
    assert journey.dsn.rcpt_tos == ["shop@example.test"]  # the DSN came back through the chain
