"""IMAP4rev1 wire syntax: command tokenising, sequence sets, strings, dates, mailbox names.

Everything here is pure (no sockets, no store), so it is unit-testable on its own. The server in
:mod:`pytest_smtp.retrieval.imap` reads a whole command (literals included, exactly as they came
over the wire) and hands the bytes to :func:`parse_command`.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Union

__all__ = [
    "Atom",
    "Command",
    "ImapSyntaxError",
    "SequenceSet",
    "Value",
    "astring",
    "decode_mailbox",
    "encode_mailbox",
    "format_internal_date",
    "format_sequence",
    "literal_length",
    "nstring",
    "parse_command",
    "parse_date",
    "parse_date_time",
    "parse_values",
    "quote",
]


class ImapSyntaxError(ValueError):
    """A command that does not follow the IMAP grammar; the text goes into a ``BAD`` reply."""


class Atom(str):
    """An unquoted token (a keyword, flag, sequence set, fetch item...)."""

    __slots__ = ()


#: A parsed command argument: an atom, a string (quoted or literal, as bytes) or a list.
Value = Union[Atom, bytes, "list[Value]"]

# A literal announcement at the very end of a line: {123} or {123+} (LITERAL+, RFC 7888).
_LITERAL_AT_END = re.compile(rb"\{(\d{1,18})(\+?)\}\r?\n\Z")


def literal_length(line: bytes) -> tuple[int, bool] | None:
    """``(length, synchronising)`` when ``line`` announces a literal, else None."""
    match = _LITERAL_AT_END.search(line)
    if match is None:
        return None
    return int(match.group(1)), match.group(2) != b"+"


@dataclass
class Command:
    """One tagged command: ``tag``, upper-cased ``name`` and its argument values."""

    tag: str
    name: str
    args: list[Value]


class _Tokenizer:
    """A cursor over one complete command (literal bytes inline after their ``{n}`` CRLF)."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def at_end(self) -> bool:
        return self.pos >= len(self.data)

    def skip_spaces(self) -> None:
        while self.pos < len(self.data) and self.data[self.pos] == 0x20:
            self.pos += 1

    def values(self, closing: int | None = None) -> list[Value]:
        out: list[Value] = []
        while True:
            self.skip_spaces()
            if self.at_end():
                if closing is not None:
                    raise ImapSyntaxError("missing ')' at the end of a parenthesised list")
                return out
            ch = self.data[self.pos]
            if ch == 0x29:  # )
                if closing is None:
                    raise ImapSyntaxError("unexpected ')' without a matching '('")
                self.pos += 1
                return out
            out.append(self.value())

    def value(self) -> Value:
        ch = self.data[self.pos]
        if ch == 0x28:  # (
            self.pos += 1
            return self.values(closing=0x29)
        if ch == 0x22:  # "
            return self.quoted()
        if ch == 0x7B:  # {
            literal = self.literal()
            if literal is not None:
                return literal
        return self.atom()

    def quoted(self) -> bytes:
        self.pos += 1
        buf = bytearray()
        data = self.data
        while self.pos < len(data):
            ch = data[self.pos]
            if ch == 0x5C:  # backslash escapes only " and \ (RFC 3501 quoted-specials)
                if self.pos + 1 >= len(data):
                    break
                buf.append(data[self.pos + 1])
                self.pos += 2
                continue
            if ch == 0x22:
                self.pos += 1
                return bytes(buf)
            if ch in (0x0D, 0x0A):
                raise ImapSyntaxError("CR or LF inside a quoted string: send it as a literal")
            buf.append(ch)
            self.pos += 1
        raise ImapSyntaxError("unterminated quoted string (missing closing '\"')")

    def literal(self) -> bytes | None:
        match = re.compile(rb"\{(\d{1,18})\+?\}\r?\n").match(self.data, self.pos)
        if match is None:
            return None
        size = int(match.group(1))
        start = match.end()
        if start + size > len(self.data):
            raise ImapSyntaxError("literal shorter than announced")
        self.pos = start + size
        return self.data[start : start + size]

    def atom(self) -> Atom:
        start = self.pos
        data = self.data
        depth = 0
        while self.pos < len(data):
            ch = data[self.pos]
            if depth:
                # Inside BODY[...]: spaces and parentheses belong to the section spec.
                if ch == 0x5B:
                    depth += 1
                elif ch == 0x5D:
                    depth -= 1
                elif ch == 0x22:
                    self.quoted()
                    continue
                self.pos += 1
                continue
            if ch in (0x20, 0x28, 0x29, 0x22, 0x0D, 0x0A) or ch < 0x20 or ch == 0x7F:
                break
            if ch == 0x5B:
                depth = 1
            self.pos += 1
        if depth:
            raise ImapSyntaxError("missing ']' in a section specification")
        if self.pos == start:
            raise ImapSyntaxError(f"unexpected character {data[start : start + 1]!r}")
        return Atom(data[start : self.pos].decode("utf-8", "surrogateescape"))


def parse_command(data: bytes) -> Command:
    """Split one complete command into tag, name and values. Raises :class:`ImapSyntaxError`."""
    if data.endswith(b"\r\n"):
        data = data[:-2]
    elif data.endswith(b"\n"):
        data = data[:-1]
    tok = _Tokenizer(data)
    tag_end = data.find(b" ")
    if tag_end <= 0:
        raise ImapSyntaxError("expected 'tag SP command', e.g. 'a1 NOOP'")
    tag = data[:tag_end].decode("ascii", "replace")
    if any(c in tag for c in '(){%*"\\+') or not tag.isprintable():
        raise ImapSyntaxError(f"invalid tag {tag!r}")
    tok.pos = tag_end + 1
    name_match = re.compile(rb"[A-Za-z]+").match(data, tok.pos)
    if name_match is None:
        raise ImapSyntaxError("missing command name after the tag")
    tok.pos = name_match.end()
    if not tok.at_end() and data[tok.pos] != 0x20:
        raise ImapSyntaxError("expected a space after the command name")
    name = name_match.group().decode("ascii").upper()
    return Command(tag=tag, name=name, args=tok.values())


def parse_values(data: bytes) -> list[Value]:
    """Tokenise an argument string (the field list of ``BODY[HEADER.FIELDS (...)]``)."""
    return _Tokenizer(data).values()


def astring(value: Value, what: str) -> str:
    """An atom or string argument as text (UTF-8, undecodable bytes kept as surrogates)."""
    if isinstance(value, Atom):
        return str(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    raise ImapSyntaxError(f"{what} must be an atom or a string, not a parenthesised list")


# -- responses -----------------------------------------------------------------------------------

_QUOTE_SAFE = re.compile(rb"[\x01-\x09\x0b\x0c\x0e-\x7f]*\Z")


def quote(value: str | bytes) -> bytes:
    """A string in the form a client parses back exactly: quoted when 7-bit, else a literal."""
    raw = value.encode("utf-8", "surrogateescape") if isinstance(value, str) else value
    if len(raw) < 1000 and _QUOTE_SAFE.match(raw):
        return b'"' + raw.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'
    return b"{%d}\r\n%s" % (len(raw), raw)


def nstring(value: str | bytes | None) -> bytes:
    """``NIL`` for None, else :func:`quote`."""
    return b"NIL" if value is None else quote(value)


# -- sequence sets -------------------------------------------------------------------------------


class SequenceSet:
    """A parsed ``sequence-set`` such as ``1:3,7,10:*`` (``*`` is None until resolved)."""

    __slots__ = ("ranges",)

    def __init__(self, ranges: Sequence[tuple[int | None, int | None]]) -> None:
        self.ranges = list(ranges)

    @classmethod
    def parse(cls, text: str) -> SequenceSet:
        """Parse the text of a sequence set; raises :class:`ImapSyntaxError` naming the fault."""
        ranges: list[tuple[int | None, int | None]] = []
        if not text:
            raise ImapSyntaxError("empty sequence set")
        for item in text.split(","):
            bounds = item.split(":")
            if len(bounds) > 2 or not all(bounds):
                raise ImapSyntaxError(f"invalid sequence set {text!r}: expected e.g. '1:3,5,7:*'")
            parsed: list[int | None] = []
            for bound in bounds:
                if bound == "*":
                    parsed.append(None)
                elif bound.isdigit() and bound.isascii() and int(bound) > 0:
                    parsed.append(int(bound))
                else:
                    raise ImapSyntaxError(
                        f"invalid sequence set {text!r}: {bound!r} is not a number > 0 or '*'"
                    )
            ranges.append((parsed[0], parsed[-1]))
        return cls(ranges)

    @staticmethod
    def is_set(text: str) -> bool:
        """True when ``text`` looks like a sequence set (used by SEARCH to tell keys apart)."""
        return bool(re.fullmatch(r"[0-9*:,]+", text))

    def resolved(self, largest: int) -> list[tuple[int, int]]:
        """Ranges with ``*`` replaced by ``largest``, each ordered low..high."""
        out = []
        for lo, hi in self.ranges:
            a = largest if lo is None else lo
            b = largest if hi is None else hi
            out.append((min(a, b), max(a, b)))
        return out

    def select(self, values: Iterable[int], largest: int) -> Iterator[int]:
        """Members of ``values`` (ascending) that the set contains, ``*`` being ``largest``."""
        ranges = self.resolved(largest)
        for v in values:
            for lo, hi in ranges:
                if lo <= v <= hi:
                    yield v
                    break


def format_sequence(values: Iterable[int]) -> str:
    """Compact ``1:3,7`` form of a list of numbers (order kept, runs collapsed) for COPYUID."""
    out: list[str] = []
    run: list[int] = []
    for v in values:
        if run and v == run[-1] + 1:
            run.append(v)
            continue
        if run:
            out.append(str(run[0]) if len(run) == 1 else f"{run[0]}:{run[-1]}")
        run = [v]
    if run:
        out.append(str(run[0]) if len(run) == 1 else f"{run[0]}:{run[-1]}")
    return ",".join(out)


# -- dates ---------------------------------------------------------------------------------------

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_MONTH_NUMBER = {m.lower(): i + 1 for i, m in enumerate(_MONTHS)}


def format_internal_date(value: datetime) -> bytes:
    """``"17-Jul-1996 02:44:25 -0700"`` (RFC 3501 date-time)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    offset = value.utcoffset() or timedelta(0)
    minutes = int(offset.total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    minutes = abs(minutes)
    text = (
        f"{value.day:2d}-{_MONTHS[value.month - 1]}-{value.year:04d} "
        f"{value.hour:02d}:{value.minute:02d}:{value.second:02d} "
        f"{sign}{minutes // 60:02d}{minutes % 60:02d}"
    )
    return b'"' + text.encode("ascii") + b'"'


_DATE_TIME = re.compile(
    r"\s?(\d{1,2})-([A-Za-z]{3})-(\d{4}) (\d{2}):(\d{2}):(\d{2}) ([+-])(\d{2})(\d{2})\Z"
)


def parse_date_time(text: str) -> datetime:
    """Parse an APPEND ``date-time`` such as ``17-Jul-1996 02:44:25 -0700`` (aware)."""
    match = _DATE_TIME.match(text)
    month = _MONTH_NUMBER.get(match.group(2).lower()) if match else None
    if match is None or month is None:
        raise ImapSyntaxError(
            f"invalid date-time {text!r}: expected e.g. '17-Jul-1996 02:44:25 -0700'"
        )
    day, _, year, hh, mm, ss, sign, oh, om = match.groups()
    offset = timedelta(hours=int(oh), minutes=int(om))
    tz = timezone(-offset if sign == "-" else offset)
    try:
        return datetime(int(year), month, int(day), int(hh), int(mm), int(ss), tzinfo=tz)
    except ValueError as exc:
        raise ImapSyntaxError(f"invalid date-time {text!r}: {exc}") from None


def parse_date(text: str) -> date:
    """Parse a SEARCH ``date`` such as ``1-Feb-1994``."""
    match = re.fullmatch(r"(\d{1,2})-([A-Za-z]{3})-(\d{4})", text)
    month = _MONTH_NUMBER.get(match.group(2).lower()) if match else None
    if match is None or month is None:
        raise ImapSyntaxError(f"invalid date {text!r}: expected e.g. '1-Feb-1994'")
    try:
        return date(int(match.group(3)), month, int(match.group(1)))
    except ValueError as exc:
        raise ImapSyntaxError(f"invalid date {text!r}: {exc}") from None


# -- mailbox names (modified UTF-7, RFC 3501 5.1.3) ----------------------------------------------


def encode_mailbox(name: str) -> str:
    """Encode a folder name in modified UTF-7 for the wire."""
    out: list[str] = []
    pending: list[str] = []

    def flush() -> None:
        if pending:
            raw = "".join(pending).encode("utf-16-be")
            out.append("&" + base64.b64encode(raw).decode("ascii").rstrip("=").replace("/", ","))
            out.append("-")
            pending.clear()

    for ch in name:
        if 0x20 <= ord(ch) <= 0x7E:
            flush()
            out.append("&-" if ch == "&" else ch)
        else:
            pending.append(ch)
    flush()
    return "".join(out)


def decode_mailbox(name: str) -> str:
    """Decode a modified UTF-7 folder name; plain UTF-8 (from lax clients) passes through."""
    if "&" not in name:
        return name
    out: list[str] = []
    pos = 0
    while pos < len(name):
        amp = name.find("&", pos)
        if amp < 0:
            out.append(name[pos:])
            break
        out.append(name[pos:amp])
        dash = name.find("-", amp)
        if dash < 0:
            raise ImapSyntaxError(f"invalid mailbox name {name!r}: '&' without closing '-'")
        chunk = name[amp + 1 : dash]
        if not chunk:
            out.append("&")
        else:
            padded = chunk.replace(",", "/") + "=" * (-len(chunk) % 4)
            try:
                out.append(base64.b64decode(padded, validate=True).decode("utf-16-be"))
            except ValueError:
                raise ImapSyntaxError(
                    f"invalid mailbox name {name!r}: {chunk!r} is not modified UTF-7"
                ) from None
        pos = dash + 1
    return "".join(out)
