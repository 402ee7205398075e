"""IdleWatch: one watchdog thread keeps every connection's idle timeout (no loop timer each)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest

from pytest_smtp.engine import Engine, IdleWatch, get_engine


class _Connection:
    """Stands in for a watched connection: records the loop times it was checked at, and is
    idle once ``idle_after`` (loop time) has passed."""

    def __init__(self, loop: asyncio.AbstractEventLoop, idle_after: float) -> None:
        self.loop = loop
        self.idle_after = idle_after
        self.checks: list[float] = []
        self.idle = threading.Event()
        self.on_loop = True

    def check_idle(self, now: float) -> None:
        self.on_loop = self.on_loop and asyncio.get_running_loop() is self.loop
        self.checks.append(now)
        if now >= self.idle_after:
            self.idle.set()


def _on_loop(engine: Engine, fn: object, *args: object) -> None:
    async def run() -> None:
        fn(*args)  # type: ignore[operator]

    engine.call(run(), timeout=5)


def test_a_watched_connection_is_checked_on_the_loop_until_unwatched() -> None:
    engine = get_engine()
    watch = engine.idle_watch
    connection = _Connection(engine.loop, engine.loop.time() + 0.2)
    _on_loop(engine, watch.watch, connection, 0.2)
    try:
        # Checked every 0.02 s (a tenth of the timeout): idle well within 10x that bound.
        assert connection.idle.wait(5)
    finally:
        _on_loop(engine, watch.unwatch, connection)
    assert connection.on_loop
    assert connection.checks == sorted(connection.checks)
    first_idle = next(t for t in connection.checks if t >= connection.idle_after)
    seen = len(connection.checks)
    # Unwatched: a sweep that runs after unwatch() no longer checks it.
    done = threading.Event()
    engine.loop.call_soon_threadsafe(done.set)
    assert done.wait(5)
    assert len(connection.checks) == seen
    assert first_idle >= connection.idle_after


@pytest.fixture
def own_loop() -> Iterator[tuple[asyncio.AbstractEventLoop, IdleWatch]]:
    """A loop on a thread of its own and an IdleWatch on it; afterwards the watch's thread
    must have ended (close()) and the loop is closed."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    watch = IdleWatch(loop)
    yield loop, watch
    watch.close()
    if watch._thread is not None:
        watch._thread.join(5)
        assert not watch._thread.is_alive()
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    loop.close()


def test_the_shortest_timeout_sets_the_interval_and_it_grows_back(
    own_loop: tuple[asyncio.AbstractEventLoop, IdleWatch],
) -> None:
    loop, watch = own_loop
    slow = _Connection(loop, float("inf"))
    quick = _Connection(loop, loop.time() + 0.1)

    async def add() -> None:
        watch.watch(slow, 300.0)
        assert watch._interval == IdleWatch.MAX_INTERVAL
        watch.watch(quick, 0.1)
        assert watch._interval == 0.01

    asyncio.run_coroutine_threadsafe(add(), loop).result(5)
    assert quick.idle.wait(5)
    assert slow.checks, "every watched connection is checked on each sweep"

    async def drop() -> None:
        watch.unwatch(quick)
        watch._sweep()

    asyncio.run_coroutine_threadsafe(drop(), loop).result(5)
    assert watch._interval == IdleWatch.MAX_INTERVAL
    assert IdleWatch(loop)._interval_for(0.0001) == IdleWatch.MIN_INTERVAL


def test_the_thread_starts_on_first_watch_and_sleeps_while_nothing_is_watched(
    own_loop: tuple[asyncio.AbstractEventLoop, IdleWatch],
) -> None:
    loop, watch = own_loop
    assert watch._thread is None
    first = _Connection(loop, loop.time() + 0.05)
    asyncio.run_coroutine_threadsafe(_call(watch.watch, first, 0.05), loop).result(5)
    assert first.idle.wait(5)
    asyncio.run_coroutine_threadsafe(_call(watch.unwatch, first), loop).result(5)
    # A later connection wakes the (by now dormant or waiting) thread again.
    second = _Connection(loop, loop.time() + 0.05)
    asyncio.run_coroutine_threadsafe(_call(watch.watch, second, 0.05), loop).result(5)
    assert second.idle.wait(5)
    assert watch._thread is not None


async def _call(fn: object, *args: object) -> None:
    fn(*args)  # type: ignore[operator]
