"""IMAP SEARCH: keys parsed into predicates over one message at a time (RFC 3501 6.4.4)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime

from pytest_smtp.retrieval.imap_mime import Part, decode_value, message_part, sent_date
from pytest_smtp.retrieval.imap_proto import (
    Atom,
    ImapSyntaxError,
    SequenceSet,
    Value,
    astring,
    parse_date,
)
from pytest_smtp.store import StoredMessage

__all__ = ["SUPPORTED_CHARSETS", "SearchContext", "parse_search"]

#: Charsets SEARCH accepts (others get ``NO [BADCHARSET (...)]``).
SUPPORTED_CHARSETS = ("UTF-8", "US-ASCII")


class SearchContext:
    """What a predicate may look at: the message, its numbers and the session's \\Recent set."""

    __slots__ = ("max_seq", "max_uid", "message", "recent", "seq")

    def __init__(
        self, message: StoredMessage, seq: int, max_seq: int, max_uid: int, recent: bool
    ) -> None:
        self.message = message
        self.seq = seq
        self.max_seq = max_seq
        self.max_uid = max_uid
        self.recent = recent

    @property
    def part(self) -> Part:
        """The parsed MIME structure (parsed on first use, then kept on the message)."""
        return message_part(self.message)


Predicate = Callable[[SearchContext], bool]

_FLAG_KEYS = {
    "ANSWERED": ("\\Answered", True),
    "DELETED": ("\\Deleted", True),
    "DRAFT": ("\\Draft", True),
    "FLAGGED": ("\\Flagged", True),
    "SEEN": ("\\Seen", True),
    "UNANSWERED": ("\\Answered", False),
    "UNDELETED": ("\\Deleted", False),
    "UNDRAFT": ("\\Draft", False),
    "UNFLAGGED": ("\\Flagged", False),
    "UNSEEN": ("\\Seen", False),
}
_ADDRESS_KEYS = {"BCC": "Bcc", "CC": "Cc", "FROM": "From", "TO": "To", "SUBJECT": "Subject"}


def _contains(haystack: str, needle: str) -> bool:
    return needle.casefold() in haystack.casefold()


def _header_matches(ctx: SearchContext, name: str, needle: str) -> bool:
    values = ctx.part.get_all(name)
    if not needle:
        return bool(values)
    return any(_contains(decode_value(v), needle) for v in values)


def _date_of(value: object) -> date | None:
    return value.date() if isinstance(value, datetime) else None


class _Parser:
    def __init__(self, values: list[Value]) -> None:
        self.values = values
        self.pos = 0

    def next(self, what: str) -> Value:
        if self.pos >= len(self.values):
            raise ImapSyntaxError(f"SEARCH: missing {what}")
        value = self.values[self.pos]
        self.pos += 1
        return value

    def string(self, key: str) -> str:
        return astring(self.next(f"the string after {key}"), f"the argument of {key}")

    def number(self, key: str) -> int:
        text = self.string(key)
        if not (text.isascii() and text.isdigit()):
            raise ImapSyntaxError(f"SEARCH {key} needs a number of octets, not {text!r}")
        return int(text)

    def date(self, key: str) -> date:
        return parse_date(self.string(key))

    def all(self) -> Predicate:
        keys: list[Predicate] = []
        while self.pos < len(self.values):
            keys.append(self.key())
        if not keys:
            raise ImapSyntaxError("SEARCH needs at least one search key, e.g. ALL or UNSEEN")
        return _and(keys)

    def key(self) -> Predicate:
        value = self.next("a search key")
        if isinstance(value, list):
            if not value:
                raise ImapSyntaxError("SEARCH: empty parenthesised group")
            return _Parser(value).all()
        if isinstance(value, bytes):
            raise ImapSyntaxError(f"SEARCH: expected a search key, got the string {value!r}")
        key = value.upper()
        if SequenceSet.is_set(key):
            seqs = SequenceSet.parse(key)
            return lambda c: any(lo <= c.seq <= hi for lo, hi in seqs.resolved(c.max_seq))
        if key in _FLAG_KEYS:
            flag, present = _FLAG_KEYS[key]
            return lambda c: (flag in c.message.flags) is present
        if key in _ADDRESS_KEYS:
            header = _ADDRESS_KEYS[key]
            needle = self.string(key)
            return lambda c: _header_matches(c, header, needle)
        return self._other(key)

    def _other(self, key: str) -> Predicate:
        if key == "ALL":
            return lambda c: True
        if key == "RECENT":
            return lambda c: c.recent
        if key == "OLD":
            return lambda c: not c.recent
        if key == "NEW":
            return lambda c: c.recent and "\\Seen" not in c.message.flags
        if key in ("KEYWORD", "UNKEYWORD"):
            flag = self.string(key)
            want = key == "KEYWORD"
            lowered = flag.lower()
            return lambda c: any(f.lower() == lowered for f in c.message.flags) is want
        if key == "HEADER":
            name = self.string("HEADER")
            needle = self.string("HEADER " + name)
            return lambda c: _header_matches(c, name, needle)
        if key == "BODY":
            needle = self.string(key)
            return lambda c: _contains(c.part.decoded_text(), needle)
        if key == "TEXT":
            needle = self.string(key)
            return lambda c: (
                _contains(c.part.all_header_text(), needle)
                or _contains(c.part.decoded_text(), needle)
            )
        if key in ("BEFORE", "ON", "SINCE"):
            day = self.date(key)
            return _compare(key, day, lambda c: c.message.internal_date.date())
        if key in ("SENTBEFORE", "SENTON", "SENTSINCE"):
            day = self.date(key)
            return _compare(key[4:], day, lambda c: _date_of(sent_date(c.part)))
        if key in ("LARGER", "SMALLER"):
            size = self.number(key)
            if key == "LARGER":
                return lambda c: c.message.size > size
            return lambda c: c.message.size < size
        if key == "UID":
            uids = SequenceSet.parse(self.string("UID"))
            return lambda c: any(lo <= c.message.uid <= hi for lo, hi in uids.resolved(c.max_uid))
        if key == "NOT":
            inner = self.key()
            return lambda c: not inner(c)
        if key == "OR":
            left = self.key()
            right = self.key()
            return lambda c: left(c) or right(c)
        raise ImapSyntaxError(
            f"SEARCH: unknown search key {key!r}; known keys are ALL, ANSWERED, BCC, BEFORE, "
            "BODY, CC, DELETED, DRAFT, FLAGGED, FROM, HEADER, KEYWORD, LARGER, NEW, NOT, OLD, "
            "ON, OR, RECENT, SEEN, SENTBEFORE, SENTON, SENTSINCE, SINCE, SMALLER, SUBJECT, "
            "TEXT, TO, UID, UNANSWERED, UNDELETED, UNDRAFT, UNFLAGGED, UNKEYWORD, UNSEEN, "
            "a sequence set and (...)"
        )


def _compare(op: str, day: date, get: Callable[[SearchContext], date | None]) -> Predicate:
    def check(c: SearchContext) -> bool:
        value = get(c)
        if value is None:
            return False
        if op == "BEFORE":
            return value < day
        if op == "ON":
            return value == day
        return value >= day

    return check


def _and(keys: list[Predicate]) -> Predicate:
    if len(keys) == 1:
        return keys[0]
    return lambda c: all(k(c) for k in keys)


def parse_search(values: list[Value]) -> tuple[str | None, Predicate]:
    """``(charset or None, predicate)`` from the arguments of SEARCH.

    Raises :class:`ImapSyntaxError` for malformed keys; the caller checks the charset.
    """
    _reject_8bit_atoms(values)
    charset: str | None = None
    if len(values) >= 2 and isinstance(values[0], Atom) and values[0].upper() == "CHARSET":
        charset = astring(values[1], "the SEARCH charset").upper()
        values = values[2:]
    return charset, _Parser(values).all()


def _reject_8bit_atoms(values: list[Value]) -> None:
    """BAD for 8-bit bytes in an atom, whatever the CHARSET, as Dovecot answers.

    Atoms are 7-bit (RFC 3501 section 9, ATOM-CHAR is a CHAR); a client that sends
    ``SUBJECT café`` unquoted would pass here and fail against a real server.
    """
    for value in values:
        if isinstance(value, list):
            _reject_8bit_atoms(value)
        elif isinstance(value, Atom) and not value.isascii():
            shown = value.encode("utf-8", "surrogateescape")
            raise ImapSyntaxError(
                f"8-bit data in the atom {shown!r}: atoms are 7-bit (RFC 3501 section 9); send "
                "non-ASCII text as a literal (its octet count in braces, then the octets) with "
                "its charset, e.g. SEARCH CHARSET UTF-8 SUBJECT {5} and then the UTF-8 octets"
            )
