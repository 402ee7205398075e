"""What the quality checks read, as protocols: a captured message and a nameserver to publish in.

:func:`~pytest_smtp.quality.lint` and :func:`~pytest_smtp.quality.verify` take a
:class:`pytest_smtp.mail.Message`, and the ``publish_*`` helpers a
:class:`pytest_smtp.fakedns.FakeDNS`; both of those modules call into this package
(``Message.lint()``, ``FakeDNS.publish_spf()``), so the checks name only what they read here and
the package imports stay one-way (``tests/unit/test_imports.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from email.message import EmailMessage
from typing import Protocol

import dns.resolver

from pytest_smtp.mail.session import SessionInfo


class CheckedMessage(Protocol):
    """The parts of a captured message the checks read (a ``pytest_smtp.mail.Message`` is one)."""

    @property
    def raw(self) -> bytes:
        """The message bytes as received."""

    @property
    def mail_from(self) -> str:
        """The envelope sender (``""`` for the null sender)."""

    @property
    def mail_options(self) -> Sequence[str]:
        """The ESMTP parameters of MAIL FROM."""

    @property
    def session(self) -> SessionInfo:
        """The SMTP session the message came over (HELO name, client address)."""

    @property
    def email(self) -> EmailMessage:
        """The parsed message."""


class TXTPublisher(Protocol):
    """A nameserver the ``publish_*`` helpers add TXT records to (a ``FakeDNS`` is one)."""

    def add_txt(self, name: str, text: str) -> None:
        """Add one TXT record at ``name``."""

    def sync_resolver(self) -> dns.resolver.Resolver:
        """A resolver that asks this nameserver."""
