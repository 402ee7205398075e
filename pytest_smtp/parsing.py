"""The one parser of received mail: ``email.policy.default`` semantics, bounded in size and cost.

Header parsing in the :mod:`email` package is super-linear on crafted input: CPython's parser
rescans the rest of a whitespace-free word for every comment, quoted string or encoded word in
it, backtracks over address lists, and recurses once per nested comment. So before a header
field reaches it:

- the top-level header section is cut at :data:`MAX_HEADER_SECTION` bytes (the MIME fields
  that tell how to read the body are kept);
- each field is cut at :data:`MAX_FIELD` characters, a structured field (addresses,
  ``Content-Type``, ``Date``, ...) at :data:`MAX_STRUCTURED_FIELD`;
- a structured field whose parse would cost more than a legitimate one of its length (over
  :data:`MAX_PARSE_TOKENS` comments, quoted strings, encoded words and RFC 2231 sections in
  all, over :data:`MAX_WORD_TOKENS` of them in one word without whitespace, or comments nested
  deeper than :data:`MAX_COMMENT_DEPTH`) is counted in one linear scan and kept as
  unstructured text instead of being parsed.

Every cut and fallback appends a line to the message's defect list, naming the field and the
limit. This module imports nothing else from the package.
"""

from __future__ import annotations

import email.parser
import functools
import re
from email import _header_value_parser as _hvp
from email import errors, headerregistry
from email.headerregistry import HeaderRegistry
from email.message import EmailMessage
from email.policy import EmailPolicy
from typing import TYPE_CHECKING, Any

__all__ = [
    "MAX_ADDRESSES",
    "MAX_ADDRESS_LENGTH",
    "MAX_ADDRESS_TOKENS",
    "MAX_COMMENT_DEPTH",
    "MAX_FIELD",
    "MAX_HEADER_SECTION",
    "MAX_PARSE_TOKENS",
    "MAX_STRUCTURED_FIELD",
    "MAX_WORD_TOKENS",
    "STRUCTURED_FIELDS",
    "parse_message",
]

#: Bytes of the top-level header section handed to the parser; later fields are dropped.
MAX_HEADER_SECTION = 64 * 1024
#: Characters kept of one unstructured header field (Subject, Received, X-...).
MAX_FIELD = 8 * 1024
#: Characters kept of one structured field (addresses, Content-Type, Date, Message-ID, ...):
#: room for a ``To`` of 100 ordinary addresses.
MAX_STRUCTURED_FIELD = 4 * 1024
#: Comments, quoted strings, encoded words and RFC 2231 parameter sections parsed in one
#: structured field; a field with more is kept as unstructured text.
MAX_PARSE_TOKENS = 256
#: The same tokens within one word (a run without whitespace): the stdlib rescans the rest of
#: the word for each of them.
MAX_WORD_TOKENS = 32
#: Nesting depth of comments: the stdlib recurses once per level.
MAX_COMMENT_DEPTH = 32
#: Characters of one element of an address list (an address, or a group with its members);
#: an address field with a longer one is kept as unstructured text. RFC 5321 allows 256
#: octets for the address itself; the rest is room for a display name and comments.
MAX_ADDRESS_LENGTH = 256
#: Addresses (or groups) parsed in one address field; the rest are dropped with a defect.
MAX_ADDRESSES = 200
#: Lexical tokens (runs of atom characters, runs of whitespace, single specials) parsed in one
#: address field: once the addresses parsed so far hold this many, the rest are dropped with a
#: defect. The stdlib spends about the same time on each token, whatever its kind; a ``To`` of
#: 100 ordinary addresses has about 1,400.
MAX_ADDRESS_TOKENS = 2000

#: The header registry's structured fields (everything it parses beyond plain text), lower case.
STRUCTURED_FIELDS = frozenset(
    {
        "bcc",
        "cc",
        "content-disposition",
        "content-transfer-encoding",
        "content-type",
        "date",
        "from",
        "message-id",
        "mime-version",
        "orig-date",
        "reply-to",
        "resent-bcc",
        "resent-cc",
        "resent-date",
        "resent-from",
        "resent-sender",
        "resent-to",
        "sender",
        "to",
    }
)
_MIME_FIELDS = frozenset({b"mime-version", b"content-type", b"content-transfer-encoding"})
# The same header-line test as email.feedparser: the header section ends at the first line
# that is neither a field, a continuation nor an mbox "From " line.
_HEADER_LINE_RE = re.compile(rb"From |[\041-\071\073-\176]*:|[\t ]")
_NEWLINE_RE = re.compile(rb"\r\n|\r|\n")
_CRLF_RE = re.compile(r"\r\n|\r|\n")
# What the cost scan looks at: escapes, whitespace (ends a word), and the costly tokens.
_COST_TOKEN_RE = re.compile(r'\\.|[ \t\r\n]+|["()*]|=\?', re.DOTALL)
_FEED_CHUNK = 1 << 20
_UNSTRUCTURED = HeaderRegistry(use_default_map=False)

if TYPE_CHECKING:
    _EmailPolicyBase = EmailPolicy[EmailMessage]
else:
    _EmailPolicyBase = EmailPolicy


@functools.lru_cache(maxsize=256)
def _parse_cost_excess(value: str) -> str | None:
    """Say which cost limit ``value`` (a structured field) is over, or ``None``. Linear.

    Cached: the stdlib fetches some fields (Content-Type) several times per parse.
    """
    if value.count("(") + value.count('"') + value.count("*") + value.count("=?") <= (
        MAX_WORD_TOKENS
    ):
        return None  # under every limit: depth and per-word counts are at most the total
    tokens = word = worst_word = depth = worst_depth = 0
    quoted = False
    for match in _COST_TOKEN_RE.finditer(value):
        first = match.group()[0]
        if first in " \t\r\n":
            if word > worst_word:
                worst_word = word
            word = 0
        elif first == "\\":
            pass
        elif quoted:
            if first == '"':
                quoted = False
            elif first == "=":
                tokens += 1  # an encoded word in a quoted phrase is decoded too
                word += 1
        elif first == ")":
            if depth:
                depth -= 1
        elif first == '"' and depth:
            pass  # a quote inside a comment is plain text
        else:
            if first == '"':
                quoted = True
            elif first == "(":
                depth += 1
                if depth > worst_depth:
                    worst_depth = depth
            tokens += 1
            word += 1
    worst_word = max(worst_word, word)
    if worst_depth > MAX_COMMENT_DEPTH:
        return f"has comments nested {worst_depth} deep (limit {MAX_COMMENT_DEPTH})"
    what = "comments, quoted strings, encoded words and RFC 2231 sections"
    if tokens > MAX_PARSE_TOKENS:
        return f"has {tokens} {what} (limit {MAX_PARSE_TOKENS})"
    if worst_word > MAX_WORD_TOKENS:
        return f"has {worst_word} {what} in one word (limit {MAX_WORD_TOKENS})"
    return None


class _OverCap(Exception):
    """An address field over a cap that keeps it from being parsed (the text says which)."""


class _CapDefect(errors.HeaderDefect):
    """A cut made while parsing an address field, copied to the message's defect list."""


_OVER_LENGTH = (
    f"has an address or group over {MAX_ADDRESS_LENGTH} characters (limit {MAX_ADDRESS_LENGTH})"
)
# An element of an address list with nothing in it but whitespace.
_EMPTY_ELEMENT_RE = re.compile(r"[ \t\r\n]*(?:,|\Z)")
_HEXDIGITS = frozenset("0123456789abcdefABCDEF")
# A lexical token of an address list as the stdlib walks it: a quoted string or a comment
# (without comments inside) is one token plus the runs of whitespace it holds.
_LEXICAL_TOKEN_RE = re.compile(
    r'"(?:[^"\\]|\\.)*"?|\((?:[^()\\]|\\.)*\)?|[^ \t\r\n()<>@,;:\\".\[\]]+|[ \t\r\n]+|.',
    re.DOTALL,
)
_SPACE_RUN_RE = re.compile(r"[ \t\r\n]+")


def _lexical_tokens(text: str) -> int:
    """The number of lexical tokens in ``text``: the measure of its parse cost. Linear."""
    count = 0
    for match in _LEXICAL_TOKEN_RE.finditer(text):
        count += 1
        if match.group()[0] in '"(':
            count += len(_SPACE_RUN_RE.findall(match.group()))
    return count


def _encoded_words_end_inside(chunk: str, consumed: int) -> bool:
    """Whether every encoded word the stdlib may have tried in ``chunk[:consumed]`` ends inside
    ``chunk``, so that parsing the chunk alone saw what parsing the whole field would see.

    The stdlib looks for an encoded word's ``?=`` anywhere after its ``=?`` (and past one more
    ``?=`` when two hex digits follow, as in ``?=3D``): the only lookahead past an address.
    """
    start = chunk.find("=?", 0, consumed)
    while start >= 0:
        end = chunk.find("?=", start + 2)
        if end < 0 or end + 4 > len(chunk):
            return False
        if (
            chunk[end + 2] in _HEXDIGITS
            and chunk[end + 3] in _HEXDIGITS
            and chunk.count("?", start + 2, end) < 2
            and chunk.find("?=", end + 2) < 0
        ):
            return False
        start = chunk.find("=?", start + 2, consumed)
    return True


def _parse_element(chunk: str) -> tuple[_hvp.AddressList, str]:
    """One turn of the stdlib's ``get_address_list`` loop: the first element of ``chunk`` (not
    empty), as tokens in a list, and the text after it (empty, or starting with the comma)."""
    tokens = _hvp.AddressList()
    try:
        token, rest = _hvp.get_address(chunk)
        tokens.append(token)
    except errors.HeaderParseError:
        rest = chunk
        leader: _hvp.TokenList | None = None
        if rest[0] in _hvp.CFWS_LEADER:
            leader, rest = _hvp.get_cfws(rest)
        if leader is not None and (not rest or rest[0] == ","):
            tokens.append(leader)
            tokens.defects.append(errors.ObsoleteHeaderDefect("address-list entry with no content"))
        else:
            invalid, rest = _hvp.get_invalid_mailbox(rest, ",")
            if leader is not None:
                invalid[:0] = [leader]
            tokens.append(_hvp.Address([invalid]))
            tokens.defects.append(errors.InvalidHeaderDefect("invalid address in address-list"))
    if rest and rest[0] != ",":
        # Text after the address: the stdlib makes the address an invalid mailbox holding it.
        mailbox = tokens[-1][0]
        assert isinstance(mailbox, _hvp.TokenList)
        mailbox.token_type = "invalid-mailbox"
        more, rest = _hvp.get_invalid_mailbox(rest, ",")
        mailbox.extend(more)
        tokens.defects.append(errors.InvalidHeaderDefect("invalid address in address-list"))
    return tokens, rest


def _parse_address_list(value: str) -> _hvp.AddressList:
    """``get_address_list`` of the stdlib, one element at a time, each parsed alone.

    The stdlib parses an address list in one pass whose steps copy the rest of the field and
    whose defect lists are summed quadratically, so a field of many tiny or empty elements
    costs many times a legitimate field of its length. Here each element is parsed from a
    window of :data:`MAX_ADDRESS_LENGTH` characters (an element that does not end inside it
    raises :class:`_OverCap`), empty elements are dropped with one defect (RFC 5322's
    obs-addr-list allows them), and parsing stops after :data:`MAX_ADDRESSES` elements. The
    result is the stdlib's for every field within the caps, but for the empty elements'
    separators and defects.
    """
    result = _hvp.AddressList()
    pos = 0
    empty = 0
    elements = 0
    tokens_parsed = 0
    while pos < len(value):
        blank = _EMPTY_ELEMENT_RE.match(value, pos)
        if blank is not None:
            empty += 1
            pos = blank.end()
            continue
        if elements == MAX_ADDRESSES or tokens_parsed >= MAX_ADDRESS_TOKENS:
            what, limit = (
                (f"{MAX_ADDRESSES} addresses", MAX_ADDRESSES)
                if elements == MAX_ADDRESSES
                else (f"{MAX_ADDRESS_TOKENS} words, specials and spaces", MAX_ADDRESS_TOKENS)
            )
            result.defects.append(
                _CapDefect(
                    f"has more than {what}: the first {elements} addresses parsed, the rest "
                    f"({len(value) - pos} characters) dropped (limit {limit})"
                )
            )
            break
        window = value[pos : pos + MAX_ADDRESS_LENGTH + 1]
        tokens, rest = _parse_element(window)
        consumed = len(window) - len(rest)
        if pos + len(window) < len(value):
            if not rest:
                raise _OverCap(_OVER_LENGTH)
            if not _encoded_words_end_inside(window, consumed):
                # Rare: an encoded word may reach past the window; parse from the whole rest.
                tokens, rest = _parse_element(value[pos:])
                consumed = len(value) - pos - len(rest)
                if consumed > MAX_ADDRESS_LENGTH:
                    raise _OverCap(_OVER_LENGTH)
        tokens_parsed += _lexical_tokens(value[pos : pos + consumed])
        pos += consumed + 1  # and the comma after the element, if any
        if elements:
            result.append(_hvp.ListSeparator)
        result.extend(tokens)
        result.defects.extend(tokens.defects)
        elements += 1
    if empty:
        what = "empty element" if empty == 1 else f"{empty} empty elements"
        result.defects.append(errors.ObsoleteHeaderDefect(f"{what} in address-list"))
    return result


def _capped_address_header(base: type[Any]) -> type[Any]:
    return type(base.__name__, (base,), {"value_parser": staticmethod(_parse_address_list)})


_HEADER_FACTORY = HeaderRegistry()
for _name, _class in headerregistry._default_header_map.items():  # type: ignore[attr-defined]
    if issubclass(_class, headerregistry.AddressHeader):
        _HEADER_FACTORY.map_to_type(_name, _capped_address_header(_class))


def _as_text(name: str, value: str) -> Any:
    unfolded = _CRLF_RE.sub("", value)
    try:
        return _UNSTRUCTURED(name, unfolded)
    except Exception:
        return unfolded


class _CappedPolicy(_EmailPolicyBase):
    """``policy.default`` with size and cost caps per header field and a fallback for crashes.

    Applies to every MIME part, not only the top-level header section. ``_defects`` (set per
    parse) collects a line for every cut or fallback.
    """

    _defects: list[str] | None = None

    def _defect(self, text: str) -> None:
        defects = self._defects
        if defects is not None and text not in defects:
            defects.append(text)

    def header_source_parse(self, sourcelines: list[str]) -> tuple[str, str]:
        name, value = super().header_source_parse(sourcelines)
        structured = name.strip().lower() in STRUCTURED_FIELDS
        limit = MAX_STRUCTURED_FIELD if structured else MAX_FIELD
        if len(value) > limit:
            kept = _truncate_field(value, limit, structured)
            self._defect(
                f"header {name.strip()!r} of {len(value)} characters truncated to {len(kept)} "
                f"(limit {limit})"
            )
            value = kept
        return name, value

    def header_fetch_parse(self, name: str, value: str) -> Any:
        if not hasattr(value, "name") and name.lower() in STRUCTURED_FIELDS:
            excess = _parse_cost_excess(value)
            if excess is not None:
                self._defect(f"header {name!r} {excess}; kept as unstructured text")
                return _as_text(name, value)
        try:
            header = super().header_fetch_parse(name, value)
        except _OverCap as exc:
            self._defect(f"header {name!r} {exc}; kept as unstructured text")
            return _as_text(name, value)
        except Exception as exc:
            # The stdlib parser has crashed on crafted input (RecursionError on nested
            # comments, AttributeError on some groups); the text is still worth having.
            self._defect(
                f"header {name!r} could not be parsed ({type(exc).__name__}); kept as text"
            )
            return _as_text(name, value)
        for defect in getattr(header, "defects", ()):
            if isinstance(defect, _CapDefect):
                self._defect(f"header {name!r} {defect}")
        return header


def _truncate_field(value: str, limit: int, structured: bool) -> str:
    cut = value[:limit]
    # Prefer a cut between addresses or words so the kept part still parses cleanly.
    boundary = cut.rfind(",") if structured else -1
    if boundary <= limit // 2:
        boundary = max(cut.rfind(" "), cut.rfind("\t"))
    if boundary > limit // 2:
        cut = cut[:boundary]
    return cut.rstrip("\r\n \t,")


_BASE_POLICY = _CappedPolicy(refold_source="none", header_factory=_HEADER_FACTORY)
#: The capped policy with CRLF line ends, for writing parsed parts back out as bytes.
SERIALIZE_POLICY = _BASE_POLICY.clone(linesep="\r\n")


def _cap_header_section(raw: bytes, defects: list[str]) -> tuple[bytes, int] | None:
    """When the top-level header section is over :data:`MAX_HEADER_SECTION`, return the kept
    fields and the offset where the rest of the message starts; otherwise ``None``.
    """
    fields: list[tuple[int, int]] = []
    pos = 0
    end = len(raw)
    for newline in _NEWLINE_RE.finditer(raw):
        start = pos
        if newline.start() == start or not _HEADER_LINE_RE.match(raw, start):
            end = start
            break
        pos = newline.end()
        if raw[start] in b" \t" and fields:
            fields[-1] = (fields[-1][0], pos)
        else:
            fields.append((start, pos))
    else:
        # No line break after the last field: the message is all header section.
        if pos < len(raw) and _HEADER_LINE_RE.match(raw, pos):
            if raw[pos] in b" \t" and fields:
                fields[-1] = (fields[-1][0], len(raw))
            else:
                fields.append((pos, len(raw)))
            end = len(raw)
        else:
            end = pos
    if end <= MAX_HEADER_SECTION:
        return None
    kept: list[bytes] = []
    size = 0
    dropped = 0
    mime_seen: set[bytes] = set()
    for start, stop in fields:
        colon = raw.find(b":", start, stop)
        name = raw[start:colon].strip().lower() if colon >= 0 else b""
        field_bytes = raw[start:stop]
        if len(field_bytes) > 2 * MAX_FIELD:
            # Enough for the per-field cap to cut cleanly (and record it) later.
            field_bytes = field_bytes[: 2 * MAX_FIELD].rstrip(b"\r\n") + b"\r\n"
        if dropped == 0 and size + len(field_bytes) <= MAX_HEADER_SECTION:
            kept.append(field_bytes)
            size += len(field_bytes)
        elif name in _MIME_FIELDS and name not in mime_seen:
            # Without these the body would be misread; their size is capped per field later.
            kept.append(field_bytes)
        else:
            dropped += 1
            continue
        if name in _MIME_FIELDS:
            mime_seen.add(name)
    defects.append(
        f"header section of {end} bytes is over the {MAX_HEADER_SECTION}-byte limit: "
        f"{dropped} fields after it were dropped"
    )
    return b"".join(kept), end


def parse_message(raw: bytes, defects: list[str] | None = None) -> tuple[EmailMessage, list[str]]:
    """Parse the bytes of a message with ``policy.default`` semantics, capped; never raises.

    Returns the message and its defect list: one line for every cut or fallback (a field
    truncated, a field too costly to parse kept as unstructured text, fields dropped from an
    over-long header section, MIME nesting too deep). Header fields are parsed when first read,
    so the list grows as they are; pass ``defects`` to have the lines appended to your list.
    """
    if defects is None:
        defects = []
    policy = _BASE_POLICY.clone()
    # Policies refuse attribute assignment; this is the per-parse defect list.
    object.__setattr__(policy, "_defects", defects)
    capped = _cap_header_section(raw, defects)
    header, body_start = (b"", 0) if capped is None else capped
    try:
        parser = email.parser.BytesFeedParser(policy=policy)
        parser.feed(header)
        view = memoryview(raw)
        for offset in range(body_start, len(raw), _FEED_CHUNK):
            parser.feed(bytes(view[offset : offset + _FEED_CHUNK]))
        message = parser.close()
    except RecursionError:
        # The feed parser recurses once per MIME level; crafted nesting exhausts the stack.
        defects.append("MIME parts nested too deeply to parse; the body is left as one part")
        data = header + raw[body_start:] if capped is not None else raw
        message = email.parser.BytesParser(policy=policy).parsebytes(data, headersonly=True)
    assert isinstance(message, EmailMessage)
    return message, defects
