"""Fault injection at every stage, seen through real clients (smtplib and aiosmtplib)."""

from __future__ import annotations

import asyncio
import smtplib
import socket
import time
from collections.abc import Iterator

import aiosmtplib
import pytest

from pytest_smtp import (
    SMTPServer,
    assert_aborted,
    assert_deferred,
    assert_dropped,
    assert_rejected,
)
from pytest_smtp.engine import STOP_TIMEOUT
from pytest_smtp.mail import Reply

MSG = "From: a@x.test\r\nTo: b@y.test\r\nSubject: f\r\n\r\nbody\r\n"


@pytest.fixture
def server() -> Iterator[SMTPServer]:
    with SMTPServer(timeout=10) as srv:
        srv.faults.seed = 7
        yield srv


def send(
    server: SMTPServer, rcpts: list[str] | None = None, sender: str = "a@x.test"
) -> dict[str, tuple[int, bytes]]:
    with smtplib.SMTP(*server.address, timeout=5) as client:
        return client.sendmail(sender, rcpts or ["b@y.test"], MSG)


# -- reject / defer at each stage --------------------------------------------------------------
def test_reject_at_connect(server: SMTPServer) -> None:
    server.faults.reject("connect")
    with pytest.raises(smtplib.SMTPConnectError) as info:
        smtplib.SMTP(*server.address, timeout=5)
    assert info.value.smtp_code == 554


def test_defer_at_connect_closes(server: SMTPServer) -> None:
    server.faults.defer("connect")
    with pytest.raises(smtplib.SMTPConnectError) as info:
        smtplib.SMTP(*server.address, timeout=5)
    assert info.value.smtp_code == 421


def test_reject_at_ehlo(server: SMTPServer) -> None:
    server.faults.reject("ehlo", 550, "Go away")
    with smtplib.SMTP(*server.address, timeout=5) as client:
        code, text = client.ehlo()
        assert (code, text) == (550, b"5.7.1 Go away")


def test_reject_sender(server: SMTPServer) -> None:
    server.faults.reject("mail", match="spam@*")
    with pytest.raises(smtplib.SMTPSenderRefused) as info:
        send(server, sender="spam@x.test")
    assert info.value.smtp_code == 550
    txn = assert_rejected(server, stage="mail", code=550)
    assert txn.mail_from == "spam@x.test"
    send(server)  # another sender passes
    assert len(server.mailbox) == 1


def test_partial_recipient_failure(server: SMTPServer) -> None:
    server.faults.reject("rcpt", 550, "No such user", match="bob@*")
    refused = send(server, ["alice@y.test", "bob@y.test", "carol@y.test"])
    assert refused == {"bob@y.test": (550, b"5.1.1 No such user")}
    message = server.mailbox.one()
    assert message.rcpt_tos == ["alice@y.test", "carol@y.test"]
    txn = server.transactions[0]
    assert txn.outcome == "accepted"
    assert [(r.address, r.reply.code) for r in txn.refused] == [("bob@y.test", 550)]
    assert_rejected(server, rcpt="bob@y.test", code=550)


def test_all_recipients_refused_is_a_rejected_transaction(server: SMTPServer) -> None:
    server.faults.reject("rcpt")
    with pytest.raises(smtplib.SMTPRecipientsRefused):
        send(server, ["a@y.test", "b@y.test"])
    txn = server.transactions[0]
    assert (txn.outcome, txn.stage) == ("rejected", "rcpt")


def test_defer_rcpt_by_domain(server: SMTPServer) -> None:
    server.faults.defer("rcpt", domain="slow.test")
    refused = send(server, ["a@slow.test", "b@fast.test"])
    assert refused == {"a@slow.test": (451, b"4.7.1 Greylisted, try again later")}
    assert_deferred(server, rcpt="a@slow.test")


def test_reject_at_data_command(server: SMTPServer) -> None:
    server.faults.reject("data", 554, "No thanks")
    with pytest.raises(smtplib.SMTPDataError) as info:
        send(server)
    assert info.value.smtp_code == 554
    assert_rejected(server, stage="data")


def test_defer_at_end_of_data(server: SMTPServer) -> None:
    server.faults.defer("eod", 452, "Insufficient storage", enhanced="4.3.1")
    with pytest.raises(smtplib.SMTPDataError) as info:
        send(server)
    assert (info.value.smtp_code, info.value.smtp_error) == (452, b"4.3.1 Insufficient storage")
    txn = assert_deferred(server, stage="eod", code=452)
    assert txn.message is None
    assert len(server.mailbox) == 0


def test_multiline_reply(server: SMTPServer) -> None:
    server.faults.reply("eod", 550, "Message refused\nSee https://policy.test")
    with pytest.raises(smtplib.SMTPDataError) as info:
        send(server)
    assert info.value.smtp_error == b"5.7.1 Message refused\n5.7.1 See https://policy.test"


def test_reject_auth_and_starttls() -> None:
    with SMTPServer(tls="starttls", auth="any") as srv:
        srv.faults.defer("starttls")
        with smtplib.SMTP(*srv.address, timeout=5) as client:
            with pytest.raises(smtplib.SMTPResponseException) as info:
                client.starttls(context=srv.ca.client_context())
            assert info.value.smtp_code == 454
        srv.faults.clear()
        srv.faults.reject("auth")
        with smtplib.SMTP(*srv.address, timeout=5) as client:
            client.starttls(context=srv.ca.client_context())
            with pytest.raises(smtplib.SMTPAuthenticationError) as auth_info:
                client.login("u", "p")
            assert auth_info.value.smtp_code == 535


# -- drop, delay, disconnect, hang, throttle -------------------------------------------------------
def test_drop_answers_250_but_keeps_message_out_of_mailbox(server: SMTPServer) -> None:
    server.faults.drop(match="blackhole@*")
    assert send(server, ["blackhole@y.test"]) == {}
    assert len(server.mailbox) == 0
    txn = assert_dropped(server)
    assert txn.message is not None and b"Subject: f" in txn.message.raw
    assert "blackhole@y.test" not in server.store


def test_delay_in_one_session_does_not_slow_another(server: SMTPServer) -> None:
    server.faults.delay("mail", 1.0, match="slow@*")

    async def main() -> tuple[float, bool]:
        async def timed(sender: str) -> float:
            start = time.monotonic()
            await aiosmtplib.send(
                MSG, sender=sender, recipients=["b@y.test"], hostname=server.host, port=server.port
            )
            return time.monotonic() - start

        slow_task = asyncio.ensure_future(timed("slow@x.test"))
        await timed("fast@x.test")
        overtaken = not slow_task.done()
        return await slow_task, overtaken

    slow, overtaken = asyncio.run(main())
    assert slow >= 1.0
    assert overtaken, "the fast session waited for the delayed one"
    assert len(server.mailbox) == 2


def test_disconnect_at_rcpt(server: SMTPServer) -> None:
    server.faults.disconnect("rcpt")
    with pytest.raises(smtplib.SMTPServerDisconnected):
        send(server)
    assert_aborted(server, stage="rcpt")


def test_disconnect_in_the_middle_of_data(server: SMTPServer) -> None:
    server.faults.disconnect("data", after_bytes=10)
    big = MSG + "x" * 200_000
    with (
        pytest.raises(smtplib.SMTPServerDisconnected),
        smtplib.SMTP(*server.address, timeout=5) as client,
    ):
        client.sendmail("a@x.test", ["b@y.test"], big)
    txn = assert_aborted(server, stage="data")
    assert txn.message is None
    assert len(server.mailbox) == 0


def test_hang_until_client_timeout_and_stop_stays_bounded() -> None:
    srv = SMTPServer().start()
    srv.faults.hang("data")
    with (
        pytest.raises((socket.timeout, smtplib.SMTPServerDisconnected)),
        smtplib.SMTP(*srv.address, timeout=0.3) as client,
    ):
        client.sendmail("a@x.test", ["b@y.test"], MSG)
    started = time.monotonic()
    srv.stop()
    assert time.monotonic() - started <= STOP_TIMEOUT
    assert not srv._tasks, "a hung session task leaked past stop()"


def test_hang_ends_when_the_client_gives_up(server: SMTPServer) -> None:
    server.faults.hang("rcpt")
    with (
        pytest.raises((socket.timeout, smtplib.SMTPServerDisconnected)),
        smtplib.SMTP(*server.address, timeout=0.3) as client,
    ):
        client.sendmail("a@x.test", ["b@y.test"], MSG)
    txn = assert_aborted(server, stage="rcpt")
    assert txn.mail_from == "a@x.test"
    # the hung session task is gone: nothing carries over into the next test
    server.transactions.wait_for(outcome="aborted", timeout=5)
    assert not [t for t in server._tasks if not t.done()]


def test_session_stage_failures_are_recorded(server: SMTPServer) -> None:
    server.faults.reject("ehlo")
    with smtplib.SMTP(*server.address, timeout=5) as client:
        assert client.ehlo()[0] == 550
    txn = assert_rejected(server, stage="ehlo", code=550)
    assert txn.mail_from is None


def test_default_text_follows_the_code_not_only_the_stage(server: SMTPServer) -> None:
    server.faults.reject("rcpt", 552)
    with pytest.raises(smtplib.SMTPRecipientsRefused) as info:
        send(server)
    assert info.value.recipients["b@y.test"] == (552, b"5.2.2 Mailbox full")


def test_throttle_slows_the_upload(server: SMTPServer) -> None:
    server.faults.throttle(200_000)
    started = time.monotonic()
    send_big = MSG + "y" * 100_000
    with smtplib.SMTP(*server.address, timeout=5) as client:
        client.sendmail("a@x.test", ["b@y.test"], send_big)
    assert time.monotonic() - started >= 0.4
    assert len(server.mailbox.one().raw) > 100_000


# -- scripts, counters, chance -----------------------------------------------------------------
def test_greylisting_sequence(server: SMTPServer) -> None:
    rule = server.faults.sequence("rcpt", [451, 451, "accept"])
    for _ in range(2):
        with pytest.raises(smtplib.SMTPRecipientsRefused) as info:
            send(server)
        assert info.value.recipients == {"b@y.test": (451, b"4.7.1 Greylisted, try again later")}
    assert send(server) == {}
    assert rule.hits == 3
    assert len(server.mailbox) == 1


def test_times_then_stop_and_nth(server: SMTPServer) -> None:
    server.faults.defer("mail", times=2)
    server.faults.reject("eod", nth=2)
    results = []
    for _ in range(5):
        try:
            send(server)
            results.append("ok")
        except smtplib.SMTPSenderRefused as exc:
            results.append(str(exc.smtp_code))
        except smtplib.SMTPDataError as exc:
            results.append(str(exc.smtp_code))
    assert results == ["451", "451", "ok", "554", "ok"]


def test_predicate_on_session(server: SMTPServer) -> None:
    server.faults.reject("mail", predicate=lambda ctx: ctx.session.helo == "bad.test")
    with (
        smtplib.SMTP(*server.address, local_hostname="bad.test", timeout=5) as client,
        pytest.raises(smtplib.SMTPSenderRefused),
    ):
        client.sendmail("a@x.test", ["b@y.test"], MSG)
    with smtplib.SMTP(*server.address, local_hostname="good.test", timeout=5) as client:
        client.sendmail("a@x.test", ["b@y.test"], MSG)


def _probabilistic_run(seed: int) -> list[int]:
    with SMTPServer() as srv:
        srv.faults.seed = seed
        srv.faults.reject("rcpt", probability=0.5)
        with smtplib.SMTP(*srv.address, timeout=5) as client:
            client.ehlo()
            client.mail("a@x.test")
            codes = [client.rcpt(f"r{i}@y.test")[0] for i in range(40)]
        return codes


def test_seeded_probability_replays_exactly() -> None:
    first = _probabilistic_run(1234)
    assert first == _probabilistic_run(1234)
    assert 5 < first.count(550) < 35  # both outcomes occur
    assert first != _probabilistic_run(4321)


def test_rate_limit_answers_421_and_closes(server: SMTPServer) -> None:
    server.faults.rate_limit(2, per_seconds=60)
    send(server)
    send(server)
    with pytest.raises(smtplib.SMTPSenderRefused) as info:
        send(server)
    assert info.value.smtp_code == 421
    assert_deferred(server, code=421)


def test_aiosmtplib_sees_the_same_replies(server: SMTPServer) -> None:
    server.faults.reject("rcpt", 550, "Unknown", match="x@*")

    async def main() -> tuple[dict[str, object], str]:
        return await aiosmtplib.send(  # type: ignore[return-value]
            MSG,
            sender="a@x.test",
            recipients=["x@y.test", "ok@y.test"],
            hostname=server.host,
            port=server.port,
        )

    errors, _ = asyncio.run(main())
    assert list(errors) == ["x@y.test"]
    assert server.mailbox.one().rcpt_tos == ["ok@y.test"]


def test_reply_object_in_sequence(server: SMTPServer) -> None:
    server.faults.sequence("eod", [Reply(552, "Mailbox full", "5.2.2"), "drop", "accept"])
    with pytest.raises(smtplib.SMTPDataError):
        send(server)
    send(server)
    send(server)
    assert [t.outcome for t in server.transactions] == ["rejected", "dropped", "accepted"]


def test_bad_rule_arguments_are_clear_errors(server: SMTPServer) -> None:
    with pytest.raises(ValueError, match="valid stages: connect, ehlo"):
        server.faults.reject("body")
    with pytest.raises(ValueError, match="needs a 5xx"):
        server.faults.reject("rcpt", 451)
    with pytest.raises(ValueError, match="needs a 4xx"):
        server.faults.defer("rcpt", 550)
    with pytest.raises(TypeError, match="unknown matcher"):
        server.faults.reject("rcpt", address="x")
    with pytest.raises(ValueError, match="bad sequence step"):
        server.faults.sequence("rcpt", ["maybe"])
    with pytest.raises(ValueError, match="'drop' happens at stage 'eod', not 'rcpt'"):
        server.faults.from_marker("rcpt", "drop")


def test_rules_are_cleared_by_reset(server: SMTPServer) -> None:
    server.faults.reject("mail")
    server.reset()
    send(server)
    assert len(server.mailbox) == 1
