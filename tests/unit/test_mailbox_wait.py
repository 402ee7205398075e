"""Event-driven waiting on Mailbox and TransactionLog, from threads and from event loops."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone

import pytest

from pytest_smtp.engine import get_engine
from pytest_smtp.mail import (
    Mailbox,
    MailboxError,
    MailboxTimeout,
    Message,
    RecipientResult,
    Reply,
    SessionInfo,
    Transaction,
    TransactionLog,
)
from pytest_smtp.mail.waiting import _AsyncWaiter

SESSION = SessionInfo(id=1, peer=("127.0.0.1", 40000), server_hostname="mx.test")
# Generous: a passing test never waits this long, it is woken as soon as the item arrives.
WAIT = 10.0


def make_message(to: str = "b@y.test", subject: str = "Hi", tid: int = 1) -> Message:
    return Message(
        raw=f"Subject: {subject}\r\n\r\nbody\r\n".encode(),
        mail_from="a@x.test",
        rcpt_tos=[to],
        mail_options=[],
        rcpt_options={},
        session=SESSION,
        server="127.0.0.1:2525",
        received_at=datetime.now(timezone.utc),
        transaction_id=tid,
    )


def producer(go: threading.Event, action: Callable[[], None]) -> threading.Thread:
    """A thread that runs ``action`` once ``go`` is set."""

    def run() -> None:
        if go.wait(WAIT):
            action()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


# --------------------------------------------------------------------------------------------
# Mailbox.wait_for (threads)


def test_wait_for_returns_at_once_when_already_there() -> None:
    mailbox = Mailbox(default_timeout=0)
    message = make_message()
    mailbox._append(message)
    assert mailbox.wait_for() == [message]


def test_wait_for_is_woken_by_a_producer_thread() -> None:
    mailbox = Mailbox()
    go = threading.Event()
    first, second = make_message(tid=1), make_message(tid=2)

    def deliver() -> None:
        mailbox._append(first)
        mailbox._append(second)

    thread = producer(go, deliver)
    go.set()
    assert mailbox.wait_for(count=2, timeout=WAIT) == [first, second]
    thread.join(WAIT)


def test_wait_for_blocked_waiter_wakes_on_append() -> None:
    # The waiter is provably inside wait_for (it has scanned the first message) before the
    # matching one is appended, so only a wake-up can finish it.
    mailbox = Mailbox()
    scanned = threading.Event()
    result: list[list[Message]] = []

    def watch(message: Message) -> bool:
        scanned.set()
        return message.subject == "wanted"

    mailbox._append(make_message(subject="other"))
    waiter = threading.Thread(
        target=lambda: result.append(mailbox.wait_for(timeout=WAIT, predicate=watch)),
        daemon=True,
    )
    started = time.monotonic()
    waiter.start()
    assert scanned.wait(WAIT)
    wanted = make_message(subject="wanted")
    mailbox._append(wanted)
    waiter.join(WAIT)
    assert result == [[wanted]]
    assert time.monotonic() - started < WAIT / 2


def test_wait_for_only_counts_matches() -> None:
    mailbox = Mailbox()
    go = threading.Event()
    match_one, match_two = make_message(to="c@y.test", tid=2), make_message(to="C@y.test", tid=4)

    def deliver() -> None:
        mailbox._append(make_message(tid=1))
        mailbox._append(match_one)
        mailbox._append(make_message(tid=3))
        mailbox._append(match_two)

    thread = producer(go, deliver)
    go.set()
    assert mailbox.wait_for(2, WAIT, to="c@y.test") == [match_one, match_two]
    thread.join(WAIT)


def test_wait_for_many_producers() -> None:
    mailbox = Mailbox()
    go = threading.Event()
    per_thread, threads = 200, 4

    def deliver() -> None:
        for i in range(per_thread):
            mailbox._append(make_message(tid=i))

    workers = [producer(go, deliver) for _ in range(threads)]
    go.set()
    found = mailbox.wait_for(per_thread * threads, WAIT)
    assert len(found) == per_thread * threads
    for worker in workers:
        worker.join(WAIT)
    assert len(mailbox) == per_thread * threads


def test_wait_for_timeout_lists_what_arrived() -> None:
    mailbox = Mailbox()
    mailbox._append(make_message(to="c@y.test", subject="Match"))
    mailbox._append(make_message(to="d@y.test", subject="Other"))
    with pytest.raises(MailboxTimeout) as info:
        mailbox.wait_for(2, 0.05, to="c@y.test")
    text = str(info.value)
    assert text.startswith(
        "timed out after 0.05 s waiting for 2 messages matching to='c@y.test'; 1 matched."
    )
    assert "2 messages captured:" in text
    assert "[0] from='a@x.test' to=['c@y.test'] subject='Match' size=" in text
    assert "[1] from='a@x.test' to=['d@y.test'] subject='Other' size=" in text
    assert "0x" not in text
    error = info.value
    assert isinstance(error, MailboxError)
    assert isinstance(error, AssertionError)
    assert isinstance(error, TimeoutError)


def test_wait_for_timeout_on_an_empty_mailbox_uses_default_timeout() -> None:
    mailbox = Mailbox(default_timeout=0.05)
    started = time.monotonic()
    with pytest.raises(
        MailboxTimeout, match=r"after 0\.05 s waiting for 1 message matching \(no filters\)"
    ) as info:
        mailbox.wait_for()
    assert time.monotonic() - started >= 0.05
    assert str(info.value).endswith("no messages captured")


def test_wait_for_zero_timeout_checks_once() -> None:
    mailbox = Mailbox()
    with pytest.raises(MailboxTimeout, match="after 0 s"):
        mailbox.wait_for(timeout=0)


@pytest.mark.parametrize(
    ("kwargs", "error", "text"),
    [
        ({"count": 0}, ValueError, "count must be >= 1"),
        ({"count": 1.5}, TypeError, "count must be an int"),
        ({"timeout": -1}, ValueError, "timeout must be a finite number"),
        ({"timeout": float("inf")}, ValueError, "timeout must be a finite number"),
        ({"timeout": "1"}, TypeError, "timeout must be a number"),
        ({"too": "x"}, TypeError, "unexpected keyword argument 'too'"),
    ],
)
def test_wait_for_validates(kwargs: dict[str, object], error: type[Exception], text: str) -> None:
    with pytest.raises(error, match=text):
        Mailbox().wait_for(**kwargs)  # type: ignore[arg-type]


def test_clear_during_a_wait_starts_the_count_afresh() -> None:
    mailbox = Mailbox()
    mailbox._append(make_message(tid=1))
    scanned = threading.Event()
    result: list[list[Message]] = []

    def watch(message: Message) -> bool:
        scanned.set()
        return True

    waiter = threading.Thread(
        target=lambda: result.append(mailbox.wait_for(2, WAIT, predicate=watch)), daemon=True
    )
    waiter.start()
    assert scanned.wait(WAIT)
    mailbox.clear()
    fresh = [make_message(tid=2), make_message(tid=3)]
    for message in fresh:
        mailbox._append(message)
    waiter.join(WAIT)
    assert result == [fresh]


def test_wait_for_refuses_the_engine_thread() -> None:
    mailbox = Mailbox()

    async def inside() -> None:
        mailbox.wait_for(timeout=0)

    with pytest.raises(RuntimeError, match="would deadlock on the engine's own loop"):
        get_engine().call(inside(), timeout=WAIT)


# --------------------------------------------------------------------------------------------
# Mailbox.wait_for_async


def test_wait_for_async_from_a_thread_producer() -> None:
    mailbox = Mailbox()
    go = threading.Event()
    message = make_message(subject="async")

    async def main() -> list[Message]:
        producer(go, lambda: mailbox._append(message))
        go.set()
        return await mailbox.wait_for_async(timeout=WAIT, subject="async")

    assert asyncio.run(main()) == [message]
    assert not mailbox._async_waiters


def test_wait_for_async_does_not_block_its_loop() -> None:
    # The producer is a callback on the same loop: if waiting blocked the loop it never runs.
    mailbox = Mailbox()
    message = make_message()

    async def main() -> list[Message]:
        asyncio.get_running_loop().call_soon(mailbox._append, message)
        return await mailbox.wait_for_async(timeout=WAIT)

    assert asyncio.run(main()) == [message]


def test_wait_for_async_on_the_engine_loop() -> None:
    mailbox = Mailbox()
    go = threading.Event()
    message = make_message()
    producer(go, lambda: mailbox._append(message))

    async def inside() -> list[Message]:
        go.set()
        return await mailbox.wait_for_async(timeout=WAIT)

    assert get_engine().call(inside(), timeout=WAIT) == [message]


def test_wait_for_async_timeout() -> None:
    mailbox = Mailbox()
    mailbox._append(make_message(to="x@y.test"))

    async def main() -> None:
        await mailbox.wait_for_async(timeout=0.05, to="z@y.test")

    with pytest.raises(MailboxTimeout) as info:
        asyncio.run(main())
    assert "matching to='z@y.test'; 0 matched." in str(info.value)
    assert "[0] from='a@x.test' to=['x@y.test']" in str(info.value)
    assert not mailbox._async_waiters


def test_wait_for_async_cancel_cleans_up() -> None:
    mailbox = Mailbox()

    async def main() -> None:
        task = asyncio.ensure_future(mailbox.wait_for_async(timeout=WAIT))
        await asyncio.sleep(0)  # one step: the task registers its waiter, then awaits
        assert mailbox._async_waiters
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert not mailbox._async_waiters
    mailbox._append(make_message())  # waking nobody must not fail


def test_append_survives_a_waiter_whose_loop_is_closed() -> None:
    mailbox = Mailbox()
    loop = asyncio.new_event_loop()
    waiter = _AsyncWaiter(loop)
    waiter.future = loop.create_future()
    mailbox._async_waiters.add(waiter)
    loop.close()
    mailbox._append(make_message())
    assert len(mailbox) == 1


def test_wait_for_async_counts_afresh_after_clear() -> None:
    mailbox = Mailbox()
    mailbox._append(make_message(tid=1))

    async def main() -> list[Message]:
        task = asyncio.ensure_future(mailbox.wait_for_async(2, WAIT))
        await asyncio.sleep(0)  # one step: the task registers its waiter, then awaits
        assert mailbox._async_waiters
        mailbox.clear()
        mailbox._append(make_message(tid=2))
        mailbox._append(make_message(tid=3))
        return await task

    assert [m.transaction_id for m in asyncio.run(main())] == [2, 3]


# --------------------------------------------------------------------------------------------
# TransactionLog: woken by appends and by finish()


def in_progress(tid: int, rcpt: str = "b@y") -> Transaction:
    t = Transaction(id=tid, session=SESSION)
    t.mail_from = "a@x"
    t.recipients.append(RecipientResult(rcpt, [], Reply(250)))
    return t


def test_log_wait_is_woken_by_finish() -> None:
    log = TransactionLog()
    t = in_progress(1)
    log._append(t)
    go = threading.Event()
    producer(go, lambda: t.finish("aborted", "data", None))
    go.set()
    assert log.wait_for(outcome="aborted", timeout=WAIT) == [t]


def test_log_wait_sees_a_change_of_an_earlier_item() -> None:
    log = TransactionLog()
    first, second = in_progress(1), in_progress(2)
    log._append(first)
    log._append(second)
    scanned = threading.Event()
    result: list[list[Transaction]] = []

    def watch(t: Transaction) -> bool:
        scanned.set()
        return t.outcome == "accepted"

    waiter = threading.Thread(
        target=lambda: result.append(log.wait_for(2, WAIT, predicate=watch)), daemon=True
    )
    waiter.start()
    assert scanned.wait(WAIT)
    first.finish("accepted", "eod", Reply(250))
    third = in_progress(3)
    log._append(third)
    third.finish("accepted", "eod", Reply(250))
    waiter.join(WAIT)
    assert result == [[first, third]]


def test_log_wait_async_is_woken_by_finish() -> None:
    log = TransactionLog()
    t = in_progress(7, rcpt="bob@y")
    log._append(t)

    async def main() -> list[Transaction]:
        loop = asyncio.get_running_loop()
        loop.call_soon(t.finish, "rejected", "rcpt", Reply(550, "no", "5.1.1"))
        return await log.wait_for_async(timeout=WAIT, outcome="rejected", rcpt="bob@y")

    assert asyncio.run(main()) == [t]


def test_log_wait_timeout_lists_transactions() -> None:
    log = TransactionLog()
    log._append(in_progress(1))
    with pytest.raises(MailboxTimeout) as info:
        log.wait_for(timeout=0.05, outcome="dropped")
    text = str(info.value)
    assert "waiting for 1 transaction matching outcome='dropped'; 0 matched." in text
    assert "[0] #1 in progress at mail from='a@x' to=['b@y']" in text


def test_finish_after_clear_is_harmless() -> None:
    log = TransactionLog()
    t = in_progress(1)
    log._append(t)
    log.clear()
    t.finish("accepted", "eod", Reply(250))
    assert len(log) == 0
