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
from email.headerregistry import HeaderRegistry
from email.message import EmailMessage
from email.policy import EmailPolicy
from typing import TYPE_CHECKING, Any

__all__ = [
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
            return super().header_fetch_parse(name, value)
        except Exception as exc:
            # The stdlib parser has crashed on crafted input (RecursionError on nested
            # comments, AttributeError on some groups); the text is still worth having.
            self._defect(
                f"header {name!r} could not be parsed ({type(exc).__name__}); kept as text"
            )
            return _as_text(name, value)


def _truncate_field(value: str, limit: int, structured: bool) -> str:
    cut = value[:limit]
    # Prefer a cut between addresses or words so the kept part still parses cleanly.
    boundary = cut.rfind(",") if structured else -1
    if boundary <= limit // 2:
        boundary = max(cut.rfind(" "), cut.rfind("\t"))
    if boundary > limit // 2:
        cut = cut[:boundary]
    return cut.rstrip("\r\n \t,")


_BASE_POLICY = _CappedPolicy(refold_source="none")
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
