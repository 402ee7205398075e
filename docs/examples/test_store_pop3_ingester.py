"""A help-desk ingester that reads a POP3 mailbox, tested against POP3Server over a MailStore."""

from __future__ import annotations

import poplib
from collections.abc import Iterator
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage

import pytest

from pytest_smtp.retrieval.pop3 import POP3Server
from pytest_smtp.store import MailStore


# -- the code under test (it would live in the application) --------------------------------------
@dataclass
class Ticket:
    sender: str
    subject: str
    body: str


def fetch_tickets(host: str, port: int, user: str, password: str) -> list[Ticket]:
    """Download every message as a ticket and delete it from the server."""
    client = poplib.POP3(host, port, timeout=10)
    try:
        client.user(user)
        client.pass_(password)
        count, _ = client.stat()
        tickets = []
        for number in range(1, count + 1):
            _, lines, _ = client.retr(number)
            mail = message_from_bytes(b"\r\n".join(lines), policy=policy.default)
            body = mail.get_body(("plain",))
            if body is None:
                raise ValueError(f"message {number} has no text part")
            text = body.get_content().strip()
            tickets.append(Ticket(str(mail["From"]), str(mail["Subject"]), text))
            client.dele(number)
        client.quit()  # deletions happen here, and only here
    except BaseException:
        client.close()  # no QUIT: the server keeps every message
        raise
    return tickets


# -- the tests ----------------------------------------------------------------------------------
HELPDESK = "helpdesk@example.test"


def mail(subject: str, text: str | None = "Please help") -> EmailMessage:
    message = EmailMessage()
    message["From"] = "ada@example.test"
    message["To"] = HELPDESK
    message["Subject"] = subject
    if text is None:
        message.set_content(b"\x89PNG...", maintype="image", subtype="png")
    else:
        message.set_content(text)
    return message


@pytest.fixture
def store() -> MailStore:
    return MailStore()


@pytest.fixture
def pop3(store: MailStore) -> Iterator[POP3Server]:
    with POP3Server(store, auth={HELPDESK: "letmein"}) as server:
        yield server


def test_tickets_are_fetched_and_deleted(store: MailStore, pop3: POP3Server) -> None:
    store.deliver(HELPDESK, mail("Printer on fire"))
    store.deliver(HELPDESK, mail("VPN down", "Since 9:00"))

    tickets = fetch_tickets(pop3.host, pop3.port, HELPDESK, "letmein")

    assert [t.subject for t in tickets] == ["Printer on fire", "VPN down"]
    assert tickets[1].body == "Since 9:00"
    assert store.maildrop(HELPDESK).inbox.messages == []  # deleted at QUIT
    assert pop3.sessions[0].user == HELPDESK


def test_a_failure_midway_deletes_nothing(store: MailStore, pop3: POP3Server) -> None:
    store.deliver(HELPDESK, mail("Fine"))
    store.deliver(HELPDESK, mail("Screenshot only", text=None))

    with pytest.raises(ValueError, match="message 2 has no text part"):
        fetch_tickets(pop3.host, pop3.port, HELPDESK, "letmein")

    pop3.wait_idle()  # the server has seen the connection close
    subjects = [m.subject for m in store.maildrop(HELPDESK).inbox]
    assert subjects == ["Fine", "Screenshot only"]  # message 1 was DELE'd, never QUIT


def test_a_wrong_password_is_refused(pop3: POP3Server) -> None:
    with pytest.raises(poplib.error_proto, match=r"\[AUTH\]"):
        fetch_tickets(pop3.host, pop3.port, HELPDESK, "guess")
    assert "C: PASS ****" in pop3.sessions[0].transcript
