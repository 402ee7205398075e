"""Differential check: our IMAPServer and POP3Server against Dovecot, same script, same mail.

Dovecot (Debian's dovecot-imapd/dovecot-pop3d, started on 127.0.0.1 by tests/integration/
dovecot.py) and our servers get the same messages APPENDed with the same flags and internal
dates, then the same scripted session. Every command's untagged responses and tagged result
are parsed and normalised (server text, capability lists, UIDVALIDITY values and response
order dropped; FLAGS as sets; literals and quoted strings alike; EXPUNGE runs reduced to the
set of original messages removed) and compared.

The differences found so far are listed in ``KNOWN_IMAP`` / ``KNOWN_POP3``, each with the
command, both answers and why; the tests assert the observed differences are exactly those,
so a new divergence fails and so does a fixed one (remove its entry then).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone

import pytest
from dovecot import Dovecot, RawIMAP, RawPOP3, find_dovecot

from pytest_smtp.retrieval.imap import IMAPServer
from pytest_smtp.retrieval.pop3 import POP3Server
from pytest_smtp.store import MailStore

pytestmark = pytest.mark.external

PASSWORD = "s3cret"
IMAP_USER = "bob@example.org"
POP3_USER = "pop@example.org"
USERS = {IMAP_USER: PASSWORD, POP3_USER: PASSWORD}


# -- the mail both servers get ------------------------------------------------------------------


def _crlf(text: str) -> bytes:
    return text.replace("\n", "\r\n").encode("utf-8")


SIMPLE = _crlf(
    """\
Return-Path: <alice@example.com>
Received: from mx.example.com by mail.example.org; Wed, 01 Mar 2023 12:00:00 +0000
From: Alice Example <alice@example.com>
To: Bob <bob@example.org>
Cc: carol@example.net
Subject: Quarterly report
Date: Wed, 01 Mar 2023 11:59:00 +0000
Message-ID: <msg1@example.com>
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 7bit

Hello Bob,
the quarterly numbers are attached in spirit.
.a line that starts with a dot
Alice
"""
)

ALTERNATIVE = _crlf(
    """\
From: =?utf-8?q?Zo=C3=AB_Zed?= <zoe@example.net>
Sender: robot@example.net
Reply-To: orders@example.net
To: "Doe, John" <john@example.org>, bob@example.org
Subject: =?utf-8?q?Caf=C3=A9_order?=
Date: Sun, 05 Mar 2023 07:00:00 -0500
Message-ID: <msg2@example.net>
In-Reply-To: <msg1@example.com>
MIME-Version: 1.0
Content-Type: multipart/alternative; boundary="ALT"

This is a multi-part message in MIME format.
--ALT
Content-Type: text/plain; charset="utf-8"
Content-Transfer-Encoding: quoted-printable

One caf=C3=A9 au lait, please.
--ALT
Content-Type: text/html; charset="utf-8"
Content-Transfer-Encoding: quoted-printable

<p>One caf=C3=A9 au lait, please.</p>
--ALT--
"""
)

ATTACHMENT = _crlf(
    """\
From: alice@example.com
To: bob@example.org
Subject: Report attached
Date: Mon, 10 Apr 2023 12:00:00 +0000
Message-ID: <msg3@example.com>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="MIX"

--MIX
Content-Type: text/plain; charset=us-ascii

See the attachment.
--MIX
Content-Type: application/pdf; name="report.pdf"
Content-Disposition: attachment; filename="report.pdf"
Content-Transfer-Encoding: base64
Content-Description: the report

JVBERi0xLjQKJcfsj6IKMSAwIG9iago8PC9UeXBlL0NhdGFsb2c+PgplbmRvYmoK
--MIX--
"""
)

FORWARD = _crlf(
    """\
From: Bob <bob@example.org>
To: dave@example.com
Subject: Fwd: Quarterly report
Date: Thu, 20 Apr 2023 12:00:00 +0200
Message-ID: <msg4@example.org>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="FWD"

--FWD
Content-Type: text/plain

See below.
--FWD
Content-Type: message/rfc822

From: Alice Example <alice@example.com>
To: Bob <bob@example.org>
Subject: Quarterly report
Date: Wed, 01 Mar 2023 11:59:00 +0000
Message-ID: <msg1@example.com>

Hello Bob,
the numbers.
--FWD--
"""
)

# No Date, Message-ID or MIME-Version: the envelope is mostly NIL. The word "needle" is only
# in the base64 body, so BODY/TEXT searches show whether a server decodes before matching.
MINIMAL = _crlf(
    """\
From: nobody@example.com
Subject: minimal
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: base64

VGhlIG5lZWRsZSBpcyBoaWRkZW4gaGVyZS4K
"""
)

BIG = _crlf(
    "From: Alice Example <alice@example.com>\n"
    "To: undisclosed-recipients:;\n"
    "Subject: A big one\n"
    "Date: Tue, 02 May 2023 18:30:00 +0000\n"
    "Message-ID: <msg6@example.com>\n"
    "\n" + "".join(f"line {i:04d} of the big message, padding padding padding\n" for i in range(60))
)


@dataclass(frozen=True)
class Seed:
    """One message to APPEND: flags and internal date given explicitly."""

    raw: bytes
    flags: str
    date: str


SEEDS = [
    Seed(SIMPLE, "\\Seen", "01-Mar-2023 12:00:00 +0000"),
    Seed(ALTERNATIVE, "", "05-Mar-2023 12:00:00 -0500"),
    Seed(ATTACHMENT, "\\Flagged", "10-Apr-2023 12:00:00 +0000"),
    Seed(FORWARD, "\\Answered \\Seen $Label1", "20-Apr-2023 12:00:00 +0200"),
    Seed(MINIMAL, "\\Draft", "02-May-2023 09:00:00 +0000"),
    Seed(BIG, "", "02-May-2023 18:30:00 +0000"),
]

# A message without a final line break, for POP3's terminating CRLF.
UNTERMINATED = b"From: alice@example.com\r\nSubject: no final newline\r\n\r\nlast line"

# -- the IMAP script: (command, literal or None, the status Dovecot must give) -------------------

IMAP_SCRIPT: list[tuple[str, bytes | None, str]] = [
    (f"LOGIN {IMAP_USER} wrong", None, "NO"),
    (f"LOGIN {IMAP_USER} {PASSWORD}", None, "OK"),
    *((f'APPEND INBOX ({seed.flags}) "{seed.date}" ', seed.raw, "OK") for seed in SEEDS),
    ('LIST "" "*"', None, "OK"),
    ("CREATE Archive", None, "OK"),
    ("CREATE Archive", None, "NO"),
    ('LIST "" "*"', None, "OK"),
    ('LIST "" "%"', None, "OK"),
    ("STATUS INBOX (MESSAGES RECENT UIDNEXT UNSEEN)", None, "OK"),
    ("SELECT INBOX", None, "OK"),
    ("FETCH 1:* (FLAGS UID)", None, "OK"),
    ("FETCH 1:* (INTERNALDATE RFC822.SIZE)", None, "OK"),
    ("FETCH 1:* ENVELOPE", None, "OK"),
    ("FETCH 1:* BODYSTRUCTURE", None, "OK"),
    ("FETCH 1:* BODY", None, "OK"),
    ("FETCH 1 BODY.PEEK[]", None, "OK"),
    ("FETCH 2 BODY.PEEK[HEADER]", None, "OK"),
    ("FETCH 2 BODY.PEEK[HEADER.FIELDS (FROM SUBJECT)]", None, "OK"),
    ("FETCH 2 BODY.PEEK[HEADER.FIELDS.NOT (FROM SUBJECT)]", None, "OK"),
    ("FETCH 2 BODY.PEEK[TEXT]", None, "OK"),
    ("FETCH 2 BODY.PEEK[1]", None, "OK"),
    ("FETCH 3 BODY.PEEK[2]", None, "OK"),
    ("FETCH 3 BODY.PEEK[2.MIME]", None, "OK"),
    ("FETCH 4 BODY.PEEK[2.HEADER]", None, "OK"),
    ("FETCH 4 BODY.PEEK[2.TEXT]", None, "OK"),
    ("FETCH 1 BODY.PEEK[]<0.20>", None, "OK"),
    ("FETCH 1 BODY.PEEK[]<100000.20>", None, "OK"),
    ("FETCH 2 RFC822.HEADER", None, "OK"),
    ("FETCH 2 RFC822.SIZE", None, "OK"),
    ("FETCH 2 BODY[TEXT]", None, "OK"),
    ("FETCH 6 RFC822", None, "OK"),
    ("FETCH 1:* FLAGS", None, "OK"),
    ("FETCH 1:* FAST", None, "OK"),
    ("SEARCH ALL", None, "OK"),
    ("SEARCH SEEN", None, "OK"),
    ("SEARCH UNSEEN", None, "OK"),
    ("SEARCH FLAGGED", None, "OK"),
    ("SEARCH ANSWERED", None, "OK"),
    ("SEARCH DRAFT", None, "OK"),
    ("SEARCH DELETED", None, "OK"),
    ("SEARCH KEYWORD $Label1", None, "OK"),
    ("SEARCH RECENT", None, "OK"),
    ("SEARCH NEW", None, "OK"),
    ("SEARCH FROM alice", None, "OK"),
    ("SEARCH TO john", None, "OK"),
    ("SEARCH CC carol", None, "OK"),
    ('SEARCH SUBJECT "report"', None, "OK"),
    ("SEARCH SUBJECT café", None, "BAD"),
    ("SEARCH CHARSET UTF-8 SUBJECT ", "café".encode(), "OK"),
    # 8-bit atoms are BAD with a CHARSET too; 8-bit quoted strings and literals are searched
    # as UTF-8 without one.
    ("SEARCH CHARSET UTF-8 SUBJECT café", None, "BAD"),
    ('SEARCH SUBJECT "café"', None, "OK"),
    ("SEARCH SUBJECT ", "café".encode(), "OK"),
    ("SEARCH BODY numbers", None, "OK"),
    # TEXT looks at every header, MIME part headers and attached messages' too; BODY at none.
    ("SEARCH TEXT alice", None, "OK"),
    ("SEARCH TEXT report.pdf", None, "OK"),
    ("SEARCH BODY alice", None, "OK"),
    ("SEARCH BODY needle", None, "OK"),
    ("SEARCH HEADER Message-ID <msg3@example.com>", None, "OK"),
    ('SEARCH HEADER In-Reply-To ""', None, "OK"),
    ("SEARCH SINCE 10-Apr-2023", None, "OK"),
    ("SEARCH BEFORE 10-Apr-2023", None, "OK"),
    ("SEARCH ON 2-May-2023", None, "OK"),
    ("SEARCH LARGER 1000", None, "OK"),
    ("SEARCH SMALLER 400", None, "OK"),
    ("SEARCH NOT SEEN", None, "OK"),
    ("SEARCH OR FLAGGED DRAFT", None, "OK"),
    ("SEARCH 2:4", None, "OK"),
    ("SEARCH UID 2:*", None, "OK"),
    ("SEARCH 1:* NOT FROM alice SINCE 1-Mar-2023", None, "OK"),
    ("SEARCH CHARSET UTF-8 SUBJECT Caf", None, "OK"),
    ("SEARCH CHARSET KOI8-Q ALL", None, "NO"),
    ("SEARCH FROBNICATE", None, "BAD"),
    ("UID SEARCH ALL", None, "OK"),
    ("UID SEARCH UNSEEN", None, "OK"),
    ("UID FETCH 2:4 (FLAGS)", None, "OK"),
    ("UID FETCH 3 BODY.PEEK[HEADER.FIELDS (Subject)]", None, "OK"),
    ("UID FETCH 99 FLAGS", None, "OK"),
    ("STORE 1 +FLAGS (\\Flagged)", None, "OK"),
    ("STORE 1 -FLAGS.SILENT (\\Flagged)", None, "OK"),
    ("STORE 3 FLAGS (\\Seen $Label2)", None, "OK"),
    ("STORE 1 +FLAGS.SILENT ($Label3)", None, "OK"),
    ("UID STORE 5 +FLAGS (\\Answered)", None, "OK"),
    ("UID STORE 6 -FLAGS (\\Seen)", None, "OK"),
    ("FETCH 1:* FLAGS", None, "OK"),
    ("COPY 1:2 Archive", None, "OK"),
    ("UID COPY 3 Archive", None, "OK"),
    ("COPY 1 Nowhere", None, "NO"),
    ("STATUS Archive (MESSAGES RECENT UIDNEXT UNSEEN)", None, "OK"),
    ("STORE 2,4,5 +FLAGS.SILENT (\\Deleted)", None, "OK"),
    ("SEARCH DELETED", None, "OK"),
    ("EXPUNGE", None, "OK"),
    ("FETCH 1:* (UID FLAGS)", None, "OK"),
    ("FETCH 9 FLAGS", None, "BAD"),
    ("UID STORE 6 +FLAGS.SILENT (\\Deleted)", None, "OK"),
    ("UID EXPUNGE 6", None, "OK"),
    ("NOOP", None, "OK"),
    ("CHECK", None, "OK"),
    ("SELECT Archive", None, "OK"),
    ("FETCH 1:* (UID FLAGS INTERNALDATE RFC822.SIZE)", None, "OK"),
    ("EXAMINE INBOX", None, "OK"),
    ("STORE 1 +FLAGS (\\Flagged)", None, "OK"),
    ("FETCH 1 FLAGS", None, "OK"),
    ("SELECT Nowhere", None, "NO"),
    ("FETCH 1 FLAGS", None, "BAD"),
    ("SELECT INBOX", None, "OK"),
    ("CLOSE", None, "OK"),
    ("STATUS INBOX (MESSAGES UIDNEXT UNSEEN)", None, "OK"),
    ("RENAME Archive Old", None, "OK"),
    ('LIST "" "*"', None, "OK"),
    ("DELETE Old", None, "OK"),
    ('LIST "" "*"', None, "OK"),
]

# -- the differences found, reported to the lead (who decides which side changes) ----------------

_BADCHARSET_LIST = (
    "NO [BADCHARSET]: ours lists the supported charsets, Dovecot does not; the list is "
    "optional (RFC 3501 7.1). Both valid."
)
_KEYWORD_MEMORY = (
    "FLAGS at SELECT/EXAMINE: Dovecot lists every keyword ever used in the mailbox ($Label1 "
    "stays after its only message was expunged), ours those on current messages. Both valid."
)
_STORE_READ_ONLY = (
    "STORE in a mailbox opened with EXAMINE: ours NO [READ-ONLY], Dovecot OK and silently "
    "changes nothing (the FETCH after it agrees). Ours is the stricter; keep."
)
_NONEXISTENT = (
    "SELECT of a missing mailbox: ours adds the RFC 5530 code [NONEXISTENT], Dovecot sends a "
    "plain NO. Both valid."
)

# Step → (lines only ours gave, lines only Dovecot gave, why). The tests assert the observed
# differences are exactly these: a new divergence fails, and so does a fixed one (delete it).
KNOWN_IMAP: dict[str, tuple[tuple[str, ...], tuple[str, ...], str]] = {
    "#75 SEARCH CHARSET KOI8-Q ALL": (
        ("NO [BADCHARSET (UTF-8 US-ASCII)]",),
        ("NO [BADCHARSET]",),
        _BADCHARSET_LIST,
    ),
    "#104 EXAMINE INBOX": (
        ("* FLAGS ($Label2 $Label3 \\Answered \\Deleted \\Draft \\Flagged \\Seen)",),
        ("* FLAGS ($Label1 $Label2 $Label3 \\Answered \\Deleted \\Draft \\Flagged \\Seen)",),
        _KEYWORD_MEMORY,
    ),
    "#105 STORE 1 +FLAGS (\\Flagged)": (
        ("NO [READ-ONLY]",),
        ("OK",),
        _STORE_READ_ONLY,
    ),
    "#107 SELECT Nowhere": (
        ("NO [NONEXISTENT]",),
        ("NO",),
        _NONEXISTENT,
    ),
    "#109 SELECT INBOX": (
        (
            "* FLAGS ($Label2 $Label3 \\Answered \\Deleted \\Draft \\Flagged \\Seen)",
            (
                "* OK [PERMANENTFLAGS ($Label2 $Label3 \\* \\Answered \\Deleted \\Draft \\Flagged "
                "\\Seen)]"
            ),
        ),
        (
            "* FLAGS ($Label1 $Label2 $Label3 \\Answered \\Deleted \\Draft \\Flagged \\Seen)",
            (
                "* OK [PERMANENTFLAGS ($Label1 $Label2 $Label3 \\* \\Answered \\Deleted \\Draft "
                "\\Flagged \\Seen)]"
            ),
        ),
        _KEYWORD_MEMORY,
    ),
}
KNOWN_POP3: dict[str, tuple[tuple[str, ...], tuple[str, ...], str]] = {}


# -- parsing and normalising IMAP responses ----------------------------------------------------

Token = bytes | str | None | list["Token"]
"""A parsed IMAP value: bytes for strings (quoted or literal), str for atoms, None for NIL."""

_ATOM_END = b' ()"{[]'
_LITERAL_AT = re.compile(rb"\{(\d+)\+?\}\r\n")


class _Parser:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def at_end(self) -> bool:
        return self.pos >= len(self.data)

    def skip_space(self) -> None:
        while self.pos < len(self.data) and self.data[self.pos : self.pos + 1] == b" ":
            self.pos += 1

    def values(self, closing: bytes | None = None) -> list[Token]:
        out: list[Token] = []
        while True:
            self.skip_space()
            if self.at_end():
                if closing is not None:
                    raise ValueError(f"unclosed {closing!r} in {self.data!r}")
                return out
            if closing is not None and self.data[self.pos : self.pos + 1] == closing:
                self.pos += 1
                return out
            out.append(self.value())

    def value(self) -> Token:
        char = self.data[self.pos : self.pos + 1]
        if char == b"(":
            self.pos += 1
            return self.values(b")")
        if char == b'"':
            return self.quoted()
        literal = _LITERAL_AT.match(self.data, self.pos)
        if literal is not None:
            start = literal.end()
            self.pos = start + int(literal.group(1))
            return self.data[start : self.pos]
        return self.atom()

    def quoted(self) -> bytes:
        out = bytearray()
        self.pos += 1
        while True:
            char = self.data[self.pos : self.pos + 1]
            if not char:
                raise ValueError(f"unterminated quoted string in {self.data!r}")
            self.pos += 1
            if char == b"\\":
                out += self.data[self.pos : self.pos + 1]
                self.pos += 1
            elif char == b'"':
                return bytes(out)
            else:
                out += char

    def atom(self) -> Token:
        start = self.pos
        while not self.at_end():
            char = self.data[self.pos : self.pos + 1]
            if char == b"[":
                # BODY[HEADER.FIELDS (A B)]<0>: the section may hold spaces and parentheses.
                end = self.data.index(b"]", self.pos)
                self.pos = end + 1
                continue
            if char in _ATOM_END and char:
                break
            self.pos += 1
        if self.pos == start:
            raise ValueError(f"unexpected {self.data[self.pos :]!r} in {self.data!r}")
        text = self.data[start : self.pos].decode("utf-8", "replace")
        return None if text.upper() == "NIL" else text


def _show(value: Token) -> str:
    if value is None:
        return "NIL"
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return repr(value)[1:]
    return "(" + " ".join(_show(v) for v in value) + ")"


def _name(value: Token) -> str:
    """A mailbox name: the same whether sent as an atom, a quoted string or a literal."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    assert isinstance(value, str), value
    return value


def _instant(value: Token) -> str:
    """An INTERNALDATE as the UTC instant: Dovecot keeps the time (a Maildir file's mtime) but
    not the zone it was given in, and " 1-Mar" and "01-Mar" are both RFC 3501 date-day-fixed."""
    assert isinstance(value, bytes), value
    moment = datetime.strptime(value.decode().strip(), "%d-%b-%Y %H:%M:%S %z")
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _lower(value: Token) -> Token:
    return value.lower() if isinstance(value, bytes) else value


def _params(value: Token) -> Token:
    """A body parameter list with the (case-insensitive) attribute names lower-cased."""
    if not isinstance(value, list):
        return value
    return [_lower(v) if i % 2 == 0 else v for i, v in enumerate(value)]


def _disposition(value: Token) -> Token:
    if not isinstance(value, list) or len(value) != 2:
        return value
    return [_lower(value[0]), _params(value[1])]


def _body(value: Token) -> Token:
    """BODY/BODYSTRUCTURE with the case-insensitive fields (media type and subtype, encoding,
    parameter names, disposition type) lower-cased; everything else kept as sent."""
    if not isinstance(value, list) or not value:
        return value
    if isinstance(value[0], list):
        count = next((i for i, v in enumerate(value) if not isinstance(v, list)), len(value))
        out: list[Token] = [_body(part) for part in value[:count]]
        rest = value[count:]
        if rest:
            out.append(_lower(rest[0]))
        if len(rest) > 1:
            out.append(_params(rest[1]))
        if len(rest) > 2:
            out.append(_disposition(rest[2]))
        return out + rest[3:]
    kind, subtype = _lower(value[0]), _lower(value[1])
    out = [kind, subtype, _params(value[2]), *value[3:5], _lower(value[5]), *value[6:7]]
    extension = 7
    if kind == b"text":
        extension = 8
    elif kind == b"message" and subtype == b"rfc822":
        extension = 10
        out += [value[7], _body(value[8])]
    out += value[len(out) : extension]
    tail = value[extension:]
    if len(tail) > 1:
        tail = [tail[0], _disposition(tail[1]), *tail[2:]]
    return out + tail


def _flag_set(value: Token) -> str:
    assert isinstance(value, list), value
    return "(" + " ".join(sorted(str(v) for v in value)) + ")"


_STATUSES = {"OK", "NO", "BAD", "BYE", "PREAUTH"}


def _code(data: bytes) -> tuple[str, bytes]:
    """Split ``[CODE args] text`` into the normalised code (or "") and the text."""
    if not data.startswith(b"["):
        return "", data
    end = data.index(b"]")
    parser = _Parser(data[1:end])
    parts = parser.values()
    name = str(parts[0]).upper() if parts else ""
    args = parts[1:]
    if name == "CAPABILITY":
        return "", data[end + 1 :]
    if name in ("UIDVALIDITY", "APPENDUID", "COPYUID") and args:
        args = ["<uidvalidity>", *args[1:]]
    if name == "PERMANENTFLAGS" and args:
        return f"[{name} {_flag_set(args[0])}]", data[end + 1 :]
    return "[" + " ".join([name, *(_show(a) for a in args)]) + "]", data[end + 1 :]


def _status(data: bytes) -> str:
    """``OK [CODE] text`` → ``OK [CODE]`` (text dropped, code normalised)."""
    word, _, rest = data.partition(b" ")
    code, _ = _code(rest)
    return f"{word.decode().upper()} {code}".rstrip()


def _fetch_items(items: list[Token]) -> str:
    pairs: dict[str, str] = {}
    for name, value in zip(items[::2], items[1::2], strict=True):
        key = str(name).upper()
        if key == "FLAGS":
            pairs[key] = _flag_set(value)
        elif key == "INTERNALDATE":
            pairs[key] = _instant(value)
        elif key in ("BODY", "BODYSTRUCTURE"):
            pairs[key] = _show(_body(value))
        else:
            pairs[key] = _show(value)
    return " ".join(f"{k} {v}" for k, v in sorted(pairs.items()))


def _untagged(data: bytes) -> str:
    """One untagged response (without ``* ``), normalised to a comparable string."""
    word, _, rest = data.partition(b" ")
    upper = word.decode().upper()
    if upper in _STATUSES:
        return "* " + _status(data)
    if upper == "CAPABILITY":
        return "* CAPABILITY <dropped>"
    if upper == "FLAGS":
        return "* FLAGS " + _flag_set(_Parser(rest).values()[0])
    if upper == "SEARCH":
        return "* SEARCH " + " ".join(str(n) for n in sorted(int(n) for n in rest.split()))
    if upper == "LIST" or upper == "LSUB":
        attrs, delim, name = _Parser(rest).values()
        return f"* {upper} {_flag_set(attrs)} {_show(delim)} {_name(name)}"
    if upper == "STATUS":
        name, items = _Parser(rest).values()
        assert isinstance(items, list)
        pairs = sorted(
            zip((str(k).upper() for k in items[::2]), map(_show, items[1::2]), strict=True)
        )
        return f"* STATUS {_name(name)} (" + " ".join(f"{k} {v}" for k, v in pairs) + ")"
    if word.isdigit():
        kind, _, tail = rest.partition(b" ")
        kind_text = kind.decode().upper()
        if kind_text == "FETCH":
            items = _Parser(tail).values()[0]
            assert isinstance(items, list)
            return f"* {int(word)} FETCH ({_fetch_items(items)})"
        return f"* {int(word)} {kind_text}"
    return "* " + _show(_Parser(data).values())


def _expunged(numbers: list[int]) -> str:
    """A run of ``* n EXPUNGE`` as the original sequence numbers it removed (order-free)."""
    alive = list(range(1, max(numbers) + len(numbers) + 1))
    removed = [alive.pop(n - 1) for n in numbers]
    return "* EXPUNGED original " + " ".join(map(str, sorted(removed)))


def normalise(untagged: list[bytes], tagged: bytes) -> tuple[str, ...]:
    """A command's answer as sorted normalised untagged responses, then the tagged status."""
    out: list[str] = []
    expunges: list[int] = []
    for raw in untagged:
        assert raw.startswith(b"* "), f"not an untagged response: {raw!r}"
        body = raw[2:]
        if re.match(rb"OK \[CLOSED\]", body, re.IGNORECASE):
            # Dovecot announces that SELECT/EXAMINE closed the previous mailbox (RFC 7162
            # 3.2.11) although no client here enabled CONDSTORE or QRESYNC: its quirk.
            continue
        match = re.match(rb"(\d+) EXPUNGE\Z", body, re.IGNORECASE)
        if match:
            expunges.append(int(match.group(1)))
            continue
        out.append(_untagged(body))
    if expunges:
        out.append(_expunged(expunges))
    return (*sorted(out), _status(tagged))


# -- running the script ------------------------------------------------------------------------


@dataclass
class Step:
    """One command's normalised answer from one server."""

    command: str
    answer: tuple[str, ...]

    @property
    def status(self) -> str:
        return self.answer[-1].split()[0]


def run_imap(address: tuple[str, int]) -> list[Step]:
    """Log in, run IMAP_SCRIPT, log out; every answer normalised."""
    steps: list[Step] = []
    with RawIMAP(*address) as client:
        assert client.greeting.startswith(b"* OK"), client.greeting
        for command, literal, _ in IMAP_SCRIPT:
            pieces = (command.encode(), literal) if literal is not None else (command.encode(),)
            untagged, tagged = client.command(*pieces)
            steps.append(Step(command, normalise(untagged, tagged)))
        untagged, tagged = client.command(b"LOGOUT")
        steps.append(Step("LOGOUT", normalise(untagged, tagged)))
    return steps


Difference = tuple[tuple[str, ...], tuple[str, ...]]
"""The lines of one step's answer only we gave, and those only Dovecot gave."""


def differences(ours: list[Step], theirs: list[Step]) -> dict[str, Difference]:
    """``{"#<step> <command>": (only ours, only Dovecot's)}`` for every step that differs."""
    assert [s.command for s in ours] == [s.command for s in theirs]
    found: dict[str, Difference] = {}
    for number, (mine, dovecot) in enumerate(zip(ours, theirs, strict=True)):
        if mine.answer != dovecot.answer:
            only_ours = list(mine.answer)
            only_theirs = []
            for line in dovecot.answer:
                if line in only_ours:
                    only_ours.remove(line)
                else:
                    only_theirs.append(line)
            found[f"#{number} {mine.command}"] = (tuple(only_ours), tuple(only_theirs))
    return found


def report(found: dict[str, Difference]) -> str:
    """The differences, one block per command, for the assertion message."""
    blocks = []
    for command, (ours, theirs) in found.items():
        lines = [command, *(f"  ours:    {line}" for line in ours)]
        lines += [f"  dovecot: {line}" for line in theirs]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


# -- POP3 ----------------------------------------------------------------------------------------

POP3_SEEDS = [SEEDS[0], SEEDS[1], Seed(UNTERMINATED, "", "03-May-2023 12:00:00 +0000"), SEEDS[5]]

# (command, multi-line?, the status Dovecot must give); None is a new connection.
POP3_SCRIPT: list[tuple[str, bool, str] | None] = [
    ("CAPA", True, "+OK"),
    ("USER " + POP3_USER, False, "+OK"),
    ("PASS wrong", False, "-ERR"),
    ("USER " + POP3_USER, False, "+OK"),
    ("PASS " + PASSWORD, False, "+OK"),
    ("STAT", False, "+OK"),
    ("LIST", True, "+OK"),
    ("LIST 2", False, "+OK"),
    ("LIST 99", False, "-ERR"),
    ("UIDL", True, "+OK"),
    ("UIDL 3", False, "+OK"),
    ("RETR 1", True, "+OK"),
    ("RETR 2", True, "+OK"),
    ("RETR 3", True, "+OK"),
    ("RETR 4", True, "+OK"),
    ("TOP 2 0", True, "+OK"),
    ("TOP 1 2", True, "+OK"),
    ("TOP 3 100", True, "+OK"),
    ("DELE 1", False, "+OK"),
    ("DELE 1", False, "-ERR"),
    ("RETR 1", True, "-ERR"),
    ("LIST 1", False, "-ERR"),
    ("STAT", False, "+OK"),
    ("LIST", True, "+OK"),
    ("UIDL", True, "+OK"),
    ("RSET", False, "+OK"),
    ("STAT", False, "+OK"),
    ("DELE 2", False, "+OK"),
    ("DELE 4", False, "+OK"),
    ("NOOP", False, "+OK"),
    ("QUIT", False, "+OK"),
    None,
    ("USER " + POP3_USER, False, "+OK"),
    ("PASS " + PASSWORD, False, "+OK"),
    ("STAT", False, "+OK"),
    ("LIST", True, "+OK"),
    ("UIDL", True, "+OK"),
    ("RETR 2", True, "+OK"),
    ("QUIT", False, "+OK"),
]

_UIDL_CHARS = re.compile(rb"[\x21-\x7e]{1,70}\Z")


class _UidNames:
    """Replaces each UIDL value by ``u1``, ``u2``... in order of first appearance, after
    checking its shape (RFC 1939 7: 1 to 70 characters 0x21-0x7E), so both servers' UIDs
    compare by identity across connections, not by spelling."""

    def __init__(self) -> None:
        self.names: dict[bytes, str] = {}

    def __call__(self, uid: bytes) -> str:
        assert _UIDL_CHARS.match(uid), f"UIDL value not 1-70 printable characters: {uid!r}"
        return self.names.setdefault(uid, f"u{len(self.names) + 1}")


def _pop3_answer(
    command: str, status: bytes, body: bytes | None, uids: _UidNames
) -> tuple[str, ...]:
    word, _, rest = status.partition(b" ")
    code = re.match(rb"\[[^\]]*\]", rest)
    head = word.decode() + (" " + code.group().decode() if code else "")
    verb = command.split()[0]
    argument = len(command.split()) > 1
    if word == b"+OK" and (verb == "STAT" or (verb in ("LIST", "UIDL") and argument)):
        fields = rest.split()[:2]
        if verb == "UIDL":
            fields[1] = uids(fields[1]).encode()
        head += " " + b" ".join(fields).decode()
    if body is None:
        return (head,)
    lines = body.split(b"\r\n")[:-1]
    if verb == "CAPA":
        return (head, "<capabilities dropped>")
    if verb == "UIDL":
        shown = []
        for line in lines:
            number, uid = line.split()
            shown.append(f"{int(number)} {uids(uid)}")
        return (head, *shown)
    if verb == "LIST":
        return (head, *(line.decode() for line in lines))
    return (head, repr(body)[1:])


def run_pop3(imap_address: tuple[str, int], pop3_address: tuple[str, int]) -> list[Step]:
    """Seed the POP3 user's INBOX over IMAP, then run POP3_SCRIPT; every answer normalised."""
    with RawIMAP(*imap_address) as imap:
        _, tagged = imap.command(f"LOGIN {POP3_USER} {PASSWORD}".encode())
        assert tagged.startswith(b"OK"), tagged
        for seed in POP3_SEEDS:
            append = f'APPEND INBOX ({seed.flags}) "{seed.date}" '.encode()
            _, tagged = imap.command(append, seed.raw)
            assert tagged.startswith(b"OK"), tagged
    uids = _UidNames()
    steps: list[Step] = []
    client = RawPOP3(*pop3_address)
    try:
        for entry in POP3_SCRIPT:
            if entry is None:
                client.close()
                client = RawPOP3(*pop3_address)
                steps.append(Step("<connect>", (client.greeting.split()[0].decode(),)))
                continue
            command, multiline, _ = entry
            status, body = client.command(command.encode(), multiline)
            steps.append(Step(command, _pop3_answer(command, status, body, uids)))
    finally:
        client.close()
    return steps


# -- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dovecot() -> Iterator[Dovecot]:
    if find_dovecot() is None:
        if os.environ.get("CI"):
            pytest.fail(
                "Dovecot is required under CI: .ci/run must install the Debian packages "
                "dovecot-imapd and dovecot-pop3d"
            )
        pytest.skip("Dovecot is not installed (apt-get install dovecot-imapd dovecot-pop3d)")
    with Dovecot(USERS) as server:
        yield server


@pytest.fixture
def store() -> MailStore:
    return MailStore()


@pytest.fixture
def imap(store: MailStore) -> Iterator[IMAPServer]:
    with IMAPServer(store, auth=USERS) as server:
        yield server
    assert server.errors == []


@pytest.fixture
def pop3(store: MailStore) -> Iterator[POP3Server]:
    with POP3Server(store, auth=USERS) as server:
        yield server
    assert server.errors == []


# -- IMAP ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dovecot_imap(dovecot: Dovecot) -> list[Step]:
    """Dovecot's answers to the IMAP script (run once per module)."""
    return run_imap(dovecot.imap_address)


def test_dovecot_answers_the_script_as_expected(dovecot_imap: list[Step]) -> None:
    """Guard against a vacuous comparison: Dovecot gives every step its expected status."""
    expected = [*(status for _, _, status in IMAP_SCRIPT), "OK"]
    assert [s.status for s in dovecot_imap] == expected, report(
        {f"#{i} {s.command}": ((), s.answer) for i, s in enumerate(dovecot_imap)}
    )
    fetches = [s for s in dovecot_imap if s.command.startswith(("FETCH 1:*", "UID FETCH 2:4"))]
    assert fetches
    assert all(any(" FETCH (" in line for line in s.answer) for s in fetches)


def test_imap_script_matches_dovecot(dovecot_imap: list[Step], imap: IMAPServer) -> None:
    ours = run_imap(imap.address)
    found = differences(ours, dovecot_imap)
    known = {command: (o, t) for command, (o, t, _) in KNOWN_IMAP.items()}
    assert found == known, report(found)


# -- POP3 ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dovecot_pop3(dovecot: Dovecot) -> list[Step]:
    """Dovecot's answers to the POP3 script (run once per module)."""
    return run_pop3(dovecot.imap_address, dovecot.pop3_address)


def test_dovecot_answers_the_pop3_script_as_expected(dovecot_pop3: list[Step]) -> None:
    expected = [entry[2] if entry else "+OK" for entry in POP3_SCRIPT]
    assert [s.answer[0].split()[0] for s in dovecot_pop3] == expected, report(
        {f"#{i} {s.command}": ((), s.answer) for i, s in enumerate(dovecot_pop3)}
    )
    retrieved = [s for s in dovecot_pop3 if s.command.startswith("RETR") and len(s.answer) > 1]
    assert len(retrieved) == 5


def test_pop3_script_matches_dovecot(
    dovecot_pop3: list[Step], imap: IMAPServer, pop3: POP3Server
) -> None:
    ours = run_pop3(imap.address, pop3.address)
    found = differences(ours, dovecot_pop3)
    known = {command: (o, t) for command, (o, t, _) in KNOWN_POP3.items()}
    assert found == known, report(found)


# -- the normaliser itself (no Dovecot needed) ---------------------------------------------------


def test_normalise_drops_server_text_but_keeps_data() -> None:
    ours = normalise(
        [b"* 1 FETCH (UID 1 FLAGS (\\Seen \\Recent))", b"* OK [UIDVALIDITY 123] UIDs valid"],
        b"OK [READ-WRITE] SELECT completed",
    )
    theirs = normalise(
        [b"* OK [UIDVALIDITY 999] Ok", b"* 1 FETCH (FLAGS (\\Recent \\Seen) UID 1)"],
        b"OK [READ-WRITE] Select completed (0.001 + 0.000 secs).",
    )
    assert ours == theirs
    other_flags = normalise([b"* 1 FETCH (FLAGS (\\Seen) UID 1)"], b"OK [READ-WRITE] x")
    assert other_flags != ours
    assert normalise([], b"OK [READ-ONLY] x") != normalise([], b"OK [READ-WRITE] x")


def test_normalise_compares_strings_dates_and_expunges_by_meaning() -> None:
    literal = normalise([b"* 2 FETCH (BODY[] {3}\r\nabc)"], b"OK done")
    assert literal == normalise([b'* 2 FETCH (BODY[] "abc")'], b"OK")
    assert literal != normalise([b'* 2 FETCH (BODY[] "abd")'], b"OK")
    assert literal != normalise([b"* 2 FETCH (BODY[] NIL)"], b"OK")
    dated = normalise([b'* 1 FETCH (INTERNALDATE " 5-Mar-2023 12:00:00 -0500")'], b"OK")
    assert dated == normalise([b'* 1 FETCH (INTERNALDATE "05-Mar-2023 17:00:00 +0000")'], b"OK")
    assert dated != normalise([b'* 1 FETCH (INTERNALDATE "05-Mar-2023 18:00:00 +0000")'], b"OK")
    # Removing messages 2 and 3 of a mailbox: "3 then 2" and "2 then 2" say the same thing.
    descending = normalise([b"* 3 EXPUNGE", b"* 2 EXPUNGE"], b"OK")
    assert descending == normalise([b"* 2 EXPUNGE", b"* 2 EXPUNGE"], b"OK")
    assert descending != normalise([b"* 2 EXPUNGE", b"* 3 EXPUNGE"], b"OK")  # 2 and 4


def test_differences_name_the_step_and_both_answers() -> None:
    ours = [Step("NOOP", ("OK",)), Step("SEARCH ALL", ("* SEARCH 1 2", "OK"))]
    theirs = [Step("NOOP", ("OK",)), Step("SEARCH ALL", ("* SEARCH 1", "OK"))]
    assert differences(ours, theirs) == {"#1 SEARCH ALL": (("* SEARCH 1 2",), ("* SEARCH 1",))}
    assert "ours:    * SEARCH 1 2" in report(differences(ours, theirs))
