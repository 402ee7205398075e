"""The mail model: replies, sessions, transactions, messages and the logs that hold them.

The SMTP server builds these objects on the engine's thread; tests read them from their own
thread (or event loop). :class:`Mailbox` and :class:`TransactionLog` are thread-safe, and their
``wait_for`` methods are event-driven: an append wakes the waiters, nothing polls.

:class:`Message` keeps the bytes exactly as received and parses them lazily with
``email.policy.default`` through :func:`pytest_smtp.parsing.parse_message`, which caps the size
and the cost of what reaches the stdlib's super-linear header parser (see
:data:`MAX_HEADER_SECTION`, :data:`MAX_FIELD`, :data:`MAX_STRUCTURED_FIELD`); each cut is
recorded in :attr:`Message.parse_defects`.

This module never imports pytest.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Mapping
from collections.abc import Sequence as SequenceABC
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.generator import BytesGenerator
from email.message import EmailMessage
from io import BytesIO
from typing import Any, Generic, Literal, TypeAlias, TypeVar, get_args, overload

from pytest_smtp import engine as _engine_module
from pytest_smtp.parsing import (
    MAX_FIELD,
    MAX_HEADER_SECTION,
    MAX_STRUCTURED_FIELD,
    SERIALIZE_POLICY,
    parse_message,
)

__all__ = [
    "MAX_FIELD",
    "MAX_HEADER_SECTION",
    "MAX_STRUCTURED_FIELD",
    "OUTCOMES",
    "STAGES",
    "Attachment",
    "Envelope",
    "HeaderView",
    "Mailbox",
    "MailboxError",
    "MailboxTimeout",
    "Message",
    "Outcome",
    "RecipientResult",
    "Reply",
    "ReplyKind",
    "SessionInfo",
    "Stage",
    "Transaction",
    "TransactionLog",
]

#: How a transaction ended.
Outcome = Literal["accepted", "rejected", "deferred", "dropped", "aborted"]
#: Where in the SMTP dialogue a transaction was decided.
Stage = Literal["connect", "ehlo", "starttls", "auth", "mail", "rcpt", "data", "eod", "quit"]
#: Every valid :data:`Outcome`, in order.
OUTCOMES: tuple[str, ...] = get_args(Outcome)
#: Every valid :data:`Stage`, in dialogue order.
STAGES: tuple[str, ...] = get_args(Stage)

_T = TypeVar("_T")
_TextMatch: TypeAlias = "str | re.Pattern[str]"


class MailboxError(AssertionError, LookupError):
    """A lookup in a :class:`Mailbox` or :class:`TransactionLog` found the wrong number of items.

    An :class:`AssertionError`, so pytest reports it as a test failure; also a
    :class:`LookupError`. The text lists the filters and everything that was captured.
    """


class MailboxTimeout(MailboxError, TimeoutError):
    """``wait_for`` gave up: fewer items than asked for matched within the timeout."""


# --------------------------------------------------------------------------------------------
# Replies, sessions, recipients

_ENHANCED_RE = re.compile(r"[245]\.\d{1,3}\.\d{1,3}")
_ENHANCED_PREFIX_RE = re.compile(r"([245]\.\d{1,3}\.\d{1,3})(?: |$)")
_REPLY_LINE_RE = re.compile(r"(\d{3})(?:([ -])(.*))?")
_CRLF_RE = re.compile(r"\r\n|\r|\n")
ReplyKind = Literal["positive", "intermediate", "transient", "permanent"]


@dataclass(frozen=True)
class Reply:
    """One SMTP reply: ``code``, optional RFC 3463 ``enhanced`` status, human ``text``.

    ``text`` carries neither the code nor the enhanced status; the lines of a multiline reply
    are joined with ``"\\n"``. ``str(reply)`` is the first line as sent, e.g.
    ``"550 5.1.1 No such user"``.
    """

    code: int
    text: str = ""
    enhanced: str | None = None

    def __post_init__(self) -> None:
        code = self.code
        if isinstance(code, bool) or not isinstance(code, int):
            raise TypeError(f"Reply code must be an int in the range 200..599, got {code!r}")
        if not 200 <= code <= 599:
            raise ValueError(f"Reply code must be in the range 200..599, got {code}")
        if not isinstance(self.text, str):
            raise TypeError(f"Reply text must be a str, got {type(self.text).__name__}")
        if "\r" in self.text or "\0" in self.text:
            raise ValueError(
                f"Reply text must not contain CR or NUL (separate lines with '\\n'): {self.text!r}"
            )
        enhanced = self.enhanced
        if enhanced is None:
            return
        if not isinstance(enhanced, str) or not _ENHANCED_RE.fullmatch(enhanced):
            raise ValueError(
                f"enhanced status must look like 'C.S.D' with class C in 2, 4, 5 and up to three "
                f"digits for S and D (e.g. '5.1.1'), got {enhanced!r}"
            )
        if int(enhanced[0]) != code // 100:
            raise ValueError(
                f"enhanced status {enhanced} is class {enhanced[0]} but reply code {code} is "
                f"class {code // 100}; they must agree (RFC 3463), e.g. {code} "
                f"{code // 100}{enhanced[1:]}"
            )

    def __str__(self) -> str:
        first = self.text.split("\n", 1)[0]
        return " ".join(part for part in (str(self.code), self.enhanced, first) if part)

    @property
    def kind(self) -> ReplyKind:
        """``positive`` (2xx), ``intermediate`` (3xx), ``transient`` (4xx), ``permanent`` (5xx)."""
        kinds: dict[int, ReplyKind] = {
            2: "positive",
            3: "intermediate",
            4: "transient",
            5: "permanent",
        }
        return kinds[self.code // 100]

    def wire_lines(self) -> list[str]:
        """The reply as sent, one string per line, without CRLF.

        ``Reply(550, "a\\nb", "5.1.1")`` gives ``["550-5.1.1 a", "550 5.1.1 b"]``.
        """
        lines = self.text.split("\n")
        out: list[str] = []
        for index, line in enumerate(lines):
            sep = " " if index == len(lines) - 1 else "-"
            rest = " ".join(part for part in (self.enhanced, line) if part)
            out.append(f"{self.code}{sep}{rest}" if rest or sep == "-" else str(self.code))
        return out

    @classmethod
    def parse(cls, line: str) -> Reply:
        """Parse a reply as sent: ``"250 OK"``, ``"550 5.1.1 No such user"``, or the lines of
        a multiline reply separated by line breaks (``"250-a\\r\\n250 b"``).

        Raises :class:`ValueError` naming the offending line when it is not an SMTP reply.
        """
        if not isinstance(line, str):
            raise TypeError(f"Reply.parse() takes a str, got {type(line).__name__}")
        lines = line.splitlines()
        if not lines:
            raise ValueError("not an SMTP reply: empty string (expected e.g. '250 OK')")
        code: int | None = None
        enhanced: str | None = None
        texts: list[str] = []
        for index, raw in enumerate(lines):
            match = _REPLY_LINE_RE.fullmatch(raw)
            if match is None:
                raise ValueError(
                    f"not an SMTP reply line: {raw!r} (expected 'NNN text', e.g. '250 OK' or "
                    f"'550 5.1.1 No such user')"
                )
            this_code = int(match[1])
            if code is None:
                code = this_code
            elif this_code != code:
                raise ValueError(
                    f"multiline reply mixes codes {code} and {this_code}: {line!r}; every line "
                    f"of one reply carries the same code"
                )
            rest = match[3] or ""
            status = _ENHANCED_PREFIX_RE.match(rest)
            if status is not None and (index == 0 or status[1] == enhanced):
                enhanced = status[1]
                rest = rest[status.end() :]
            texts.append(rest)
        assert code is not None
        return cls(code, "\n".join(texts), enhanced)


@dataclass
class SessionInfo:
    """One SMTP connection: who connected, what it said, and what it negotiated."""

    id: int
    peer: tuple[str, int]
    server_hostname: str
    helo: str | None = None
    esmtp: bool = False
    tls: bool = False
    tls_mode: str | None = None
    tls_version: str | None = None
    tls_cipher: str | None = None
    auth_mechanism: str | None = None
    auth_user: str | None = None


@dataclass
class RecipientResult:
    """One ``RCPT TO`` as tried: the address, its ESMTP parameters as sent, and the reply."""

    address: str
    options: list[str]
    reply: Reply
    source_route: str | None = None
    """The source route sent before the address (``@a,@b`` of ``<@a,@b:user@c>``; RFC 5321
    accepts and ignores it, a relay refuses it), else None."""

    @property
    def accepted(self) -> bool:
        """True when the server answered this recipient with a 2xx reply."""
        return 200 <= self.reply.code < 300


@dataclass(frozen=True)
class Envelope:
    """The SMTP envelope, as opposed to the headers: who the mail is *really* from and to.

    ``mail_from`` is ``""`` for the null sender; parameters are kept as sent
    (``"RET=HDRS"``, ``"NOTIFY=SUCCESS,FAILURE"``).
    """

    mail_from: str
    rcpt_tos: tuple[str, ...]
    mail_options: tuple[str, ...] = ()
    rcpt_options: tuple[tuple[str, tuple[str, ...]], ...] = ()

    def options_for(self, rcpt: str) -> tuple[str, ...]:
        """The RCPT parameters sent with ``rcpt`` (empty when none)."""
        return dict(self.rcpt_options).get(rcpt, ())


# --------------------------------------------------------------------------------------------
# Messages


@dataclass(frozen=True)
class Attachment:
    """One attached part: its filename (if any), content type, and decoded payload bytes."""

    filename: str | None
    content_type: str
    payload: bytes = field(repr=False)

    @property
    def size(self) -> int:
        """Length of the decoded payload in bytes."""
        return len(self.payload)

    def __repr__(self) -> str:
        return f"<Attachment {self.filename!r} {self.content_type} {self.size} bytes>"


class HeaderView:
    """A read-only, case-insensitive view of a message's top-level header fields.

    Values are decoded (RFC 2047) and unfolded. ``headers["Subject"]`` is the first value or
    ``None``; ``headers.get_all("Received")`` every value, top first.
    """

    def __init__(self, message: Message) -> None:
        self._message = message

    def __getitem__(self, name: str) -> str | None:
        return self.get(name)

    def get(self, name: str, default: str | None = None) -> str | None:
        """The first value of the field ``name`` (decoded), or ``default``."""
        values = self.get_all(name)
        return values[0] if values else default

    def get_all(self, name: str) -> list[str]:
        """Every value of the field ``name`` (decoded), in message order; ``[]`` if absent."""
        if not isinstance(name, str):
            raise TypeError(f"header names are str, got {type(name).__name__}")
        values = self._message.email.get_all(name)
        return [] if values is None else [str(value) for value in values]

    def keys(self) -> list[str]:
        """Field names in message order, as spelled in the message (repeats included)."""
        return list(self._message.email.keys())

    def items(self) -> list[tuple[str, str]]:
        """``(name, decoded value)`` for every field, in message order."""
        return [(name, str(value)) for name, value in self._message.email.items()]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self._message.email

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def __len__(self) -> int:
        return len(self._message.email)

    def __repr__(self) -> str:
        return f"<HeaderView {self.keys()!r}>"


def _short(value: object, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


class Message:
    """One delivery the server accepted (or dropped): envelope, session, and the raw bytes.

    ``raw`` holds the bytes exactly as received (after dot-unstuffing); ``email`` parses them
    on first use. The engine never changes a message after creating it.
    """

    def __init__(
        self,
        *,
        raw: bytes,
        mail_from: str,
        rcpt_tos: list[str],
        mail_options: list[str],
        rcpt_options: dict[str, list[str]],
        session: SessionInfo,
        server: str,
        received_at: datetime,
        transaction_id: int,
        defects: list[str] | None = None,
    ) -> None:
        if not isinstance(raw, bytes):
            raise TypeError(f"Message raw must be bytes, got {type(raw).__name__}")
        if received_at.tzinfo is None or received_at.utcoffset() is None:
            raise ValueError(
                f"Message received_at must be timezone-aware (UTC), got naive {received_at}"
            )
        #: The message bytes as received (after dot-unstuffing).
        self.raw = raw
        #: Envelope sender; ``""`` for the null sender.
        self.mail_from = mail_from
        #: Envelope recipients that were accepted, in order.
        self.rcpt_tos = list(rcpt_tos)
        #: ESMTP parameters of MAIL FROM, as sent.
        self.mail_options = list(mail_options)
        #: ESMTP parameters of each RCPT TO, as sent, by address.
        self.rcpt_options = {key: list(value) for key, value in rcpt_options.items()}
        #: The SMTP connection the message came over.
        self.session = session
        #: ``"host:port"`` of the server that received it.
        self.server = server
        #: When the final reply was decided, in UTC.
        self.received_at = received_at.astimezone(timezone.utc)
        #: Id of the :class:`Transaction` that delivered it.
        self.transaction_id = transaction_id
        #: Protocol-level defects seen by the server (e.g. "bare LF in DATA at line 3").
        self.defects = list(defects) if defects else []
        #: What the capped parser cut or could not parse (filled as parsing happens).
        self.parse_defects: list[str] = []
        self._email: EmailMessage | None = None
        self._lock = threading.Lock()
        self._cache: dict[str, Any] = {}

    @property
    def size(self) -> int:
        """Length of :attr:`raw` in bytes."""
        return len(self.raw)

    @property
    def envelope(self) -> Envelope:
        """The envelope this message was delivered with (an immutable :class:`Envelope`)."""
        return Envelope(
            self.mail_from,
            tuple(self.rcpt_tos),
            tuple(self.mail_options),
            tuple((r, tuple(o)) for r, o in self.rcpt_options.items()),
        )

    @property
    def email(self) -> EmailMessage:
        """The parsed message (``policy.default`` semantics; capped header parsing)."""
        parsed = self._email
        if parsed is None:
            with self._lock:
                parsed = self._email
                if parsed is None:
                    parsed = self._email = parse_message(self.raw, self.parse_defects)[0]
        return parsed

    @property
    def headers(self) -> HeaderView:
        """Read-only, case-insensitive view of the header fields, values decoded."""
        return HeaderView(self)

    def _cached(self, key: str, compute: Callable[[], _T]) -> _T:
        if key not in self._cache:
            self._cache[key] = compute()
        value: _T = self._cache[key]
        return value

    def _header_text(self, name: str) -> str | None:
        value = self.email.get(name)
        return None if value is None else str(value)

    def _addresses(self, name: str) -> list[str]:
        header = self.email.get(name)
        if header is None:
            return []
        try:
            return [address.addr_spec for address in getattr(header, "addresses", ())]
        except Exception as exc:
            self.parse_defects.append(
                f"addresses of header {name!r} could not be read ({type(exc).__name__})"
            )
            return []

    @property
    def subject(self) -> str | None:
        """The decoded ``Subject``, or ``None`` when there is none."""
        return self._cached("subject", lambda: self._header_text("Subject"))

    @property
    def from_(self) -> str | None:
        """The decoded ``From`` header as written (e.g. ``"Alice <a@example.org>"``)."""
        return self._cached("from", lambda: self._header_text("From"))

    @property
    def to(self) -> list[str]:
        """Addresses (addr-spec) of the first ``To`` header; may differ from :attr:`rcpt_tos`."""
        return list(self._cached("to", lambda: self._addresses("To")))

    @property
    def cc(self) -> list[str]:
        """Addresses (addr-spec) of the first ``Cc`` header."""
        return list(self._cached("cc", lambda: self._addresses("Cc")))

    @property
    def text(self) -> str | None:
        """The first ``text/plain`` part that is not an attachment, decoded, ``\\n`` line ends."""
        return self._cached("text", lambda: self._body("plain"))

    @property
    def html(self) -> str | None:
        """The first ``text/html`` part that is not an attachment, decoded, ``\\n`` line ends."""
        return self._cached("html", lambda: self._body("html"))

    @property
    def attachments(self) -> list[Attachment]:
        """Parts with ``Content-Disposition: attachment`` or a filename, and attached
        messages (``message/*``), payloads decoded. Computed on each access.
        """
        found: list[Attachment] = []
        for part in _leaf_parts(self.email):
            if _is_attachment(part):
                try:
                    found.append(
                        Attachment(part.get_filename(), part.get_content_type(), _payload(part))
                    )
                except Exception as exc:
                    self.parse_defects.append(
                        f"an attachment could not be decoded ({type(exc).__name__})"
                    )
        return found

    @property
    def received(self) -> list[str]:
        """The ``Received`` trace header values, top (newest) first."""
        return self.headers.get_all("Received")

    def as_eml(self) -> bytes:
        """The message bytes as received, ready to save as a ``.eml`` file."""
        return self.raw

    def _body(self, subtype: str) -> str | None:
        for part in _leaf_parts(self.email):
            if part.get_content_type() != f"text/{subtype}" or _is_attachment(part):
                continue
            try:
                content = part.get_content()
            except Exception as exc:
                self.parse_defects.append(
                    f"text/{subtype} part could not be decoded ({type(exc).__name__})"
                )
                payload = part.get_payload(decode=True)
                content = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""
            return _CRLF_RE.sub("\n", str(content))
        return None

    def _describe(self) -> str:
        try:
            subject: object = self.subject
        except Exception:
            subject = "<unparseable>"
        return (
            f"from={_short(self.mail_from)} to={_short(self.rcpt_tos)} "
            f"subject={_short(subject)} size={self.size}"
        )

    def __repr__(self) -> str:
        return f"<Message {self._describe()}>"


def _leaf_parts(root: EmailMessage) -> Iterator[EmailMessage]:
    # Explicit stack: crafted MIME nesting must not hit the recursion limit.
    stack: list[EmailMessage] = [root]
    while stack:
        part = stack.pop()
        if part.get_content_maintype() == "multipart" and part.is_multipart():
            children = [p for p in part.get_payload() if isinstance(p, EmailMessage)]
            stack.extend(reversed(children))
        else:
            yield part


def _is_attachment(part: EmailMessage) -> bool:
    return (
        part.get_content_disposition() == "attachment"
        or part.get_filename() is not None
        or part.get_content_maintype() == "message"
    )


def _payload(part: EmailMessage) -> bytes:
    payload = part.get_payload()
    if isinstance(payload, list):
        out = BytesIO()
        for sub in payload:
            if isinstance(sub, EmailMessage):
                generator = BytesGenerator(out, mangle_from_=False, policy=SERIALIZE_POLICY)
                generator.flatten(sub)
        return out.getvalue()
    decoded = part.get_payload(decode=True)
    return decoded if isinstance(decoded, bytes) else b""


# --------------------------------------------------------------------------------------------
# Transactions


class Transaction:
    """One ``MAIL FROM`` .. end attempt, whatever its end; mutable while in progress.

    ``outcome`` is ``None`` until :meth:`finish` is called.
    """

    def __init__(self, *, id: int, session: SessionInfo) -> None:
        #: Sequence number, unique per server.
        self.id = id
        #: The connection this transaction ran on.
        self.session = session
        #: Envelope sender as given (``""`` for the null sender), ``None`` before MAIL.
        self.mail_from: str | None = None
        #: ESMTP parameters of MAIL FROM, as sent.
        self.mail_options: list[str] = []
        #: Every RCPT tried, accepted or not, in order.
        self.recipients: list[RecipientResult] = []
        #: How it ended; ``None`` while in progress.
        self.outcome: Outcome | None = None
        #: The stage reached (or where it was decided).
        self.stage: Stage = "mail"
        #: The reply that decided the outcome.
        self.reply: Reply | None = None
        #: The message, for ``accepted`` and ``dropped`` transactions.
        self.message: Message | None = None
        #: ``"C: ..."`` / ``"S: ..."`` lines of this transaction's dialogue.
        self.transcript: list[str] = []
        #: When MAIL FROM arrived (UTC).
        self.started_at = datetime.now(timezone.utc)
        #: When :meth:`finish` was called (UTC).
        self.ended_at: datetime | None = None
        #: Traceback text when a handler or rule raised.
        self.error: str | None = None
        self._hooks: list[Callable[[Transaction], None]] = []

    @property
    def rcpt_tos(self) -> list[str]:
        """Recipients that were accepted (2xx to RCPT), in order."""
        return [r.address for r in list(self.recipients) if r.accepted]

    @property
    def envelope(self) -> Envelope | None:
        """The envelope so far (accepted recipients only); ``None`` before a sender was taken."""
        if self.mail_from is None:
            return None
        accepted = [r for r in list(self.recipients) if r.accepted]
        return Envelope(
            self.mail_from,
            tuple(r.address for r in accepted),
            tuple(self.mail_options),
            tuple((r.address, tuple(r.options)) for r in accepted),
        )

    @property
    def refused(self) -> list[RecipientResult]:
        """Recipients that were refused (non-2xx to RCPT), in order."""
        return [r for r in list(self.recipients) if not r.accepted]

    @property
    def in_progress(self) -> bool:
        """True until :meth:`finish` has been called."""
        return self.outcome is None

    def finish(
        self,
        outcome: Outcome,
        stage: Stage,
        reply: Reply | None,
        message: Message | None = None,
        error: str | None = None,
    ) -> None:
        """Record how the transaction ended; wakes anyone waiting on its log."""
        if outcome not in OUTCOMES:
            raise ValueError(f"outcome {outcome!r} is not one of: {', '.join(OUTCOMES)}")
        if stage not in STAGES:
            raise ValueError(f"stage {stage!r} is not one of: {', '.join(STAGES)}")
        if self.outcome is not None:
            raise RuntimeError(
                f"transaction #{self.id} already finished as {self.outcome}; it cannot "
                f"finish again as {outcome}"
            )
        self.stage = stage
        self.reply = reply
        self.message = message
        self.error = error
        self.ended_at = datetime.now(timezone.utc)
        # Set last: readers on other threads test the outcome first.
        self.outcome = outcome
        for hook in list(self._hooks):
            hook(self)

    def _describe(self) -> str:
        state = self.outcome or "in progress"
        reply = f": {self.reply}" if self.reply is not None else ""
        tried = [
            r.address if r.accepted else f"{r.address} ({r.reply})" for r in list(self.recipients)
        ]
        return (
            f"#{self.id} {state} at {self.stage}{reply} from={_short(self.mail_from)} "
            f"to={_short(tried, 200)}"
        )

    def __repr__(self) -> str:
        return f"<Transaction {self._describe()}>"


# --------------------------------------------------------------------------------------------
# Logs with event-driven waiting


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
        self._cond = threading.Condition(threading.Lock())
        self._async_waiters: set[_AsyncWaiter] = set()
        self._listeners: tuple[Callable[[_T], None], ...] = ()
        #: Tracebacks of listeners that raised (see :meth:`add_listener`).
        self.listener_errors: list[str] = []

    @property
    def default_timeout(self) -> float:
        """Seconds ``wait_for`` waits when called without ``timeout``."""
        return self._default_timeout

    @default_timeout.setter
    def default_timeout(self, value: float) -> None:
        self._default_timeout = _check_timeout(value, "default_timeout")

    # -- list protocol ---------------------------------------------------------------------

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)

    @overload
    def __getitem__(self, index: int) -> _T: ...

    @overload
    def __getitem__(self, index: slice) -> list[_T]: ...

    def __getitem__(self, index: int | slice) -> _T | list[_T]:
        with self._cond:
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
        with self._cond:
            return list(self._items)

    @staticmethod
    def _describe_item(item: _T) -> str:
        describe = getattr(item, "_describe", None)
        return str(describe()) if callable(describe) else repr(item)

    def _describe_all(self, items: list[_T]) -> str:
        if not items:
            return f"no {self._nouns} captured"
        noun = self._noun if len(items) == 1 else self._nouns
        lines = [f"{len(items)} {noun} captured:"]
        lines.extend(f"  [{i}] {self._describe_item(x)}" for i, x in enumerate(items))
        return "\n".join(lines)

    # -- engine side -----------------------------------------------------------------------

    def _append(self, item: _T) -> None:
        """Add ``item`` (engine side), wake every waiter, then call the listeners."""
        with self._cond:
            self._index[id(item)] = len(self._items)
            self._items.append(item)
            self._cond.notify_all()
            targets = self._wake_targets()
            listeners = self._listeners
        self._wake(targets)
        for listener in listeners:
            try:
                listener(item)
            except Exception:
                self.listener_errors.append(traceback.format_exc())

    def _updated(self, item: _T) -> None:
        """Tell waiters that ``item``, already in the log, changed (e.g. it finished)."""
        with self._cond:
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
        with self._cond:
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
        if not callable(fn):
            raise TypeError(f"add_listener() takes a callable, got {type(fn).__name__}")
        with self._cond:
            self._listeners = (*self._listeners, fn)

        def remove() -> None:
            with self._cond:
                listeners = list(self._listeners)
                if fn in listeners:
                    listeners.remove(fn)
                self._listeners = tuple(listeners)

        return remove

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
        match: Callable[[_T], bool],
        count: int,
    ) -> list[_T] | None:
        for index, item in changed:
            if match(item):
                scan.matched[index] = item
            else:
                scan.matched.pop(index, None)
        for index, item in new:
            if match(item):
                scan.matched[index] = item
        if len(scan.matched) >= count:
            return [scan.matched[i] for i in sorted(scan.matched)]
        return None

    def _wait(
        self, count: int, timeout: float | None, match: Callable[[_T], bool], wanted: str
    ) -> list[_T]:
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
        while True:
            with self._cond:
                if not self._has_news(scan):
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._cond.wait(remaining)
                new, changed = self._take(scan)
            found = self._evaluate(scan, new, changed, match, count)
            if found is not None:
                return found
        raise self._timeout_error(count, seconds, wanted, len(scan.matched))

    async def _wait_async(
        self, count: int, timeout: float | None, match: Callable[[_T], bool], wanted: str
    ) -> list[_T]:
        count = _check_count(count)
        seconds = self.default_timeout if timeout is None else _check_timeout(timeout)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        waiter = _AsyncWaiter(loop)
        scan: _Scan[_T] = _Scan()
        future: asyncio.Future[None] | None = None
        try:
            while True:
                with self._cond:
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
            with self._cond:
                self._async_waiters.discard(waiter)
            if future is not None and not future.done() and not loop.is_closed():
                future.cancel()
        raise self._timeout_error(count, seconds, wanted, len(scan.matched))

    def _timeout_error(self, count: int, seconds: float, wanted: str, matched: int) -> Exception:
        noun = self._noun if count == 1 else self._nouns
        return MailboxTimeout(
            f"timed out after {seconds:g} s waiting for {count} {noun} matching {wanted}; "
            f"{matched} matched.\n{self._describe_all(self._snapshot())}"
        )

    def _one(self, matches: list[_T], wanted: str) -> _T:
        if len(matches) == 1:
            return matches[0]
        items = self._snapshot()
        which = ""
        if matches:
            positions = [i for i, item in enumerate(items) if any(item is m for m in matches)]
            which = " (at " + ", ".join(f"[{i}]" for i in positions) + ")"
        raise MailboxError(
            f"expected exactly one {self._noun} matching {wanted}, found {len(matches)}"
            f"{which}.\n{self._describe_all(items)}"
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


# --------------------------------------------------------------------------------------------
# Filters


def _describe_filters(pairs: list[tuple[str, object]]) -> str:
    parts: list[str] = []
    for name, value in pairs:
        if name == "predicate":
            shown = getattr(value, "__qualname__", type(value).__name__)
        else:
            shown = _short(value, 80)
        parts.append(f"{name}={shown}")
    return ", ".join(parts) if parts else "(no filters)"


def _check_str(name: str, value: object, hint: str = "") -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name}= takes a str, got {type(value).__name__} {value!r}{hint}")
    return value


def _text_matches(expected: _TextMatch, actual: str | None) -> bool:
    if actual is None:
        return False
    if isinstance(expected, re.Pattern):
        return expected.search(actual) is not None
    return actual == expected


def _check_text_match(name: str, value: object) -> _TextMatch:
    if isinstance(value, re.Pattern) and isinstance(value.pattern, str):
        return value
    if isinstance(value, str):
        return value
    raise TypeError(f"{name}= takes a str or a compiled str pattern, got {value!r}")


def _message_matcher(
    to: str | None,
    from_: str | None,
    subject: _TextMatch | None,
    contains: str | None,
    header: tuple[str, _TextMatch] | Mapping[str, _TextMatch] | None,
    predicate: Callable[[Message], bool] | None,
) -> tuple[Callable[[Message], bool], str]:
    checks: list[Callable[[Message], bool]] = []
    shown: list[tuple[str, object]] = []
    if to is not None:
        wanted_to = _check_str("to", to, " (one address; call again or use predicate= for more)")
        folded_to = wanted_to.casefold()
        checks.append(lambda m: any(r.casefold() == folded_to for r in m.rcpt_tos))
        shown.append(("to", to))
    if from_ is not None:
        wanted_from = _check_str("from_", from_)
        if wanted_from == "<>":
            raise ValueError("the null sender is written from_='' (not '<>')")
        folded_from = wanted_from.casefold()
        checks.append(lambda m: m.mail_from.casefold() == folded_from)
        shown.append(("from_", from_))
    if subject is not None:
        wanted_subject = _check_text_match("subject", subject)
        checks.append(lambda m: _text_matches(wanted_subject, m.subject))
        shown.append(("subject", subject))
    if contains is not None:
        needle = _check_str("contains", contains)
        checks.append(lambda m: needle in (m.text or "") or needle in (m.html or ""))
        shown.append(("contains", contains))
    if header is not None:
        wanted_headers = _check_header_filter(header)
        checks.append(
            lambda m: all(
                any(_text_matches(value, got) for got in m.headers.get_all(name))
                for name, value in wanted_headers
            )
        )
        shown.append(("header", header))
    if predicate is not None:
        if not callable(predicate):
            raise TypeError(f"predicate= takes a callable(Message) -> bool, got {predicate!r}")
        checks.append(predicate)
        shown.append(("predicate", predicate))
    return (lambda m: all(check(m) for check in checks)), _describe_filters(shown)


def _check_header_filter(header: object) -> list[tuple[str, _TextMatch]]:
    pairs: list[tuple[object, object]]
    if isinstance(header, tuple):
        if len(header) != 2:
            raise TypeError(
                f"header= takes a (name, value) tuple or a dict name -> value, got {header!r}"
            )
        pairs = [(header[0], header[1])]
    elif isinstance(header, Mapping):
        pairs = list(header.items())
    else:
        raise TypeError(
            f"header= takes a (name, value) tuple or a dict name -> value, got {header!r}"
        )
    return [(_check_str("header name", n), _check_text_match("header value", v)) for n, v in pairs]


def _transaction_matcher(
    outcome: str | None,
    stage: str | None,
    rcpt: str | None,
    from_: str | None,
    code: int | None,
    predicate: Callable[[Transaction], bool] | None,
) -> tuple[Callable[[Transaction], bool], str]:
    checks: list[Callable[[Transaction], bool]] = []
    shown: list[tuple[str, object]] = []
    if outcome is not None:
        wanted_outcome = _check_choice("outcome", outcome, OUTCOMES)
        checks.append(lambda t: t.outcome == wanted_outcome)
        shown.append(("outcome", outcome))
    if stage is not None:
        wanted_stage = _check_choice("stage", stage, STAGES)
        checks.append(lambda t: t.stage == wanted_stage)
        shown.append(("stage", stage))
    if rcpt is not None:
        folded_rcpt = _check_str("rcpt", rcpt).casefold()
        checks.append(lambda t: any(r.address.casefold() == folded_rcpt for r in t.recipients))
        shown.append(("rcpt", rcpt))
    if from_ is not None:
        wanted_from = _check_str("from_", from_)
        if wanted_from == "<>":
            raise ValueError("the null sender is written from_='' (not '<>')")
        folded_from = wanted_from.casefold()
        checks.append(lambda t: t.mail_from is not None and t.mail_from.casefold() == folded_from)
        shown.append(("from_", from_))
    if code is not None:
        wanted_code = _check_code(code)
        checks.append(
            lambda t: (
                (t.reply is not None and t.reply.code == wanted_code)
                or any(r.reply.code == wanted_code for r in t.recipients)
            )
        )
        shown.append(("code", code))
    if predicate is not None:
        if not callable(predicate):
            raise TypeError(f"predicate= takes a callable(Transaction) -> bool, got {predicate!r}")
        checks.append(predicate)
        shown.append(("predicate", predicate))
    return (lambda t: all(check(t) for check in checks)), _describe_filters(shown)


def _check_choice(name: str, value: object, valid: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in valid:
        raise ValueError(f"{name}={value!r} is not one of: {', '.join(valid)}")
    return value


def _check_code(code: object) -> int:
    if isinstance(code, bool) or not isinstance(code, int):
        raise TypeError(f"code= takes an int reply code such as 550, got {code!r}")
    return code


# --------------------------------------------------------------------------------------------
# The two logs


class Mailbox(_WaitableLog[Message]):
    """The capture log of one server: every accepted :class:`Message`, in arrival order.

    List-like (``len``, indexing, slicing, iteration over a snapshot); ``mailbox == []`` compares
    the captured messages with a list. Filters are keyword-only and combine with *and*:

    - ``to``: an exact envelope recipient (case-insensitive);
    - ``from_``: the exact envelope sender (case-insensitive; ``""`` is the null sender);
    - ``subject``: the exact decoded subject, or a compiled pattern searched in it;
    - ``contains``: a substring of the decoded text or HTML body;
    - ``header``: ``(name, value)`` or ``{name: value}``; exact decoded value or a pattern;
    - ``predicate``: ``callable(Message) -> bool``.
    """

    _noun = "message"
    _nouns = "messages"

    def filter(
        self,
        *,
        to: str | None = None,
        from_: str | None = None,
        subject: str | re.Pattern[str] | None = None,
        contains: str | None = None,
        header: tuple[str, str | re.Pattern[str]]
        | Mapping[str, str | re.Pattern[str]]
        | None = None,
        predicate: Callable[[Message], bool] | None = None,
    ) -> list[Message]:
        """The captured messages that match every given filter, in arrival order."""
        match, _ = _message_matcher(to, from_, subject, contains, header, predicate)
        return [m for m in self._snapshot() if match(m)]

    def one(
        self,
        *,
        to: str | None = None,
        from_: str | None = None,
        subject: str | re.Pattern[str] | None = None,
        contains: str | None = None,
        header: tuple[str, str | re.Pattern[str]]
        | Mapping[str, str | re.Pattern[str]]
        | None = None,
        predicate: Callable[[Message], bool] | None = None,
    ) -> Message:
        """The only message matching the filters; :class:`MailboxError` on zero or several."""
        match, wanted = _message_matcher(to, from_, subject, contains, header, predicate)
        return self._one([m for m in self._snapshot() if match(m)], wanted)

    def wait_for(
        self,
        count: int = 1,
        timeout: float | None = None,
        *,
        to: str | None = None,
        from_: str | None = None,
        subject: str | re.Pattern[str] | None = None,
        contains: str | None = None,
        header: tuple[str, str | re.Pattern[str]]
        | Mapping[str, str | re.Pattern[str]]
        | None = None,
        predicate: Callable[[Message], bool] | None = None,
    ) -> list[Message]:
        """Block until at least ``count`` messages match; return all matches so far.

        Woken by each append, never polls. ``timeout`` defaults to :attr:`default_timeout`;
        on expiry raises :class:`MailboxTimeout` listing what did arrive.
        """
        match, wanted = _message_matcher(to, from_, subject, contains, header, predicate)
        return self._wait(count, timeout, match, wanted)

    async def wait_for_async(
        self,
        count: int = 1,
        timeout: float | None = None,
        *,
        to: str | None = None,
        from_: str | None = None,
        subject: str | re.Pattern[str] | None = None,
        contains: str | None = None,
        header: tuple[str, str | re.Pattern[str]]
        | Mapping[str, str | re.Pattern[str]]
        | None = None,
        predicate: Callable[[Message], bool] | None = None,
    ) -> list[Message]:
        """:meth:`wait_for` for coroutines, on any event loop; never blocks that loop."""
        match, wanted = _message_matcher(to, from_, subject, contains, header, predicate)
        return await self._wait_async(count, timeout, match, wanted)


class TransactionLog(_WaitableLog[Transaction]):
    """Every :class:`Transaction` of one server, accepted or not, in start order.

    Filters: ``outcome`` (one of :data:`OUTCOMES`), ``stage`` (one of :data:`STAGES`),
    ``rcpt`` (any recipient tried, accepted or not), ``from_``, ``code`` (the deciding reply
    or any recipient's reply), ``predicate``.
    """

    _noun = "transaction"
    _nouns = "transactions"

    def _append(self, item: Transaction) -> None:
        item._hooks.append(self._updated)
        super()._append(item)

    def filter(
        self,
        *,
        outcome: Outcome | None = None,
        stage: Stage | None = None,
        rcpt: str | None = None,
        from_: str | None = None,
        code: int | None = None,
        predicate: Callable[[Transaction], bool] | None = None,
    ) -> list[Transaction]:
        """The transactions that match every given filter, in order."""
        match, _ = _transaction_matcher(outcome, stage, rcpt, from_, code, predicate)
        return [t for t in self._snapshot() if match(t)]

    def one(
        self,
        *,
        outcome: Outcome | None = None,
        stage: Stage | None = None,
        rcpt: str | None = None,
        from_: str | None = None,
        code: int | None = None,
        predicate: Callable[[Transaction], bool] | None = None,
    ) -> Transaction:
        """The only transaction matching the filters; :class:`MailboxError` otherwise."""
        match, wanted = _transaction_matcher(outcome, stage, rcpt, from_, code, predicate)
        return self._one([t for t in self._snapshot() if match(t)], wanted)

    def wait_for(
        self,
        count: int = 1,
        timeout: float | None = None,
        *,
        outcome: Outcome | None = None,
        stage: Stage | None = None,
        rcpt: str | None = None,
        from_: str | None = None,
        code: int | None = None,
        predicate: Callable[[Transaction], bool] | None = None,
    ) -> list[Transaction]:
        """Block until at least ``count`` transactions match (woken by appends and by
        :meth:`Transaction.finish`); raises :class:`MailboxTimeout` listing what happened.
        """
        match, wanted = _transaction_matcher(outcome, stage, rcpt, from_, code, predicate)
        return self._wait(count, timeout, match, wanted)

    async def wait_for_async(
        self,
        count: int = 1,
        timeout: float | None = None,
        *,
        outcome: Outcome | None = None,
        stage: Stage | None = None,
        rcpt: str | None = None,
        from_: str | None = None,
        code: int | None = None,
        predicate: Callable[[Transaction], bool] | None = None,
    ) -> list[Transaction]:
        """:meth:`wait_for` for coroutines, on any event loop; never blocks that loop."""
        match, wanted = _transaction_matcher(outcome, stage, rcpt, from_, code, predicate)
        return await self._wait_async(count, timeout, match, wanted)
