"""stop() returns within STOP_TIMEOUT in every state, and leaves nothing behind.

After each stop: the port refuses connections, every client sees its connection end within
2 s, no connection task of the server is still running, and no transaction is left open.
Runs on every Python through tox.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import threading
import time
from collections.abc import Callable

import pytest
from reliability_wire import Wire

from pytest_smtp import SMTPServer
from pytest_smtp.engine import STOP_TIMEOUT
from pytest_smtp.faults import FaultContext

Setup = Callable[[SMTPServer], list[socket.socket]]


def _wire(server: SMTPServer, *lines: str) -> Wire:
    wire = Wire(server.address)
    assert (greeting := wire.reply()) is not None and greeting.code == 220
    for line in lines:
        reply = wire.command(line)
        assert reply is not None and reply.code < 400, (line, reply)
    return wire


_ENVELOPE = ("EHLO c.test", "MAIL FROM:<a@x.test>", "RCPT TO:<b@y.test>")


def _idle(server: SMTPServer) -> list[socket.socket]:
    return []


def _connected(server: SMTPServer) -> list[socket.socket]:
    return [_wire(server).sock]


def _mid_data(server: SMTPServer) -> list[socket.socket]:
    wire = _wire(server, *_ENVELOPE, "DATA")
    wire.send(b"Subject: half\r\n\r\nhalf a mess")
    return [wire.sock]


def _handler_running(server: SMTPServer) -> list[socket.socket]:
    server.faults.delay("eod", 60)  # a rule still busy when stop() comes
    wire = _wire(server, *_ENVELOPE, "DATA")
    wire.send(b"body\r\n.\r\n")
    return [wire.sock]


def _hung_rule(server: SMTPServer) -> list[socket.socket]:
    server.faults.hang("rcpt")
    wire = _wire(server, "EHLO c.test", "MAIL FROM:<a@x.test>")
    wire.send(b"RCPT TO:<b@y.test>\r\n")
    return [wire.sock]


def _throttled(server: SMTPServer) -> list[socket.socket]:
    server.faults.throttle(100)
    wire = _wire(server, *_ENVELOPE, "DATA")
    wire.send(b"x" * 50_000)
    return [wire.sock]


def _many(server: SMTPServer) -> list[socket.socket]:
    return [_wire(server, "EHLO c.test").sock for _ in range(200)]


def _half_command(server: SMTPServer) -> list[socket.socket]:
    wire = _wire(server)
    wire.send(b"MAIL FROM:<a@x")
    return [wire.sock]


def _starttls_handshake(server: SMTPServer) -> list[socket.socket]:
    return [_wire(server, "EHLO c.test", "STARTTLS").sock]  # never sends a ClientHello


def _auth_challenge(server: SMTPServer) -> list[socket.socket]:
    wire = _wire(server, "EHLO c.test", "STARTTLS")
    wire.starttls(server.ca.client_context(), server.hostname)
    for line in ("EHLO c.test", "AUTH LOGIN"):
        reply = wire.command(line)
        assert reply is not None and reply.code in (250, 334), reply
    return [wire.sock]


def _implicit_handshake(server: SMTPServer) -> list[socket.socket]:
    return [socket.create_connection(server.address, timeout=2)]  # no ClientHello either


_TLS: dict[str, object] = {"tls": "starttls", "auth": {"bob": "secret"}}
_STATES: dict[str, tuple[Setup, dict[str, object]]] = {
    "idle": (_idle, {}),
    "connected": (_connected, {}),
    "mid-data": (_mid_data, {}),
    "handler-running": (_handler_running, {}),
    "hung-fault-rule": (_hung_rule, {}),
    "throttled-upload": (_throttled, {}),
    "200-connections": (_many, {}),
    "half-a-command": (_half_command, {}),
    "starttls-handshake": (_starttls_handshake, _TLS),
    "auth-challenge": (_auth_challenge, _TLS),
    "implicit-tls-handshake": (_implicit_handshake, {"tls": "implicit"}),
}


def _ended(sock: socket.socket) -> bool:
    """True when the peer closed the connection within 2 s (EOF, reset, or TLS close)."""
    sock.settimeout(2)
    deadline = time.monotonic() + 2
    try:
        while time.monotonic() < deadline:
            if not sock.recv(65536):
                return True
    except (ConnectionError, ssl.SSLError):
        return True
    except TimeoutError:
        return False
    return False


def _refused(address: tuple[str, int]) -> bool:
    try:
        socket.create_connection(address, timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


def _assert_nothing_left(server: SMTPServer) -> None:
    async def pending() -> int:
        return sum(not task.done() for task in server._tasks)

    assert server.engine.call(pending(), timeout=2) == 0
    assert not server._transports
    assert all(t.outcome is not None for t in server.transactions)


@pytest.mark.parametrize("state", list(_STATES))
def test_stop_is_bounded_and_clean(state: str) -> None:
    setup, options = _STATES[state]
    server = SMTPServer(timeout=30, **options).start()  # type: ignore[arg-type]
    clients: list[socket.socket] = []
    try:
        clients = setup(server)
        address = server.address
        started = time.monotonic()
        server.stop()
        took = time.monotonic() - started
        assert took <= STOP_TIMEOUT, f"stop() took {took:.2f} s in state {state}"
        assert not server.running
        assert _refused(address)
        for index, sock in enumerate(clients):
            assert _ended(sock), f"client {index} still connected after stop() ({state})"
        _assert_nothing_left(server)
    finally:
        for sock in clients:
            sock.close()
        server.stop()


def test_stop_twice_and_after_failed_start() -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        server = SMTPServer(port=taken.getsockname()[1])
        with pytest.raises(OSError):
            server.start()
        started = time.monotonic()
        server.stop()
        server.stop()
        assert time.monotonic() - started <= STOP_TIMEOUT
        assert not server.running
    finally:
        taken.close()
    running = SMTPServer().start()
    started = time.monotonic()
    running.stop()
    running.stop()
    assert time.monotonic() - started <= STOP_TIMEOUT


def test_stop_from_inside_the_loop() -> None:
    server = SMTPServer(timeout=30).start()
    called_in_loop = threading.Event()

    def stop_now(ctx: FaultContext) -> bool:
        called_in_loop.set()
        server.stop()  # on the engine's loop: scheduled, must not block or deadlock
        return False

    server.faults.reject("mail", predicate=stop_now)
    try:
        wire = _wire(server, "EHLO c.test")
        wire.send(b"MAIL FROM:<a@x.test>\r\n")
        assert _ended(wire.sock), "the connection outlived a stop() called from the loop"
        assert called_in_loop.is_set()
        assert _refused(server._sockname or ("127.0.0.1", 1))
        assert not server.running
        _assert_nothing_left(server)
        wire.close()
    finally:
        server.stop()


def test_stop_async_from_another_event_loop() -> None:
    async def scenario() -> float:
        server = await SMTPServer(timeout=30).start_async()
        reader, writer = await asyncio.open_connection(*server.address)
        await reader.readline()
        writer.write(b"EHLO c.test\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\n")
        await writer.drain()
        # Wait for the 354: the session is mid-DATA when stop() comes.
        while not (await asyncio.wait_for(reader.readline(), 2)).startswith(b"354"):
            pass
        started = time.monotonic()
        await server.stop_async()
        took = time.monotonic() - started
        rest = await asyncio.wait_for(reader.read(), 2)  # the server closed the connection
        assert rest == b""
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
        return took

    assert asyncio.run(scenario()) <= STOP_TIMEOUT


def test_context_manager_exit_with_an_exception_still_stops() -> None:
    server = SMTPServer(timeout=30)
    client: Wire | None = None

    def body() -> None:
        nonlocal client
        with server:
            client = _wire(server, *_ENVELOPE, "DATA")
            raise KeyError("test body failed mid-DATA")

    with pytest.raises(KeyError):
        body()
    assert not server.running
    assert client is not None and _ended(client.sock)
    client.close()
