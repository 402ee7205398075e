"""Assertion helpers whose failures say what was captured instead.

Every helper takes a :class:`~pytest_smtp.mail.Mailbox` / :class:`~pytest_smtp.mail.TransactionLog`
or any object that has one (``.mailbox`` / ``.transactions``, such as the SMTP server). A
failure raises a plain :class:`AssertionError` whose text states what was asked and lists, one
line each, everything that was captured.

This module never imports pytest; :func:`explain_compare` is the body of the plugin's
``pytest_assertrepr_compare`` hook.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Literal, TypedDict, TypeVar, overload

from pytest_smtp.mail import (
    Filter,
    Mailbox,
    MailboxTimeout,
    Message,
    Stage,
    Transaction,
    TransactionFilter,
    TransactionLog,
)
from pytest_smtp.mail.filters import MessageCriteria, message_filter, transaction_filter
from pytest_smtp.mail.message import short_repr

if TYPE_CHECKING:
    import sys

    if sys.version_info >= (3, 11):
        from typing import Unpack
    else:
        from typing_extensions import Unpack

_Item = TypeVar("_Item")
_Part = TypeVar("_Part")

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


def describe_messages(
    messages: Iterable[Message], match: Filter[Message] | None = None
) -> list[str]:
    """One line per message: ``[i] from='a@x' to=['b@y'] subject='Hi' size=123``; with
    ``match``, each message that fails it is followed by ``    no match: <why>``.
    """
    items = list(messages)
    return _with_reasons([f"[{i}] {m.describe()}" for i, m in enumerate(items)], items, match)


def describe_transactions(
    transactions: Iterable[Transaction], match: Filter[Transaction] | None = None
) -> list[str]:
    """One line per transaction: id, outcome, stage, reply, sender, recipients (with the
    reply of each refused one); with ``match``, each one that fails it is followed by
    ``    no match: <why>``.
    """
    items = list(transactions)
    return _with_reasons([t.describe() for t in items], items, match)


def _with_reasons(lines: list[str], items: list[_Item], match: Filter[_Item] | None) -> list[str]:
    if match is None:
        return lines
    out: list[str] = []
    for line, item in zip(lines, items, strict=True):
        out.append(line)
        why = match.explain(item)
        if why is not None:
            out.append(f"    no match: {why}")
    return out


def _listing(title: str, lines: list[str], nothing: str) -> str:
    if not lines:
        return nothing
    return "\n".join([title, *(f"  {line}" for line in lines)])


def _part_of(target: object, kind: type[_Part], attribute: str, helper: str) -> _Part:
    """``target`` itself when it is a ``kind``, else its ``attribute`` (an SMTPServer's
    ``.mailbox`` or ``.transactions``); a clear TypeError for anything else."""
    if isinstance(target, kind):
        return target
    part = getattr(target, attribute, None)
    if isinstance(part, kind):
        return part
    raise TypeError(
        f"{helper}() needs a {kind.__name__} or an object with a .{attribute} (such as an "
        f"SMTPServer), got {type(target).__name__}"
    )


def _mailbox_of(target: object, helper: str) -> Mailbox:
    return _part_of(target, Mailbox, "mailbox", helper)


def _log_of(target: object, helper: str) -> TransactionLog:
    return _part_of(target, TransactionLog, "transactions", helper)


def _captured(messages: list[Message], match: Filter[Message] | None = None) -> str:
    noun = "message" if len(messages) == 1 else "messages"
    return _listing(
        f"captured {len(messages)} {noun}:", describe_messages(messages, match), "nothing captured"
    )


@overload
def assert_sent(
    target: object,
    count: None = None,
    *,
    match: Filter[Message] | None = None,
    **criteria: Unpack[MessageCriteria],
) -> Message: ...


@overload
def assert_sent(
    target: object,
    count: int,
    *,
    match: Filter[Message] | None = None,
    **criteria: Unpack[MessageCriteria],
) -> list[Message]: ...


def assert_sent(
    target: object,
    count: int | None = None,
    *,
    match: Filter[Message] | None = None,
    **criteria: Unpack[MessageCriteria],
) -> Message | list[Message]:
    """Assert what the mailbox holds right now (no waiting; see ``Mailbox.wait_for``).

    ``count=None``: exactly one message matches; returns it. ``count=N``: exactly ``N``
    match; returns them as a list. ``match=`` takes a :class:`~pytest_smtp.MessageFilter`;
    the keywords are those of ``MessageFilter`` (and of ``Mailbox.filter``). The failure text
    lists every captured message and, under each one that does not match, why.
    """
    __tracebackhide__ = True
    mailbox = _mailbox_of(target, "assert_sent")
    if count is not None and (isinstance(count, bool) or not isinstance(count, int)):
        raise TypeError(f"count must be None (exactly one) or an int >= 0, got {count!r}")
    if count is not None and count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    wanted = message_filter(match, **criteria)
    messages = list(mailbox)
    found = [m for m in messages if wanted.matches(m)]
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
            f"{len(found)}{where}\n{_captured(messages, wanted)}"
        )
    return found[0] if count is None else found


def assert_no_mail(
    target: object,
    within: float | None = None,
    *,
    match: Filter[Message] | None = None,
    **criteria: Unpack[MessageCriteria],
) -> None:
    """Assert that no message matches the filters (those of :func:`assert_sent`).

    ``within=None`` checks now. ``within=S`` also waits up to ``S`` seconds (event-driven) and
    fails as soon as a matching message arrives.
    """
    __tracebackhide__ = True
    mailbox = _mailbox_of(target, "assert_no_mail")
    wanted = message_filter(match, **criteria)
    if within is None:
        found = [m for m in mailbox if wanted.matches(m)]
    else:
        try:
            found = mailbox.wait_for(1, within, match=wanted)
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


def _outcome_filter(
    outcome: _OutcomeName,
    rcpt: str | None,
    code: int | None,
    stage: Stage | None,
    sender: TransactionFilter,
) -> Filter[Transaction]:
    """The whole transaction ended with ``outcome`` (and ``stage``, ``rcpt`` tried, ``code``
    as the deciding reply or that recipient's), or, for rejected/deferred with ``rcpt=``, that
    recipient alone was refused with the outcome's reply class.
    """
    whole: Filter[Transaction] = TransactionFilter(outcome=outcome, stage=stage, rcpt=rcpt)
    if code is not None:
        TransactionFilter(code=code)  # the same argument check as everywhere
        if rcpt is None:
            whole = whole & TransactionFilter(code=code)
        else:
            folded = rcpt.casefold()

            def reply_code(t: Transaction) -> bool:
                if t.reply is not None and t.reply.code == code:
                    return True
                return any(
                    r.reply.code == code for r in t.recipients if r.address.casefold() == folded
                )

            reply_code.__qualname__ = f"(the deciding reply or {rcpt!r}'s is {code})"
            whole = whole & TransactionFilter(predicate=reply_code)
    refusal = _REFUSAL_CLASS.get(outcome)
    if refusal is None or rcpt is None or stage not in (None, "rcpt"):
        return sender & whole
    folded_rcpt = rcpt.casefold()

    def refused(t: Transaction) -> bool:
        return any(
            r.address.casefold() == folded_rcpt
            and r.reply.code // 100 == refusal
            and (code is None or r.reply.code == code)
            for r in list(t.recipients)
        )

    refused.__qualname__ = f"({rcpt!r} refused with {code or f'a {refusal}xx'})"
    return sender & (whole | TransactionFilter(predicate=refused))


def _shown(pairs: dict[str, object], match: Filter[Transaction] | None) -> str:
    parts = [
        f"{name}={short_repr(value, 80)}" for name, value in pairs.items() if value is not None
    ]
    if match is not None:
        parts.append(f"match=({match})")
    return ", ".join(parts) or "(no filters)"


class OutcomeCriteria(TypedDict, total=False):
    """The keywords of :func:`assert_rejected` and its siblings."""

    match: Filter[Transaction] | None
    rcpt: str | None
    code: int | None
    stage: Stage | None
    mail_from: str | None
    from_: str | None
    timeout: float | None


def _assert_outcome(
    outcome: _OutcomeName,
    target: object,
    *,
    match: Filter[Transaction] | None = None,
    rcpt: str | None = None,
    code: int | None = None,
    stage: Stage | None = None,
    mail_from: str | None = None,
    from_: str | None = None,
    timeout: float | None = None,
) -> Transaction:
    __tracebackhide__ = True
    helper = f"assert_{outcome}"
    log = _log_of(target, helper)
    sender = TransactionFilter(mail_from=mail_from, from_=from_)
    wanted = transaction_filter(match) if match is not None else None
    found = _outcome_filter(outcome, rcpt, code, stage, sender)
    if wanted is not None:
        found = wanted & found
    shown = _shown(
        {"rcpt": rcpt, "code": code, "stage": stage, "mail_from": mail_from, "from_": from_},
        wanted,
    )
    try:
        return log.wait_for(1, timeout, match=found)[0]
    except MailboxTimeout:
        pass
    transactions = list(log)
    noun = "transaction" if len(transactions) == 1 else "transactions"
    waited = log.default_timeout if timeout is None else timeout
    listing = _listing(
        f"{len(transactions)} {noun} recorded:",
        describe_transactions(transactions, found),
        "no transaction recorded",
    )
    raise AssertionError(
        f"{helper}: expected {'an' if outcome[0] in 'aeiou' else 'a'} {outcome} transaction "
        f"matching {shown}, none within "
        f"{waited:g} s\n{listing}"
    )


def assert_rejected(target: object, **criteria: Unpack[OutcomeCriteria]) -> Transaction:
    """Assert that a transaction was rejected (5xx); returns the first such transaction.

    With ``rcpt=``, a transaction where that recipient alone got a 5xx counts too, even if the
    transaction was accepted for other recipients. ``code`` matches the deciding reply or that
    recipient's reply; ``mail_from`` the envelope sender (``from_`` is its older spelling);
    ``match=`` takes a :class:`~pytest_smtp.TransactionFilter` that must hold as well. Waits up
    to ``timeout`` (default: the log's ``default_timeout``) for the transaction to be recorded;
    succeeds as soon as it is. The failure text says, under each transaction, why it did not
    match.
    """
    __tracebackhide__ = True
    return _assert_outcome("rejected", target, **criteria)


def assert_deferred(target: object, **criteria: Unpack[OutcomeCriteria]) -> Transaction:
    """Assert that a transaction was deferred (4xx); like :func:`assert_rejected`."""
    __tracebackhide__ = True
    return _assert_outcome("deferred", target, **criteria)


def assert_dropped(target: object, **criteria: Unpack[OutcomeCriteria]) -> Transaction:
    """Assert that a message was accepted and silently dropped; returns the transaction."""
    __tracebackhide__ = True
    return _assert_outcome("dropped", target, **criteria)


def assert_aborted(target: object, **criteria: Unpack[OutcomeCriteria]) -> Transaction:
    """Assert that a transaction was aborted (the client went away, or the server cut it).

    The server records this after the client has gone, so the default wait matters here.
    """
    __tracebackhide__ = True
    return _assert_outcome("aborted", target, **criteria)


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
        lines.extend(
            f"  {name}: {short_repr(a, 70)} != {short_repr(b, 70)}" for name, a, b in differ
        )
    else:
        lines.append("same envelope, headers and body, but not the same captured message")
    lines.append(f"left:  {left.describe()}")
    lines.append(f"right: {right.describe()}")
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
            lines.append(f"{label}: {side.describe()}")
            continue
        messages = _messages_in(side)
        if messages is None:
            lines.append(f"{label}: {short_repr(side, 80)}")
        elif not messages:
            lines.append(f"{label}: no messages")
        else:
            lines.append(f"{label}:")
            lines.extend(f"  {line}" for line in describe_messages(messages))
    return lines
