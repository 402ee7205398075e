"""What the POP3 and IMAP servers share: options, logins, session records, STARTTLS.

- :class:`RecordingServer`: the options (checked by the SMTP server's schema,
  :class:`~pytest_smtp.smtp.options.ServerOptions`, so a bad value raises the same
  :class:`~pytest_smtp.smtp.options.OptionError`), the login check
  (:meth:`RecordingServer.check_login`; credentials and SASL PLAIN are ``pytest_smtp.sasl``'s),
  the listener and the session records.
- :class:`SessionRecord`, :class:`SessionLog`: one record per connection with its transcript,
  secrets masked (:data:`MASK`, :func:`mask_words`).
- :func:`upgrade_to_tls`: STLS/STARTTLS on an asyncio stream pair, on Python 3.10 to 3.13.

This module never imports pytest.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import socket
import ssl
import sys
import threading
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, ClassVar, Literal

from pytest_smtp.engine import LoopServer
from pytest_smtp.sasl import Auth, check_password, password_for
from pytest_smtp.smtp.options import OptionError, ServerOptions, TLSMode
from pytest_smtp.smtp.tls import ServesTLS, TestCA
from pytest_smtp.store import MailStore, normalize_address

__all__ = [
    "DEFAULT_HOSTNAME",
    "MASK",
    "RecordingServer",
    "SessionLog",
    "SessionRecord",
    "mask_words",
    "set_no_delay",
    "tls_details",
    "upgrade_to_tls",
]

#: What a secret (password, SASL response) is replaced with in transcripts.
MASK = "****"

#: The ``hostname`` every server greets with unless told otherwise (SMTP, POP3 and IMAP alike).
DEFAULT_HOSTNAME: str = ServerOptions.hostname


# -- session records --------------------------------------------------------------------------
def mask_words(line: str, keep: int) -> str:
    """Keep the first ``keep`` space-separated words of ``line`` and mask the rest.

    ``mask_words("PASS secret", 1)`` is ``"PASS ****"``; ``mask_words("a1 LOGIN bob pw", 3)``
    is ``"a1 LOGIN bob ****"``. A line with no more than ``keep`` words is returned as is.
    """
    parts = line.split(" ", keep)
    if len(parts) <= keep:
        return line
    return " ".join([*parts[:keep], MASK])


def set_no_delay(writer: asyncio.StreamWriter) -> None:
    """Turn Nagle's algorithm off for a server connection (call it first in a handler).

    asyncio sets TCP_NODELAY only on sockets created with ``proto=IPPROTO_TCP``, and
    ``engine.bind_socket`` makes them with proto 0; with Nagle on, a TLS server's session
    tickets followed by its greeting wait 40 ms for the client's delayed ACK (measured: 44 ms
    per implicit-TLS POP3 session, 1.6 ms with this).
    """
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def tls_details(writer: asyncio.StreamWriter) -> tuple[str | None, str | None]:
    """``(version, cipher)`` of the connection, ``(None, None)`` without TLS."""
    obj = writer.get_extra_info("ssl_object")
    if obj is None:
        return None, None
    cipher = obj.cipher()
    return obj.version(), (cipher[0] if cipher else None)


@dataclass
class SessionRecord:
    """One POP3 or IMAP connection: who, how, and the transcript (secrets masked)."""

    id: int
    protocol: str
    peer: tuple[str, int]
    started_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    ended_at: datetime | None = None
    user: str | None = None
    """The user name that logged in (None until a login succeeds)."""
    mechanism: str | None = None
    """How the user logged in: ``USER``, ``APOP``, ``LOGIN``, ``PLAIN``."""
    failed_logins: int = 0
    tls: bool = False
    tls_mode: str | None = None
    tls_version: str | None = None
    tls_cipher: str | None = None
    end: str | None = None
    """How the session ended: ``quit``/``logout``, ``disconnect``, ``timeout``, ``error``.

    A server sets it before its reply to QUIT/LOGOUT, so it is there when the client has the
    reply; ``ended_at`` is set when the connection is closed (see ``wait_idle``).
    """
    transcript: list[str] = field(default_factory=list)
    """Lines ``C: ...`` (client), ``S: ...`` (server) and ``-- ...`` (notes)."""
    _log: SessionLog | None = field(default=None, repr=False, compare=False)

    def client(self, line: str, *, secret: bool = False) -> None:
        """Record a client line; ``secret=True`` records :data:`MASK` instead."""
        self.transcript.append(f"C: {MASK if secret else line}")

    def server(self, line: str) -> None:
        """Record a server line."""
        self.transcript.append(f"S: {line}")

    def note(self, text: str) -> None:
        """Record an event that is not a protocol line (TLS handshake, timeout, ...)."""
        self.transcript.append(f"-- {text}")

    def set_tls(self, writer: asyncio.StreamWriter, mode: str) -> None:
        """Mark the session as encrypted, with the negotiated version and cipher."""
        self.tls = True
        self.tls_mode = mode
        self.tls_version, self.tls_cipher = tls_details(writer)
        self.note(f"TLS ({mode}) {self.tls_version} {self.tls_cipher}")

    def close(self, end: str) -> None:
        """Record the end of the session (only the first call counts)."""
        if self.ended_at is None:
            self.ended_at = datetime.now(timezone.utc)
            self.end = self.end or end
            self.note(f"session ended: {self.end}")
            if self._log is not None:
                self._log._closed()

    def __str__(self) -> str:
        who = self.user or "(not logged in)"
        tls = f" {self.tls_version}" if self.tls else ""
        head = f"{self.protocol} session #{self.id} from {self.peer[0]}:{self.peer[1]} {who}{tls}"
        return "\n".join([head, *("  " + line for line in self.transcript)])


class SessionLog:
    """Thread-safe list of :class:`SessionRecord` (written on the engine, read by tests)."""

    def __init__(self, protocol: str) -> None:
        self.protocol = protocol
        self._lock = threading.Condition()
        self._sessions: list[SessionRecord] = []
        self._open = 0
        self._next_id = 1

    def start(self, peer: Any) -> SessionRecord:
        """A new record for a connection from ``peer`` (``writer.get_extra_info('peername')``)."""
        if isinstance(peer, (tuple, list)) and len(peer) >= 2:
            address = (str(peer[0]), int(peer[1]))
        else:
            address = (str(peer), 0)
        with self._lock:
            record = SessionRecord(self._next_id, self.protocol, address, _log=self)
            self._next_id += 1
            self._sessions.append(record)
            self._open += 1
        return record

    def finish(self, record: SessionRecord, end: str) -> None:
        """Close ``record``; the same as ``record.close(end)`` (which also wakes wait_idle)."""
        record.close(end)

    def _closed(self) -> None:
        with self._lock:
            self._open = max(0, self._open - 1)
            self._lock.notify_all()

    def wait_idle(self, timeout: float = 5.0) -> list[SessionRecord]:
        """Block until no session is open (every client disconnected); returns the records.

        Event-driven (no polling). Raises :class:`TimeoutError` naming the open sessions.
        Call it from the test's thread, never from the engine's loop.
        """
        with self._lock:
            if not self._lock.wait_for(lambda: self._open == 0, timeout):
                still = [str(s.id) for s in self._sessions if s.ended_at is None]
                raise TimeoutError(
                    f"{self._open} {self.protocol} session(s) still open after {timeout} s: "
                    f"#{', #'.join(still) or '?'} (the client has not disconnected)"
                )
            return list(self._sessions)

    @property
    def sessions(self) -> list[SessionRecord]:
        """Snapshot of the records, oldest first."""
        with self._lock:
            return list(self._sessions)

    @property
    def transcript(self) -> list[str]:
        """Every line of every session, each prefixed with ``#<session id>``."""
        return [f"#{s.id} {line}" for s in self.sessions for line in list(s.transcript)]

    def clear(self) -> None:
        """Forget every record; numbering starts again at 1.

        Connections still open keep running (and still count for :meth:`wait_idle`); they are
        just no longer listed.
        """
        with self._lock:
            self._sessions = []
            self._next_id = 1


# -- STARTTLS ---------------------------------------------------------------------------------
# asyncio has no public way to see what a StreamReader holds unread, and Python 3.10 none to put
# a StreamWriter on a new transport (3.11 added StreamWriter.start_tls). Each private attribute
# this needs is read or set in exactly one function below, which fails loudly (RuntimeError)
# where a Python no longer has it; tests/unit/test_stream_internals.py pins each one.

# Tests set this to run the Python 3.10 code path on newer Pythons too.
_FORCE_LEGACY_TLS_UPGRADE = False


def _private_changed(what: str) -> RuntimeError:
    return RuntimeError(
        f"asyncio on Python {sys.version.split()[0]} has no {what}: STLS/STARTTLS in "
        "pytest_smtp.retrieval.common relies on it; please report this"
    )


def _buffered_size(reader: asyncio.StreamReader) -> int:
    """How many bytes ``reader`` holds unread (asyncio private: ``StreamReader._buffer``)."""
    buffer = getattr(reader, "_buffer", None)
    if not isinstance(buffer, bytearray):
        raise _private_changed("StreamReader._buffer (a bytearray)")
    return len(buffer)


def _swap_transport(
    writer: asyncio.StreamWriter, protocol: asyncio.BaseProtocol, transport: asyncio.Transport
) -> None:
    """Point ``writer`` and its stream ``protocol`` at the TLS ``transport``: what Python 3.11's
    ``StreamWriter.start_tls`` does after ``loop.start_tls`` (asyncio private:
    ``StreamWriter._transport``, ``StreamReaderProtocol._transport`` and ``._over_ssl``)."""
    for owner, name in ((writer, "_transport"), (protocol, "_transport"), (protocol, "_over_ssl")):
        if name not in vars(owner):
            raise _private_changed(f"{type(owner).__name__}.{name}")
    vars(writer)["_transport"] = transport
    vars(protocol)["_transport"] = transport
    # The stream protocol then lets an EOF close the TLS connection (no half-close over TLS).
    vars(protocol)["_over_ssl"] = True


async def upgrade_to_tls(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    context: ssl.SSLContext,
    *,
    handshake_timeout: float | None = 30.0,
) -> int:
    """Turn a server-side stream pair into TLS in place (POP3 STLS, IMAP STARTTLS).

    ``reader`` and ``writer`` keep working afterwards, now over TLS. Plaintext the client had
    already pipelined after the command is discarded (never read as commands); the number of
    bytes dropped is returned. Raises ``ssl.SSLError``/``ConnectionError``/``TimeoutError`` when
    the handshake fails: the caller then drops the connection. Note that ``writer.transport``
    is a new object afterwards (re-register it wherever the old one was tracked).
    """
    # Plaintext the client sent after STLS/STARTTLS but before the handshake must not be read
    # as commands after it (CVE-2011-0411, command injection): drop it.
    discarded = _buffered_size(reader)
    if discarded:
        await reader.readexactly(discarded)
    if sys.version_info >= (3, 11) and not _FORCE_LEGACY_TLS_UPGRADE:
        await writer.start_tls(context, ssl_handshake_timeout=handshake_timeout)
        return discarded
    # Python 3.10: the loop's start_tls, then what 3.11's StreamWriter.start_tls does after it.
    protocol = writer.transport.get_protocol()
    await writer.drain()
    transport = await asyncio.get_running_loop().start_tls(
        writer.transport,
        protocol,
        context,
        server_side=True,
        ssl_handshake_timeout=handshake_timeout,
    )
    if transport is None:
        raise ConnectionResetError("the connection closed during the TLS handshake")
    _swap_transport(writer, protocol, transport)
    return discarded


class RecordingServer(ServesTLS, LoopServer):
    """What POP3 and IMAP servers share: option checks, logins, the stream listener, and the
    record of sessions (:attr:`sessions`, :attr:`transcript`, :meth:`reset`).

    The options mean what they mean on :class:`~pytest_smtp.SMTPServer` and are checked by the
    same schema (:class:`~pytest_smtp.smtp.options.ServerOptions`; a bad value raises its
    :class:`~pytest_smtp.smtp.options.OptionError`). Only ``auth``'s default differs: a
    retrieval server always needs a login (the user name says whose maildrop to open), so it
    defaults to ``"any"``, and ``None`` is a deprecated spelling of ``"any"`` here.

    Subclasses set :attr:`protocol`, :attr:`max_line` and :attr:`default_timeout` and implement
    :meth:`_handle`.
    """

    protocol: ClassVar[str]
    """"POP3" or "IMAP" (session records and repr)."""
    max_line: ClassVar[int]
    """The longest line a client may send."""

    default_timeout: ClassVar[float]
    """Idle seconds before autologout when ``timeout`` is not given."""

    def __init__(
        self,
        store: MailStore | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        hostname: str = DEFAULT_HOSTNAME,
        tls: TLSMode | None = None,
        require_tls: bool = False,
        auth: Auth = "any",
        ca: TestCA | None = None,
        ssl_context: ssl.SSLContext | None = None,
        timeout: float | None = None,
    ) -> None:
        if store is not None and not isinstance(store, MailStore):
            raise TypeError(
                f"store must be a pytest_smtp.store.MailStore (such as smtp_server.store), "
                f"not {type(store).__name__}"
            )
        if auth is None:
            warnings.warn(
                f"{type(self).__name__}(auth=None) is deprecated: on the SMTP server None turns "
                f"AUTH off, but a {self.protocol} login cannot be turned off; pass auth='any' "
                f"(every login accepted, the default) or an {{address: password}} table",
                DeprecationWarning,
                stacklevel=3,
            )
            auth = "any"
        options = ServerOptions.build(
            host=host,
            port=port,
            hostname=hostname,
            tls=tls,
            require_tls=require_tls,
            auth=auth,
            auth_require_tls=False,
            timeout=self.default_timeout if timeout is None else timeout,
        )
        self.hostname = options.hostname
        """The name in the greeting (never resolved)."""
        self.tls: TLSMode | None = options.tls
        """``None``, ``"starttls"`` or ``"implicit"``."""
        self.require_tls = options.require_tls
        """True when logins are refused before TLS."""
        self.auth = _address_table(options.auth_table)
        """``"any"`` or the credentials table keyed by normalised address."""
        self.timeout = options.timeout
        """Seconds of client silence after which the session is logged out."""
        if ca is not None and not isinstance(ca, TestCA):
            raise TypeError(
                f"ca must be a pytest_smtp.TestCA (such as smtp_server.ca or default_ca()), "
                f"not {type(ca).__name__}"
            )
        self._ca = ca
        self._context = self._context_override(ssl_context, ca)
        if self.tls is not None and self._context is None:
            self._context = self.ca.server_context(self.hostname)  # fail now, not at a client
        super().__init__(host=options.host, port=options.port)
        self.store: MailStore = store if store is not None else MailStore()
        """The store whose maildrops the sessions open."""
        self._log = SessionLog(self.protocol)
        self._server: asyncio.Server | None = None

    def _context_override(self, ssl_context: object, ca: TestCA | None) -> ssl.SSLContext | None:
        if ssl_context is None:
            return None
        warnings.warn(
            f"{type(self).__name__}(ssl_context=...) is deprecated: pass ca= (a TestCA, as "
            f"SMTPServer takes), which issues the certificate for hostname",
            DeprecationWarning,
            stacklevel=4,
        )
        if not isinstance(ssl_context, ssl.SSLContext):
            raise TypeError(
                f"ssl_context must be an ssl.SSLContext for the server side, not "
                f"{type(ssl_context).__name__}"
            )
        if ca is not None:
            raise OptionError("give ca= or the deprecated ssl_context=, not both")
        if self.tls is None:
            raise OptionError(
                "ssl_context is given but tls is None: pass tls='starttls' or 'implicit'"
            )
        return ssl_context

    def ssl_context(self) -> ssl.SSLContext:
        """The server-side TLS context: a leaf for :attr:`hostname` signed by :attr:`ca`
        (or the deprecated ``ssl_context=`` given to the constructor)."""
        if self._context is not None:
            return self._context
        return super().ssl_context()

    async def start_session_tls(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> int:
        """STLS/STARTTLS on one session's streams with :meth:`ssl_context`
        (:func:`upgrade_to_tls`), the new transport tracked in place of the old one so that
        :meth:`stop` closes it; returns the plaintext bytes discarded. Raises as
        :func:`upgrade_to_tls` does when the handshake fails."""
        old = writer.transport
        discarded = await upgrade_to_tls(reader, writer, self.ssl_context())
        self._untrack_transport(old)
        self._track_transport(writer.transport)
        return discarded

    def check_login(self, user: str, password: str) -> bool:
        """True when ``user``/``password`` may log in under :attr:`auth`.

        The user is a maildrop address (its domain compared case-insensitively); with
        ``"any"`` every valid address logs in whatever the password.
        """
        key = _address_key(user)
        return key is not None and check_password(self.auth, key, password)

    def password_of(self, user: str) -> str | None:
        """The password :attr:`auth` holds for ``user`` (None for ``"any"`` or a stranger)."""
        key = _address_key(user)
        return None if key is None else password_for(self.auth, key)

    def __repr__(self) -> str:
        where = f"{self._sockname[0]}:{self._sockname[1]}" if self._sockname else "not started"
        auth = "any" if self.auth == "any" else "table"
        return f"<{type(self).__name__} {where} tls={self.tls!r} auth={auth}>"

    async def _astart(self) -> None:
        ssl_arg = self.ssl_context() if self.tls == "implicit" else None
        self._server = await self._start_stream_server(
            self._handle, ssl=ssl_arg, limit=self.max_line
        )

    async def _aclose(self) -> None:
        if self._server is not None:
            server, self._server = self._server, None
            await self._close_listener(server)

    @abc.abstractmethod
    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Serve one connection."""

    @property
    def sessions(self) -> list[SessionRecord]:
        """One record per connection (oldest first): peer, user, TLS, transcript."""
        return self._log.sessions

    @property
    def transcript(self) -> list[str]:
        """Every line of every session, ``#<id> C: ...``/``#<id> S: ...``, passwords masked."""
        return self._log.transcript

    def reset(self) -> None:
        """Forget the recorded sessions (per-test reset; the store is reset separately)."""
        self._log.clear()


def _address_key(user: str) -> str | None:
    try:
        return normalize_address(user)
    except (ValueError, TypeError):
        return None


def _address_table(auth: dict[str, str] | Literal["any"] | None) -> dict[str, str] | Literal["any"]:
    if auth is None or auth == "any":
        return "any"
    table: dict[str, str] = {}
    for user, password in auth.items():
        key = _address_key(user)
        if key is None:
            raise OptionError(
                f"auth: {user!r} is not a maildrop address; the user names of a POP3 or IMAP "
                f"server are addresses, such as {{'bob@example.org': 'secret'}}"
            )
        table[key] = password
    return table
