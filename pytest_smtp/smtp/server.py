"""The capturing SMTP server: records every transaction, files accepted mail into the store."""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..engine import LISTEN_BACKLOG, LoopServer, bind_socket
from ..faults import FaultSet
from ..mail import Mailbox, Message, SessionInfo, Transaction, TransactionLog
from ..store import MailStore
from .options import OptionError, ServerOptions, options_docstring
from .protocol import SMTPConnection
from .tls import ServesTLS, TestCA

if TYPE_CHECKING:
    from ..fakedns import FakeDNS

__all__ = ["SMTPServer"]


class SMTPServer(ServesTLS, LoopServer):
    """A real SMTP server on loopback that records everything it is sent.

    Usable outside pytest::

        with SMTPServer(max_size=1024) as server:
            smtplib.SMTP(*server.address).sendmail(...)
            server.mailbox.one(to="bob@example.test")

    Options, as keywords or a built :class:`~pytest_smtp.ServerOptions` (the same names as the
    ``smtp`` marker, the factory fixture, ``--smtp-*`` and ``python -m pytest_smtp serve``;
    this list is generated from the schema, :meth:`ServerOptions.schema`):

    {options}

    ``authenticate=True`` needs ``dns``, the :class:`~pytest_smtp.FakeDNS` the verdicts are
    asked of (the fixtures pass ``smtp_dns``).

    It implements :class:`~pytest_smtp.smtp.owner.ConnectionOwner`, what each connection calls.
    """

    def __init__(
        self,
        *,
        store: MailStore | None = None,
        ca: TestCA | None = None,
        options: ServerOptions | None = None,
        dns: FakeDNS | None = None,
        **kwargs: Any,
    ) -> None:
        self.options = ServerOptions.build(options, **kwargs)
        if self.options.verifies:
            if dns is None:
                raise OptionError(
                    "authenticate=True needs the fake DNS to verify against (enforce_dmarc=True "
                    "implies it): pass "
                    "SMTPServer(dns=FakeDNS(...)) (under pytest the smtp_server fixtures pass "
                    "smtp_dns), or leave authenticate off and call "
                    "pytest_smtp.quality.verify(message, dns) yourself"
                )
            import pytest_smtp.quality.auth  # noqa: F401 -- the auth extra: missing is an error now
        self.dns = dns
        """The :class:`~pytest_smtp.FakeDNS` that ``authenticate=True`` verifies against."""
        super().__init__(host=self.options.host, port=self.options.port)
        self.hostname = self.options.hostname
        """The name the server gives in its greeting and EHLO reply."""
        self.mailbox = Mailbox()
        """Every accepted message, in order (the capture log)."""
        self.transactions = TransactionLog()
        """Every MAIL..end attempt with its outcome, accepted or not."""
        self.store = store if store is not None else MailStore()
        """The maildrops: each accepted message filed once per recipient (read by POP3/IMAP)."""
        self.faults = FaultSet()
        """Fault rules for this server (cleared by :meth:`reset`)."""
        self.policy = FaultSet(seed=0)
        """Standing rules evaluated before :attr:`faults` and kept by :meth:`reset`: what the
        server *is* (a relay refusing to relay), not what a test makes it do."""
        self.delivery_hook: Callable[[Message, str], bytes | None] | None = None
        """If set, ``hook(message, rcpt) -> bytes`` gives what is filed into the recipient's
        maildrop (a final MX adds ``Return-Path:``/``Received:``), or ``None`` to file nothing
        (a relay forwards instead of filing); the capture log keeps ``raw`` either way."""
        self._ca = ca
        self._ids = itertools.count(1)
        self._sessions: list[tuple[SessionInfo, list[str]]] = []
        self._lock = threading.Lock()
        self._server: asyncio.Server | None = None
        # True once anything was recorded since the last reset(); set after the record, so a
        # reset that sees False has nothing to clear in the logs.
        self._captured = False

    def __repr__(self) -> str:
        where = f"{self._sockname[0]}:{self._sockname[1]}" if self._sockname else "not started"
        return f"<SMTPServer {self.hostname} {where} messages={len(self.mailbox)}>"

    # -- what the test reads ---------------------------------------------------------------
    @property
    def transcript(self) -> list[str]:
        """The SMTP dialogue of every connection, grouped by connection: ``[id] C: ...``."""
        with self._lock:
            sessions = list(self._sessions)
        return [f"[{info.id}] {line}" for info, lines in sessions for line in list(lines)]

    @property
    def sessions(self) -> list[SessionInfo]:
        """One :class:`SessionInfo` per connection, in order."""
        with self._lock:
            return [info for info, _ in self._sessions]

    def reset(self) -> None:
        """Forget everything captured and every fault rule: a fresh server for the next test.

        Open connections are left alone; the store is emptied as well.
        """
        with self._lock:
            self._sessions.clear()
            captured, self._captured = self._captured, False
        if captured:
            self.mailbox.clear()
            self.transactions.clear()
        self.store.reset()
        self.faults.clear()
        self.errors.clear()

    # -- lifecycle -------------------------------------------------------------------------
    async def _astart(self) -> None:
        implicit = self.options.tls == "implicit"
        if implicit:
            self.ssl_context()  # fail at start, not at the first connection, if it cannot load
        sock = bind_socket(self.options.host, self.options.port)
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: SMTPConnection(self, implicit_tls=implicit),
            sock=sock,
            backlog=LISTEN_BACKLOG,
        )
        name = sock.getsockname()
        self._sockname = (name[0], name[1])

    async def _aclose(self) -> None:
        if self._server is not None:
            server, self._server = self._server, None
            await self._close_listener(server)

    # -- ConnectionOwner: called by connections on the engine loop ------------------------
    def next_id(self) -> int:
        """A fresh id for a session or a transaction (one sequence per server)."""
        return next(self._ids)

    def open_session(self, info: SessionInfo, lines: list[str]) -> None:
        """Record a new connection and the list its transcript lines go to."""
        with self._lock:
            self._sessions.append((info, lines))
            self._captured = True

    def record_transaction(self, txn: Transaction) -> None:
        """Record a finished transaction in :attr:`transactions`, whatever its outcome."""
        self.transactions._append(txn)
        self._captured = True

    async def authenticate_message(self, message: Message) -> None:
        """Verify ``message`` against :attr:`dns` (``authenticate=True``) and keep the verdicts
        on ``message.auth``. The checks make blocking lookups to the fake DNS, which answers on
        this loop: they run in the loop's executor, awaited, never on the loop."""
        from ..quality.auth import verify

        dns = self.dns
        if dns is None:
            raise ValueError("authenticate=True but SMTPServer.dns is None: set it to the FakeDNS")
        loop = asyncio.get_running_loop()
        message._cache["auth"] = await loop.run_in_executor(None, verify, message, dns)

    def accept_message(self, message: Message) -> None:
        """File an accepted message: one copy per recipient in :attr:`store` (through
        :attr:`delivery_hook`), then the capture log :attr:`mailbox`."""
        hook = self.delivery_hook
        # Every copy is built before any is filed: a hook that raises for one recipient
        # leaves no maildrop holding a message the client was told failed (451).
        copies = [
            (rcpt, message.raw if hook is None else hook(message, rcpt))
            for rcpt in message.rcpt_tos
        ]
        auth = message._cache.get("auth")
        if auth is not None:  # the stored copies only: message.raw stays as received
            copies = [
                (rcpt, None if data is None else auth.stamp(data, self.hostname))
                for rcpt, data in copies
            ]
        folder = "INBOX"
        if auth is not None and self.options.enforce_dmarc:
            folder = "Junk" if auth.dmarc.disposition == "quarantine" else "INBOX"
        # The received bytes need no CRLF pass when DATA found no bare CR or LF in them (no
        # defect at all, the common case); anything else goes through deliver()'s checks.
        received = message.raw if not message.defects else None
        for rcpt, data in copies:
            if data is None:
                continue
            if data is received:
                self.store._deliver_checked(rcpt, data, folder, set(), message.received_at)
            else:
                self.store.deliver(rcpt, data, folder, internal_date=message.received_at)
        self.mailbox._append(message)
        self._captured = True


SMTPServer.__doc__ = (SMTPServer.__doc__ or "").replace(
    "{options}", options_docstring().replace("\n", "\n    ")
)
