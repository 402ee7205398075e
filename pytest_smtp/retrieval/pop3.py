"""A POP3 server over a :class:`~pytest_smtp.store.MailStore`, on the engine's loop.

RFC 1939 (USER/PASS, APOP, STAT, LIST, UIDL, RETR, TOP, DELE, RSET, NOOP, QUIT), RFC 2449
(CAPA, response codes), RFC 2595 (STLS) and RFC 5034 (AUTH PLAIN). The user name is the
maildrop address; the session works on the maildrop's INBOX as it was at login. Deletions and
the ``\\Seen`` flag of retrieved messages are applied only by QUIT (the UPDATE state): a dropped
connection changes nothing. One session at a time per maildrop (``-ERR [IN-USE]``).

Deleting over POP3 removes messages from the store only, never from the SMTP capture log.

This module never imports pytest.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import os
import re
import ssl
import time
from collections.abc import Callable
from typing import Literal

from pytest_smtp.retrieval.common import (
    RecordingServer,
    SessionRecord,
    mask_words,
    set_no_delay,
)
from pytest_smtp.sasl import AuthSyntaxError, decode_plain
from pytest_smtp.store import Folder, Maildrop, StoredMessage, normalize_address

__all__ = ["POP3Server"]

#: Longest command line accepted (RFC 2449 allows 255 octets; SASL responses are longer).
MAX_LINE = 8192

_NUMBER = re.compile(r"[0-9]{1,10}")
_HEX_DIGEST = re.compile(r"[0-9a-fA-F]{32}")
_banner_counter = itertools.count(1)

_State = Literal["authorization", "transaction"]


class POP3Server(RecordingServer):
    """A POP3 server for the maildrops of ``store``; a context manager, also outside pytest.

    Options (named, checked and meant as ``SMTPServer``'s): ``hostname`` (greeting and APOP
    banner, never resolved; default ``smtp.pytest-smtp.test``), ``tls`` (``None``,
    ``"starttls"`` for STLS, ``"implicit"`` for POP3S), ``require_tls`` (no login before TLS),
    ``auth`` (``"any"``, the default: every login accepted, APOP with any digest; or
    ``{address: password}``), ``ca`` (the :class:`~pytest_smtp.smtp.tls.TestCA` that issues
    the certificate; default the process's test CA), ``timeout`` (idle seconds before
    autologout, RFC 1939 section 3). ``ssl_context=`` is a deprecated alternative to ``ca=``.

    ``server.sessions`` holds one :class:`~pytest_smtp.retrieval.common.SessionRecord` per
    connection, ``server.transcript`` every line (passwords masked), ``server.reset()`` clears
    them (the store has its own ``reset()``).
    """

    protocol = "POP3"
    max_line = MAX_LINE
    default_timeout = 600.0

    def wait_idle(self, timeout: float = 5.0) -> list[SessionRecord]:
        """Block until every client has disconnected; returns the session records.

        For a test whose code under test drops the connection without QUIT: after this
        returns, the maildrop is unlocked and nothing was deleted. Raises TimeoutError.
        """
        return self._log.wait_idle(timeout)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        set_no_delay(writer)
        record = self._log.start(writer.get_extra_info("peername"))
        session = _Session(self, reader, writer, record)
        try:
            await session.run()
        finally:
            session.release()
            self._log.finish(record, session.end or "disconnect")


class _Session:
    """One POP3 connection (RFC 1939 states AUTHORIZATION, TRANSACTION, UPDATE)."""

    def __init__(
        self,
        server: POP3Server,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        record: SessionRecord,
    ) -> None:
        self.server = server
        self.reader = reader
        self.writer = writer
        self.record = record
        self.state: _State = "authorization"
        self.tls = writer.get_extra_info("ssl_object") is not None
        self.pending_user: str | None = None
        self.maildrop: Maildrop | None = None
        self.folder: Folder | None = None
        self.messages: list[StoredMessage] = []
        self.deleted: set[int] = set()
        self.retrieved: set[int] = set()
        self.end: str | None = None
        self.banner = (
            f"<{os.getpid()}.{next(_banner_counter)}.{int(time.time())}@{server.hostname}>"
        )

    # -- plumbing --------------------------------------------------------------------------
    async def send(self, line: str) -> None:
        self.record.server(line)
        self.writer.write(line.encode("utf-8") + b"\r\n")
        await self.writer.drain()

    async def send_multi(self, status: str, lines: list[str]) -> None:
        """A multi-line response of short lines (CAPA, LIST, UIDL), each recorded."""
        self.record.server(status)
        for line in lines:
            self.record.server(line)
        self.record.server(".")
        body = "".join(f".{ln}\r\n" if ln.startswith(".") else f"{ln}\r\n" for ln in lines)
        self.writer.write(f"{status}\r\n{body}.\r\n".encode())
        await self.writer.drain()

    async def send_data(self, status: str, data: bytes) -> None:
        """A message (or part of one), dot-stuffed; the transcript gets a summary."""
        self.record.server(status)
        self.record.server(f"[{len(data)} octets of message data]")
        self.record.server(".")
        stuffed = data.replace(b"\r\n.", b"\r\n..")
        if stuffed.startswith(b"."):
            stuffed = b"." + stuffed
        if stuffed and not stuffed.endswith(b"\r\n"):
            stuffed += b"\r\n"
        self.writer.write(status.encode("utf-8") + b"\r\n" + stuffed + b".\r\n")
        await self.writer.drain()

    async def readline(self) -> bytes | None:
        """The next line, or None at EOF, idle timeout or an over-long line."""
        try:
            return await asyncio.wait_for(self.reader.readline(), self.server.timeout)
        except asyncio.TimeoutError:
            self.end = "timeout"
            await self.send("-ERR [SYS/TEMP] Autologout: idle for too long")
            return None
        except ValueError:
            self.end = "error"
            await self.send(f"-ERR Line too long (more than {MAX_LINE} octets)")
            return None

    def release(self) -> None:
        if self.maildrop is not None:
            self.maildrop.unlock(self)

    async def run(self) -> None:
        if self.tls:
            self.record.set_tls(self.writer, "implicit")
        await self.send(f"+OK {self.server.hostname} POP3 server ready {self.banner}")
        while self.end is None:
            raw = await self.readline()
            if raw is None:
                break
            if not raw:
                self.end = "disconnect"
                break
            line = raw.rstrip(b"\r\n").decode("utf-8", "replace")
            name, _, arg = line.partition(" ")
            name = name.upper()
            if name == "PASS":
                self.record.client(mask_words(line, 1))
            elif name in ("APOP", "AUTH"):
                self.record.client(mask_words(line, 2))
            else:
                self.record.client(line)
            handler = _COMMANDS.get(name)
            if handler is None:
                await self.send(f"-ERR Unknown command {name[:40]!r}")
                continue
            await handler(self, arg)

    # -- AUTHORIZATION state ---------------------------------------------------------------
    async def _may_log_in(self) -> bool:
        """True in the AUTHORIZATION state with TLS as required; else False after the error."""
        if self.state != "authorization":
            await self.send("-ERR Already logged in")
            return False
        if self.server.require_tls and not self.tls:
            await self.send(
                "-ERR [AUTH] Plaintext authentication disallowed on a connection without "
                "TLS: use STLS first"
            )
            return False
        return True

    async def pop3_capa(self, arg: str) -> None:
        lines = ["TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING"]
        if self.state == "authorization":
            if not (self.server.require_tls and not self.tls):
                lines += ["USER", "SASL PLAIN"]
            if self.server.tls == "starttls" and not self.tls:
                lines.append("STLS")
        lines += ["EXPIRE NEVER", "IMPLEMENTATION pytest_smtp"]
        await self.send_multi("+OK Capability list follows", lines)

    async def pop3_user(self, arg: str) -> None:
        if not await self._may_log_in():
            return
        name = arg.strip()
        if not name:
            await self.send("-ERR USER needs a user name (the maildrop address)")
            return
        self.pending_user = name
        await self.send(f"+OK Send the password of {name[:100]}")

    async def pop3_pass(self, arg: str) -> None:
        if not await self._may_log_in():
            return
        user, self.pending_user = self.pending_user, None
        if user is None:
            await self.send("-ERR Send USER first")
            return
        await self.login(user, "USER", arg)

    async def pop3_apop(self, arg: str) -> None:
        if not await self._may_log_in():
            return
        self.pending_user = None
        user, _, digest = arg.strip().rpartition(" ")
        if not user or not _HEX_DIGEST.fullmatch(digest):
            await self.send("-ERR Usage: APOP <user> <32 hex digit MD5 digest>")
            return
        if self.server.auth == "any":
            accepted = self.server.check_login(user, "")
        else:
            password = self.server.password_of(user)
            expected = ""
            if password is not None:
                expected = hashlib.md5(
                    (self.banner + password).encode("utf-8"), usedforsecurity=False
                ).hexdigest()
            accepted = password is not None and hmac.compare_digest(expected, digest.lower())
        if not accepted:
            await self.fail_login()
            return
        await self.login(user, "APOP")

    async def pop3_auth(self, arg: str) -> None:
        words = arg.split()
        if not words:
            # RFC 1734 clients ask for the mechanism list with a bare AUTH.
            await self.send_multi("+OK Supported mechanisms follow", ["PLAIN"])
            return
        if not await self._may_log_in():
            return
        self.pending_user = None
        if words[0].upper() != "PLAIN":
            await self.send(f"-ERR Unsupported SASL mechanism {words[0][:40]!r}: use PLAIN")
            return
        if len(words) > 2:
            await self.send("-ERR Usage: AUTH PLAIN [initial-response]")
            return
        if len(words) == 2:
            response = "" if words[1] == "=" else words[1]
        else:
            await self.send("+ ")
            raw = await self.readline()
            if raw is None or not raw:
                self.end = self.end or "disconnect"
                return
            response = raw.rstrip(b"\r\n").decode("utf-8", "replace")
            self.record.client(response, secret=response != "*")
            if response == "*":
                await self.send("-ERR Authentication cancelled")
                return
        try:
            authzid, user, password = decode_plain(response)
        except AuthSyntaxError as exc:
            await self.send(f"-ERR [AUTH] {exc}")
            self.record.failed_logins += 1
            return
        if authzid and authzid != user:
            await self.send(
                f"-ERR [AUTH] Authorization identity {authzid[:100]!r} differs from the user "
                f"name: logging in as another user is not supported"
            )
            self.record.failed_logins += 1
            return
        await self.login(user, "PLAIN", password)

    async def pop3_stls(self, arg: str) -> None:
        if self.tls:
            await self.send("-ERR Command not permitted when TLS active")
            return
        if self.server.tls != "starttls":
            await self.send(
                "-ERR STLS is not offered: the server was started without tls='starttls'"
            )
            return
        if self.state != "authorization":
            await self.send("-ERR STLS is only allowed before login")
            return
        await self.send("+OK Begin TLS negotiation")
        try:
            discarded = await self.server.start_session_tls(self.reader, self.writer)
        except (ssl.SSLError, OSError, asyncio.TimeoutError) as exc:
            self.record.note(f"TLS handshake failed: {exc!r}")
            self.end = "tls-failed"
            return
        if discarded:
            self.record.note(f"discarded {discarded} octets sent before the TLS handshake")
        self.tls = True
        self.pending_user = None
        self.record.set_tls(self.writer, "starttls")

    async def fail_login(self) -> None:
        self.record.failed_logins += 1
        await self.send("-ERR [AUTH] Invalid user name or password")

    async def login(self, user: str, mechanism: str, password: str | None = None) -> None:
        """Open ``user``'s maildrop (TRANSACTION state), after checking ``password`` when one
        is given (APOP checks its digest itself); an error reply when that fails."""
        if password is not None and not self.server.check_login(user, password):
            await self.fail_login()
            return
        try:
            maildrop = self.server.store.maildrop(user)
        except ValueError:
            await self.fail_login()
            return
        if not maildrop.try_lock(self):
            await self.send(
                f"-ERR [IN-USE] The maildrop of {maildrop.address} is in use by another session"
            )
            return
        self.maildrop = maildrop
        self.folder = maildrop.inbox
        # RFC 1939: message numbers are fixed for the session; later deliveries are not shown.
        self.messages = self.folder.messages
        self.state = "transaction"
        self.record.user = normalize_address(user)
        self.record.mechanism = mechanism
        count, size = len(self.messages), sum(m.size for m in self.messages)
        await self.send(f"+OK {maildrop.address} has {count} messages ({size} octets)")

    # -- TRANSACTION state -----------------------------------------------------------------
    async def _in_transaction(self) -> bool:
        if self.state != "transaction":
            await self.send("-ERR Log in first (USER/PASS, APOP or AUTH PLAIN)")
            return False
        return True

    async def _message_number(self, word: str) -> int | None:
        """0-based index of an undeleted message, or None after an error reply."""
        if not _NUMBER.fullmatch(word):
            await self.send(
                f"-ERR Invalid message number {word[:40]!r}: expected 1..{len(self.messages)}"
            )
            return None
        number = int(word)
        if not 1 <= number <= len(self.messages):
            await self.send(
                f"-ERR No such message {number}: maildrop has {len(self.messages)} messages"
            )
            return None
        if number - 1 in self.deleted:
            await self.send(f"-ERR Message {number} is deleted")
            return None
        return number - 1

    def _live(self) -> list[tuple[int, StoredMessage]]:
        return [(i, m) for i, m in enumerate(self.messages) if i not in self.deleted]

    def _unique_id(self, message: StoredMessage) -> str:
        assert self.folder is not None
        return f"{self.folder.uidvalidity}.{message.uid}"

    async def pop3_noop(self, arg: str) -> None:
        if await self._in_transaction():
            await self.send("+OK")

    async def pop3_stat(self, arg: str) -> None:
        if not await self._in_transaction():
            return
        live = self._live()
        await self.send(f"+OK {len(live)} {sum(m.size for _, m in live)}")

    async def _listing(self, arg: str, value: Callable[[StoredMessage], str]) -> None:
        if not await self._in_transaction():
            return
        words = arg.split()
        if len(words) > 1:
            await self.send("-ERR Expected at most one message number")
        elif words:
            index = await self._message_number(words[0])
            if index is not None:
                await self.send(f"+OK {index + 1} {value(self.messages[index])}")
        else:
            live = self._live()
            size = sum(m.size for _, m in live)
            await self.send_multi(
                f"+OK {len(live)} messages ({size} octets)",
                [f"{i + 1} {value(m)}" for i, m in live],
            )

    async def pop3_list(self, arg: str) -> None:
        await self._listing(arg, lambda m: str(m.size))

    async def pop3_uidl(self, arg: str) -> None:
        await self._listing(arg, self._unique_id)

    async def _numbered(
        self, arg: str, usage: str, counts: int = 0
    ) -> tuple[int, list[int]] | None:
        """The argument of RETR, TOP and DELE: a message number (0-based index of an undeleted
        message) and ``counts`` more numbers; None after the error reply (not logged in, wrong
        arguments: ``-ERR Usage: <usage>``, no such message)."""
        if not await self._in_transaction():
            return None
        words = arg.split()
        if len(words) != 1 + counts or not all(_NUMBER.fullmatch(w) for w in words[1:]):
            await self.send(f"-ERR Usage: {usage}")
            return None
        index = await self._message_number(words[0])
        if index is None:
            return None
        return index, [int(w) for w in words[1:]]

    async def pop3_retr(self, arg: str) -> None:
        found = await self._numbered(arg, "RETR <message number>")
        if found is None:
            return
        index = found[0]
        message = self.messages[index]
        self.retrieved.add(index)
        await self.send_data(f"+OK {message.size} octets", message.raw)

    async def pop3_top(self, arg: str) -> None:
        found = await self._numbered(arg, "TOP <message number> <number of body lines>", 1)
        if found is None:
            return
        index, (lines,) = found
        await self.send_data("+OK Top of message follows", _top(self.messages[index].raw, lines))

    async def pop3_dele(self, arg: str) -> None:
        found = await self._numbered(arg, "DELE <message number>")
        if found is None:
            return
        index = found[0]
        self.deleted.add(index)
        await self.send(f"+OK Message {index + 1} deleted")

    async def pop3_rset(self, arg: str) -> None:
        if not await self._in_transaction():
            return
        self.deleted.clear()
        # RSET also forgets what was retrieved: nothing is marked \Seen after it.
        self.retrieved.clear()
        count, size = len(self.messages), sum(m.size for m in self.messages)
        await self.send(f"+OK Maildrop has {count} messages ({size} octets)")

    async def pop3_quit(self, arg: str) -> None:
        if self.state == "authorization":
            self.end = self.record.end = "quit"
            await self.send(f"+OK {self.server.hostname} POP3 server signing off")
            return
        # UPDATE state (RFC 1939 section 6): the only place the maildrop changes.
        assert self.folder is not None
        folder = self.folder
        deleted_uids = [self.messages[i].uid for i in self.deleted]
        with self.server.store.lock:
            folder.remove(deleted_uids)
            for index in self.retrieved - self.deleted:
                uid = self.messages[index].uid
                if folder.get(uid) is not None:
                    folder.set_flags(uid, ["\\Seen"], "add")
            left = len(folder)
        self.release()
        self.maildrop = None
        self.end = self.record.end = "quit"
        await self.send(
            f"+OK {self.server.hostname} POP3 server signing off ({left} messages left)"
        )


# One handler per command, called as handler(session, argument) (the style of smtp/protocol.py).
_COMMANDS = {
    "CAPA": _Session.pop3_capa,
    "QUIT": _Session.pop3_quit,
    "USER": _Session.pop3_user,
    "PASS": _Session.pop3_pass,
    "APOP": _Session.pop3_apop,
    "AUTH": _Session.pop3_auth,
    "STLS": _Session.pop3_stls,
    "NOOP": _Session.pop3_noop,
    "STAT": _Session.pop3_stat,
    "LIST": _Session.pop3_list,
    "UIDL": _Session.pop3_uidl,
    "RETR": _Session.pop3_retr,
    "TOP": _Session.pop3_top,
    "DELE": _Session.pop3_dele,
    "RSET": _Session.pop3_rset,
}


def _top(raw: bytes, lines: int) -> bytes:
    """The header, the blank line and the first ``lines`` lines of the body (RFC 1939 TOP)."""
    if raw.startswith(b"\r\n"):
        head_end = 0
    else:
        blank = raw.find(b"\r\n\r\n")
        if blank < 0:
            return raw
        head_end = blank + 2
    head = raw[: head_end + 2]
    body = raw[head_end + 2 :]
    position = 0
    for _ in range(lines):
        end = body.find(b"\r\n", position)
        if end < 0:
            position = len(body)
            break
        position = end + 2
    return head + body[:position]
