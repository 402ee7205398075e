"""MIME structure of a stored message, computed on its raw bytes, for FETCH and SEARCH.

IMAP hands out exact byte ranges (``BODY[1.2.MIME]``, ``BODY[HEADER]``, partial fetches) and
sizes and line counts of each part as it is on the wire, so re-serialising an ``EmailMessage``
would give wrong answers. This module splits the raw bytes itself and leaves decoding (RFC 2047
words, transfer encodings) to the stdlib only where SEARCH needs text.
"""

from __future__ import annotations

import base64
import binascii
import quopri
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.header import decode_header, make_header
from email.utils import parsedate_to_datetime
from typing import Optional

from pytest_smtp.retrieval.imap_proto import ImapSyntaxError, nstring, parse_values, quote
from pytest_smtp.store import StoredMessage

__all__ = ["Part", "Section", "message_part", "parse_message", "parse_section"]

_FOLD = re.compile(rb"\r?\n(?=[ \t])")

#: Headers beyond this are not parsed for structure (crafted headers make parsers slow).
_MAX_HEADER = 256 * 1024


def _split_header(raw: bytes) -> tuple[bytes, bytes]:
    """``(header block including the blank line, body)``."""
    if raw.startswith(b"\r\n"):
        return b"\r\n", raw[2:]
    if raw.startswith(b"\n"):
        return b"\n", raw[1:]
    crlf = raw.find(b"\r\n\r\n")
    lf = raw.find(b"\n\n")
    if crlf >= 0 and (lf < 0 or crlf <= lf + 1):
        return raw[: crlf + 4], raw[crlf + 4 :]
    if lf >= 0:
        return raw[: lf + 2], raw[lf + 2 :]
    return raw, b""


@dataclass
class HeaderField:
    """One header field: its name, unfolded value and the raw lines (folding kept)."""

    name: str
    value: bytes
    raw: bytes


def parse_fields(header: bytes) -> list[HeaderField]:
    """The fields of a header block, in order."""
    fields: list[HeaderField] = []
    block = header[:_MAX_HEADER]
    lines = block.splitlines(keepends=True)
    current: list[bytes] = []

    def flush() -> None:
        if not current:
            return
        raw = b"".join(current)
        colon = raw.find(b":")
        if colon > 0:
            name = raw[:colon].decode("ascii", "replace").strip()
            value = _FOLD.sub(b"", raw[colon + 1 :]).strip()
            fields.append(HeaderField(name, value, raw))
        current.clear()

    for line in lines:
        if line in (b"\r\n", b"\n"):
            break
        if line[:1] in (b" ", b"\t") and current:
            current.append(line)
            continue
        flush()
        current.append(line)
    flush()
    return fields


def _params(text: str) -> tuple[str, list[tuple[str, str]]]:
    """Split ``value; a=b; c="d e"`` into the value and its parameters (quotes removed)."""
    items: list[str] = []
    buf: list[str] = []
    in_quote = False
    escaped = False
    for ch in text:
        if escaped:
            buf.append(ch)
            escaped = False
        elif ch == "\\" and in_quote:
            escaped = True
        elif ch == '"':
            in_quote = not in_quote
            buf.append(ch)
        elif ch == ";" and not in_quote:
            items.append("".join(buf))
            buf = []
        else:
            buf.append(ch)
    items.append("".join(buf))
    params: list[tuple[str, str]] = []
    for item in items[1:]:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        params.append((name.strip(), value))
    return items[0].strip(), params


@dataclass
class Part:
    """One MIME entity: header block, body bytes, content type and sub-entities."""

    header: bytes
    body: bytes
    fields: list[HeaderField]
    maintype: str
    subtype: str
    params: list[tuple[str, str]]
    children: list[Part] = field(default_factory=list)
    message: Optional[Part] = None  # noqa: UP045 - dataclass annotations are evaluated on 3.10
    _envelope: bytes | None = None

    def get(self, name: str) -> bytes | None:
        """The unfolded value of the first field called ``name`` (case-insensitive)."""
        lname = name.lower()
        for f in self.fields:
            if f.name.lower() == lname:
                return f.value
        return None

    def get_all(self, name: str) -> list[bytes]:
        """Every value of the fields called ``name``."""
        lname = name.lower()
        return [f.value for f in self.fields if f.name.lower() == lname]

    def param(self, name: str) -> str | None:
        """A Content-Type parameter, such as ``charset``."""
        lname = name.lower()
        for key, value in self.params:
            if key.lower() == lname:
                return value
        return None

    @property
    def raw(self) -> bytes:
        """Header and body together (the whole entity)."""
        return self.header + self.body

    @property
    def is_multipart(self) -> bool:
        """True for ``multipart/*`` with at least one part."""
        return bool(self.children)

    # -- FETCH pieces --------------------------------------------------------------------------

    def envelope(self) -> bytes:
        """The ENVELOPE structure of this (message) entity."""
        if self._envelope is None:
            self._envelope = _envelope(self)
        return self._envelope

    def bodystructure(self, extensible: bool = True) -> bytes:
        """BODYSTRUCTURE (``extensible``) or BODY of this entity."""
        return _bodystructure(self, extensible)

    def lines(self) -> int:
        """Number of text lines of the body, counted as line breaks (body-fld-lines).

        An unterminated last line does not count, as in Dovecot: every sub-part of a multipart
        ends that way, because the CRLF before a boundary belongs to the boundary (RFC 2046
        5.1.1), so counting it would add one line to every part that clients see as whole.
        """
        return self.body.count(b"\n")

    def decoded_text(self) -> str:
        """The body of every text part, transfer-decoded and charset-decoded, for SEARCH."""
        if self.message is not None:
            return self.message.decoded_text()
        if self.children:
            return "\n".join(child.decoded_text() for child in self.children)
        if self.maintype != "text":
            return ""
        cte = (self.get("Content-Transfer-Encoding") or b"").decode("ascii", "replace")
        cte = cte.strip().lower()
        data = self.body
        try:
            if cte == "base64":
                data = base64.b64decode(data)
            elif cte == "quoted-printable":
                data = quopri.decodestring(data)
        except (binascii.Error, ValueError):
            data = self.body
        charset = self.param("charset") or "utf-8"
        try:
            return data.decode(charset, "replace")
        except LookupError:
            return data.decode("utf-8", "replace")

    def header_text(self) -> str:
        """Every header field with RFC 2047 words decoded."""
        return "\n".join(f"{f.name}: {decode_value(f.value)}" for f in self.fields)

    def all_header_text(self) -> str:
        """The header of this entity and of every entity inside it, for SEARCH TEXT.

        That is the MIME header of each body part and the header of each attached
        message/rfc822: all of it is text of the message (RFC 3501 6.4.4), and Dovecot
        matches TEXT there too.
        """
        # Recursion is bounded: the parser stops descending at depth 50.
        inner = [*self.children, *([self.message] if self.message is not None else [])]
        return "\n".join([self.header_text(), *(part.all_header_text() for part in inner)])


def decode_value(value: bytes) -> str:
    """A header value with RFC 2047 encoded words decoded (raw UTF-8 kept as is)."""
    text = value.decode("utf-8", "replace")
    if "=?" not in text:
        return text
    try:
        return str(make_header(decode_header(text)))
    except Exception:  # malformed encoded words: search the raw text instead
        return text


def sent_date(part: Part) -> object:
    """The Date header as an aware datetime, or None (for SENTSINCE and friends)."""
    value = part.get("Date")
    if value is None:
        return None
    try:
        return parsedate_to_datetime(value.decode("ascii", "replace"))
    except (TypeError, ValueError, IndexError):
        return None


def parse_message(raw: bytes, default_type: tuple[str, str] = ("text", "plain")) -> Part:
    """Parse an entity (a whole message or a body part) into a :class:`Part` tree."""
    return _parse(raw, default_type, depth=0)


def message_part(message: StoredMessage) -> Part:
    """The parsed structure of a stored message, parsed once and kept on the message.

    A stored message's bytes never change, so every session and every FETCH or SEARCH can
    share one parse (a bounded per-session cache re-parsed the whole mailbox on each FETCH
    of more messages than it held). A race between two threads at worst parses twice.
    """
    cached = message._imap_part
    if isinstance(cached, Part):
        return cached
    part = parse_message(message.raw)
    message._imap_part = part
    return part


def _parse(raw: bytes, default_type: tuple[str, str], depth: int) -> Part:
    header, body = _split_header(raw)
    fields = parse_fields(header)
    maintype, subtype = default_type
    params: list[tuple[str, str]] = []
    for f in fields:
        if f.name.lower() == "content-type":
            value, params = _params(f.value.decode("utf-8", "replace"))
            mtype, slash, stype = value.partition("/")
            if slash and mtype.strip() and stype.strip():
                maintype, subtype = mtype.strip().lower(), stype.strip().lower()
            else:
                params = []
            break
    part = Part(header, body, fields, maintype, subtype, params)
    if depth > 50:  # deeply nested crafted input: stop descending
        return part
    if maintype == "multipart":
        boundary = part.param("boundary")
        if boundary:
            child_default = ("message", "rfc822") if subtype == "digest" else ("text", "plain")
            for chunk in _split_multipart(body, boundary.encode("utf-8", "replace")):
                part.children.append(_parse(chunk, child_default, depth + 1))
    elif maintype == "message" and subtype in ("rfc822", "global"):
        part.message = _parse(body, ("text", "plain"), depth + 1)
    return part


def _split_multipart(body: bytes, boundary: bytes) -> list[bytes]:
    # The CRLF before a delimiter line belongs to the delimiter (RFC 2046 5.1.1).
    pattern = re.compile(rb"(?:\A|\r?\n)--" + re.escape(boundary) + rb"(--)?[ \t]*(?:\r?\n|\Z)")
    chunks: list[bytes] = []
    start: int | None = None
    for match in pattern.finditer(body):
        if start is not None:
            chunks.append(body[start : match.start()])
        if match.group(1):
            return chunks
        start = match.end()
    if start is not None:
        chunks.append(body[start:])
    return chunks


# -- ENVELOPE ------------------------------------------------------------------------------------


def _envelope(part: Part) -> bytes:
    def field_value(name: str) -> bytes:
        value = part.get(name)
        return b"NIL" if value is None else quote(value)

    def addresses(name: str, fallback: str | None = None) -> bytes:
        values = part.get_all(name)
        if not values and fallback is not None:
            values = part.get_all(fallback)
        if not values:
            return b"NIL"
        items = [a for v in values for a in _address_list(v)]
        return b"(" + b"".join(items) + b")" if items else b"NIL"

    return (
        b"("
        + b" ".join(
            [
                field_value("Date"),
                field_value("Subject"),
                addresses("From"),
                addresses("Sender", "From"),
                addresses("Reply-To", "From"),
                addresses("To"),
                addresses("Cc"),
                addresses("Bcc"),
                field_value("In-Reply-To"),
                field_value("Message-ID"),
            ]
        )
        + b")"
    )


# What a byte of a structured header value is (RFC 5322 section 3.2), as :func:`_lex` tells it.
_BARE = 0  # outside quoted strings and comments: where the structure is
_QUOTE = 1  # a double quote opening or closing a quoted string
_ESCAPE = 2  # the backslash of a quoted pair in a quoted string
_QUOTED = 3  # inside a quoted string (an escaped byte too)
_COMMENT = 4  # inside a comment, its parentheses included


def _lex(text: bytes) -> Iterator[tuple[int, int]]:
    """Each byte of a structured header value with what it is (``_BARE``, ``_QUOTE``, ...).

    The one reading of quoted strings, quoted pairs and nested comments behind the address
    scanners below: a backslash escapes only inside a quoted string or a comment, and a quote
    inside a comment opens a quoted string there too (so a ``)`` in it ends nothing).
    """
    depth = 0
    quoted = escaped = False
    for byte in text:
        if escaped:
            escaped = False
            role = _QUOTED
        elif byte == 0x5C and (quoted or depth):
            escaped = True
            role = _ESCAPE
        elif quoted:
            quoted = byte != 0x22
            role = _QUOTED if quoted else _QUOTE
        elif byte == 0x22:
            quoted = True
            role = _QUOTE
        elif byte == 0x28:
            depth += 1
            role = _COMMENT
        elif byte == 0x29 and depth:
            depth -= 1
            yield byte, _COMMENT
            continue
        else:
            role = _BARE
        yield byte, _COMMENT if depth else role


def _split_top(text: bytes, separators: bytes) -> list[tuple[bytes, bytes]]:
    """Split on any separator byte outside quotes, comments and angle brackets.

    Returns ``(chunk, separator)`` pairs; the last separator is empty.
    """
    out: list[tuple[bytes, bytes]] = []
    buf = bytearray()
    angle = 0
    for byte, role in _lex(text):
        if role == _BARE:
            if byte == 0x3C:  # <
                angle += 1
            elif byte == 0x3E and angle:  # >
                angle -= 1
            elif not angle and byte in separators:
                out.append((bytes(buf), bytes((byte,))))
                buf = bytearray()
                continue
        buf.append(byte)
    out.append((bytes(buf), b""))
    return out


def _strip_comments(text: bytes) -> bytes:
    return bytes(byte for byte, role in _lex(text) if role != _COMMENT)


def _unquote_phrase(phrase: bytes) -> bytes:
    kept = bytes(byte for byte, role in _lex(phrase.strip()) if role not in (_QUOTE, _ESCAPE))
    return kept.strip()


def _one_address(text: bytes) -> bytes | None:
    text = text.strip()
    if not text:
        return None
    name: bytes | None = None
    if b"<" in text and text.rstrip().endswith(b">"):
        lt = text.rfind(b"<")
        addr = text[lt + 1 : text.rfind(b">")]
        name = _unquote_phrase(_strip_comments(text[:lt])) or None
    else:
        addr = _strip_comments(text)
        comment = re.search(rb"\(([^()]*)\)", text)
        if comment and comment.group(1).strip():
            name = comment.group(1).strip()
    addr = addr.strip()
    if b":" in addr and addr.startswith(b"@"):  # obsolete source route: @a,@b:user@host
        adl_text, _, addr = addr.partition(b":")
        adl: bytes | None = adl_text
    else:
        adl = None
    mailbox, at, host = addr.rpartition(b"@")
    if not at:
        mailbox, host = addr, b""
    return (
        b"("
        + b" ".join(
            [
                nstring(name),
                nstring(adl),
                nstring(_unquote_phrase(mailbox) if mailbox else None),
                nstring(host or None),
            ]
        )
        + b")"
    )


def _address_list(value: bytes) -> list[bytes]:
    items: list[bytes] = []
    in_group = False
    for chunk, sep in _split_top(value, b",:;"):
        if sep == b":" and not in_group:
            # RFC 5322 group "name: a@b, c@d;": a start marker, the members, an end marker.
            items.append(b"(NIL NIL " + nstring(_unquote_phrase(chunk)) + b" NIL)")
            in_group = True
            continue
        entry = _one_address(chunk)
        if entry is not None:
            items.append(entry)
        if sep == b";" and in_group:
            items.append(b"(NIL NIL NIL NIL)")
            in_group = False
    if in_group:
        items.append(b"(NIL NIL NIL NIL)")
    return items


# -- BODYSTRUCTURE -------------------------------------------------------------------------------


def _param_list(params: list[tuple[str, str]]) -> bytes:
    if not params:
        return b"NIL"
    return b"(" + b" ".join(quote(k) + b" " + quote(v) for k, v in params) + b")"


def _extension(part: Part) -> bytes:
    disposition = part.get("Content-Disposition")
    if disposition is None:
        disp = b"NIL"
    else:
        value, params = _params(disposition.decode("utf-8", "replace"))
        disp = b"(" + quote(value or "attachment") + b" " + _param_list(params) + b")"
    language = part.get("Content-Language")
    if language is None:
        lang = b"NIL"
    else:
        tags = [t.strip() for t in language.decode("utf-8", "replace").split(",") if t.strip()]
        lang = b"(" + b" ".join(quote(t) for t in tags) + b")" if tags else b"NIL"
    location = part.get("Content-Location")
    return disp + b" " + lang + b" " + nstring(location)


def _bodystructure(part: Part, extensible: bool) -> bytes:
    if part.children:
        body = b"".join(_bodystructure(child, extensible) for child in part.children)
        body += b" " + quote(part.subtype.upper())
        if extensible:
            body += b" " + _param_list(part.params) + b" " + _extension(part)
        return b"(" + body + b")"
    params = part.params
    if part.maintype == "text" and part.param("charset") is None:
        params = [*params, ("charset", "us-ascii")]
    encoding = part.get("Content-Transfer-Encoding")
    items = [
        quote(part.maintype.upper()),
        quote(part.subtype.upper()),
        _param_list(params),
        nstring(part.get("Content-ID")),
        nstring(part.get("Content-Description")),
        quote(encoding.strip().upper()) if encoding else b'"7BIT"',
        b"%d" % len(part.body),
    ]
    if part.message is not None:
        items.append(part.message.envelope())
        items.append(_bodystructure(part.message, extensible))
        items.append(b"%d" % part.lines())
    elif part.maintype == "text":
        items.append(b"%d" % part.lines())
    if extensible:
        items.append(nstring(part.get("Content-MD5")))
        items.append(_extension(part))
    return b"(" + b" ".join(items) + b")"


# -- BODY[section] -------------------------------------------------------------------------------


@dataclass
class Section:
    """A parsed section spec: part numbers, then HEADER, HEADER.FIELDS[.NOT], TEXT, MIME or ''."""

    parts: list[int]
    text: str  # "", "HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT", "TEXT", "MIME"
    fields: list[str]
    label: str  # the spec as echoed in the response: "1.HEADER.FIELDS (From To)"


_SECTION_TEXTS = ("HEADER.FIELDS.NOT", "HEADER.FIELDS", "HEADER", "TEXT", "MIME")


def parse_section(spec: str) -> Section:
    """Parse the text between the brackets of ``BODY[...]``."""
    rest = spec.strip()
    parts: list[int] = []
    match = re.match(r"(\d+(?:\.\d+)*)(?:\.|$)", rest)
    if match:
        parts = [int(p) for p in match.group(1).split(".")]
        if any(p == 0 for p in parts):
            raise ImapSyntaxError(f"invalid section {spec!r}: part numbers start at 1")
        rest = rest[match.end() :]
    upper = rest.upper()
    text = ""
    for candidate in _SECTION_TEXTS:
        if (
            upper == candidate
            or upper.startswith(candidate + " ")
            or upper.startswith(candidate + "(")
        ):
            text = candidate
            break
    if rest and not text:
        raise ImapSyntaxError(
            f"invalid section {spec!r}: expected HEADER, HEADER.FIELDS (...), "
            "HEADER.FIELDS.NOT (...), TEXT or MIME after the part numbers"
        )
    if text == "MIME" and not parts:
        raise ImapSyntaxError(f"invalid section {spec!r}: MIME needs a part number, e.g. 1.MIME")
    fields: list[str] = []
    label_parts = ".".join(str(p) for p in parts)
    label = label_parts + ("." if label_parts and text else "") + text
    if text.startswith("HEADER.FIELDS"):
        values = parse_values(rest[len(text) :].encode("utf-8", "surrogateescape"))
        if len(values) != 1 or not isinstance(values[0], list) or not values[0]:
            raise ImapSyntaxError(
                f"invalid section {spec!r}: {text} needs a list of field names, e.g. (From To)"
            )
        for value in values[0]:
            if isinstance(value, list):
                raise ImapSyntaxError(f"invalid section {spec!r}: field names must be strings")
            fields.append(value.decode("utf-8", "replace") if isinstance(value, bytes) else value)
        label += " (" + " ".join(f.upper() for f in fields) + ")"
    elif rest[len(text) :].strip():
        raise ImapSyntaxError(f"invalid section {spec!r}: unexpected {rest[len(text) :]!r}")
    return Section(parts, text, fields, label)


def section_bytes(message: Part, section: Section) -> bytes | None:
    """The bytes a section selects, or None when the part does not exist."""
    target: Part = message
    for depth, number in enumerate(section.parts):
        # Below the top level, a message/rfc822 part is numbered by its encapsulated message.
        if depth > 0 and target.message is not None:
            target = target.message
        if target.children:
            if number > len(target.children):
                return None
            target = target.children[number - 1]
        elif number != 1:
            return None  # a non-multipart entity has exactly one part, its own body
    text = section.text
    if section.parts and text in ("HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT", "TEXT"):
        # With part numbers these address the message inside a message/rfc822 part.
        if target.message is None:
            return None
        target = target.message
    if text == "":
        return target.body if section.parts else message.raw
    if text == "MIME":
        return target.header
    if text == "TEXT":
        return target.body
    if text == "HEADER":
        return target.header
    wanted = {f.lower() for f in section.fields}
    if text == "HEADER.FIELDS":
        chosen = [f.raw for f in target.fields if f.name.lower() in wanted]
    else:
        chosen = [f.raw for f in target.fields if f.name.lower() not in wanted]
    return b"".join(chosen) + b"\r\n"
