"""Filter objects: MessageFilter / TransactionFilter built once, used by every lookup and
assertion, combined with & | ~, and explaining why an item does not match."""

from __future__ import annotations

import asyncio
import re
import threading
from datetime import datetime, timezone

import pytest

from pytest_smtp import faults
from pytest_smtp.asserts import (
    assert_no_mail,
    assert_rejected,
    assert_sent,
    describe_messages,
    describe_transactions,
)
from pytest_smtp.mail import (
    Filter,
    Mailbox,
    MailboxError,
    MailboxTimeout,
    Message,
    MessageFilter,
    RecipientResult,
    Reply,
    SessionInfo,
    Transaction,
    TransactionFilter,
    TransactionLog,
)
from pytest_smtp.relay import routing
from pytest_smtp.smtp.address import domain_of
from pytest_smtp.store import MailStore

SESSION = SessionInfo(id=1, peer=("127.0.0.1", 40000), server_hostname="mx.test")
WHEN = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
WAIT = 10.0


def make_message(
    rcpt: str, subject: str, *, header_to: str = "list@y.test", mail_from: str = "bounce@x.test"
) -> Message:
    raw = (
        f"From: Alice <alice@x.test>\r\nTo: {header_to}\r\nSubject: {subject}\r\n\r\nbody\r\n"
    ).encode()
    return Message(
        raw=raw,
        mail_from=mail_from,
        rcpt_tos=[rcpt],
        mail_options=[],
        rcpt_options={},
        session=SESSION,
        server="127.0.0.1:2525",
        received_at=WHEN,
        transaction_id=1,
    )


@pytest.fixture
def mailbox() -> Mailbox:
    box = Mailbox(default_timeout=0.05)
    # Envelope and headers disagree, as they do for lists, Bcc and bounces.
    box._append(make_message("bob@y.test", "Welcome"))
    box._append(make_message("carol@y.test", "Invoice", header_to="carol@y.test"))
    return box


def test_a_filter_built_once_serves_every_lookup(mailbox: Mailbox) -> None:
    welcome = MessageFilter(rcpt="bob@y.test", subject="Welcome")
    assert welcome.matches(mailbox[0]) and welcome(mailbox[0])
    assert not welcome.matches(mailbox[1])
    assert mailbox.filter(match=welcome) == [mailbox[0]]
    assert mailbox.one(match=welcome) is mailbox[0]
    assert mailbox.wait_for(match=welcome, timeout=WAIT) == [mailbox[0]]
    assert asyncio.run(mailbox.wait_for_async(match=welcome, timeout=WAIT)) == [mailbox[0]]
    assert assert_sent(mailbox, match=welcome) is mailbox[0]
    assert_no_mail(mailbox, match=~welcome & MessageFilter(rcpt="bob@y.test"))
    # Keywords next to match= add criteria (and).
    assert mailbox.filter(match=welcome, subject="Invoice") == []


def test_envelope_and_header_keywords_say_which(mailbox: Mailbox) -> None:
    assert [m.subject for m in mailbox.filter(rcpt="bob@y.test")] == ["Welcome"]
    assert mailbox.filter(header_to="bob@y.test") == []
    assert [m.subject for m in mailbox.filter(header_to="LIST@y.test")] == ["Welcome"]
    assert len(mailbox.filter(mail_from="BOUNCE@x.test")) == 2
    assert mailbox.filter(header_from="bounce@x.test") == []
    assert len(mailbox.filter(header_from="Alice@X.test")) == 2
    # The older spellings are the envelope too.
    assert mailbox.filter(to="bob@y.test") == mailbox.filter(rcpt="bob@y.test")
    assert mailbox.filter(from_="bounce@x.test") == mailbox.filter(mail_from="bounce@x.test")


def test_both_spellings_of_one_criterion_are_refused() -> None:
    with pytest.raises(TypeError, match="rcpt= and to= are the same criterion"):
        MessageFilter(rcpt="a@x", to="a@x")
    with pytest.raises(TypeError, match="mail_from= and from_= are the same criterion"):
        TransactionFilter(mail_from="a@x", from_="a@x")
    with pytest.raises(ValueError, match="written mail_from=''"):
        MessageFilter(mail_from="<>")
    with pytest.raises(TypeError, match="header_to= takes a str"):
        MessageFilter(header_to=["a@x"])  # type: ignore[arg-type]


def test_explain_names_the_first_failed_criterion_and_the_actual_value(
    mailbox: Mailbox,
) -> None:
    wanted = MessageFilter(rcpt="carol@y.test", subject=re.compile("^Inv"))
    assert wanted.explain(mailbox[1]) is None
    assert wanted.explain(mailbox[0]) == "rcpt: wanted 'carol@y.test', got ['bob@y.test']"
    by_subject = MessageFilter(subject="Invoice")
    assert by_subject.explain(mailbox[0]) == "subject: wanted 'Invoice', got 'Welcome'"
    headers = MessageFilter(header={"To": "x@y.test"})
    assert headers.explain(mailbox[0]) == "header To: wanted 'x@y.test', got ['list@y.test']"

    def is_big(m: Message) -> bool:
        return m.size > 10_000

    assert MessageFilter(predicate=is_big).explain(mailbox[0]) == (
        "predicate=test_explain_names_the_first_failed_criterion_and_the_actual_value"
        ".<locals>.is_big returned False"
    )


def test_filters_combine_with_and_or_not(mailbox: Mailbox) -> None:
    bob = MessageFilter(rcpt="bob@y.test")
    invoice = MessageFilter(subject="Invoice")
    assert mailbox.filter(match=bob | invoice) == list(mailbox)
    assert mailbox.filter(match=bob & invoice) == []
    assert mailbox.filter(match=~bob) == [mailbox[1]]
    assert str(bob | invoice) == "(rcpt='bob@y.test') | (subject='Invoice')"
    assert (bob & invoice).explain(mailbox[0]) == "subject: wanted 'Invoice', got 'Welcome'"
    assert (bob | invoice).explain(mailbox[0]) is None
    assert MessageFilter(rcpt="x@y.test").__or__(invoice).explain(mailbox[0]) == (
        "none of: rcpt: wanted 'x@y.test', got ['bob@y.test']; "
        "or subject: wanted 'Invoice', got 'Welcome'"
    )
    assert (~bob).explain(mailbox[0]) == "matched (rcpt='bob@y.test'), wanted it not to"
    assert isinstance(~bob, Filter)
    with pytest.raises(TypeError, match="cannot combine a message filter with a transaction"):
        bob & TransactionFilter(outcome="accepted")  # type: ignore[operator]
    with pytest.raises(TypeError, match="match= takes a MessageFilter"):
        mailbox.filter(match=TransactionFilter(outcome="accepted"))  # type: ignore[arg-type]


def test_one_and_wait_for_failures_explain_each_item(mailbox: Mailbox) -> None:
    with pytest.raises(MailboxError) as info:
        mailbox.one(subject="Nope")
    assert "  [0] from='bounce@x.test' to=['bob@y.test'] subject='Welcome'" in str(info.value)
    assert "      no match: subject: wanted 'Nope', got 'Welcome'" in str(info.value)
    with pytest.raises(MailboxTimeout) as timeout:
        mailbox.wait_for(match=MessageFilter(header_to="nobody@y.test"), timeout=0)
    assert "no match: header_to: wanted 'nobody@y.test', got ['carol@y.test']" in str(timeout.value)


def test_wait_for_with_a_filter_wakes_on_the_matching_append() -> None:
    box = Mailbox()
    late = make_message("dave@y.test", "Late")
    appender = threading.Timer(0.01, box._append, (late,))
    appender.start()
    try:
        assert box.wait_for(match=MessageFilter(rcpt="dave@y.test"), timeout=WAIT) == [late]
    finally:
        appender.join()


def make_transaction(
    tid: int, outcome: str, reply: Reply, rcpts: list[tuple[str, Reply]]
) -> Transaction:
    t = Transaction(id=tid, session=SESSION)
    t.mail_from = "a@x"
    t.recipients.extend(RecipientResult(address, [], r) for address, r in rcpts)
    t.finish(outcome, "rcpt" if outcome != "accepted" else "eod", reply)  # type: ignore[arg-type]
    return t


OK = Reply(250, "OK", "2.0.0")
NO_USER = Reply(550, "No such user", "5.1.1")


def test_transaction_filter_and_the_outcome_assertions() -> None:
    log = TransactionLog(default_timeout=0.05)
    log._append(make_transaction(1, "accepted", OK, [("b@y", OK)]))
    log._append(make_transaction(2, "rejected", NO_USER, [("zed@y", NO_USER)]))
    refused = TransactionFilter(outcome="rejected", code=550, mail_from="A@X")
    assert log.filter(match=refused) == [log[1]]
    assert log.one(match=refused).id == 2
    assert refused.explain(log[0]) == "outcome: wanted 'rejected', got 'accepted'"
    assert TransactionFilter(code=421).explain(log[1]) == (
        "code: wanted 421, got {'reply': 550, 'recipients': [550]}"
    )
    assert assert_rejected(log, match=TransactionFilter(rcpt="zed@y")).id == 2
    with pytest.raises(AssertionError) as info:
        assert_rejected(log, match=TransactionFilter(rcpt="b@y"), timeout=0)
    text = str(info.value)
    assert "matching match=(rcpt='b@y'), none within 0 s" in text
    assert "    no match: rcpt: wanted 'b@y', got ['zed@y']" in text


def test_describe_helpers_take_a_filter(mailbox: Mailbox) -> None:
    lines = describe_messages(mailbox, MessageFilter(subject="Invoice"))
    assert lines == [
        "[0] from='bounce@x.test' to=['bob@y.test'] subject='Welcome' size=71",
        "    no match: subject: wanted 'Invoice', got 'Welcome'",
        "[1] from='bounce@x.test' to=['carol@y.test'] subject='Invoice' size=72",
    ]
    log = TransactionLog()
    log._append(make_transaction(1, "accepted", OK, [("b@y", OK)]))
    assert describe_transactions(log, TransactionFilter(outcome="accepted")) == [
        "#1 accepted at eod: 250 2.0.0 OK from='a@x' to=['b@y']"
    ]


# --------------------------------------------------------------------------------------------
# One implementation each: listeners, the domain of an address


def test_store_and_mailbox_share_one_listener_registry() -> None:
    box = Mailbox()
    store = MailStore()
    for register in (box.add_listener, store.subscribe):
        with pytest.raises(TypeError, match=r"\(\) takes a callable, got int"):
            register(3)  # type: ignore[arg-type]
    seen: list[str] = []

    def boom(_: object) -> None:
        raise RuntimeError("listener exploded")

    remove_boom = box.add_listener(boom)
    remove_seen = box.add_listener(lambda m: seen.append(m.subject or ""))
    box._append(make_message("b@y.test", "One"))
    assert seen == ["One"]
    assert len(box.listener_errors) == 1
    assert box.listener_errors[0].startswith("message listener <function")
    assert "RuntimeError: listener exploded" in box.listener_errors[0]
    remove_boom()
    remove_boom()  # twice is harmless
    remove_seen()
    box._append(make_message("b@y.test", "Two"))
    assert seen == ["One"] and len(box.listener_errors) == 1


@pytest.mark.parametrize(
    ("address", "domain"),
    [
        ("Bob@Example.ORG", "example.org"),
        ("bob@example.org.", "example.org"),
        ('"a@b"@example.org', "example.org"),
        ("postmaster", ""),
        ("", ""),
    ],
)
def test_domain_of(address: str, domain: str) -> None:
    assert domain_of(address) == domain


def test_faults_and_routing_use_the_one_domain_helper() -> None:
    assert routing.domain_of is domain_of
    assert faults.domain_of is domain_of  # type: ignore[attr-defined]
