"""The mail store from Python: seed maildrops, then assert what a reader did to them."""

from __future__ import annotations

import poplib
from datetime import datetime, timezone

from pytest_smtp.retrieval.pop3 import POP3Server
from pytest_smtp.store import MailStore, StoreEvent


def test_seed_folders_and_flags() -> None:
    store = MailStore()
    store.deliver("bob@example.test", "Subject: Hello\n\nHi Bob\n")
    store.deliver(
        "bob@EXAMPLE.test",  # same maildrop: the domain is case-insensitive
        b"Subject: Old news\r\n\r\nread long ago\r\n",
        folder="Archive",  # created on demand
        flags=["\\Seen", "Processed"],
        internal_date=datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone.utc),
    )

    drop = store.maildrop("bob@example.test")
    assert list(drop.folders) == ["INBOX", "Archive"]
    hello = drop.inbox.messages[0]
    assert (hello.uid, hello.subject, hello.flags) == (1, "Hello", set())
    assert hello.raw.endswith(b"Hi Bob\r\n")  # line breaks are CRLF, as on the wire
    old = drop.folder("Archive").messages[0]
    assert old.flags == {"\\Seen", "Processed"}
    assert old.internal_date.year == 2024


def test_what_a_pop3_reader_did() -> None:
    store = MailStore()
    for n in (1, 2, 3):
        store.deliver("bob@example.test", f"Subject: n{n}\n\nbody\n")
    events: list[StoreEvent] = []
    store.subscribe(events.append)

    with POP3Server(store) as server:  # auth="any": every login is accepted
        client = poplib.POP3(server.host, server.port, timeout=10)
        client.user("bob@example.test")
        client.pass_("anything")
        client.retr(1)
        client.dele(2)
        client.quit()

    inbox = store.maildrop("bob@example.test").inbox
    assert [(m.subject, m.seen) for m in inbox] == [("n1", True), ("n3", False)]
    assert [(e.kind, e.uids) for e in events] == [("expunge", (2,)), ("flags", (1,))]
