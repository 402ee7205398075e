"""The IMAP4rev1 server (RFC 3501) over a :class:`~pytest_smtp.store.MailStore`.

``IMAPServer`` lives on the engine's loop like every other server; a connection is one
:class:`_Session` coroutine. It speaks IMAP4rev1 as real clients use it (imaplib, imapclient,
imap-tools, aioimaplib, Thunderbird-style folder handling) plus IDLE (RFC 2177), UIDPLUS
(RFC 4315), MOVE (RFC 6851), LITERAL+ (RFC 7888), SASL-IR (RFC 4959), NAMESPACE, UNSELECT, ID
and CHILDREN. The user name that logs in is the address of the maildrop the session opens.

Changes made by others (an SMTP delivery, the test calling ``store.deliver``, another IMAP
session) reach a session through the store's events: they mark it dirty and wake an IDLE on
the engine loop; the untagged ``EXISTS``/``EXPUNGE``/``FETCH`` responses are computed from the
difference between what the client was told and the folder now.

This module never imports pytest. See docs/explanation/imap-implementation.md for why it is
written here rather than built on pymap.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterable
from typing import Literal

from pytest_smtp.retrieval.common import (
    RecordingServer,
    SessionRecord,
    mask_words,
)
from pytest_smtp.retrieval.imap_fetch import parse_fetch, render_fetch
from pytest_smtp.retrieval.imap_proto import (
    Atom,
    Command,
    ImapSyntaxError,
    SequenceSet,
    Value,
    astring,
    decode_mailbox,
    encode_mailbox,
    format_sequence,
    literal_length,
    parse_command,
    parse_date_time,
    quote,
)
from pytest_smtp.retrieval.imap_search import SUPPORTED_CHARSETS, SearchContext, parse_search
from pytest_smtp.sasl import AuthSyntaxError, decode_plain
from pytest_smtp.store import (
    HIERARCHY_DELIMITER,
    SYSTEM_FLAGS,
    Folder,
    FolderNotFound,
    Maildrop,
    StoredMessage,
    StoreEvent,
    normalize_flag,
)

__all__ = ["IMAPServer"]

#: Largest literal accepted (APPEND of a big message); larger ones are refused.
MAX_LITERAL = 64 * 1024 * 1024
#: Longest command line (without literals).
MAX_LINE = 1024 * 1024
#: RFC 3501 5.4: the autologout timer must be at least 30 minutes.
DEFAULT_TIMEOUT = 1800.0

_SELECTABLE_FLAGS = b"(" + b" ".join(f.encode() for f in SYSTEM_FLAGS) + b")"
_DELIM = HIERARCHY_DELIMITER
_QUICKACK: int | None = getattr(socket, "TCP_QUICKACK", None)


class _Reply(Exception):
    """Ends a command with a tagged ``NO`` or ``BAD`` (``text`` may start with ``[CODE]``)."""

    def __init__(self, status: Literal["NO", "BAD"], text: str) -> None:
        super().__init__(text)
        self.status = status
        self.text = text


def _no(text: str) -> _Reply:
    return _Reply("NO", text)


def _bad(text: str) -> _Reply:
    return _Reply("BAD", text)


class _Disconnect(Exception):
    """The session must end now (LOGOUT done, line too long, TLS failure)."""


class _TaggedReply(Exception):
    """A command refused before it was parsed (a literal too large): tag and reply."""

    def __init__(self, tag: str, text: str) -> None:
        super().__init__(text)
        self.tag = tag
        self.text = text


class _AlreadyAnswered(Exception):
    """The handler sent its own tagged response (STARTTLS answers before the handshake)."""


_TAG = re.compile(rb'[^\x00-\x20\x7f(){%*"\\+]+')


def _flag_sort_key(flag: str) -> tuple[int, str]:
    return (0 if flag.startswith("\\") else 1, flag)


def _mailbox_arg(value: Value, what: str = "mailbox name") -> str:
    name = decode_mailbox(astring(value, what))
    if name.upper() == "INBOX":
        return "INBOX"
    return name.rstrip(_DELIM) if len(name) > 1 else name


def _wire_name(name: str) -> bytes:
    return quote(encode_mailbox(name))


def _list_regex(pattern: str) -> re.Pattern[str]:
    out = []
    for ch in pattern:
        if ch == "*":
            out.append(".*")
        elif ch == "%":
            out.append(f"[^{re.escape(_DELIM)}]*")
        else:
            out.append(re.escape(ch))
    return re.compile("".join(out) + r"\Z", re.DOTALL)


# -- the server ----------------------------------------------------------------------------------


class IMAPServer(RecordingServer):
    """An IMAP4rev1 server over a :class:`~pytest_smtp.store.MailStore`, on the engine's loop.

    ``with IMAPServer(store) as server: imaplib.IMAP4(*server.address)``. The login name is
    the address of the maildrop to open; ``auth="any"`` (the default) lets every user in with
    any password, ``auth={"bob@example.org": "secret"}`` checks them (a wrong one gets
    ``NO [AUTHENTICATIONFAILED]``). ``tls="starttls"`` offers STARTTLS, ``tls="implicit"``
    speaks TLS from the first byte (IMAPS); the certificate (for ``hostname``, default
    ``smtp.pytest-smtp.test`` as on ``SMTPServer``) is issued by ``ca`` (a
    :class:`~pytest_smtp.smtp.tls.TestCA`, default the process's test CA; ``ssl_context=`` is a
    deprecated alternative). Options are checked as ``SMTPServer``'s. ``require_tls=True``
    advertises ``LOGINDISABLED`` and refuses LOGIN and AUTHENTICATE until STARTTLS. Every
    connection is recorded in :attr:`sessions` with its transcript (passwords masked).
    """

    protocol = "IMAP"
    max_line = MAX_LINE
    default_timeout = DEFAULT_TIMEOUT

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        record = self._log.start(writer.get_extra_info("peername"))
        session = _Session(self, reader, writer, record)
        try:
            await session.run()
        except asyncio.CancelledError:
            record.close("server stopped")
            raise
        except (ConnectionError, asyncio.IncompleteReadError):
            record.close("disconnect")
        except Exception:
            record.note(self._record_error("IMAPServer: unhandled error in a session"))
            record.close("error")
        finally:
            session.cleanup()
            record.close("disconnect")


# -- one connection ------------------------------------------------------------------------------

_State = Literal["nonauth", "auth", "selected", "logout"]
_Handler = Callable[["_Session", Command], Awaitable[str]]

# Commands per state (RFC 3501 section 3); "any" commands work everywhere.
_ANY = {"CAPABILITY", "NOOP", "LOGOUT", "ID"}
_NONAUTH = {"STARTTLS", "LOGIN", "AUTHENTICATE"}
_AUTH = {
    "SELECT",
    "EXAMINE",
    "CREATE",
    "DELETE",
    "RENAME",
    "SUBSCRIBE",
    "UNSUBSCRIBE",
    "LIST",
    "LSUB",
    "STATUS",
    "APPEND",
    "NAMESPACE",
    "IDLE",
}
_SELECTED = {
    "CHECK",
    "CLOSE",
    "UNSELECT",
    "EXPUNGE",
    "SEARCH",
    "FETCH",
    "STORE",
    "COPY",
    "MOVE",
    "UID",
}
# RFC 3501 7.4.1: no EXPUNGE response while answering FETCH, STORE or SEARCH (by number).
_NO_EXPUNGE = {"FETCH", "STORE", "SEARCH"}


class _Session:
    """The state of one IMAP connection; :meth:`run` serves it until LOGOUT or EOF."""

    def __init__(
        self,
        server: IMAPServer,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        record: SessionRecord,
    ) -> None:
        self.server = server
        self.store = server.store
        self.reader = reader
        self.writer = writer
        self.record = record
        self.loop = asyncio.get_running_loop()
        self.state: _State = "nonauth"
        self.secure = server.tls == "implicit"
        self.maildrop: Maildrop | None = None
        self.folder: Folder | None = None
        self.readonly = False
        self.view: list[int] = []  # UIDs in the sequence order the client knows
        self.known_flags: dict[int, set[str]] = {}
        self.recent: set[int] = set()
        self.uid_high = 0  # highest UID the client was told about
        self.dirty = False
        self.wake: asyncio.Event | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self.keywords: set[str] = set()  # keywords announced in the last FLAGS response
        self._out = bytearray()
        if self.secure:
            record.set_tls(writer, "implicit")

    # -- plumbing ------------------------------------------------------------------------------

    def send(self, data: bytes) -> None:
        """Queue a response (CRLF appended) and record its first line in the transcript."""
        # One write per command: several small writes meet Nagle and delayed ACK (40 ms).
        self._out += data
        self._out += b"\r\n"
        # Only the first line of a response with literals goes into the transcript.
        end = data.find(b"\r\n")
        head = data if end < 0 else data[:end]
        text = head[:300].decode("utf-8", "replace")
        if end >= 0 or len(head) > 300:
            text += f" ... [{len(data)} octets in all]"
        self.record.server(text)

    def quick_ack(self) -> None:
        # imaplib sends a literal and its closing CRLF in two writes: with Nagle on the client
        # and a delayed ACK here, the CRLF waits 40 ms. Acknowledge at once (Linux only).
        sock = self.writer.get_extra_info("socket")
        if _QUICKACK is not None and sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)

    async def flush(self) -> None:
        if self._out:
            self.writer.write(bytes(self._out))
            self._out.clear()
        await self.writer.drain()

    def capabilities(self) -> str:
        caps = [
            "IMAP4rev1",
            "LITERAL+",
            "SASL-IR",
            "IDLE",
            "UIDPLUS",
            "MOVE",
            "NAMESPACE",
            "UNSELECT",
            "ID",
            "CHILDREN",
        ]
        if self.state == "nonauth":
            if self.server.tls == "starttls" and not self.secure:
                caps.append("STARTTLS")
            if self.server.require_tls and not self.secure:
                caps.append("LOGINDISABLED")
            else:
                caps.append("AUTH=PLAIN")
        return " ".join(caps)

    async def readline(self) -> bytes:
        try:
            line = await asyncio.wait_for(self.reader.readline(), self.server.timeout)
        except asyncio.TimeoutError:
            self.send(b"* BYE Autologout: no command for %d seconds" % self.server.timeout)
            await self.flush()
            self.record.close("timeout")
            raise _Disconnect from None
        except (ValueError, asyncio.LimitOverrunError):
            self.send(b"* BYE Command line too long (limit %d octets)" % MAX_LINE)
            await self.flush()
            self.record.close("error")
            raise _Disconnect from None
        if not line.endswith(b"\n"):
            raise _Disconnect
        return line

    async def read_command(self) -> tuple[bytes, str]:
        """One complete command (literals included) and its transcript form."""
        line = await self.readline()
        chunks = [line]
        shown = [line.rstrip(b"\r\n").decode("utf-8", "replace")]
        total = len(line)
        while (announced := literal_length(line)) is not None:
            size, synchronising = announced
            if size > MAX_LITERAL or total + size > MAX_LITERAL:
                if synchronising:
                    tag = line.split(b" ", 1)[0].decode("ascii", "replace")
                    raise _TaggedReply(tag, f"NO [TOOBIG] literal of {size} octets refused")
                self.send(b"* BYE literal of %d octets is larger than %d" % (size, MAX_LITERAL))
                await self.flush()
                raise _Disconnect
            if synchronising:
                self.send(b"+ Ready for literal data")
                await self.flush()
                self.quick_ack()
            data = await self.reader.readexactly(size)
            line = await self.readline()
            chunks += [data, line]
            total += size + len(line)
            shown[-1] += f" [{size} octets]"
            shown.append(line.rstrip(b"\r\n").decode("utf-8", "replace"))
        return b"".join(chunks), "".join(shown)

    # -- main loop -----------------------------------------------------------------------------

    async def run(self) -> None:
        """Greet, then serve commands until LOGOUT, EOF or a fatal error."""
        self.send(
            b"* OK [CAPABILITY %s] %s IMAP4rev1 pytest_smtp ready"
            % (self.capabilities().encode(), self.server.hostname.encode())
        )
        await self.flush()
        while self.state != "logout":
            try:
                data, shown = await self.read_command()
            except _Disconnect:
                return
            except _TaggedReply as reply:
                self.record.client(reply.tag + " ...")
                self.send(f"{reply.tag} {reply.text}".encode())
                await self.flush()
                continue
            try:
                await self.execute(data, shown)
            except _Disconnect:
                return
            await self.flush()

    async def execute(self, data: bytes, shown: str) -> None:
        try:
            cmd = parse_command(data)
        except ImapSyntaxError as exc:
            self.record.client(shown)
            first = data.split(b" ", 1)[0]
            tag = first.decode("ascii") if b" " in data and _TAG.fullmatch(first) else "*"
            self.send(f"{tag} BAD {exc}".encode("utf-8", "replace"))
            return
        if cmd.name == "LOGIN" or (cmd.name == "AUTHENTICATE" and len(cmd.args) > 1):
            self.record.client(mask_words(shown, 3))
        else:
            self.record.client(shown)
        name = cmd.name
        sub = name
        if name == "UID":
            if not cmd.args or not isinstance(cmd.args[0], Atom):
                self.send(
                    f"{cmd.tag} BAD UID needs a command: FETCH, SEARCH, STORE, COPY, "
                    "MOVE or EXPUNGE".encode()
                )
                return
            sub = "UID " + cmd.args[0].upper()
        handler = _COMMANDS.get(sub)
        if handler is None:
            self.send(f"{cmd.tag} BAD unknown command {sub}".encode("utf-8", "replace"))
            return
        problem = self.state_problem(name)
        if problem:
            self.send(f"{cmd.tag} BAD {problem}".encode())
            return
        status: str = "OK"
        try:
            text = await handler(self, cmd)
        except _Reply as reply:
            status, text = reply.status, reply.text
        except ImapSyntaxError as exc:
            status, text = "BAD", f"{sub}: {exc}" if not str(exc).startswith(sub) else str(exc)
        except _AlreadyAnswered:
            return
        except (_Disconnect, ConnectionError, asyncio.CancelledError):
            raise
        except Exception:
            self.record.note(self.server._record_error(f"IMAPServer: error in {sub}"))
            status, text = "NO", f"[SERVERBUG] internal error in {sub} (see server.errors)"
        if self.state == "selected" and sub != "LOGOUT":
            self.report_changes(allow_expunge=name not in _NO_EXPUNGE)
        self.send(f"{cmd.tag} {status} {text}".encode("utf-8", "replace"))
        if self.state == "logout":
            await self.flush()
            raise _Disconnect

    def state_problem(self, name: str) -> str | None:
        if name in _ANY:
            return None
        if name in _NONAUTH:
            return None if self.state == "nonauth" else f"{name}: already logged in"
        if self.state == "nonauth":
            return f"{name} is only valid after LOGIN or AUTHENTICATE"
        if name in _SELECTED and self.state != "selected":
            return f"{name}: no mailbox selected (use SELECT or EXAMINE first)"
        return None

    def cleanup(self) -> None:
        """Drop the store subscription (called when the connection ends)."""
        self.deselect()

    # -- selected-folder bookkeeping -----------------------------------------------------------

    def on_store_event(self, event: StoreEvent) -> None:
        # Runs in whichever thread changed the store, with the store's lock held.
        folder = self.folder
        if folder is None or event.address != folder.address or event.folder != folder.name:
            return
        self.dirty = True
        wake = self.wake
        if wake is not None:
            self.loop.call_soon_threadsafe(wake.set)

    def select(self, folder: Folder, readonly: bool) -> None:
        self.deselect()
        self.folder = folder
        self.readonly = readonly
        self.state = "selected"
        self._unsubscribe = self.store.subscribe(self.on_store_event)
        with self.store.lock:
            messages = folder.messages
            for m in messages:
                if m.recent and not readonly:
                    m.recent = False
                    self.recent.add(m.uid)
        self.view = [m.uid for m in messages]
        self.known_flags = {m.uid: m.flags for m in messages}
        self.uid_high = messages[-1].uid if messages else 0
        if readonly:
            self.recent = {m.uid for m in messages if m.recent}

    def deselect(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        self.folder = None
        self.view = []
        self.known_flags = {}
        self.recent = set()
        self.keywords = set()
        self.dirty = False
        if self.state == "selected":
            self.state = "auth"

    def report_changes(self, allow_expunge: bool = True) -> None:
        """Send EXPUNGE/EXISTS/RECENT/FETCH FLAGS for what changed since the client last heard."""
        folder = self.folder
        if folder is None or not self.dirty:
            return
        self.dirty = False
        recent_before = len(self.recent)
        with self.store.lock:
            current = folder.messages
            new = [m for m in current if m.uid > self.uid_high]
            if not self.readonly:
                for m in new:
                    if m.recent:
                        m.recent = False
                        self.recent.add(m.uid)
            elif new:
                self.recent.update(m.uid for m in new if m.recent)
        present = {m.uid: m for m in current}
        if allow_expunge:
            gone = [i for i, uid in enumerate(self.view) if uid not in present]
            for index in reversed(gone):
                self.send(b"* %d EXPUNGE" % (index + 1))
            if gone:
                removed = {self.view[i] for i in gone}
                self.view = [uid for uid in self.view if uid not in removed]
                for uid in removed:
                    self.known_flags.pop(uid, None)
                    self.recent.discard(uid)
        elif any(uid not in present for uid in self.view):
            self.dirty = True  # report the expunges after a later command
        changes: list[tuple[int, StoredMessage]] = []
        for seq, uid in enumerate(self.view, 1):
            changed = present.get(uid)
            if changed is None:
                continue
            known = self.known_flags.get(uid)
            # The store replaces a flag set on change, never mutates it: identity is a cheap
            # first test.
            if known is not changed.flags and known != changed.flags:
                changes.append((seq, changed))
        # A keyword set by someone else (another session, a delivery) is announced before the
        # FETCH or EXISTS that shows it.
        self.announce_keywords(f for _, m in changes for f in m.flags)
        self.announce_keywords(f for m in new for f in m.flags)
        for seq, changed in changes:
            self.known_flags[changed.uid] = changed.flags
            self.send(b"* %d FETCH (FLAGS %s)" % (seq, self.flags_bytes(changed)))
        if new:
            self.view.extend(m.uid for m in new)
            for m in new:
                self.known_flags[m.uid] = m.flags
            self.uid_high = new[-1].uid
            self.send(b"* %d EXISTS" % len(self.view))
            self.send(b"* %d RECENT" % len(self.recent))
        elif len(self.recent) != recent_before:
            # Expunged \Recent messages change the count; Dovecot reports it (RFC 3501 7.3.2).
            self.send(b"* %d RECENT" % len(self.recent))

    def flag_list(self) -> bytes:
        """The ``FLAGS`` list: the system flags, then the keywords the client was told of."""
        keywords = sorted(self.keywords)
        return _SELECTABLE_FLAGS[:-1] + b"".join(b" " + k.encode() for k in keywords) + b")"

    def announce_keywords(self, flags: Iterable[str]) -> None:
        """Send ``* FLAGS`` (and ``PERMANENTFLAGS``) when ``flags`` hold a keyword new to the
        client, so one that caches the FLAGS list learns it exists (as Dovecot does)."""
        fresh = {f for f in flags if not f.startswith("\\")} - self.keywords
        if not fresh:
            return
        self.keywords |= fresh
        flag_list = self.flag_list()
        self.send(b"* FLAGS " + flag_list)
        if self.readonly:
            self.send(b"* OK [PERMANENTFLAGS ()] read-only mailbox")
        else:
            self.send(b"* OK [PERMANENTFLAGS " + flag_list[:-1] + b" \\*)] flags permitted")

    def flags_bytes(self, message: StoredMessage) -> bytes:
        flags = sorted(message.flags, key=_flag_sort_key)
        if message.uid in self.recent:
            flags.insert(0, "\\Recent")
        return b"(" + " ".join(flags).encode("utf-8", "replace") + b")"

    def require_folder(self) -> Folder:
        if self.folder is None:
            raise _bad("no mailbox selected")
        return self.folder

    def require_writable(self, what: str) -> Folder:
        folder = self.require_folder()
        if self.readonly:
            raise _no(f"[READ-ONLY] {what} is not allowed: the mailbox was opened with EXAMINE")
        return folder

    def resolve(self, text: str, uid: bool) -> list[tuple[int, int]]:
        """``(seq, uid)`` pairs a sequence set (or UID set) names, in sequence order."""
        seqs = SequenceSet.parse(text)
        if uid:
            largest = self.view[-1] if self.view else 0
            wanted = set(seqs.select(self.view, largest))
            return [(i, u) for i, u in enumerate(self.view, 1) if u in wanted]
        count = len(self.view)
        for lo, hi in seqs.ranges:
            for bound in (lo, hi):
                if bound is not None and bound > count:
                    raise _bad(
                        f"invalid message sequence number {bound}: the mailbox has {count} "
                        f"message{'s' if count != 1 else ''}"
                    )
        numbers = seqs.select(range(1, count + 1), count)
        return [(seq, self.view[seq - 1]) for seq in numbers]

    def lookup(self, name: str) -> Folder:
        assert self.maildrop is not None
        try:
            return self.maildrop.folder(name)
        except FolderNotFound:
            raise _no(f"[NONEXISTENT] mailbox {name!r} does not exist") from None
        except ValueError as exc:
            raise _no(f"[CANNOT] {exc}") from None

    def login(self, user: str, mechanism: str) -> None:
        self.maildrop = self.store.maildrop(user)
        self.state = "auth"
        self.record.user = user
        self.record.mechanism = mechanism

    # -- commands (one method per command; _COMMANDS below maps the names) ------------------

    async def imap_capability(self, cmd: Command) -> str:
        _args(cmd, 0, "CAPABILITY")
        self.send(b"* CAPABILITY " + self.capabilities().encode())
        return "CAPABILITY completed"

    async def imap_noop(self, cmd: Command) -> str:
        _args(cmd, 0, cmd.name)
        return f"{cmd.name} completed"

    async def imap_logout(self, cmd: Command) -> str:
        _args(cmd, 0, "LOGOUT")
        self.send(b"* BYE " + self.server.hostname.encode() + b" logging out")
        self.deselect()
        self.state = "logout"
        self.record.close("logout")
        return "LOGOUT completed"

    async def imap_id(self, cmd: Command) -> str:
        self.send(b'* ID ("name" "pytest_smtp" "vendor" "pytest_smtp")')
        return "ID completed"

    async def imap_namespace(self, cmd: Command) -> str:
        _args(cmd, 0, "NAMESPACE")
        self.send(b'* NAMESPACE (("" ' + quote(_DELIM) + b")) NIL NIL")
        return "NAMESPACE completed"

    async def imap_starttls(self, cmd: Command) -> str:
        _args(cmd, 0, "STARTTLS")
        if self.server.tls != "starttls":
            raise _bad("STARTTLS is not offered by this server (tls is not 'starttls')")
        if self.secure:
            raise _bad("STARTTLS: TLS is already active")
        self.send(f"{cmd.tag} OK Begin TLS negotiation now".encode())
        await self.flush()
        try:
            dropped = await self.server.start_session_tls(self.reader, self.writer)
        except (ssl.SSLError, ConnectionError, OSError, asyncio.TimeoutError) as exc:
            self.record.note(f"TLS handshake failed: {exc!r}")
            self.record.close("error")
            raise _Disconnect from None
        self.secure = True
        self.record.set_tls(self.writer, "starttls")
        if dropped:
            self.record.note(f"discarded {dropped} octets pipelined before the TLS handshake")
        raise _AlreadyAnswered

    def check_login_allowed(self) -> None:
        """Raise ``NO [PRIVACYREQUIRED]`` while ``require_tls`` forbids a login."""
        if self.server.require_tls and not self.secure:
            raise _no("[PRIVACYREQUIRED] LOGIN and AUTHENTICATE are disabled until STARTTLS")

    def fail_login(self, user: str) -> _Reply:
        """Count and note a failed login; the reply to raise."""
        self.record.failed_logins += 1
        self.record.note(f"login failed for {user!r}")
        return _no("[AUTHENTICATIONFAILED] invalid credentials")

    async def imap_login(self, cmd: Command) -> str:
        user_v, password_v = _args(cmd, 2, "LOGIN user password")
        self.check_login_allowed()
        user = astring(user_v, "the user name")
        password = astring(password_v, "the password")
        if not self.server.check_login(user, password):
            raise self.fail_login(user)
        self.login(user, "LOGIN")
        return f"[CAPABILITY {self.capabilities()}] logged in as {user}"

    async def imap_authenticate(self, cmd: Command) -> str:
        args = _args(cmd, 1, "AUTHENTICATE PLAIN [initial-response]", at_least=True)
        if len(args) > 2:
            raise ImapSyntaxError("usage: AUTHENTICATE PLAIN [initial-response]")
        mechanism = astring(args[0], "the SASL mechanism").upper()
        if mechanism != "PLAIN":
            raise _no(f"[CANNOT] unsupported SASL mechanism {mechanism}: only PLAIN is offered")
        self.check_login_allowed()
        if len(args) == 2:
            response = astring(args[1], "the initial response")
            response = "" if response == "=" else response
        else:
            self.send(b"+ ")
            await self.flush()
            line = await self.readline()
            self.record.client(line.rstrip(b"\r\n").decode("ascii", "replace"), secret=True)
            response = line.strip().decode("ascii", "replace")
            if response == "*":
                raise _bad("AUTHENTICATE cancelled by the client")
        try:
            authzid, user, password = decode_plain(response)
        except AuthSyntaxError as exc:
            raise _bad(f"AUTHENTICATE PLAIN: {exc}") from None
        if authzid and authzid != user:
            self.record.failed_logins += 1
            raise _no(f"[AUTHORIZATIONFAILED] {user!r} may not act as {authzid!r}")
        if not self.server.check_login(user, password):
            raise self.fail_login(user)
        self.login(user, "PLAIN")
        return f"[CAPABILITY {self.capabilities()}] logged in as {user}"

    async def imap_select(self, cmd: Command) -> str:
        (name_v,) = _args(cmd, 1, f"{cmd.name} mailbox")
        name = _mailbox_arg(name_v)
        self.deselect()
        folder = self.lookup(name)
        readonly = cmd.name == "EXAMINE"
        self.select(folder, readonly)
        messages = folder.messages
        self.keywords = {f for m in messages for f in m.flags if not f.startswith("\\")}
        flag_list = self.flag_list()
        self.send(b"* FLAGS " + flag_list)
        if readonly:
            self.send(b"* OK [PERMANENTFLAGS ()] read-only mailbox")
        else:
            self.send(b"* OK [PERMANENTFLAGS " + flag_list[:-1] + b" \\*)] flags permitted")
        self.send(b"* %d EXISTS" % len(self.view))
        self.send(b"* %d RECENT" % len(self.recent))
        for seq, m in enumerate(messages, 1):
            if "\\Seen" not in m.flags:
                self.send(b"* OK [UNSEEN %d] first unseen message" % seq)
                break
        self.send(b"* OK [UIDVALIDITY %d] UIDs valid" % folder.uidvalidity)
        self.send(b"* OK [UIDNEXT %d] predicted next UID" % folder.uidnext)
        return f"[{'READ-ONLY' if readonly else 'READ-WRITE'}] {cmd.name} completed"

    async def imap_create(self, cmd: Command) -> str:
        (name_v,) = _args(cmd, 1, "CREATE mailbox")
        name = _mailbox_arg(name_v)
        assert self.maildrop is not None
        if name in self.maildrop:
            raise _no(f"[ALREADYEXISTS] mailbox {name!r} already exists")
        try:
            self.maildrop.create(name)
        except ValueError as exc:
            raise _no(f"[CANNOT] {exc}") from None
        return "CREATE completed"

    async def imap_delete(self, cmd: Command) -> str:
        (name_v,) = _args(cmd, 1, "DELETE mailbox")
        name = _mailbox_arg(name_v)
        assert self.maildrop is not None
        if name == "INBOX":
            raise _no("[CANNOT] INBOX cannot be deleted")
        folder = self.lookup(name)
        if self.folder is folder:
            self.deselect()
        self.maildrop.delete(name)
        return "DELETE completed"

    async def imap_rename(self, cmd: Command) -> str:
        old_v, new_v = _args(cmd, 2, "RENAME old-name new-name")
        old, new = _mailbox_arg(old_v), _mailbox_arg(new_v, "new mailbox name")
        assert self.maildrop is not None
        self.lookup(old)
        if new in self.maildrop:
            raise _no(f"[ALREADYEXISTS] mailbox {new!r} already exists")
        try:
            self.maildrop.rename(old, new)
        except ValueError as exc:
            raise _no(f"[CANNOT] {exc}") from None
        return "RENAME completed"

    async def imap_subscribe(self, cmd: Command) -> str:
        (name_v,) = _args(cmd, 1, f"{cmd.name} mailbox")
        folder = self.lookup(_mailbox_arg(name_v))
        folder.subscribed = cmd.name == "SUBSCRIBE"
        return f"{cmd.name} completed"

    async def imap_list(self, cmd: Command) -> str:
        ref_v, pattern_v = _args(cmd, 2, f"{cmd.name} reference pattern")
        reference = decode_mailbox(astring(ref_v, "the reference name"))
        pattern = decode_mailbox(astring(pattern_v, "the mailbox pattern"))
        delim = quote(_DELIM)
        if not pattern and cmd.name == "LIST":
            self.send(b"* LIST (\\Noselect) " + delim + b' ""')
            return "LIST completed"
        assert self.maildrop is not None
        folders = self.maildrop.folders
        names = [n for n, f in folders.items() if cmd.name == "LIST" or f.subscribed]
        existing = set(folders)
        implied: list[str] = []
        for name in names:
            pieces = name.split(_DELIM)
            for i in range(1, len(pieces)):
                parent = _DELIM.join(pieces[:i])
                if parent and parent not in existing and parent not in implied:
                    implied.append(parent)
        full = reference + pattern if not pattern.startswith(_DELIM) else pattern
        regex = _list_regex(full)
        inbox_regex = re.compile(regex.pattern, re.IGNORECASE | re.DOTALL)
        for name in [*names, *implied]:
            match = inbox_regex if name == "INBOX" else regex
            if not match.match(name):
                continue
            attrs: list[str] = []
            if name in implied:
                attrs.append("\\Noselect")
            if cmd.name == "LIST":
                prefix = name + _DELIM
                has_children = any(other.startswith(prefix) for other in existing)
                attrs.append("\\HasChildren" if has_children else "\\HasNoChildren")
            line = b"* %s (%s) %s %s" % (
                cmd.name.encode(),
                " ".join(attrs).encode(),
                delim,
                _wire_name(name),
            )
            self.send(line)
        return f"{cmd.name} completed"

    async def imap_status(self, cmd: Command) -> str:
        name_v, items_v = _args(
            cmd, 2, "STATUS mailbox (MESSAGES RECENT UIDNEXT UIDVALIDITY UNSEEN)"
        )
        name = _mailbox_arg(name_v)
        items = items_v if isinstance(items_v, list) else [items_v]
        wanted: list[str] = []
        for item in items:
            text = astring(item, "a STATUS item").upper()
            if text not in _STATUS_ITEMS:
                raise _bad(
                    f"STATUS: unknown item {text!r}; known items: {', '.join(_STATUS_ITEMS)}"
                )
            wanted.append(text)
        folder = self.lookup(name)
        messages = folder.messages
        values = {
            "MESSAGES": len(messages),
            "RECENT": sum(
                1 for m in messages if m.recent or (self.folder is folder and m.uid in self.recent)
            ),
            "UIDNEXT": folder.uidnext,
            "UIDVALIDITY": folder.uidvalidity,
            "UNSEEN": sum(1 for m in messages if "\\Seen" not in m.flags),
        }
        body = " ".join(f"{k} {values[k]}" for k in wanted)
        self.send(b"* STATUS " + _wire_name(folder.name) + b" (" + body.encode() + b")")
        return "STATUS completed"

    async def imap_append(self, cmd: Command) -> str:
        args = _args(cmd, 2, "APPEND mailbox [(flags)] [date-time] {literal}", at_least=True)
        if len(args) > 4:
            raise ImapSyntaxError("usage: APPEND mailbox [(flags)] [date-time] {literal}")
        name = _mailbox_arg(args[0])
        message = args[-1]
        if not isinstance(message, bytes):
            raise ImapSyntaxError("APPEND: the message must be a literal such as {310}")
        flags: list[str] = []
        internal_date = None
        for extra in args[1:-1]:
            if isinstance(extra, list):
                flags = _parse_flags(extra, "APPEND flags")
            else:
                internal_date = parse_date_time(astring(extra, "the APPEND date-time"))
        assert self.maildrop is not None
        try:
            folder = self.maildrop.folder(name)
        except FolderNotFound:
            raise _no(f"[TRYCREATE] mailbox {name!r} does not exist") from None
        stored = folder.append(message, flags, internal_date)
        return f"[APPENDUID {folder.uidvalidity} {stored.uid}] APPEND completed"

    async def imap_idle(self, cmd: Command) -> str:
        _args(cmd, 0, "IDLE")
        self.wake = asyncio.Event()
        self.send(b"+ idling")
        read = asyncio.ensure_future(self.readline())
        try:
            while True:
                self.wake.clear()
                if self.state == "selected":
                    self.report_changes()
                await self.flush()
                waiter = asyncio.ensure_future(self.wake.wait())
                done, _ = await asyncio.wait({read, waiter}, return_when=asyncio.FIRST_COMPLETED)
                if read in done:
                    waiter.cancel()
                    break
        finally:
            self.wake = None
            if not read.done():
                read.cancel()
        line = read.result()  # _Disconnect propagates: the client went away while idling
        self.record.client(line.rstrip(b"\r\n").decode("utf-8", "replace"))
        if line.strip().upper() != b"DONE":
            raise _bad(f"IDLE: expected DONE, got {line.strip()[:50]!r}")
        return "IDLE terminated"

    async def imap_close(self, cmd: Command) -> str:
        _args(cmd, 0, cmd.name)
        folder = self.require_folder()
        if cmd.name == "CLOSE" and not self.readonly:
            folder.expunge()
        self.deselect()
        return f"{cmd.name} completed"

    async def imap_expunge(self, cmd: Command) -> str:
        folder = self.require_writable("EXPUNGE")
        self.dirty = True
        if cmd.name == "UID":
            _, set_v = _args(cmd, 2, "UID EXPUNGE uid-set")
            pairs = self.resolve(astring(set_v, "the UID set"), uid=True)
            folder.expunge([uid for _, uid in pairs])
            return "UID EXPUNGE completed"
        _args(cmd, 0, "EXPUNGE")
        folder.expunge()
        return "EXPUNGE completed"

    async def imap_search(self, cmd: Command) -> str:
        uid_mode = cmd.name == "UID"
        args = cmd.args[1:] if uid_mode else cmd.args
        charset, predicate = parse_search(args)
        if charset is not None and charset not in SUPPORTED_CHARSETS:
            raise _no(
                f"[BADCHARSET ({' '.join(SUPPORTED_CHARSETS)})] unsupported charset {charset}"
            )
        folder = self.require_folder()
        max_seq = len(self.view)
        max_uid = self.view[-1] if self.view else 0
        hits: list[int] = []
        for seq, uid in enumerate(self.view, 1):
            message = folder.get(uid)
            if message is None:
                continue
            ctx = SearchContext(message, seq, max_seq, max_uid, uid in self.recent)
            if predicate(ctx):
                hits.append(uid if uid_mode else seq)
        self.send(b"* SEARCH" + b"".join(b" %d" % n for n in hits))
        return f"{'UID ' if uid_mode else ''}SEARCH completed"

    async def imap_fetch(self, cmd: Command) -> str:
        uid_mode = cmd.name == "UID"
        args = cmd.args[1:] if uid_mode else cmd.args
        request = parse_fetch(args, uid_mode)
        folder = self.require_folder()
        sets_seen = not self.readonly and request.sets_seen
        wants_flags = request.wants_flags
        for seq, uid in self.resolve(request.set_text, uid_mode):
            message = folder.get(uid)
            if message is None:
                continue  # expunged by another session; the EXPUNGE follows later
            add_flags = False
            if sets_seen and "\\Seen" not in message.flags:
                folder.set_flags(uid, ["\\Seen"], "add")
                add_flags = not wants_flags
            out = render_fetch(request, message, self.flags_bytes)
            if add_flags or wants_flags:
                self.known_flags[uid] = message.flags
            if add_flags:
                out.append(b"FLAGS " + self.flags_bytes(message))
            self.send(b"* %d FETCH (" % seq + b" ".join(out) + b")")
            if len(self._out) > 1 << 18:
                await self.flush()
        return f"{'UID ' if uid_mode else ''}FETCH completed"

    async def imap_store(self, cmd: Command) -> str:
        uid_mode = cmd.name == "UID"
        args = cmd.args[1:] if uid_mode else cmd.args
        if len(args) < 3:
            raise ImapSyntaxError(
                f"usage: {'UID ' if uid_mode else ''}STORE set (+|-)FLAGS[.SILENT] (flags)"
            )
        set_text = astring(args[0], "the sequence set")
        action = astring(args[1], "the STORE item").upper()
        match = re.fullmatch(r"([+-]?)FLAGS(\.SILENT)?", action)
        if match is None:
            raise ImapSyntaxError(
                f"STORE: unknown item {action!r}; expected FLAGS, +FLAGS or -FLAGS (with .SILENT)"
            )
        raw_flags: list[Value] = []
        for value in args[2:]:
            raw_flags.extend(value if isinstance(value, list) else [value])
        flags = _parse_flags(raw_flags, "STORE flags")
        mode: Literal["set", "add", "remove"] = "set"
        if match.group(1) == "+":
            mode = "add"
        elif match.group(1) == "-":
            mode = "remove"
        silent = match.group(2) is not None
        folder = self.require_writable("STORE")
        for seq, uid in self.resolve(set_text, uid_mode):
            message = folder.get(uid)
            if message is None:
                continue
            try:
                folder.set_flags(uid, flags, mode)
            except KeyError:
                continue  # expunged meanwhile
            if mode != "remove":
                # Announced even for .SILENT, before the first FETCH that shows it (as Dovecot).
                self.announce_keywords(flags)
            self.known_flags[uid] = message.flags
            if not silent:
                uid_part = b" UID %d" % uid if uid_mode else b""
                self.send(b"* %d FETCH (FLAGS %s%s)" % (seq, self.flags_bytes(message), uid_part))
        return f"{'UID ' if uid_mode else ''}STORE completed"

    async def imap_copy(self, cmd: Command) -> str:
        uid_mode = cmd.name == "UID"
        verb = astring(cmd.args[0], "the UID command").upper() if uid_mode else cmd.name
        args = cmd.args[1:] if uid_mode else cmd.args
        if len(args) != 2:
            raise ImapSyntaxError(f"usage: {'UID ' if uid_mode else ''}{verb} set mailbox")
        set_text = astring(args[0], "the sequence set")
        name = _mailbox_arg(args[1])
        folder = self.require_writable(verb) if verb == "MOVE" else self.require_folder()
        assert self.maildrop is not None
        try:
            target = self.maildrop.folder(name)
        except FolderNotFound:
            raise _no(f"[TRYCREATE] mailbox {name!r} does not exist") from None
        pairs = self.resolve(set_text, uid_mode)
        source_uids: list[int] = []
        target_uids: list[int] = []
        with self.store.lock:
            for _, uid in pairs:
                message = folder.get(uid)
                if message is None:
                    continue
                copy = target.append(message.raw, message.flags, message.internal_date)
                source_uids.append(uid)
                target_uids.append(copy.uid)
            code = ""
            if source_uids:
                code = (
                    f"[COPYUID {target.uidvalidity} {format_sequence(source_uids)} "
                    f"{format_sequence(target_uids)}] "
                )
            if verb == "MOVE" and source_uids:
                folder.remove(source_uids)
                self.send(f"* OK {code}moved".encode())
                self.dirty = True
                return f"{'UID ' if uid_mode else ''}MOVE completed"
        return f"{code}{'UID ' if uid_mode else ''}{verb} completed"


# -- helpers of the commands --------------------------------------------------------------------


def _args(cmd: Command, count: int, usage: str, *, at_least: bool = False) -> list[Value]:
    args = cmd.args
    if len(args) < count or (not at_least and len(args) > count):
        raise ImapSyntaxError(f"usage: {usage}")
    return args


_STATUS_ITEMS = ("MESSAGES", "RECENT", "UIDNEXT", "UIDVALIDITY", "UNSEEN")


def _parse_flags(values: Iterable[Value], what: str) -> list[str]:
    flags: list[str] = []
    for value in values:
        if isinstance(value, list):
            raise ImapSyntaxError(f"{what}: flags must be atoms such as \\Seen, not a nested list")
        text = astring(value, what)
        if text.lower() == "\\recent":
            continue  # set by the server only; clients may still send it
        try:
            flags.append(normalize_flag(text))
        except ValueError as exc:
            raise ImapSyntaxError(f"{what}: {exc}") from None
    return flags


# One handler per command, called as handler(session, cmd) (the style of smtp/protocol.py).
_COMMANDS: dict[str, _Handler] = {
    "CAPABILITY": _Session.imap_capability,
    "NOOP": _Session.imap_noop,
    "CHECK": _Session.imap_noop,
    "LOGOUT": _Session.imap_logout,
    "ID": _Session.imap_id,
    "NAMESPACE": _Session.imap_namespace,
    "STARTTLS": _Session.imap_starttls,
    "LOGIN": _Session.imap_login,
    "AUTHENTICATE": _Session.imap_authenticate,
    "SELECT": _Session.imap_select,
    "EXAMINE": _Session.imap_select,
    "CREATE": _Session.imap_create,
    "DELETE": _Session.imap_delete,
    "RENAME": _Session.imap_rename,
    "SUBSCRIBE": _Session.imap_subscribe,
    "UNSUBSCRIBE": _Session.imap_subscribe,
    "LIST": _Session.imap_list,
    "LSUB": _Session.imap_list,
    "STATUS": _Session.imap_status,
    "APPEND": _Session.imap_append,
    "IDLE": _Session.imap_idle,
    "CLOSE": _Session.imap_close,
    "UNSELECT": _Session.imap_close,
    "EXPUNGE": _Session.imap_expunge,
    "UID EXPUNGE": _Session.imap_expunge,
    "SEARCH": _Session.imap_search,
    "UID SEARCH": _Session.imap_search,
    "FETCH": _Session.imap_fetch,
    "UID FETCH": _Session.imap_fetch,
    "STORE": _Session.imap_store,
    "UID STORE": _Session.imap_store,
    "COPY": _Session.imap_copy,
    "UID COPY": _Session.imap_copy,
    "MOVE": _Session.imap_copy,
    "UID MOVE": _Session.imap_copy,
}
