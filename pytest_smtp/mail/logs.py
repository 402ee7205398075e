"""The two logs of a server: :class:`Mailbox` (messages) and :class:`TransactionLog`.

This module never imports pytest.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

from pytest_smtp.mail.filters import _message_matcher, _transaction_matcher
from pytest_smtp.mail.message import Message
from pytest_smtp.mail.transaction import Outcome, Stage, Transaction
from pytest_smtp.mail.waiting import _WaitableLog

__all__ = ["Mailbox", "TransactionLog"]


class Mailbox(_WaitableLog[Message]):
    """The capture log of one server: every accepted :class:`Message`, in arrival order.

    List-like (``len``, indexing, slicing, iteration over a snapshot); ``mailbox == []`` compares
    the captured messages with a list. Filters are keyword-only and combine with *and*:

    - ``to``: an exact envelope recipient (case-insensitive);
    - ``from_``: the exact envelope sender (case-insensitive; ``""`` is the null sender);
    - ``subject``: the exact decoded subject, or a compiled pattern searched in it;
    - ``contains``: a substring of the decoded text or HTML body;
    - ``header``: ``(name, value)`` or ``{name: value}``; exact decoded value or a pattern;
    - ``predicate``: ``callable(Message) -> bool``.
    """

    _noun = "message"
    _nouns = "messages"

    def filter(
        self,
        *,
        to: str | None = None,
        from_: str | None = None,
        subject: str | re.Pattern[str] | None = None,
        contains: str | None = None,
        header: tuple[str, str | re.Pattern[str]]
        | Mapping[str, str | re.Pattern[str]]
        | None = None,
        predicate: Callable[[Message], bool] | None = None,
    ) -> list[Message]:
        """The captured messages that match every given filter, in arrival order."""
        match, _ = _message_matcher(to, from_, subject, contains, header, predicate)
        return [m for m in self._snapshot() if match(m)]

    def one(
        self,
        *,
        to: str | None = None,
        from_: str | None = None,
        subject: str | re.Pattern[str] | None = None,
        contains: str | None = None,
        header: tuple[str, str | re.Pattern[str]]
        | Mapping[str, str | re.Pattern[str]]
        | None = None,
        predicate: Callable[[Message], bool] | None = None,
    ) -> Message:
        """The only message matching the filters; :class:`MailboxError` on zero or several."""
        match, wanted = _message_matcher(to, from_, subject, contains, header, predicate)
        return self._one([m for m in self._snapshot() if match(m)], wanted)

    def wait_for(
        self,
        count: int = 1,
        timeout: float | None = None,
        *,
        to: str | None = None,
        from_: str | None = None,
        subject: str | re.Pattern[str] | None = None,
        contains: str | None = None,
        header: tuple[str, str | re.Pattern[str]]
        | Mapping[str, str | re.Pattern[str]]
        | None = None,
        predicate: Callable[[Message], bool] | None = None,
    ) -> list[Message]:
        """Block until at least ``count`` messages match; return all matches so far.

        Woken by each append, never polls. ``timeout`` defaults to :attr:`default_timeout`;
        on expiry raises :class:`MailboxTimeout` listing what did arrive.
        """
        match, wanted = _message_matcher(to, from_, subject, contains, header, predicate)
        return self._wait(count, timeout, match, wanted)

    async def wait_for_async(
        self,
        count: int = 1,
        timeout: float | None = None,
        *,
        to: str | None = None,
        from_: str | None = None,
        subject: str | re.Pattern[str] | None = None,
        contains: str | None = None,
        header: tuple[str, str | re.Pattern[str]]
        | Mapping[str, str | re.Pattern[str]]
        | None = None,
        predicate: Callable[[Message], bool] | None = None,
    ) -> list[Message]:
        """:meth:`wait_for` for coroutines, on any event loop; never blocks that loop."""
        match, wanted = _message_matcher(to, from_, subject, contains, header, predicate)
        return await self._wait_async(count, timeout, match, wanted)


class TransactionLog(_WaitableLog[Transaction]):
    """Every :class:`Transaction` of one server, accepted or not, in start order.

    Filters: ``outcome`` (one of :data:`OUTCOMES`), ``stage`` (one of :data:`STAGES`),
    ``rcpt`` (any recipient tried, accepted or not), ``from_``, ``code`` (the deciding reply
    or any recipient's reply), ``predicate``.
    """

    _noun = "transaction"
    _nouns = "transactions"

    def _append(self, item: Transaction) -> None:
        item._hooks.append(self._updated)
        super()._append(item)

    def filter(
        self,
        *,
        outcome: Outcome | None = None,
        stage: Stage | None = None,
        rcpt: str | None = None,
        from_: str | None = None,
        code: int | None = None,
        predicate: Callable[[Transaction], bool] | None = None,
    ) -> list[Transaction]:
        """The transactions that match every given filter, in order."""
        match, _ = _transaction_matcher(outcome, stage, rcpt, from_, code, predicate)
        return [t for t in self._snapshot() if match(t)]

    def one(
        self,
        *,
        outcome: Outcome | None = None,
        stage: Stage | None = None,
        rcpt: str | None = None,
        from_: str | None = None,
        code: int | None = None,
        predicate: Callable[[Transaction], bool] | None = None,
    ) -> Transaction:
        """The only transaction matching the filters; :class:`MailboxError` otherwise."""
        match, wanted = _transaction_matcher(outcome, stage, rcpt, from_, code, predicate)
        return self._one([t for t in self._snapshot() if match(t)], wanted)

    def wait_for(
        self,
        count: int = 1,
        timeout: float | None = None,
        *,
        outcome: Outcome | None = None,
        stage: Stage | None = None,
        rcpt: str | None = None,
        from_: str | None = None,
        code: int | None = None,
        predicate: Callable[[Transaction], bool] | None = None,
    ) -> list[Transaction]:
        """Block until at least ``count`` transactions match (woken by appends and by
        :meth:`Transaction.finish`); raises :class:`MailboxTimeout` listing what happened.
        """
        match, wanted = _transaction_matcher(outcome, stage, rcpt, from_, code, predicate)
        return self._wait(count, timeout, match, wanted)

    async def wait_for_async(
        self,
        count: int = 1,
        timeout: float | None = None,
        *,
        outcome: Outcome | None = None,
        stage: Stage | None = None,
        rcpt: str | None = None,
        from_: str | None = None,
        code: int | None = None,
        predicate: Callable[[Transaction], bool] | None = None,
    ) -> list[Transaction]:
        """:meth:`wait_for` for coroutines, on any event loop; never blocks that loop."""
        match, wanted = _transaction_matcher(outcome, stage, rcpt, from_, code, predicate)
        return await self._wait_async(count, timeout, match, wanted)
