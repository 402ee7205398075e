"""IMAPServer against the stdlib imaplib client, and a raw socket where imaplib hides the wire."""

from __future__ import annotations

import base64
import imaplib
import smtplib
import socket
import ssl
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from email.message import EmailMessage
from typing import TYPE_CHECKING, Any

import pytest

from pytest_smtp.retrieval.imap import IMAPServer
from pytest_smtp.retrieval.pop3 import POP3Server
from pytest_smtp.smtp.options import OptionError
from pytest_smtp.smtp.tls import TestCA, default_ca
from pytest_smtp.store import MailStore

if TYPE_CHECKING:
    from pytest_smtp.smtp.server import SMTPServer

Factory = Callable[..., IMAPServer]

BOB = "bob@example.org"


def plain(n: int, subject: str | None = None, sender: str = "alice@example.org") -> bytes:
    subject = subject if subject is not None else f"Message {n}"
    return (
        f"From: Alice <{sender}>\r\nTo: {BOB}\r\nSubject: {subject}\r\n"
        f"Date: Mon, 2 Sep 2024 10:00:00 +0000\r\nMessage-ID: <m{n}@example.org>\r\n\r\n"
        f"Body of message {n}\r\n"
    ).encode()


MULTIPART = (
    b"From: =?utf-8?q?J=C3=B6rg?= <jorg@example.org>\r\n"
    b'To: bob@example.org, "Doe, Jane" <jane@example.org>\r\n'
    b"Cc: team: x@example.org, y@example.org;\r\n"
    b"Subject: Gr\xc3\xbc\xc3\x9fe aus Berlin\r\n"
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="XYZ"\r\n'
    b"\r\n"
    b"preamble\r\n"
    b"--XYZ\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: quoted-printable\r\n"
    b"\r\n"
    b"Sch=C3=B6ne Gr=C3=BC=C3=9Fe\r\n"
    b"--XYZ\r\n"
    b"Content-Type: message/rfc822\r\n"
    b"\r\n"
    b"Subject: inner\r\n"
    b"From: inner@example.org\r\n"
    b"\r\n"
    b"inner body\r\n"
    b"--XYZ\r\n"
    b"Content-Type: application/pdf; name=report.pdf\r\n"
    b'Content-Disposition: attachment; filename="report.pdf"\r\n'
    b"Content-Transfer-Encoding: base64\r\n"
    b"\r\n"
    b"JVBERi0xLjQ=\r\n"
    b"--XYZ--\r\n"
    b"epilogue\r\n"
)


@pytest.fixture
def imap(smtp_imap: IMAPServer) -> Iterator[IMAPServer]:
    yield smtp_imap
    assert smtp_imap.errors == []


@pytest.fixture
def store(imap: IMAPServer) -> MailStore:
    return imap.store


def connect(server: IMAPServer, user: str = BOB, password: str = "pw") -> imaplib.IMAP4:
    client = imaplib.IMAP4(*server.address, timeout=5)
    client.login(user, password)
    return client


def fetched(client: imaplib.IMAP4, *args: str) -> Any:
    """FETCH that must succeed; imaplib's loosely typed data as Any."""
    typ, data = client.fetch(*args)
    assert typ == "OK", data
    return data


class Wire:
    """A raw IMAP connection: exact lines, literals read by their octet count."""

    def __init__(self, server: IMAPServer, context: ssl.SSLContext | None = None) -> None:
        sock = socket.create_connection(server.address, timeout=5)
        if context is not None:
            sock = context.wrap_socket(sock, server_hostname="localhost")
        self.sock = sock
        self.file = sock.makefile("rb")
        self.greeting = self.line()
        self.count = 0

    def line(self) -> bytes:
        data = self.file.readline()
        assert data.endswith(b"\r\n"), f"connection closed or bare line: {data!r}"
        while data.endswith(b"}\r\n") and b"{" in data:
            size = int(data[data.rindex(b"{") + 1 : -3].rstrip(b"+"))
            data += self.file.read(size) + self.file.readline()
        return data

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def cmd(self, text: bytes | str) -> list[bytes]:
        """Send a tagged command; return every line up to and including the tagged one."""
        self.count += 1
        tag = b"t%d" % self.count
        self.send(tag + b" " + (text.encode() if isinstance(text, str) else text) + b"\r\n")
        return self.until(tag)

    def until(self, tag: bytes) -> list[bytes]:
        lines = []
        while True:
            line = self.line()
            lines.append(line)
            if line.startswith(tag + b" "):
                return lines

    def login(self, user: str = BOB) -> None:
        assert self.cmd(f"LOGIN {user} pw")[-1].split()[1] == b"OK"

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def wire(imap: IMAPServer) -> Iterator[Wire]:
    w = Wire(imap)
    yield w
    w.close()


# -- connection, capability, login ---------------------------------------------------------------


def test_greeting_and_capabilities(imap: IMAPServer) -> None:
    client = imaplib.IMAP4(*imap.address, timeout=5)
    caps = set(client.capabilities)
    assert {"IMAP4REV1", "IDLE", "UIDPLUS", "MOVE", "LITERAL+", "AUTH=PLAIN"} <= caps
    assert "STARTTLS" not in caps
    assert "LOGINDISABLED" not in caps
    assert client.logout()[0] == "BYE"


def test_login_opens_the_users_maildrop(imap: IMAPServer, store: MailStore) -> None:
    store.deliver(BOB, plain(1))
    store.deliver("carol@example.org", plain(2))
    client = connect(imap)
    assert client.select("INBOX") == ("OK", [b"1"])
    assert fetched(client, "1", "(BODY.PEEK[HEADER.FIELDS (Subject)])")[0][1] == (
        b"Subject: Message 1\r\n\r\n"
    )
    client.logout()
    [session] = imap.sessions
    assert (session.user, session.mechanism, session.end) == (BOB, "LOGIN", "logout")


def test_bad_password_is_authenticationfailed_and_masked(
    smtp_imap_factory: Factory, store: MailStore
) -> None:
    server = smtp_imap_factory(auth={BOB: "s3cret"})
    client = imaplib.IMAP4(*server.address, timeout=5)
    with pytest.raises(imaplib.IMAP4.error, match=r"\[AUTHENTICATIONFAILED\]"):
        client.login(BOB, "wrong")
    with pytest.raises(imaplib.IMAP4.error, match=r"\[AUTHENTICATIONFAILED\]"):
        client.login("mallory@example.org", "s3cret")
    assert client.login("bob@EXAMPLE.org", "s3cret")[0] == "OK"
    client.logout()
    [session] = server.sessions
    assert session.failed_logins == 2
    text = "\n".join(server.transcript)
    assert "s3cret" not in text
    assert "wrong" not in text
    assert "LOGIN bob@EXAMPLE.org ****" in text


def test_authenticate_plain_with_and_without_initial_response(
    smtp_imap_factory: Factory,
) -> None:
    server = smtp_imap_factory(auth={BOB: "s3cret"})
    client = imaplib.IMAP4(*server.address, timeout=5)
    typ, _ = client.authenticate("PLAIN", lambda _: f"\0{BOB}\0s3cret".encode())
    assert typ == "OK"
    assert client.state == "AUTH"
    client.logout()

    w = Wire(server)
    # SASL-IR: "AHdyb25n" is base64 of "\0wrong" (no password part): malformed, so BAD.
    assert w.cmd("AUTHENTICATE PLAIN AHdyb25n")[-1].startswith(b"t1 BAD")
    w.send(b"m1 AUTHENTICATE PLAIN\r\n")
    assert w.line() == b"+ \r\n"
    w.send(b"*\r\n")
    assert w.until(b"m1")[-1] == b"m1 BAD AUTHENTICATE cancelled by the client\r\n"
    good = base64.b64encode(f"\0{BOB}\0s3cret".encode()).decode()
    assert w.cmd(f"AUTHENTICATE PLAIN {good}")[-1].startswith(b"t2 OK [CAPABILITY")
    w.close()
    assert good not in "\n".join(server.transcript)


def test_commands_in_the_wrong_state_are_bad(wire: Wire) -> None:
    assert wire.cmd("SELECT INBOX")[-1].startswith(b"t1 BAD SELECT is only valid after LOGIN")
    wire.login()
    assert wire.cmd("FETCH 1 FLAGS")[-1].startswith(b"t3 BAD FETCH: no mailbox selected")
    assert wire.cmd("FROBNICATE")[-1] == b"t4 BAD unknown command FROBNICATE\r\n"
    assert wire.cmd("LOGIN a b")[-1].startswith(b"t5 BAD LOGIN: already logged in")


# -- SELECT / EXAMINE / \Recent ------------------------------------------------------------------


def test_select_reports_counts_and_recent_once(
    wire: Wire, imap: IMAPServer, store: MailStore
) -> None:
    store.deliver(BOB, plain(1), flags=["\\Seen"])
    store.deliver(BOB, plain(2))
    store.deliver(BOB, plain(3), flags=["Urgent"])
    wire.login()
    lines = wire.cmd("SELECT INBOX")
    inbox = store.maildrop(BOB).inbox
    assert b"* 3 EXISTS\r\n" in lines
    assert b"* 3 RECENT\r\n" in lines
    assert b"* OK [UNSEEN 2] first unseen message\r\n" in lines
    assert b"* OK [UIDVALIDITY %d] UIDs valid\r\n" % inbox.uidvalidity in lines
    assert b"* OK [UIDNEXT 4] predicted next UID\r\n" in lines
    assert b"* FLAGS (\\Seen \\Answered \\Flagged \\Deleted \\Draft Urgent)\r\n" in lines
    assert lines[-1] == b"t2 OK [READ-WRITE] SELECT completed\r\n"
    assert b"\\Recent" in wire.cmd("FETCH 1 FLAGS")[0]

    # \Recent went to the first session: a second one sees none.
    other = Wire(imap)
    other.login()
    assert b"* 0 RECENT\r\n" in other.cmd("SELECT INBOX")
    examine = other.cmd("EXAMINE INBOX")
    assert examine[-1].startswith(b"t3 OK [READ-ONLY]")
    assert b"* OK [PERMANENTFLAGS ()] read-only mailbox\r\n" in examine
    other.close()


def test_examine_is_read_only(wire: Wire, store: MailStore) -> None:
    store.deliver(BOB, plain(1))
    wire.login()
    wire.cmd("EXAMINE INBOX")
    assert wire.cmd("STORE 1 +FLAGS (\\Flagged)")[-1].startswith(b"t3 NO [READ-ONLY]")
    wire.cmd("FETCH 1 BODY[]")
    message = store.maildrop(BOB).inbox.messages[0]
    assert message.flags == set()
    assert message.recent
    assert wire.cmd("EXPUNGE")[-1].startswith(b"t5 NO [READ-ONLY]")


def test_select_missing_folder(wire: Wire) -> None:
    wire.login()
    assert wire.cmd("SELECT Nope")[-1].startswith(b"t2 NO [NONEXISTENT]")
    assert wire.cmd("FETCH 1 FLAGS")[-1].startswith(b"t3 BAD")


# -- FETCH ---------------------------------------------------------------------------------------


def test_fetch_simple_items(imap: IMAPServer, store: MailStore) -> None:
    date = datetime(2024, 9, 2, 12, 30, 5, tzinfo=timezone(timedelta(hours=2)))
    stored = store.deliver(BOB, plain(1), internal_date=date)
    client = connect(imap)
    client.select()
    data = fetched(client, "1", "(UID RFC822.SIZE INTERNALDATE FLAGS)")
    line = data[0]
    assert isinstance(line, bytes)
    assert b"UID 1 " in line
    assert b"RFC822.SIZE %d" % stored.size in line
    assert b'INTERNALDATE " 2-Sep-2024 12:30:05 +0200"' in line
    assert time.mktime(imaplib.Internaldate2tuple(line)) == date.timestamp()  # type: ignore[arg-type]
    data = fetched(client, "1", "(RFC822.HEADER)")
    assert data[0][1] == stored.raw.split(b"\r\n\r\n")[0] + b"\r\n\r\n"
    data = fetched(client, "1", "(RFC822.TEXT)")
    assert data[0][1] == b"Body of message 1\r\n"
    assert store.maildrop(BOB).inbox.messages[0].flags == {"\\Seen"}  # RFC822.TEXT sets \Seen
    client.logout()


def test_body_sets_seen_and_peek_does_not(imap: IMAPServer, store: MailStore) -> None:
    store.deliver(BOB, plain(1))
    store.deliver(BOB, plain(2))
    client = connect(imap)
    client.select()
    data = fetched(client, "1", "(BODY.PEEK[])")
    assert data[0][1] == store.maildrop(BOB).inbox.messages[0].raw
    data = fetched(client, "2", "(BODY[])")
    # The FLAGS change is reported in the same FETCH response.
    assert data[1] == b" FLAGS (\\Recent \\Seen))"
    assert [m.flags for m in store.maildrop(BOB).inbox.messages] == [set(), {"\\Seen"}]
    data = fetched(client, "1", "(RFC822)")
    assert [m.flags for m in store.maildrop(BOB).inbox.messages] == [{"\\Seen"}, {"\\Seen"}]
    client.logout()


def test_fetch_sections_of_a_multipart_message(imap: IMAPServer, store: MailStore) -> None:
    store.deliver(BOB, MULTIPART)
    client = connect(imap)
    client.select()

    def body(section: str) -> bytes:
        typ, data = client.fetch("1", f"(BODY.PEEK[{section}])")
        assert typ == "OK", data
        item = data[0]
        assert isinstance(item, tuple), data
        return item[1]

    assert body("1") == b"Sch=C3=B6ne Gr=C3=BC=C3=9Fe"
    assert body("1.MIME") == (
        b"Content-Type: text/plain; charset=utf-8\r\n"
        b"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
    )
    assert body("2") == b"Subject: inner\r\nFrom: inner@example.org\r\n\r\ninner body"
    assert body("2.HEADER") == b"Subject: inner\r\nFrom: inner@example.org\r\n\r\n"
    assert body("2.TEXT") == b"inner body"
    assert body("2.1") == b"inner body"
    assert body("2.HEADER.FIELDS (FROM)") == b"From: inner@example.org\r\n\r\n"
    assert body("3") == b"JVBERi0xLjQ="
    assert body("HEADER").endswith(b'boundary="XYZ"\r\n\r\n')
    assert body("TEXT").startswith(b"preamble\r\n--XYZ\r\n")
    assert body("HEADER.FIELDS (Subject To)") == (
        b'To: bob@example.org, "Doe, Jane" <jane@example.org>\r\n'
        b"Subject: Gr\xc3\xbc\xc3\x9fe aus Berlin\r\n\r\n"
    )
    not_fields = body("HEADER.FIELDS.NOT (Subject To Cc From Content-Type)")
    assert not_fields == b"MIME-Version: 1.0\r\n\r\n"
    data = fetched(client, "1", "(BODY.PEEK[]<10.20>)")
    assert data[0][0].endswith(b"BODY[]<10> {20}")
    assert data[0][1] == MULTIPART[10:30]
    assert body("4") == b""  # a part that does not exist is empty, not an error
    client.logout()


def test_envelope_and_bodystructure(imap: IMAPServer, store: MailStore) -> None:
    store.deliver(BOB, MULTIPART)
    client = connect(imap)
    client.select()
    data = fetched(client, "1", "(ENVELOPE)")
    envelope = data[0][0] + data[0][1] + data[1]
    # The 8-bit subject travels as a literal, the encoded-word name as it was sent.
    assert b"ENVELOPE (NIL {18}Gr\xc3\xbc\xc3\x9fe aus Berlin" in envelope
    assert b'(("=?utf-8?q?J=C3=B6rg?=" NIL "jorg" "example.org"))' in envelope
    assert b'((NIL NIL "bob" "example.org")("Doe, Jane" NIL "jane" "example.org"))' in envelope
    assert (
        b'((NIL NIL "team" NIL)(NIL NIL "x" "example.org")(NIL NIL "y" "example.org")'
        b"(NIL NIL NIL NIL))" in envelope
    )
    data = fetched(client, "1", "(BODYSTRUCTURE)")
    structure = data[0]
    assert isinstance(structure, bytes)
    assert structure.startswith(
        b'1 (BODYSTRUCTURE (("TEXT" "PLAIN" ("charset" "utf-8") NIL NIL "QUOTED-PRINTABLE" 27 0 '
    )
    assert b'("MESSAGE" "RFC822" NIL NIL NIL "7BIT" 53 (NIL "inner" ' in structure
    # Line counts are line breaks, as Dovecot counts them: the CRLF before a boundary belongs
    # to the boundary, so each sub-part's last line is unterminated and not counted.
    assert b'"7BIT" 10 0 NIL NIL NIL NIL) 3 NIL NIL NIL NIL)' in structure
    assert (
        b'("APPLICATION" "PDF" ("name" "report.pdf") NIL NIL "BASE64" 12 NIL '
        b'("attachment" ("filename" "report.pdf")) NIL NIL)' in structure
    )
    assert structure.endswith(b' "MIXED" ("boundary" "XYZ") NIL NIL NIL))')
    data = fetched(client, "1", "(BODY)")
    assert b'"MIXED")' in data[0]
    data = fetched(client, "1", "FAST")
    assert b"FLAGS (\\Recent) INTERNALDATE" in data[0]
    assert b"RFC822.SIZE" in data[0]
    client.logout()


def test_line_counts_are_line_breaks(wire: Wire, store: MailStore) -> None:
    # Dovecot's count (and so ours): an unterminated last line is not a line break.
    store.deliver(BOB, b"Subject: two lines\r\n\r\nline one\r\nline two")
    store.deliver(BOB, b"Subject: two lines\r\n\r\nline one\r\nline two\r\n")
    wire.login()
    wire.cmd("EXAMINE INBOX")
    assert wire.cmd("FETCH 1:2 BODY")[:2] == [
        b'* 1 FETCH (BODY ("TEXT" "PLAIN" ("charset" "us-ascii") NIL NIL "7BIT" 18 1))\r\n',
        b'* 2 FETCH (BODY ("TEXT" "PLAIN" ("charset" "us-ascii") NIL NIL "7BIT" 20 2))\r\n',
    ]


def test_each_message_is_parsed_once_across_fetches_and_sessions(
    imap: IMAPServer, store: MailStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pytest_smtp.retrieval import imap_mime

    # More messages than the old per-session cache held (256), which was cleared when full
    # and so re-parsed every message on every FETCH of the whole mailbox.
    for n in range(1, 301):
        store.deliver(BOB, plain(n))
    parses: list[bytes] = []
    real_parse = imap_mime.parse_message

    def counting_parse(raw: bytes, *args: Any) -> imap_mime.Part:
        parses.append(raw)
        return real_parse(raw, *args)

    monkeypatch.setattr(imap_mime, "parse_message", counting_parse)
    for _ in range(2):
        client = connect(imap)
        client.select(readonly=True)
        for _ in range(2):
            data = fetched(client, "1:*", "(ENVELOPE)")
            assert len(data) == 300
            assert b'"Message 300"' in data[-1]
        _, found = client.search(None, "BODY", '"message 299"')
        assert found == [b"299"]
        client.logout()
    assert len(parses) == 300
    assert len(set(parses)) == 300


def test_fetch_errors_name_the_problem(wire: Wire, store: MailStore) -> None:
    store.deliver(BOB, plain(1))
    wire.login()
    wire.cmd("SELECT INBOX")
    assert wire.cmd("FETCH 5 FLAGS")[-1] == (
        b"t3 BAD invalid message sequence number 5: the mailbox has 1 message\r\n"
    )
    assert wire.cmd("FETCH 1 (FLAGS BOGUS)")[-1].startswith(b"t4 BAD FETCH: unknown item 'BOGUS'")
    assert wire.cmd("FETCH 1 BODY[WHAT]")[-1].startswith(b"t5 BAD FETCH: invalid section 'WHAT'")
    assert wire.cmd("FETCH x:1 FLAGS")[-1].startswith(b"t6 BAD FETCH: invalid sequence set")
    assert wire.cmd("UID FETCH 99 FLAGS")[-1] == b"t7 OK UID FETCH completed\r\n"


# -- SEARCH --------------------------------------------------------------------------------------


def test_search_keys(imap: IMAPServer, store: MailStore) -> None:
    day = timedelta(days=1)
    base = datetime(2024, 9, 10, 12, 0, tzinfo=timezone.utc)
    store.deliver(BOB, plain(1, "Invoice 42"), flags=["\\Seen"], internal_date=base - 2 * day)
    store.deliver(
        BOB, plain(2, "Hello", "carol@example.org"), flags=["\\Flagged"], internal_date=base - day
    )
    store.deliver(
        BOB, plain(3, "Re: Invoice 42"), flags=["\\Answered", "\\Seen"], internal_date=base
    )
    store.deliver(BOB, MULTIPART, flags=["\\Deleted", "Urgent"], internal_date=base + day)
    client = connect(imap)
    client.select()
    cases: list[tuple[tuple[str, ...], str]] = [
        (("ALL",), "1 2 3 4"),
        (("SEEN",), "1 3"),
        (("UNSEEN",), "2 4"),
        (("FLAGGED",), "2"),
        (("DELETED",), "4"),
        (("UNDELETED",), "1 2 3"),
        (("ANSWERED",), "3"),
        (("UNANSWERED",), "1 2 4"),
        (("KEYWORD", "Urgent"), "4"),
        (("FROM", "carol"), "2"),
        (("FROM", "JÖRG"), "4"),  # decoded RFC 2047 name, case-insensitive
        (("TO", "jane@example.org"), "4"),
        (("CC", "y@example.org"), "4"),
        (("SUBJECT", "invoice"), "1 3"),
        (("SUBJECT", "grüße"), "4"),
        (("BODY", "message 2"), "2"),
        (("BODY", "Schöne"), "4"),  # quoted-printable text part, decoded
        (("TEXT", "carol"), "2"),
        # TEXT also reads MIME part headers and an attached message's header; BODY does not.
        (("TEXT", "inner@example.org"), "4"),
        (("TEXT", "report.pdf"), "4"),
        (("BODY", "inner@example.org"), ""),
        (("BODY", '"inner body"'), "4"),
        (("HEADER", "Message-ID", "<m3@"), "3"),
        (("HEADER", "MIME-Version", '""'), "4"),
        (("SINCE", "10-Sep-2024"), "3 4"),
        (("BEFORE", "10-Sep-2024"), "1 2"),
        (("ON", "9-Sep-2024"), "2"),
        (("SENTON", "2-Sep-2024"), "1 2 3"),
        (("LARGER", "400"), "4"),
        (("SMALLER", "400"), "1 2 3"),
        (("2:3",), "2 3"),
        (("UID", "3:*"), "3 4"),
        (("NOT", "SEEN"), "2 4"),
        (("OR", "FLAGGED", "ANSWERED"), "2 3"),
        (("(SEEN SUBJECT Re)",), "3"),
        (("NOT", "(OR SEEN DELETED)"), "2"),
        (("SEEN", "NOT", "ANSWERED"), "1"),
        (("RECENT",), "1 2 3 4"),
        (("NEW",), "2 4"),
        (("OLD",), ""),
    ]
    failures = []
    for criteria, expected in cases:
        charset = None
        args = list(criteria)
        if not args[-1].isascii():
            # Non-ASCII text goes as a literal (atoms are 7-bit); imaplib sends it last. Bytes,
            # so that imaplib announces the octet count, not the character count.
            charset = "UTF-8"
            client.literal = args.pop().encode()  # type: ignore[assignment]
        typ, data = client.search(charset, *args)
        got = data[0].decode() if typ == "OK" and data[0] is not None else f"{typ} {data}"
        if got != expected:
            failures.append(f"SEARCH {' '.join(criteria)}: expected {expected!r}, got {got!r}")
    assert failures == []
    typ, data = client.uid("SEARCH", "SUBJECT", "invoice")
    assert (typ, data) == ("OK", [b"1 3"])
    client.logout()


def test_search_errors(wire: Wire) -> None:
    wire.login()
    wire.cmd("SELECT INBOX")
    assert wire.cmd("SEARCH CHARSET KOI8-R ALL")[-1].startswith(
        b"t3 NO [BADCHARSET (UTF-8 US-ASCII)]"
    )
    assert wire.cmd("SEARCH FROB")[-1].startswith(b"t4 BAD SEARCH: unknown search key 'FROB'")
    assert wire.cmd("SEARCH SINCE yesterday")[-1].startswith(b"t5 BAD SEARCH: invalid date")
    assert wire.cmd("SEARCH")[-1].startswith(b"t6 BAD SEARCH needs at least one search key")
    # Atoms are 7-bit: 8-bit text must be a literal (or quoted), with a CHARSET or without.
    for n, command in enumerate(["SEARCH SUBJECT café", "SEARCH CHARSET UTF-8 (SUBJECT café)"], 7):
        assert wire.cmd(command)[-1].startswith(
            b"t%d BAD SEARCH: 8-bit data in the atom b'caf\\xc3\\xa9': atoms are 7-bit" % n
        )
    assert wire.cmd('SEARCH SUBJECT "café"')[-1] == b"t9 OK SEARCH completed\r\n"


# -- STORE, EXPUNGE, COPY, MOVE, APPEND ----------------------------------------------------------


def test_store_flags_are_visible_in_the_store(wire: Wire, store: MailStore) -> None:
    store.deliver(BOB, plain(1))
    store.deliver(BOB, plain(2))
    wire.login()
    wire.cmd("SELECT INBOX")
    inbox = store.maildrop(BOB).inbox
    # A keyword new to the mailbox is announced (FLAGS, PERMANENTFLAGS) before it is shown.
    assert wire.cmd("STORE 1:2 +FLAGS (\\Flagged Processed)") == [
        b"* FLAGS (\\Seen \\Answered \\Flagged \\Deleted \\Draft Processed)\r\n",
        b"* OK [PERMANENTFLAGS (\\Seen \\Answered \\Flagged \\Deleted \\Draft Processed \\*)] "
        b"flags permitted\r\n",
        b"* 1 FETCH (FLAGS (\\Recent \\Flagged Processed))\r\n",
        b"* 2 FETCH (FLAGS (\\Recent \\Flagged Processed))\r\n",
        b"t3 OK STORE completed\r\n",
    ]
    assert [m.flags for m in inbox.messages] == [{"\\Flagged", "Processed"}] * 2
    assert wire.cmd("STORE 2 -FLAGS.SILENT (Processed)") == [b"t4 OK STORE completed\r\n"]
    assert wire.cmd("UID STORE 1 FLAGS (\\seen \\Recent)")[0] == (
        b"* 1 FETCH (FLAGS (\\Recent \\Seen) UID 1)\r\n"
    )
    assert [m.flags for m in inbox.messages] == [{"\\Seen"}, {"\\Flagged"}]
    assert wire.cmd("STORE 1 +FLAGS (\\Bogus)")[-1].startswith(
        b"t6 BAD STORE flags: unknown system flag '\\\\Bogus'"
    )
    assert wire.cmd("STORE 1 XFLAGS (a)")[-1].startswith(b"t7 BAD STORE: unknown item 'XFLAGS'")


def test_expunge_close_and_uid_expunge(wire: Wire, store: MailStore) -> None:
    for n in range(1, 6):
        store.deliver(BOB, plain(n), flags=["\\Deleted"] if n in (2, 3, 5) else [])
    wire.login()
    wire.cmd("SELECT INBOX")
    inbox = store.maildrop(BOB).inbox
    # Expunging \\Recent messages changes the RECENT count: it is sent (as Dovecot does).
    assert wire.cmd("UID EXPUNGE 3:4") == [
        b"* 3 EXPUNGE\r\n",
        b"* 4 RECENT\r\n",
        b"t3 OK UID EXPUNGE completed\r\n",
    ]
    assert [m.uid for m in inbox.messages] == [1, 2, 4, 5]
    # Sequence numbers shift down after each EXPUNGE: highest first keeps them valid.
    assert wire.cmd("EXPUNGE") == [
        b"* 4 EXPUNGE\r\n",
        b"* 2 EXPUNGE\r\n",
        b"* 2 RECENT\r\n",
        b"t4 OK EXPUNGE completed\r\n",
    ]
    assert [m.uid for m in inbox.messages] == [1, 4]
    wire.cmd("STORE 2 +FLAGS.SILENT (\\Deleted)")
    assert wire.cmd("CLOSE") == [b"t6 OK CLOSE completed\r\n"]
    assert [m.uid for m in inbox.messages] == [1]
    assert wire.cmd("FETCH 1 FLAGS")[-1].startswith(b"t7 BAD FETCH: no mailbox selected")


def test_copy_and_move_with_uidplus(wire: Wire, store: MailStore) -> None:
    for n in range(1, 4):
        store.deliver(BOB, plain(n), flags=["\\Seen"] if n == 1 else [])
    store.maildrop(BOB).create("Archive")
    wire.login()
    wire.cmd("SELECT INBOX")
    archive = store.maildrop(BOB).folder("Archive")
    lines = wire.cmd("COPY 1:2 Archive")
    assert lines == [b"t3 OK [COPYUID %d 1:2 1:2] COPY completed\r\n" % archive.uidvalidity]
    assert [(m.uid, m.flags) for m in archive.messages] == [(1, {"\\Seen"}), (2, set())]
    assert wire.cmd("COPY 1 Nowhere")[-1].startswith(b"t4 NO [TRYCREATE]")
    lines = wire.cmd("UID MOVE 3 Archive")
    assert lines == [
        b"* OK [COPYUID %d 3 3] moved\r\n" % archive.uidvalidity,
        b"* 3 EXPUNGE\r\n",
        b"* 2 RECENT\r\n",
        b"t5 OK UID MOVE completed\r\n",
    ]
    assert [m.uid for m in store.maildrop(BOB).inbox.messages] == [1, 2]
    assert archive.messages[-1].raw == plain(3)
    lines = wire.cmd("MOVE 1 Archive")
    assert lines[-3:] == [b"* 1 EXPUNGE\r\n", b"* 1 RECENT\r\n", b"t6 OK MOVE completed\r\n"]
    assert [m.uid for m in archive.messages] == [1, 2, 3, 4]


def test_append_with_flags_date_and_appenduid(imap: IMAPServer, store: MailStore) -> None:
    client = connect(imap)
    client.select()
    date = imaplib.Time2Internaldate(datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone.utc))
    typ, data = client.append("INBOX", "(\\Seen Filed)", date, plain(7))
    inbox = store.maildrop(BOB).inbox
    assert (typ, data) == ("OK", [b"[APPENDUID %d 1] APPEND completed" % inbox.uidvalidity])
    [message] = inbox.messages
    assert message.flags == {"\\Seen", "Filed"}
    assert message.internal_date == datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    assert message.raw == plain(7)
    # The selected session hears about its own append.
    assert client.response("EXISTS")[1][-1] == b"1"
    typ, data = client.append("Missing", None, None, plain(8))
    assert typ == "NO"
    assert data[0].startswith(b"[TRYCREATE]")
    client.logout()


# -- folders -------------------------------------------------------------------------------------


def test_create_list_rename_delete(wire: Wire, store: MailStore) -> None:
    wire.login()
    assert wire.cmd("CREATE Work/Projects") == [b"t2 OK CREATE completed\r\n"]
    assert wire.cmd("CREATE Archive/")[-1] == b"t3 OK CREATE completed\r\n"
    assert wire.cmd("CREATE archive")[-1] == b"t4 OK CREATE completed\r\n"  # case matters
    assert wire.cmd("CREATE Archive")[-1].startswith(b"t5 NO [ALREADYEXISTS]")
    assert wire.cmd("CREATE inbox")[-1].startswith(b"t6 NO [ALREADYEXISTS]")
    assert wire.cmd('LIST "" *') == [
        b'* LIST (\\HasNoChildren) "/" "INBOX"\r\n',
        b'* LIST (\\HasNoChildren) "/" "Work/Projects"\r\n',
        b'* LIST (\\HasNoChildren) "/" "Archive"\r\n',
        b'* LIST (\\HasNoChildren) "/" "archive"\r\n',
        b'* LIST (\\Noselect \\HasChildren) "/" "Work"\r\n',
        b"t7 OK LIST completed\r\n",
    ]
    assert wire.cmd('LIST "" %')[-2] == b'* LIST (\\Noselect \\HasChildren) "/" "Work"\r\n'
    assert wire.cmd('LIST "Work/" %')[:-1] == [b'* LIST (\\HasNoChildren) "/" "Work/Projects"\r\n']
    assert wire.cmd('LIST "" ""')[0] == b'* LIST (\\Noselect) "/" ""\r\n'
    assert wire.cmd('LIST "" inBox')[0] == b'* LIST (\\HasNoChildren) "/" "INBOX"\r\n'
    assert wire.cmd("RENAME Work Job")[-1].startswith(b"t12 NO [NONEXISTENT]")
    assert wire.cmd("RENAME Work/Projects Job")[-1] == b"t13 OK RENAME completed\r\n"
    assert wire.cmd("RENAME Job Archive")[-1].startswith(b"t14 NO [ALREADYEXISTS]")
    assert wire.cmd("DELETE INBOX")[-1].startswith(b"t15 NO [CANNOT]")
    assert wire.cmd("DELETE archive")[-1] == b"t16 OK DELETE completed\r\n"
    assert list(store.maildrop(BOB).folders) == ["INBOX", "Job", "Archive"]


def test_rename_inbox_moves_its_messages(wire: Wire, store: MailStore) -> None:
    store.deliver(BOB, plain(1))
    wire.login()
    assert wire.cmd("RENAME INBOX Old")[-1] == b"t2 OK RENAME completed\r\n"
    drop = store.maildrop(BOB)
    assert (len(drop.inbox.messages), len(drop.folder("Old").messages)) == (0, 1)


def test_international_folder_names_use_modified_utf7(wire: Wire, store: MailStore) -> None:
    store.deliver(BOB, plain(1), folder="Entwürfe")
    wire.login()
    assert wire.cmd('LIST "" *')[1] == b'* LIST (\\HasNoChildren) "/" "Entw&APw-rfe"\r\n'
    assert wire.cmd("SELECT Entw&APw-rfe")[-1].startswith(b"t3 OK")
    assert wire.cmd('CREATE "&ZeVnLIqe-"')[-1] == b"t4 OK CREATE completed\r\n"  # 日本語
    assert wire.cmd("CREATE A&B")[-1].startswith(b"t5 BAD")
    assert wire.cmd("CREATE A&-B")[-1] == b"t6 OK CREATE completed\r\n"
    assert list(store.maildrop(BOB).folders) == ["INBOX", "Entwürfe", "日本語", "A&B"]


def test_subscribe_lsub_and_status(wire: Wire, store: MailStore) -> None:
    store.deliver(BOB, plain(1), folder="Lists", flags=["\\Seen"])
    store.deliver(BOB, plain(2), folder="Lists")
    store.maildrop(BOB).create("Spam")
    wire.login()
    assert wire.cmd("UNSUBSCRIBE Spam")[-1] == b"t2 OK UNSUBSCRIBE completed\r\n"
    assert store.maildrop(BOB).folder("Spam").subscribed is False
    assert wire.cmd('LSUB "" *')[:-1] == [
        b'* LSUB () "/" "INBOX"\r\n',
        b'* LSUB () "/" "Lists"\r\n',
    ]
    assert wire.cmd("SUBSCRIBE Spam")[-1] == b"t4 OK SUBSCRIBE completed\r\n"
    lists = store.maildrop(BOB).folder("Lists")
    assert wire.cmd("STATUS Lists (MESSAGES RECENT UIDNEXT UIDVALIDITY UNSEEN)")[0] == (
        b'* STATUS "Lists" (MESSAGES 2 RECENT 2 UIDNEXT 3 UIDVALIDITY %d UNSEEN 1)\r\n'
        % lists.uidvalidity
    )
    assert wire.cmd("STATUS Lists (SIZE)")[-1].startswith(b"t6 BAD STATUS: unknown item 'SIZE'")
    assert wire.cmd("STATUS Gone (MESSAGES)")[-1].startswith(b"t7 NO [NONEXISTENT]")


# -- literals, quoting ---------------------------------------------------------------------------


def test_synchronising_literals_and_literal_plus(wire: Wire, store: MailStore) -> None:
    # A synchronising literal gets a "+" continuation before the client sends it.
    wire.send(b"m1 LOGIN {15}\r\n")
    assert wire.line().startswith(b"+ ")
    wire.send(b"bob@example.org {4}\r\n")
    assert wire.line().startswith(b"+ ")
    wire.send(b'p w"\r\n')
    assert wire.until(b"m1")[-1].startswith(b"m1 OK")
    # LITERAL+ : no continuation; the literal follows at once (the server must not wait).
    message = plain(9)
    wire.send(b"m2 APPEND INBOX (\\Draft) {%d+}\r\n%s\r\n" % (len(message), message))
    assert wire.until(b"m2")[-1].startswith(b"m2 OK [APPENDUID")
    assert store.maildrop(BOB).inbox.messages[0].raw == message
    assert store.maildrop(BOB).inbox.messages[0].flags == {"\\Draft"}
    # Quoted strings with escapes.
    assert wire.cmd(b'CREATE "a \\"quoted\\" \\\\ name"')[-1] == b"t1 OK CREATE completed\r\n"
    assert 'a "quoted" \\ name' in store.maildrop(BOB).folders
    assert (
        wire.cmd('LIST "" "a *"')[0]
        == b'* LIST (\\HasNoChildren) "/" "a \\"quoted\\" \\\\ name"\r\n'
    )


def test_login_with_literal_password_is_masked(imap: IMAPServer) -> None:
    w = Wire(imap)
    w.send(b"t1 LOGIN bob@example.org {6+}\r\nsecret\r\n")
    assert w.until(b"t1")[-1].startswith(b"t1 OK")
    w.close()
    text = "\n".join(imap.transcript)
    assert "secret" not in text
    assert "C: t1 LOGIN bob@example.org ****" in text


def test_syntax_errors_are_bad_with_a_reason(wire: Wire) -> None:
    assert wire.cmd('LOGIN "unterminated')[-1] == (
        b"t1 BAD unterminated quoted string (missing closing '\"')\r\n"
    )
    wire.send(b"\r\n")
    assert wire.line().startswith(b"* BAD expected 'tag SP command'")
    assert wire.cmd("LOGIN onlyuser")[-1] == b"t2 BAD LOGIN: usage: LOGIN user password\r\n"
    assert wire.cmd("NOOP")[-1] == b"t3 OK NOOP completed\r\n"


# -- changes made by others: NOOP and IDLE -------------------------------------------------------


def test_noop_reports_changes_made_by_others(wire: Wire, store: MailStore) -> None:
    for n in range(1, 4):
        store.deliver(BOB, plain(n))
    wire.login()
    wire.cmd("SELECT INBOX")
    inbox = store.maildrop(BOB).inbox
    inbox.set_flags(1, ["\\Flagged"], "add")
    inbox.set_flags(2, ["\\Deleted"], "add")
    inbox.expunge()
    store.deliver(BOB, plain(4))
    assert wire.cmd("NOOP") == [
        b"* 2 EXPUNGE\r\n",
        b"* 1 FETCH (FLAGS (\\Recent \\Flagged))\r\n",
        b"* 3 EXISTS\r\n",
        b"* 3 RECENT\r\n",
        b"t3 OK NOOP completed\r\n",
    ]
    assert wire.cmd("NOOP") == [b"t4 OK NOOP completed\r\n"]


def test_keywords_set_by_others_are_announced(wire: Wire, store: MailStore) -> None:
    store.deliver(BOB, plain(1), flags=["Old"])
    store.deliver(BOB, plain(2))
    wire.login()
    wire.cmd("SELECT INBOX")
    inbox = store.maildrop(BOB).inbox
    inbox.set_flags(2, ["Fresh"], "add")
    assert wire.cmd("NOOP") == [
        b"* FLAGS (\\Seen \\Answered \\Flagged \\Deleted \\Draft Fresh Old)\r\n",
        b"* OK [PERMANENTFLAGS (\\Seen \\Answered \\Flagged \\Deleted \\Draft Fresh Old \\*)] "
        b"flags permitted\r\n",
        b"* 2 FETCH (FLAGS (\\Recent Fresh))\r\n",
        b"t3 OK NOOP completed\r\n",
    ]
    # A keyword already announced (or already in FLAGS at SELECT) is not announced again.
    inbox.set_flags(1, ["Fresh"], "add")
    assert wire.cmd("NOOP") == [
        b"* 1 FETCH (FLAGS (\\Recent Fresh Old))\r\n",
        b"t4 OK NOOP completed\r\n",
    ]
    wire.cmd("EXAMINE INBOX")
    store.deliver(BOB, plain(3), flags=["Later"])
    assert wire.cmd("NOOP") == [
        b"* FLAGS (\\Seen \\Answered \\Flagged \\Deleted \\Draft Fresh Later Old)\r\n",
        b"* OK [PERMANENTFLAGS ()] read-only mailbox\r\n",
        b"* 3 EXISTS\r\n",
        b"* 1 RECENT\r\n",
        b"t6 OK NOOP completed\r\n",
    ]


def test_no_expunge_during_fetch_store_search(wire: Wire, store: MailStore) -> None:
    for n in range(1, 4):
        store.deliver(BOB, plain(n))
    wire.login()
    wire.cmd("SELECT INBOX")
    store.maildrop(BOB).inbox.remove([2])
    # RFC 3501 7.4.1: sequence numbers stay put while answering FETCH: message 2 is simply
    # absent, and its EXPUNGE comes with the next command that may carry one.
    lines = wire.cmd("FETCH 1:3 UID")
    assert lines == [
        b"* 1 FETCH (UID 1)\r\n",
        b"* 3 FETCH (UID 3)\r\n",
        b"t3 OK FETCH completed\r\n",
    ]
    assert wire.cmd("SEARCH ALL") == [b"* SEARCH 1 3\r\n", b"t4 OK SEARCH completed\r\n"]
    assert wire.cmd("CHECK") == [
        b"* 2 EXPUNGE\r\n",
        b"* 2 RECENT\r\n",
        b"t5 OK CHECK completed\r\n",
    ]
    assert wire.cmd("FETCH 2 UID")[0] == b"* 2 FETCH (UID 3)\r\n"


def test_idle_wakes_on_a_delivery_from_the_test_thread(wire: Wire, store: MailStore) -> None:
    store.deliver(BOB, plain(1))
    wire.login()
    wire.cmd("SELECT INBOX")
    wire.send(b"t9 IDLE\r\n")
    assert wire.line() == b"+ idling\r\n"
    store.deliver(BOB, plain(2))
    # The socket timeout (5 s) bounds the wait; the push itself is immediate.
    assert wire.line() == b"* 2 EXISTS\r\n"
    assert wire.line() == b"* 2 RECENT\r\n"
    store.maildrop(BOB).inbox.set_flags(1, ["\\Seen"], "add")
    assert wire.line() == b"* 1 FETCH (FLAGS (\\Recent \\Seen))\r\n"
    store.maildrop(BOB).inbox.remove([1])
    assert wire.line() == b"* 1 EXPUNGE\r\n"
    assert wire.line() == b"* 1 RECENT\r\n"
    wire.send(b"DONE\r\n")
    assert wire.line() == b"t9 OK IDLE terminated\r\n"
    assert wire.cmd("FETCH 1 UID")[0] == b"* 1 FETCH (UID 2)\r\n"


def test_idle_wakes_on_an_smtp_delivery(
    imap: IMAPServer, smtp_server: SMTPServer, store: MailStore
) -> None:
    assert store is smtp_server.store
    w = Wire(imap)
    w.login()
    w.cmd("SELECT INBOX")
    w.send(b"t9 IDLE\r\n")
    assert w.line() == b"+ idling\r\n"
    with smtplib.SMTP(*smtp_server.address, timeout=5) as smtp:
        smtp.sendmail("alice@example.org", [BOB], plain(1))
    assert w.line() == b"* 1 EXISTS\r\n"
    w.send(b"DONE\r\n")
    assert w.until(b"t9")[-1] == b"t9 OK IDLE terminated\r\n"
    w.close()


def test_idle_without_done_is_bad(wire: Wire) -> None:
    wire.login()
    wire.send(b"t9 IDLE\r\n")
    assert wire.line() == b"+ idling\r\n"
    wire.send(b"NOOP\r\n")
    assert wire.line() == b"t9 BAD IDLE: expected DONE, got b'NOOP'\r\n"


def test_stop_while_a_client_idles_is_bounded(smtp_imap_factory: Factory) -> None:
    server = smtp_imap_factory()
    w = Wire(server)
    w.login()
    w.cmd("SELECT INBOX")
    w.send(b"t9 IDLE\r\n")
    assert w.line() == b"+ idling\r\n"
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 2.5
    assert w.file.readline() == b""  # the connection is closed
    w.close()


# -- TLS -----------------------------------------------------------------------------------------


def test_implicit_tls(smtp_imap_factory: Factory, store: MailStore) -> None:
    server = smtp_imap_factory(tls="implicit")
    store.deliver(BOB, plain(1))
    client = imaplib.IMAP4_SSL(
        server.host, server.port, ssl_context=default_ca().client_context(), timeout=5
    )
    client.login(BOB, "pw")
    assert client.select() == ("OK", [b"1"])
    client.logout()
    [session] = server.sessions
    assert session.tls
    assert session.tls_mode == "implicit"
    assert session.tls_version


def test_starttls_and_require_tls(smtp_imap_factory: Factory) -> None:
    server = smtp_imap_factory(tls="starttls", require_tls=True)
    client = imaplib.IMAP4(*server.address, timeout=5)
    assert {"STARTTLS", "LOGINDISABLED"} <= set(client.capabilities)
    assert "AUTH=PLAIN" not in client.capabilities
    with pytest.raises(imaplib.IMAP4.error, match=r"\[PRIVACYREQUIRED\]"):
        client.login(BOB, "pw")
    assert client.starttls(ssl_context=default_ca().client_context())[0] == "OK"
    assert "LOGINDISABLED" not in client.capabilities
    assert "STARTTLS" not in client.capabilities
    assert client.login(BOB, "pw")[0] == "OK"
    client.logout()
    [session] = server.sessions
    assert session.tls_mode == "starttls"
    assert server.errors == []


def test_starttls_not_offered(wire: Wire) -> None:
    assert wire.cmd("STARTTLS")[-1].startswith(b"t1 BAD STARTTLS is not offered")


def test_bad_options_are_refused() -> None:
    with pytest.raises(OptionError, match="tls must be None, 'starttls' or 'implicit'"):
        IMAPServer(tls="ssl")  # type: ignore[arg-type]
    with pytest.raises(OptionError, match="require_tls=True needs tls="):
        IMAPServer(require_tls=True)
    with pytest.raises(TypeError, match=r"store must be a pytest_smtp\.store\.MailStore"):
        IMAPServer(store={})  # type: ignore[arg-type]
    with pytest.raises(OptionError, match="auth must be 'any'"):
        IMAPServer(auth="none")  # type: ignore[arg-type]


# -- one meaning per option across SMTP, POP3 and IMAP -------------------------------------------


def test_auth_none_is_a_deprecated_any(store: MailStore) -> None:
    with pytest.deprecated_call(match=r"IMAPServer\(auth=None\) is deprecated.*auth='any'"):
        server = IMAPServer(store, auth=None)
    assert server.auth == "any"
    with server:
        client = connect(server, "carol@example.org", "whatever")
        client.logout()
    with pytest.deprecated_call(match=r"POP3Server\(auth=None\) is deprecated"):
        assert POP3Server(store, auth=None).auth == "any"


def test_auth_table_text_is_read_as_on_smtp(store: MailStore) -> None:
    # The --smtp-auth spelling 'user:password,...' means the same table on every server.
    with IMAPServer(store, auth="bob@example.org:pw,carol@example.org:pw2") as server:
        assert server.auth == {BOB: "pw", "carol@example.org": "pw2"}
        connect(server, "carol@example.org", "pw2").logout()
        with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
            connect(server, BOB, "pw2")


def test_one_hostname_default_for_every_server(store: MailStore) -> None:
    from pytest_smtp.smtp.server import SMTPServer

    default = SMTPServer().hostname
    assert IMAPServer(store).hostname == POP3Server(store).hostname == default
    with IMAPServer(store) as server:
        client = imaplib.IMAP4(*server.address, timeout=5)
        assert default.encode() in client.welcome
        client.logout()


def test_options_accept_the_text_forms_smtp_accepts(store: MailStore) -> None:
    server = IMAPServer(store, tls="STARTTLS", require_tls="yes", timeout="45")  # type: ignore[arg-type]
    assert (server.tls, server.require_tls, server.timeout) == ("starttls", True, 45.0)


def test_ca_option_issues_the_certificate(store: MailStore) -> None:
    own = TestCA()
    with IMAPServer(store, tls="starttls", ca=own, hostname="imap.example.test") as server:
        assert server.ca is own
        client = imaplib.IMAP4(*server.address, timeout=5)
        assert client.starttls(ssl_context=own.client_context())[0] == "OK"
        assert client.login(BOB, "pw")[0] == "OK"
        client.logout()
        refused = imaplib.IMAP4(*server.address, timeout=5)
        with pytest.raises(ssl.SSLCertVerificationError):
            refused.starttls(ssl_context=default_ca().client_context())
        refused.file.close()  # the failed handshake closed the socket itself


def test_ssl_context_keyword_still_works_with_a_warning(store: MailStore) -> None:
    context = default_ca().server_context("imap.example.test")
    with pytest.deprecated_call(match=r"IMAPServer\(ssl_context=\.\.\.\) is deprecated"):
        server = IMAPServer(store, tls="implicit", ssl_context=context)
    with server:
        assert server.ssl_context() is context
        client = imaplib.IMAP4_SSL(
            server.host, server.port, ssl_context=default_ca().client_context(), timeout=5
        )
        assert client.login(BOB, "pw")[0] == "OK"
        client.logout()


# -- the journey and the outside-pytest surface --------------------------------------------------


def test_send_with_smtplib_and_read_back_over_imap(
    smtp_server: SMTPServer, imap: IMAPServer
) -> None:
    message = EmailMessage()
    message["From"] = "shop@example.org"
    message["To"] = BOB
    message["Subject"] = "Your order"
    message.set_content("Thanks for your order.")
    with smtplib.SMTP(*smtp_server.address, timeout=5) as smtp:
        smtp.send_message(message)
    client = connect(imap)
    client.select()
    _, data = client.search(None, "SUBJECT", '"Your order"')
    assert data == [b"1"]
    got = fetched(client, "1", "(RFC822)")
    assert b"Thanks for your order." in got[0][1]
    client.logout()
    assert store_flags(smtp_server.store) == [{"\\Seen"}]
    # Reading over IMAP never changes the SMTP capture log.
    assert len(smtp_server.mailbox) == 1


def store_flags(store: MailStore) -> list[set[str]]:
    return [m.flags for m in store.maildrop(BOB).inbox.messages]


def test_usable_outside_pytest_as_a_context_manager() -> None:
    store = MailStore()
    store.deliver(BOB, plain(1))
    with IMAPServer(store, auth={BOB: "pw"}) as server:
        client = imaplib.IMAP4(*server.address, timeout=5)
        client.login(BOB, "pw")
        assert client.select()[1] == [b"1"]
        client.logout()
        assert "IMAPServer 127.0.0.1:" in repr(server)
    assert not server.running
    server.reset()
    assert server.sessions == []
