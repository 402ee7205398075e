"""Real mail clients (smtplib, aiosmtplib) connect to a fake name while FakeDNS is patched in."""

from __future__ import annotations

import asyncio
import smtplib
from collections.abc import Iterator

import aiosmtplib
import dns.resolver
import pytest

from pytest_smtp.engine import LoopServer
from pytest_smtp.fakedns import FakeDNS


class _GreetingServer(LoopServer):
    """A minimal SMTP responder (greeting, EHLO, NOOP, QUIT) that records its peers."""

    def __init__(self) -> None:
        super().__init__()
        self.peers: list[str] = []
        self._server: asyncio.Server | None = None

    async def _astart(self) -> None:
        self._server = await self._start_stream_server(self._session)

    async def _aclose(self) -> None:
        if self._server is not None:
            self._server.close()

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.peers.append(writer.get_extra_info("peername")[0])
        writer.write(b"220 mx.example.test ESMTP ready\r\n")
        while line := await reader.readline():
            verb = line.split(b" ", 1)[0].strip().upper()
            if verb in (b"EHLO", b"HELO"):
                writer.write(b"250 mx.example.test\r\n")
            elif verb == b"NOOP":
                writer.write(b"250 OK\r\n")
            elif verb == b"QUIT":
                writer.write(b"221 bye\r\n")
                await writer.drain()
                return
            else:
                writer.write(b"502 not implemented\r\n")
            await writer.drain()


@pytest.fixture(scope="module")
def mail_server() -> Iterator[_GreetingServer]:
    with _GreetingServer() as server:
        yield server
    assert server.errors == []


@pytest.fixture
def fake() -> Iterator[FakeDNS]:
    with FakeDNS() as server:
        server.add_mx("example.test", "mx.example.test")
        server.add_a("mx.example.test", "127.0.0.1")
        with server.patch():
            yield server
    assert server.errors == []


def _mx_host(domain: str) -> str:
    """What direct-sending code does: the lowest-preference MX of the domain."""
    answer = dns.resolver.resolve(domain, "MX")
    best = min(answer, key=lambda r: r.preference)
    return str(best.exchange).rstrip(".")


def test_smtplib_connects_to_the_mx_of_a_fake_domain(
    fake: FakeDNS, mail_server: _GreetingServer
) -> None:
    host = _mx_host("example.test")
    assert host == "mx.example.test"
    with smtplib.SMTP(host, mail_server.port, timeout=10) as client:
        assert client.noop()[0] == 250
    assert mail_server.peers[-1] == "127.0.0.1"
    assert [(q.name, q.rdtype) for q in fake.queries][:2] == [
        ("example.test", "MX"),
        ("mx.example.test", "A"),
    ]


@pytest.mark.asyncio
async def test_aiosmtplib_connects_to_a_fake_name(
    fake: FakeDNS, mail_server: _GreetingServer
) -> None:
    client = aiosmtplib.SMTP(hostname="mx.example.test", port=mail_server.port, timeout=10)
    await client.connect()
    try:
        code, _ = await client.noop()
        assert code == 250
    finally:
        await client.quit()
    assert ("mx.example.test", "A") in [(q.name, q.rdtype) for q in fake.queries]


def test_a_fake_name_that_does_not_exist_fails_like_real_dns(
    fake: FakeDNS, mail_server: _GreetingServer
) -> None:
    with pytest.raises(OSError, match="Name or service not known"):
        smtplib.SMTP("nope.example.test", mail_server.port, timeout=10)
    assert fake.queries[0].rcode == "NXDOMAIN"
