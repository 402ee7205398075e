"""The compatibility fixtures, one plugin module each (registered by ``pytest_smtp.compat``)."""

from __future__ import annotations

import types
import warnings
from collections.abc import Iterator

import pytest

from ..fixtures import SMTPServerFactory
from ..smtp.options import OptionError
from ..smtp.server import SMTPServer
from .bridges import INCUMBENTS, LocalServerSMTP, SMTPCompatWarning, SmtpdFix

__all__ = ["localserver", "smtpd_plugin"]


def _warn(fixture: str) -> None:
    warnings.warn(
        SMTPCompatWarning(
            f"the `{fixture}` fixture comes from pytest_smtp.compat, a bridge for moving over: "
            f"use {INCUMBENTS[fixture][2]} instead (docs/how-to/migrate.md)"
        ),
        stacklevel=2,
    )


@pytest.fixture
def smtpd(smtp_server_factory: SMTPServerFactory) -> Iterator[SmtpdFix]:
    """smtpdfix's ``smtpd`` on a pytest_smtp server: ``hostname``, ``port``, ``messages``,
    ``config`` (``SMTPD_*`` environment variables); ``.server`` is the SMTPServer."""
    _warn("smtpd")
    try:
        yield SmtpdFix(smtp_server_factory)
    except OptionError as exc:
        raise pytest.UsageError(f"smtpd (pytest_smtp.compat): {exc}") from None


@pytest.fixture
def smtpserver(smtp_server: SMTPServer) -> LocalServerSMTP:
    """pytest-localserver's ``smtpserver`` on ``smtp_server``: ``addr`` and ``outbox``."""
    _warn("smtpserver")
    return LocalServerSMTP(smtp_server)


smtpd_plugin = types.ModuleType("pytest_smtp.compat.smtpd")
smtpd_plugin.smtpd = smtpd  # type: ignore[attr-defined]
localserver = types.ModuleType("pytest_smtp.compat.smtpserver")
localserver.smtpserver = smtpserver  # type: ignore[attr-defined]
