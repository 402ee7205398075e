"""How-to: a server that accepts mail and loses it (docs/how-to/faults.md)."""

from __future__ import annotations

import pytest
from sender import Outbox, send

from pytest_smtp import SMTPServer, assert_dropped, assert_no_mail


@pytest.fixture
def outbox(smtp_server: SMTPServer) -> Outbox:
    return Outbox(smtp_server.host, smtp_server.port)


def test_a_dropped_message_looks_delivered_to_the_sender(
    outbox: Outbox, smtp_server: SMTPServer
) -> None:
    smtp_server.faults.drop(match="ann@example.test")

    report = send(outbox, ["ann@example.test"], "Your code: 1234", "x")

    # The sender saw "250 OK" and cannot know better ...
    assert report.delivered == ["ann@example.test"]
    # ... but the message never reached a mailbox,
    assert_no_mail(smtp_server, to="ann@example.test")
    assert "ann@example.test" not in smtp_server.store
    # and the transaction keeps it as evidence.
    txn = assert_dropped(smtp_server, rcpt="ann@example.test")
    assert txn.message is not None
    assert txn.message.subject == "Your code: 1234"


@pytest.mark.smtp_fault("eod", "drop", nth=2)
def test_only_the_second_message_is_lost(outbox: Outbox, smtp_server: SMTPServer) -> None:
    for n in range(3):
        send(outbox, ["ann@example.test"], f"Message {n}", "x")

    assert [m.subject for m in smtp_server.mailbox] == ["Message 0", "Message 2"]
    assert [t.outcome for t in smtp_server.transactions] == ["accepted", "dropped", "accepted"]
