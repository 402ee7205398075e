"""Assertion helpers whose failures say what was captured instead.

Every helper takes a :class:`~pytest_smtp.mail.Mailbox` / :class:`~pytest_smtp.mail.TransactionLog`
or any object that has one (``.mailbox`` / ``.transactions``, such as the SMTP server). A
failure raises a plain :class:`AssertionError` whose text states what was asked and lists, one
line each, everything that was captured.

This module never imports pytest; :func:`explain_compare` is the body of the plugin's
``pytest_assertrepr_compare`` hook.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Literal, TypeAlias, overload

from pytest_smtp.mail import (
    STAGES,
    Mailbox,
    MailboxTimeout,
    Message,
    Stage,
    Transaction,
    TransactionLog,
)
from pytest_smtp.mail.filters import (
    _check_choice,
    _check_code,
    _check_str,
    _describe_filters,
    _message_matcher,
    _TextMatch,
)
from pytest_smtp.mail.message import _short

__all__ = [
    "assert_aborted",
    "assert_deferred",
    "assert_dropped",
    "assert_no_mail",
    "assert_rejected",
    "assert_sent",
    "describe_messages",
    "describe_transactions",
    "explain_compare",
]

_HeaderFilter: TypeAlias = "tuple[str, _TextMatch] | Mapping[str, _TextMatch]"


def describe_messages(messages: Iterable[Message]) -> list[str]:
    """One line per message: ``[i] from='a@x' to=['b@y'] subject='Hi' size=123``."""
    return [f"[{i}] {m._describe()}" for i, m in enumerate(messages)]


def describe_transactions(transactions: Iterable[Transaction]) -> list[str]:
    """One line per transaction: id, outcome, stage, reply, sender, recipients (with the
    reply of each refused one).
    """
    return [t._describe() for t in transactions]


def _listing(title: str, lines: list[str], nothing: str) -> str:
    if not lines:
        return nothing
    return "\n".join([title, *(f"  {line}" for line in lines)])


def _mailbox_of(target: object, helper: str) -> Mailbox:
    if isinstance(target, Mailbox):
        return target
    mailbox = getattr(target, "mailbox", None)
    if isinstance(mailbox, Mailbox):
        return mailbox
    raise TypeError(
        f"{helper}() needs a Mailbox or an object with a .mailbox (such as an SMTPServer), "
        f"got {type(target).__name__}"
    )


def _log_of(target: object, helper: str) -> TransactionLog:
    if isinstance(target, TransactionLog):
        return target
    log = getattr(target, "transactions", None)
    if isinstance(log, TransactionLog):
        return log
    raise TypeError(
        f"{helper}() needs a TransactionLog or an object with a .transactions (such as an "
        f"SMTPServer), got {type(target).__name__}"
    )


def _captured(messages: list[Message]) -> str:
    noun = "message" if len(messages) == 1 else "messages"
    return _listing(
        f"captured {len(messages)} {noun}:", describe_messages(messages), "nothing captured"
    )


@overload
def assert_sent(
    target: object,
    count: None = None,
    *,
    to: str | None = None,
    from_: str | None = None,
    subject: str | re.Pattern[str] | None = None,
    contains: str | None = None,
    header: _HeaderFilter | None = None,
    predicate: Callable[[Message], bool] | None = None,
) -> Message: ...


@overload
def assert_sent(
    target: object,
    count: int,
    *,
    to: str | None = None,
    from_: str | None = None,
    subject: str | re.Pattern[str] | None = None,
    contains: str | None = None,
    header: _HeaderFilter | None = None,
    predicate: Callable[[Message], bool] | None = None,
) -> list[Message]: ...


def assert_sent(
    target: object,
    count: int | None = None,
    *,
    to: str | None = None,
    from_: str | None = None,
    subject: str | re.Pattern[str] | None = None,
    contains: str | None = None,
    header: _HeaderFilter | None = None,
    predicate: Callable[[Message], bool] | None = None,
) -> Message | list[Message]:
    """Assert what the mailbox holds right now (no waiting; see ``Mailbox.wait_for``).

    ``count=None``: exactly one message matches; returns it. ``count=N``: exactly ``N``
    match; returns them as a list. Filters are those of ``Mailbox.filter``.
    """
    __tracebackhide__ = True
    mailbox = _mailbox_of(target, "assert_sent")
    if count is not None and (isinstance(count, bool) or not isinstance(count, int)):
        raise TypeError(f"count must be None (exactly one) or an int >= 0, got {count!r}")
    if count is not None and count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    match, wanted = _message_matcher(to, from_, subject, contains, header, predicate)
    messages = list(mailbox)
    found = [m for m in messages if match(m)]
    expected = 1 if count is None else count
    if len(found) != expected:
        noun = "message" if expected == 1 else "messages"
        where = ""
        if found:
            where = " at " + ", ".join(
                f"[{i}]" for i, m in enumerate(messages) if any(m is f for f in found)
            )
        raise AssertionError(
            f"assert_sent: expected exactly {expected} {noun} matching {wanted}, found "
            f"{len(found)}{where}\n{_captured(messages)}"
        )
    return found[0] if count is None else found


def assert_no_mail(
    target: object,
    within: float | None = None,
    *,
    to: str | None = None,
    from_: str | None = None,
    subject: str | re.Pattern[str] | None = None,
    contains: str | None = None,
    header: _HeaderFilter | None = None,
    predicate: Callable[[Message], bool] | None = None,
) -> None:
    """Assert that no message matches the filters.

    ``within=None`` checks now. ``within=S`` also waits up to ``S`` seconds (event-driven) and
    fails as soon as a matching message arrives.
    """
    __tracebackhide__ = True
    mailbox = _mailbox_of(target, "assert_no_mail")
    match, wanted = _message_matcher(to, from_, subject, contains, header, predicate)
    if within is None:
        found = [m for m in mailbox if match(m)]
    else:
        try:
            found = mailbox.wait_for(1, within, predicate=match)
        except MailboxTimeout:
            return
    if found:
        when = "" if within is None else f" within {within:g} s"
        raise AssertionError(
            f"assert_no_mail: expected no message matching {wanted}{when}, found "
            f"{len(found)}\n{_captured(list(mailbox))}"
        )


_OutcomeName = Literal["rejected", "deferred", "dropped", "aborted"]
# Which reply class refuses a single recipient for the outcome (partial acceptance).
_REFUSAL_CLASS: dict[str, int] = {"rejected": 5, "deferred": 4}


def _outcome_matcher(
    outcome: _OutcomeName,
    rcpt: str | None,
    code: int | None,
    stage: str | None,
    from_: str | None,
) -> tuple[Callable[[Transaction], bool], str]:
    shown: list[tuple[str, object]] = []
    folded_rcpt = None
    if rcpt is not None:
        folded_rcpt = _check_str("rcpt", rcpt).casefold()
        shown.append(("rcpt", rcpt))
    if code is not None:
        _check_code(code)
        shown.append(("code", code))
    if stage is not None:
        _check_choice("stage", stage, STAGES)
        shown.append(("stage", stage))
    folded_from = None
    if from_ is not None:
        folded_from = _check_str("from_", from_).casefold()
        if from_ == "<>":
            raise ValueError("the null sender is written from_='' (not '<>')")
        shown.append(("from_", from_))
    refusal = _REFUSAL_CLASS.get(outcome)

    def whole(t: Transaction) -> bool:
        if t.outcome != outcome or (stage is not None and t.stage != stage):
            return False
        tried = [r for r in t.recipients if r.address.casefold() == folded_rcpt]
        if folded_rcpt is not None and not tried:
            return False
        if code is None or (t.reply is not None and t.reply.code == code):
            return True
        # The code may be the one this recipient (or, without rcpt=, any recipient) got.
        pool = tried if folded_rcpt is not None else t.recipients
        return any(r.reply.code == code for r in pool)

    def partial(t: Transaction) -> bool:
        if refusal is None or folded_rcpt is None or stage not in (None, "rcpt"):
            return False
        return any(
            r.address.casefold() == folded_rcpt
            and r.reply.code // 100 == refusal
            and (code is None or r.reply.code == code)
            for r in list(t.recipients)
        )

    def match(t: Transaction) -> bool:
        if folded_from is not None and (
            t.mail_from is None or t.mail_from.casefold() != folded_from
        ):
            return False
        return whole(t) or partial(t)

    return match, _describe_filters(shown)


def _assert_outcome(
    outcome: _OutcomeName,
    target: object,
    rcpt: str | None,
    code: int | None,
    stage: str | None,
    from_: str | None,
    timeout: float | None,
) -> Transaction:
    __tracebackhide__ = True
    helper = f"assert_{outcome}"
    log = _log_of(target, helper)
    match, wanted = _outcome_matcher(outcome, rcpt, code, stage, from_)
    try:
        return log.wait_for(1, timeout, predicate=match)[0]
    except MailboxTimeout:
        pass
    transactions = list(log)
    noun = "transaction" if len(transactions) == 1 else "transactions"
    waited = log.default_timeout if timeout is None else timeout
    listing = _listing(
        f"{len(transactions)} {noun} recorded:",
        describe_transactions(transactions),
        "no transaction recorded",
    )
    raise AssertionError(
        f"{helper}: expected {'an' if outcome[0] in 'aeiou' else 'a'} {outcome} transaction "
        f"matching {wanted}, none within "
        f"{waited:g} s\n{listing}"
    )


def assert_rejected(
    target: object,
    *,
    rcpt: str | None = None,
    code: int | None = None,
    stage: Stage | None = None,
    from_: str | None = None,
    timeout: float | None = None,
) -> Transaction:
    """Assert that a transaction was rejected (5xx); returns the first such transaction.

    With ``rcpt=``, a transaction where that recipient alone got a 5xx counts too, even if the
    transaction was accepted for other recipients. ``code`` matches the deciding reply or that
    recipient's reply. Waits up to ``timeout`` (default: the log's ``default_timeout``) for the
    transaction to be recorded; succeeds as soon as it is.
    """
    __tracebackhide__ = True
    return _assert_outcome("rejected", target, rcpt, code, stage, from_, timeout)


def assert_deferred(
    target: object,
    *,
    rcpt: str | None = None,
    code: int | None = None,
    stage: Stage | None = None,
    from_: str | None = None,
    timeout: float | None = None,
) -> Transaction:
    """Assert that a transaction was deferred (4xx); like :func:`assert_rejected`."""
    __tracebackhide__ = True
    return _assert_outcome("deferred", target, rcpt, code, stage, from_, timeout)


def assert_dropped(
    target: object,
    *,
    rcpt: str | None = None,
    code: int | None = None,
    stage: Stage | None = None,
    from_: str | None = None,
    timeout: float | None = None,
) -> Transaction:
    """Assert that a message was accepted and silently dropped; returns the transaction."""
    __tracebackhide__ = True
    return _assert_outcome("dropped", target, rcpt, code, stage, from_, timeout)


def assert_aborted(
    target: object,
    *,
    rcpt: str | None = None,
    code: int | None = None,
    stage: Stage | None = None,
    from_: str | None = None,
    timeout: float | None = None,
) -> Transaction:
    """Assert that a transaction was aborted (the client went away, or the server cut it).

    The server records this after the client has gone, so the default wait matters here.
    """
    __tracebackhide__ = True
    return _assert_outcome("aborted", target, rcpt, code, stage, from_, timeout)


# --------------------------------------------------------------------------------------------
# pytest_assertrepr_compare

_COMPARED_FIELDS = (
    "mail_from",
    "rcpt_tos",
    "subject",
    "from_",
    "to",
    "cc",
    "text",
    "html",
    "size",
    "server",
    "transaction_id",
)


def _messages_in(side: object) -> list[Message] | None:
    if isinstance(side, Mailbox):
        return list(side)
    if isinstance(side, (list, tuple)) and all(isinstance(m, Message) for m in side):
        return list(side)
    return None


def _summary(side: object) -> str:
    if isinstance(side, Message):
        return "Message"
    if isinstance(side, Mailbox):
        return f"Mailbox of {len(side)}"
    if isinstance(side, (list, tuple)) and all(isinstance(m, Message) for m in side):
        return f"{type(side).__name__} of {len(side)}"
    return type(side).__name__


def _is_mail(side: object) -> bool:
    if isinstance(side, (Message, Mailbox)):
        return True
    return bool(isinstance(side, (list, tuple)) and side and _messages_in(side) is not None)


def _field(message: Message, name: str) -> object:
    try:
        return getattr(message, name)
    except Exception as exc:
        return f"<unreadable: {type(exc).__name__}>"


def _explain_two_messages(left: Message, right: Message) -> list[str]:
    lines = ["Message == Message: two different messages (a Message equals only itself)"]
    differ = [
        (name, _field(left, name), _field(right, name))
        for name in _COMPARED_FIELDS
        if _field(left, name) != _field(right, name)
    ]
    if differ:
        lines.append("differing fields:")
        lines.extend(f"  {name}: {_short(a, 70)} != {_short(b, 70)}" for name, a, b in differ)
    else:
        lines.append("same envelope, headers and body, but not the same captured message")
    lines.append(f"left:  {left._describe()}")
    lines.append(f"right: {right._describe()}")
    return lines


def explain_compare(op: str, left: object, right: object) -> list[str] | None:
    """Explanation lines for ``left == right`` when a side is a Message, a Mailbox or a list
    of Messages: a summary, then one line per captured message (and, for two Messages, the
    fields that differ). ``None`` when not applicable.
    """
    if op != "==" or not (_is_mail(left) or _is_mail(right)):
        return None
    if isinstance(left, Message) and isinstance(right, Message):
        return _explain_two_messages(left, right)
    lines = [f"{_summary(left)} == {_summary(right)}"]
    for label, side in (("left", left), ("right", right)):
        if isinstance(side, Message):
            lines.append(f"{label}: {side._describe()}")
            continue
        messages = _messages_in(side)
        if messages is None:
            lines.append(f"{label}: {_short(side, 80)}")
        elif not messages:
            lines.append(f"{label}: no messages")
        else:
            lines.append(f"{label}:")
            lines.extend(f"  {line}" for line in describe_messages(messages))
    return lines
