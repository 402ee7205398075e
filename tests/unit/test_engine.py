"""The engine: one loop thread, bridging from sync and async code, bounded shutdown."""

from __future__ import annotations

import asyncio
import socket
import threading

import pytest

from pytest_smtp.engine import Engine, EngineError, bind_socket, get_engine


async def _answer() -> int:
    return 42


def test_one_engine_per_process_on_a_daemon_thread() -> None:
    engine = get_engine()
    assert engine is get_engine()
    assert engine.running
    assert engine._thread.daemon
    assert not engine.in_loop()


def test_call_from_sync_code() -> None:
    assert get_engine().call(_answer()) == 42


def test_submit_from_another_event_loop() -> None:
    async def main() -> int:
        return await get_engine().submit(_answer())

    assert asyncio.run(main()) == 42


def test_call_from_inside_the_loop_is_refused_not_deadlocked() -> None:
    engine = get_engine()

    async def inner() -> str:
        try:
            engine.call(_answer())
        except EngineError as exc:
            return str(exc)
        return "no error"

    assert "cannot be used on the engine's own loop" in engine.call(inner(), timeout=5)


def test_call_timeout_raises_timeout_error() -> None:
    never = threading.Event()

    async def slow() -> None:
        await asyncio.get_running_loop().run_in_executor(None, never.wait, 1.0)

    with pytest.raises(TimeoutError, match="did not finish"):
        get_engine().call(slow(), timeout=0.05)


def test_bind_socket_port_zero_and_backlog() -> None:
    sock = bind_socket()
    try:
        host, port = sock.getsockname()
        assert host == "127.0.0.1" and port > 0
        assert sock.getblocking() is False
    finally:
        sock.close()


def test_bind_socket_udp_and_ipv6_literal() -> None:
    sock = bind_socket("127.0.0.1", kind=socket.SOCK_DGRAM)
    sock.close()
    if socket.has_ipv6:
        try:
            six = bind_socket("::1")
        except OSError:
            return  # no IPv6 loopback on this host
        six.close()


def test_bind_socket_refuses_names() -> None:
    with pytest.raises(ValueError, match="IP address"):
        bind_socket("localhost")


def test_a_shut_down_engine_refuses_work_clearly() -> None:
    engine = Engine()
    engine.shutdown()
    assert not engine.running
    with pytest.raises(EngineError, match="shut down"):
        engine.call(_answer())
    engine.shutdown()  # twice is fine
