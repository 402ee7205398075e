"""Retrieval servers over a :class:`~pytest_smtp.store.MailStore`: POP3 and IMAP.

``POP3Server`` and ``IMAPServer`` are imported on first use, so importing this package does not
load both protocols.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pytest_smtp.retrieval.imap import IMAPServer
    from pytest_smtp.retrieval.pop3 import POP3Server

__all__ = ["IMAPServer", "POP3Server"]

_LAZY = {"POP3Server": "pytest_smtp.retrieval.pop3", "IMAPServer": "pytest_smtp.retrieval.imap"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
