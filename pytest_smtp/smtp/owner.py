"""What an SMTP connection needs from the server that owns it, as a :class:`typing.Protocol`.

:class:`~pytest_smtp.smtp.protocol.SMTPConnection` depends on this contract, not on
:class:`~pytest_smtp.smtp.server.SMTPServer`: the server imports the connection and never the
other way round. The first group is the SMTP server's own (records and filing); the second is
the engine's bookkeeping every :class:`~pytest_smtp.engine.LoopServer` has (tasks and transports
that ``stop()`` must end, internal errors that fail the test).
"""

from __future__ import annotations

import asyncio
import ssl
from typing import TYPE_CHECKING, Protocol, TypeVar

if TYPE_CHECKING:
    from ..engine import Engine
    from ..faults import FaultSet
    from ..mail import Message, SessionInfo, Transaction
    from .options import ServerOptions

__all__ = ["ConnectionOwner"]

T = TypeVar("T")


class ConnectionOwner(Protocol):
    """The server side of one connection; :class:`~pytest_smtp.SMTPServer` implements it."""

    @property
    def options(self) -> ServerOptions:
        """The validated server options."""

    @property
    def host(self) -> str:
        """The bound address."""

    @property
    def port(self) -> int:
        """The bound port."""

    @property
    def policy(self) -> FaultSet:
        """Standing rules, evaluated before :attr:`faults`."""

    @property
    def faults(self) -> FaultSet:
        """The test's fault rules."""

    def ssl_context(self) -> ssl.SSLContext:
        """The server-side TLS context for STARTTLS and implicit TLS."""

    def next_id(self) -> int:
        """A fresh id for a session or a transaction (one sequence per server)."""

    def open_session(self, info: SessionInfo, lines: list[str]) -> None:
        """Record a new connection and the list its transcript lines are appended to."""

    def record_transaction(self, txn: Transaction) -> None:
        """Record a finished transaction, whatever its outcome."""

    async def authenticate_message(self, message: Message) -> None:
        """Verify an accepted message (``authenticate=True``) before it is filed."""

    def accept_message(self, message: Message) -> None:
        """File an accepted message (capture log and maildrops) before the 250 is sent."""

    # -- the engine's bookkeeping (LoopServer) ---------------------------------------------
    @property
    def engine(self) -> Engine:
        """The engine the server runs on (its loop, its idle watch)."""

    def _track(self, task: asyncio.Future[T]) -> asyncio.Future[T]: ...

    def _track_transport(self, transport: asyncio.BaseTransport) -> bool: ...

    def _untrack_transport(self, transport: asyncio.BaseTransport) -> None: ...

    def _record_error(self, context: str) -> str: ...
