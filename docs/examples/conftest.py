"""Wiring for the example suite: the app's mail settings point at the test server."""

from __future__ import annotations

import pytest
from shop import MailConfig

from pytest_smtp import SMTPServer


@pytest.fixture
def mail_config(smtp_server: SMTPServer) -> MailConfig:
    return MailConfig(host=smtp_server.host, port=smtp_server.port)


@pytest.fixture
def anyio_backend() -> str:
    """aiosmtplib runs on asyncio only: no trio run, even where trio is installed."""
    return "asyncio"
