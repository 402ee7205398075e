"""The message: :class:`Message`, its :class:`HeaderView` and :class:`Attachment` parts.

:class:`Message` keeps the bytes exactly as received and parses them lazily with
``email.policy.default`` through :func:`pytest_smtp.parsing.parse_message`, which caps the size
and the cost of what reaches the stdlib's super-linear header parser (see
:data:`~pytest_smtp.parsing.MAX_HEADER_SECTION`, :data:`~pytest_smtp.parsing.MAX_FIELD`,
:data:`~pytest_smtp.parsing.MAX_STRUCTURED_FIELD`); each cut is recorded in
:attr:`Message.parse_defects`.

This module never imports pytest.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.generator import BytesGenerator
from email.message import EmailMessage
from io import BytesIO
from typing import TYPE_CHECKING, Any, TypeVar

from pytest_smtp.mail.session import Envelope, SessionInfo
from pytest_smtp.parsing import SERIALIZE_POLICY, parse_message

#: UTC, looked up once for the records' clocks (``timezone.utc`` is a class attribute).
_UTC = timezone.utc

if TYPE_CHECKING:
    from pytest_smtp.quality.auth import AuthResults
    from pytest_smtp.quality.lint import Finding

__all__ = ["Attachment", "HeaderView", "Message"]

_T = TypeVar("_T")
_CRLF_RE = re.compile(r"\r\n|\r|\n")


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


def short_repr(value: object, limit: int = 60) -> str:
    """``repr(value)``, cut to ``limit`` characters with an ellipsis (for failure texts)."""
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
        if received_at.tzinfo is not _UTC:  # the server's own stamp is UTC already
            if received_at.tzinfo is None or received_at.utcoffset() is None:
                raise ValueError(
                    f"Message received_at must be timezone-aware (UTC), got naive {received_at}"
                )
            received_at = received_at.astimezone(_UTC)
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
        self.received_at = received_at
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

    def lint(self) -> list[Finding]:
        """:func:`pytest_smtp.quality.lint` of this message: what RFC 5321/5322/MIME says is
        wrong with it and its session (:class:`~pytest_smtp.quality.Finding` list)."""
        from pytest_smtp.quality.lint import lint

        return lint(self)

    @property
    def auth(self) -> AuthResults:
        """The DKIM/SPF/DMARC/ARC verdicts the server recorded on receipt (server option
        ``authenticate=True``); an ``AttributeError`` that says so when it was not on."""
        results: AuthResults | None = self._cache.get("auth")
        if results is None:
            raise AttributeError(
                "message.auth: the server did not verify this message; give it "
                "authenticate=True (@pytest.mark.smtp(authenticate=True), --smtp-authenticate, "
                "SMTPServer(authenticate=True, dns=...)) or call "
                "pytest_smtp.quality.verify(message, smtp_dns)"
            )
        return results

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

    def describe(self) -> str:
        """One line for failure texts: ``from='a@x' to=['b@y'] subject='Hi' size=123``."""
        try:
            subject: object = self.subject
        except Exception:
            subject = "<unparseable>"
        return (
            f"from={short_repr(self.mail_from)} to={short_repr(self.rcpt_tos)} "
            f"subject={short_repr(subject)} size={self.size}"
        )

    def __repr__(self) -> str:
        return f"<Message {self.describe()}>"


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
