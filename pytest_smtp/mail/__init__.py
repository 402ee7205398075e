"""The mail model: replies, sessions, transactions, messages and the logs that hold them.

The SMTP server builds these objects on the engine's thread; tests read them from their own
thread (or event loop). :class:`Mailbox` and :class:`TransactionLog` are thread-safe, and their
``wait_for`` methods are event-driven: an append wakes the waiters, nothing polls.

The package's modules, each one concept (everything public is re-exported here):

- :mod:`~pytest_smtp.mail.session`: :class:`Reply`, :class:`SessionInfo`,
  :class:`RecipientResult`, :class:`Envelope`;
- :mod:`~pytest_smtp.mail.proxy`: :class:`ProxyHeader` (the PROXY protocol header a load
  balancer sends first), :class:`ProxyHeaderError`;
- :mod:`~pytest_smtp.mail.message`: :class:`Message`, :class:`HeaderView`, :class:`Attachment`
  (parsed lazily by the capped parser of :mod:`pytest_smtp.parsing`);
- :mod:`~pytest_smtp.mail.transaction`: :class:`Transaction`, :data:`Outcome`, :data:`Stage`;
- :mod:`~pytest_smtp.mail.waiting`: the waitable log both logs share, :class:`MailboxError`,
  :class:`MailboxTimeout`;
- :mod:`~pytest_smtp.mail.filters`: :class:`MessageFilter`, :class:`TransactionFilter` (built
  once, combined with ``&``/``|``/``~``, ``explain()`` why an item does not match);
- :mod:`~pytest_smtp.mail.logs`: :class:`Mailbox` and :class:`TransactionLog`.

This package never imports pytest.
"""

from __future__ import annotations

from pytest_smtp.mail.filters import Filter, MessageFilter, TransactionFilter
from pytest_smtp.mail.logs import Mailbox, TransactionLog
from pytest_smtp.mail.message import Attachment, HeaderView, Message
from pytest_smtp.mail.proxy import ProxyHeader, ProxyHeaderError
from pytest_smtp.mail.session import Envelope, RecipientResult, Reply, ReplyKind, SessionInfo
from pytest_smtp.mail.transaction import OUTCOMES, STAGES, Outcome, Stage, Transaction
from pytest_smtp.mail.waiting import MailboxError, MailboxTimeout
from pytest_smtp.parsing import MAX_FIELD, MAX_HEADER_SECTION, MAX_STRUCTURED_FIELD

__all__ = [
    "MAX_FIELD",
    "MAX_HEADER_SECTION",
    "MAX_STRUCTURED_FIELD",
    "OUTCOMES",
    "STAGES",
    "Attachment",
    "Envelope",
    "Filter",
    "HeaderView",
    "Mailbox",
    "MailboxError",
    "MailboxTimeout",
    "Message",
    "MessageFilter",
    "Outcome",
    "ProxyHeader",
    "ProxyHeaderError",
    "RecipientResult",
    "Reply",
    "ReplyKind",
    "SessionInfo",
    "Stage",
    "Transaction",
    "TransactionFilter",
    "TransactionLog",
]
