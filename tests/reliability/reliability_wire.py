"""A strict raw-socket SMTP client and the invariants every reliability test checks.

The client reads replies with a hard deadline and refuses anything that is not a well-formed
RFC 5321 reply (``NNN text`` or ``NNN-text`` lines ending in CRLF, one code per reply, class
2..5), so a hang or a garbled reply fails the test instead of being retried or tolerated.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import socket
import ssl
import struct
import time
from collections.abc import Iterable

from pytest_smtp import SMTPServer

#: Every reply must arrive within this many seconds (the issue's bound).
REPLY_DEADLINE = 2.0

_LINE = re.compile(rb"([2-5][0-9][0-9])(?:([ -])(.*))?\r\n\Z", re.DOTALL)
# RFC 5321 textstring is HT and printable ASCII; UTF-8 is tolerated (RFC 6531 servers echo
# internationalized addresses) but never a control character.
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_ENHANCED = re.compile(r"([245])\.\d{1,3}\.\d{1,3}(?: |\Z)")
_FORBIDDEN = ("\r", "\n", "\0")


class ProtocolViolation(AssertionError):
    """The server sent something that is not a well-formed SMTP reply, or sent it too late."""


@dataclasses.dataclass(frozen=True)
class WireReply:
    """One reply as read off the wire."""

    code: int
    lines: tuple[str, ...]

    @property
    def enhanced(self) -> str | None:
        """The RFC 3463 status at the start of the first line, if any."""
        match = _ENHANCED.match(self.lines[0]) if self.lines else None
        return match.group(0).strip() if match else None

    def __str__(self) -> str:
        return f"{self.code} {' / '.join(self.lines)}"


class Wire:
    """A raw client: ``send`` bytes as they are, read strict replies with a deadline."""

    def __init__(self, address: tuple[str, int], *, deadline: float = REPLY_DEADLINE) -> None:
        self.deadline = deadline
        self.sock = socket.create_connection(address, timeout=deadline)
        self._buf = bytearray()
        self.eof = False
        self.replies: list[WireReply] = []

    def send(self, data: bytes) -> None:
        """Send ``data`` exactly; a reset by the server is tolerated (the reads will show it)."""
        if not data:
            return
        try:
            self.sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            self.eof = True

    def _fill(self, until: float) -> bool:
        """Read more bytes; False at EOF. Raises :class:`ProtocolViolation` at the deadline."""
        remaining = until - time.monotonic()
        if remaining <= 0:
            raise ProtocolViolation(f"no complete reply within {self.deadline} s: {self._buf!r}")
        self.sock.settimeout(remaining)
        try:
            chunk = self.sock.recv(65536)
        except TimeoutError:
            raise ProtocolViolation(
                f"no complete reply within {self.deadline} s (have {bytes(self._buf)!r})"
            ) from None
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            self.eof = True
            return False
        self._buf += chunk
        return True

    def _line(self, until: float) -> bytes | None:
        while True:
            index = self._buf.find(b"\n")
            if index >= 0:
                line = bytes(self._buf[: index + 1])
                del self._buf[: index + 1]
                return line
            if len(self._buf) > 2048:
                raise ProtocolViolation(f"reply line without LF: {bytes(self._buf[:80])!r}...")
            if self.eof or not self._fill(until):
                if self._buf:
                    raise ProtocolViolation(f"connection closed mid-line: {bytes(self._buf)!r}")
                return None

    def reply(self) -> WireReply | None:
        """The next reply, or None when the server closed the connection cleanly."""
        until = time.monotonic() + self.deadline
        code: bytes | None = None
        lines: list[str] = []
        while True:
            raw = self._line(until)
            if raw is None:
                if code is not None:
                    raise ProtocolViolation(f"connection closed inside a multiline reply {lines}")
                return None
            match = _LINE.match(raw)
            if match is None:
                raise ProtocolViolation(f"malformed reply line {raw!r}")
            if len(raw) > 512:
                raise ProtocolViolation(f"reply line over 512 octets: {raw[:60]!r}...")
            if code is not None and match.group(1) != code:
                raise ProtocolViolation(f"multiline reply mixes codes: {lines} then {raw!r}")
            code = match.group(1)
            try:
                text = (match.group(3) or b"").decode("utf-8")
            except UnicodeDecodeError:
                raise ProtocolViolation(f"reply line is not UTF-8: {raw!r}") from None
            if _CONTROL.search(text):
                raise ProtocolViolation(f"control character in reply text: {raw!r}")
            lines.append(text)
            if match.group(2) != b"-":
                reply = WireReply(int(code), tuple(lines))
                self.replies.append(reply)
                return reply

    def expect_eof(self) -> None:
        """The server must close the connection within the deadline, sending nothing more."""
        until = time.monotonic() + self.deadline
        while not self.eof:
            if self._buf:
                break
            self._fill(until)
        if self._buf:
            raise ProtocolViolation(f"expected the connection to close, got {bytes(self._buf)!r}")

    def reply_or_bytes(self) -> bool:
        """Read and discard whatever comes; False once the server has closed the connection."""
        self._buf.clear()
        return not self.eof and self._fill(time.monotonic() + self.deadline)

    def command(self, line: bytes | str) -> WireReply | None:
        """Send one command line (CRLF added) and read its reply."""
        data = line if isinstance(line, bytes) else line.encode()
        self.send(data + b"\r\n")
        return self.reply()

    def starttls(self, context: ssl.SSLContext, hostname: str) -> None:
        """Upgrade to TLS after a ``220`` to STARTTLS; whatever was unread is dropped."""
        self._buf.clear()
        self.sock.settimeout(self.deadline)
        self.sock = context.wrap_socket(self.sock, server_hostname=hostname)

    def close(self) -> None:
        """Close the socket (a FIN, without QUIT)."""
        self.sock.close()

    def reset(self) -> None:
        """Close with a TCP RST (SO_LINGER 0): a client that crashed."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()

    def __enter__(self) -> Wire:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def settle(server: SMTPServer, timeout: float = REPLY_DEADLINE) -> None:
    """Wait (on the engine loop, event-driven) until every connection task has finished.

    A connection task ends only after it has seen the client's EOF and aborted whatever
    transaction was open, so after this the logs are final.
    """

    async def _wait() -> int:
        tasks = [task for task in server._tasks if not task.done()]
        if not tasks:
            return 0
        _, pending = await asyncio.wait(tasks, timeout=timeout)
        return len(pending)

    pending = server.engine.call(_wait(), timeout=timeout + 1)
    if pending:
        raise AssertionError(f"{pending} connection task(s) still running {timeout} s after EOF")


def probe(server: SMTPServer) -> None:
    """The server is still alive: a new connection gets 220, NOOP 250 and QUIT 221, then EOF."""
    with Wire(server.address) as wire:
        for sent, wanted in ((None, 220), (b"NOOP", 250), (b"QUIT", 221)):
            reply = wire.reply() if sent is None else wire.command(sent)
            if reply is None or reply.code != wanted:
                raise AssertionError(f"server not healthy: {sent!r} got {reply}, wanted {wanted}")
        wire.expect_eof()


def _clean(value: object, where: str) -> None:
    if isinstance(value, str):
        bad = [c for c in _FORBIDDEN if c in value]
        if bad:
            raise AssertionError(f"{where} holds {bad!r}: {value!r}")
    elif isinstance(value, Iterable):
        for item in value:
            _clean(item, where)


def check_stored(server: SMTPServer) -> None:
    """Nothing invalid reached an envelope, a session, or a header of a captured message;
    every transaction is finished (no envelope left open to leak into the next one)."""
    for txn in server.transactions:
        if txn.outcome is None:
            raise AssertionError(f"transaction still open after the connection ended: {txn!r}")
        _clean(txn.mail_from or "", "a transaction's MAIL FROM")
        _clean(txn.mail_options, "a transaction's MAIL parameters")
        for rcpt in txn.recipients:
            _clean(rcpt.address, "a RCPT address")
            _clean(rcpt.options, "RCPT parameters")
        _clean(txn.session.helo or "", "the HELO name")
    for message in server.mailbox:
        _clean(message.mail_from, "a message's MAIL FROM")
        _clean(message.rcpt_tos, "a message's recipients")
        _clean(message.mail_options, "a message's MAIL parameters")
        _clean(list(message.rcpt_options.values()), "a message's RCPT parameters")
        _clean(message.session.helo or "", "a message's HELO name")
        for name, value in message.headers.items():
            _clean([name, value], "a parsed header")
        if not message.rcpt_tos:
            raise AssertionError(f"message captured without recipients: {message!r}")
    for info in server.sessions:
        _clean(info.helo or "", "a session's HELO name")
    if server.errors:
        raise AssertionError("server.errors is not empty:\n" + "\n".join(server.errors))
