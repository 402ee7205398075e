"""No task, socket or thread leaks: 1,000 connect/disconnect cycles end where they started."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable

import pytest
from reliability_wire import Wire, settle

from pytest_smtp import SMTPServer

CYCLES = 1_000


def _open_fds() -> int:
    return len(os.listdir(f"/proc/{os.getpid()}/fd"))


def _loop_tasks(server: SMTPServer) -> int:
    async def count() -> int:
        return len(asyncio.all_tasks()) - 1  # minus this coroutine's own task

    return server.engine.call(count(), timeout=5)


def _close_at_once(server: SMTPServer) -> None:
    Wire(server.address).close()


def _quit(server: SMTPServer) -> None:
    with Wire(server.address) as wire:
        wire.reply()
        wire.command("QUIT")
        wire.expect_eof()


def _reset_mid_envelope(server: SMTPServer) -> None:
    wire = Wire(server.address)
    wire.reply()
    wire.send(b"EHLO c.test\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\n")
    for _ in range(3):
        wire.reply()
    wire.reset()


def _vanish_mid_data(server: SMTPServer) -> None:
    with Wire(server.address) as wire:
        wire.reply()
        wire.send(b"EHLO c.test\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\n")
        for _ in range(4):
            wire.reply()
        wire.send(b"Subject: gone\r\n\r\nhalf")


def _one_message(server: SMTPServer) -> None:
    with Wire(server.address) as wire:
        wire.reply()
        wire.send(b"EHLO c.test\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\n")
        for _ in range(4):
            wire.reply()
        wire.send(b"x\r\n.\r\nQUIT\r\n")
        wire.reply()
        wire.reply()


def _starttls_then_close(server: SMTPServer) -> None:
    with Wire(server.address) as wire:
        wire.reply()
        wire.command("EHLO c.test")
        wire.command("STARTTLS")
        wire.starttls(server.ca.client_context(), server.hostname)
        wire.command("EHLO c.test")


_PLAIN: list[Callable[[SMTPServer], None]] = [
    _close_at_once,
    _quit,
    _reset_mid_envelope,
    _vanish_mid_data,
    _one_message,
]


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "starttls"])
def test_thousand_cycles_leave_no_leak(tls: bool) -> None:
    with SMTPServer(timeout=30, tls="starttls" if tls else None) as server:
        cycles = [_starttls_then_close] if tls else _PLAIN
        count = CYCLES // 5 if tls else CYCLES  # TLS handshakes cost ~5 ms each
        for cycle in cycles:  # warm up: caches, the TLS context, lazily created objects
            cycle(server)
        settle(server)
        fds, tasks, threads = _open_fds(), _loop_tasks(server), threading.active_count()
        for index in range(count):
            cycles[index % len(cycles)](server)
        settle(server)
        after = (_open_fds(), _loop_tasks(server), threading.active_count())
        print(
            f"\nleaks ({'starttls' if tls else 'plain'}, {count} cycles): fds {fds}->{after[0]}"
            f", loop tasks {tasks}->{after[1]}, threads {threads}->{after[2]}"
        )
        assert after == (fds, tasks, threads)
        assert not server._transports and not server._tasks
        assert all(t.outcome is not None for t in server.transactions)
        assert not server.errors
