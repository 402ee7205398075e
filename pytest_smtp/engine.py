"""The engine: one daemon thread running one asyncio loop per process.

Every server of pytest_smtp (SMTP, DNS, POP3, IMAP, relay) lives on this loop. Synchronous code
reaches it with :meth:`Engine.call`, asynchronous code (running on another loop, such as a
pytest-asyncio test) with ``await Engine.submit(...)``. Starting a server is a coroutine on the
loop, never a new thread.

This module never imports pytest.
"""

from __future__ import annotations

import abc
import asyncio
import atexit
import concurrent.futures
import contextlib
import os
import socket
import threading
import traceback
from collections.abc import Awaitable, Callable, Coroutine
from types import TracebackType
from typing import Any, ClassVar, Protocol, TypeVar

__all__ = [
    "LISTEN_BACKLOG",
    "STOP_TIMEOUT",
    "Engine",
    "EngineError",
    "IdleWatch",
    "LoopServer",
    "bind_socket",
    "get_engine",
]

T = TypeVar("T")
S = TypeVar("S", bound="LoopServer")

#: Upper bound, in seconds, for stopping any server in any state.
STOP_TIMEOUT = 2.0

#: The listen backlog of every server. asyncio's create_server()/start_server() call listen()
#: again with their own default (100) unless given this, and a burst beyond the backlog loses
#: connections silently (the client's connect succeeds, the greeting never comes).
LISTEN_BACKLOG = 1024


class EngineError(RuntimeError):
    """The engine could not do what was asked (not running, called from its own loop, ...)."""


class Idler(Protocol):
    """A connection :class:`IdleWatch` looks after."""

    def check_idle(self, now: float) -> None:
        """Act if the connection has been idle too long at loop time ``now``; else nothing."""


class IdleWatch:
    """Every connection's idle timeout, kept by one watchdog thread instead of a loop timer per
    connection.

    A timer in the loop's heap costs every loop turn two more clock reads and a heap check, and
    a timer per connection one ``call_later`` and one ``cancel`` more; on a transaction that
    is 5% of the engine thread's work (docs/explanation/performance.md). Here a daemon thread
    sleeps while nothing is watched and otherwise wakes every tenth of the shortest watched
    timeout (at most :attr:`MAX_INTERVAL`, at least :attr:`MIN_INTERVAL`), and has the loop call
    ``check_idle`` on each watched connection. So a connection idle for ``timeout`` seconds is
    acted on within ``timeout + timeout / 10`` (plus one loop turn). :meth:`watch` and
    :meth:`unwatch` run on the loop thread only.
    """

    MAX_INTERVAL = 1.0
    MIN_INTERVAL = 0.005

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._watched: dict[Idler, float] = {}  # connection -> its timeout
        self._interval = self.MAX_INTERVAL
        self._wake = threading.Event()
        self._dormant = False
        self._closed = False
        self._thread: threading.Thread | None = None

    def _interval_for(self, timeout: float) -> float:
        return min(max(timeout / 10, self.MIN_INTERVAL), self.MAX_INTERVAL)

    def watch(self, item: Idler, timeout: float) -> None:
        """Look after ``item`` until :meth:`unwatch`; it is idle after ``timeout`` seconds."""
        self._watched[item] = timeout
        interval = self._interval_for(timeout)
        if interval < self._interval:
            self._interval = interval
            self._wake.set()  # the thread may be in a longer wait: start it again
        elif self._dormant:
            self._dormant = False
            self._wake.set()
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name="pytest_smtp-idle-watch", daemon=True
            )
            self._thread.start()

    def unwatch(self, item: Idler) -> None:
        """Stop looking after ``item`` (nothing if it was not watched)."""
        self._watched.pop(item, None)

    def close(self) -> None:
        """End the watchdog thread (the engine is shutting down)."""
        self._closed = True
        self._wake.set()

    def _run(self) -> None:
        while not self._closed:
            if not self._watched:
                self._dormant = True
                if not self._watched:  # watch() after the first check has set _wake
                    self._wake.wait()
                self._wake.clear()
                continue
            if self._wake.wait(self._interval):
                self._wake.clear()  # a shorter interval, a new watch, or close()
                continue
            try:
                self._loop.call_soon_threadsafe(self._sweep)
            except RuntimeError:
                return  # the loop is closed

    def _sweep(self) -> None:
        now = self._loop.time()
        interval = self.MAX_INTERVAL
        for item, timeout in list(self._watched.items()):
            item.check_idle(now)
            interval = min(interval, self._interval_for(timeout))
        self._interval = interval


class Engine:
    """One asyncio loop on one daemon thread; the home of every server in this process.

    Use :func:`get_engine` rather than constructing it: there is one engine per process.
    """

    def __init__(self) -> None:
        self.loop: asyncio.AbstractEventLoop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._pid = os.getpid()
        self._thread = threading.Thread(target=self._run, name="pytest_smtp-engine", daemon=True)
        self._closed = False
        self.idle_watch = IdleWatch(self.loop)
        """Idle timeouts of the engine's connections (see :class:`IdleWatch`)."""
        self._thread.start()
        self._ready.wait()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.call_soon(self._ready.set)
        try:
            self.loop.run_forever()
        finally:
            self.loop.close()

    @property
    def running(self) -> bool:
        """True while the loop thread is alive and accepting work."""
        return not self._closed and self._thread.is_alive()

    def in_loop(self) -> bool:
        """True when called from the engine's own thread."""
        return threading.current_thread() is self._thread

    def _check(self) -> None:
        if not self.running:
            raise EngineError("the pytest_smtp engine is shut down; no server can run on it")

    def call(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``coro`` on the engine's loop and block until it returns (or ``timeout``).

        Raises :class:`EngineError` when called from the engine's own thread, where blocking
        would deadlock: use ``await`` there instead.
        """
        if self.in_loop():
            coro.close()
            raise EngineError(
                "Engine.call() blocks and cannot be used on the engine's own loop; await the "
                "coroutine instead"
            )
        future = self._schedule(coro)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise TimeoutError(f"engine call did not finish within {timeout} s") from None

    async def submit(self, coro: Coroutine[Any, Any, T]) -> T:
        """Await ``coro`` on the engine's loop from any other event loop (or the same one)."""
        if self.in_loop():
            return await coro
        return await asyncio.wrap_future(self._schedule(coro))

    def _schedule(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """``coro`` handed to the running loop; closed (never awaited) when the engine is not
        running, so no "coroutine was never awaited" warning follows the :class:`EngineError`."""
        try:
            self._check()
        except EngineError:
            coro.close()
            raise
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def call_soon(self, fn: Callable[..., Any], *args: Any) -> None:
        """Schedule a plain callback on the engine's loop from any thread."""
        self._check()
        self.loop.call_soon_threadsafe(fn, *args)

    def shutdown(self, timeout: float = STOP_TIMEOUT) -> None:
        """Stop every server still registered, then stop the loop. Bounded by ``timeout``."""
        if self._closed:
            return
        self._closed = True
        self.idle_watch.close()
        if not self._thread.is_alive() or self.in_loop():
            return

        async def _stop_all() -> None:
            servers = [s for s in LoopServer._live if s.engine is self]
            if servers:
                await asyncio.wait(
                    [asyncio.ensure_future(s._stop_bounded()) for s in servers],
                    timeout=timeout,
                )

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(_stop_all(), self.loop).result(timeout + 0.5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout)


_engine: Engine | None = None
_engine_lock = threading.Lock()


def get_engine() -> Engine:
    """The process-wide engine, started on first use (and again in a forked child)."""
    global _engine
    with _engine_lock:
        if _engine is None or _engine._pid != os.getpid() or not _engine.running:
            if _engine is not None and _engine._pid != os.getpid():
                LoopServer._live.clear()
            _engine = Engine()
        return _engine


def _shutdown_at_exit() -> None:
    if _engine is not None and _engine._pid == os.getpid():
        _engine.shutdown()


atexit.register(_shutdown_at_exit)


def bind_socket(
    host: str = "127.0.0.1",
    port: int = 0,
    kind: socket.SocketKind = socket.SOCK_STREAM,
) -> socket.socket:
    """Bind (and for TCP, listen on) a socket ourselves: port 0 means the kernel picks, no race.

    ``host`` must be an IP literal: binding never resolves names, so ``socket.getfqdn()`` and
    DNS are never involved.
    """
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        socket.inet_pton(family, host)
    except OSError:
        raise ValueError(
            f"host must be an IP address such as '127.0.0.1' or '::1', not {host!r}"
        ) from None
    # IPPROTO_TCP explicitly: asyncio turns Nagle off only for sockets whose proto says TCP,
    # and with Nagle on a TLS greeting waits ~40 ms for a delayed ACK.
    sock = socket.socket(family, kind, socket.IPPROTO_TCP if kind == socket.SOCK_STREAM else 0)
    try:
        if kind == socket.SOCK_STREAM:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        if kind == socket.SOCK_STREAM:
            sock.listen(LISTEN_BACKLOG)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


class LoopServer(abc.ABC):
    """Base of every server that lives on the engine: lifecycle, bounded stop, task tracking.

    Subclasses implement :meth:`_astart` (bind and start serving; set ``self._sockname``) and
    :meth:`_aclose` (close listeners). Connection tasks registered with :meth:`_track` are
    cancelled by :meth:`stop`, which always returns within :data:`STOP_TIMEOUT` seconds: idle,
    mid-transfer, with a handler running, after a failed start, or when called twice.
    """

    _live: ClassVar[set[LoopServer]] = set()

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self._host_arg = host
        self._port_arg = port
        self._sockname: tuple[str, int] | None = None
        self._tasks: set[asyncio.Future[Any]] = set()
        self._transports: set[asyncio.BaseTransport] = set()
        self._started = False
        self._stopped = False
        self.errors: list[str] = []
        """Tracebacks of unexpected exceptions inside the server (a test should fail on them)."""
        self.engine = get_engine()

    # -- addresses -------------------------------------------------------------------------
    @property
    def host(self) -> str:
        """The IP address the server listens on."""
        return self._require_started()[0]

    @property
    def port(self) -> int:
        """The port the server listens on (chosen by the kernel unless given)."""
        return self._require_started()[1]

    @property
    def address(self) -> tuple[str, int]:
        """``(host, port)``, ready for ``smtplib.SMTP(*server.address)``."""
        return self._require_started()

    def _require_started(self) -> tuple[str, int]:
        if self._sockname is None:
            raise EngineError(f"{type(self).__name__} is not started: use start() or 'with'")
        return self._sockname

    # -- lifecycle -------------------------------------------------------------------------
    def start(self: S) -> S:
        """Start serving (blocking until the socket listens). Returns ``self``."""
        if self._started:
            return self
        self.engine.call(self.start_async(), timeout=30)
        return self

    async def start_async(self: S) -> S:
        """Start serving from async code (any event loop)."""
        if self._started:
            return self
        self._started = True
        self._stopped = False
        try:
            await self.engine.submit(self._astart())
        except BaseException:
            self._started = False
            with contextlib.suppress(Exception):
                await self.engine.submit(self._stop_bounded())
            raise
        LoopServer._live.add(self)
        return self

    def stop(self) -> None:
        """Stop serving and drop every connection; bounded, idempotent, never hangs."""
        if self._stopped:
            return
        if self.engine.in_loop():
            # Called from inside the loop (say, a handler): schedule it, do not block.
            self.engine.loop.create_task(self._stop_bounded())
            return
        if not self.engine.running:
            self._stopped = True
            return
        with contextlib.suppress(Exception):
            self.engine.call(self._stop_bounded(), timeout=STOP_TIMEOUT + 0.5)

    async def stop_async(self) -> None:
        """Stop serving from async code; bounded like :meth:`stop`."""
        if self._stopped:
            return
        await self.engine.submit(self._stop_bounded())

    async def _stop_bounded(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self._started = False
        LoopServer._live.discard(self)
        try:
            await asyncio.wait_for(self._aclose(), timeout=STOP_TIMEOUT / 2)
        except Exception:
            self.errors.append(traceback.format_exc())
        for transport in list(self._transports):
            with contextlib.suppress(Exception):
                transport.abort()  # type: ignore[attr-defined]
        self._transports.clear()
        # One loop turn: the aborted transports' connection_lost callbacks run now, so a
        # connection that steps itself (no Task) has recorded its end before stop() returns.
        await asyncio.sleep(0)
        tasks = [t for t in self._tasks if not t.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=STOP_TIMEOUT / 2)
        self._tasks.clear()

    @property
    def running(self) -> bool:
        """True between a successful start and stop."""
        return self._started and not self._stopped

    def __enter__(self: S) -> S:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self: S) -> S:
        return await self.start_async()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop_async()

    # -- for subclasses --------------------------------------------------------------------
    @abc.abstractmethod
    async def _astart(self) -> None:
        """Bind and start serving on the engine's loop; set ``self._sockname``."""

    @abc.abstractmethod
    async def _aclose(self) -> None:
        """Close the listening sockets (connections are dropped by the base class)."""

    @staticmethod
    async def _close_listener(server: asyncio.Server) -> None:
        """Close a listening server after letting already-queued accepts finish.

        Python 3.13.0 asserts in ``Server._attach`` for a connection accepted after
        ``close()`` and leaves that socket open (the client hangs until GC). A few loop turns
        first let pending accepts reach ``connection_made``, where a stopped server aborts
        them (see :meth:`_track_transport`).
        """
        for _ in range(4):
            await asyncio.sleep(0)
        server.close()

    def _track(self, task: asyncio.Future[T]) -> asyncio.Future[T]:
        """Register a per-connection task (or a future that is done when the connection's work
        is) so stop() can cancel it and wait for it."""
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _track_transport(self, transport: asyncio.BaseTransport) -> bool:
        """Register a connection's transport so stop() can abort it. False (and the transport
        aborted) when the server is already stopped: a connection the loop accepted just
        before the listener closed (seen on Python 3.13) must not outlive stop()."""
        if self._stopped:
            transport.abort()  # type: ignore[attr-defined]
            return False
        self._transports.add(transport)
        return True

    def _untrack_transport(self, transport: asyncio.BaseTransport) -> None:
        self._transports.discard(transport)

    def _record_error(self, context: str) -> str:
        """Keep the current exception's traceback; return it (for transcripts)."""
        text = f"{context}\n{traceback.format_exc()}"
        self.errors.append(text)
        return text

    async def _start_stream_server(
        self,
        handler: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
        *,
        ssl: Any = None,
        limit: int = 2**16,
    ) -> asyncio.Server:
        """Helper for stream-based servers (POP3, IMAP): bind, serve, track each connection."""

        async def _on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            if task is not None:
                self._track(task)
            if not self._track_transport(writer.transport):
                return
            try:
                await handler(reader, writer)
            except (asyncio.CancelledError, ConnectionError):
                pass
            except Exception:
                self._record_error(f"{type(self).__name__}: unhandled error in a connection")
            finally:
                self._untrack_transport(writer.transport)
                with contextlib.suppress(Exception):
                    writer.close()

        sock = bind_socket(self._host_arg, self._port_arg)
        server = await asyncio.start_server(
            _on_client, sock=sock, ssl=ssl, limit=limit, backlog=LISTEN_BACKLOG
        )
        name = sock.getsockname()
        self._sockname = (name[0], name[1])
        return server
