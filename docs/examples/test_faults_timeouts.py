"""How-to: slow servers, timeouts and lost connections (docs/how-to/faults.md)."""

from __future__ import annotations

import time

import pytest
from sender import Outbox, send

from pytest_smtp import SMTPServer, assert_aborted


@pytest.fixture
def outbox(smtp_server: SMTPServer) -> Outbox:
    # A short client timeout keeps the "server never answers" test short.
    return Outbox(smtp_server.host, smtp_server.port, timeout=0.5, attempts=2, sleep=lambda s: None)


def test_a_slow_server_is_waited_for(outbox: Outbox, smtp_server: SMTPServer) -> None:
    smtp_server.faults.delay("eod", 0.2)  # under the client's 0.5 s timeout

    report = send(outbox, ["ann@example.test"], "Hi", "x")

    assert report.delivered == ["ann@example.test"]
    assert report.attempts == 1


def test_a_server_that_never_answers_is_given_up_on(
    outbox: Outbox, smtp_server: SMTPServer
) -> None:
    smtp_server.faults.hang("data")
    outbox.attempts = 1
    started = time.monotonic()

    report = send(outbox, ["ann@example.test"], "Hi", "x")

    assert time.monotonic() - started < 5  # bounded by the client's timeout, not by the server
    assert report.delivered == []
    assert report.deferred["ann@example.test"].startswith("no reply")
    assert len(smtp_server.mailbox) == 0


def test_a_connection_lost_in_the_middle_of_data_is_retried(
    outbox: Outbox, smtp_server: SMTPServer
) -> None:
    smtp_server.faults.disconnect("data", after_bytes=10, times=1)

    report = send(outbox, ["ann@example.test"], "Hi", "x" * 1000)

    assert report.delivered == ["ann@example.test"]
    assert report.attempts == 2
    # The first attempt left an aborted transaction and no message; the second got through.
    txn = assert_aborted(smtp_server, stage="data")
    assert txn.message is None
    assert smtp_server.mailbox.one().text == "x" * 1000 + "\n"


def test_a_connection_closed_before_the_greeting_is_retried(
    outbox: Outbox, smtp_server: SMTPServer
) -> None:
    smtp_server.faults.disconnect("connect", times=1)

    report = send(outbox, ["ann@example.test"], "Hi", "x")

    assert report.delivered == ["ann@example.test"]
    assert report.attempts == 2
    assert len(smtp_server.sessions) == 2
