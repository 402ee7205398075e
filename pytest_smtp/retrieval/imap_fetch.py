"""IMAP FETCH (RFC 3501 6.4.5, 7.4.2): the items a client asks for and the response for one message.

:func:`parse_fetch` turns the arguments of ``FETCH``/``UID FETCH`` into a :class:`FetchRequest`;
:func:`render_fetch` gives the response items of one message. The session layer
(``retrieval/imap.py``) resolves the sequence set, sets ``\\Seen`` and sends the lines.

This module never imports pytest.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from pytest_smtp.retrieval.imap_mime import (
    Part,
    Section,
    message_part,
    parse_section,
    section_bytes,
)
from pytest_smtp.retrieval.imap_proto import (
    Atom,
    ImapSyntaxError,
    Value,
    astring,
    format_internal_date,
)
from pytest_smtp.store import StoredMessage

__all__ = ["FetchItem", "FetchRequest", "literal", "parse_fetch", "render_fetch"]

_BODY_ITEM = re.compile(
    r"(BODY(?:\.PEEK)?)\[(.*)\](?:<(\d+)\.(\d+)>)?\Z", re.IGNORECASE | re.DOTALL
)
_SIMPLE_ITEMS = {
    "FLAGS",
    "UID",
    "INTERNALDATE",
    "RFC822.SIZE",
    "RFC822",
    "RFC822.HEADER",
    "RFC822.TEXT",
    "ENVELOPE",
    "BODYSTRUCTURE",
    "BODY",
}
_MACROS = {
    "ALL": ["FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE"],
    "FAST": ["FLAGS", "INTERNALDATE", "RFC822.SIZE"],
    "FULL": ["FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY"],
}


@dataclass
class FetchItem:
    """One FETCH item: ``FLAGS``, ``UID``, ... or ``BODY[]`` for a section fetch."""

    name: str
    section: Section | None = None
    peek: bool = True
    partial: tuple[int, int] | None = None

    @property
    def sets_seen(self) -> bool:
        """True when fetching it marks the message ``\\Seen`` (RFC822, RFC822.TEXT, BODY[])."""
        return self.name in ("RFC822", "RFC822.TEXT") or (
            self.section is not None and not self.peek
        )

    @property
    def needs_part(self) -> bool:
        """True when it needs the parsed MIME structure of the message."""
        return self.section is not None or self.name in ("ENVELOPE", "BODYSTRUCTURE", "BODY")


@dataclass
class FetchRequest:
    """A parsed ``FETCH``/``UID FETCH``: the sequence (or UID) set and the items."""

    set_text: str
    items: list[FetchItem]

    @property
    def sets_seen(self) -> bool:
        """True when one of the items marks a message ``\\Seen``."""
        return any(i.sets_seen for i in self.items)

    @property
    def wants_flags(self) -> bool:
        """True when ``FLAGS`` was asked for."""
        return any(i.name == "FLAGS" for i in self.items)

    @property
    def needs_part(self) -> bool:
        """True when one of the items needs the parsed MIME structure."""
        return any(i.needs_part for i in self.items)


def parse_fetch(args: list[Value], uid_mode: bool) -> FetchRequest:
    """The arguments after ``FETCH`` (or ``UID FETCH``): a set and an item or item list.

    ``UID FETCH`` always includes ``UID`` (RFC 3501 6.4.8). Raises :class:`ImapSyntaxError`
    naming the known items.
    """
    if len(args) != 2:
        raise ImapSyntaxError(f"usage: {'UID ' if uid_mode else ''}FETCH set (items)")
    set_text = astring(args[0], "the sequence set")
    items = _parse_items(args[1])
    if uid_mode and not any(i.name == "UID" for i in items):
        items.insert(0, FetchItem("UID"))
    return FetchRequest(set_text, items)


def _parse_items(value: Value) -> list[FetchItem]:
    raw: list[Value] = value if isinstance(value, list) else [value]
    if isinstance(value, Atom) and value.upper() in _MACROS:
        return [FetchItem(name) for name in _MACROS[value.upper()]]
    items: list[FetchItem] = []
    for entry in raw:
        if not isinstance(entry, Atom):
            raise ImapSyntaxError(f"FETCH: expected a fetch item such as FLAGS, got {entry!r}")
        upper = entry.upper()
        if upper in _SIMPLE_ITEMS:
            items.append(FetchItem(upper))
            continue
        match = _BODY_ITEM.match(entry)
        if match is None:
            raise ImapSyntaxError(
                f"FETCH: unknown item {str(entry)!r}; known items are FLAGS, UID, INTERNALDATE, "
                "RFC822.SIZE, RFC822, RFC822.HEADER, RFC822.TEXT, ENVELOPE, BODYSTRUCTURE, BODY, "
                "BODY[section]<n.m>, BODY.PEEK[section]<n.m> and the macros ALL, FAST, FULL"
            )
        partial = None
        if match.group(3) is not None:
            partial = (int(match.group(3)), int(match.group(4)))
            if partial[1] == 0:
                raise ImapSyntaxError(f"FETCH {entry}: the partial length must be > 0")
        items.append(
            FetchItem(
                "BODY[]",
                section=parse_section(match.group(2)),
                peek=match.group(1).upper() == "BODY.PEEK",
                partial=partial,
            )
        )
    if not items:
        raise ImapSyntaxError("FETCH needs at least one item, e.g. (FLAGS) or BODY.PEEK[]")
    return items


def literal(data: bytes) -> bytes:
    """``data`` as an IMAP literal: ``{size}`` CRLF and the octets."""
    return b"{%d}\r\n%s" % (len(data), data)


def render_fetch(
    request: FetchRequest, message: StoredMessage, flags: Callable[[StoredMessage], bytes]
) -> list[bytes]:
    """The response items (``FLAGS (...)``, ``BODY[] {n}...``) of ``message``, in order.

    ``flags`` gives the message's flag list as this session shows it (with ``\\Recent``).
    """
    part = message_part(message) if request.needs_part else None
    return [_render_item(item, message, part, flags) for item in request.items]


def _render_item(
    item: FetchItem,
    m: StoredMessage,
    part: Part | None,
    flags: Callable[[StoredMessage], bytes],
) -> bytes:
    name = item.name
    if name == "FLAGS":
        return b"FLAGS " + flags(m)
    if name == "UID":
        return b"UID %d" % m.uid
    if name == "INTERNALDATE":
        return b"INTERNALDATE " + format_internal_date(m.internal_date)
    if name == "RFC822.SIZE":
        return b"RFC822.SIZE %d" % m.size
    if name == "RFC822":
        return b"RFC822 " + literal(m.raw)
    if name in ("RFC822.HEADER", "RFC822.TEXT"):
        part = part or message_part(m)
        data = part.header if name == "RFC822.HEADER" else part.body
        return name.encode() + b" " + literal(data)
    assert part is not None
    if name == "ENVELOPE":
        return b"ENVELOPE " + part.envelope()
    if name == "BODYSTRUCTURE":
        return b"BODYSTRUCTURE " + part.bodystructure(extensible=True)
    if name == "BODY" and item.section is None:
        return b"BODY " + part.bodystructure(extensible=False)
    assert item.section is not None
    data = section_bytes(part, item.section) or b""
    label = b"BODY[" + item.section.label.encode("utf-8", "replace") + b"]"
    if item.partial is not None:
        origin, length = item.partial
        data = data[origin : origin + length]
        label += b"<%d>" % origin
    return label + b" " + literal(data)
