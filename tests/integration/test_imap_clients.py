"""IMAPServer against IMAP clients nobody here wrote: imapclient, imap-tools and aioimaplib."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from email.message import EmailMessage

import aioimaplib
import imap_tools
import pytest
from imapclient import IMAPClient

from pytest_smtp.retrieval.imap import IMAPServer
from pytest_smtp.smtp.tls import default_ca
from pytest_smtp.store import MailStore

BOB = "bob@example.org"


def mail(n: int, subject: str | None = None, sender: str = "alice@example.org") -> bytes:
    message = EmailMessage()
    message["From"] = f"Alice <{sender}>"
    message["To"] = BOB
    message["Subject"] = subject or f"Ticket {n}"
    message.set_content(f"Body of ticket {n}\n")
    return message.as_bytes()


@pytest.fixture
def imap(smtp_imap: IMAPServer) -> Iterator[IMAPServer]:
    yield smtp_imap
    assert smtp_imap.errors == []


@pytest.fixture
def store(imap: IMAPServer) -> MailStore:
    return imap.store


# -- imapclient ----------------------------------------------------------------------------------


def test_imapclient_fetch_envelope_flags_and_move(imap: IMAPServer, store: MailStore) -> None:
    store.deliver(BOB, mail(1, "Grüße"))
    store.deliver(BOB, mail(2), flags=["\\Seen"])
    with IMAPClient(imap.host, port=imap.port, ssl=False, timeout=5) as client:
        client.login(BOB, "pw")
        assert client.has_capability("IDLE")
        assert client.has_capability("MOVE")
        info = client.select_folder("INBOX")
        assert info[b"EXISTS"] == 2
        assert info[b"UIDNEXT"] == 3
        assert client.search(["UNSEEN"]) == [1]
        assert client.search(["SUBJECT", "grüße"], charset="UTF-8") == [1]
        data = client.fetch(
            [1], ["ENVELOPE", "BODYSTRUCTURE", "FLAGS", "RFC822.SIZE", "BODY.PEEK[]"]
        )
        envelope = data[1][b"ENVELOPE"]
        assert envelope.subject.startswith(b"=?utf-8?") or envelope.subject == "Grüße".encode()
        assert (envelope.from_[0].mailbox, envelope.from_[0].host) == (b"alice", b"example.org")
        assert envelope.from_[0].name == b"Alice"
        assert data[1][b"BODY[]"] == store.maildrop(BOB).inbox.messages[0].raw
        assert data[1][b"RFC822.SIZE"] == len(data[1][b"BODY[]"])
        assert data[1][b"BODYSTRUCTURE"][0].lower() == b"text"
        assert client.get_flags([1]) == {1: (b"\\Recent",)}
        client.add_flags([1], [b"\\Flagged", b"Triaged"])
        client.remove_flags([2], [b"\\Seen"])
        assert store.maildrop(BOB).inbox.messages[0].flags == {"\\Flagged", "Triaged"}
        assert store.maildrop(BOB).inbox.messages[1].flags == set()
        client.create_folder("Processed/2024")
        assert client.folder_exists("Processed/2024")
        client.move([1], "Processed/2024")
        assert client.search(["ALL"]) == [2]
        names = [name for _flags, _delim, name in client.list_folders()]
        assert names == ["INBOX", "Processed/2024", "Processed"]
        uid = client.append("Processed/2024", mail(3), flags=[b"\\Seen"])
        assert b"APPENDUID" in uid
        client.logout()
    processed = store.maildrop(BOB).folder("Processed/2024")
    assert [m.flags for m in processed.messages] == [{"\\Flagged", "Triaged"}, {"\\Seen"}]


def test_imapclient_idle_woken_by_store_deliver(imap: IMAPServer, store: MailStore) -> None:
    with IMAPClient(imap.host, port=imap.port, ssl=False, timeout=5) as client:
        client.login(BOB, "pw")
        client.select_folder("INBOX")
        client.idle()
        store.deliver(BOB, mail(1))
        # idle_check waits on the socket (select), returning as soon as the push arrives.
        responses = client.idle_check(timeout=5)
        assert (1, b"EXISTS") in responses
        client.idle_done()
        client.logout()


def test_imapclient_international_folder_names(imap: IMAPServer, store: MailStore) -> None:
    store.deliver(BOB, mail(1), folder="Entwürfe")
    with IMAPClient(imap.host, port=imap.port, ssl=False, timeout=5) as client:
        client.login(BOB, "pw")
        assert "Entwürfe" in [name for *_ignored, name in client.list_folders()]
        client.create_folder("Été/Brouillons")
        assert client.select_folder("Entwürfe", readonly=True)[b"EXISTS"] == 1
        client.logout()
    assert "Été/Brouillons" in store.maildrop(BOB).folders


def test_imapclient_over_implicit_tls(smtp_imap_factory: Callable[..., IMAPServer]) -> None:
    server = smtp_imap_factory(tls="implicit", auth={BOB: "s3cret"})
    context = default_ca().client_context()
    with IMAPClient(server.host, port=server.port, ssl=True, ssl_context=context, timeout=5) as c:
        c.login(BOB, "s3cret")
        assert c.select_folder("INBOX")[b"EXISTS"] == 0
        c.logout()


def test_imapclient_starttls(smtp_imap_factory: Callable[..., IMAPServer]) -> None:
    server = smtp_imap_factory(tls="starttls", require_tls=True)
    with IMAPClient(server.host, port=server.port, ssl=False, timeout=5) as client:
        assert client.has_capability("LOGINDISABLED")
        client.starttls(default_ca().client_context())
        client.login(BOB, "pw")
        client.logout()
    assert server.sessions[0].tls_mode == "starttls"


# -- imap-tools ----------------------------------------------------------------------------------


def test_imap_tools_fetch_flag_move(imap: IMAPServer, store: MailStore) -> None:
    store.deliver(BOB, mail(1, "Printer on fire"))
    store.deliver(BOB, mail(2, "Password reset", "carol@example.org"), flags=["\\Seen"])
    with imap_tools.MailBoxUnencrypted(imap.host, port=imap.port).login(BOB, "pw") as mailbox:
        unseen = list(mailbox.fetch(imap_tools.AND(seen=False), mark_seen=False))
        assert [(m.uid, m.subject, m.from_) for m in unseen] == [
            ("1", "Printer on fire", "alice@example.org")
        ]
        assert unseen[0].text == "Body of ticket 1\r\n"
        assert unseen[0].flags == ("\\Recent",)
        assert [m.subject for m in mailbox.fetch(imap_tools.AND(from_="carol"))] == [
            "Password reset"
        ]
        mailbox.flag("1", imap_tools.MailMessageFlags.SEEN, True)
        mailbox.folder.create("Processed")
        mailbox.move("1", "Processed")
        assert [f.name for f in mailbox.folder.list()] == ["INBOX", "Processed"]
        assert mailbox.folder.status("Processed")["MESSAGES"] == 1
        mailbox.delete("2")
    drop = store.maildrop(BOB)
    assert drop.inbox.messages == []
    [processed] = drop.folder("Processed").messages
    assert processed.flags == {"\\Seen"}
    assert processed.subject == "Printer on fire"


def test_imap_tools_fetch_marks_seen_and_appends(imap: IMAPServer, store: MailStore) -> None:
    store.deliver(BOB, mail(1))
    with imap_tools.MailBoxUnencrypted(imap.host, port=imap.port).login(BOB, "pw") as mailbox:
        [message] = list(mailbox.fetch())  # BODY[]: marks \Seen
        assert message.subject == "Ticket 1"
        mailbox.append(mail(2), "INBOX", flag_set=[imap_tools.MailMessageFlags.FLAGGED])
        assert [
            m.uid
            for m in mailbox.fetch(imap_tools.AND(flagged=True), headers_only=True, mark_seen=False)
        ] == ["2"]
    assert [m.flags for m in store.maildrop(BOB).inbox.messages] == [{"\\Seen"}, {"\\Flagged"}]


# -- aioimaplib ----------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_aioimaplib_fetch_and_idle(imap: IMAPServer, store: MailStore) -> None:
    store.deliver(BOB, mail(1))
    client = aioimaplib.IMAP4(host=imap.host, port=imap.port, timeout=5)
    await client.wait_hello_from_server()
    assert (await client.login(BOB, "pw")).result == "OK"
    assert (await client.select("INBOX")).result == "OK"
    response = await client.uid("fetch", "1", "(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    assert response.result == "OK"
    assert bytearray(b"Subject: Ticket 1\r\n\r\n") in response.lines
    idle = await client.idle_start(timeout=5)
    # A delivery from another thread, as an SMTP delivery on the engine would be.
    thread = threading.Thread(target=store.deliver, args=(BOB, mail(2)))
    thread.start()
    pushed = await client.wait_server_push(timeout=5)
    thread.join()
    assert b"2 EXISTS" in pushed
    client.idle_done()
    assert (await asyncio.wait_for(idle, 5)).result == "OK"
    assert (await client.uid("store", "2", "+FLAGS", "(\\Answered)")).result == "OK"
    await client.logout()
    assert store.maildrop(BOB).inbox.messages[1].flags == {"\\Answered"}
