"""How-to: one recipient out of three is refused (docs/how-to/faults.md)."""

from __future__ import annotations

import pytest
from sender import Outbox, send

from pytest_smtp import SMTPServer, assert_rejected


@pytest.fixture
def outbox(smtp_server: SMTPServer) -> Outbox:
    return Outbox(smtp_server.host, smtp_server.port)


def test_unknown_recipient_bounces_and_the_others_get_the_mail(
    outbox: Outbox, smtp_server: SMTPServer
) -> None:
    smtp_server.faults.reject("rcpt", 550, "No such user", match="bob@example.test")

    report = send(outbox, ["ann@example.test", "bob@example.test", "cid@example.test"], "Hi", "x")

    # What the application concluded ...
    assert report.delivered == ["ann@example.test", "cid@example.test"]
    assert report.bounced == {"bob@example.test": "550 5.1.1 No such user"}
    # ... matches what the server did: one message, for the two accepted recipients,
    message = smtp_server.mailbox.one()
    assert message.rcpt_tos == ["ann@example.test", "cid@example.test"]
    # and a transaction that was accepted with one recipient refused.
    txn = assert_rejected(smtp_server, rcpt="bob@example.test", code=550, stage="rcpt")
    assert txn.outcome == "accepted"
    assert [(r.address, str(r.reply)) for r in txn.refused] == [
        ("bob@example.test", "550 5.1.1 No such user")
    ]


@pytest.mark.smtp_fault("rcpt", "reject", match="*@gone.example.test")
@pytest.mark.smtp_fault("rcpt", "defer", 452, "Mailbox full", enhanced="4.2.2", match="full@*")
def test_bounces_and_deferrals_are_told_apart(outbox: Outbox, smtp_server: SMTPServer) -> None:
    report = send(
        outbox, ["old@gone.example.test", "full@example.test", "ok@example.test"], "Hi", "x"
    )

    assert report.delivered == ["ok@example.test"]
    assert report.bounced == {"old@gone.example.test": "550 5.1.1 No such user"}
    assert report.deferred == {"full@example.test": "452 4.2.2 Mailbox full"}


def test_every_recipient_refused_is_a_rejected_transaction(
    outbox: Outbox, smtp_server: SMTPServer
) -> None:
    smtp_server.faults.reject("rcpt", domain="example.test")

    report = send(outbox, ["ann@example.test", "bob@example.test"], "Hi", "x")

    assert report.delivered == []
    assert sorted(report.bounced) == ["ann@example.test", "bob@example.test"]
    assert len(smtp_server.mailbox) == 0
    txn = smtp_server.transactions.one()
    assert (txn.outcome, txn.stage, txn.reply and txn.reply.code) == ("rejected", "rcpt", 550)
