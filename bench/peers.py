"""The servers the benchmarks compare, each as a context manager yielding ``Running``.

Shared by bench_throughput.py and bench_memory.py so every script measures the same peers the
same way. Peers are imported inside their function: a missing one fails only its own row.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from _support import free_port

#: A started server: (host, port, number of messages it has stored so far).
Running = tuple[str, int, Callable[[], int]]


@contextmanager
def ours(max_size: int | None = None) -> Iterator[Running]:
    """pytest_smtp's SMTPServer (default options unless ``max_size`` is given)."""
    from pytest_smtp.smtp.server import SMTPServer

    options: dict[str, Any] = {} if max_size is None else {"max_size": max_size}
    with SMTPServer(**options) as server:
        yield server.host, server.port, lambda: len(server.mailbox)


class StoringHandler:
    """A bare aiosmtpd handler that keeps each envelope, as a minimal capturing server would."""

    def __init__(self) -> None:
        self.envelopes: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.envelopes.append(envelope)
        return "250 OK"


@contextmanager
def bare_aiosmtpd(data_size_limit: int | None = None) -> Iterator[Running]:
    """aiosmtpd's Controller with a storing handler. aiosmtpd 1.4.6 cannot take port=0 (its
    readiness check connects to port 0), so it gets a port that was free a moment ago."""
    from aiosmtpd.controller import Controller

    handler = StoringHandler()
    extra: dict[str, Any] = {} if data_size_limit is None else {"data_size_limit": data_size_limit}
    controller = Controller(handler, hostname="127.0.0.1", port=free_port(), **extra)
    controller.start()
    try:
        yield "127.0.0.1", controller.port, lambda: len(handler.envelopes)
    finally:
        controller.stop()


@contextmanager
def smtpdfix_server() -> Iterator[Running]:
    """The server behind smtpdfix's ``smtpd`` fixture (SMTPDFix, default configuration)."""
    from smtpdfix import SMTPDFix

    with SMTPDFix(hostname="127.0.0.1") as controller:
        yield "127.0.0.1", controller.port, lambda: len(controller.messages)


@contextmanager
def localserver() -> Iterator[Running]:
    """The server behind pytest-localserver's ``smtpserver`` fixture."""
    from pytest_localserver.smtp import Server

    server = Server(host="127.0.0.1")
    server.start()
    try:
        yield "127.0.0.1", server.port, lambda: len(server.outbox)
    finally:
        server.stop()


#: The floor's EHLO reply: the least smtplib needs (pipelining, 8-bit data).
FLOOR_EHLO = b"250-floor\r\n250-PIPELINING\r\n250 8BITMIME\r\n"

#: The extensions SMTPServer offers with default options, in its order: the "same wire" floor
#: answers EHLO with these, so the client does the same work against it as against us (smtplib
#: parses each line, and because SIZE is offered it sends ``size=`` with every MAIL).
OUR_EHLO = (
    b"250-floor greets client\r\n250-PIPELINING\r\n250-SIZE 33554432\r\n250-8BITMIME\r\n"
    b"250-SMTPUTF8\r\n250-ENHANCEDSTATUSCODES\r\n250-DSN\r\n250 HELP\r\n"
)


class _FloorConnection(asyncio.Protocol):
    """The physical floor: the least an SMTP server on asyncio can do for smtplib. Fixed
    replies, a CRLF scan per command and a CRLF.CRLF scan for DATA, one write per segment;
    no parsing, no records but the message bytes. Nothing that speaks SMTP over a socket to
    smtplib, on a loop thread of the same process, can be faster."""

    def __init__(self, sink: list[bytes], ehlo: bytes = FLOOR_EHLO) -> None:
        self.sink = sink
        self.ehlo = ehlo
        self.buf = bytearray()
        self.in_data = False
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(b"220 floor ESMTP\r\n")

    def data_received(self, data: bytes | memoryview) -> None:
        assert self.transport is not None
        self.buf += data
        out = []
        while True:
            if self.in_data:
                end = self.buf.find(b"\r\n.\r\n")
                if end < 0:
                    break
                self.sink.append(bytes(self.buf[: end + 2]))
                del self.buf[: end + 5]
                self.in_data = False
                out.append(b"250 OK\r\n")
                continue
            end = self.buf.find(b"\r\n")
            if end < 0:
                break
            verb = bytes(self.buf[:4]).upper()
            del self.buf[: end + 2]
            if verb == b"EHLO":
                out.append(self.ehlo)
            elif verb == b"DATA":
                self.in_data = True
                out.append(b"354 go ahead\r\n")
            elif verb == b"QUIT":
                self.transport.write(b"".join(out) + b"221 bye\r\n")
                self.transport.close()
                return
            else:
                out.append(b"250 OK\r\n")
        if out:
            self.transport.write(b"".join(out))


class _BufferedFloorConnection(_FloorConnection, asyncio.BufferedProtocol):
    """The floor reading into one buffer it keeps (asyncio.BufferedProtocol), as SMTPServer
    does: no new bytes object per read (for asyncio's 256 KiB reads an mmap, a page fault, an
    mremap and a munmap each)."""

    def __init__(self, sink: list[bytes], ehlo: bytes = FLOOR_EHLO) -> None:
        super().__init__(sink, ehlo)
        self.view = memoryview(bytearray(256 * 1024))

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.view

    def buffer_updated(self, nbytes: int) -> None:
        self.data_received(self.view[:nbytes])


@contextmanager
def floor(
    ehlo: bytes = FLOOR_EHLO, *, buffered: bool = False
) -> Iterator[tuple[str, int, list[bytes]]]:
    """The floor responder on a loop thread of its own; yields (host, port, stored bodies)."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="floor", daemon=True)
    thread.start()
    sink: list[bytes] = []

    async def start() -> asyncio.Server:
        kind = _BufferedFloorConnection if buffered else _FloorConnection
        return await loop.create_server(lambda: kind(sink, ehlo), "127.0.0.1", 0)

    server = asyncio.run_coroutine_threadsafe(start(), loop).result(10)
    try:
        yield "127.0.0.1", server.sockets[0].getsockname()[1], sink
    finally:

        async def close() -> None:
            server.close()
            await server.wait_closed()

        asyncio.run_coroutine_threadsafe(close(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


@contextmanager
def floor_server() -> Iterator[Running]:
    """:func:`floor` as a peer like the others."""
    with floor() as (host, port, sink):
        yield host, port, lambda: len(sink)


@contextmanager
def floor_same_wire_server() -> Iterator[Running]:
    """:func:`floor` answering EHLO as SMTPServer does (:data:`OUR_EHLO`): the floor of the
    same exchange, client work included."""
    with floor(OUR_EHLO) as (host, port, sink):
        yield host, port, lambda: len(sink)


@contextmanager
def floor_buffered_server() -> Iterator[Running]:
    """The same-wire floor reading as SMTPServer reads (:class:`_BufferedFloorConnection`):
    the floor of the same exchange with the same read path."""
    with floor(OUR_EHLO, buffered=True) as (host, port, sink):
        yield host, port, lambda: len(sink)
