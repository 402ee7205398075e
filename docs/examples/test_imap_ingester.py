"""Testing code that reads a mailbox: a help-desk ticket ingester that polls IMAP."""

from __future__ import annotations

import email
import email.policy
import imaplib
import smtplib
from dataclasses import dataclass
from email.message import EmailMessage

from pytest_smtp.retrieval.imap import IMAPServer
from pytest_smtp.smtp.server import SMTPServer

# -- the application code under test --------------------------------------------------------------


@dataclass
class Ticket:
    reporter: str
    title: str
    body: str


def ingest(host: str, port: int, user: str, password: str) -> list[Ticket]:
    """Turn every unread message in INBOX into a ticket, then file it under Processed."""
    tickets = []
    with imaplib.IMAP4(host, port, timeout=10) as imap:
        imap.login(user, password)
        if imap.select("Processed")[0] != "OK":
            imap.create("Processed")
        imap.select("INBOX")
        _, data = imap.uid("SEARCH", "UNSEEN")
        for uid in data[0].split():
            _, parts = imap.uid("FETCH", uid, "(BODY.PEEK[])")
            message = email.message_from_bytes(parts[0][1], policy=email.policy.default)
            body = message.get_body(("plain",))
            tickets.append(
                Ticket(
                    reporter=message["From"].addresses[0].addr_spec,
                    title=str(message["Subject"]),
                    body=body.get_content().strip() if body else "",
                )
            )
            imap.uid("STORE", uid, "+FLAGS", r"(\Seen)")
            imap.uid("MOVE", uid, "Processed")
    return tickets


# -- the tests -------------------------------------------------------------------------------------

HELPDESK = "helpdesk@example.test"


def report(smtp_server: SMTPServer, subject: str, text: str) -> None:
    message = EmailMessage()
    message["From"] = "Ada <ada@example.test>"
    message["To"] = HELPDESK
    message["Subject"] = subject
    message.set_content(text)
    with smtplib.SMTP(smtp_server.host, smtp_server.port) as smtp:
        smtp.send_message(message)


def test_new_mail_becomes_a_ticket(smtp_server: SMTPServer, smtp_imap: IMAPServer) -> None:
    report(smtp_server, "Printer on fire", "Third floor, again.")

    tickets = ingest(smtp_imap.host, smtp_imap.port, HELPDESK, "any password")

    assert tickets == [Ticket("ada@example.test", "Printer on fire", "Third floor, again.")]
    # What the ingester did to the mailbox, as the store sees it:
    drop = smtp_server.store.maildrop(HELPDESK)
    assert drop.inbox.messages == []
    [filed] = drop.folder("Processed").messages
    assert filed.flags == {"\\Seen"}
    assert filed.subject == "Printer on fire"


def test_mail_already_read_is_left_alone(smtp_imap: IMAPServer) -> None:
    # Seed the mailbox directly: no SMTP needed.
    store = smtp_imap.store
    store.deliver(
        HELPDESK, "From: bob@example.test\nSubject: old\n\nseen already", flags=["\\Seen"]
    )
    store.deliver(HELPDESK, "From: eve@example.test\nSubject: VPN down\n\nsince 9am")

    tickets = ingest(smtp_imap.host, smtp_imap.port, HELPDESK, "secret")

    assert [t.title for t in tickets] == ["VPN down"]
    assert [m.subject for m in store.maildrop(HELPDESK).inbox.messages] == ["old"]
    # Every IMAP session is recorded, with the password masked:
    assert any("LOGIN helpdesk@example.test ****" in line for line in smtp_imap.transcript)
    assert not any("secret" in line for line in smtp_imap.transcript)
