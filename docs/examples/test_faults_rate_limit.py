"""How-to: a server that rate-limits (docs/how-to/faults.md)."""

from __future__ import annotations

import pytest
from sender import Outbox, send_batch

from pytest_smtp import SMTPServer, assert_deferred

BATCH = [(f"user{n}@example.test", f"Invoice {n}", "x") for n in range(5)]


@pytest.fixture
def pauses() -> list[float]:
    return []


@pytest.fixture
def outbox(smtp_server: SMTPServer, pauses: list[float]) -> Outbox:
    return Outbox(smtp_server.host, smtp_server.port, attempts=2, sleep=pauses.append)


def test_batch_pauses_and_reconnects_after_421(
    outbox: Outbox, smtp_server: SMTPServer, pauses: list[float]
) -> None:
    # Two messages per hour, then "421 4.7.0" and the connection is closed — once.
    smtp_server.faults.rate_limit(2, per_seconds=3600, times=1)

    report = send_batch(outbox, BATCH)

    assert report.delivered == [to for to, _, _ in BATCH]
    assert (report.attempts, pauses) == (2, [60.0])
    txn = assert_deferred(smtp_server, code=421, stage="mail")
    assert txn.mail_from == "noreply@example.test"
    assert txn.reply is not None and txn.reply.enhanced == "4.7.0"
    # Two sessions: the first ended at the limit, the second sent the rest.
    assert len(smtp_server.sessions) == 2


def test_batch_stops_when_the_limit_persists(
    outbox: Outbox, smtp_server: SMTPServer, pauses: list[float]
) -> None:
    smtp_server.faults.rate_limit(2, per_seconds=3600)

    report = send_batch(outbox, BATCH)

    assert report.delivered == ["user0@example.test", "user1@example.test"]
    assert sorted(report.deferred) == [f"user{n}@example.test" for n in (2, 3, 4)]
    assert [m.subject for m in smtp_server.mailbox] == ["Invoice 0", "Invoice 1"]
    assert len(smtp_server.transactions.filter(outcome="deferred", code=421)) == 2
