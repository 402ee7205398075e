"""pytest_smtp: test software that sends, relays or receives email, with real sockets on loopback.

Public names only; everything here works outside pytest too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# Loaded on first use, so that `import pytest_smtp` (done by pytest for the plugin entry point)
# stays cheap and a run that never touches DNS or IMAP never imports them.
_EXPORTS = {
    "SMTPServer": "pytest_smtp.smtp.server",
    "ServerOptions": "pytest_smtp.smtp.options",
    "OptionError": "pytest_smtp.smtp.options",
    "TestCA": "pytest_smtp.smtp.tls",
    "default_ca": "pytest_smtp.smtp.tls",
    "Message": "pytest_smtp.mail",
    "Envelope": "pytest_smtp.mail",
    "Mailbox": "pytest_smtp.mail",
    "MailboxError": "pytest_smtp.mail",
    "MailboxTimeout": "pytest_smtp.mail",
    "Reply": "pytest_smtp.mail",
    "SessionInfo": "pytest_smtp.mail",
    "Transaction": "pytest_smtp.mail",
    "TransactionLog": "pytest_smtp.mail",
    "RecipientResult": "pytest_smtp.mail",
    "FaultSet": "pytest_smtp.faults",
    "Rule": "pytest_smtp.faults",
    "assert_sent": "pytest_smtp.asserts",
    "assert_no_mail": "pytest_smtp.asserts",
    "assert_rejected": "pytest_smtp.asserts",
    "assert_deferred": "pytest_smtp.asserts",
    "assert_dropped": "pytest_smtp.asserts",
    "assert_aborted": "pytest_smtp.asserts",
    "FakeDNS": "pytest_smtp.fakedns",
    "MailStore": "pytest_smtp.store",
    "POP3Server": "pytest_smtp.retrieval.pop3",
    "IMAPServer": "pytest_smtp.retrieval.imap",
    "get_engine": "pytest_smtp.engine",
    "MailNetwork": "pytest_smtp.relay",
    "RetryPolicy": "pytest_smtp.relay",
}

__all__ = [
    "Envelope",
    "FakeDNS",
    "FaultSet",
    "IMAPServer",
    "MailNetwork",
    "MailStore",
    "Mailbox",
    "MailboxError",
    "MailboxTimeout",
    "Message",
    "OptionError",
    "POP3Server",
    "RecipientResult",
    "Reply",
    "RetryPolicy",
    "Rule",
    "SMTPServer",
    "ServerOptions",
    "SessionInfo",
    "TestCA",
    "Transaction",
    "TransactionLog",
    "__version__",
    "assert_aborted",
    "assert_deferred",
    "assert_dropped",
    "assert_no_mail",
    "assert_rejected",
    "assert_sent",
    "default_ca",
    "get_engine",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'pytest_smtp' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


if TYPE_CHECKING:
    from .asserts import (
        assert_aborted,
        assert_deferred,
        assert_dropped,
        assert_no_mail,
        assert_rejected,
        assert_sent,
    )
    from .engine import get_engine
    from .fakedns import FakeDNS
    from .faults import FaultSet, Rule
    from .mail import (
        Envelope,
        Mailbox,
        MailboxError,
        MailboxTimeout,
        Message,
        RecipientResult,
        Reply,
        SessionInfo,
        Transaction,
        TransactionLog,
    )
    from .relay import MailNetwork, RetryPolicy
    from .retrieval.imap import IMAPServer
    from .retrieval.pop3 import POP3Server
    from .smtp.options import OptionError, ServerOptions
    from .smtp.server import SMTPServer
    from .smtp.tls import TestCA, default_ca
    from .store import MailStore
