"""Waiting for mail that is sent in the background, from sync and from async tests."""

from __future__ import annotations

import asyncio
import threading
from datetime import datetime, timezone

import pytest

from pytest_smtp.asserts import assert_aborted, assert_no_mail
from pytest_smtp.mail import (
    Mailbox,
    MailboxTimeout,
    Message,
    SessionInfo,
    Transaction,
    TransactionLog,
)

SESSION = SessionInfo(id=1, peer=("127.0.0.1", 50000), server_hostname="mx.test")


def captured(to: str, subject: str) -> Message:
    """What the capturing server records for one delivery (the server builds these for you)."""
    return Message(
        raw=f"Subject: {subject}\r\n\r\nbody\r\n".encode(),
        mail_from="app@example.com",
        rcpt_tos=[to],
        mail_options=[],
        rcpt_options={},
        session=SESSION,
        server="127.0.0.1:2525",
        received_at=datetime.now(timezone.utc),
        transaction_id=1,
    )


def background_worker(mailbox: Mailbox, go: threading.Event) -> threading.Thread:
    """Stands in for a job queue worker that sends two mails once it gets going."""

    def run() -> None:
        if go.wait(10):
            mailbox._append(captured("alice@example.org", "Welcome"))
            mailbox._append(captured("alice@example.org", "Please confirm"))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_wait_for_mail_sent_by_a_worker() -> None:
    mailbox = Mailbox()
    go = threading.Event()
    background_worker(mailbox, go)
    go.set()

    # Returns as soon as two matching messages are there; no sleep, no polling.
    welcome, confirm = mailbox.wait_for(2, timeout=10, to="alice@example.org")
    assert (welcome.subject, confirm.subject) == ("Welcome", "Please confirm")


def test_wait_for_in_an_async_test() -> None:
    mailbox = Mailbox()
    go = threading.Event()
    background_worker(mailbox, go)

    async def main() -> Message:
        go.set()
        # Awaiting never blocks this event loop.
        (confirm,) = await mailbox.wait_for_async(timeout=10, subject="Please confirm")
        return confirm

    assert asyncio.run(main()).rcpt_tos == ["alice@example.org"]


def test_a_timeout_says_what_did_arrive() -> None:
    mailbox = Mailbox(default_timeout=0.05)
    mailbox._append(captured("bob@example.org", "Welcome"))
    with pytest.raises(MailboxTimeout) as info:
        mailbox.wait_for(to="alice@example.org")
    assert "waiting for 1 message matching to='alice@example.org'; 0 matched." in str(info.value)
    assert "[0] from='app@example.com' to=['bob@example.org'] subject='Welcome'" in str(info.value)


def test_no_mail_within_a_grace_period() -> None:
    mailbox = Mailbox()
    # Waits the whole 0.05 s; fails at once if a matching message arrives meanwhile.
    assert_no_mail(mailbox, within=0.05, to="alice@example.org")


def test_wait_for_an_outcome_that_is_recorded_later() -> None:
    transactions = TransactionLog()
    txn = Transaction(id=1, session=SESSION)
    transactions._append(txn)

    # A client that vanishes mid-DATA: the server notices after the client code has returned.
    threading.Thread(target=txn.finish, args=("aborted", "data", None), daemon=True).start()

    assert assert_aborted(transactions, stage="data", timeout=10) is txn
