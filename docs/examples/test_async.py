"""How-to: async tests with pytest-asyncio or anyio, and aiosmtplib (docs/how-to/async.md)."""

from __future__ import annotations

import asyncio

import aiosmtplib
import pytest
from sender import Outbox, send_async

from pytest_smtp import SMTPServer, TestCA


@pytest.fixture
def outbox(smtp_server: SMTPServer) -> Outbox:
    return Outbox(smtp_server.host, smtp_server.port)


@pytest.mark.asyncio
async def test_send_and_check(outbox: Outbox, smtp_server: SMTPServer) -> None:
    await send_async(outbox, ["ann@example.test"], "Hi", "Hello from a coroutine")

    # The reply was 250, so the message is already recorded: no waiting needed.
    assert smtp_server.mailbox.one(to="ann@example.test").text == "Hello from a coroutine\n"


@pytest.mark.asyncio
async def test_wait_for_mail_sent_by_a_background_task(
    outbox: Outbox, smtp_server: SMTPServer
) -> None:
    async def worker() -> None:  # e.g. a queue consumer started by the app
        for n in range(5):
            await send_async(outbox, [f"user{n}@example.test"], f"Job {n}", "done")

    task = asyncio.create_task(worker())

    # Awaiting frees this loop for the worker; the wait is woken by each arrival, never polls.
    messages = await smtp_server.mailbox.wait_for_async(5, timeout=10)

    assert sorted(m.subject or "" for m in messages) == [f"Job {n}" for n in range(5)]
    await task


@pytest.mark.anyio
async def test_with_anyio(outbox: Outbox, smtp_server: SMTPServer) -> None:
    await send_async(outbox, ["ann@example.test"], "Hi", "x")

    [message] = await smtp_server.mailbox.wait_for_async(subject="Hi", timeout=5)
    assert message.rcpt_tos == ["ann@example.test"]


@pytest.mark.asyncio
@pytest.mark.smtp(tls="starttls", auth={"app": "s3cret"})
async def test_starttls_and_login(
    outbox: Outbox, smtp_server: SMTPServer, smtp_tls: TestCA
) -> None:
    outbox.tls, outbox.context = "starttls", smtp_tls.client_context()
    outbox.user, outbox.password = "app", "s3cret"

    await send_async(outbox, ["ann@example.test"], "Hi", "x")

    session = smtp_server.mailbox.one().session
    assert (session.tls_mode, session.auth_user) == ("starttls", "app")


@pytest.mark.asyncio
@pytest.mark.smtp_fault("rcpt", "reject", 550, "No such user")
async def test_a_refusal_reaches_the_async_caller(outbox: Outbox, smtp_server: SMTPServer) -> None:
    with pytest.raises(aiosmtplib.SMTPRecipientsRefused) as info:
        await send_async(outbox, ["ghost@example.test"], "Hi", "x")

    [refusal] = info.value.recipients
    assert (refusal.code, refusal.message) == (550, "5.1.1 No such user")
    [txn] = await smtp_server.transactions.wait_for_async(outcome="rejected", timeout=5)
    assert txn.stage == "rcpt"
