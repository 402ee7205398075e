"""The whole journey: smtplib -> submission -> relay (MX routing) -> MX -> maildrop -> IMAP/POP3,
read back by the recipient with a login, as their own program would."""

from __future__ import annotations

import imaplib
import poplib
import smtplib
from collections.abc import Callable
from email.message import EmailMessage
from typing import Any

from pytest_smtp.fixtures import MailNetworkBuilder
from pytest_smtp.relay import assert_delivered


def _send(address: tuple[str, int], to: str, subject: str) -> None:
    mail = EmailMessage()
    mail["From"] = "shop@example.test"
    mail["To"] = to
    mail["Subject"] = subject
    mail.set_content("Your order has shipped.")
    with smtplib.SMTP(*address, local_hostname="shop.test", timeout=10) as client:
        client.send_message(mail)


def test_smtplib_to_relay_chain_to_imap_fetch(
    smtp_mail_network: MailNetworkBuilder, smtp_imap_factory: Callable[..., Any]
) -> None:
    network = smtp_mail_network("example.test")
    network.add_domain("customer.test", mx=["mx.customer.test"])
    _send(network.address, "ann@customer.test", "Shipped")
    network.run_until_idle()
    assert_delivered(
        network,
        "ann@customer.test",
        via=["smtp.example.test", "relay.example.test", "mx.customer.test"],
    )

    mx_store = network.host("mx.customer.test").server.store
    imap = smtp_imap_factory(store=mx_store, auth={"ann@customer.test": "pw"})
    client = imaplib.IMAP4(imap.host, imap.port)
    client.login("ann@customer.test", "pw")
    assert client.select("INBOX") == ("OK", [b"1"])
    status, data = client.fetch("1", "(BODY[HEADER.FIELDS (SUBJECT RETURN-PATH)] FLAGS)")
    assert status == "OK"
    header = data[0][1]  # type: ignore[index]
    assert b"Subject: Shipped" in header
    assert b"Return-Path: <shop@example.test>" in header
    client.store("1", "+FLAGS", "\\Seen")
    client.logout()

    # the recipient's action is visible in the store, and the evidence is untouched
    [stored] = mx_store.maildrop("ann@customer.test").inbox.messages
    assert "\\Seen" in stored.flags
    assert len(network.host("mx.customer.test").server.mailbox) == 1


def test_pop3_reader_deletes_from_the_maildrop_not_from_the_capture_log(
    smtp_mail_network: MailNetworkBuilder, smtp_pop3_factory: Callable[..., Any]
) -> None:
    network = smtp_mail_network("example.test")
    _send(network.address, "bob@example.test", "Hello Bob")
    network.run_until_idle()
    mx = network.host("mx.example.test").server
    pop3 = smtp_pop3_factory(store=mx.store)
    client = poplib.POP3(pop3.host, pop3.port, timeout=10)
    client.user("bob@example.test")
    client.pass_("anything")
    count, _ = client.stat()
    assert count == 1
    lines = client.retr(1)[1]
    assert b"Subject: Hello Bob" in lines
    client.dele(1)
    client.quit()
    assert mx.store.maildrop("bob@example.test").inbox.messages == []
    assert mx.mailbox.one().subject == "Hello Bob"
