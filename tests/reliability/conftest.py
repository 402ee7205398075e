"""Shared servers for the reliability suite (profiles: see reliability_support.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from reliability_support import ServerFor

from pytest_smtp import SMTPServer


@pytest.fixture(scope="session")
def server_for() -> Iterator[ServerFor]:
    """``server_for(**options)``: a running server per option set, reset for the caller."""
    servers: dict[tuple[tuple[str, Any], ...], SMTPServer] = {}

    def get(**options: Any) -> SMTPServer:
        options.setdefault("timeout", 10)
        key = tuple(sorted((k, repr(v)) for k, v in options.items()))
        server = servers.get(key)
        if server is None:
            server = servers[key] = SMTPServer(**options).start()
        server.reset()
        return server

    yield get
    for server in servers.values():
        server.stop()
