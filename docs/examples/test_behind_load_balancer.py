"""How-to: a mail server behind a load balancer (docs/how-to/proxy-protocol.md)."""

from __future__ import annotations

import smtplib
import socket

import pytest

from pytest_smtp import ProxyHeader, SMTPServer

CLIENT = ("203.0.113.7", 51234)  # the client as the load balancer saw it
FRONT = ("192.0.2.25", 25)  # the load balancer's public address


def send_through_proxy(server: SMTPServer, header: ProxyHeader) -> None:
    """What HAProxy's ``send-proxy`` does: the header first, then the client's SMTP."""
    sock = socket.create_connection(server.address, timeout=10)
    sock.sendall(header.encode())
    client = smtplib.SMTP(local_hostname="client.test", timeout=10)
    client.sock = sock
    client.file = None
    code, _ = client.getreply()
    assert code == 220
    client.sendmail("app@shop.test", ["alice@example.test"], "Subject: hi\r\n\r\nHello.\r\n")
    client.quit()


@pytest.mark.smtp(proxy_protocol=True)
def test_the_server_sees_the_client_behind_the_proxy(smtp_server: SMTPServer) -> None:
    send_through_proxy(smtp_server, ProxyHeader(version=2, source=CLIENT, destination=FRONT))

    session = smtp_server.mailbox.one().session
    assert session.proxy is not None
    assert session.proxy.client == CLIENT  # who really connected
    assert session.peer[0] == "127.0.0.1"  # the proxy's own connection


@pytest.mark.smtp(proxy_protocol=True)
def test_a_client_that_bypassed_the_proxy_is_refused(smtp_server: SMTPServer) -> None:
    with socket.create_connection(smtp_server.address, timeout=10) as sock:
        sock.sendall(b"EHLO client.test\r\n")  # no PROXY header first
        reply = sock.makefile("rb").readline()
    assert reply.startswith(b"421 4.3.0")  # then closed, as Postfix does

    [refused] = smtp_server.transactions
    assert (refused.outcome, refused.stage) == ("deferred", "connect")
    assert "no PROXY protocol header" in refused.reply.text  # type: ignore[union-attr]
