"""The record of a mail network: what happened to each recipient of each message, hop by hop.

A :class:`Journey` follows one recipient of one message across every host; its
:class:`Event` list is what the relay assertions print. :class:`JourneyBook` is the network's
register of journeys: every journey in arrival order, the journeys each queue item carries, and
the journeys travelling on each open connection between two hosts (so the next host can tell
that an arriving message is one it already follows). This module runs nothing and never
imports pytest.
"""

from __future__ import annotations

import dataclasses
import threading
from datetime import datetime
from typing import Literal, TypeAlias

from ..mail import Message, Reply
from .dsn import DSNReport, parse_dsn
from .queue import VirtualClock

__all__ = [
    "STATUSES",
    "Event",
    "Journey",
    "JourneyBook",
    "Link",
    "LinkKey",
    "Status",
    "format_offset",
]

Status = Literal["queued", "deferred", "delivered", "bounced", "dropped"]
STATUSES: tuple[Status, ...] = ("queued", "deferred", "delivered", "bounced", "dropped")

LinkKey: TypeAlias = tuple[str, int, str, int]
"""One connection between two hosts: ``(server ip, server port, client ip, client port)``."""
Link: TypeAlias = tuple[str, dict[str, "Journey"]]
"""What a connection carries: the sending host's name and its journeys by lower-case
recipient."""


def format_offset(seconds: float) -> str:
    """A virtual-clock offset for people: ``+30s``, ``+5min``, ``+1.5h``, ``+5d``."""
    if seconds < 60:
        return f"+{seconds:g}s"
    if seconds < 3600:
        return f"+{seconds / 60:g}min"
    if seconds < 86400:
        return f"+{seconds / 3600:.4g}h"
    return f"+{seconds / 86400:.4g}d"


@dataclasses.dataclass(frozen=True)
class Event:
    """One step of a recipient's journey."""

    at: float
    """Virtual seconds since the network's clock started."""
    host: str
    kind: str
    """``accepted``, ``queued``, ``relayed``, ``deferred``, ``delivered``, ``bounced``,
    ``dropped`` or ``dsn``."""
    detail: str = ""

    def __str__(self) -> str:
        text = f"{format_offset(self.at):>9} {self.host}: {self.kind}"
        return f"{text}: {self.detail}" if self.detail else text


class Journey:
    """What happened to one recipient of one message, across every hop.

    ``status`` is ``queued`` (waiting for a run), ``deferred`` (will be retried at
    ``next_attempt``), ``delivered`` (into the mailbox at ``host``), ``bounced`` (``status_code``,
    ``diagnostic``, and the DSN sent back, if any) or ``dropped`` (``host`` accepted it and threw
    it away).
    """

    def __init__(
        self,
        recipient: str,
        mail_from: str,
        clock: VirtualClock,
        *,
        subject: str | None = None,
        message_id: str | None = None,
    ) -> None:
        self.recipient = recipient
        """The envelope recipient, as accepted by the first hop."""
        self.mail_from = mail_from
        """The envelope sender (``""`` for a DSN)."""
        self._subject = subject
        self._message_id = message_id
        self._headers_from: Message | None = None
        self.generated = False
        """True for a DSN made by a host of the network (not mail from outside)."""
        self.status: Status = "queued"
        self.hops: list[str] = []
        """Names of the hosts that accepted the message, in order."""
        self.events: list[Event] = []
        self.host: str | None = None
        """Where the recipient's copy is now, or was delivered, bounced or dropped."""
        self.message: Message | None = None
        """The message as captured by the final host (delivered), else None."""
        self.reply: Reply | None = None
        """The last reply of a remote host about this recipient."""
        self.status_code: str | None = None
        """Enhanced status of the last failure (``5.1.1``), or ``2.0.0`` when delivered."""
        self.diagnostic: str | None = None
        self.next_attempt: datetime | None = None
        self.dsn_raw: bytes | None = None
        """The DSN generated about this recipient (failure, delay, success or relayed)."""
        self.dsn_journeys: list[Journey] = []
        """The journeys of those DSNs back to the sender."""
        self._arrivals: set[LinkKey] = set()
        """The connections (:data:`LinkKey`) this recipient's copy arrived over."""
        self._clock = clock

    def _load_headers(self) -> None:
        # Parsing headers costs more than the rest of an arrival, and most journeys are never
        # read: take Subject and Message-ID from the first hop's copy on first use only.
        message = self._headers_from
        if message is not None:
            # Cleared last: a reader on another thread never sees the headers half-loaded.
            self._subject = _safe_subject(message)
            self._message_id = _safe_header(message, "Message-ID")
            self._headers_from = None

    @property
    def subject(self) -> str | None:
        """The message's ``Subject:`` as the first hop received it (None when absent)."""
        self._load_headers()
        return self._subject

    @property
    def message_id(self) -> str | None:
        """The message's ``Message-ID:`` as the first hop received it (None when absent)."""
        self._load_headers()
        return self._message_id

    @property
    def delivered(self) -> bool:
        """True when the recipient's copy reached a mailbox."""
        return self.status == "delivered"

    @property
    def dsn(self) -> Message | None:
        """The last DSN about this recipient as it arrived in the sender's mailbox, if it did."""
        for journey in reversed(self.dsn_journeys):
            if journey.message is not None:
                return journey.message
        return None

    @property
    def report(self) -> DSNReport | None:
        """The last DSN generated about this recipient, parsed (None when there was none)."""
        return parse_dsn(self.dsn_raw) if self.dsn_raw is not None else None

    def _event(self, host: str, kind: str, detail: str = "") -> None:
        self.events.append(Event(self._clock.time(), host, kind, detail))

    def describe(self) -> str:
        """Several lines: a summary, then each event hop by hop."""
        head = f"<{self.recipient}> from <{self.mail_from}>"
        if self.subject is not None:
            head += f" subject={self.subject!r}"
        head += f": {self.status}"
        if self.host:
            head += f" at {self.host}"
        if self.status_code and self.status != "delivered":
            head += f" ({self.status_code}"
            head += f" {self.diagnostic})" if self.diagnostic else ")"
        if self.status == "deferred" and self.next_attempt is not None:
            head += f", next attempt {self.next_attempt.isoformat()}"
        head += f"; via {' -> '.join(self.hops) or '(nowhere)'}"
        return "\n".join([head, *(f"    {event}" for event in self.events)])

    def __repr__(self) -> str:
        return f"<Journey {self.describe().splitlines()[0]}>"


def _safe_subject(message: Message) -> str | None:
    try:
        return message.subject
    except Exception:
        return None


def _safe_header(message: Message, name: str) -> str | None:
    try:
        return message.headers.get(name)
    except Exception:
        return None


class JourneyBook:
    """Every journey of one network, with the two indexes its hosts keep up to date.

    Thread-safe: the MTAs write on the engine's loop, tests read from their own thread.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._journeys: list[Journey] = []
        self._items: dict[str, dict[str, Journey]] = {}
        self._links: dict[LinkKey, Link] = {}

    def add(self, journey: Journey) -> None:
        """Register a new journey (mail from outside the network, or a generated DSN)."""
        with self._lock:
            self._journeys.append(journey)

    def all(self) -> list[Journey]:
        """A copy of every journey, in the order they began."""
        with self._lock:
            return list(self._journeys)

    def track(self, item_id: str, journeys: dict[str, Journey]) -> None:
        """Remember the journeys (by lower-case recipient) queue item ``item_id`` carries."""
        with self._lock:
            self._items[item_id] = journeys

    def of_item(self, item_id: str) -> dict[str, Journey]:
        """The journeys queue item ``item_id`` carries (empty when none is known)."""
        with self._lock:
            return self._items.get(item_id, {})

    def forget(self, item_id: str) -> None:
        """The item left its queue: drop its index entry."""
        with self._lock:
            self._items.pop(item_id, None)

    def link(self, key: LinkKey, link: Link) -> None:
        """A host opened connection ``key`` to hand on the journeys of ``link``."""
        with self._lock:
            self._links[key] = link

    def unlink(self, key: LinkKey, link: Link) -> None:
        """Forget ``key`` if it still carries ``link`` (not another item's, after a reuse)."""
        with self._lock:
            if self._links.get(key) is link:
                del self._links[key]

    def claim(self, key: LinkKey) -> Link | None:
        """The link a message arriving over connection ``key`` belongs to, taken out."""
        with self._lock:
            return self._links.pop(key, None)
