"""How-to: greylisting and retries (docs/how-to/faults.md)."""

from __future__ import annotations

import pytest
from sender import Outbox, send

from pytest_smtp import SMTPServer, assert_deferred


@pytest.fixture
def pauses() -> list[float]:
    return []


@pytest.fixture
def outbox(smtp_server: SMTPServer, pauses: list[float]) -> Outbox:
    # The pauses between attempts are recorded instead of slept: the test stays fast.
    return Outbox(smtp_server.host, smtp_server.port, attempts=3, sleep=pauses.append)


def test_greylisted_mail_is_delivered_on_the_third_attempt(
    outbox: Outbox, smtp_server: SMTPServer, pauses: list[float]
) -> None:
    smtp_server.faults.sequence("rcpt", [451, 451, "accept"])

    report = send(outbox, ["ann@example.test"], "Hi", "x")

    assert report.delivered == ["ann@example.test"]
    assert report.attempts == 3
    assert pauses == [60.0, 60.0]
    outcomes = [t.outcome for t in smtp_server.transactions]
    assert outcomes == ["deferred", "deferred", "accepted"]
    assert len(smtp_server.mailbox) == 1


def test_only_the_greylisted_recipient_is_retried(outbox: Outbox, smtp_server: SMTPServer) -> None:
    smtp_server.faults.defer("rcpt", match="bob@*", times=1)

    report = send(outbox, ["ann@example.test", "bob@example.test"], "Hi", "x")

    assert report.delivered == ["ann@example.test", "bob@example.test"]
    first, second = smtp_server.mailbox
    assert first.rcpt_tos == ["ann@example.test"]
    assert second.rcpt_tos == ["bob@example.test"]
    assert_deferred(smtp_server, rcpt="bob@example.test", code=451)


def test_gives_up_after_the_last_attempt(
    outbox: Outbox, smtp_server: SMTPServer, pauses: list[float]
) -> None:
    smtp_server.faults.defer("mail", 421, "Try again later")

    report = send(outbox, ["ann@example.test"], "Hi", "x")

    assert report.delivered == []
    assert report.deferred == {"ann@example.test": "421 4.3.2 Try again later"}
    assert len(smtp_server.transactions.filter(outcome="deferred", stage="mail")) == 3
    assert pauses == [60.0, 60.0]
