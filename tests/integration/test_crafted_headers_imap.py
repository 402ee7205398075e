"""Crafted header fields read back over IMAP with imaplib: answers, never a crash."""

from __future__ import annotations

import imaplib
from collections.abc import Iterator

import pytest

from pytest_smtp.retrieval.imap import IMAPServer

BOB = "bob@example.org"
NESTED = (
    b"From: a@example.org\r\nTo: a@b.test "
    + b"(" * 3000
    + b")" * 3000
    + b"\r\nCc: "
    + b"(c)" * 1000
    + b"\r\nSubject: deep\r\n\r\nbody\r\n"
)


@pytest.fixture
def imap(smtp_imap: IMAPServer) -> Iterator[IMAPServer]:
    yield smtp_imap
    assert smtp_imap.errors == []


def test_fetch_of_a_message_with_3000_nested_comments_in_to(imap: IMAPServer) -> None:
    stored = imap.store.deliver(BOB, NESTED)
    client = imaplib.IMAP4(*imap.address, timeout=10)
    try:
        client.login(BOB, "pw")
        assert client.select("INBOX")[0] == "OK"
        typ, data = client.fetch("1", "(ENVELOPE BODYSTRUCTURE RFC822.SIZE)")
        assert typ == "OK", data
        line = data[0]
        assert isinstance(line, bytes)
        assert b'"deep"' in line  # the envelope's subject
        assert b"RFC822.SIZE %d" % len(NESTED) in line
        assert b'("TEXT" "PLAIN"' in line.upper()
        typ, data = client.fetch("1", "(BODY.PEEK[HEADER.FIELDS (TO)] BODY.PEEK[TEXT])")
        assert typ == "OK", data
        header, text = data[0][1], data[1][1]
        assert header.startswith(b"To: a@b.test (((")
        assert text == b"body\r\n"
        typ, data = client.search(None, "SUBJECT", "deep")
        assert (typ, data) == ("OK", [b"1"])
    finally:
        client.logout()
    # The store's own accessors, after IMAP has read it.
    assert stored.subject == "deep"
    assert str(stored.email["To"]).startswith("a@b.test (((")
    assert any("nested" in line for line in stored.parse_defects)
