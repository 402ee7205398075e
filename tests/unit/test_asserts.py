"""assert_* helpers, describe_* listings and explain_compare: what a failure says."""

from __future__ import annotations

import re
import threading
from datetime import datetime, timezone
from types import SimpleNamespace

import pytest

from pytest_smtp.asserts import (
    assert_aborted,
    assert_deferred,
    assert_dropped,
    assert_no_mail,
    assert_rejected,
    assert_sent,
    describe_messages,
    describe_transactions,
    explain_compare,
)
from pytest_smtp.mail import (
    Mailbox,
    Message,
    RecipientResult,
    Reply,
    SessionInfo,
    Transaction,
    TransactionLog,
)

SESSION = SessionInfo(id=1, peer=("127.0.0.1", 40000), server_hostname="mx.test")
WAIT = 10.0


def make_message(
    to: str = "b@y.test", subject: str = "Hi", body: str = "body", mail_from: str = "a@x.test"
) -> Message:
    return Message(
        raw=f"Subject: {subject}\r\nTo: {to}\r\n\r\n{body}\r\n".encode(),
        mail_from=mail_from,
        rcpt_tos=[to],
        mail_options=[],
        rcpt_options={},
        session=SESSION,
        server="127.0.0.1:2525",
        received_at=datetime.now(timezone.utc),
        transaction_id=1,
    )


@pytest.fixture
def mailbox() -> Mailbox:
    box = Mailbox(default_timeout=0.05)
    box._append(make_message("alice@y.test", "Welcome"))
    box._append(make_message("bob@y.test", "Invoice", body="Total: 42 EUR"))
    box._append(make_message("bob@y.test", "Reminder"))
    return box


# --------------------------------------------------------------------------------------------
# assert_sent


def test_assert_sent_exactly_one_returns_the_message(mailbox: Mailbox) -> None:
    message = assert_sent(mailbox, to="alice@y.test")
    assert message is mailbox[0]
    assert assert_sent(mailbox, subject=re.compile("^Inv"), contains="42 EUR") is mailbox[1]


def test_assert_sent_with_count_returns_a_list(mailbox: Mailbox) -> None:
    assert assert_sent(mailbox, 2, to="bob@y.test") == [mailbox[1], mailbox[2]]
    assert assert_sent(mailbox, 3) == list(mailbox)
    assert assert_sent(mailbox, 0, to="nobody@y.test") == []


def test_assert_sent_accepts_anything_with_a_mailbox(mailbox: Mailbox) -> None:
    server = SimpleNamespace(mailbox=mailbox)
    assert assert_sent(server, to="alice@y.test") is mailbox[0]
    with pytest.raises(TypeError, match=r"needs a Mailbox or an object with a \.mailbox"):
        assert_sent(SimpleNamespace(), to="x")
    with pytest.raises(TypeError, match="got list"):
        assert_sent([], to="x")


def test_assert_sent_failure_when_none_matches(mailbox: Mailbox) -> None:
    with pytest.raises(AssertionError) as info:
        assert_sent(mailbox, to="carol@y.test")
    assert str(info.value) == (
        "assert_sent: expected exactly 1 message matching to='carol@y.test', found 0\n"
        "captured 3 messages:\n"
        "  [0] from='a@x.test' to=['alice@y.test'] subject='Welcome' size=44\n"
        "      no match: to: wanted 'carol@y.test', got ['alice@y.test']\n"
        "  [1] from='a@x.test' to=['bob@y.test'] subject='Invoice' size=51\n"
        "      no match: to: wanted 'carol@y.test', got ['bob@y.test']\n"
        "  [2] from='a@x.test' to=['bob@y.test'] subject='Reminder' size=43\n"
        "      no match: to: wanted 'carol@y.test', got ['bob@y.test']"
    )


def test_assert_sent_failure_when_several_match(mailbox: Mailbox) -> None:
    with pytest.raises(
        AssertionError,
        match=r"exactly 1 message matching to='bob@y\.test', "
        r"found 2 at \[1\], \[2\]\ncaptured 3",
    ):
        assert_sent(mailbox, to="bob@y.test")


def test_assert_sent_failure_with_count(mailbox: Mailbox) -> None:
    with pytest.raises(
        AssertionError,
        match=r"expected exactly 3 messages matching "
        r"from_='a@x\.test', subject=re\.compile\('\^R'\), found 1 at \[2\]",
    ):
        assert_sent(mailbox, 3, from_="a@x.test", subject=re.compile("^R"))


def test_assert_sent_on_an_empty_mailbox() -> None:
    with pytest.raises(AssertionError, match=r"matching \(no filters\), found 0\nnothing captured"):
        assert_sent(Mailbox())


def test_assert_sent_validates(mailbox: Mailbox) -> None:
    with pytest.raises(ValueError, match="count must be >= 0"):
        assert_sent(mailbox, -1)
    with pytest.raises(TypeError, match="count must be None"):
        assert_sent(mailbox, "1")  # type: ignore[call-overload]
    with pytest.raises(TypeError, match="unexpected keyword argument 'subjet'"):
        assert_sent(mailbox, subjet="x")  # type: ignore[call-overload]


# --------------------------------------------------------------------------------------------
# assert_no_mail


def test_assert_no_mail_now(mailbox: Mailbox) -> None:
    assert_no_mail(Mailbox())
    assert_no_mail(mailbox, to="carol@y.test")
    with pytest.raises(AssertionError) as info:
        assert_no_mail(mailbox, subject="Invoice")
    text = str(info.value)
    assert text.startswith(
        "assert_no_mail: expected no message matching subject='Invoice', found 1\n"
    )
    assert "  [1] from='a@x.test' to=['bob@y.test'] subject='Invoice' size=51" in text


def test_assert_no_mail_within_passes_after_the_wait() -> None:
    assert_no_mail(Mailbox(), within=0.05)


def test_assert_no_mail_within_fails_as_soon_as_one_arrives() -> None:
    box = Mailbox()
    go = threading.Event()

    def deliver() -> None:
        if go.wait(WAIT):
            box._append(make_message("x@y.test", "Late"))

    threading.Thread(target=deliver, daemon=True).start()
    go.set()
    with pytest.raises(AssertionError, match=r"no message matching to='x@y\.test' within 10 s"):
        assert_no_mail(box, within=WAIT, to="x@y.test")


def test_assert_no_mail_within_counts_what_is_already_there(mailbox: Mailbox) -> None:
    with pytest.raises(AssertionError, match="found 2"):
        assert_no_mail(mailbox, within=0.05, to="bob@y.test")


# --------------------------------------------------------------------------------------------
# assert_rejected / deferred / dropped / aborted


def make_transaction(
    tid: int,
    outcome: str | None,
    stage: str,
    reply: Reply | None,
    recipients: list[tuple[str, Reply]],
    mail_from: str = "a@x",
) -> Transaction:
    t = Transaction(id=tid, session=SESSION)
    t.mail_from = mail_from
    t.recipients.extend(RecipientResult(address, [], r) for address, r in recipients)
    if outcome is not None:
        t.finish(outcome, stage, reply)  # type: ignore[arg-type]
    return t


OK = Reply(250, "OK", "2.0.0")
NO_USER = Reply(550, "No such user", "5.1.1")
GREYLISTED = Reply(451, "Greylisted", "4.7.1")


@pytest.fixture
def log() -> TransactionLog:
    log = TransactionLog(default_timeout=0.05)
    # Partial acceptance: bob refused, the message went to b@y.
    log._append(make_transaction(1, "accepted", "eod", OK, [("b@y", OK), ("bob@y", NO_USER)]))
    log._append(make_transaction(2, "rejected", "data", Reply(554, "Spam", "5.7.1"), [("c@y", OK)]))
    log._append(make_transaction(3, "deferred", "rcpt", GREYLISTED, [("grey@y", GREYLISTED)]))
    log._append(make_transaction(4, "accepted", "eod", OK, [("d@y", OK), ("late@y", GREYLISTED)]))
    log._append(make_transaction(5, "dropped", "eod", OK, [("drop@y", OK)], mail_from=""))
    return log


def test_assert_rejected_whole_transaction(log: TransactionLog) -> None:
    assert assert_rejected(log, stage="data").id == 2
    assert assert_rejected(log, code=554).id == 2
    assert assert_rejected(log, rcpt="c@y", code=554, from_="A@X").id == 2


def test_assert_rejected_counts_a_refused_recipient(log: TransactionLog) -> None:
    t = assert_rejected(log, rcpt="bob@y")
    assert t.id == 1
    assert t.outcome == "accepted"
    assert assert_rejected(log, rcpt="BOB@Y", code=550, stage="rcpt").id == 1


def test_assert_rejected_code_belongs_to_that_recipient(log: TransactionLog) -> None:
    # c@y was accepted at RCPT; the 550 in transaction 1 was bob's, not c@y's.
    with pytest.raises(AssertionError):
        assert_rejected(log, rcpt="b@y", code=550, timeout=0)


def test_assert_deferred(log: TransactionLog) -> None:
    assert assert_deferred(log).id == 3
    assert assert_deferred(log, rcpt="late@y").id == 4
    assert assert_deferred(log, rcpt="grey@y", code=451, stage="rcpt").id == 3
    with pytest.raises(AssertionError, match="assert_deferred: expected a deferred transaction"):
        assert_deferred(log, rcpt="bob@y", timeout=0)


def test_assert_dropped(log: TransactionLog) -> None:
    assert assert_dropped(log, rcpt="drop@y", from_="").id == 5
    with pytest.raises(AssertionError, match="expected a dropped transaction matching rcpt='b@y'"):
        assert_dropped(log, rcpt="b@y", timeout=0)


def test_outcome_failure_lists_every_transaction(log: TransactionLog) -> None:
    with pytest.raises(AssertionError) as info:
        assert_rejected(log, rcpt="zed@y", code=550)
    refused = "predicate=('zed@y' refused with 550) returned False"
    assert str(info.value) == (
        "assert_rejected: expected a rejected transaction matching rcpt='zed@y', code=550, "
        "none within 0.05 s\n"
        "5 transactions recorded:\n"
        "  #1 accepted at eod: 250 2.0.0 OK from='a@x' to=['b@y', "
        "'bob@y (550 5.1.1 No such user)']\n"
        f"      no match: none of: outcome: wanted 'rejected', got 'accepted'; or {refused}\n"
        "  #2 rejected at data: 554 5.7.1 Spam from='a@x' to=['c@y']\n"
        f"      no match: none of: rcpt: wanted 'zed@y', got ['c@y']; or {refused}\n"
        "  #3 deferred at rcpt: 451 4.7.1 Greylisted from='a@x' to=['grey@y (451 4.7.1 "
        "Greylisted)']\n"
        f"      no match: none of: outcome: wanted 'rejected', got 'deferred'; or {refused}\n"
        "  #4 accepted at eod: 250 2.0.0 OK from='a@x' to=['d@y', 'late@y (451 4.7.1 "
        "Greylisted)']\n"
        f"      no match: none of: outcome: wanted 'rejected', got 'accepted'; or {refused}\n"
        "  #5 dropped at eod: 250 2.0.0 OK from='' to=['drop@y']\n"
        f"      no match: none of: outcome: wanted 'rejected', got 'dropped'; or {refused}"
    )


def test_outcome_failure_on_an_empty_log() -> None:
    with pytest.raises(
        AssertionError,
        match=r"matching \(no filters\), none within 0 s\n"
        r"no transaction recorded",
    ):
        assert_aborted(TransactionLog(), timeout=0)


def test_assert_aborted_waits_for_the_server_to_notice() -> None:
    log = TransactionLog()
    t = make_transaction(9, None, "data", None, [("b@y", OK)])
    log._append(t)
    go = threading.Event()

    def vanish() -> None:
        if go.wait(WAIT):
            t.finish("aborted", "data", None)

    threading.Thread(target=vanish, daemon=True).start()
    go.set()
    assert assert_aborted(SimpleNamespace(transactions=log), stage="data", timeout=WAIT) is t


def test_outcome_helpers_validate(log: TransactionLog) -> None:
    with pytest.raises(ValueError, match="stage='body' is not one of"):
        assert_rejected(log, stage="body")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="code= takes an int"):
        assert_rejected(log, code="550")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="from_=''"):
        assert_rejected(log, from_="<>")
    with pytest.raises(
        TypeError, match=r"needs a TransactionLog or an object with a \.transactions"
    ):
        assert_rejected(Mailbox())
    with pytest.raises(TypeError, match="unexpected keyword argument 'to'"):
        assert_rejected(log, to="x")  # type: ignore[call-arg]


# --------------------------------------------------------------------------------------------
# describe_* and explain_compare


def test_describe_messages_and_transactions(mailbox: Mailbox, log: TransactionLog) -> None:
    assert describe_messages(mailbox)[:2] == [
        "[0] from='a@x.test' to=['alice@y.test'] subject='Welcome' size=44",
        "[1] from='a@x.test' to=['bob@y.test'] subject='Invoice' size=51",
    ]
    assert (
        describe_transactions(log)[1] == "#2 rejected at data: 554 5.7.1 Spam from='a@x' to=['c@y']"
    )
    long_subject = make_message(subject="x" * 200)
    line = describe_messages([long_subject])[0]
    assert len(line) < 160
    assert "…" in line


def test_explain_compare_ignores_other_comparisons(mailbox: Mailbox) -> None:
    assert explain_compare("==", 1, 2) is None
    assert explain_compare("==", [], []) is None
    assert explain_compare("==", "a", [1]) is None
    assert explain_compare("!=", mailbox, []) is None
    assert explain_compare("<", mailbox[0], mailbox[1]) is None


def test_explain_mailbox_against_a_list(mailbox: Mailbox) -> None:
    lines = explain_compare("==", mailbox, [])
    assert lines == [
        "Mailbox of 3 == list of 0",
        "left:",
        "  [0] from='a@x.test' to=['alice@y.test'] subject='Welcome' size=44",
        "  [1] from='a@x.test' to=['bob@y.test'] subject='Invoice' size=51",
        "  [2] from='a@x.test' to=['bob@y.test'] subject='Reminder' size=43",
        "right: no messages",
    ]


def test_explain_list_of_messages_against_a_message(mailbox: Mailbox) -> None:
    lines = explain_compare("==", mailbox[1], list(mailbox)[:1])
    assert lines == [
        "Message == list of 1",
        "left: from='a@x.test' to=['bob@y.test'] subject='Invoice' size=51",
        "right:",
        "  [0] from='a@x.test' to=['alice@y.test'] subject='Welcome' size=44",
    ]


def test_explain_message_against_something_else(mailbox: Mailbox) -> None:
    lines = explain_compare("==", "Invoice", mailbox[1])
    assert lines == [
        "str == Message",
        "left: 'Invoice'",
        "right: from='a@x.test' to=['bob@y.test'] subject='Invoice' size=51",
    ]


def test_explain_two_messages_shows_differing_fields(mailbox: Mailbox) -> None:
    lines = explain_compare("==", mailbox[1], mailbox[2])
    assert lines is not None
    assert lines[0] == "Message == Message: two different messages (a Message equals only itself)"
    assert lines[1] == "differing fields:"
    assert "  subject: 'Invoice' != 'Reminder'" in lines
    assert "  text: 'Total: 42 EUR\\n' != 'body\\n'" in lines
    assert "  size: 51 != 43" in lines
    assert not any(line.startswith("  mail_from") for line in lines)
    assert lines[-2:] == [
        "left:  from='a@x.test' to=['bob@y.test'] subject='Invoice' size=51",
        "right: from='a@x.test' to=['bob@y.test'] subject='Reminder' size=43",
    ]
    assert all("0x" not in line for line in lines)


def test_explain_two_equal_looking_messages() -> None:
    lines = explain_compare("==", make_message(), make_message())
    assert lines is not None
    assert lines[1] == "same envelope, headers and body, but not the same captured message"
