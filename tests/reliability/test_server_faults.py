"""Faults inside the server: a rule or a handler that raises, a hang the client walks away from.

Each must end in a well-formed ``451 4.3.0`` (or ``421 4.3.0`` and close where there is no
transaction to fail), reset the envelope, leave the next transaction on the same connection
clean, and land in ``server.errors`` so the owning test fails at teardown naming it.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator

import pytest
from reliability_wire import Wire, check_stored, probe, settle

from pytest_smtp import SMTPServer
from pytest_smtp.faults import FaultContext


class Boom(RuntimeError):
    """The exception a broken rule or handler raises."""


def _explode_once() -> Callable[[FaultContext], bool]:
    """A predicate that raises the first time it is asked, then never matches."""
    calls = itertools.count()

    def predicate(ctx: FaultContext) -> bool:
        if next(calls) == 0:
            raise Boom(f"rule exploded at {ctx.stage}")
        return False

    return predicate


@pytest.fixture
def server() -> Iterator[SMTPServer]:
    with SMTPServer(timeout=10) as srv:
        yield srv


def _healthy_transaction(wire: Wire, sender: str) -> None:
    for line, code in (
        (f"MAIL FROM:<{sender}>", 250),
        ("RCPT TO:<next@y.test>", 250),
        ("DATA", 354),
        ("clean\r\n.", 250),
    ):
        reply = wire.command(line)
        assert reply is not None and reply.code == code, (line, reply)


# Stage -> the commands that lead up to it (the last one draws the failing reply).
_LEAD_UP = {
    "ehlo": ["EHLO c.test"],
    "mail": ["EHLO c.test", "MAIL FROM:<a@x.test>"],
    "rcpt": ["EHLO c.test", "MAIL FROM:<a@x.test>", "RCPT TO:<b@y.test>"],
    "data": ["EHLO c.test", "MAIL FROM:<a@x.test>", "RCPT TO:<b@y.test>", "DATA"],
    "eod": ["EHLO c.test", "MAIL FROM:<a@x.test>", "RCPT TO:<b@y.test>", "DATA", "body\r\n."],
}


@pytest.mark.parametrize("stage", list(_LEAD_UP))
def test_raising_rule_answers_451_resets_and_next_transaction_is_clean(
    server: SMTPServer, stage: str
) -> None:
    server.faults.reject(stage, predicate=_explode_once())
    with Wire(server.address) as wire:
        assert (greeting := wire.reply()) is not None and greeting.code == 220
        *before, failing = _LEAD_UP[stage]
        for line in before:
            reply = wire.command(line)
            assert reply is not None and reply.code in (250, 354), (line, reply)
        reply = wire.command(failing)
        assert reply is not None and (reply.code, reply.enhanced) == (451, "4.3.0"), reply
        # The envelope is gone: a RCPT now has no transaction to join.
        if stage != "ehlo":
            again = wire.command("RCPT TO:<late@y.test>")
            assert again is not None and again.code == 503, again
        else:
            assert (helo := wire.command("EHLO c.test")) is not None and helo.code == 250
        _healthy_transaction(wire, "second@x.test")
        assert (bye := wire.command("QUIT")) is not None and bye.code == 221
    settle(server)
    message = server.mailbox.one()
    assert (message.mail_from, message.rcpt_tos, message.raw) == (
        "second@x.test",
        ["next@y.test"],
        b"clean\r\n",
    )
    failed = [t for t in server.transactions if t.error]
    if stage != "ehlo":
        assert len(failed) == 1 and failed[0].outcome == "deferred"
        assert "Boom" in (failed[0].error or "")
    assert len(server.errors) == 1 and f"rule exploded at {stage}" in server.errors[0]
    server.errors.clear()
    check_stored(server)
    probe(server)


def test_raising_rule_at_connect_answers_421_and_closes(server: SMTPServer) -> None:
    server.faults.reject("connect", predicate=_explode_once())
    with Wire(server.address) as wire:
        reply = wire.reply()
        assert reply is not None and (reply.code, reply.enhanced) == (421, "4.3.0"), reply
        wire.expect_eof()
    settle(server)
    assert len(server.errors) == 1 and "rule exploded at connect" in server.errors[0]
    server.errors.clear()
    probe(server)


def test_raising_delivery_hook_answers_451_and_files_nothing_in_the_mailbox(
    server: SMTPServer,
) -> None:
    def hook(message: object, rcpt: str) -> bytes:
        raise Boom(f"hook exploded for {rcpt}")

    server.delivery_hook = hook
    with Wire(server.address) as wire:
        wire.reply()
        for line in ("EHLO c.test", "MAIL FROM:<a@x.test>", "RCPT TO:<b@y.test>", "DATA"):
            wire.command(line)
        reply = wire.command("body\r\n.")
        assert reply is not None and (reply.code, reply.enhanced) == (451, "4.3.0"), reply
        server.delivery_hook = None
        _healthy_transaction(wire, "second@x.test")
    settle(server)
    assert [m.mail_from for m in server.mailbox] == ["second@x.test"]
    assert [t.outcome for t in server.transactions] == ["deferred", "accepted"]
    assert "hook exploded" in server.errors[0]


def test_hook_failing_for_one_recipient_files_no_copy_at_all(server: SMTPServer) -> None:
    def hook(message: object, rcpt: str) -> bytes:
        if rcpt == "second@y.test":
            raise Boom("hook exploded for the second recipient")
        return b"X-Hooked: yes\r\n\r\ncopy\r\n"

    server.delivery_hook = hook
    with Wire(server.address) as wire:
        wire.reply()
        for line in (
            "EHLO c.test",
            "MAIL FROM:<a@x.test>",
            "RCPT TO:<first@y.test>",
            "RCPT TO:<second@y.test>",
            "DATA",
        ):
            wire.command(line)
        reply = wire.command("body\r\n.")
        assert reply is not None and reply.code == 451
    settle(server)
    server.errors.clear()
    # The client was told 451 and will retry: no maildrop may hold a copy already.
    assert server.store.addresses() == []


def test_hang_ends_when_the_client_gives_up(server: SMTPServer) -> None:
    server.faults.hang("rcpt")
    with Wire(server.address) as wire:
        wire.reply()
        wire.command("EHLO c.test")
        wire.command("MAIL FROM:<a@x.test>")
        wire.send(b"RCPT TO:<b@y.test>\r\n")
    settle(server)  # the connection task must end once the client has gone
    assert [(t.outcome, t.stage) for t in server.transactions] == [("aborted", "rcpt")]
    check_stored(server)


def test_hang_starting_after_the_client_left_ends_too(server: SMTPServer) -> None:
    # The delay keeps the rule busy while the client leaves, so the hang begins on a
    # connection that is already lost.
    server.faults.delay("rcpt", 0.3)
    server.faults.hang("rcpt")
    with Wire(server.address) as wire:
        wire.reply()
        wire.command("EHLO c.test")
        wire.command("MAIL FROM:<a@x.test>")
        wire.send(b"RCPT TO:<b@y.test>\r\n")
    settle(server)
    assert [(t.outcome, t.stage) for t in server.transactions] == [("aborted", "rcpt")]


def test_owning_test_fails_at_teardown_naming_the_hook_exception(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        """
import smtplib

class LedgerUnavailable(Exception):
    pass

def test_owner(smtp_server):
    def hook(message, rcpt):
        raise LedgerUnavailable("ledger down for " + rcpt)
    smtp_server.delivery_hook = hook
    with smtplib.SMTP(*smtp_server.address) as client:
        try:
            client.sendmail("a@x.test", ["b@y.test"], "Subject: x\\r\\n\\r\\nbody")
        except smtplib.SMTPDataError as exc:
            assert exc.smtp_code == 451
        else:
            raise AssertionError("the hook failure was not reported as 451")
    smtp_server.delivery_hook = None

def test_next_test_is_clean(smtp_server):
    assert smtp_server.errors == []
"""
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(
        ["*ERROR at teardown of test_owner*", "*LedgerUnavailable: ledger down for b@y.test*"]
    )
