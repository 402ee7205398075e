"""The waitable log: a thread-safe list that threads and event loops can wait on.

The engine thread appends; readers get snapshots. ``wait_for`` is event-driven: an append
wakes the waiters, nothing polls.

This module never imports pytest.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from collections.abc import Sequence as SequenceABC
from typing import Generic, TypeVar, overload

from pytest_smtp import engine as _engine_module
from pytest_smtp._listeners import Listeners
from pytest_smtp.mail.filters import Filter

__all__ = ["MailboxError", "MailboxTimeout"]

_T = TypeVar("_T")


class MailboxError(AssertionError, LookupError):
    """A lookup in a :class:`Mailbox` or :class:`TransactionLog` found the wrong number of items.

    An :class:`AssertionError`, so pytest reports it as a test failure; also a
    :class:`LookupError`. The text lists the filters and everything that was captured.
    """


class MailboxTimeout(MailboxError, TimeoutError):
    """``wait_for`` gave up: fewer items than asked for matched within the timeout."""


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class _AsyncWaiter:
    __slots__ = ("future", "loop")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.future: asyncio.Future[None] | None = None


class _Scan(Generic[_T]):
    """A waiter's view of a log: which items it has seen and which matched (by index)."""

    def __init__(self) -> None:
        self.generation = -1
        self.position = 0
        self.changes_seen = 0
        self.matched: dict[int, _T] = {}


class _WaitableLog(SequenceABC[_T]):
    """A thread-safe, append-only (until cleared) list that callers can wait on.

    The engine thread calls ``_append`` (and ``_updated`` when an item changed); readers get
    snapshots. Waiting is event-driven: a :class:`threading.Condition` for threads, futures
    resolved with ``call_soon_threadsafe`` for event loops.
    """

    _noun = "item"
    _nouns = "items"

    def __init__(self, default_timeout: float = 5.0) -> None:
        self.default_timeout = default_timeout
        self._items: list[_T] = []
        self._index: dict[int, int] = {}
        self._changes: list[int] = []
        self._generation = 0
        # The lock guards the state; the condition waits on it. Taken as ``with self._lock``:
        # Condition.__enter__/__exit__ are Python frames, the lock's are not.
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._async_waiters: set[_AsyncWaiter] = set()
        # Waits in progress (sync and async), counted under the lock: with none, an append
        # wakes nobody and a change needs no note (a wait that starts later reads every item
        # from the start).
        self._scans = 0
        self._listeners: Listeners[_T] = Listeners(self._noun)
        #: Tracebacks of listeners that raised (see :meth:`add_listener`).
        self.listener_errors: list[str] = self._listeners.errors

    @property
    def default_timeout(self) -> float:
        """Seconds ``wait_for`` waits when called without ``timeout``."""
        return self._default_timeout

    @default_timeout.setter
    def default_timeout(self, value: float) -> None:
        self._default_timeout = _check_timeout(value, "default_timeout")

    # -- list protocol ---------------------------------------------------------------------

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    @overload
    def __getitem__(self, index: int) -> _T: ...

    @overload
    def __getitem__(self, index: slice) -> list[_T]: ...

    def __getitem__(self, index: int | slice) -> _T | list[_T]:
        with self._lock:
            return self._items[index]

    def __iter__(self) -> Iterator[_T]:
        return iter(self._snapshot())

    def __bool__(self) -> bool:
        return len(self) > 0

    def __eq__(self, other: object) -> bool:
        # Comparing with a list lets `assert mailbox == []` read naturally.
        if isinstance(other, (list, tuple)):
            return self._snapshot() == list(other)
        return self is other

    def __hash__(self) -> int:
        return id(self)

    def __repr__(self) -> str:
        items = self._snapshot()
        shown = "; ".join(f"[{i}] {self._describe_item(x)}" for i, x in enumerate(items[:5]))
        more = f"; … {len(items) - 5} more" if len(items) > 5 else ""
        noun = self._noun if len(items) == 1 else self._nouns
        body = f": {shown}{more}" if items else ""
        return f"<{type(self).__name__} {len(items)} {noun}{body}>"

    def _snapshot(self) -> list[_T]:
        with self._lock:
            return list(self._items)

    @staticmethod
    def _describe_item(item: _T) -> str:
        describe = getattr(item, "describe", None)
        return str(describe()) if callable(describe) else repr(item)

    def _describe_all(self, items: list[_T], match: Filter[_T] | None = None) -> str:
        """Every item, one line each; with ``match``, why each one that fails it does not."""
        if not items:
            return f"no {self._nouns} captured"
        noun = self._noun if len(items) == 1 else self._nouns
        lines = [f"{len(items)} {noun} captured:"]
        for i, item in enumerate(items):
            lines.append(f"  [{i}] {self._describe_item(item)}")
            why = None if match is None else match.explain(item)
            if why is not None:
                lines.append(f"      no match: {why}")
        return "\n".join(lines)

    # -- engine side -----------------------------------------------------------------------

    def _append(self, item: _T) -> None:
        """Add ``item`` (engine side), wake every waiter, then call the listeners."""
        with self._lock:
            self._index[id(item)] = len(self._items)
            self._items.append(item)
            if self._scans or self._async_waiters:
                self._cond.notify_all()
                targets = self._wake_targets()
            else:
                targets = None
        if targets:
            self._wake(targets)
        self._listeners.emit(item)

    def _updated(self, item: _T) -> None:
        """Tell waiters that ``item``, already in the log, changed (e.g. it finished)."""
        with self._lock:
            if not self._scans:
                return
            index = self._index.get(id(item))
            if index is None or index >= len(self._items) or self._items[index] is not item:
                return
            self._changes.append(index)
            self._cond.notify_all()
            targets = self._wake_targets()
        self._wake(targets)

    def _wake_targets(self) -> list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]]:
        return [(w.loop, w.future) for w in self._async_waiters if w.future is not None]

    @staticmethod
    def _wake(targets: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]]) -> None:
        for loop, future in targets:
            try:
                loop.call_soon_threadsafe(_resolve, future)
            except RuntimeError:
                pass  # that loop is closed: its waiter is gone with it

    def clear(self) -> None:
        """Forget every item (and :attr:`listener_errors`); waiters start counting afresh."""
        with self._lock:
            self._items.clear()
            self._index.clear()
            self._changes.clear()
            self._generation += 1
            self.listener_errors.clear()
            self._cond.notify_all()

    def add_listener(self, fn: Callable[[_T], None]) -> Callable[[], None]:
        """Call ``fn(item)`` after each append, in the appending thread; returns a remover.

        A listener that raises does not disturb the others: its traceback is kept in
        :attr:`listener_errors`.
        """
        return self._listeners.add(fn, "add_listener")

    # -- waiting ---------------------------------------------------------------------------

    def _take(self, scan: _Scan[_T]) -> tuple[list[tuple[int, _T]], list[tuple[int, _T]]]:
        """Under the lock: what ``scan`` has not looked at yet (new items, changed items)."""
        if scan.generation != self._generation:
            scan.generation = self._generation
            scan.position = 0
            scan.changes_seen = 0
            scan.matched = {}
        start = scan.position
        new = list(enumerate(self._items[start:], start))
        scan.position = len(self._items)
        changed_at = sorted({i for i in self._changes[scan.changes_seen :] if i < start})
        scan.changes_seen = len(self._changes)
        return new, [(i, self._items[i]) for i in changed_at]

    def _has_news(self, scan: _Scan[_T]) -> bool:
        return (
            scan.generation != self._generation
            or scan.position < len(self._items)
            or scan.changes_seen < len(self._changes)
        )

    @staticmethod
    def _evaluate(
        scan: _Scan[_T],
        new: list[tuple[int, _T]],
        changed: list[tuple[int, _T]],
        match: Filter[_T],
        count: int,
    ) -> list[_T] | None:
        for index, item in changed:
            if match.matches(item):
                scan.matched[index] = item
            else:
                scan.matched.pop(index, None)
        for index, item in new:
            if match.matches(item):
                scan.matched[index] = item
        if len(scan.matched) >= count:
            return [scan.matched[i] for i in sorted(scan.matched)]
        return None

    def _wait(self, count: int, timeout: float | None, match: Filter[_T]) -> list[_T]:
        count = _check_count(count)
        seconds = self.default_timeout if timeout is None else _check_timeout(timeout)
        engine = _engine_module._engine
        if engine is not None and engine.in_loop():
            raise RuntimeError(
                "wait_for() blocks and would deadlock on the engine's own loop; use "
                "`await ....wait_for_async(...)` there"
            )
        deadline = time.monotonic() + seconds
        scan: _Scan[_T] = _Scan()
        with self._lock:
            self._scans += 1
        try:
            while True:
                with self._lock:
                    if not self._has_news(scan):
                        remaining = deadline - time.monotonic()
                        if remaining <= 0:
                            break
                        self._cond.wait(remaining)
                    new, changed = self._take(scan)
                found = self._evaluate(scan, new, changed, match, count)
                if found is not None:
                    return found
        finally:
            with self._lock:
                self._scans -= 1
        raise self._timeout_error(count, seconds, match, len(scan.matched))

    async def _wait_async(self, count: int, timeout: float | None, match: Filter[_T]) -> list[_T]:
        count = _check_count(count)
        seconds = self.default_timeout if timeout is None else _check_timeout(timeout)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        waiter = _AsyncWaiter(loop)
        scan: _Scan[_T] = _Scan()
        future: asyncio.Future[None] | None = None
        with self._lock:
            self._scans += 1
        try:
            while True:
                with self._lock:
                    news = self._has_news(scan)
                    new, changed = self._take(scan)
                    if not news:
                        # Registered under the lock, so no append can slip in unseen.
                        future = waiter.future = loop.create_future()
                        self._async_waiters.add(waiter)
                if news:
                    found = self._evaluate(scan, new, changed, match, count)
                    if found is not None:
                        return found
                    continue
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                assert future is not None
                await asyncio.wait((future,), timeout=remaining)
        finally:
            with self._lock:
                self._scans -= 1
                self._async_waiters.discard(waiter)
            if future is not None and not future.done() and not loop.is_closed():
                future.cancel()
        raise self._timeout_error(count, seconds, match, len(scan.matched))

    def _timeout_error(
        self, count: int, seconds: float, match: Filter[_T], matched: int
    ) -> Exception:
        noun = self._noun if count == 1 else self._nouns
        return MailboxTimeout(
            f"timed out after {seconds:g} s waiting for {count} {noun} matching {match}; "
            f"{matched} matched.\n{self._describe_all(self._snapshot(), match)}"
        )

    def _filter(self, match: Filter[_T]) -> list[_T]:
        return [item for item in self._snapshot() if match.matches(item)]

    def _one(self, match: Filter[_T]) -> _T:
        matches = self._filter(match)
        if len(matches) == 1:
            return matches[0]
        items = self._snapshot()
        which = ""
        if matches:
            positions = [i for i, item in enumerate(items) if any(item is m for m in matches)]
            which = " (at " + ", ".join(f"[{i}]" for i in positions) + ")"
        raise MailboxError(
            f"expected exactly one {self._noun} matching {match}, found {len(matches)}"
            f"{which}.\n{self._describe_all(items, match)}"
        )


def _check_count(count: int) -> int:
    if isinstance(count, bool) or not isinstance(count, int):
        raise TypeError(f"count must be an int >= 1, got {count!r}")
    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    return count


def _check_timeout(value: float, name: str = "timeout") -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number of seconds, got {value!r}")
    if not 0 <= value < float("inf"):
        raise ValueError(f"{name} must be a finite number of seconds >= 0, got {value!r}")
    return float(value)
