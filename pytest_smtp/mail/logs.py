"""The two logs of a server: :class:`Mailbox` (messages) and :class:`TransactionLog`.

This module never imports pytest.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pytest_smtp.mail.filters import (
    Filter,
    MessageCriteria,
    TransactionCriteria,
    message_filter,
    transaction_filter,
)
from pytest_smtp.mail.message import Message
from pytest_smtp.mail.transaction import Transaction
from pytest_smtp.mail.waiting import _WaitableLog

if TYPE_CHECKING:
    import sys

    if sys.version_info >= (3, 11):
        from typing import Unpack
    else:
        from typing_extensions import Unpack

__all__ = ["Mailbox", "TransactionLog"]


class Mailbox(_WaitableLog[Message]):
    """The capture log of one server: every accepted :class:`Message`, in arrival order.

    List-like (``len``, indexing, slicing, iteration over a snapshot); ``mailbox == []`` compares
    the captured messages with a list. Every lookup takes ``match=`` (a
    :class:`~pytest_smtp.mail.MessageFilter`, built once, or a combination of them) and/or the
    keywords of :class:`~pytest_smtp.mail.MessageFilter`, which combine with *and*:

    - ``rcpt`` / ``mail_from``: the envelope (``to`` / ``from_`` are older spellings of them);
    - ``header_to`` / ``header_from``: the ``To`` / ``From`` header fields;
    - ``subject``, ``contains``, ``header``, ``predicate``.

    Failure texts say, for each captured message, the first criterion it failed.
    """

    _noun = "message"
    _nouns = "messages"

    def filter(
        self,
        *,
        match: Filter[Message] | None = None,
        **criteria: Unpack[MessageCriteria],
    ) -> list[Message]:
        """The captured messages that match every given filter, in arrival order."""
        return self._filter(message_filter(match, **criteria))

    def one(
        self,
        *,
        match: Filter[Message] | None = None,
        **criteria: Unpack[MessageCriteria],
    ) -> Message:
        """The only message matching the filters; :class:`MailboxError` on zero or several."""
        return self._one(message_filter(match, **criteria))

    def wait_for(
        self,
        count: int = 1,
        timeout: float | None = None,
        *,
        match: Filter[Message] | None = None,
        **criteria: Unpack[MessageCriteria],
    ) -> list[Message]:
        """Block until at least ``count`` messages match; return all matches so far.

        Woken by each append, never polls. ``timeout`` defaults to :attr:`default_timeout`;
        on expiry raises :class:`MailboxTimeout` listing what did arrive and why each failed.
        """
        return self._wait(
            count,
            timeout,
            message_filter(match, **criteria),
        )

    async def wait_for_async(
        self,
        count: int = 1,
        timeout: float | None = None,
        *,
        match: Filter[Message] | None = None,
        **criteria: Unpack[MessageCriteria],
    ) -> list[Message]:
        """:meth:`wait_for` for coroutines, on any event loop; never blocks that loop."""
        return await self._wait_async(
            count,
            timeout,
            message_filter(match, **criteria),
        )


class TransactionLog(_WaitableLog[Transaction]):
    """Every :class:`Transaction` of one server, accepted or not, in start order.

    Lookups take ``match=`` (a :class:`~pytest_smtp.mail.TransactionFilter`) and/or its
    keywords: ``outcome`` (one of :data:`OUTCOMES`), ``stage`` (one of :data:`STAGES`),
    ``rcpt`` (any recipient tried, accepted or not), ``mail_from`` (``from_`` is its older
    spelling), ``code`` (the deciding reply or any recipient's reply), ``predicate``.
    """

    _noun = "transaction"
    _nouns = "transactions"

    def _append(self, item: Transaction) -> None:
        item._hooks.append(self._updated)
        super()._append(item)

    def filter(
        self,
        *,
        match: Filter[Transaction] | None = None,
        **criteria: Unpack[TransactionCriteria],
    ) -> list[Transaction]:
        """The transactions that match every given filter, in order."""
        return self._filter(transaction_filter(match, **criteria))

    def one(
        self,
        *,
        match: Filter[Transaction] | None = None,
        **criteria: Unpack[TransactionCriteria],
    ) -> Transaction:
        """The only transaction matching the filters; :class:`MailboxError` otherwise."""
        return self._one(transaction_filter(match, **criteria))

    def wait_for(
        self,
        count: int = 1,
        timeout: float | None = None,
        *,
        match: Filter[Transaction] | None = None,
        **criteria: Unpack[TransactionCriteria],
    ) -> list[Transaction]:
        """Block until at least ``count`` transactions match (woken by appends and by
        :meth:`Transaction.finish`); raises :class:`MailboxTimeout` listing what happened.
        """
        return self._wait(
            count,
            timeout,
            transaction_filter(match, **criteria),
        )

    async def wait_for_async(
        self,
        count: int = 1,
        timeout: float | None = None,
        *,
        match: Filter[Transaction] | None = None,
        **criteria: Unpack[TransactionCriteria],
    ) -> list[Transaction]:
        """:meth:`wait_for` for coroutines, on any event loop; never blocks that loop."""
        return await self._wait_async(
            count,
            timeout,
            transaction_filter(match, **criteria),
        )
