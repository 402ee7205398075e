"""The servers the benchmarks compare, each as a context manager yielding ``Running``.

Shared by bench_throughput.py and bench_memory.py so every script measures the same peers the
same way. Peers are imported inside their function: a missing one fails only its own row.
"""

from __future__ import annotations

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
