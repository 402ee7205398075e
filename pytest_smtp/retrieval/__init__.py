"""Retrieval servers over a :class:`~pytest_smtp.store.MailStore`: POP3 and IMAP.

``POP3Server`` and ``IMAPServer`` are imported on first use, so importing this package does not
load both protocols.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pytest_smtp._lazy import lazy_getattr

if TYPE_CHECKING:
    from pytest_smtp.retrieval.imap import IMAPServer
    from pytest_smtp.retrieval.pop3 import POP3Server

__all__ = ["IMAPServer", "POP3Server"]

_LAZY = {"POP3Server": "pytest_smtp.retrieval.pop3", "IMAPServer": "pytest_smtp.retrieval.imap"}


__getattr__ = lazy_getattr(__name__, _LAZY, globals())
