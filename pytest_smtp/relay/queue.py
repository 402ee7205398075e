"""The store-and-forward queue of one relay host, on a virtual clock.

Nothing here waits in real time: a retry is "due" when the network's :class:`VirtualClock`
says so, and the clock only moves when a test calls ``network.advance(...)``. The defaults
follow Postfix: first retry after 300 s (``minimal_backoff_time``), the delay doubling up to
4000 s (``maximal_backoff_time``), and a message that is still undeliverable 5 days after it
entered the queue (``maximal_queue_lifetime``) is bounced.
"""

from __future__ import annotations

import dataclasses
import heapq
import itertools
import threading
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta, timezone

__all__ = [
    "DeliveryQueue",
    "QueueItem",
    "QueuedRecipient",
    "RetryPolicy",
    "VirtualClock",
    "seconds",
]


def seconds(value: float | int | timedelta, name: str = "duration") -> float:
    """``value`` in seconds: a number of seconds or a ``timedelta``; negative is an error."""
    if isinstance(value, timedelta):
        result = value.total_seconds()
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        result = float(value)
    else:
        raise TypeError(
            f"{name} must be a number of seconds or a datetime.timedelta, not {value!r}"
        )
    if result < 0:
        raise ValueError(f"{name} must not be negative, got {value!r}")
    return result


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    """When a deferred message is retried, and when the relay gives up on it.

    ``first_retry``: delay after the first failed attempt (Postfix ``minimal_backoff_time``,
    300 s). Each further failure doubles the delay, capped at ``max_backoff`` (Postfix
    ``maximal_backoff_time``, 4000 s). A failure at or after ``lifetime`` seconds in the queue
    (Postfix ``maximal_queue_lifetime``, 5 days) bounces the message, with the status and
    diagnostic of that last failure (as Postfix does; RFC 3463 §3.5).
    ``delay_warning``: after this long in the queue, senders who asked for it (``NOTIFY``
    containing ``DELAY``, or no ``NOTIFY``) get a "delayed" DSN once; None (Postfix's default
    ``delay_warning_time = 0``) sends none. All accept seconds or a ``timedelta``.
    """

    first_retry: float = 300.0
    max_backoff: float = 4000.0
    lifetime: float = 5 * 86400.0
    delay_warning: float | None = None

    def __post_init__(self) -> None:
        for name in ("first_retry", "max_backoff", "lifetime"):
            value = seconds(getattr(self, name), name)
            object.__setattr__(self, name, value)
        if self.first_retry <= 0:
            raise ValueError(f"first_retry must be more than 0 seconds, got {self.first_retry}")
        if self.max_backoff < self.first_retry:
            raise ValueError(
                f"max_backoff ({self.max_backoff} s) must be at least first_retry "
                f"({self.first_retry} s)"
            )
        if self.delay_warning is not None:
            object.__setattr__(self, "delay_warning", seconds(self.delay_warning, "delay_warning"))

    def backoff(self, attempts: int) -> float:
        """Seconds to wait after the ``attempts``-th failed attempt (1-based)."""
        if attempts < 1:
            raise ValueError(f"attempts counts from 1, got {attempts}")
        delay: float = self.first_retry * 2.0 ** min(attempts - 1, 60)
        return min(delay, self.max_backoff)

    def schedule(self, count: int) -> list[float]:
        """The first ``count`` retry times, in seconds after the first attempt (for docs and
        tests): ``[300, 900, 2100, 4500, 8500, ...]`` with the defaults."""
        times, now = [], 0.0
        for attempt in range(1, count + 1):
            now += self.backoff(attempt)
            times.append(now)
        return times


class VirtualClock:
    """The network's clock: a start time plus virtual seconds that only tests advance."""

    def __init__(self, start: datetime | None = None) -> None:
        if start is None:
            start = datetime.now(timezone.utc).replace(microsecond=0)
        if start.tzinfo is None:
            raise ValueError(f"the clock's start must be timezone-aware, got naive {start}")
        self.start = start.astimezone(timezone.utc)
        """The wall-clock time at virtual second 0."""
        self._offset = 0.0
        self._lock = threading.Lock()

    def time(self) -> float:
        """Virtual seconds since :attr:`start`."""
        with self._lock:
            return self._offset

    def now(self) -> datetime:
        """The current virtual time as an aware UTC datetime."""
        return self.at(self.time())

    def at(self, offset: float) -> datetime:
        """The datetime of virtual second ``offset``."""
        return self.start + timedelta(seconds=offset)

    def set(self, offset: float) -> None:
        """Move the clock to ``offset`` (never backwards)."""
        with self._lock:
            if offset < self._offset:
                raise ValueError(f"the clock cannot go back from {self._offset} to {offset}")
            self._offset = offset

    def __repr__(self) -> str:
        return f"<VirtualClock +{self.time():g}s ({self.now().isoformat()})>"


@dataclasses.dataclass
class QueuedRecipient:
    """One recipient of a queued message, with its DSN parameters (RFC 3461)."""

    address: str
    notify: frozenset[str] | None = None
    """``NOTIFY`` values (``SUCCESS``, ``FAILURE``, ``DELAY``, ``NEVER``); None when absent."""
    orcpt: str | None = None
    """``ORCPT`` as sent (``rfc822;user@example.test``, xtext-encoded)."""
    last_error: str | None = None
    """The last transient failure, for ``Diagnostic-Code`` and the journey."""
    last_status: str | None = None
    remote_mta: str | None = None

    def options(self) -> list[str]:
        """The RCPT parameters to pass to a next hop that advertises DSN."""
        opts = []
        if self.notify is not None:
            opts.append("NOTIFY=" + ",".join(sorted(self.notify)))
        if self.orcpt is not None:
            opts.append(f"ORCPT={self.orcpt}")
        return opts

    def wants(self, kind: str) -> bool:
        """Whether the sender asked for a DSN of ``kind`` (``SUCCESS``/``FAILURE``/``DELAY``);
        no ``NOTIFY`` means ``FAILURE,DELAY`` (RFC 3461 §4.1)."""
        if self.notify is None:
            return kind in ("FAILURE", "DELAY")
        return kind in self.notify


_ids = itertools.count(1)


@dataclasses.dataclass
class QueueItem:
    """A message waiting at one host for delivery to one destination (a domain or smarthost).

    ``raw`` already carries this host's ``Received:`` header and CRLF line endings.
    """

    host: str
    destination: str
    mail_from: str
    raw: bytes
    recipients: list[QueuedRecipient]
    arrived: float
    """Virtual second the item entered this host's queue (the lifetime counts from here)."""
    ret: str | None = None
    envid: str | None = None
    smtputf8: bool = False
    eight_bit: bool = False
    id: str = dataclasses.field(default_factory=lambda: f"Q{next(_ids):06X}")
    attempts: int = 0
    next_attempt: float = 0.0
    delay_warned: bool = False
    in_flight: bool = False

    def needs_smtputf8(self, recipients: Iterable[QueuedRecipient] | None = None) -> bool:
        """Whether a next hop must offer SMTPUTF8 to take this message: UTF-8 in the sender,
        in ``recipients`` (default: every recipient) or in the header section (RFC 6531
        §3.4). An 8-bit body alone needs only 8BITMIME."""
        if not self.mail_from.isascii():
            return True
        if not all(
            r.address.isascii() for r in (self.recipients if recipients is None else recipients)
        ):
            return True
        end = self.raw.find(b"\r\n\r\n")
        return not self.raw[: len(self.raw) if end < 0 else end].isascii()

    @property
    def is_bounce(self) -> bool:
        """True for mail from the null sender (a DSN): it never causes another DSN."""
        return self.mail_from == ""


class DeliveryQueue:
    """The queue of one host: items by id, due when ``next_attempt <= now``.

    A delivery run takes the due items with :meth:`take` and gives each back with
    :meth:`release` when its attempt is over. A schedule (a heap by ``next_attempt``) makes
    taking the next due items cost ``O(log n)`` each, so a run over a queue of ``n`` messages
    is ``O(n log n)``, not a scan and sort of the whole queue at every completed attempt.
    """

    def __init__(self, host: str) -> None:
        self.host = host
        self._items: dict[str, QueueItem] = {}
        self._schedule: list[tuple[float, str]] = []
        self._scheduled: dict[str, float] = {}
        """The time of each item's live schedule entry (older entries are skipped)."""
        self._lock = threading.Lock()

    def _plan(self, item: QueueItem) -> None:
        # Under the lock: one live entry per item, at its current next_attempt.
        if self._scheduled.get(item.id) != item.next_attempt:
            self._scheduled[item.id] = item.next_attempt
            heapq.heappush(self._schedule, (item.next_attempt, item.id))

    def add(self, item: QueueItem) -> QueueItem:
        """Queue ``item`` (due at its ``next_attempt``)."""
        with self._lock:
            self._items[item.id] = item
            if not item.in_flight:
                self._plan(item)
        return item

    def remove(self, item: QueueItem) -> None:
        """Take ``item`` out of the queue (delivered or bounced)."""
        with self._lock:
            self._items.pop(item.id, None)
            self._scheduled.pop(item.id, None)

    def take(self, now: float, limit: int) -> list[QueueItem]:
        """Up to ``limit`` items due at ``now``, oldest first (as :meth:`due` orders them),
        marked in flight until :meth:`release`."""
        taken: list[QueueItem] = []
        with self._lock:
            while self._schedule and len(taken) < limit and self._schedule[0][0] <= now:
                when, item_id = heapq.heappop(self._schedule)
                item = self._items.get(item_id)
                if item is None or self._scheduled.get(item_id) != when:
                    continue  # removed, or an older entry of a rescheduled item
                del self._scheduled[item_id]
                if item.in_flight:
                    continue  # taken by hand; release() plans it again
                if item.next_attempt != when:
                    self._plan(item)  # next_attempt was changed in place: follow it
                    continue
                item.in_flight = True
                taken.append(item)
        return taken

    def release(self, item: QueueItem) -> None:
        """The attempt on ``item`` is over: if it is still queued, it is due again at its
        (new) ``next_attempt``."""
        with self._lock:
            item.in_flight = False
            if item.id in self._items:
                self._plan(item)

    def due(self, now: float) -> list[QueueItem]:
        """Items not in flight whose next attempt is due, oldest first (a scan of the whole
        queue: :meth:`take` is the fast way). An item whose ``next_attempt`` was moved in
        place is planned again at its new time, so :meth:`take` finds it too."""
        with self._lock:
            items = [i for i in self._items.values() if not i.in_flight and i.next_attempt <= now]
            for item in items:
                self._plan(item)
        return sorted(items, key=lambda i: (i.next_attempt, i.id))

    def next_due(self) -> float | None:
        """The earliest ``next_attempt`` of a waiting item, or None."""
        with self._lock:
            times = [i.next_attempt for i in self._items.values() if not i.in_flight]
        return min(times) if times else None

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def __iter__(self) -> Iterator[QueueItem]:
        with self._lock:
            return iter(list(self._items.values()))

    def clear(self) -> None:
        """Forget every item."""
        with self._lock:
            self._items.clear()
            self._schedule.clear()
            self._scheduled.clear()

    def __repr__(self) -> str:
        return f"<DeliveryQueue {self.host} items={len(self)}>"
