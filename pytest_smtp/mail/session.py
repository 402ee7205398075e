"""Replies and sessions: :class:`Reply`, :class:`SessionInfo`, :class:`RecipientResult`,
:class:`Envelope`.

This module never imports pytest.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from pytest_smtp.mail.proxy import ProxyHeader

__all__ = ["Envelope", "RecipientResult", "Reply", "ReplyKind", "SessionInfo"]

_ENHANCED_RE = re.compile(r"[245]\.\d{1,3}\.\d{1,3}")
_ENHANCED_PREFIX_RE = re.compile(r"([245]\.\d{1,3}\.\d{1,3})(?: |$)")
_REPLY_LINE_RE = re.compile(r"(\d{3})(?:([ -])(.*))?")
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

    @classmethod
    def _unchecked(cls, code: int, text: str, enhanced: str | None) -> Reply:
        """A reply from parts known to be valid (the server's own constants), without the
        checks of ``__post_init__``: for replies built once per message."""
        reply = object.__new__(cls)
        object.__setattr__(reply, "code", code)
        object.__setattr__(reply, "text", text)
        object.__setattr__(reply, "enhanced", enhanced)
        return reply

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
    proxy: ProxyHeader | None = None
    """The PROXY protocol header the connection began with (``proxy_protocol=True``): the
    client a load balancer relays is ``proxy.client``; :attr:`peer` stays the proxy's side."""


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
