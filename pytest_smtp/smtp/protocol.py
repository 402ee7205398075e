"""The SMTP dialogue of one connection (RFC 5321, 1870, 2920, 3207, 3461, 4954, 6152, 6531).

Written on ``asyncio.Protocol`` with its own buffer rather than on aiosmtpd's ``SMTP`` class: the
engine needs to act at every stage (faults), reset the idle timer on any incoming byte (a slow
DATA upload is never cut off), keep DSN parameters as sent, read DATA in large chunks with one
copy, discard plaintext pipelined after STARTTLS, and reset the envelope after an error — each of
those is a documented aiosmtpd trap (see docs/explanation/architecture.md).
"""

from __future__ import annotations

import asyncio
import base64
import io
import re
import ssl
from collections.abc import Coroutine, Generator
from datetime import datetime
from time import monotonic as _monotonic
from typing import TYPE_CHECKING, Any

from ..mail import Message, RecipientResult, Reply, SessionInfo, Transaction
from ..mail.message import _UTC
from ..mail.proxy import ProxyHeaderError, header_length, octets_wanted, parse_header
from .address import (
    EnvelopeSyntaxError,
    check_mail_params,
    check_rcpt_params,
    parse_params,
    parse_path,
)
from .auth import AuthAborted, AuthSyntaxError, b64decode_strict, run_mechanism
from .options import handler_mechanisms

if TYPE_CHECKING:
    from ..faults import Verdict
    from ..sasl import Auth
    from .handler import HandlerBridge
    from .owner import ConnectionOwner

__all__ = ["SMTPConnection"]

# Command line lengths in octets, CRLF included (RFC 5321 §4.5.3.1.4), and the allowances the
# extensions add to them; see _line_limit. No line is ever buffered past _AUTH_LINE.
_COMMAND_LINE = 512
_MAIL_SIZE = 26  # RFC 1870 §3 (5): SIZE=
_MAIL_BODY = 16  # RFC 6152 §2: BODY=
_MAIL_SMTPUTF8 = 10  # RFC 6531 §3.1 (5): SMTPUTF8
_MAIL_DSN = 100  # RFC 3461 §4: RET= and ENVID=
_MAIL_AUTH = 500  # RFC 4954 §3 (5): AUTH=
_RCPT_DSN = 500  # RFC 3461 §4: NOTIFY= and ORCPT=
_AUTH_LINE = 12288  # RFC 4954 §4: AUTH with an initial response, and each SASL response line
_HIGH_WATER = 1 << 20
_BAD_COMMAND_LIMIT = 20
_LONG_DATA_LINE = re.compile(rb"\n[^\r\n]{999}")
# A HELO/EHLO argument is one word of visible ASCII: no control character reaches the session
# record or the echo in the EHLO reply (RFC 5321 textstring excludes them).
_HELO_NAME = re.compile(r"[\x21-\x7e]{1,255}")
_ALLOWED_BEFORE_TLS = frozenset({"EHLO", "HELO", "NOOP", "RSET", "QUIT", "STARTTLS"})
# How a command line is written to the transcript: CR, LF and NUL made visible.
_VISIBLE_CONTROLS = str.maketrans({"\r": "\\r", "\n": "\\n", "\0": "\\0"})


class _Disconnected(Exception):
    """The client went away (EOF, reset, or the server aborted the connection)."""


class _LineTooLong(Exception):
    """A line went past the longest any command may have; it was discarded up to its CRLF."""

    def __init__(self, head: bytes = b"") -> None:
        super().__init__()
        self.head = head  # the first octets of the line: which command it was


def _utcnow() -> datetime:
    return datetime.now(_UTC)


# What the dialogue coroutine yields to its own driver (SMTPConnection._step) instead of a
# future: "park me until data comes" and "move me into an asyncio Task now".
_DATA = object()
_TO_TASK = object()


class _Yield:
    """An awaitable that yields one marker to whoever steps the coroutine."""

    __slots__ = ("markers",)

    def __init__(self, marker: object) -> None:
        self.markers = (marker,)

    def __await__(self) -> Generator[Any, None, None]:
        # An iterator over the one marker, not a generator: nothing to build per await. A
        # value sent or an exception thrown in lands at the `await`, as with a generator.
        return iter(self.markers)  # type: ignore[return-value]


_PARK = _Yield(_DATA)
_ADOPT = _Yield(_TO_TASK)


class _Resume:
    """Continue, inside an asyncio Task, a coroutine the connection has been stepping itself:
    first wait for the future it had just yielded (nothing for :data:`_TO_TASK`), then pass
    every yield, value and exception through as ``await coro`` would."""

    __slots__ = ("coro", "pending")

    def __init__(self, coro: Coroutine[Any, None, None], pending: object) -> None:
        self.coro = coro
        self.pending = pending

    def __await__(self) -> Generator[Any, None, None]:
        coro, value = self.coro, self.pending
        while True:
            error: BaseException | None = None
            if value is not _TO_TASK:
                try:
                    yield value
                except BaseException as exc:  # cancellation, passed on like await would
                    error = exc
            try:
                value = coro.send(None) if error is None else coro.throw(error)
            except StopIteration:
                return


# Replies as sent, by (code, text, enhanced): the Reply, its wire bytes and its transcript
# lines. Most replies repeat from transaction to transaction ("250 2.0.0 OK", the EHLO list,
# "Sender <a@b> OK"); a reply built once is only looked up after that. Bounded: cleared when
# full. Only the engine thread uses it.
_WIRE_CACHE_SIZE = 1024
_wire_cache: dict[tuple[int, str, str | None], tuple[Reply, bytes, tuple[str, ...]]] = {}


def _wired(
    code: int, text: str, enhanced: str | None, *, keep: bool = True
) -> tuple[Reply, bytes, tuple[str, ...]]:
    """The reply, its wire bytes and transcript lines; ``keep=False`` for a reply that never
    repeats ("queued as <id>"), which would only push the others out of the cache."""
    key = (code, text, enhanced)
    hit = _wire_cache.get(key)
    if hit is None:
        reply = Reply(code, text, enhanced)
        lines = reply.wire_lines()
        data = "".join(f"{line}\r\n" for line in lines).encode("utf-8")
        hit = (reply, data, tuple(f"S: {line}" for line in lines))
        if keep:
            if len(_wire_cache) >= _WIRE_CACHE_SIZE:
                _wire_cache.clear()
            _wire_cache[key] = hit
    return hit


def _queued(txn_id: int) -> tuple[Reply, bytes, tuple[str, ...]]:
    """What :func:`_wired` gives for the 250 after DATA, built directly: it never repeats, and
    its code, status and text are known to be valid (no checks, no line splitting)."""
    text = f"OK: queued as {txn_id}"
    line = f"250 2.0.0 {text}"
    return Reply._unchecked(250, text, "2.0.0"), f"{line}\r\n".encode(), (f"S: {line}",)


async def _in_task(coro: Coroutine[Any, None, None], pending: object) -> None:
    await _Resume(coro, pending)


# Where the transport reads into (asyncio.BufferedProtocol): one buffer for every connection
# on the engine thread, since a read is copied out (buffer_updated) before the next one starts.
# A plain Protocol would be handed a new bytes object per read, which for asyncio's 256 KiB
# reads means an mmap, a page fault, an mremap and a munmap each time.
_READ_SIZE = 256 * 1024
_read_into = bytearray(_READ_SIZE)
_read_view = memoryview(_read_into)


class SMTPConnection(asyncio.BufferedProtocol):
    """One client connection. Created by :class:`~pytest_smtp.smtp.server.SMTPServer`."""

    def __init__(self, server: ConnectionOwner, *, implicit_tls: bool) -> None:
        self.server = server
        self.options = server.options
        self._policy = server.policy  # the server's rules (the same objects for its lifetime)
        self._faults = server.faults
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self._buf = bytearray()
        self._scan = 0
        self._waiter: asyncio.Future[None] | None = None
        self._drain_waiter: asyncio.Future[None] | None = None
        self._write_paused = False
        self._read_paused = False
        self._eof = False
        self._closed = False
        self._implicit_tls = implicit_tls
        self._tls_active = False
        self._last_activity = self.loop.time()
        self._idle_watch = server.engine.idle_watch
        self.session: SessionInfo | None = None
        self.lines: list[str] = []
        self.txn: Transaction | None = None
        self._no_service = False
        self._bad_commands = 0
        self._greeted = False
        self._hang: asyncio.Future[None] | None = None
        self._awaiting_proxy = False  # reading the PROXY header (proxy_protocol=True)
        # The dialogue (_run) is stepped by this object while it only waits for data: a
        # command is answered inside buffer_updated, in the loop turn its bytes arrived, with
        # no Task and no future. The first time it awaits anything else (a fault's delay,
        # TLS, a full write buffer) it moves into a Task for good (_task).
        self._coro: Coroutine[Any, None, None] | None = None
        self._task: asyncio.Task[None] | None = None
        self._done: asyncio.Future[None] | None = None
        self._stepping = False
        # Replies written while the connection steps itself go out in one write per step
        # (one segment for a pipelined group); None: write at once.
        self._out: list[bytes] | None = None
        self._where: str | None = None  # "host:port" of the server, for Message.server
        self._bridge: HandlerBridge | None = None  # an aiosmtpd handler's (smtp/handler.py)

    # -- asyncio.Protocol ------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        if not self.server._track_transport(transport):
            self._closed = True
            return
        peer = transport.get_extra_info("peername") or ("", 0)
        self.session = SessionInfo(
            id=self.server.next_id(),
            peer=(str(peer[0]), int(peer[1])),
            server_hostname=self.options.hostname,
        )
        if self._implicit_tls and self.options.proxy_protocol:
            # The PROXY header comes in the clear, the TLS handshake right after it: read the
            # header octet-exactly (_proxy_buffer), so not one octet of the ClientHello lands
            # in _buf, where the TLS layer started afterwards could not see it.
            self.get_buffer = self._proxy_buffer  # type: ignore[method-assign]
        elif self._implicit_tls:
            # The TLS layer is started by _run on this very transport, so stop() can abort a
            # client that never finishes the handshake; until then nothing is read into _buf.
            transport.pause_reading()
        self.server.open_session(self.session, self.lines)
        if self.options.handler is not None or self.options.authenticator is not None:
            from .handler import HandlerBridge

            self._bridge = HandlerBridge(
                self.options.handler,
                self.options.authenticator,
                hostname=self.options.hostname,
                peer=self.session.peer,
                send=self._send,
            )
        self._idle_watch.watch(self, self.options.timeout)
        # With no rule that could act at "connect", greet at once: the client (blocked in
        # connect + read) gets its 220 one loop turn earlier, which every test pays for.
        self._greeted = not (
            self._implicit_tls
            or self.options.proxy_protocol
            or self._policy.active
            or self._faults.active
        )
        if self._greeted:
            self._send_greeting()
        # stop() and the tests' settle() wait on this until the dialogue has ended.
        self._done = self.server._track(self.loop.create_future())
        self._coro = self._run()
        self._step()

    def get_buffer(self, sizehint: int) -> memoryview:
        return _read_view

    def _proxy_buffer(self, sizehint: int) -> memoryview:
        """``get_buffer`` while a PROXY header precedes implicit TLS: room for no more than
        the header's next octets (:func:`~pytest_smtp.mail.proxy.octets_wanted`)."""
        return _read_view[: octets_wanted(self._buf)]

    def buffer_updated(self, nbytes: int) -> None:
        buf = self._buf
        buf += _read_view[:nbytes]
        self._last_activity = _monotonic()  # what loop.time() returns, without its frame
        if len(buf) > _HIGH_WATER and not self._read_paused and self.transport:
            self._read_paused = True
            self.transport.pause_reading()
        if self._coro is not None:
            self._step()  # what _wake does first, without the call: once per segment
        else:
            self._wake()

    def eof_received(self) -> bool:
        self._eof = True
        self._wake()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        if self.transport is not None:
            self.server._untrack_transport(self.transport)
        self._idle_watch.unwatch(self)
        self._wake()
        for waiter in (self._drain_waiter, self._hang):
            if waiter is not None and not waiter.done():
                waiter.set_result(None)

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        waiter = self._drain_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- low-level I/O ---------------------------------------------------------------------
    def _wake(self) -> None:
        if self._coro is not None:
            self._step()
            return
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _step(self) -> None:
        """Run the dialogue until it waits for data again (or ends, or needs a Task)."""
        coro = self._coro
        if coro is None or self._stepping:
            return  # a nested call: the running step reads the buffer before it parks
        self._stepping = True
        self._out = []
        try:
            value = coro.send(None)
        except StopIteration:
            self._coro = None
            self._resolve_done()
            return
        except BaseException:
            self._coro = None  # raised past _run's handlers: it cannot be resumed
            self._resolve_done()
            raise
        finally:
            self._stepping = False
            self._flush()
            self._out = None
        if value is _DATA:
            return
        # Anything else is a future (or _TO_TASK): from here on a Task steps the dialogue.
        self._coro = None
        self._task = self.loop.create_task(_in_task(coro, value))
        self.server._track(self._task)
        self._resolve_done()

    def _resolve_done(self) -> None:
        done = self._done
        if done is not None and not done.done():
            done.set_result(None)

    def _flush(self) -> None:
        out = self._out
        if out:
            if self.transport is not None and not self._closed:
                self.transport.write(out[0] if len(out) == 1 else b"".join(out))
            out.clear()

    def _abort(self) -> None:
        """Drop the connection at once, after the replies already decided."""
        self._flush()
        if self.transport is not None:
            self.transport.abort()

    def check_idle(self, now: float) -> None:
        """Called by the engine's :class:`~pytest_smtp.engine.IdleWatch`: after ``timeout``
        seconds without a byte from the client, ``421 4.4.2`` and close."""
        if now - self._last_activity < self.options.timeout:
            return
        self._idle_watch.unwatch(self)  # once: the close below ends the connection
        if self._closed or self.transport is None:
            return
        if self._awaiting_proxy:  # as Postfix answers at smtpd_upstream_proxy_timeout
            why = f"no PROXY protocol header within {self.options.timeout:g} s"
            self._log("!", why)
            self._send(Reply(421, f"{self.options.hostname} Error: {why}", "4.3.0"))
            self.transport.close()
            return
        if self._implicit_tls and not self._tls_active:
            self.transport.abort()  # still in the handshake: a plaintext 421 would be noise
            return
        self._send(Reply(421, f"{self.options.hostname} Error: timeout exceeded", "4.4.2"))
        self._abort_transaction("aborted", None)
        self.transport.close()

    async def _wait_data(self) -> None:
        if self._closed or self._eof:
            raise _Disconnected()
        if self._read_paused and self.transport is not None:
            self._read_paused = False
            self.transport.resume_reading()
        if self._task is None:
            await _PARK  # stepped by this connection: buffer_updated resumes it
            return
        self._waiter = self.loop.create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    async def _readline(self) -> bytes:
        """The next line, CRLF included. Only CRLF ends a line (RFC 5321 §2.3.8): a bare CR or
        LF stays inside it. A line longer than _AUTH_LINE is discarded and never buffered."""
        while True:
            buf = self._buf
            if not buf:  # between commands the buffer is empty: wait without a scan
                await self._wait_data()
                continue
            # A CR at the end of the previous scan may pair with an LF that just came in.
            index = buf.find(b"\r\n", max(self._scan - 1, 0))
            if index + 2 > _AUTH_LINE:
                # The same answer whether the long line came in one segment or in several.
                head = bytes(buf[:5])
                del buf[: index + 2]
                self._scan = 0
                raise _LineTooLong(head)
            if index >= 0:
                line = bytes(buf[: index + 2])
                del buf[: index + 2]
                self._scan = 0
                return line
            self._scan = len(buf)
            if self._scan >= _AUTH_LINE:
                head = bytes(buf[:5])
                await self._discard_line()
                raise _LineTooLong(head)
            await self._wait_data()

    async def _discard_line(self) -> None:
        while True:
            index = self._buf.find(b"\r\n")
            if index >= 0:
                del self._buf[: index + 2]
                self._scan = 0
                return
            # Keep a final CR: its LF may be the first octet of the next segment.
            del self._buf[: len(self._buf) - self._buf.endswith(b"\r")]
            await self._wait_data()

    def _auth_offered(self) -> bool:
        opts = self.options
        return opts.offers_auth and (self._tls_active or not opts.auth_require_tls)

    def _line_limit(self, raw: bytes) -> int:
        """The longest command line, CRLF included, this line's command may have here: 512
        plus what the extensions this server offers add (RFC 5321 §4.5.3.1.4)."""
        opts = self.options
        verb = raw[:5].upper()
        if verb == b"MAIL ":
            extra = _MAIL_SIZE + _MAIL_BODY
            extra += _MAIL_SMTPUTF8 if opts.smtputf8 else 0
            extra += _MAIL_DSN if opts.dsn else 0
            extra += _MAIL_AUTH if self._auth_offered() else 0
            return _COMMAND_LINE + extra
        if verb == b"RCPT ":
            return _COMMAND_LINE + (_RCPT_DSN if opts.dsn else 0)
        if verb == b"AUTH " and self._auth_offered():
            return _AUTH_LINE
        return _COMMAND_LINE

    def _too_long_status(self, head: bytes) -> str:
        """5.5.6 for an AUTH exchange line (RFC 4954 §6, the only code for a long line), else
        5.5.2, a syntax error, as Postfix answers (RFC 5321 §4.5.3.1.4 gives no code)."""
        auth = head[:5].upper() == b"AUTH " and self._auth_offered()
        return "5.5.6" if auth else "5.5.2"

    def _take_buffer(self) -> bytearray:
        data = self._buf
        self._buf = bytearray()
        self._scan = 0
        return data

    def _send(self, reply: Reply) -> None:
        self._write(*_wired(reply.code, reply.text, reply.enhanced)[1:])

    def _write(self, data: bytes, logged: tuple[str, ...]) -> None:
        if self._closed or self.transport is None:
            return
        out = self._out
        if out is not None:
            out.append(data)
        else:
            self.transport.write(data)
        self.lines.extend(logged)
        txn = self.txn
        if txn is not None:
            txn.transcript.extend(logged)

    async def _reply(self, code: int, enhanced: str | None, text: str) -> Reply:
        reply, data, logged = _wired(code, text, enhanced)
        self._write(data, logged)
        if self._write_paused:
            await self._drain()
        return reply

    async def _send_reply(self, reply: Reply) -> Reply:
        self._send(reply)
        if self._write_paused:
            await self._drain()
        return reply

    async def _drain(self) -> None:
        if self._write_paused and not self._closed:
            self._drain_waiter = self.loop.create_future()
            try:
                await self._drain_waiter
            finally:
                self._drain_waiter = None

    def _log(self, who: str, text: str) -> None:
        self._log_line(f"{who}: {text}")

    def _log_line(self, line: str) -> None:
        self.lines.append(line)
        if self.txn is not None:
            self.txn.transcript.append(line)

    def _close(self) -> None:
        self._flush()
        if self.transport is not None and not self._closed:
            self.transport.close()

    # -- the dialogue ----------------------------------------------------------------------
    async def _run(self) -> None:
        try:
            if self.options.proxy_protocol and not await self._read_proxy():
                return
            if self._implicit_tls:
                await self._start_tls()
                self._note_tls("implicit")
            if not await self._greet():
                return
            while not self._closed:
                try:
                    raw = await self._readline()
                except _LineTooLong as exc:
                    self._log("C", f"<line over {_AUTH_LINE} octets>")
                    await self._reply(500, self._too_long_status(exc.head), "Line too long")
                    continue
                # Every limit is at least _COMMAND_LINE: most lines need no lookup.
                limit = self._line_limit(raw) if len(raw) > _COMMAND_LINE else _COMMAND_LINE
                if len(raw) > limit:
                    self._log("C", f"<line of {len(raw)} octets, over the limit of {limit}>")
                    status = self._too_long_status(raw)
                    await self._reply(500, status, f"Line too long (limit {limit} octets)")
                    continue
                if await self._dispatch(raw):
                    self._bad_commands = 0
        except (_Disconnected, ConnectionError):
            self._abort_transaction("aborted", None)
        except asyncio.CancelledError:
            self._abort_transaction("aborted", None)
            raise
        except Exception:
            text = self.server._record_error("SMTP connection failed")
            self.lines.append(f"!: {text}")
            # Never close without a word (a rule raising at "connect" lands here).
            self._send(Reply(421, "Internal error, closing connection", "4.3.0"))
            self._abort_transaction("aborted", None, error=text)
        finally:
            self._close()

    async def _read_proxy(self) -> bool:
        """Read the PROXY protocol header that must begin the connection and record it on the
        session. Missing or malformed: ``421 4.3.0`` naming what was wrong, recorded as a
        transaction refused at ``connect``, and the connection closed, as Postfix does. False
        when an aiosmtpd handler's ``handle_PROXY`` refuses it: closed without a reply, as on
        aiosmtpd."""
        self._awaiting_proxy = True
        error: str | None = None
        try:
            while True:
                try:
                    size = header_length(self._buf)
                    if size is not None:
                        raw = bytes(self._buf[:size])
                        header = parse_header(raw)
                        break
                except ProxyHeaderError as exc:
                    error = str(exc)
                    break
                await self._wait_data()
        finally:
            self._awaiting_proxy = False
            if "get_buffer" in self.__dict__:
                del self.get_buffer  # back to the class's: whole reads into the shared buffer
        if error is not None:
            self._log("!", error)
            reply = Reply(421, f"{self.options.hostname} Error: {error}", "4.3.0")
            await self._session_reply(reply, "connect")  # a 421 closes: raises _Disconnected
            return False
        del self._buf[:size]
        self._scan = 0
        assert self.session is not None
        self.session.proxy = header
        self._log("C", f"<{header.describe()}>")
        if self._bridge is not None and not await self._bridge.proxy(raw):
            self._log("!", "the handler's handle_PROXY refused the connection: closed, no reply")
            self._abort()
            return False
        return True

    def _send_greeting(self) -> None:
        self._write(*_wired(220, f"{self.options.hostname} ESMTP pytest_smtp ready", None)[1:])

    async def _greet(self) -> bool:
        if self._greeted:
            return True
        verdict = await self._evaluate("connect", {}) if self._ruled() else None
        if verdict is not None:
            await self._apply_verdict(verdict, command="connect")
            if verdict.reply is not None:
                await self._session_reply(verdict.reply, "connect")
                self._no_service = verdict.reply.code >= 400
                return True
        self._send_greeting()
        await self._drain()
        return True

    async def _dispatch(self, raw: bytes) -> bool:
        """Handle one command line; False when the command is unknown or unparsable."""
        line = raw[:-2]  # _readline returns whole lines: they end in CRLF
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            self._log("C", repr(line)[2:-1])
            await self._reply(500, "5.5.2", "Syntax error: command is not valid UTF-8")
            return False
        verb, _, arg = text.partition(" ")
        verb = verb.upper()
        logged = f"AUTH {arg.split(' ', 1)[0]} ****" if verb == "AUTH" and " " in arg else text
        if "\r" in text or "\n" in text or "\0" in text:  # rare: the whole line is refused
            self._log_line("C: " + logged.translate(_VISIBLE_CONTROLS))
            if "\r" in text or "\n" in text:
                # One CRLF-terminated line is one command: a bare CR or LF never splits it
                # into two (the RCPT-smuggling trick).
                why = "Syntax error: bare CR or LF in command line (only CRLF ends a line)"
            else:
                why = "Syntax error: NUL in command"
            await self._reply(501, "5.5.2", why)
            return True
        self._log_line("C: " + logged)
        if not verb.isascii():
            await self._reply(500, "5.5.2", "Syntax error: command verb is not ASCII")
            return False
        handler = _COMMANDS.get(verb)
        if handler is None:
            self._bad_commands += 1
            if self._bad_commands >= _BAD_COMMAND_LIMIT:
                await self._reply(421, "4.7.0", "Too many unrecognized commands, closing")
                self._abort_transaction("aborted", None)
                self._close()
                raise _Disconnected()
            await self._reply(500, "5.5.1", f"Command {verb[:20]!r} unrecognized")
            return False
        if self._no_service and verb != "QUIT":
            await self._reply(503, "5.5.1", "No SMTP service here; only QUIT")
            return True
        if self.options.require_tls and not self._tls_active and verb not in _ALLOWED_BEFORE_TLS:
            reply = Reply(530, "Must issue a STARTTLS command first", "5.7.0")
            if verb == "MAIL":
                self._begin_transaction()
            await self._respond(reply, finish="mail" if verb == "MAIL" else None)
            return True
        try:
            await handler(self, arg.strip(" "))
        except (_Disconnected, asyncio.CancelledError, ConnectionError):
            raise
        except Exception:
            error = self.server._record_error(f"SMTP {verb} handler raised")
            self.lines.append(f"!: {error}")
            reply = Reply(451, "Internal error, transaction reset", "4.3.0")
            self._abort_transaction("deferred", reply, error=error)
            await self._send_reply(reply)
        return True

    # -- fault hook ------------------------------------------------------------------------
    def _ruled(self) -> bool:
        """True when a rule could act (a standing policy or the test's faults): only then is
        a stage evaluated (``await self._evaluate(...) if self._ruled() else None``)."""
        return self._policy.active or self._faults.active

    async def _evaluate(self, stage: str, context: dict[str, Any]) -> Verdict | None:
        # The server's standing policy (e.g. a relay's "Relay access denied") comes first, then
        # the test's fault rules. Both are the same rule machinery.
        for rules in (self._policy, self._faults):
            if rules.active:
                verdict = await rules.evaluate(stage, self.session, self.txn, **context)
                if verdict is not None:
                    return verdict
        return None

    async def _apply_verdict(self, verdict: Verdict, *, command: str) -> None:
        """Carry out delay, hang and disconnect; the caller records and sends any reply."""
        if verdict.delay:
            await asyncio.sleep(verdict.delay)
        if verdict.hang:
            self._log("!", f"hang at {command}")
            if self._closed:
                raise _Disconnected()  # the client left while an earlier delay ran
            # Until the client gives up (connection_lost ends it) or the server stops.
            self._hang = self.loop.create_future()
            try:
                await self._hang
            finally:
                self._hang = None
            raise _Disconnected()
        if verdict.disconnect:
            self._log("!", f"disconnect at {command}")
            self._abort()
            raise _Disconnected()

    async def _respond(self, reply: Reply, *, finish: str | None = None) -> Reply:
        """Send a reply that may end the transaction: with ``finish`` (the stage), the
        transaction is recorded *before* the reply is written, so a client that has seen the
        reply always finds the record. A 421 closes the channel (RFC 5321 §3.8)."""
        if finish is not None:
            self._finish(_outcome_for(reply), finish, reply)
        if reply.code == 421:
            self._abort_transaction("deferred", reply)
        await self._send_reply(reply)
        if reply.code == 421:
            self._close()
            raise _Disconnected()
        return reply

    async def _session_reply(self, reply: Reply, stage: str) -> None:
        """A reply at a session stage (connect, ehlo, starttls, auth). A failure there is
        recorded as a transaction of its own, so ``assert_rejected(stage="auth")`` can see it."""
        if reply.code >= 400:
            self._begin_transaction().stage = stage  # type: ignore[assignment]
            await self._respond(reply, finish=stage)
        else:
            await self._respond(reply)

    # -- session state ---------------------------------------------------------------------
    def _note_tls(self, mode: str) -> None:
        assert self.session is not None and self.transport is not None
        self._tls_active = True
        ssl_object = self.transport.get_extra_info("ssl_object")
        self.session.tls = True
        self.session.tls_mode = mode
        if isinstance(ssl_object, ssl.SSLObject):
            self.session.tls_version = ssl_object.version()
            cipher = ssl_object.cipher()
            self.session.tls_cipher = cipher[0] if cipher else None
        if self._bridge is not None:
            info = {"ssl_object": ssl_object, "version": self.session.tls_version}
            self._bridge.tls_started(info)

    def _session_snapshot(self) -> SessionInfo:
        assert self.session is not None
        # A flat dataclass: a shallow copy is a snapshot (this is copy.copy without its
        # dispatch, which costs more than the copy).
        snapshot: SessionInfo = object.__new__(SessionInfo)
        snapshot.__dict__.update(self.session.__dict__)
        return snapshot

    def _begin_transaction(self) -> Transaction:
        self._abort_transaction("aborted", None)
        txn = Transaction(id=self.server.next_id(), session=self._session_snapshot())
        self.txn = txn
        # The MAIL line was logged before the transaction existed.
        if self.lines:
            txn.transcript.append(self.lines[-1])
        return txn

    def _finish(
        self,
        outcome: str,
        stage: str,
        reply: Reply | None,
        message: Message | None = None,
        error: str | None = None,
    ) -> None:
        txn = self.txn
        if txn is None:
            return
        self.txn = None
        txn.finish(outcome, stage, reply, message=message, error=error)  # type: ignore[arg-type]
        self.server.record_transaction(txn)

    def _abort_transaction(
        self, outcome: str, reply: Reply | None, error: str | None = None
    ) -> None:
        txn = self.txn
        if txn is None:
            return
        if reply is None and txn.recipients and not txn.rcpt_tos:
            # Every recipient was refused: the transaction failed on them.
            last = txn.recipients[-1].reply
            self._finish(_outcome_for(last), "rcpt", last, error=error)
            return
        stage = txn.stage
        self._finish(outcome if reply is None else _outcome_for(reply), stage, reply, error=error)

    # -- commands --------------------------------------------------------------------------
    async def smtp_helo(self, arg: str, *, esmtp: bool = False) -> None:
        verb = "EHLO" if esmtp else "HELO"
        if not _HELO_NAME.fullmatch(arg):
            await self._reply(501, "5.5.4", f"Syntax: {verb} <domain> (one ASCII word)")
            return
        verdict = await self._evaluate("ehlo", {"helo": arg}) if self._ruled() else None
        if verdict is not None:
            await self._apply_verdict(verdict, command=verb)
            if verdict.reply is not None:
                await self._session_reply(verdict.reply, "ehlo")
                return
        assert self.session is not None
        self._abort_transaction("aborted", None)
        if self._bridge is not None:
            lines = self._ehlo_lines(arg) if esmtp else []
            hook = self._bridge.ehlo(arg, lines) if esmtp else self._bridge.helo(arg)
            reply = await hook
            if reply is not None:
                if reply.code < 400:
                    self.session.helo, self.session.esmtp = arg, esmtp
                await self._session_reply(reply, "ehlo")
                return
        self.session.helo = arg
        self.session.esmtp = esmtp
        if not esmtp:
            await self._reply(250, None, self.options.hostname)
            return
        await self._reply(250, None, "\n".join(self._ehlo_lines()))

    def _ehlo_lines(self, helo: str | None = None) -> list[str]:
        opts = self.options
        helo = helo if helo is not None else self.session.helo if self.session else ""
        lines = [f"{opts.hostname} greets {helo}"]
        lines += ["PIPELINING", f"SIZE {opts.max_size or 0}", "8BITMIME"]
        if opts.smtputf8:
            lines.append("SMTPUTF8")
        lines.append("ENHANCEDSTATUSCODES")
        if opts.dsn:
            lines.append("DSN")
        if opts.tls == "starttls" and not self._tls_active:
            lines.append("STARTTLS")
        if self._auth_offered():
            lines.append("AUTH " + " ".join(opts.mechanisms))
        lines.append("HELP")
        return lines

    async def smtp_ehlo(self, arg: str) -> None:
        await self.smtp_helo(arg, esmtp=True)

    async def smtp_mail(self, arg: str) -> None:
        assert self.session is not None
        opts = self.options
        failure: tuple[int, str, str] | None = None
        if not self.session.helo:
            failure = (503, "5.5.1", "Send HELO or EHLO first")
        elif opts.require_auth and not self.session.auth_user:
            failure = (530, "5.7.0", "Authentication required")
        elif self.txn is not None and self.txn.mail_from is not None:
            await self._reply(503, "5.5.1", "Nested MAIL command")
            return
        elif arg[:5].upper() != "FROM:":
            failure = (501, "5.5.4", "Syntax: MAIL FROM:<address> [parameters]")
        if failure is not None:
            # A MAIL that fails before a transaction starts is still a recorded attempt.
            self._begin_transaction()
            code, enhanced, text = failure
            await self._respond(Reply(code, text, enhanced), finish="mail")
            return
        txn = self._begin_transaction()
        try:
            path = parse_path(arg[5:], utf8=opts.smtputf8, sender=True)
            params = parse_params(path.rest, utf8=opts.smtputf8) if path.rest else []
            if params and not self.session.esmtp:
                raise EnvelopeSyntaxError(501, "5.5.4", "Parameters need EHLO, not HELO")
            check_mail_params(
                params,
                path.address,
                max_size=opts.max_size,
                smtputf8=opts.smtputf8,
                dsn=opts.dsn,
                auth_offered=self._auth_offered(),
            )
        except EnvelopeSyntaxError as exc:
            await self._respond(Reply(exc.code, exc.text, exc.enhanced), finish="mail")
            return
        txn.mail_from = path.address
        txn.mail_options = [k if v is None else f"{k}={v}" for k, v in params]
        verdict = await self._evaluate("mail", {"address": path.address}) if self._ruled() else None
        if verdict is not None:
            await self._apply_verdict(verdict, command="MAIL")
            if verdict.reply is not None:
                failed = verdict.reply.code >= 400
                await self._respond(verdict.reply, finish="mail" if failed else None)
                return
        if self._bridge is not None:
            reply = await self._bridge.mail(path.address, txn.mail_options)
            if reply is not None:
                if reply.code < 400:
                    txn.stage = "rcpt"
                await self._respond(reply, finish="mail" if reply.code >= 400 else None)
                return
        txn.stage = "rcpt"
        await self._reply(250, "2.1.0", f"Sender <{path.address}> OK")

    async def smtp_rcpt(self, arg: str) -> None:
        txn = self.txn
        if txn is None or txn.mail_from is None:
            await self._reply(503, "5.5.1", "Need MAIL command first")
            return
        utf8 = self.options.smtputf8 and "SMTPUTF8" in txn.mail_options
        address = arg[3:].strip(" ")
        try:
            if arg[:3].upper() != "TO:":
                raise EnvelopeSyntaxError(501, "5.5.4", "Syntax: RCPT TO:<address> [parameters]")
            path = parse_path(arg[3:], utf8=utf8, sender=False)
            address = path.address
            params = parse_params(path.rest, utf8=utf8) if path.rest else []
            assert self.session is not None
            if params and not self.session.esmtp:
                raise EnvelopeSyntaxError(501, "5.5.4", "Parameters need EHLO, not HELO")
            check_rcpt_params(params, dsn=self.options.dsn)
        except EnvelopeSyntaxError as exc:
            reply = Reply(exc.code, exc.text, exc.enhanced)
            txn.recipients.append(RecipientResult(address, [], reply))
            await self._respond(reply)
            return
        options = [k if v is None else f"{k}={v}" for k, v in params]
        route = path.source_route
        most = self.options.max_recipients
        if len(txn.recipients) >= most and len(txn.rcpt_tos) >= most:
            reply = Reply(452, "Too many recipients", "4.5.3")
            txn.recipients.append(RecipientResult(address, options, reply, route))
            await self._respond(reply)
            return
        verdict = (
            await self._evaluate("rcpt", {"address": address, "source_route": route})
            if self._ruled()
            else None
        )
        if verdict is not None:
            await self._apply_verdict(verdict, command="RCPT")
            if verdict.reply is not None:
                txn.recipients.append(RecipientResult(address, options, verdict.reply, route))
                await self._respond(verdict.reply)
                return
        if self._bridge is not None:
            handled = await self._bridge.rcpt(address, options)
            if handled is not None:
                txn.recipients.append(RecipientResult(address, options, handled, route))
                await self._respond(handled)
                return
        reply, data, logged = _wired(250, f"Recipient <{address}> OK", "2.1.5")
        txn.recipients.append(RecipientResult(address, options, reply, route))
        self._write(data, logged)
        if self._write_paused:
            await self._drain()

    async def smtp_data(self, arg: str) -> None:
        txn = self.txn
        if txn is None or txn.mail_from is None:
            await self._reply(503, "5.5.1", "Need MAIL command first")
            return
        if arg:
            await self._reply(501, "5.5.4", "Syntax: DATA (no arguments)")
            return
        rcpt_tos = txn.rcpt_tos  # no RCPT can come in until this DATA has ended
        if not rcpt_tos:
            if txn.recipients:
                await self._respond(Reply(554, "No valid recipients", "5.5.1"), finish="data")
            else:
                await self._reply(503, "5.5.1", "Need RCPT command first")
            return
        txn.stage = "data"
        verdict = await self._evaluate("data", {}) if self._ruled() else None
        if verdict is not None:
            await self._apply_verdict(verdict, command="DATA")
            if verdict.reply is not None:
                failed = verdict.reply.code >= 400
                await self._respond(verdict.reply, finish="data" if failed else None)
                return
        await self._reply(354, None, "End data with <CR><LF>.<CR><LF>")
        disconnect_after = verdict.disconnect_after if verdict is not None else None
        throttle = verdict.throttle if verdict is not None else None
        body, too_big = await self._read_body(disconnect_after, throttle)
        txn.stage = "eod"
        if too_big:
            limit = self.options.max_size
            reply = Reply(552, f"Message exceeds fixed limit of {limit} octets", "5.3.4")
            await self._respond(reply, finish="eod")
            return
        defects = _line_defects(body)
        self._log(
            "C", f"<message: {len(body)} octets{'; ' + '; '.join(defects) if defects else ''}>"
        )
        if defects and self.options.strict_line_endings and any("bare" in d for d in defects):
            reply = Reply(550, "Bare CR or LF in message data (RFC 5321 section 2.3.8)", "5.5.2")
            await self._respond(reply, finish="eod")
            return
        if not body.isascii() and not {o.upper() for o in txn.mail_options} & {
            "BODY=8BITMIME",
            "SMTPUTF8",
        }:
            defects.append("8-bit data without BODY=8BITMIME")
        if self._where is None:
            self._where = f"{self.server.host}:{self.server.port}"
        mail_from = txn.mail_from
        if self._bridge is not None:
            mail_from, rcpt_tos = self._bridge.paths(mail_from, rcpt_tos)
        message = Message(
            raw=body,
            mail_from=mail_from,
            rcpt_tos=rcpt_tos,
            # Message copies these two (its own lists): no copy here as well.
            mail_options=txn.mail_options,
            rcpt_options={r.address: r.options for r in txn.recipients if r.accepted},
            # The transaction's snapshot: nothing that changes the session (EHLO, STARTTLS,
            # AUTH) can happen inside a transaction.
            session=txn.session,
            server=self._where,
            received_at=_utcnow(),
            transaction_id=txn.id,
            defects=defects,
        )
        del body
        verdict = await self._evaluate("eod", {"message": message}) if self._ruled() else None
        if verdict is not None:
            await self._apply_verdict(verdict, command="end of data")
            if verdict.reply is not None:
                await self._respond(verdict.reply, finish="eod")
                return
            if verdict.drop:
                reply = Reply(250, f"OK: queued as {txn.id} (dropped)", "2.0.0")
                self._finish("dropped", "eod", reply, message=message)
                await self._send_reply(Reply(250, f"OK: queued as {txn.id}", "2.0.0"))
                return
        if self.options.verifies:  # verdicts on message.auth before anyone can read it
            await self.server.authenticate_message(message)
            if self.options.enforce_dmarc:
                refusal = message.auth.dmarc.refusal()
                if refusal is not None:
                    await self._respond(refusal, finish="eod")
                    return
        reply, data, logged = _queued(txn.id)
        if self._bridge is not None:
            handled = await self._bridge.data(message)
            if handled is not None and handled.code >= 400:
                await self._respond(handled, finish="eod")
                return
            if handled is not None:
                reply, data, logged = _wired(
                    handled.code, handled.text, handled.enhanced, keep=False
                )
        # Recorded before the reply is written: a client that saw 250 finds the message.
        self.server.accept_message(message)
        self._finish("accepted", "eod", reply, message=message)
        self._write(data, logged)
        if self._write_paused:
            await self._drain()

    async def _read_body(
        self, disconnect_after: int | None, throttle: float | None
    ) -> tuple[bytes, bool]:
        """Read DATA up to CRLF.CRLF; return (unstuffed body, exceeded max_size).

        Chunks go straight into one growing buffer (no list of lines, no join); only the last
        four octets are kept aside to find a terminator split across chunks. Peak memory stays
        near the message size; dot-unstuffing copies only when a line starts with a dot.
        """
        limit = self.options.max_size
        body = io.BytesIO()
        # The virtual CRLF before the first octet lets a terminator at the very start match.
        tail = b"\r\n"
        written = 0  # octets of the stream seen so far (stored or, past the limit, counted)
        too_big = False
        while True:
            if not self._buf:
                await self._wait_data()
                continue
            chunk = bytes(self._take_buffer())
            if throttle:
                await asyncio.sleep(len(chunk) / throttle)
            if disconnect_after is not None and written + len(chunk) >= disconnect_after:
                self._log("!", f"disconnect after {written + len(chunk)} octets of DATA")
                self._abort()
                raise _Disconnected()
            # `window` starts len(tail) octets before `chunk`; one chunk-sized copy at most.
            window = tail + chunk
            end = window.find(b"\r\n.\r\n")
            if end >= 0:
                stop = written - len(tail) + end + 2  # stream offset after the body's last CRLF
                rest = window[end + 5 :]
                if rest:
                    self._buf[:0] = rest  # pipelined commands after the terminator
                if not too_big:
                    if stop >= written:
                        body.write(chunk[: stop - written])
                    else:
                        # The terminator began in an earlier chunk ("\r\n.\r" | "\n"):
                        # octets of it are already stored and must not stay in the body.
                        body.truncate(stop)
                    too_big = bool(limit and stop > limit)
                break
            if not too_big:
                body.write(chunk)
                if limit and written + len(chunk) > limit:
                    too_big = True
                    body = io.BytesIO()  # drop what was stored; keep counting to the end
            written += len(chunk)
            tail = window[-4:]
        if too_big:
            return b"", True
        data = body.getvalue()
        del body
        # Dot-unstuffing (RFC 5321 §4.5.2): each copy below replaces the previous one.
        if b"\r\n." in data:
            data = data.replace(b"\r\n.", b"\r\n")
        if data.startswith(b"."):
            data = data[1:]
        return data, False

    async def smtp_rset(self, arg: str) -> None:
        if arg:
            await self._reply(501, "5.5.4", "Syntax: RSET")
            return
        self._abort_transaction("aborted", None)
        if self._bridge is not None and await self._handled("RSET"):
            return
        await self._reply(250, "2.0.0", "OK")

    async def smtp_noop(self, arg: str) -> None:
        if self._bridge is not None and await self._handled("NOOP", arg):
            return
        await self._reply(250, "2.0.0", "OK")

    async def _handled(self, command: str, *args: Any) -> bool:
        """Send the handler's reply to ``command``, if it gives one (not MISSING)."""
        assert self._bridge is not None
        reply = await self._bridge.command(command, *args)
        if reply is not None:
            await self._respond(reply)
        return reply is not None

    async def smtp_quit(self, arg: str) -> None:
        verdict = await self._evaluate("quit", {}) if self._ruled() else None
        if verdict is not None:
            await self._apply_verdict(verdict, command="QUIT")
        self._abort_transaction("aborted", None)
        if verdict is not None and verdict.reply is not None:
            await self._respond(verdict.reply)
        elif self._bridge is None or not await self._handled("QUIT"):
            await self._reply(221, "2.0.0", f"{self.options.hostname} closing connection")
        self._close()
        raise _Disconnected()

    async def smtp_vrfy(self, arg: str) -> None:
        if not arg:
            await self._reply(501, "5.5.4", "Syntax: VRFY <address>")
            return
        if self._bridge is not None and await self._handled("VRFY", arg.strip("<>")):
            return
        await self._reply(252, "2.5.0", "Cannot VRFY user, but will accept message")

    async def smtp_expn(self, arg: str) -> None:
        await self._reply(502, "5.5.1", "EXPN not implemented")

    async def smtp_help(self, arg: str) -> None:
        await self._reply(214, "2.0.0", "Commands: " + " ".join(sorted(_COMMANDS)))

    async def smtp_starttls(self, arg: str) -> None:
        if self.options.tls != "starttls":
            await self._reply(502, "5.5.1", "STARTTLS not available")
            return
        if self._tls_active:
            await self._reply(503, "5.5.1", "TLS already active")
            return
        if arg:
            await self._reply(501, "5.5.4", "Syntax: STARTTLS (no arguments)")
            return
        verdict = await self._evaluate("starttls", {}) if self._ruled() else None
        if verdict is not None:
            await self._apply_verdict(verdict, command="STARTTLS")
            if verdict.reply is not None:
                await self._session_reply(verdict.reply, "starttls")
                return
        await self._reply(220, "2.0.0", "Ready to start TLS")
        # CVE-2024-34083 and RFC 3207 §4.2: anything pipelined after STARTTLS in the clear is
        # discarded, never executed after the upgrade.
        if self._buf:
            self._log("!", f"discarded {len(self._buf)} octets sent in the clear after STARTTLS")
        self._take_buffer()
        await self._start_tls()
        self._abort_transaction("aborted", None)
        assert self.session is not None
        self.session.helo = None
        self.session.esmtp = False
        self.session.auth_mechanism = None
        self.session.auth_user = None
        self._note_tls("starttls")

    async def _start_tls(self) -> None:
        """Run the server side of a TLS handshake on the current transport."""
        if not self._implicit_tls:
            await _ADOPT  # in a Task, with every reply so far written in the clear
        # Implicit TLS: start_tls() swaps in the SSL protocol now, inside connection_made's own
        # step. One loop turn later is too late on Python 3.10: there the transport's queued
        # _add_reader ignores pause_reading(), and a ClientHello read before the SSL protocol's
        # connection_made is dropped (the handshake then times out). After a PROXY header the
        # transport has been reading all along (start_tls pauses it) and the header was read
        # octet-exactly: the ClientHello is still in the socket.
        assert self.transport is not None
        context = self.server.ssl_context()
        try:
            new_transport = await self.loop.start_tls(
                self.transport, self, context, server_side=True, ssl_handshake_timeout=10
            )
        except (ConnectionError, ssl.SSLError, OSError, asyncio.TimeoutError) as exc:
            self._log("!", f"TLS handshake failed: {exc!r}")
            raise _Disconnected() from exc
        if new_transport is None:
            raise _Disconnected()
        self.server._untrack_transport(self.transport)
        self.transport = new_transport
        self.server._track_transport(new_transport)

    async def smtp_auth(self, arg: str) -> None:
        opts = self.options
        assert self.session is not None
        if not opts.offers_auth:
            await self._reply(502, "5.5.1", "AUTH not available")
            return
        if not self.session.esmtp:
            await self._reply(503, "5.5.1", "Send EHLO first")
            return
        if opts.auth_require_tls and not self._tls_active:
            await self._reply(
                538, "5.7.11", "Encryption required for requested authentication mechanism"
            )
            return
        if self.session.auth_user is not None:
            await self._reply(503, "5.5.1", "Already authenticated")
            return
        if self.txn is not None and self.txn.mail_from is not None:
            await self._reply(503, "5.5.1", "AUTH not permitted during a mail transaction")
            return
        parts = arg.split()
        if not parts or len(parts) > 2:
            await self._reply(501, "5.5.4", "Syntax: AUTH mechanism [initial-response]")
            return
        mechanism = parts[0].upper()
        offered = opts.mechanisms
        if mechanism not in offered:
            await self._reply(
                504,
                "5.5.4",
                f"Unrecognized authentication type; use one of {' '.join(offered)}",
            )
            return
        verdict = await self._evaluate("auth", {"mechanism": mechanism}) if self._ruled() else None
        if verdict is not None:
            await self._apply_verdict(verdict, command="AUTH")
            if verdict.reply is not None:
                await self._session_reply(verdict.reply, "auth")
                return
        checker: Auth = opts.auth_table
        if self._bridge is not None:
            reply = await self._bridge.command("AUTH", parts)
            if reply is not None:
                await self._session_reply(reply, "auth")
                return
            if opts.authenticator is not None:
                checker = self._bridge.checker(mechanism)
            own = handler_mechanisms(opts.handler).get(mechanism)
            if own is not None:  # the handler's auth_NAME method runs the exchange itself

                async def secret_line() -> bytes:
                    line = await self._readline()
                    self._log("C", "****")
                    return line

                try:
                    custom_reply, login = await self._bridge.run_mechanism(own, parts, secret_line)
                except _LineTooLong:
                    await self._reply(500, "5.5.6", "Line too long")
                    return
                if login is not None:
                    self.session.auth_mechanism = mechanism
                    self.session.auth_user = login
                if custom_reply is not None:
                    await self._session_reply(custom_reply, "auth")
                return

        async def challenge(data: bytes) -> bytes:
            await self._reply(334, None, base64.b64encode(data).decode())
            line = (await self._readline()).rstrip(b"\r\n")
            self._log("C", "****")
            if line == b"*":
                raise AuthAborted()
            return b64decode_strict(line)

        try:
            outcome = await run_mechanism(
                mechanism,
                checker,
                parts[1] if len(parts) == 2 else None,
                challenge,
                opts.hostname,
            )
        except AuthAborted:
            await self._reply(501, "5.7.0", "Authentication aborted")
            return
        except AuthSyntaxError as exc:
            await self._reply(501, "5.5.2", f"Malformed authentication data: {exc}")
            return
        except _LineTooLong:
            await self._reply(500, "5.5.6", "Line too long")
            return
        custom = self._bridge.authenticated(outcome.success) if self._bridge is not None else None
        if not outcome.success:
            invalid = Reply(535, "Authentication credentials invalid", "5.7.8")
            await self._session_reply(custom or invalid, "auth")
            return
        self.session.auth_mechanism = mechanism
        self.session.auth_user = outcome.user
        await self._send_reply(custom or Reply(235, "Authentication successful", "2.7.0"))

    async def smtp_bdat(self, arg: str) -> None:
        await self._reply(502, "5.5.1", "BDAT (CHUNKING) not implemented; use DATA")


def _outcome_for(reply: Reply | int) -> str:
    code = reply if isinstance(reply, int) else reply.code
    if 400 <= code < 500:
        return "deferred"
    if code >= 500:
        return "rejected"
    return "aborted"


def _line_defects(body: bytes) -> list[str]:
    """Facts about line endings and line length worth recording (C-speed counts)."""
    defects = []
    crlf = body.count(b"\r\n")
    bare_lf = body.count(b"\n") - crlf
    bare_cr = body.count(b"\r") - crlf
    if bare_lf:
        defects.append(f"bare LF x{bare_lf}")
    if bare_cr:
        defects.append(f"bare CR x{bare_cr}")
    if b"\0" in body:
        defects.append("NUL in message data")
    # A line over 998 octets needs at least 999 of them: a shorter body needs no search.
    if len(body) > 999:
        first = body.find(b"\n")
        if (first if first >= 0 else len(body)) > 999 or _LONG_DATA_LINE.search(body):
            defects.append("line over 998 octets")
    return defects


_COMMANDS = {
    "HELO": SMTPConnection.smtp_helo,
    "EHLO": SMTPConnection.smtp_ehlo,
    "MAIL": SMTPConnection.smtp_mail,
    "RCPT": SMTPConnection.smtp_rcpt,
    "DATA": SMTPConnection.smtp_data,
    "RSET": SMTPConnection.smtp_rset,
    "NOOP": SMTPConnection.smtp_noop,
    "QUIT": SMTPConnection.smtp_quit,
    "VRFY": SMTPConnection.smtp_vrfy,
    "EXPN": SMTPConnection.smtp_expn,
    "HELP": SMTPConnection.smtp_help,
    "STARTTLS": SMTPConnection.smtp_starttls,
    "AUTH": SMTPConnection.smtp_auth,
    "BDAT": SMTPConnection.smtp_bdat,
}
