"""``proxy_protocol=True``: the server behind a load balancer, over real sockets.

The test plays the proxy: it opens the connection, writes the PROXY header (version 1 or 2),
then speaks SMTP with smtplib over the same socket, as HAProxy's ``send-proxy`` would relay a
client. A connection without a valid header gets ``421 4.3.0`` and is closed, as Postfix's
``smtpd_upstream_proxy_protocol = haproxy`` does (``test_postfix_hop.py`` compares the two);
an aiosmtpd handler's ``handle_PROXY`` that refuses closes without a reply, as on aiosmtpd.
"""

from __future__ import annotations

import json
import smtplib
import socket
import ssl
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.smtp import Envelope, Session

from pytest_smtp import ProxyHeader, SMTPServer
from pytest_smtp.smtp.tls import default_ca
from pytest_smtp.web.records import TestRecord
from pytest_smtp.web.report import write_report

MSG = "From: a@x.test\r\nTo: b@y.test\r\nSubject: proxied\r\n\r\nbody\r\n"
CLIENT = ("203.0.113.7", 51234)
FRONT = ("192.0.2.25", 25)


class ProxiedSMTP(smtplib.SMTP):
    """smtplib that writes ``header`` on its socket before the server's greeting is read."""

    def __init__(self, header: bytes, *args: Any, **kwargs: Any) -> None:
        self._header = header
        super().__init__(*args, **kwargs)

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        sock = socket.create_connection((host, port), timeout)
        sock.sendall(self._header)
        return sock


def answer(server: SMTPServer, data: bytes) -> bytes:
    """What the server answers a connection that begins with ``data`` (b"" = nothing)."""
    with socket.create_connection(server.address, timeout=10) as sock:
        sock.sendall(data)
        received = b""
        try:
            while chunk := sock.recv(4096):
                received += chunk
        except ConnectionResetError:
            pass  # closed with data unread: the kernel resets instead of a FIN
    return received


@pytest.mark.parametrize("version", [1, 2])
def test_the_relayed_client_is_recorded_on_the_session(version: int) -> None:
    header = ProxyHeader(
        version=version,
        source=CLIENT,
        destination=FRONT,
        tlvs=((0x02, b"mx.front.test"),) if version == 2 else (),
    )
    with (
        SMTPServer(proxy_protocol=True) as srv,
        ProxiedSMTP(header.encode(), *srv.address, local_hostname="client.test", timeout=10) as c,
    ):
        c.sendmail("a@x.test", ["b@y.test"], MSG)
    session = srv.mailbox.one().session
    assert session.proxy == header
    assert session.proxy.client == CLIENT
    assert session.peer[0] == "127.0.0.1"  # the proxy's side stays the peer
    expected = f"C: <PROXY v{version} TCP4 203.0.113.7:51234 -> 192.0.2.25:25"
    assert any(expected in line for line in srv.transcript), srv.transcript


def test_header_and_commands_in_one_segment() -> None:
    # A proxy may send the header and the client's first bytes together.
    header = ProxyHeader(source=CLIENT, destination=FRONT).encode()
    with SMTPServer(proxy_protocol=True, hostname="mx.test") as srv:
        reply = answer(srv, header + b"QUIT\r\n")
    assert reply.startswith(b"220 mx.test") and b"221 " in reply
    assert srv.sessions[0].proxy is not None and srv.sessions[0].proxy.client == CLIENT


def test_a_local_header_is_the_proxys_own_connection() -> None:
    local = ProxyHeader(version=2, command="LOCAL", family="UNKNOWN").encode()
    with (
        SMTPServer(proxy_protocol=True) as srv,
        ProxiedSMTP(local, *srv.address, local_hostname="health.test", timeout=10) as c,
    ):
        assert c.noop()[0] == 250
    [session] = srv.sessions
    assert session.proxy is not None
    assert (session.proxy.command, session.proxy.client) == ("LOCAL", None)


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"EHLO client.test\r\n", "no PROXY protocol header: the connection began b'EHLO"),
        (b"PROXY TCP4 1.2.3.400 5.6.7.8 1 2\r\n", "is not an address"),
        (b"\r\n\r\n\x00\r\nQUIT\n\x31\x11\x00\x00", "with version 3, not 2"),
    ],
)
def test_no_valid_header_gets_421_and_the_connection_closed(data: bytes, why: str) -> None:
    with SMTPServer(proxy_protocol=True, hostname="mx.test") as srv:
        reply = answer(srv, data)
    assert reply.startswith(b"421 4.3.0 mx.test Error: "), reply
    assert why.encode() in reply and reply.count(b"\r\n") == 1
    [session] = srv.sessions
    assert session.proxy is None
    [txn] = srv.transactions  # a refusal at connect, as a fault rule's would be
    assert (txn.outcome, txn.stage, txn.reply and txn.reply.code) == ("deferred", "connect", 421)
    assert any(why in line for line in srv.transcript), srv.transcript
    assert srv.errors == []  # a client's bad header is not the server's error


def test_a_connection_waiting_for_its_header_gets_421_at_the_idle_timeout() -> None:
    # Half a second of idle timeout, checked every 0.05 s; the bound below is 20x that.
    with (
        SMTPServer(proxy_protocol=True, timeout=0.5) as srv,
        socket.create_connection(srv.address, timeout=10) as sock,
    ):
        sock.sendall(b"PROXY TCP4 203.0.113.7")  # and then nothing
        stream = sock.makefile("rb")
        reply = stream.readline()
        assert reply.startswith(b"421 4.3.0 smtp.pytest-smtp.test Error: no PROXY protocol")
        assert stream.read() == b""  # then closed
    assert any("no PROXY protocol header within 0.5 s" in line for line in srv.transcript)


def test_starttls_after_the_header() -> None:
    header = ProxyHeader(version=2, source=CLIENT, destination=FRONT).encode()
    with (
        SMTPServer(proxy_protocol=True, tls="starttls") as srv,
        ProxiedSMTP(header, *srv.address, local_hostname="client.test", timeout=10) as c,
    ):
        c.starttls(context=default_ca().client_context())
        c.sendmail("a@x.test", ["b@y.test"], MSG)
    session = srv.mailbox.one().session
    assert session.tls and session.proxy is not None and session.proxy.client == CLIENT


def test_rules_at_connect_see_the_relayed_client() -> None:
    with SMTPServer(proxy_protocol=True, hostname="mx.test") as srv:
        srv.faults.reject(
            "connect",
            554,
            "Not from that network",
            predicate=lambda ctx: ctx.session.proxy.client == CLIENT,
        )
        blocked = ProxyHeader(source=CLIENT, destination=FRONT).encode()
        welcome = ProxyHeader(source=("198.51.100.1", 4000), destination=FRONT).encode()
        assert answer(srv, blocked + b"QUIT\r\n").startswith(b"554 ")
        assert answer(srv, welcome + b"QUIT\r\n").startswith(b"220 mx.test")


@pytest.mark.parametrize("version", [1, 2])
@pytest.mark.parametrize("together", [False, True], ids=["apart", "one-segment"])
def test_implicit_tls_after_the_header(version: int, together: bool) -> None:
    # The header in the clear, then the TLS handshake on the same connection (a balancer
    # passing port 465 through). Not one octet of the ClientHello may be read with the header,
    # even when both arrive in one segment (the handshake would then never finish).
    header = ProxyHeader(version=version, source=CLIENT, destination=FRONT).encode()
    context = default_ca().client_context()
    with SMTPServer(proxy_protocol=True, tls="implicit", hostname="mx.test") as srv:
        with socket.create_connection(srv.address, timeout=10) as raw:
            if together:
                # The header and the ClientHello in one send: TLS over a memory BIO, its first
                # flight written after the header.
                incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
                tls = context.wrap_bio(incoming, outgoing, server_hostname="mx.test")
                with pytest.raises(ssl.SSLWantReadError):
                    tls.do_handshake()
                raw.sendall(header + outgoing.read())

                def receive() -> None:
                    chunk = raw.recv(65536)
                    assert chunk, "the server closed the connection during the handshake"
                    incoming.write(chunk)

                while True:
                    receive()
                    try:
                        tls.do_handshake()
                        break
                    except ssl.SSLWantReadError:
                        raw.sendall(outgoing.read())
                raw.sendall(outgoing.read())
                greeting = b""
                while not greeting.endswith(b"\r\n"):
                    try:
                        greeting += tls.read(100)
                    except ssl.SSLWantReadError:
                        receive()
            else:
                raw.sendall(header)
                with context.wrap_socket(raw, server_hostname="mx.test") as wrapped:
                    greeting = wrapped.recv(100)
        assert greeting.startswith(b"220 mx.test"), greeting
    [session] = srv.sessions
    assert session.tls_mode == "implicit" and session.proxy is not None
    assert session.proxy.client == CLIENT


def test_implicit_tls_without_a_header_is_closed_before_any_handshake() -> None:
    with (
        SMTPServer(proxy_protocol=True, tls="implicit") as srv,
        socket.create_connection(srv.address, timeout=10) as raw,
        pytest.raises((ssl.SSLError, ConnectionError, OSError)),
    ):
        # The ClientHello is not a PROXY header: closed, no handshake.
        default_ca().client_context().wrap_socket(raw, server_hostname="localhost")
    assert any("no PROXY protocol header" in line for line in srv.transcript), srv.transcript


@pytest.mark.smtp(proxy_protocol=True)
def test_the_marker_takes_it(smtp_server: SMTPServer) -> None:
    header = ProxyHeader(source=CLIENT, destination=FRONT).encode()
    with ProxiedSMTP(header, *smtp_server.address, local_hostname="c.test", timeout=10) as c:
        c.sendmail("a@x.test", ["b@y.test"], MSG)
    assert smtp_server.mailbox.one().session.proxy.client == CLIENT  # type: ignore[union-attr]


def test_the_report_keeps_the_header(tmp_path: Path) -> None:
    header = ProxyHeader(version=2, source=CLIENT, destination=FRONT, tlvs=((0x02, b"\xff\x00"),))
    with (
        SMTPServer(proxy_protocol=True) as srv,
        ProxiedSMTP(header.encode(), *srv.address, local_hostname="c.test", timeout=10) as c,
    ):
        c.sendmail("a@x.test", ["b@y.test"], MSG)
    record = TestRecord(nodeid="t", outcome="passed").add_server(srv)
    again = TestRecord.from_dict(json.loads(json.dumps(record.to_dict())))
    assert again.messages[0].session.proxy == header
    assert again.transactions[0].session.proxy == header
    write_report(tmp_path, [again])
    [page] = (tmp_path / "tests").glob("*.html")
    assert "v2 PROXY TCP4: client 203.0.113.7:51234" in page.read_text()


class Gate:
    """An aiosmtpd handler that admits clients by the address the proxy relays."""

    def __init__(self) -> None:
        self.seen: list[Any] = []

    async def handle_PROXY(
        self, server: Any, session: Session, envelope: Envelope, proxy_data: Any
    ) -> bool:
        self.seen.append(proxy_data)
        return str(proxy_data.src_addr) != "203.0.113.7"


def test_an_aiosmtpd_handlers_handle_proxy_decides() -> None:
    gate = Gate()
    with SMTPServer(proxy_protocol=True, handler=gate, hostname="mx.test") as srv:
        refused = ProxyHeader(source=CLIENT, destination=FRONT).encode()
        admitted = ProxyHeader(version=2, source=("198.51.100.1", 4000), destination=FRONT)
        assert answer(srv, refused + b"QUIT\r\n") == b""
        assert answer(srv, admitted.encode() + b"QUIT\r\n").startswith(b"220 ")
    # aiosmtpd's own ProxyData, parsed by aiosmtpd.
    assert [str(p.src_addr) for p in gate.seen] == ["203.0.113.7", "198.51.100.1"]
    assert all(p.valid for p in gate.seen)
    assert any("handle_PROXY refused the connection" in line for line in srv.transcript)


def test_a_handler_without_handle_proxy_accepts_valid_headers() -> None:
    class Plain:
        async def handle_DATA(self, server: Any, session: Session, envelope: Envelope) -> str:
            return "250 OK"

    header = ProxyHeader(source=CLIENT, destination=FRONT).encode()
    with (
        SMTPServer(proxy_protocol=True, handler=Plain()) as srv,
        ProxiedSMTP(header, *srv.address, local_hostname="c.test", timeout=10) as c,
    ):
        c.sendmail("a@x.test", ["b@y.test"], MSG)
    assert srv.mailbox.one().session.proxy.client == CLIENT  # type: ignore[union-attr]


def test_without_the_option_a_header_is_an_unknown_command() -> None:
    with (
        SMTPServer() as srv,
        socket.create_connection(srv.address, timeout=10) as sock,
    ):
        stream = sock.makefile("rb")
        assert stream.readline().startswith(b"220 ")
        sock.sendall(ProxyHeader(source=CLIENT, destination=FRONT).encode())
        assert stream.readline().startswith(b"500 5.5.1 Command 'PROXY' unrecognized")
